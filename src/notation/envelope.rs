//! Signature envelopes: JWS JSON serialization (`application/jose+json`) and
//! COSE_Sign1_Tagged (`application/cose`), parsed into one format-neutral [`Envelope`].
//!
//! Parsing validates the structure and the signed attributes (`signature-envelope-jws.md`,
//! `signature-envelope-cose.md`, "Signed Attributes" of `signature-specification.md`); the
//! signature itself is checked by the caller with the leaf key ([`Envelope::signing_input`]).

use super::error::NotationError;
use super::x509::SignatureAlgorithm;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

pub const MEDIA_TYPE_JWS: &str = "application/jose+json";
pub const MEDIA_TYPE_COSE: &str = "application/cose";
/// Spec: "The supported value is `application/vnd.cncf.notary.payload.v1+json`."
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Largest envelope accepted. notation's own envelopes are a few KiB (chain included).
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;
/// Largest payload accepted (a descriptor with annotations).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest timestamp token accepted.
pub const MAX_TIMESTAMP_BYTES: usize = 64 * 1024;

const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";
const SIGNING_AGENT: &str = "io.cncf.notary.signingAgent";

/// The two envelope formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum EnvelopeFormat {
    Jws,
    Cose,
}

impl EnvelopeFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeFormat::Jws => "JWS",
            EnvelopeFormat::Cose => "COSE",
        }
    }
    pub fn from_media_type(media_type: &str) -> Result<EnvelopeFormat, NotationError> {
        match media_type {
            MEDIA_TYPE_JWS => Ok(EnvelopeFormat::Jws),
            MEDIA_TYPE_COSE => Ok(EnvelopeFormat::Cose),
            other => Err(NotationError::UnsupportedEnvelopeType { media_type: other.to_string() }),
        }
    }
}

/// Spec: "Supported values are `notary.x509` and `notary.x509.signingAuthority`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SigningScheme {
    #[serde(rename = "notary.x509")]
    X509,
    #[serde(rename = "notary.x509.signingAuthority")]
    X509SigningAuthority,
}

impl SigningScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningScheme::X509 => "notary.x509",
            SigningScheme::X509SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

/// A parsed envelope: signed attributes validated, signature not yet verified.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub format: EnvelopeFormat,
    pub algorithm: SignatureAlgorithm,
    pub signing_scheme: SigningScheme,
    /// Unauthenticated (`notary.x509`).
    pub signing_time: Option<Timestamp>,
    /// Authenticated by the signing authority (`notary.x509.signingAuthority`).
    pub authentic_signing_time: Option<Timestamp>,
    pub expiry: Option<Timestamp>,
    /// The payload bytes (JSON), as signed.
    pub payload: Vec<u8>,
    /// The bytes the signature covers: the JWS signing input or the COSE Sig_structure.
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER certificates, leaf first.
    pub certificate_chain: Vec<Vec<u8>>,
    /// RFC 3161 TimeStampToken over `signature`.
    pub timestamp_token: Option<Vec<u8>>,
    pub signing_agent: Option<String>,
}

fn malformed(format: EnvelopeFormat, detail: impl Into<String>) -> NotationError {
    NotationError::MalformedEnvelope { format: format.as_str(), detail: detail.into() }
}

fn bad_attr(attribute: &str, detail: impl Into<String>) -> NotationError {
    NotationError::InvalidSignedAttribute { attribute: attribute.to_string(), detail: detail.into() }
}

/// Parses an envelope of the given media type (the signature manifest's layer media type).
pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Envelope, NotationError> {
    let format = EnvelopeFormat::from_media_type(media_type)?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(NotationError::EnvelopeTooLarge {
            what: "signature envelope".into(),
            size: bytes.len() as u64,
            limit: MAX_ENVELOPE_BYTES as u64,
        });
    }
    let env = match format {
        EnvelopeFormat::Jws => parse_jws(bytes)?,
        EnvelopeFormat::Cose => parse_cose(bytes)?,
    };
    if env.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(NotationError::EnvelopeTooLarge {
            what: "signature payload".into(),
            size: env.payload.len() as u64,
            limit: MAX_PAYLOAD_BYTES as u64,
        });
    }
    if let Some(t) = &env.timestamp_token
        && t.len() > MAX_TIMESTAMP_BYTES
    {
        return Err(NotationError::EnvelopeTooLarge {
            what: "timestamp token".into(),
            size: t.len() as u64,
            limit: MAX_TIMESTAMP_BYTES as u64,
        });
    }
    if env.certificate_chain.is_empty() {
        // Spec: "Certificate Chain: This is a REQUIRED attribute".
        return Err(malformed(format, "no certificate chain (x5chain / x5c)"));
    }
    if env.certificate_chain.len() > super::x509::MAX_CHAIN_LENGTH {
        return Err(malformed(format, format!("{} certificates in the chain", env.certificate_chain.len())));
    }
    Ok(env)
}

/// The signed attributes common to both formats, before validation.
struct RawAttributes {
    scheme: Option<String>,
    signing_time: Option<Timestamp>,
    authentic_signing_time: Option<Timestamp>,
    expiry: Option<Timestamp>,
    /// Every protected header name other than the registered ones.
    present: Vec<String>,
    crit: Vec<String>,
}

/// Spec (both envelopes): `crit` "MUST contain `io.cncf.notary.signingScheme` which is a
/// required critical header, and optionally contain `io.cncf.notary.authenticSigningTime` and
/// `io.cncf.notary.expiry` if these critical headers are present in the signature." Signature
/// specification: "unknown critical attributes MUST cause signature verification to fail."
/// We run no plugins, so `io.cncf.notary.verificationPlugin*` are unknown to us.
///
/// Signing time: "This claim is REQUIRED and only valid when signing scheme is
/// `notary.x509`." Authentic signing time: "This claim is REQUIRED and only valid when signing
/// scheme is `notary.x509.signingAuthority`."
fn validate_attributes(raw: RawAttributes) -> Result<(SigningScheme, RawAttributes), NotationError> {
    const KNOWN_CRITICAL: [&str; 3] = [SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME, EXPIRY];
    for name in &raw.crit {
        if !KNOWN_CRITICAL.contains(&name.as_str()) {
            return Err(NotationError::UnknownCriticalAttribute { attribute: name.clone() });
        }
        if !raw.present.contains(name) {
            return Err(bad_attr(name, "listed in crit but not present"));
        }
    }
    for name in KNOWN_CRITICAL {
        if raw.present.iter().any(|p| p == name) && !raw.crit.iter().any(|c| c == name) {
            return Err(bad_attr(name, "present but not marked critical"));
        }
    }
    let scheme = match raw.scheme.as_deref() {
        Some("notary.x509") => SigningScheme::X509,
        Some("notary.x509.signingAuthority") => SigningScheme::X509SigningAuthority,
        Some(other) => return Err(bad_attr(SIGNING_SCHEME, format!("unsupported signing scheme {other:?}"))),
        None => return Err(bad_attr(SIGNING_SCHEME, "missing")),
    };
    match scheme {
        SigningScheme::X509 => {
            if raw.signing_time.is_none() {
                return Err(bad_attr(SIGNING_TIME, "required by notary.x509"));
            }
            if raw.authentic_signing_time.is_some() {
                return Err(bad_attr(AUTHENTIC_SIGNING_TIME, "only valid with notary.x509.signingAuthority"));
            }
        }
        SigningScheme::X509SigningAuthority => {
            if raw.authentic_signing_time.is_none() {
                return Err(bad_attr(AUTHENTIC_SIGNING_TIME, "required by notary.x509.signingAuthority"));
            }
            if raw.signing_time.is_some() {
                return Err(bad_attr(SIGNING_TIME, "only valid with notary.x509"));
            }
        }
    }
    Ok((scheme, raw))
}

// ---------------------------------------------------------------------------------------------
// JWS
// ---------------------------------------------------------------------------------------------

/// Spec: "The final signature envelope comprises of Payload, ProtectedHeaders,
/// UnprotectedHeaders, and Signature, no additional top level fields are supported." /
/// "the compliant signature envelope MUST be in flattened JWS JSON format."
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwsJson {
    payload: String,
    protected: String,
    #[serde(default)]
    header: Map<String, Value>,
    signature: String,
}

fn parse_jws(bytes: &[u8]) -> Result<Envelope, NotationError> {
    let f = EnvelopeFormat::Jws;
    let jws: JwsJson =
        serde_json::from_slice(bytes).map_err(|e| malformed(f, format!("not a flattened JWS JSON object: {e}")))?;
    let protected_bytes =
        URL_SAFE_NO_PAD.decode(jws.protected.as_bytes()).map_err(|e| malformed(f, format!("protected: {e}")))?;
    let payload = URL_SAFE_NO_PAD.decode(jws.payload.as_bytes()).map_err(|e| malformed(f, format!("payload: {e}")))?;
    let signature =
        URL_SAFE_NO_PAD.decode(jws.signature.as_bytes()).map_err(|e| malformed(f, format!("signature: {e}")))?;
    let protected: Map<String, Value> = serde_json::from_slice(&protected_bytes)
        .map_err(|e| malformed(f, format!("protected header is not a JSON object: {e}")))?;

    // `alg`: "MUST NOT be `none` or any symmetric-key algorithm such as `HMAC`" and must be
    // one of the table's values.
    let alg = protected.get("alg").and_then(Value::as_str).ok_or_else(|| bad_attr("alg", "missing"))?;
    let algorithm = SignatureAlgorithm::from_jws(alg)
        .ok_or_else(|| NotationError::UnsupportedAlgorithm { detail: format!("JWS alg {alg:?}") })?;
    // `cty`: "The supported value is `application/vnd.cncf.notary.payload.v1+json`."
    match protected.get("cty").and_then(Value::as_str) {
        Some(PAYLOAD_CONTENT_TYPE) => {}
        other => return Err(bad_attr("cty", format!("content type {other:?} is not supported"))),
    }
    let crit = match protected.get("crit") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad_attr("crit", "entries must be strings")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad_attr("crit", "must be an array of strings")),
        // "This REQUIRED ... header lists the headers that implementation MUST understand".
        None => return Err(bad_attr("crit", "missing")),
    };
    let time = |name: &str| -> Result<Option<Timestamp>, NotationError> {
        match protected.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                s.parse::<Timestamp>().map(Some).map_err(|e| bad_attr(name, format!("not an RFC 3339 time: {e}")))
            }
            Some(_) => Err(bad_attr(name, "must be an RFC 3339 string")),
        }
    };
    let scheme = match protected.get(SIGNING_SCHEME) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad_attr(SIGNING_SCHEME, "must be a string")),
    };
    let raw = RawAttributes {
        scheme,
        signing_time: time(SIGNING_TIME)?,
        authentic_signing_time: time(AUTHENTIC_SIGNING_TIME)?,
        expiry: time(EXPIRY)?,
        present: protected.keys().filter(|k| !["alg", "cty", "crit"].contains(&k.as_str())).cloned().collect(),
        crit,
    };
    // JWS (RFC 7515 4.1.11): crit "MUST NOT" list registered header names.
    if raw
        .crit
        .iter()
        .any(|c| ["alg", "cty", "crit", "x5c", "kid", "typ", "jku", "jwk", "x5u", "x5t"].contains(&c.as_str()))
    {
        return Err(bad_attr("crit", "must not list registered JWS headers"));
    }
    let (signing_scheme, raw) = validate_attributes(raw)?;

    let certificate_chain = match jws.header.get("x5c") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let s = v.as_str().ok_or_else(|| malformed(f, format!("x5c[{i}] is not a string")))?;
                STANDARD.decode(s.as_bytes()).map_err(|e| malformed(f, format!("x5c[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(malformed(f, "x5c must be an array")),
        None => vec![],
    };
    let timestamp_token = match jws.header.get(TIMESTAMP_SIGNATURE) {
        None => None,
        Some(Value::String(s)) => {
            Some(STANDARD.decode(s.as_bytes()).map_err(|e| malformed(f, format!("{TIMESTAMP_SIGNATURE}: {e}")))?)
        }
        Some(_) => return Err(malformed(f, format!("{TIMESTAMP_SIGNATURE} must be a string"))),
    };
    // "the verifier MUST NOT validate formatting, or fail validation based on the content of
    // this claim."
    let signing_agent = jws.header.get(SIGNING_AGENT).and_then(Value::as_str).map(str::to_string);

    // "ASCII(BASE64URL(UTF8(ProtectedHeaders)) '.' BASE64URL(JWSPayload))"
    let mut signing_input = Vec::with_capacity(jws.protected.len() + 1 + jws.payload.len());
    signing_input.extend_from_slice(jws.protected.as_bytes());
    signing_input.push(b'.');
    signing_input.extend_from_slice(jws.payload.as_bytes());

    Ok(Envelope {
        format: f,
        algorithm,
        signing_scheme,
        signing_time: raw.signing_time,
        authentic_signing_time: raw.authentic_signing_time,
        expiry: raw.expiry,
        payload,
        signing_input,
        signature,
        certificate_chain,
        timestamp_token,
        signing_agent,
    })
}

// ---------------------------------------------------------------------------------------------
// COSE
// ---------------------------------------------------------------------------------------------

fn parse_cose(bytes: &[u8]) -> Result<Envelope, NotationError> {
    use coset::cbor::Value as Cbor;
    use coset::iana::EnumI64 as _;
    use coset::{Label, RegisteredLabel, RegisteredLabelWithPrivate, TaggedCborSerializable};
    let f = EnvelopeFormat::Cose;
    // "The final signature envelope is a `COSE_Sign1_Tagged` object".
    let sign1 = coset::CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| malformed(f, format!("not a COSE_Sign1_Tagged: {e}")))?;
    let p = &sign1.protected.header;
    let u = &sign1.unprotected;

    let alg = match &p.alg {
        Some(RegisteredLabelWithPrivate::Assigned(a)) => a.to_i64(),
        Some(RegisteredLabelWithPrivate::PrivateUse(i)) => *i,
        Some(RegisteredLabelWithPrivate::Text(t)) => {
            return Err(NotationError::UnsupportedAlgorithm { detail: format!("COSE alg {t:?}") });
        }
        None => return Err(bad_attr("alg", "missing from the protected header")),
    };
    let algorithm = SignatureAlgorithm::from_cose(alg)
        .ok_or_else(|| NotationError::UnsupportedAlgorithm { detail: format!("COSE alg {alg}") })?;
    match &p.content_type {
        Some(RegisteredLabel::Text(t)) if t == PAYLOAD_CONTENT_TYPE => {}
        other => return Err(bad_attr("content type", format!("{other:?} is not supported"))),
    }
    // crit "MUST only contain parameters apart from integer labels in the range of 0 to 8."
    let mut crit = vec![];
    for c in &p.crit {
        match c {
            RegisteredLabelWithPrivate::Text(t) => crit.push(t.clone()),
            RegisteredLabelWithPrivate::Assigned(a) if (0..=8).contains(&a.to_i64()) => {
                return Err(bad_attr("crit", format!("must not list label {}", a.to_i64())));
            }
            RegisteredLabelWithPrivate::Assigned(a) => crit.push(a.to_i64().to_string()),
            RegisteredLabelWithPrivate::PrivateUse(i) => crit.push(i.to_string()),
        }
    }
    if p.crit.is_empty() {
        return Err(bad_attr("crit", "missing"));
    }
    let find = |h: &coset::Header, name: &str| {
        h.rest.iter().find(|(l, _)| matches!(l, Label::Text(t) if t == name)).map(|(_, v)| v.clone())
    };
    // "Its value is an Epoch-Based Date/Time defined in RFC 8949": tag 1 over an integer (or
    // a float, whose fractional seconds "SHOULD NOT be used").
    let time = |name: &str| -> Result<Option<Timestamp>, NotationError> {
        let Some(v) = find(p, name) else { return Ok(None) };
        let secs = match v {
            Cbor::Tag(1, inner) => match *inner {
                Cbor::Integer(i) => i64::try_from(i).map_err(|_| bad_attr(name, "out of range"))?,
                Cbor::Float(x) if x.is_finite() && x.abs() < 1e15 => x.floor() as i64,
                _ => return Err(bad_attr(name, "tag 1 must hold a number")),
            },
            _ => return Err(bad_attr(name, "must be an epoch date/time (tag 1)")),
        };
        Timestamp::from_second(secs).map(Some).map_err(|e| bad_attr(name, e.to_string()))
    };
    let scheme = match find(p, SIGNING_SCHEME) {
        None => None,
        Some(Cbor::Text(s)) => Some(s),
        Some(_) => return Err(bad_attr(SIGNING_SCHEME, "must be a text string")),
    };
    let mut present: Vec<String> = p
        .rest
        .iter()
        .map(|(l, _)| match l {
            Label::Text(t) => t.clone(),
            Label::Int(i) => i.to_string(),
        })
        .collect();
    if !p.key_id.is_empty() {
        present.push("4".into());
    }
    let raw = RawAttributes {
        scheme,
        signing_time: time(SIGNING_TIME)?,
        authentic_signing_time: time(AUTHENTIC_SIGNING_TIME)?,
        expiry: time(EXPIRY)?,
        present,
        crit,
    };
    let (signing_scheme, raw) = validate_attributes(raw)?;

    // x5chain (label 33): "an array of certificate, each certificate in the array is DER
    // encoded and then wrapped in a CBOR byte string ... Optionally, this header can be
    // presented in the protected header." A single certificate may be a bare bstr
    // (draft-ietf-cose-x509).
    let x5 = |h: &coset::Header| h.rest.iter().find(|(l, _)| *l == Label::Int(33)).map(|(_, v)| v.clone());
    let certificate_chain = match (x5(p), x5(u)) {
        (Some(_), Some(_)) => return Err(malformed(f, "x5chain in both the protected and unprotected header")),
        (Some(v), None) | (None, Some(v)) => match v {
            Cbor::Bytes(b) => vec![b],
            Cbor::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Cbor::Bytes(b) => Ok(b),
                    _ => Err(malformed(f, format!("x5chain[{i}] is not a byte string"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(malformed(f, "x5chain must be a byte string or an array of them")),
        },
        (None, None) => vec![],
    };
    let timestamp_token = match find(u, TIMESTAMP_SIGNATURE) {
        None => None,
        Some(Cbor::Bytes(b)) => Some(b),
        Some(_) => return Err(malformed(f, format!("{TIMESTAMP_SIGNATURE} must be a byte string"))),
    };
    let signing_agent = match find(u, SIGNING_AGENT) {
        Some(Cbor::Text(t)) => Some(t),
        _ => None,
    };
    let payload = sign1.payload.clone().ok_or_else(|| malformed(f, "detached payloads are not supported"))?;
    // Sig_structure = ["Signature1", body_protected, external_aad = h'', payload], over the
    // protected header bytes exactly as they were received.
    let signing_input = sign1.tbs_data(b"");
    Ok(Envelope {
        format: f,
        algorithm,
        signing_scheme,
        signing_time: raw.signing_time,
        authentic_signing_time: raw.authentic_signing_time,
        expiry: raw.expiry,
        payload,
        signing_input,
        signature: sign1.signature.clone(),
        certificate_chain,
        timestamp_token,
        signing_agent,
    })
}

// ---------------------------------------------------------------------------------------------
// Payload
// ---------------------------------------------------------------------------------------------

/// An OCI descriptor: what was signed, or the artifact being verified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Deserialize)]
struct PayloadJson {
    #[serde(rename = "targetArtifact")]
    target_artifact: Option<TargetJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetJson {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Spec, "Payload": "`targetArtifact` : Required property ... Descriptor MUST contain
/// `mediaType`, `digest`, and `size` fields."
pub fn parse_payload(payload: &[u8]) -> Result<Descriptor, NotationError> {
    let bad = |d: &str| NotationError::MalformedPayload { detail: d.to_string() };
    let p: PayloadJson = serde_json::from_slice(payload).map_err(|e| bad(&format!("not a JSON payload: {e}")))?;
    let t = p.target_artifact.ok_or_else(|| bad("no targetArtifact"))?;
    let _ = t.annotations;
    let size = t.size.ok_or_else(|| bad("targetArtifact has no size"))?;
    Ok(Descriptor {
        media_type: t.media_type.filter(|m| !m.is_empty()).ok_or_else(|| bad("targetArtifact has no mediaType"))?,
        digest: t.digest.filter(|d| !d.is_empty()).ok_or_else(|| bad("targetArtifact has no digest"))?,
        size: u64::try_from(size).map_err(|_| bad("targetArtifact size is negative"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jws(protected: &Value, header: &Value) -> Vec<u8> {
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(protected).unwrap());
        let payload = URL_SAFE_NO_PAD.encode(br#"{"targetArtifact":{"mediaType":"m","digest":"sha256:00","size":1}}"#);
        serde_json::to_vec(
            &serde_json::json!({"payload": payload, "protected": p, "header": header, "signature": "AAAA"}),
        )
        .unwrap()
    }

    fn base_header() -> Value {
        serde_json::json!({
            "alg": "PS256",
            "cty": PAYLOAD_CONTENT_TYPE,
            "crit": [SIGNING_SCHEME],
            SIGNING_SCHEME: "notary.x509",
            SIGNING_TIME: "2026-01-01T00:00:00Z",
        })
    }

    fn x5c() -> Value {
        serde_json::json!({"x5c": ["MAA="]})
    }

    #[test]
    fn a_minimal_jws_parses_with_its_signed_attributes() {
        let env = parse(MEDIA_TYPE_JWS, &jws(&base_header(), &x5c())).unwrap();
        assert_eq!(env.algorithm, SignatureAlgorithm::Ps256);
        assert_eq!(env.signing_scheme, SigningScheme::X509);
        assert_eq!(env.signing_time, Some("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(env.certificate_chain, vec![vec![0x30, 0x00]]);
        assert!(env.signing_input.contains(&b'.'));
    }

    #[test]
    fn unknown_and_plugin_critical_attributes_fail() {
        for name in ["io.cncf.notary.verificationPlugin", "com.example.custom"] {
            let mut h = base_header();
            h[name] = "x".into();
            h["crit"] = serde_json::json!([SIGNING_SCHEME, name]);
            let err = parse(MEDIA_TYPE_JWS, &jws(&h, &x5c())).unwrap_err();
            assert_eq!(err.reason(), "UnknownCriticalAttribute", "{name}: {err}");
        }
    }

    #[test]
    fn an_expiry_not_marked_critical_fails() {
        let mut h = base_header();
        h[EXPIRY] = "2027-01-01T00:00:00Z".into();
        let err = parse(MEDIA_TYPE_JWS, &jws(&h, &x5c())).unwrap_err();
        assert_eq!(err.reason(), "InvalidSignedAttribute");
    }

    #[test]
    fn wrong_content_type_none_alg_and_missing_scheme_fail() {
        let mut h = base_header();
        h["cty"] = "application/json".into();
        assert_eq!(parse(MEDIA_TYPE_JWS, &jws(&h, &x5c())).unwrap_err().reason(), "InvalidSignedAttribute");
        let mut h = base_header();
        h["alg"] = "none".into();
        assert_eq!(parse(MEDIA_TYPE_JWS, &jws(&h, &x5c())).unwrap_err().reason(), "UnsupportedAlgorithm");
        let mut h = base_header();
        h.as_object_mut().unwrap().remove(SIGNING_SCHEME);
        h["crit"] = serde_json::json!([]);
        assert_eq!(parse(MEDIA_TYPE_JWS, &jws(&h, &x5c())).unwrap_err().reason(), "InvalidSignedAttribute");
    }

    #[test]
    fn signing_authority_needs_authentic_signing_time() {
        let mut h = base_header();
        h[SIGNING_SCHEME] = "notary.x509.signingAuthority".into();
        assert_eq!(parse(MEDIA_TYPE_JWS, &jws(&h, &x5c())).unwrap_err().reason(), "InvalidSignedAttribute");
        h.as_object_mut().unwrap().remove(SIGNING_TIME);
        h[AUTHENTIC_SIGNING_TIME] = "2026-01-01T00:00:00Z".into();
        h["crit"] = serde_json::json!([SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME]);
        let env = parse(MEDIA_TYPE_JWS, &jws(&h, &x5c())).unwrap();
        assert_eq!(env.signing_scheme, SigningScheme::X509SigningAuthority);
    }

    #[test]
    fn extra_top_level_fields_oversize_and_unknown_media_types_are_rejected() {
        let mut v: Value = serde_json::from_slice(&jws(&base_header(), &x5c())).unwrap();
        v["signatures"] = serde_json::json!([]);
        let err = parse(MEDIA_TYPE_JWS, &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(err.reason(), "MalformedEnvelope");
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(parse(MEDIA_TYPE_JWS, &big).unwrap_err().reason(), "EnvelopeTooLarge");
        assert_eq!(parse("application/json", b"{}").unwrap_err().reason(), "UnsupportedEnvelopeType");
        assert_eq!(parse(MEDIA_TYPE_COSE, b"\xd2\x84").unwrap_err().reason(), "MalformedEnvelope");
        assert_eq!(
            parse(MEDIA_TYPE_JWS, &jws(&base_header(), &serde_json::json!({}))).unwrap_err().reason(),
            "MalformedEnvelope"
        );
    }

    fn cose(crit: &[&str], extra: &[(&str, coset::cbor::Value)]) -> Vec<u8> {
        use coset::cbor::Value as V;
        use coset::{HeaderBuilder, TaggedCborSerializable, iana};
        let mut h = HeaderBuilder::new()
            .algorithm(iana::Algorithm::PS256)
            .content_type(PAYLOAD_CONTENT_TYPE.to_string())
            .text_value(SIGNING_SCHEME.into(), V::Text("notary.x509".into()))
            .text_value(SIGNING_TIME.into(), V::Tag(1, Box::new(V::Integer(1_767_225_600.into()))));
        for c in crit {
            h = h.add_critical_label(coset::RegisteredLabelWithPrivate::Text(c.to_string()));
        }
        for (k, v) in extra {
            h = h.text_value(k.to_string(), v.clone());
        }
        let unprotected = HeaderBuilder::new().value(33, V::Array(vec![V::Bytes(vec![0x30, 0x00])])).build();
        coset::CoseSign1Builder::new()
            .protected(h.build())
            .unprotected(unprotected)
            .payload(br#"{"targetArtifact":{"mediaType":"m","digest":"sha256:00","size":1}}"#.to_vec())
            .signature(vec![0; 256])
            .build()
            .to_tagged_vec()
            .unwrap()
    }

    #[test]
    fn cose_signed_attributes_and_critical_labels_are_checked() {
        let env = parse(MEDIA_TYPE_COSE, &cose(&[SIGNING_SCHEME], &[])).unwrap();
        assert_eq!((env.algorithm, env.signing_scheme), (SignatureAlgorithm::Ps256, SigningScheme::X509));
        assert_eq!(env.signing_time, Some("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(env.certificate_chain, vec![vec![0x30, 0x00]]);
        let plugin = [("io.cncf.notary.verificationPluginMinVersion", coset::cbor::Value::Text("1.0.0".into()))];
        let err = parse(MEDIA_TYPE_COSE, &cose(&[SIGNING_SCHEME, plugin[0].0], &plugin)).unwrap_err();
        assert_eq!(err.reason(), "UnknownCriticalAttribute");
        let expiry = [(EXPIRY, coset::cbor::Value::Text("tomorrow".into()))];
        let err = parse(MEDIA_TYPE_COSE, &cose(&[SIGNING_SCHEME, EXPIRY], &expiry)).unwrap_err();
        assert_eq!(err.reason(), "InvalidSignedAttribute", "expiry must be an epoch date/time");
        assert_eq!(parse(MEDIA_TYPE_COSE, &cose(&[], &[])).unwrap_err().reason(), "InvalidSignedAttribute");
        let mut bytes = cose(&[SIGNING_SCHEME], &[]);
        bytes[0] = 0xd1; // tag 17 (COSE_Mac0) instead of 18
        assert_eq!(parse(MEDIA_TYPE_COSE, &bytes).unwrap_err().reason(), "MalformedEnvelope");
    }

    #[test]
    fn payload_needs_a_complete_descriptor() {
        let d = parse_payload(br#"{"targetArtifact":{"mediaType":"m","digest":"sha256:ab","size":3}}"#).unwrap();
        assert_eq!(d, Descriptor { media_type: "m".into(), digest: "sha256:ab".into(), size: 3 });
        for bad in [
            &br#"{}"#[..],
            br#"{"targetArtifact":{"digest":"sha256:ab","size":3}}"#,
            br#"{"targetArtifact":{"mediaType":"m","digest":"sha256:ab","size":-1}}"#,
            b"[]",
        ] {
            assert_eq!(parse_payload(bad).unwrap_err().reason(), "MalformedPayload");
        }
    }
}
