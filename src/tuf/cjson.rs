//! Canonical JSON, the byte form Notary signs.
//!
//! Notary signs the canonical JSON of the `signed` object: keys sorted at every level, no
//! whitespace, only `"` and `\` escaped, integers only. The served file is Go `encoding/json`
//! output, so signatures are verified over the re-canonicalized parsed object, never over the
//! raw bytes (hashes and lengths, in contrast, are checked over the raw bytes).

use serde::Serialize;

/// Serializes `value` as OLPC canonical JSON. Fails on floating-point numbers.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).map_err(|e| format!("cannot canonicalize: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_drops_whitespace_and_keeps_html_characters_raw() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{ "b": 1, "a": {"z": null, "y": "\u003cx\u003e \"q\" é"} }"#).unwrap();
        let c = to_canonical(&v).unwrap();
        assert_eq!(String::from_utf8(c).unwrap(), r#"{"a":{"y":"<x> \"q\" é","z":null},"b":1}"#);
    }

    #[test]
    fn canonical_json_refuses_floats() {
        let v: serde_json::Value = serde_json::from_str(r#"{"n": 1.5}"#).unwrap();
        assert!(to_canonical(&v).is_err());
    }
}
