//! Typed errors of the cosign verifier core: one variant per failed check, with a stable
//! PascalCase [`CosignError::reason`] and the [`Verdict`] it means.
//!
//! Verdicts, in the shared vocabulary of `src/verdict.rs`:
//! - no signature at all: `Unsigned`;
//! - a payload for another digest, a payload or bundle that is not what it must be, a log
//!   entry for other content: `Tampered` ("hash mismatch ... or inconsistent metadata");
//! - no trusted key verifies the signature: `SignerMissing` ("did not sign the digest"). For
//!   keyed cosign signatures a signature by another key and one over altered payload bytes
//!   cannot be told apart offline (the payload names no key), and both mean that no trusted
//!   signer signed these bytes. Where the artifact names its key (a bundle's key hint) and
//!   that key is trusted, a failing signature is `SignatureInvalid`;
//! - a valid signature without a required annotation, or with another value: `SignerMissing`
//!   (the signature holds, so not `SignatureInvalid`; the required signer did not sign that
//!   claim);
//! - a transparency log entry that is missing (when a log key is pinned) or whose promise does
//!   not verify: `SignatureInvalid` ("signatures ... do not hold").

use crate::verdict::Verdict;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CosignError {
    #[error("no cosign signature found for {digest}")]
    NoSignature { digest: String },
    #[error("the signature in {artifact} is for {signed}, not for the running digest {running}")]
    DigestMismatch { artifact: String, signed: String, running: String },
    #[error("the signature in {artifact} is not valid: {detail}")]
    SignatureInvalid { artifact: String, detail: String },
    #[error("no trusted key ({keys}) verifies the signature in {artifact}")]
    KeyMismatch { artifact: String, keys: String },
    #[error("the signature in {artifact} has no annotation {key:?}, which the policy requires")]
    AnnotationMissing { artifact: String, key: String },
    #[error("the signature in {artifact} has annotation {key}={found:?}, the policy requires {expected:?}")]
    AnnotationMismatch { artifact: String, key: String, expected: String, found: String },
    #[error("the payload in {artifact} is malformed: {detail}")]
    MalformedPayload { artifact: String, detail: String },
    #[error("the Sigstore bundle in {artifact} is malformed: {detail}")]
    MalformedBundle { artifact: String, detail: String },
    #[error("the signature in {artifact} has no transparency log entry, and the trust configuration requires one")]
    TlogEntryMissing { artifact: String },
    #[error("the transparency log entry of {artifact} does not verify: {detail}")]
    TlogEntryInvalid { artifact: String, detail: String },
    #[error("the transparency log entry of {artifact} is for other content: {detail}")]
    TlogBodyMismatch { artifact: String, detail: String },
}

impl CosignError {
    /// Stable PascalCase reason, for conditions, events, metric labels and JSON output.
    pub fn reason(&self) -> &'static str {
        match self {
            CosignError::NoSignature { .. } => "NoSignature",
            CosignError::DigestMismatch { .. } => "DigestMismatch",
            CosignError::SignatureInvalid { .. } => "SignatureInvalid",
            CosignError::KeyMismatch { .. } => "KeyMismatch",
            CosignError::AnnotationMissing { .. } => "AnnotationMissing",
            CosignError::AnnotationMismatch { .. } => "AnnotationMismatch",
            CosignError::MalformedPayload { .. } => "MalformedPayload",
            CosignError::MalformedBundle { .. } => "MalformedBundle",
            CosignError::TlogEntryMissing { .. } => "TlogEntryMissing",
            CosignError::TlogEntryInvalid { .. } => "TlogEntryInvalid",
            CosignError::TlogBodyMismatch { .. } => "TlogBodyMismatch",
        }
    }

    pub fn verdict(&self) -> Verdict {
        match self {
            CosignError::NoSignature { .. } => Verdict::Unsigned,
            CosignError::DigestMismatch { .. }
            | CosignError::MalformedPayload { .. }
            | CosignError::MalformedBundle { .. }
            | CosignError::TlogBodyMismatch { .. } => Verdict::Tampered,
            CosignError::SignatureInvalid { .. }
            | CosignError::TlogEntryMissing { .. }
            | CosignError::TlogEntryInvalid { .. } => Verdict::SignatureInvalid,
            CosignError::KeyMismatch { .. }
            | CosignError::AnnotationMissing { .. }
            | CosignError::AnnotationMismatch { .. } => Verdict::SignerMissing,
        }
    }

    /// How far verification got before this check failed: among failures with the same
    /// verdict, the one that got furthest explains best why the image is not verified.
    pub(crate) fn progress(&self) -> u8 {
        match self {
            CosignError::NoSignature { .. } => 0,
            CosignError::MalformedBundle { .. } => 1,
            CosignError::KeyMismatch { .. } => 2,
            CosignError::SignatureInvalid { .. } => 3,
            CosignError::MalformedPayload { .. } => 4,
            CosignError::DigestMismatch { .. } => 5,
            CosignError::AnnotationMissing { .. } => 6,
            CosignError::AnnotationMismatch { .. } => 7,
            CosignError::TlogEntryMissing { .. } => 8,
            CosignError::TlogEntryInvalid { .. } => 9,
            CosignError::TlogBodyMismatch { .. } => 10,
        }
    }
}
