//! The verification seam: one request and one answer shared by every signature format.
//!
//! The scanner, reports, events, quarantine and metrics call a [`Verifier`] and never branch
//! on the format. Each format has a pure core (bytes, trust configuration and `now` in, a
//! typed outcome out) and an I/O shell that implements [`Verifier`]:
//!
//! - Notary v1 (Docker Content Trust): `src/tuf` (core) and `src/engine` (shell);
//! - Notation (Notary Project): `src/notation`;
//! - cosign (Sigstore): `src/cosign`;
//!
//! and the registry client the last two share, `src/oci`.
//!
//! The answer, [`Resolution`], is also the JSON contract of `trustwatch verify -o json`.

use crate::image::ImageRef;
use crate::verdict::Verdict;
use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Instant;

/// The signature formats trustwatch verifies.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum SignatureFormat {
    /// Notary v1 / Docker Content Trust: TUF metadata on a Notary server.
    #[default]
    NotaryV1,
    /// Notary Project signatures (Notation): JWS or COSE envelopes stored in the registry.
    Notation,
    /// Sigstore cosign signatures stored in the registry.
    Cosign,
}

impl SignatureFormat {
    pub const ALL: [SignatureFormat; 3] =
        [SignatureFormat::NotaryV1, SignatureFormat::Notation, SignatureFormat::Cosign];

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFormat::NotaryV1 => "NotaryV1",
            SignatureFormat::Notation => "Notation",
            SignatureFormat::Cosign => "Cosign",
        }
    }

    /// A short name for people: `DCT`, `Notation`, `cosign`.
    pub fn display_name(self) -> &'static str {
        match self {
            SignatureFormat::NotaryV1 => "DCT",
            SignatureFormat::Notation => "Notation",
            SignatureFormat::Cosign => "cosign",
        }
    }
}

impl fmt::Display for SignatureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is asked of a verifier: is this image, as it runs, trusted under this trust root?
#[derive(Debug, Clone)]
pub struct VerifyRequest<'a> {
    /// The image as the pod spec names it, with the digest it runs: `repo:tag@sha256:...`.
    /// Notary v1 resolves the tag and compares digests; Notation and cosign verify the digest.
    pub image: &'a ImageRef,
    /// Required signers. Notary v1: delegation names (`releases`, `targets/qa`). The other
    /// formats take their identities from the trust root and ignore this.
    pub signers: &'a [String],
    pub now: Timestamp,
    /// Verified, but something the verdict rests on expires within this window: ExpiringSoon.
    pub expiry_warning: SignedDuration,
    /// Cached trust data fetched before this instant is refreshed first.
    pub fresh_since: Instant,
}

/// The signing certificate a verdict rests on (Notation, keyless cosign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateEvidence {
    /// The leaf certificate's subject, e.g. `CN=release,O=Acme,ST=WA,C=US`.
    pub subject: String,
    /// The leaf certificate's issuer.
    pub issuer: String,
}

/// The format-agnostic answer of every verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub image: String,
    /// The repository: the Notary GUN, or the registry repository (`registry/path`).
    pub gun: String,
    pub tag: Option<String>,
    /// The signed digest, `sha256:<hex>`, when one was found.
    pub digest: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
    pub message: String,
    /// Who signed: Notary roles (`targets/releases`), a certificate subject, a key name.
    pub signers: Vec<String>,
    /// Earliest expiry in the chain the verdict rests on.
    pub expires: Option<Timestamp>,
    /// What `expires` belongs to: a role, `signature`, `leaf certificate`, `tsa certificate`.
    #[serde(rename = "expiresRole")]
    pub expires_role: Option<String>,
    /// The signature format that produced this answer.
    pub format: SignatureFormat,
    /// The signing certificate (Notation, keyless cosign).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateEvidence>,
    /// When the signature was made, as the signature claims it (or as its timestamp proves).
    #[serde(rename = "signingTime", skip_serializing_if = "Option::is_none")]
    pub signing_time: Option<Timestamp>,
    /// Whether a trusted timestamp authority countersigned the signing time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamped: Option<bool>,
    /// Checks that failed but were only logged (verification levels, revocation unknown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Notation and cosign verify digests: when the image's tag now points to another digest
    /// in the registry, that digest (informational, not a failure).
    #[serde(rename = "tagDigest", skip_serializing_if = "Option::is_none")]
    pub tag_digest: Option<String>,
}

impl Resolution {
    /// An answer with no evidence yet: the image, its repository, the verdict and why.
    pub fn new(
        format: SignatureFormat,
        image: &ImageRef,
        verdict: Verdict,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Resolution {
        Resolution {
            image: image.to_string(),
            gun: image.gun(),
            tag: image.tag.clone(),
            digest: None,
            verdict,
            reason: reason.into(),
            message: message.into(),
            signers: vec![],
            expires: None,
            expires_role: None,
            format,
            certificate: None,
            signing_time: None,
            timestamped: None,
            warnings: vec![],
            tag_digest: None,
        }
    }

    /// An answer about an image reference that does not parse (no repository to name).
    pub fn unparsed(
        format: SignatureFormat,
        image: &str,
        verdict: Verdict,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Resolution {
        let placeholder = ImageRef { registry: String::new(), repository: String::new(), tag: None, digest: None };
        let mut r = Resolution::new(format, &placeholder, verdict, reason, message);
        r.image = image.to_string();
        r.gun = String::new();
        r
    }

    /// The same answer with another verdict, reason and message.
    pub fn with(mut self, verdict: Verdict, reason: impl Into<String>, message: impl Into<String>) -> Resolution {
        self.verdict = verdict;
        self.reason = reason.into();
        self.message = message.into();
        self
    }
}

/// One trust root's verifier, whatever its format.
pub trait Verifier: Send + Sync {
    fn format(&self) -> SignatureFormat;
    /// Verifies one image. Never fails: an outage is a `TrustDataUnavailable` answer, never a
    /// revocation, a drift or `Unsigned`.
    fn verify<'a>(&'a self, request: VerifyRequest<'a>) -> BoxFuture<'a, Resolution>;
    /// A number that changes whenever an answer of `verify` for the same request could
    /// change other than through the clock, for verifiers that can tell; `None` (the
    /// default) for those that cannot, because they ask a server on every call (registries:
    /// a signature may be attached at any time).
    fn answers_generation(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_strings_are_stable() {
        for f in SignatureFormat::ALL {
            assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{}\"", f.as_str()));
        }
        assert_eq!(SignatureFormat::NotaryV1.display_name(), "DCT");
    }

    #[test]
    fn a_new_resolution_carries_the_image_and_no_evidence() {
        let image = ImageRef::parse("registry.example.com/team/app:v1").unwrap();
        let r = Resolution::new(SignatureFormat::Notation, &image, Verdict::Unsigned, "NoSignature", "none");
        assert_eq!(r.gun, "registry.example.com/team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["format"], "Notation");
        assert!(json.get("certificate").is_none() && json.get("warnings").is_none());
        let r = r.with(Verdict::Verified, "Verified", "ok");
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::Verified, "Verified"));
    }
}
