//! Canonical JSON (the bytes Notary signs): any JSON value canonicalizes without panicking,
//! deterministically, and what it produces reads back as the same value and canonicalizes to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustwatch::tuf::cjson::to_canonical;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(first) = to_canonical(&value) else { return };
    assert_eq!(to_canonical(&value).as_deref(), Ok(first.as_slice()), "canonical JSON is deterministic");
    // Raw control characters are valid canonical JSON but not JSON: only what reads back is
    // compared.
    if let Ok(back) = serde_json::from_slice::<serde_json::Value>(&first) {
        assert_eq!(back, value, "canonical JSON reads back as the same value");
        assert_eq!(to_canonical(&back).as_deref(), Ok(first.as_slice()), "canonical JSON is a fixed point");
    }
});
