//! Canonical JSON, the byte form Notary signs.
//!
//! Notary signs `json.MarshalCanonical` (github.com/docker/go/canonical/json) of the `signed`
//! object: object keys sorted, no whitespace, integers only, and strings written as they are
//! except that its `string` encoder escapes only `\` and `"` ("if b != '\\' && b != '"'"). It
//! does not normalize Unicode. (Later docker/go also escapes U+2028/U+2029; the notary 0.7
//! signer writes them raw, which the real-server test checks.) The served file is Go
//! `encoding/json` output (which escapes `<>&` and U+2028), so signatures are verified over the
//! re-canonicalized parsed object, never over the raw bytes (hashes and lengths, in contrast,
//! are checked over the raw bytes).
//!
//! Written here rather than taken from a crate: the OLPC canonical JSON crates normalize
//! strings to NFC, which notary does not. That makes two different values share one canonical
//! form (a signature would cover a string it was not made over) and rejects genuine metadata
//! with a non-NFC name (found by the `cjson` fuzz target; see the tests).

use serde::Serialize;
use serde_json::Value;

/// Serializes `value` as notary's canonical JSON. Fails on floating-point numbers.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let value = serde_json::to_value(value).map_err(|e| format!("cannot canonicalize: {e}"))?;
    let mut out = Vec::new();
    write(&value, &mut out)?;
    Ok(out)
}

fn write(v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.extend_from_slice(i.to_string().as_bytes()),
            (None, Some(u)) => out.extend_from_slice(u.to_string().as_bytes()),
            _ => return Err(format!("cannot canonicalize: {n} is not an integer")),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Go sorts map keys as strings, that is by their UTF-8 bytes; sorted here whatever
            // order the map keeps.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write(&map[k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '"' => out.extend_from_slice(b"\\\""),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
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

    /// The input the `cjson` fuzz target found (fuzz/artifacts, 1.4 M executions): "R" and a
    /// combining dot below read back as the precomposed "Ṛ" from the NFC-normalizing encoder
    /// used before, so two values had one canonical form.
    #[test]
    fn strings_are_not_normalized_so_distinct_values_never_share_a_canonical_form() {
        let found: Value = serde_json::from_slice(b"\"R\xcc\xa3nn\\\"\\\"=\\\"\\\"\"").unwrap();
        let c = to_canonical(&found).unwrap();
        assert_eq!(c, "\"R\u{323}nn\\\"\\\"=\\\"\\\"\"".as_bytes());
        assert_eq!(serde_json::from_slice::<Value>(&c).unwrap(), found, "reads back as itself");
        let precomposed = Value::String("\u{1e5a}nn\"\"=\"\"".into());
        assert_ne!(to_canonical(&precomposed).unwrap(), c);
        // Singletons NFC would fold into ASCII (KELVIN SIGN -> K) stay distinct too.
        assert_ne!(
            to_canonical(&Value::String("\u{212a}".into())).unwrap(),
            to_canonical(&Value::String("K".into())).unwrap()
        );
    }

    #[test]
    fn only_backslash_and_quote_are_escaped_everything_else_is_written_raw() {
        let v = Value::String("a\u{2028}b\u{2029}c\nd\u{1}\\\"".into());
        assert_eq!(to_canonical(&v).unwrap(), "\"a\u{2028}b\u{2029}c\nd\u{1}\\\\\\\"\"".as_bytes());
    }

    #[test]
    fn keys_sort_by_their_utf8_bytes_and_large_integers_stay_exact() {
        let v: Value =
            serde_json::from_str(r#"{"é":1,"z":2,"A":3,"n":18446744073709551615,"m":-9223372036854775808}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_canonical(&v).unwrap()).unwrap(),
            r#"{"A":3,"m":-9223372036854775808,"n":18446744073709551615,"z":2,"é":1}"#
        );
    }
}
