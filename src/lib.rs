//! trustwatch: continuous image-trust validation for Kubernetes.
//!
//! Layout:
//! - [`tuf`]: the Notary v1 / TUF verifier core (pure: bytes, trusted state and `now` in,
//!   verified targets or a typed error out).
//! - [`image`]: image references and Notary GUNs.
//! - [`engine`]: resolving an image (tag, digest, required signers) to a [`verdict::Verdict`].
//! - [`notation`]: the Notation (Notary Project) signature verifier core (pure: envelope
//!   bytes, trust policy and store, revocation data and `now` in, a verdict with evidence out)
//!   and its registry shell, [`notation::NotationVerifier`].
//! - [`fetch`]: the HTTP side: TLS, auth, bounded reads, incremental refresh per repository.
//! - [`verifier`]: the verification seam every signature format implements.
//! - [`oci`]: the OCI registry client the Notation and cosign verifiers share.
//! - [`cosign`]: the cosign verifier (pure core and registry shell).
//! - [`crd`]: the `trustwatch.dev/v1alpha1` custom resources.
//! - [`cli`]: the `trustwatch` command line.
#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod cli;
pub mod controller;
pub mod cosign;
pub mod crd;
pub mod engine;
pub mod fetch;
pub mod image;
pub mod import;
pub mod notation;
pub mod oci;
pub mod scanner;
pub mod telemetry;
pub mod tuf;
pub mod verdict;
pub mod verifier;
