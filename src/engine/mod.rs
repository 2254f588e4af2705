//! The trust engine: verified trust data per repository, refreshed incrementally with one
//! refresh at a time per repository however many callers ask, and images resolved against it.

pub mod resolve;

use crate::image::ImageRef;
use crate::tuf::{self, Anchors, Fetch, FetchError, Refreshed, TrustMemory, TrustedRepo, TufError};
use jiff::Timestamp;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use resolve::{Resolution, ResolveOptions, from_error, normalize_signer, resolve};

/// Where trust data comes from: one Notary server (the HTTP client implements it; tests and
/// fuzzing can serve bytes from memory).
pub trait Source: Send + Sync {
    /// GET `/v2/<gun>/_trust/tuf/<name>`, reading at most `limit` bytes; `Ok(None)` on 404.
    fn fetch(
        &self,
        gun: &str,
        name: &str,
        limit: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send;
}

struct ForGun<'a, S> {
    source: &'a S,
    gun: &'a str,
}

impl<S: Source> Fetch for ForGun<'_, S> {
    fn fetch(&self, name: &str, limit: u64) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
        self.source.fetch(self.gun, name, limit)
    }
}

/// The latest refresh of one repository.
#[derive(Clone)]
pub struct RepoView {
    /// The verified state, or why the last refresh failed.
    pub result: Result<Arc<TrustedRepo>, TufError>,
    /// What to persist (versions, signers), also after a failed refresh. Shared with the
    /// repository's slot: a refresh that changed nothing copies no memory.
    pub memory: Arc<TrustMemory>,
    pub refreshed_at: Timestamp,
}

#[derive(Default)]
struct Slot {
    trusted: Option<Arc<TrustedRepo>>,
    memory: Arc<TrustMemory>,
    last: Option<(Instant, RepoView)>,
}

/// Trust data of the repositories of one trust root (one server, one set of pinned keys).
pub struct TrustEngine<S> {
    source: S,
    anchors: Anchors,
    /// Bytes of trust data one repository may hold, all documents together.
    budget: u64,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// Bumped whenever a repository's view changes other than by a refresh that kept the same
    /// state: see [`TrustEngine::generation`].
    generation: AtomicU64,
}

impl<S: Source> TrustEngine<S> {
    pub fn new(source: S, anchors: Anchors) -> Self {
        TrustEngine {
            source,
            anchors,
            budget: tuf::metadata::limits::REPOSITORY_BUDGET,
            slots: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Another memory budget per repository than [`tuf::metadata::limits::REPOSITORY_BUDGET`].
    pub fn with_repository_budget(mut self, bytes: u64) -> Self {
        self.budget = bytes;
        self
    }

    pub fn anchors(&self) -> &Anchors {
        &self.anchors
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// A number that changes whenever an answer of [`Self::verify`] could change other than
    /// through the clock: a repository refreshed into a new state, a refresh that failed
    /// (failures are never taken for unchanged), a repository seen for the first time. A
    /// refresh that kept the same state (`Refreshed::Unchanged`) leaves it as it is. So when
    /// it reads the same before two scans, every image resolves against the same states, and
    /// only the clock can tell them apart (expiries, warning windows).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Seeds what a previous process trusted (read back from status), so rollback
    /// protection and revocation history survive a restart.
    pub async fn remember(&self, gun: &str, memory: impl Into<Arc<TrustMemory>>) {
        let slot = self.slot(gun);
        let mut s = slot.lock().await;
        if s.trusted.is_none() {
            s.memory = memory.into();
        }
    }

    /// The repositories this engine has been asked about (those in use).
    pub fn repositories(&self) -> Vec<String> {
        let mut guns: Vec<String> = self.slots.lock().expect("slot map poisoned").keys().cloned().collect();
        guns.sort();
        guns
    }

    /// Marks `gun` as in use (its trust data is refreshed and reported from now on).
    pub fn repository_slot(&self, gun: &str) {
        self.slot(gun);
    }

    fn slot(&self, gun: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().expect("slot map poisoned");
        slots.entry(gun.to_string()).or_default().clone()
    }

    /// Returns trust data for `gun` refreshed no earlier than `fresh_since`. Callers that
    /// arrive while a refresh runs wait for it and share its result.
    pub async fn repository(&self, gun: &str, now: Timestamp, fresh_since: Instant) -> RepoView {
        self.with_view(gun, now, fresh_since, RepoView::clone).await
    }

    /// [`Self::repository`], read in place: `read` sees the view under the repository's lock
    /// (so a scan resolving 1,000 images copies no trust data and no memory).
    async fn with_view<R>(
        &self,
        gun: &str,
        now: Timestamp,
        fresh_since: Instant,
        read: impl FnOnce(&RepoView) -> R,
    ) -> R {
        let slot = self.slot(gun);
        let mut s = slot.lock().await;
        if let Some((started, view)) = &s.last
            && *started >= fresh_since
        {
            return read(view);
        }
        let started = Instant::now();
        let fetch = ForGun { source: &self.source, gun };
        let result =
            tuf::refresh_within(&fetch, gun, s.trusted.as_deref(), &s.memory, &self.anchors, now, self.budget).await;
        let result = match (result, &s.trusted) {
            // Nothing new and every check still passes: the same state, neither rebuilt nor copied.
            (Ok(Refreshed::Unchanged), Some(same)) => Ok(same.clone()),
            (Ok(Refreshed::Unchanged), None) => unreachable!("an update without a previous state is never unchanged"),
            (Ok(Refreshed::New(repo)), _) => {
                let repo: Arc<TrustedRepo> = Arc::from(repo);
                s.memory = Arc::new(repo.memory());
                s.trusted = Some(repo.clone());
                Ok(repo)
            }
            // Nothing trusted is lost: the previous state stays for the next attempt.
            (Err(e), _) => Err(e),
        };
        let kept = matches!((&s.last, &result), (Some((_, RepoView { result: Ok(old), .. })), Ok(new)) if Arc::ptr_eq(old, new));
        if !kept {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        let view = RepoView { result, memory: s.memory.clone(), refreshed_at: now };
        let out = read(&view);
        s.last = Some((started, view));
        out
    }

    /// Refreshes the image's repository and resolves the image against it.
    pub async fn verify(&self, image: &ImageRef, opts: &ResolveOptions, fresh_since: Instant) -> Resolution {
        self.with_view(&image.gun(), opts.now, fresh_since, |view| match &view.result {
            Ok(repo) => resolve(repo, image, opts),
            Err(e) => from_error(image, e),
        })
        .await
    }
}

/// Notary v1 behind the verification seam: refresh the image's repository (when older than
/// `fresh_since`), then resolve the tag and compare the running digest.
impl<S: Source + 'static> crate::verifier::Verifier for TrustEngine<S> {
    fn format(&self) -> crate::verifier::SignatureFormat {
        crate::verifier::SignatureFormat::NotaryV1
    }

    fn verify<'a>(&'a self, request: crate::verifier::VerifyRequest<'a>) -> futures::future::BoxFuture<'a, Resolution> {
        Box::pin(async move {
            let opts = ResolveOptions {
                signers: request.signers.to_vec(),
                now: request.now,
                expiry_warning: request.expiry_warning,
            };
            self.verify(request.image, &opts, request.fresh_since).await
        })
    }

    fn answers_generation(&self) -> Option<u64> {
        Some(self.generation())
    }
}

/// `3d4h`, `5m`, `12s`: the two largest units of a duration (negative durations read "0s").
pub fn human_duration(d: jiff::SignedDuration) -> String {
    let full = crate::crd::format_duration(std::time::Duration::from_secs(d.as_secs().max(0) as u64));
    let end = full.char_indices().filter(|(_, c)| c.is_ascii_alphabetic()).nth(1).map_or(full.len(), |(i, _)| i + 1);
    full[..end].to_string()
}

/// Parses `30s`, `5m`, `1h30m`, `7d` (the CRD duration format) into a signed duration.
pub fn parse_duration(s: &str) -> Result<jiff::SignedDuration, String> {
    let d = crate::crd::parse_duration(s)?;
    jiff::SignedDuration::try_from(d).map_err(|e| format!("duration {s:?} is too large: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_bare_numbers() {
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86_400);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5_400);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn human_durations_are_short() {
        assert_eq!(human_duration(jiff::SignedDuration::from_secs(3 * 86_400 + 4 * 3_600 + 5)), "3d4h");
        assert_eq!(human_duration(jiff::SignedDuration::from_secs(-5)), "0s");
    }
}
