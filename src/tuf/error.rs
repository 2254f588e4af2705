//! Typed errors of the verifier core: one variant per failed check, each carrying what is
//! needed to diagnose it, and a stable PascalCase [`TufError::reason`].

use crate::verdict::Verdict;
use thiserror::Error;

/// Why trust data could not be fetched. Produced by a [`super::Fetch`] implementation.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("request for {path} timed out after {secs}s")]
    Timeout { path: String, secs: u64 },
    #[error("cannot connect to the Notary server: {detail}")]
    Connect { detail: String },
    #[error("TLS failure talking to the Notary server: {detail}")]
    Tls { detail: String },
    #[error("the Notary server refused our credentials for {path} (HTTP {status}): {detail}")]
    Auth { path: String, status: u16, detail: String },
    #[error("the Notary server answered HTTP {status} for {path}")]
    Status { path: String, status: u16 },
    #[error("{path} is larger than the {limit}-byte limit")]
    TooLarge { path: String, limit: u64 },
    #[error("reading {path} failed: {detail}")]
    Body { path: String, detail: String },
}

impl FetchError {
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Timeout { .. } => "Timeout",
            FetchError::Connect { .. } => "ConnectionFailed",
            FetchError::Tls { .. } => "TlsError",
            FetchError::Auth { .. } => "AuthenticationFailed",
            FetchError::Status { .. } => "ServerError",
            FetchError::TooLarge { .. } => "MetadataTooLarge",
            FetchError::Body { .. } => "ReadFailed",
        }
    }
}

/// A failed check of the TUF client workflow.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TufError {
    #[error("no trust data: the server has no {role} metadata for this repository")]
    NotFound { role: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{role} metadata is {size} bytes, over the {limit}-byte limit")]
    TooLarge { role: String, size: u64, limit: u64 },
    #[error("{role} metadata is malformed: {detail}")]
    Malformed { role: String, detail: String },
    #[error("{role} metadata has _type {found:?}, expected {expected:?}")]
    WrongType { role: String, expected: String, found: String },
    #[error("{role} metadata length is {found} bytes, but {listed_in} lists {expected}")]
    LengthMismatch { role: String, listed_in: String, expected: u64, found: u64 },
    #[error("{role} metadata {algorithm} hash is {found}, but {listed_in} lists {expected}")]
    HashMismatch { role: String, listed_in: String, algorithm: String, expected: String, found: String },
    #[error("{role} is not listed in {listed_in}")]
    NotListed { role: String, listed_in: String },
    #[error("{role} metadata declares no usable hash in {listed_in}")]
    NoHash { role: String, listed_in: String },
    #[error("{role} metadata has {valid} valid signature(s) from authorized keys, needs {threshold}")]
    SignatureThreshold { role: String, threshold: u64, valid: u64, unauthorized_keyids: Vec<String> },
    #[error("{role} is signed only by keys that are no longer authorized (key IDs {keyids:?})")]
    SignedByRevokedKeys { role: String, keyids: Vec<String> },
    #[error("root version {version} is not signed by the pinned root keys ({detail})")]
    UntrustedRoot { version: u64, detail: String },
    #[error("{role} version {new} is older than the trusted version {trusted} (rollback)")]
    Rollback { role: String, trusted: u64, new: u64 },
    #[error("root version {found} was served where version {expected} was requested")]
    RootVersionMismatch { expected: u64, found: u64 },
    #[error("{role} metadata expired at {expires}")]
    Expired { role: String, expires: String },
    #[error("certificate of key {keyid} used by {role} expired at {expires}")]
    CertificateExpired { role: String, keyid: String, expires: String },
    #[error("key {keyid} is invalid: {detail}")]
    InvalidKey { keyid: String, detail: String },
    #[error("{role} metadata is not valid: {detail}")]
    InvalidMetadata { role: String, detail: String },
    #[error(
        "root version {version} does not anchor {gun}: no root certificate names it (no valid leaf \
         certificates; the root certificates name {names:?})"
    )]
    GunMismatch { version: u64, gun: String, names: Vec<String> },
    #[error("certificate of key {keyid} used by {role} is not valid before {not_before}")]
    CertificateNotYetValid { role: String, keyid: String, not_before: String },
    #[error(
        "{role} is still delegated, but the snapshot no longer lists it (version {version} was trusted): \
         its signatures were withdrawn without a new delegation, a rollback"
    )]
    RoleVanished { role: String, version: u64 },
    #[error(
        "the server no longer has {role} metadata for this repository, which was verified before \
         (the server lost its data or a proxy misroutes: not evidence that the images are unsigned)"
    )]
    Vanished { role: String },
    #[error("{role} would bring the trust data of the repository to {needed} bytes, over its {limit}-byte budget")]
    RepositoryTooLarge { role: String, limit: u64, needed: u64 },
    #[error("{role} cannot be verified: {parent}, which delegates it, failed: {cause}")]
    DelegatorFailed { role: String, parent: String, cause: Box<TufError> },
}

impl TufError {
    /// Stable PascalCase reason, used in conditions, events, metric labels and JSON output.
    pub fn reason(&self) -> &'static str {
        match self {
            TufError::NotFound { .. } => "NoTrustData",
            TufError::Fetch(f) => f.reason(),
            TufError::TooLarge { .. } => "MetadataTooLarge",
            TufError::Malformed { .. } => "MalformedMetadata",
            TufError::WrongType { .. } => "WrongMetadataType",
            TufError::LengthMismatch { .. } => "LengthMismatch",
            TufError::HashMismatch { .. } => "HashMismatch",
            TufError::NotListed { .. } => "MetadataNotListed",
            TufError::NoHash { .. } => "NoHash",
            TufError::SignatureThreshold { .. } => "SignatureThreshold",
            TufError::SignedByRevokedKeys { .. } => "SignedByRevokedKeys",
            TufError::UntrustedRoot { .. } => "UntrustedRoot",
            TufError::Rollback { .. } => "Rollback",
            TufError::RootVersionMismatch { .. } => "RootVersionMismatch",
            TufError::Expired { .. } => "Expired",
            TufError::CertificateExpired { .. } => "CertificateExpired",
            TufError::InvalidKey { .. } => "InvalidKey",
            TufError::InvalidMetadata { .. } => "InvalidMetadata",
            TufError::GunMismatch { .. } => "GunMismatch",
            TufError::CertificateNotYetValid { .. } => "CertificateNotYetValid",
            TufError::RoleVanished { .. } => "RoleVanished",
            TufError::Vanished { .. } => "TrustDataVanished",
            TufError::RepositoryTooLarge { .. } => "RepositoryTooLarge",
            TufError::DelegatorFailed { cause, .. } => cause.reason(),
        }
    }

    /// True when the trust data could not be obtained (network, server, vanished data), as
    /// opposed to data that arrived and failed a check.
    pub fn is_outage(&self) -> bool {
        self.verdict() == Verdict::TrustDataUnavailable
    }

    /// The verdict an image gets when its repository (or the role it needs) fails this way.
    pub fn verdict(&self) -> Verdict {
        match self {
            TufError::NotFound { .. } => Verdict::Unsigned,
            // A body that never ends or is far too large is an attack on the client, not an
            // outage: the bytes arrived and were wrong.
            TufError::Fetch(FetchError::TooLarge { .. }) => Verdict::Tampered,
            TufError::Fetch(_) => Verdict::TrustDataUnavailable,
            TufError::TooLarge { .. }
            | TufError::Malformed { .. }
            | TufError::WrongType { .. }
            | TufError::LengthMismatch { .. }
            | TufError::HashMismatch { .. }
            | TufError::NotListed { .. }
            | TufError::NoHash { .. }
            | TufError::Rollback { .. }
            | TufError::RootVersionMismatch { .. }
            | TufError::InvalidMetadata { .. }
            | TufError::RoleVanished { .. }
            | TufError::RepositoryTooLarge { .. } => Verdict::Tampered,
            TufError::SignatureThreshold { .. }
            | TufError::UntrustedRoot { .. }
            | TufError::InvalidKey { .. }
            | TufError::GunMismatch { .. }
            | TufError::CertificateNotYetValid { .. } => Verdict::SignatureInvalid,
            TufError::SignedByRevokedKeys { .. } => Verdict::SignerRevoked,
            TufError::Expired { .. } | TufError::CertificateExpired { .. } => Verdict::TrustDataExpired,
            // Trust data verified before and now missing. Chosen over Tampered: a 404 is not
            // signed, anyone between us and the server can answer it (like a 503), and its
            // real causes are operational (a server that restarted with memory storage, a
            // restored database, an ingress path change). It proves nothing about the images,
            // so it must not read "unsigned"; the remembered versions stay, so the data cannot
            // come back older, and `onUnavailable: Fail` makes it fail closed.
            TufError::Vanished { .. } => Verdict::TrustDataUnavailable,
            TufError::DelegatorFailed { cause, .. } => cause.verdict(),
        }
    }
}
