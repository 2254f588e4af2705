//! The Notary v1 / TUF verifier core. No kube, no network, no clock: it takes bytes (through
//! the [`Fetch`] trait), the previously trusted state and `now`, and returns verified trust
//! data or a typed [`TufError`].

pub mod cjson;
pub mod error;
pub mod keys;
pub mod metadata;
pub mod repo;
pub mod updater;

pub use error::{FetchError, TufError};
pub use keys::PinnedKey;
pub use metadata::signature_verifications;
pub use repo::{DelegationOutcome, DelegationState, Expiry, RemovedSigner, TrustMemory, TrustedRepo};
pub use updater::{Anchors, Fetch, Refreshed, refresh_within, update};
