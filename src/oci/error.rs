//! Typed errors of the registry client, each with a stable PascalCase [`OciError::reason`].

use crate::verdict::Verdict;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum OciError {
    #[error("invalid registry client configuration: {detail}")]
    Config { detail: String },
    #[error("request to {url} timed out after {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("cannot connect to registry {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error("TLS failure talking to {host}: {detail}")]
    Tls { host: String, detail: String },
    #[error("registry {host} refused access to {path} (HTTP {status}): {detail}")]
    Auth { host: String, path: String, status: u16, detail: String },
    #[error("registry {host} is rate limiting {path}: still HTTP 429 after {retries} retries{}", retry_after_text(*.retry_after_secs))]
    RateLimited { host: String, path: String, retries: u32, retry_after_secs: Option<u64> },
    #[error("registry {host} answered HTTP {status} for {path}")]
    Server { host: String, path: String, status: u16 },
    #[error("registry {host} answered an unexpected HTTP {status} for {path}")]
    UnexpectedStatus { host: String, path: String, status: u16 },
    #[error("{what} from {path} is larger than the {limit}-byte limit")]
    TooLarge { path: String, what: &'static str, limit: u64 },
    #[error("{what} {path} has digest {found}, expected {expected}")]
    DigestMismatch { path: String, what: &'static str, expected: String, found: String },
    #[error("{what} {path} is {found} bytes, its descriptor says {expected}")]
    SizeMismatch { path: String, what: &'static str, expected: u64, found: u64 },
    #[error("{what} from {path} is malformed: {detail}")]
    Malformed { path: String, what: &'static str, detail: String },
    #[error("reading {path} failed: {detail}")]
    Body { path: String, detail: String },
}

fn retry_after_text(secs: Option<u64>) -> String {
    secs.map(|s| format!(" (Retry-After {s}s)")).unwrap_or_default()
}

impl OciError {
    /// Stable PascalCase reason, for conditions, events, metric labels and JSON output.
    pub fn reason(&self) -> &'static str {
        match self {
            OciError::Config { .. } => "InvalidConfiguration",
            OciError::Timeout { .. } => "Timeout",
            OciError::Connect { .. } => "ConnectionFailed",
            OciError::Tls { .. } => "TlsError",
            OciError::Auth { .. } => "AuthenticationFailed",
            OciError::RateLimited { .. } => "RateLimited",
            OciError::Server { .. } => "ServerError",
            OciError::UnexpectedStatus { .. } => "UnexpectedStatus",
            OciError::TooLarge { .. } => "TooLarge",
            OciError::DigestMismatch { .. } => "DigestMismatch",
            OciError::SizeMismatch { .. } => "SizeMismatch",
            OciError::Malformed { .. } => "MalformedResponse",
            OciError::Body { .. } => "ReadFailed",
        }
    }

    /// The verdict of an image whose signatures could not be read this way. Bytes that
    /// arrived and were wrong (too large, not what their digest says, not a manifest) are
    /// Tampered; everything else is an outage.
    pub fn verdict(&self) -> Verdict {
        match self {
            OciError::TooLarge { .. }
            | OciError::DigestMismatch { .. }
            | OciError::SizeMismatch { .. }
            | OciError::Malformed { .. } => Verdict::Tampered,
            OciError::Config { .. }
            | OciError::Timeout { .. }
            | OciError::Connect { .. }
            | OciError::Tls { .. }
            | OciError::Auth { .. }
            | OciError::RateLimited { .. }
            | OciError::Server { .. }
            | OciError::UnexpectedStatus { .. }
            | OciError::Body { .. } => Verdict::TrustDataUnavailable,
        }
    }

    /// True for outages (the verifiers answer TrustDataUnavailable).
    pub fn is_unavailable(&self) -> bool {
        self.verdict() == Verdict::TrustDataUnavailable
    }
}

/// Why some signature data could not be read (the Notation and cosign shells): the verdict it
/// leads to, a stable reason and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub verdict: crate::verdict::Verdict,
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn from_oci(what: &str, e: &OciError) -> Problem {
        Problem { verdict: e.verdict(), reason: e.reason(), message: format!("{what}: {e}") }
    }
}
