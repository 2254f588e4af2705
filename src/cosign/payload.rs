//! The signed documents: cosign's simple-signing payload (classic layout) and the in-toto
//! statement in a DSSE envelope (Sigstore bundle layout).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// cosign: "The `critical.type` value used to identify `cosign` signatures is: `cosign
/// container image signature`."
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// The predicate type of the statement cosign signs for an image in a Sigstore bundle.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const IN_TOTO_STATEMENT_TYPES: [&str; 2] = ["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"];

/// What a simple-signing payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSigning {
    /// `critical.image.docker-manifest-digest`.
    pub digest: String,
    /// `critical.identity.docker-reference` (ignored for verification, per the spec).
    pub docker_reference: Option<String>,
    /// `optional`, with values as strings (non-string JSON values as their JSON text).
    pub annotations: BTreeMap<String, String>,
}

/// A JSON member by name: exactly, else the one case-insensitive match (cosign reads the
/// payload with Go's encoding/json, which matches keys case-insensitively, and the spec's
/// own example writes `Docker-manifest-digest`). Two case-insensitive matches and no exact
/// one are ambiguous and refused.
fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a Value>, String> {
    if let Some(v) = obj.get(name) {
        return Ok(Some(v));
    }
    let mut found = obj.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Ok(Some(v)),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(format!("ambiguous member {name:?} (several spellings)")),
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{what} is not a JSON object"))
}

/// Parses a simple-signing payload and checks its type.
///
/// Simple signing (containers-signature(5), as cosign's spec applies it): `critical` holds
/// `identity.docker-reference`, `image.docker-manifest-digest` and `type`; "Optional
/// user-specified claims may be included in the `Optional` section."
pub fn parse_simple_signing(bytes: &[u8]) -> Result<SimpleSigning, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let top = object(&v, "the payload")?;
    let critical = object(member(top, "critical")?.ok_or("no `critical` section")?, "`critical`")?;
    let ty = member(critical, "type")?.and_then(Value::as_str).ok_or("no `critical.type`")?;
    if ty != SIMPLE_SIGNING_TYPE {
        return Err(format!("critical.type is {ty:?}, not {SIMPLE_SIGNING_TYPE:?}"));
    }
    let image = object(member(critical, "image")?.ok_or("no `critical.image`")?, "`critical.image`")?;
    let digest = member(image, "docker-manifest-digest")?
        .and_then(Value::as_str)
        .ok_or("no `critical.image.docker-manifest-digest`")?
        .to_string();
    let docker_reference = match member(critical, "identity")? {
        Some(i) => {
            member(object(i, "`critical.identity`")?, "docker-reference")?.and_then(Value::as_str).map(str::to_string)
        }
        None => None,
    };
    let annotations = match member(top, "optional")? {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(o) => object(o, "`optional`")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect(),
    };
    Ok(SimpleSigning { digest, docker_reference, annotations })
}

/// DSSE's pre-authentication encoding, what a DSSE signature is over:
/// `PAE(type, body) = "DSSEv1" + SP + LEN(type) + SP + type + SP + LEN(body) + SP + body`,
/// with `LEN` the ASCII decimal byte length.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// What an in-toto statement signed by cosign for an image claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `sha256:<hex>` of every subject.
    pub subject_digests: Vec<String>,
    pub predicate_type: String,
}

pub fn parse_statement(bytes: &[u8]) -> Result<Statement, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("statement is not JSON: {e}"))?;
    let top = object(&v, "the statement")?;
    let ty = top.get("_type").and_then(Value::as_str).ok_or("statement has no `_type`")?;
    if !IN_TOTO_STATEMENT_TYPES.contains(&ty) {
        return Err(format!("statement `_type` is {ty:?}, not an in-toto statement"));
    }
    let predicate_type = top.get("predicateType").and_then(Value::as_str).ok_or("no `predicateType`")?.to_string();
    let subjects = top.get("subject").and_then(Value::as_array).ok_or("no `subject` list")?;
    let mut subject_digests = vec![];
    for s in subjects {
        if let Some(hex) = s.get("digest").and_then(|d| d.get("sha256")).and_then(Value::as_str) {
            subject_digests.push(format!("sha256:{hex}"));
        }
    }
    Ok(Statement { subject_digests, predicate_type })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_payloads_parse_with_the_spellings_go_accepts() {
        let p = br#"{"critical":{"identity":{"docker-reference":"r/app"},"image":{"Docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":{"team":"web","n":3}}"#;
        let s = parse_simple_signing(p).unwrap();
        assert_eq!(s.digest, "sha256:ab");
        assert_eq!(s.docker_reference.as_deref(), Some("r/app"));
        assert_eq!(s.annotations.get("team").map(String::as_str), Some("web"));
        assert_eq!(s.annotations.get("n").map(String::as_str), Some("3"));
        let ambiguous = br#"{"critical":{"image":{"Docker-Manifest-Digest":"sha256:aa","docker-manifest-DIGEST":"sha256:bb"},"type":"cosign container image signature"}}"#;
        assert!(parse_simple_signing(ambiguous).unwrap_err().contains("ambiguous"));
        let wrong =
            br#"{"critical":{"image":{"docker-manifest-digest":"sha256:aa"},"type":"atomic container signature"}}"#;
        assert!(parse_simple_signing(wrong).unwrap_err().contains("critical.type"));
        assert!(parse_simple_signing(b"[]").is_err());
    }

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(pae("t", b"body"), b"DSSEv1 1 t 4 body".to_vec());
        let st = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}"#;
        let s = parse_statement(st).unwrap();
        assert_eq!(
            (s.subject_digests, s.predicate_type.as_str()),
            (vec!["sha256:ab".to_string()], COSIGN_SIGN_PREDICATE)
        );
    }
}
