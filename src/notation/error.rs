//! Typed errors of the Notation core: one variant per failed check, each carrying what is
//! needed to diagnose it, a stable PascalCase [`NotationError::reason`] and the
//! [`NotationError::verdict`] an image gets when its signature fails this way.

use crate::verdict::Verdict;
use thiserror::Error;

/// The validations of the trust policy specification ("Signature Verification details").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    Integrity,
    Authenticity,
    AuthenticTimestamp,
    Expiry,
    Revocation,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Integrity => "integrity",
            Check::Authenticity => "authenticity",
            Check::AuthenticTimestamp => "authenticTimestamp",
            Check::Expiry => "expiry",
            Check::Revocation => "revocation",
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed check of Notation signature verification, or an unusable configuration.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum NotationError {
    // ---- configuration: trust policy and trust store ----
    #[error("trust policy document is invalid: {detail}")]
    InvalidTrustPolicy { detail: String },
    #[error("no trust policy applies to {repository}")]
    NoApplicablePolicy { repository: String },
    #[error("trust store is invalid: {detail}")]
    InvalidTrustStore { detail: String },

    // ---- integrity ----
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    EnvelopeTooLarge { what: String, size: u64, limit: u64 },
    #[error("signature manifest is malformed: {detail}")]
    MalformedSignatureManifest { detail: String },
    #[error("signature envelope blob is {found}, but the signature manifest names {expected}")]
    EnvelopeDigestMismatch { expected: String, found: String },
    #[error("signature envelope media type {media_type:?} is not supported")]
    UnsupportedEnvelopeType { media_type: String },
    #[error("{format} signature envelope is malformed: {detail}")]
    MalformedEnvelope { format: &'static str, detail: String },
    #[error("signed attribute {attribute} is invalid: {detail}")]
    InvalidSignedAttribute { attribute: String, detail: String },
    #[error("critical attribute {attribute:?} is not supported by this verifier")]
    UnknownCriticalAttribute { attribute: String },
    #[error("unsupported signature algorithm: {detail}")]
    UnsupportedAlgorithm { detail: String },
    #[error("envelope algorithm {header} does not match the signing key ({key})")]
    AlgorithmMismatch { header: String, key: String },
    #[error("the envelope signature does not verify with the signing certificate's key: {detail}")]
    SignatureMismatch { detail: String },
    #[error("certificate {index} of the chain does not parse: {detail}")]
    MalformedCertificate { index: usize, detail: String },
    #[error("certificate chain is invalid at certificate {index} ({subject}): {detail}")]
    InvalidCertificateChain { index: usize, subject: String, detail: String },
    #[error("signature payload is malformed: {detail}")]
    MalformedPayload { detail: String },
    #[error("signature is for digest {found}, not for the running digest {expected}")]
    TargetDigestMismatch { expected: String, found: String },
    #[error("signed {field} is {found}, but the artifact's is {expected}")]
    TargetDescriptorMismatch { field: &'static str, expected: String, found: String },

    // ---- authenticity ----
    #[error("certificate chain of {subject} does not lead to a certificate in a trusted {store_type} store")]
    UntrustedCertificateChain { store_type: &'static str, subject: String },
    #[error("signing certificate subject {subject:?} matches no trusted identity")]
    IdentityNotTrusted { subject: String },

    // ---- expiry ----
    #[error("signature expired at {expiry}")]
    SignatureExpired { expiry: String },

    // ---- authentic timestamp ----
    #[error("{role} certificate {subject} expired at {not_after} (checked at {at})")]
    CertificateExpired { role: String, subject: String, not_after: String, at: String },
    #[error("{role} certificate {subject} is not valid before {not_before} (checked at {at})")]
    CertificateNotYetValid { role: String, subject: String, not_before: String, at: String },
    #[error("timestamp countersignature is invalid: {detail}")]
    InvalidTimestamp { detail: String },
    #[error("timestamp countersignature is not from a trusted TSA: {detail}")]
    UntrustedTimestamp { detail: String },
    #[error("signing scheme notary.x509.signingAuthority requires an authentic signing time")]
    MissingAuthenticSigningTime,

    // ---- revocation ----
    #[error("certificate {subject} (serial {serial}) is revoked since {revoked_at}")]
    CertificateRevoked { index: usize, subject: String, serial: String, revoked_at: String },
    #[error("revocation status of certificate {subject} is unknown: {detail}")]
    RevocationUnknown { index: usize, subject: String, detail: String },
}

impl NotationError {
    /// Stable PascalCase reason, used in conditions, events, metric labels and JSON output.
    pub fn reason(&self) -> &'static str {
        match self {
            NotationError::InvalidTrustPolicy { .. } => "InvalidTrustPolicy",
            NotationError::NoApplicablePolicy { .. } => "NoApplicableTrustPolicy",
            NotationError::InvalidTrustStore { .. } => "InvalidTrustStore",
            NotationError::EnvelopeTooLarge { .. } => "EnvelopeTooLarge",
            NotationError::MalformedSignatureManifest { .. } => "MalformedSignatureManifest",
            NotationError::EnvelopeDigestMismatch { .. } => "EnvelopeDigestMismatch",
            NotationError::UnsupportedEnvelopeType { .. } => "UnsupportedEnvelopeType",
            NotationError::MalformedEnvelope { .. } => "MalformedEnvelope",
            NotationError::InvalidSignedAttribute { .. } => "InvalidSignedAttribute",
            NotationError::UnknownCriticalAttribute { .. } => "UnknownCriticalAttribute",
            NotationError::UnsupportedAlgorithm { .. } => "UnsupportedAlgorithm",
            NotationError::AlgorithmMismatch { .. } => "AlgorithmMismatch",
            NotationError::SignatureMismatch { .. } => "SignatureMismatch",
            NotationError::MalformedCertificate { .. } => "MalformedCertificate",
            NotationError::InvalidCertificateChain { .. } => "InvalidCertificateChain",
            NotationError::MalformedPayload { .. } => "MalformedPayload",
            NotationError::TargetDigestMismatch { .. } => "TargetDigestMismatch",
            NotationError::TargetDescriptorMismatch { .. } => "TargetDescriptorMismatch",
            NotationError::UntrustedCertificateChain { .. } => "UntrustedCertificateChain",
            NotationError::IdentityNotTrusted { .. } => "IdentityNotTrusted",
            NotationError::SignatureExpired { .. } => "SignatureExpired",
            NotationError::CertificateExpired { .. } => "CertificateExpired",
            NotationError::CertificateNotYetValid { .. } => "CertificateNotYetValid",
            NotationError::InvalidTimestamp { .. } => "InvalidTimestamp",
            NotationError::UntrustedTimestamp { .. } => "UntrustedTimestamp",
            NotationError::MissingAuthenticSigningTime => "MissingAuthenticSigningTime",
            NotationError::CertificateRevoked { .. } => "CertificateRevoked",
            NotationError::RevocationUnknown { .. } => "RevocationUnknown",
        }
    }

    /// The verdict an image gets when its signature fails this way.
    pub fn verdict(&self) -> Verdict {
        match self {
            // A configuration that cannot be used: no trust data to verify with. Never Verified,
            // never blamed on the image.
            NotationError::InvalidTrustPolicy { .. } | NotationError::InvalidTrustStore { .. } => {
                Verdict::TrustDataUnavailable
            }
            // "If an applicable trust policy for the artifact URI cannot be found, fail
            // signature verification": the image is outside every policy.
            NotationError::NoApplicablePolicy { .. } => Verdict::NotCovered,
            // The bytes arrived and are wrong: too large, unparsable, or about another artifact.
            NotationError::EnvelopeTooLarge { .. }
            | NotationError::MalformedSignatureManifest { .. }
            | NotationError::EnvelopeDigestMismatch { .. }
            | NotationError::UnsupportedEnvelopeType { .. }
            | NotationError::MalformedEnvelope { .. }
            | NotationError::MalformedCertificate { .. }
            | NotationError::MalformedPayload { .. }
            | NotationError::TargetDigestMismatch { .. }
            | NotationError::TargetDescriptorMismatch { .. } => Verdict::Tampered,
            NotationError::InvalidSignedAttribute { .. }
            | NotationError::UnknownCriticalAttribute { .. }
            | NotationError::UnsupportedAlgorithm { .. }
            | NotationError::AlgorithmMismatch { .. }
            | NotationError::SignatureMismatch { .. }
            | NotationError::InvalidCertificateChain { .. }
            | NotationError::UntrustedCertificateChain { .. }
            | NotationError::IdentityNotTrusted { .. }
            | NotationError::CertificateNotYetValid { .. }
            | NotationError::InvalidTimestamp { .. }
            | NotationError::UntrustedTimestamp { .. }
            | NotationError::MissingAuthenticSigningTime => Verdict::SignatureInvalid,
            NotationError::SignatureExpired { .. } | NotationError::CertificateExpired { .. } => {
                Verdict::TrustDataExpired
            }
            NotationError::CertificateRevoked { .. } => Verdict::SignerRevoked,
            NotationError::RevocationUnknown { .. } => Verdict::TrustDataUnavailable,
        }
    }

    /// The validation this failure belongs to (configuration errors count as integrity: they
    /// are always fatal).
    pub fn check(&self) -> Check {
        match self {
            NotationError::UntrustedCertificateChain { .. } | NotationError::IdentityNotTrusted { .. } => {
                Check::Authenticity
            }
            NotationError::SignatureExpired { .. } => Check::Expiry,
            NotationError::CertificateExpired { .. }
            | NotationError::CertificateNotYetValid { .. }
            | NotationError::InvalidTimestamp { .. }
            | NotationError::UntrustedTimestamp { .. }
            | NotationError::MissingAuthenticSigningTime => Check::AuthenticTimestamp,
            NotationError::CertificateRevoked { .. } | NotationError::RevocationUnknown { .. } => Check::Revocation,
            _ => Check::Integrity,
        }
    }
}
