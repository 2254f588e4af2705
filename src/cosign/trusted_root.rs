//! A Sigstore trusted root (`trusted_root.json`, protobuf-specs
//! `dev.sigstore.trustroot.v1.TrustedRoot` in its JSON form): the Fulcio certificate
//! authorities, the transparency logs, the certificate transparency logs and the timestamp
//! authorities a keyless signature is verified against, each with the time range it is valid
//! for.
//!
//! protobuf-specs `sigstore_trustroot.proto`: "TrustedRoot describes the client's complete
//! set of trusted entities. How the TrustedRoot is populated is not specified, but can be a
//! combination of many sources such as TUF repositories, files on disk etc." Parsing is pure:
//! bytes in, typed material out; how the bytes are fetched is the shell's.

use crate::notation::x509::Cert;
use base64::Engine as _;
use jiff::Timestamp;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Largest trusted root accepted, bytes (the public-good one is about 8 KiB).
pub const MAX_TRUSTED_ROOT_BYTES: usize = 1024 * 1024;

/// protobuf-specs `TimeRange`: "The time range is closed and includes both the start and end
/// times, (i.e., [start, end]). End is optional to be able to represent a period that has
/// started but not ended."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidFor {
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

impl ValidFor {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && self.end.is_none_or(|end| t <= end)
    }
}

/// A Fulcio certificate authority: its chain (protobuf-specs `CertificateAuthority.cert_chain`,
/// "The root certificate MUST be self-signed, and so is the last element"), issuing CA first.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub uri: String,
    pub chain: Vec<Cert>,
    pub valid_for: ValidFor,
}

/// A transparency or certificate transparency log key (protobuf-specs
/// `TransparencyLogInstance`). `log_id` is the SHA-256 of the DER SubjectPublicKeyInfo
/// (RFC 6962 §3.2: "log_id is the SHA-256 hash of the log's public key").
#[derive(Debug, Clone)]
pub struct LogInstance {
    pub base_url: String,
    pub spki_der: Vec<u8>,
    pub log_id: [u8; 32],
    pub valid_for: ValidFor,
}

/// The parsed trusted root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub certificate_authorities: Vec<CertificateAuthority>,
    pub tlogs: Vec<LogInstance>,
    pub ctlogs: Vec<LogInstance>,
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: String,
    valid_for: Option<RawRange>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    valid_for: Option<RawRange>,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct RawRange {
    start: Option<Timestamp>,
    end: Option<Timestamp>,
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("{what}: rawBytes is not base64: {e}"))
}

/// protobuf-specs: `valid_for` is REQUIRED on a CA and on a log key ("The time the key was
/// valid for"); a range without a start cannot be honoured, so it is an error.
fn range(what: &str, r: Option<RawRange>) -> Result<ValidFor, String> {
    let r = r.ok_or_else(|| format!("{what}: validFor is missing"))?;
    let start = r.start.ok_or_else(|| format!("{what}: validFor.start is missing"))?;
    if let Some(end) = r.end
        && end < start
    {
        return Err(format!("{what}: validFor ends ({end}) before it starts ({start})"));
    }
    Ok(ValidFor { start, end: r.end })
}

fn log(kind: &str, i: usize, l: RawLog) -> Result<LogInstance, String> {
    let what = format!("{kind}[{i}]");
    let spki_der = b64(&what, &l.public_key.raw_bytes)?;
    if spki_der.is_empty() {
        return Err(format!("{what}: publicKey.rawBytes is empty"));
    }
    let valid_for = range(&what, l.public_key.valid_for)?;
    Ok(LogInstance { base_url: l.base_url, log_id: Sha256::digest(&spki_der).into(), spki_der, valid_for })
}

fn ca(kind: &str, i: usize, c: RawCa) -> Result<CertificateAuthority, String> {
    let what = format!("{kind}[{i}]");
    if c.cert_chain.certificates.is_empty() {
        return Err(format!("{what}: certChain has no certificates"));
    }
    let chain = c
        .cert_chain
        .certificates
        .iter()
        .enumerate()
        .map(|(j, rc)| Cert::from_der(&b64(&what, &rc.raw_bytes)?).map_err(|e| format!("{what}: certificate {j}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let valid_for = range(&what, c.valid_for)?;
    Ok(CertificateAuthority { uri: c.uri, chain, valid_for })
}

impl TrustedRoot {
    /// Parses `trusted_root.json`. Every entry must be well formed: a trusted root with an
    /// unreadable entry is rejected whole, never used in part.
    pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, String> {
        if bytes.len() > MAX_TRUSTED_ROOT_BYTES {
            return Err(format!("{} bytes, over the {MAX_TRUSTED_ROOT_BYTES}-byte limit", bytes.len()));
        }
        let raw: RawRoot = serde_json::from_slice(bytes).map_err(|e| format!("not a trusted root: {e}"))?;
        // protobuf-specs: media_type "MUST be application/vnd.dev.sigstore.trustedroot.v0.1+json
        // when encoded as JSON" (the older spelling ...trustedroot+json;version=0.1 is accepted).
        if let Some(m) = &raw.media_type
            && !m.starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(format!("mediaType {m:?} is not a Sigstore trusted root"));
        }
        let root = TrustedRoot {
            tlogs: raw.tlogs.into_iter().enumerate().map(|(i, l)| log("tlogs", i, l)).collect::<Result<_, _>>()?,
            ctlogs: raw.ctlogs.into_iter().enumerate().map(|(i, l)| log("ctlogs", i, l)).collect::<Result<_, _>>()?,
            certificate_authorities: raw
                .certificate_authorities
                .into_iter()
                .enumerate()
                .map(|(i, c)| ca("certificateAuthorities", i, c))
                .collect::<Result<_, _>>()?,
            timestamp_authorities: raw
                .timestamp_authorities
                .into_iter()
                .enumerate()
                .map(|(i, c)| ca("timestampAuthorities", i, c))
                .collect::<Result<_, _>>()?,
        };
        if root.certificate_authorities.is_empty() {
            return Err("the trusted root lists no certificate authority (Fulcio)".into());
        }
        Ok(root)
    }
}
