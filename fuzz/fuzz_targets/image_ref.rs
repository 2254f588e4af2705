//! Image references and runtime image IDs: no input panics; a reference that parses prints
//! as a reference that parses back to itself, with a GUN of the same registry and path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustwatch::image::{ImageRef, running_digest};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = running_digest(s);
    let Ok(r) = ImageRef::parse(s) else { return };
    let printed = r.to_string();
    let back =
        ImageRef::parse(&printed).unwrap_or_else(|e| panic!("{s:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(back, r, "{s:?} printed as {printed:?}");
    assert_eq!(r.gun(), format!("{}/{}", r.registry, r.repository));
    assert!(r.tag.is_some() || r.digest.is_some(), "a reference names a tag or a digest");
});
