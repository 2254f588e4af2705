//! cosign (Sigstore) signatures: a pure verifier core ([`verify`]) and its I/O shell
//! ([`CosignVerifier`]), over the shared OCI client (`crate::oci`).
//!
//! Layouts read (sigstore/cosign `specs/SIGNATURE_SPEC.md`, protobuf-specs `bundle.proto`):
//! - the classic `sha256-<hex>.sig` tag: an image manifest whose
//!   `application/vnd.dev.cosign.simplesigning.v1+json` layers are simple-signing payloads,
//!   signed in the `dev.cosignproject.cosign/signature` layer annotation, with an optional
//!   Rekor bundle (`dev.sigstore.cosign/bundle`);
//! - the same manifests as OCI referrers (`application/vnd.dev.cosign.artifact.sig.v1+json`,
//!   what `cosign sign --registry-referrers-mode=oci-1-1` writes);
//! - Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`) as OCI referrers, as
//!   `cosign sign --new-bundle-format` writes them: a DSSE envelope over an in-toto
//!   statement whose subject is the image digest.
//!
//! Keys: ECDSA P-256, RSA (PKCS#1 v1.5 or PSS) and Ed25519 PEM public keys. Keyless (Fulcio
//! certificates) is not supported: a signature that only a certificate verifies is a
//! `KeyMismatch`. Transparency log entries are verified offline when log keys are pinned: the
//! signed entry timestamp (inclusion promise) and, in bundles, the inclusion proof with its
//! signed checkpoint; the entry body must be the signature being verified.

pub mod attestation;
pub mod error;
pub mod keyless;
pub mod keys;
pub mod payload;
pub mod rekor;
pub mod sct;
pub mod shell;
pub mod sigstore_tuf;
pub mod trusted_root;
pub mod verify;

pub use error::CosignError;
pub use keys::{CosignKey, KeyScheme, LogKey};
pub use shell::CosignVerifier;
pub use verify::{
    ArtifactKind, SignatureArtifact, TrustConfig, Verified, VerifiedSignature, resolution, select, verify,
    verify_artifact,
};
