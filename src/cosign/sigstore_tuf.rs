//! Sigstore's trusted root from a TUF repository: Sigstore's own (public-good) or a private
//! mirror, read with `tough` (the TUF 1.0 client of awslabs) over trustwatch's HTTP client, and
//! parsed by [`super::trusted_root`].
//!
//! Sigstore client specification, "Trust root": clients obtain `trusted_root.json` as a target
//! of Sigstore's TUF repository, starting from a `root.json` shipped with (here: pinned in) the
//! client, and follow the TUF specification's update workflow. The rules this module relies on
//! `tough` for, each of the TUF specification v1.0 (section "Detailed client workflow"):
//! - 5.3 root rotation: version N+1 of the root is accepted only when signed by a threshold of
//!   the keys of version N and of its own keys; the update repeats until no newer root exists;
//! - 5.3.5, 5.4.3, 5.5.5, 5.6.4 rollback: a role's version must not be lower than the trusted one;
//! - 5.3.10, 5.4.4, 5.5.6, 5.6.5 freeze: metadata past its `expires` is refused;
//! - 5.7 targets: a target is used only when its length and hashes match the targets metadata.
//!
//! The datastore keeps the last trusted metadata on disk between refreshes, so rollback
//! protection holds across fetches of one process (and across restarts when the directory
//! survives them). What cannot be fetched is an outage (`TrustDataUnavailable`), never a
//! verdict against an image; expired metadata is `TrustDataExpired`; a rollback, a bad
//! signature or a target that does not match its hashes is `Tampered`.

use super::trusted_root::TrustedRoot;
use crate::verdict::Verdict;
use bytes::Bytes;
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;
use tough::{IntoVec, RepositoryLoader, TargetName, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// The name of the target that holds the trusted root in Sigstore's TUF repositories.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// The most bytes one TUF response may have (metadata or the trusted root).
const MAX_BODY: usize = 4 << 20;

/// Where a trusted root comes from: the mirror's metadata URL (its `targets/` directory
/// beside it, as Sigstore lays them out), the pinned initial `root.json`, and the directory
/// that keeps what was last trusted.
#[derive(Debug, Clone)]
pub struct TufMirror {
    pub url: Url,
    pub root_json: Vec<u8>,
    pub datastore: PathBuf,
}

/// A trusted root read through TUF, with the TUF versions it was read at.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub trusted_root: TrustedRoot,
    /// The bytes of `trusted_root.json`, as its targets metadata hashes them.
    pub bytes: Vec<u8>,
    pub root_version: u64,
    pub targets_version: u64,
    /// The earliest `expires` of the top-level metadata: the repository must be refreshed
    /// before then.
    pub expires: jiff::Timestamp,
}

/// Typed failures, with stable reasons.
#[derive(Debug, Error)]
pub enum TufMirrorError {
    #[error("the TUF mirror cannot be read: {0}")]
    Unreachable(String),
    #[error(
        "the TUF repository's {role} metadata is expired (TUF 5.x freeze protection); the mirror must be refreshed by its owner"
    )]
    Expired { role: String },
    #[error("the TUF repository offers older metadata than trusted before (rollback): {0}")]
    Rollback(String),
    #[error("the TUF repository's metadata does not verify: {0}")]
    Invalid(String),
    #[error("the TUF repository has no target {TRUSTED_ROOT_TARGET:?}")]
    NoTrustedRoot,
    #[error("the TUF repository's {TRUSTED_ROOT_TARGET} is not a valid Sigstore trusted root: {0}")]
    BadTrustedRoot(String),
    #[error("the pinned root.json or the mirror URL is not usable: {0}")]
    Config(String),
}

impl TufMirrorError {
    /// Stable PascalCase reason, for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            TufMirrorError::Unreachable(_) => "TufMirrorUnreachable",
            TufMirrorError::Expired { .. } => "TufMetadataExpired",
            TufMirrorError::Rollback(_) => "TufRollback",
            TufMirrorError::Invalid(_) => "TufMetadataInvalid",
            TufMirrorError::NoTrustedRoot => "TufNoTrustedRoot",
            TufMirrorError::BadTrustedRoot(_) => "TrustedRootInvalid",
            TufMirrorError::Config(_) => "TufMirrorConfig",
        }
    }

    /// The shared verdict of what depended on the trusted root: an outage is never a verdict
    /// against an image.
    pub fn verdict(&self) -> Verdict {
        match self {
            TufMirrorError::Unreachable(_) | TufMirrorError::Config(_) => Verdict::TrustDataUnavailable,
            TufMirrorError::Expired { .. } => Verdict::TrustDataExpired,
            TufMirrorError::Rollback(_)
            | TufMirrorError::Invalid(_)
            | TufMirrorError::NoTrustedRoot
            | TufMirrorError::BadTrustedRoot(_) => Verdict::Tampered,
        }
    }
}

/// Whether a tough error is, or wraps, a target or metadata that did not match what the
/// trusted metadata says of it: tough reports a hash mismatch found while a download streams
/// as a transport error around it, which must not read as an outage.
fn is_mismatch(e: &(dyn std::error::Error + 'static)) -> bool {
    use tough::error::Error as E;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<E>()
            && matches!(t, E::HashMismatch { .. } | E::MaxSizeExceeded { .. })
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn classify(e: tough::error::Error) -> TufMirrorError {
    use tough::error::Error as E;
    let text = e.to_string();
    if is_mismatch(&e) {
        return TufMirrorError::Invalid(text);
    }
    match e {
        E::Transport { .. } => TufMirrorError::Unreachable(text),
        E::ExpiredMetadata { role, .. } => TufMirrorError::Expired { role: role.to_string() },
        E::OlderMetadata { .. }
        | E::OlderSnapshotInTimestamp { .. }
        | E::SnapshotRoleRollback { .. }
        | E::VersionMismatch { .. } => TufMirrorError::Rollback(text),
        E::DatastoreInit { .. }
        | E::DatastoreCreate { .. }
        | E::DatastoreOpen { .. }
        | E::DatastoreRemove { .. }
        | E::DatastoreSerialize { .. }
        | E::DirCreate { .. } => TufMirrorError::Config(text),
        _ => TufMirrorError::Invalid(text),
    }
}

/// `tough`'s transport over reqwest: bounded bodies, a timeout, 404 and 403 as "not found"
/// (TUF 5.3.2: a missing `N+1.root.json` ends the root update; S3-style mirrors answer 403).
#[derive(Debug, Clone)]
struct HttpGet {
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl Transport for HttpGet {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let other = |e: String| TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), e);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TransportError::new(TransportErrorKind::UnsupportedUrlScheme, url.as_str()));
        }
        let response = self.client.get(url.clone()).send().await.map_err(|e| other(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            403 | 404 => return Err(TransportError::new(TransportErrorKind::FileNotFound, url.as_str())),
            code => return Err(other(format!("HTTP {code}"))),
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| other(e.to_string()))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(other(format!("more than {MAX_BODY} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let one: Result<Bytes, TransportError> = Ok(Bytes::from(body));
        Ok(Box::pin(futures::stream::iter([one])))
    }
}

/// Reads `trusted_root.json` from the mirror, following TUF's update workflow from the pinned
/// root (or from what the datastore trusted last).
pub async fn fetch_trusted_root(mirror: &TufMirror, client: reqwest::Client) -> Result<Fetched, TufMirrorError> {
    let base = if mirror.url.path().ends_with('/') {
        mirror.url.clone()
    } else {
        Url::parse(&format!("{}/", mirror.url)).map_err(|e| TufMirrorError::Config(e.to_string()))?
    };
    let targets = base.join("targets/").map_err(|e| TufMirrorError::Config(e.to_string()))?;
    std::fs::create_dir_all(&mirror.datastore)
        .map_err(|e| TufMirrorError::Config(format!("{}: {e}", mirror.datastore.display())))?;
    let repo = RepositoryLoader::new(&mirror.root_json, base, targets)
        .transport(HttpGet { client })
        .datastore(mirror.datastore.clone())
        .load()
        .await
        .map_err(classify)?;
    let name = TargetName::new(TRUSTED_ROOT_TARGET).map_err(|e| TufMirrorError::Config(e.to_string()))?;
    let stream = repo.read_target(&name).await.map_err(classify)?.ok_or(TufMirrorError::NoTrustedRoot)?;
    // tough checks the length and hashes while the stream is read: only a complete, matching
    // target comes out of `into_vec`.
    let bytes = stream.into_vec().await.map_err(classify)?;
    let trusted_root = TrustedRoot::parse(&bytes).map_err(TufMirrorError::BadTrustedRoot)?;
    let expires = [
        repo.root().signed.expires,
        repo.timestamp().signed.expires,
        repo.snapshot().signed.expires,
        repo.targets().signed.expires,
    ]
    .into_iter()
    .min()
    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Ok(Fetched {
        trusted_root,
        bytes,
        root_version: repo.root().signed.version.get(),
        targets_version: repo.targets().signed.version.get(),
        expires,
    })
}

/// A client for TUF mirrors: trustwatch's TLS (ring), a bounded wait.
pub fn http_client() -> Result<reqwest::Client, TufMirrorError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| TufMirrorError::Config(e.to_string()))
}
