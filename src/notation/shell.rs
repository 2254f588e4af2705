//! The Notation verifier's I/O shell: finds the signatures of the digest a pod runs with the
//! OCI client, verifies them with the pure core ([`super::verify_signature`]), fetches the
//! revocation data the core asks for (OCSP and CRLs over HTTP), and answers a
//! [`Resolution`].
//!
//! ```text
//! // The operator, from a TrustRoot's spec.notation (one policy statement for every image of
//! // the rule; the CRD holds the certificates as PEM):
//! let trust = TrustConfig {
//!     policy_name: root_name,
//!     actions: Actions::with_overrides(level, &overrides)?,   // or Actions::of_level(level)
//!     verify_timestamp: VerifyTimestamp::Always,
//!     ca: Cert::parse_many(ca_pem)?, signing_authority: vec![], tsa: Cert::parse_many(tsa_pem)?,
//!     trusted_identities: TrustedIdentities::parse(&spec.trusted_identities)?,
//! };
//! // spec.notation.revocationTimeout bounds one OCSP request or CRL download:
//! let options = ShellOptions { revocation_timeout: t, ocsp_timeout: t, ..Default::default() };
//! let verifier = NotationVerifier::new(client, NotationTrustSource::Config(trust), options);
//! // The CLI, from notation's own files (the policy is picked per repository):
//! let verifier = NotationVerifier::new(client, NotationTrustSource::from_config_dir(dir)?, options);
//! ```
//!
//! Per request (the running digest, and the tag when the pod spec names one):
//!
//! 1. the signature manifests: referrers of artifact type `application/vnd.cncf.notary.signature`
//!    (the union of the referrers API and the referrers tag schema; the client does it);
//! 2. the descriptor of the manifest being verified (GET by digest: content-addressed, cached);
//! 3. per signature manifest (cached by digest in the client): the envelope blob, verified by
//!    the core up to revocation. That result is cached by (policy, target, envelope digest)
//!    until the earliest expiry it rests on, so an unchanged signature is downloaded and
//!    verified once, however many pods and refreshes;
//! 4. revocation: OCSP first (POST `application/ocsp-request`), CRLs when OCSP does not decide
//!    (GET), with timeouts and bounded bodies; responses cached by URL until their nextUpdate
//!    (bounded caches, re-fetched at least every [`ShellOptions::revocation_max_age`]);
//! 5. the best outcome over all signatures ([`super::best_outcome`]).
//!
//! The answer for a digest is computed once per refresh ([`VerifyRequest::fresh_since`]):
//! 10,000 pods running one digest cost one referrers lookup. A warm refresh with unchanged
//! trust data costs one referrers lookup per digest (the API request and the tag-schema GET)
//! and one HEAD per tag named by pods; no envelope download and no signature verification.
//!
//! Outcomes: no signature for the digest is `Unsigned` (`NoSignature`); a registry, CRL or
//! OCSP responder that cannot be reached is `TrustDataUnavailable`, never `Unsigned`; one
//! verified signature is enough.
//!
//! No pre-filter on the `io.cncf.notary.x509chain.thumbprint#S256` annotation: it is not
//! signed, notation itself does not filter on it (notation-go verifies every listed
//! signature), and a manifest whose annotation is empty or wrong still carries a signature
//! that verifies. Skipping on it could skip the one valid signature; since envelopes are
//! content-addressed and verified once, the filter would save one download per signature,
//! ever.

use super::envelope::MAX_ENVELOPE_BYTES;
use super::error::Check;
use super::policy::MAX_POLICY_BYTES;
use super::{
    Checked, Descriptor, Fetched, NotationError, Outcome, RevocationData, RevocationRequest, SIGNATURE_ARTIFACT_TYPE,
    TrustConfig, TrustPolicyDocument, TrustStore, best_outcome, load_notation_config, parse_signature_manifest,
    to_resolution, verify_signature,
};
use crate::image::ImageRef;
use crate::oci::Problem;
use crate::oci::{OciError, RegistryClient, Repository, RequestCounts};
use crate::verdict::Verdict;
use crate::verifier::{Resolution, SignatureFormat, Verifier, VerifyRequest};
use futures::StreamExt;
use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// notation's CRL download timeout.
pub const DEFAULT_REVOCATION_TIMEOUT: Duration = Duration::from_secs(5);
/// notation's OCSP request timeout.
pub const DEFAULT_OCSP_TIMEOUT: Duration = Duration::from_secs(2);
/// notation verify's default `--max-signatures`.
pub const DEFAULT_MAX_SIGNATURES: usize = 100;

const MAX_CACHED_ANSWERS: usize = 65_536;
const MAX_CACHED_TAGS: usize = 65_536;
const MAX_FLIGHTS: usize = 1_024;

/// How the shell fetches and caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOptions {
    /// Whole-request timeout of one CRL download (notation: 5 s). A CRL that cannot be
    /// fetched in time is "revocation unavailable".
    pub revocation_timeout: Duration,
    /// Whole-request timeout of one OCSP request (notation: 2 s). A TrustRoot's
    /// `revocationTimeout` sets both this and `revocation_timeout`.
    pub ocsp_timeout: Duration,
    /// Most CRLs cached (by URL), and their total size.
    pub crl_cache_entries: usize,
    pub crl_cache_bytes: usize,
    /// Most OCSP responses cached (by responder and certificate).
    pub ocsp_cache_entries: usize,
    /// How long an OCSP response without nextUpdate is reused.
    pub ocsp_ttl: Duration,
    /// A cached CRL or OCSP response is fetched again after this long even before its
    /// nextUpdate, so that an early re-issue (a new revocation) is seen; while the new fetch
    /// fails, the cached copy is used until its nextUpdate.
    pub revocation_max_age: Duration,
    /// Most signatures examined per digest (notation verify: `--max-signatures 100`).
    pub max_signatures: usize,
    /// Most per-envelope verification results cached.
    pub verification_cache_entries: usize,
}

impl Default for ShellOptions {
    fn default() -> Self {
        ShellOptions {
            revocation_timeout: DEFAULT_REVOCATION_TIMEOUT,
            ocsp_timeout: DEFAULT_OCSP_TIMEOUT,
            crl_cache_entries: 256,
            crl_cache_bytes: 64 << 20,
            ocsp_cache_entries: 4_096,
            ocsp_ttl: Duration::from_secs(300),
            revocation_max_age: Duration::from_secs(3_600),
            max_signatures: DEFAULT_MAX_SIGNATURES,
            verification_cache_entries: 16_384,
        }
    }
}

/// Where the trust policy comes from.
#[derive(Debug, Clone)]
pub enum NotationTrustSource {
    /// One resolved trust policy statement, used for every image the verifier is asked
    /// about: what the operator builds from a TrustRoot's `spec.notation` (certificates as
    /// PEM lists, no files).
    Config(TrustConfig),
    /// A notation configuration (`trustpolicy.json` and the trust store): the policy of each
    /// image is picked by its repository with [`TrustPolicyDocument::policy_for`], as
    /// `notation verify` does.
    Notation { policy: TrustPolicyDocument, store: TrustStore },
}

impl NotationTrustSource {
    /// `$XDG_CONFIG_HOME/notation`: `trustpolicy.json` (or `trustpolicy.oci.json`) and
    /// `truststore/`, read like notation reads them ([`load_notation_config`]).
    pub fn from_config_dir(dir: &Path) -> Result<NotationTrustSource, NotationError> {
        let (policy, store) = load_notation_config(dir)?;
        Ok(NotationTrustSource::Notation { policy, store })
    }

    /// A trust policy file and a trust store directory (the one holding `x509/`).
    pub fn from_files(policy_file: &Path, trust_store: &Path) -> Result<NotationTrustSource, NotationError> {
        let invalid = |detail: String| NotationError::InvalidTrustPolicy { detail };
        let meta = std::fs::metadata(policy_file).map_err(|e| invalid(format!("{}: {e}", policy_file.display())))?;
        if meta.len() > MAX_POLICY_BYTES as u64 {
            return Err(invalid(format!("{} is larger than {MAX_POLICY_BYTES} bytes", policy_file.display())));
        }
        let bytes = std::fs::read(policy_file).map_err(|e| invalid(format!("{}: {e}", policy_file.display())))?;
        let policy = TrustPolicyDocument::from_json(&bytes).map_err(|e| match e {
            NotationError::InvalidTrustPolicy { detail } => invalid(format!("{}: {detail}", policy_file.display())),
            other => other,
        })?;
        let store = TrustStore::load_dir(trust_store)?;
        Ok(NotationTrustSource::Notation { policy, store })
    }
}

/// The trust configurations of a source, resolved once: one for `Config`, one per policy
/// statement for a notation configuration (an unusable one fails only the images it covers).
struct Policies {
    policy: Option<TrustPolicyDocument>,
    resolved: Vec<Result<Arc<TrustConfig>, NotationError>>,
}

impl Policies {
    fn new(source: NotationTrustSource) -> Policies {
        match source {
            NotationTrustSource::Config(c) => Policies { policy: None, resolved: vec![Ok(Arc::new(c))] },
            NotationTrustSource::Notation { policy, store } => {
                let resolved =
                    policy.policies.iter().map(|p| TrustConfig::from_policy(p, &store).map(Arc::new)).collect();
                Policies { policy: Some(policy), resolved }
            }
        }
    }

    /// The configuration for a fully qualified repository and its index (a cache key).
    fn for_repository(&self, repository: &str) -> Result<(usize, Arc<TrustConfig>), NotationError> {
        let index = match &self.policy {
            None => 0,
            Some(doc) => {
                let p = doc.policy_for(repository)?;
                doc.policies.iter().position(|q| q.name == p.name).unwrap_or(0)
            }
        };
        self.resolved[index].clone().map(|c| (index, c))
    }
}

/// What was found for one digest, before it is mapped to an answer.
#[derive(Debug, Clone)]
enum Evaluated {
    /// Nothing to verify against: the signatures could not be listed, or the registry does
    /// not serve the manifest being verified.
    Failed(Problem),
    Signatures(Box<Found>),
}

/// The signatures listed for a digest and what became of them.
#[derive(Debug, Clone)]
struct Found {
    /// The best outcome of the signatures that could be read; `None` when none could.
    best: Option<Outcome>,
    /// Signatures that could not be read.
    problems: Vec<Problem>,
    listed: usize,
    examined: usize,
}

impl Evaluated {
    fn found(best: Option<Outcome>, problems: Vec<Problem>, listed: usize, examined: usize) -> Evaluated {
        Evaluated::Signatures(Box::new(Found { best, problems, listed, examined }))
    }
}

/// A verification up to revocation, reusable while `now` stays in `[at, until)`.
struct CachedCheck {
    at: Timestamp,
    until: Timestamp,
    result: Result<Checked, NotationError>,
}

/// A cached CRL or OCSP response.
struct RevEntry {
    bytes: Arc<[u8]>,
    fetched: Instant,
    /// Insertion order: the oldest entry is evicted first.
    seq: u64,
    /// nextUpdate (or, for an OCSP response without one, the short TTL).
    valid_until: Timestamp,
}

#[derive(Default)]
struct RevEntries {
    map: HashMap<String, RevEntry>,
    bytes: usize,
    seq: u64,
}

/// A bounded cache of revocation responses, with one fetch at a time per key.
struct RevocationCache {
    entries: Mutex<RevEntries>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    max_entries: usize,
    max_bytes: usize,
}

impl RevocationCache {
    fn new(max_entries: usize, max_bytes: usize) -> RevocationCache {
        RevocationCache {
            entries: Mutex::new(RevEntries::default()),
            flights: Mutex::new(HashMap::new()),
            max_entries,
            max_bytes,
        }
    }

    /// Bytes fetched less than `max_age` ago and still valid at `now`.
    fn fresh(&self, key: &str, now: Timestamp, max_age: Duration) -> Option<Arc<[u8]>> {
        let g = self.entries.lock().expect("revocation cache poisoned");
        g.map.get(key).filter(|e| e.fetched.elapsed() < max_age && now <= e.valid_until).map(|e| e.bytes.clone())
    }

    /// Bytes still valid at `now`, however old: what is used while a new fetch fails.
    fn still_valid(&self, key: &str, now: Timestamp) -> Option<Arc<[u8]>> {
        let g = self.entries.lock().expect("revocation cache poisoned");
        g.map.get(key).filter(|e| now <= e.valid_until).map(|e| e.bytes.clone())
    }

    fn put(&self, key: &str, bytes: Arc<[u8]>, valid_until: Timestamp) {
        if bytes.len() > self.max_bytes || self.max_entries == 0 {
            return;
        }
        let mut g = self.entries.lock().expect("revocation cache poisoned");
        let g = &mut *g;
        g.seq += 1;
        let size = bytes.len();
        let entry = RevEntry { bytes, fetched: Instant::now(), seq: g.seq, valid_until };
        if let Some(old) = g.map.insert(key.to_string(), entry) {
            g.bytes -= old.bytes.len();
        }
        g.bytes += size;
        while g.map.len() > self.max_entries || g.bytes > self.max_bytes {
            let Some(oldest) = g.map.iter().min_by_key(|(_, e)| e.seq).map(|(k, _)| k.clone()) else { break };
            if let Some(e) = g.map.remove(&oldest) {
                g.bytes -= e.bytes.len();
            }
        }
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut f = self.flights.lock().expect("flights poisoned");
        if f.len() >= MAX_FLIGHTS && !f.contains_key(key) {
            f.retain(|_, m| Arc::strong_count(m) > 1);
        }
        f.entry(key.to_string()).or_default().clone()
    }

    /// (entries, bytes) held now.
    fn usage(&self) -> (usize, usize) {
        let g = self.entries.lock().expect("revocation cache poisoned");
        (g.map.len(), g.bytes)
    }
}

#[derive(Default)]
struct Counters {
    referrer_lookups: AtomicU64,
    signature_manifest_reads: AtomicU64,
    envelope_reads: AtomicU64,
    verifications: AtomicU64,
    verification_cache_hits: AtomicU64,
    answers_reused: AtomicU64,
    tag_lookups: AtomicU64,
    crl_downloads: AtomicU64,
    crl_cache_hits: AtomicU64,
    ocsp_requests: AtomicU64,
    ocsp_cache_hits: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the shell did since it was built (a benchmark takes the difference over a cycle).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotationCounts {
    /// Referrers lookups (each one the referrers API request and the tag-schema GET).
    pub referrer_lookups: u64,
    /// Signature manifests read (through the client's content cache).
    pub signature_manifest_reads: u64,
    /// Envelope blobs read because no cached verification covered them (through the client's
    /// content cache: `registry.blob_get` counts the downloads).
    pub envelope_reads: u64,
    /// Envelopes verified by the core.
    pub verifications: u64,
    /// Envelopes whose cached verification was reused.
    pub verification_cache_hits: u64,
    /// Answers reused within a refresh (another pod, the same digest).
    pub answers_reused: u64,
    /// Tags resolved (HEAD) for `tagDigest` or to find the digest to verify.
    pub tag_lookups: u64,
    pub crl_downloads: u64,
    pub crl_cache_hits: u64,
    pub ocsp_requests: u64,
    pub ocsp_cache_hits: u64,
    /// The registry client's own counters (shared with whoever else uses the client).
    pub registry: RequestCounts,
}

type AnswerSlot = Arc<tokio::sync::Mutex<Option<(Instant, Evaluated)>>>;

/// One Notation trust root over a registry client. Cheap to share behind an `Arc`; the trust
/// configuration is fixed for its lifetime (build a new verifier when it changes: the caches
/// are keyed under it).
pub struct NotationVerifier {
    client: Arc<RegistryClient>,
    policies: Policies,
    options: ShellOptions,
    /// The HTTP client for OCSP and CRLs, built at the first revocation check.
    http: OnceLock<Result<reqwest::Client, String>>,
    answers: Mutex<HashMap<String, AnswerSlot>>,
    tags: Mutex<HashMap<String, (Instant, Option<String>)>>,
    checks: Mutex<HashMap<String, CachedCheck>>,
    crls: RevocationCache,
    ocsp: RevocationCache,
    counters: Counters,
}

impl std::fmt::Debug for NotationVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotationVerifier").field("options", &self.options).finish_non_exhaustive()
    }
}

impl NotationVerifier {
    /// A verifier for one trust source. Nothing is fetched until the first request.
    pub fn new(client: Arc<RegistryClient>, trust: NotationTrustSource, options: ShellOptions) -> NotationVerifier {
        NotationVerifier {
            client,
            policies: Policies::new(trust),
            crls: RevocationCache::new(options.crl_cache_entries, options.crl_cache_bytes),
            ocsp: RevocationCache::new(options.ocsp_cache_entries, 16 << 20),
            options,
            http: OnceLock::new(),
            answers: Mutex::new(HashMap::new()),
            tags: Mutex::new(HashMap::new()),
            checks: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    pub fn options(&self) -> &ShellOptions {
        &self.options
    }

    /// Requests made and caches used so far.
    pub fn counts(&self) -> NotationCounts {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NotationCounts {
            referrer_lookups: l(&c.referrer_lookups),
            signature_manifest_reads: l(&c.signature_manifest_reads),
            envelope_reads: l(&c.envelope_reads),
            verifications: l(&c.verifications),
            verification_cache_hits: l(&c.verification_cache_hits),
            answers_reused: l(&c.answers_reused),
            tag_lookups: l(&c.tag_lookups),
            crl_downloads: l(&c.crl_downloads),
            crl_cache_hits: l(&c.crl_cache_hits),
            ocsp_requests: l(&c.ocsp_requests),
            ocsp_cache_hits: l(&c.ocsp_cache_hits),
            registry: self.client.counts(),
        }
    }

    /// (CRL entries, CRL bytes, OCSP entries) cached now.
    pub fn revocation_cache_usage(&self) -> (usize, usize, usize) {
        let (crls, bytes) = self.crls.usage();
        (crls, bytes, self.ocsp.usage().0)
    }

    /// Verifies `image`: its digest, or the digest its tag names now (resolved first, as
    /// `notation verify` does). When the image names both a tag and a digest, `tag_digest`
    /// says where the tag points now if that is elsewhere (informational). Answers for the
    /// same repository and digest computed after `fresh_since` are reused.
    pub async fn verify_image(
        &self,
        image: &ImageRef,
        now: Timestamp,
        expiry_warning: SignedDuration,
        fresh_since: Instant,
    ) -> Resolution {
        let f = SignatureFormat::Notation;
        let repo = Repository::from_image(image);
        let (key, config) = match self.policies.for_repository(&image.gun()) {
            Ok(c) => c,
            Err(e) => return to_resolution(image, &Err(e), now, expiry_warning),
        };
        // Spec: level `skip` "does not fetch signatures for artifacts and does not perform
        // any signature verification". The core answers a skip before reading anything.
        if config.is_skip() {
            let none = Descriptor { media_type: String::new(), digest: String::new(), size: 0 };
            let skipped =
                verify_signature(&config, &none, "", &[], now).and_then(|c| c.finish(&RevocationData::default(), now));
            return to_resolution(image, &skipped, now, expiry_warning);
        }
        let (digest, resolved_here) = match &image.digest {
            Some(d) => (d.clone(), false),
            None => {
                let tag = image.tag.as_deref().unwrap_or("latest");
                match self.tag_digest(&repo, tag, fresh_since).await {
                    Ok(Some(d)) => (d, true),
                    Ok(None) => {
                        return Resolution::new(
                            f,
                            image,
                            Verdict::Unsigned,
                            "NoSuchImage",
                            format!("{repo}:{tag} does not exist in the registry"),
                        );
                    }
                    Err(e) => {
                        return Resolution::new(f, image, e.verdict(), e.reason(), format!("{repo}:{tag}: {e}"));
                    }
                }
            }
        };
        let pinned = ImageRef { digest: Some(digest.clone()), ..image.clone() };
        let evaluated = self.evaluated(&repo, &digest, key, &config, now, fresh_since).await;
        let mut r = decide(&pinned, &evaluated, now, expiry_warning);
        r.image = image.to_string();
        // Informational only: a failure to resolve the tag never changes the verdict.
        if let (false, Some(tag)) = (resolved_here, &image.tag)
            && let Ok(Some(now_at)) = self.tag_digest(&repo, tag, fresh_since).await
            && now_at != digest
        {
            r.tag_digest = Some(now_at);
        }
        r
    }

    /// The digest `repo:tag` names now (HEAD), once per refresh.
    async fn tag_digest(&self, repo: &Repository, tag: &str, fresh_since: Instant) -> Result<Option<String>, OciError> {
        let key = format!("{repo}:{tag}");
        if let Some((at, d)) = self.tags.lock().expect("tags poisoned").get(&key)
            && *at >= fresh_since
        {
            return Ok(d.clone());
        }
        let started = Instant::now();
        bump(&self.counters.tag_lookups);
        let d = self.client.head_manifest(repo, tag).await?.map(|d| d.digest);
        let mut tags = self.tags.lock().expect("tags poisoned");
        if tags.len() >= MAX_CACHED_TAGS {
            tags.clear();
        }
        tags.insert(key, (started, d.clone()));
        Ok(d)
    }

    fn answer_slot(&self, key: &str) -> AnswerSlot {
        let mut answers = self.answers.lock().expect("answers poisoned");
        if answers.len() >= MAX_CACHED_ANSWERS && !answers.contains_key(key) {
            answers.retain(|_, s| Arc::strong_count(s) > 1);
            if answers.len() >= MAX_CACHED_ANSWERS {
                answers.clear();
            }
        }
        answers.entry(key.to_string()).or_default().clone()
    }

    /// The evaluation of one digest, once per refresh however many callers ask at once.
    async fn evaluated(
        &self,
        repo: &Repository,
        digest: &str,
        key: usize,
        config: &TrustConfig,
        now: Timestamp,
        fresh_since: Instant,
    ) -> Evaluated {
        let slot = self.answer_slot(&format!("{key}|{repo}@{digest}"));
        let mut guard = slot.lock().await;
        if let Some((at, e)) = guard.as_ref()
            && *at >= fresh_since
        {
            bump(&self.counters.answers_reused);
            return e.clone();
        }
        // The instant the signatures are listed: a list taken before `fresh_since` is stale.
        let started = Instant::now();
        let e = self.evaluate(repo, digest, key, config, now).await;
        *guard = Some((started, e.clone()));
        e
    }

    async fn evaluate(
        &self,
        repo: &Repository,
        digest: &str,
        key: usize,
        config: &TrustConfig,
        now: Timestamp,
    ) -> Evaluated {
        bump(&self.counters.referrer_lookups);
        // "the descriptor of the manifest being verified ... as the registry serves it":
        // fetched by digest, so it is verified and cached; asked with the signatures (one
        // round trip), used only when there are some.
        let (listed, subject) = futures::join!(
            self.client.referrers(repo, digest, &[SIGNATURE_ARTIFACT_TYPE]),
            self.client.get_manifest(repo, digest)
        );
        let listed = match listed {
            Ok(r) => r.descriptors,
            Err(e) => return Evaluated::Failed(Problem::from_oci(&format!("signatures of {repo}@{digest}"), &e)),
        };
        if listed.is_empty() {
            return Evaluated::found(None, vec![], 0, 0);
        }
        let target = match subject {
            Ok(Some(m)) => Descriptor {
                media_type: m.descriptor.media_type.clone(),
                digest: digest.to_string(),
                size: m.descriptor.size,
            },
            Ok(None) => {
                return Evaluated::Failed(Problem {
                    verdict: Verdict::Unsigned,
                    reason: "ManifestNotFound",
                    message: format!("{repo}@{digest} has signatures listed but the registry does not serve it"),
                });
            }
            Err(e) => return Evaluated::Failed(Problem::from_oci(&format!("{repo}@{digest}"), &e)),
        };
        let examined = listed.len().min(self.options.max_signatures);
        let mut outcomes = vec![];
        let mut problems = vec![];
        for d in listed.iter().take(examined) {
            match self.signature_outcome(repo, &d.digest, &target, key, config, now).await {
                Ok(o) => outcomes.push(o),
                Err(p) => problems.push(p),
            }
        }
        Evaluated::found(best_outcome(outcomes), problems, listed.len(), examined)
    }

    /// One signature manifest: its envelope verified (or the cached verification) and its
    /// revocation checked.
    async fn signature_outcome(
        &self,
        repo: &Repository,
        manifest_digest: &str,
        target: &Descriptor,
        key: usize,
        config: &TrustConfig,
        now: Timestamp,
    ) -> Result<Outcome, Problem> {
        let what = format!("signature manifest {repo}@{manifest_digest}");
        bump(&self.counters.signature_manifest_reads);
        let manifest = match self.client.get_manifest(repo, manifest_digest).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Err(Problem {
                    verdict: Verdict::TrustDataUnavailable,
                    reason: "SignatureManifestMissing",
                    message: format!("{what} is listed but not served"),
                });
            }
            Err(e) => return Err(Problem::from_oci(&what, &e)),
        };
        let sig = match parse_signature_manifest(&manifest.bytes) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let cache_key = format!(
            "{key}|{}|{}|{}|{}|{}",
            target.digest, target.size, target.media_type, sig.envelope.media_type, sig.envelope.digest
        );
        let cached = self.cached_check(&cache_key, now);
        let checked = match cached {
            Some(c) => {
                bump(&self.counters.verification_cache_hits);
                c
            }
            None => {
                bump(&self.counters.envelope_reads);
                let layer = crate::oci::Descriptor {
                    media_type: sig.envelope.media_type.clone(),
                    digest: sig.envelope.digest.clone(),
                    size: sig.envelope.size,
                    artifact_type: None,
                    annotations: Default::default(),
                };
                let envelope = format!("signature envelope {repo}@{}", sig.envelope.digest);
                let blob = match self.client.get_blob(repo, &layer, MAX_ENVELOPE_BYTES as u64).await {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        return Err(Problem {
                            verdict: Verdict::TrustDataUnavailable,
                            reason: "SignatureEnvelopeMissing",
                            message: format!("{envelope} (of {what}) is not served"),
                        });
                    }
                    Err(e) => return Err(Problem::from_oci(&envelope, &e)),
                };
                bump(&self.counters.verifications);
                let result = sig
                    .check_envelope(&blob)
                    .and_then(|()| verify_signature(config, target, &sig.envelope.media_type, &blob, now));
                self.store_check(cache_key, &result, now);
                result
            }
        };
        match checked {
            Ok(c) => Ok(self.finish(c, now).await),
            Err(e) => Ok(Err(e)),
        }
    }

    fn cached_check(&self, key: &str, now: Timestamp) -> Option<Result<Checked, NotationError>> {
        let checks = self.checks.lock().expect("checks poisoned");
        checks.get(key).filter(|c| c.at <= now && now < c.until).map(|c| c.result.clone())
    }

    /// A verification stays valid until the earliest expiry it rests on (the signature's
    /// expiry, a certificate's notAfter): only then can a later `now` change it. Failures of
    /// time-dependent checks (expiry, authentic timestamp) are not cached: time may change
    /// them either way.
    fn store_check(&self, key: String, result: &Result<Checked, NotationError>, now: Timestamp) {
        let until = match result {
            Ok(c) => c.verified().expiries.first().map_or(Timestamp::MAX, |e| e.at),
            Err(e) if matches!(e.check(), Check::Expiry | Check::AuthenticTimestamp) => return,
            Err(_) => Timestamp::MAX,
        };
        let mut checks = self.checks.lock().expect("checks poisoned");
        if checks.len() >= self.options.verification_cache_entries {
            checks.clear();
        }
        if self.options.verification_cache_entries > 0 {
            checks.insert(key, CachedCheck { at: now, until, result: result.clone() });
        }
    }

    /// Validate Revocation Status: OCSP first; CRLs when OCSP did not decide (or there is
    /// none). Spec: "If both OCSP URLs and CDP URLs are present, then OCSP is preferred over
    /// CRLs. If revocation status cannot be determined using OCSP because of any reason such
    /// as unavailability then fallback to using CRLs for revocation check."
    async fn finish(&self, checked: Checked, now: Timestamp) -> Outcome {
        if !checked.needs_revocation() {
            return checked.finish(&RevocationData::default(), now);
        }
        let requests: Vec<RevocationRequest> = checked.revocation_requests().to_vec();
        let mut data = RevocationData::default();
        if requests.iter().any(|r| r.ocsp_request.is_some() && !r.ocsp_urls.is_empty()) {
            let answers = futures::future::join_all(requests.iter().map(|r| self.ocsp_for(r, now))).await;
            for (index, fetched) in answers.into_iter().flatten() {
                data.ocsp.insert(index, fetched);
            }
            let first = checked.clone().finish(&data, now);
            if decided(&first) {
                return first;
            }
        }
        let answers = futures::future::join_all(requests.iter().map(|r| self.crl_for(r, now))).await;
        for (url, fetched) in answers.into_iter().flatten() {
            data.crls.insert(url, fetched);
        }
        checked.finish(&data, now)
    }

    /// Spec: "If the certificate contains multiple OCSP URLs, then each URL is invoked in
    /// sequential order, until a 2xx response is received".
    async fn ocsp_for(&self, r: &RevocationRequest, now: Timestamp) -> Vec<((usize, String), Fetched)> {
        let mut out = vec![];
        let Some(body) = &r.ocsp_request else { return out };
        for url in &r.ocsp_urls {
            let fetched = self.ocsp_response(url, body, now).await;
            let ok = matches!(fetched, Fetched::Bytes(_));
            out.push(((r.index, url.clone()), fetched));
            if ok {
                break;
            }
        }
        out
    }

    /// Spec: "If the certificate contains multiple CDP locations then each location download
    /// is attempted in sequential order, until a 2xx response is received for any of the
    /// location."
    async fn crl_for(&self, r: &RevocationRequest, now: Timestamp) -> Vec<(String, Fetched)> {
        let mut out = vec![];
        for url in &r.crl_urls {
            let fetched = self.crl(url, now).await;
            let ok = matches!(fetched, Fetched::Bytes(_));
            out.push((url.clone(), fetched));
            if ok {
                break;
            }
        }
        out
    }

    /// A CRL by URL: cached until its nextUpdate (and fetched again after
    /// `revocation_max_age`). Spec: "If the CRL cannot be downloaded within the timeout
    /// threshold the revocation result will be 'revocation unavailable'."
    async fn crl(&self, url: &str, now: Timestamp) -> Fetched {
        let flight = self.crls.flight(url);
        let _one_at_a_time = flight.lock().await;
        if let Some(b) = self.crls.fresh(url, now, self.options.revocation_max_age) {
            bump(&self.counters.crl_cache_hits);
            return Fetched::Bytes(b.to_vec());
        }
        bump(&self.counters.crl_downloads);
        let limit = super::revocation::MAX_CRL_BYTES;
        match self.http_fetch(url, None, self.options.revocation_timeout, limit).await {
            Ok(bytes) => {
                if let Some(next) = super::revocation::crl_next_update(&bytes)
                    && now <= next
                {
                    self.crls.put(url, Arc::from(bytes.as_slice()), next);
                }
                Fetched::Bytes(bytes)
            }
            Err(e) => match self.crls.still_valid(url, now) {
                Some(b) => {
                    tracing::warn!(url, error = %e, "CRL download failed; using the cached CRL until its nextUpdate");
                    Fetched::Bytes(b.to_vec())
                }
                None => Fetched::Failed(e),
            },
        }
    }

    /// An OCSP response for one certificate from one responder: cached until its nextUpdate,
    /// or `ocsp_ttl` when it has none.
    async fn ocsp_response(&self, url: &str, request: &[u8], now: Timestamp) -> Fetched {
        let key = format!("{url}|{}", hex::encode(Sha256::digest(request)));
        let flight = self.ocsp.flight(&key);
        let _one_at_a_time = flight.lock().await;
        if let Some(b) = self.ocsp.fresh(&key, now, self.options.revocation_max_age) {
            bump(&self.counters.ocsp_cache_hits);
            return Fetched::Bytes(b.to_vec());
        }
        bump(&self.counters.ocsp_requests);
        let limit = super::ocsp::MAX_OCSP_RESPONSE_BYTES;
        match self.http_fetch(url, Some(request), self.options.ocsp_timeout, limit).await {
            Ok(bytes) => {
                let ttl = SignedDuration::try_from(self.options.ocsp_ttl).unwrap_or(SignedDuration::ZERO);
                let until = super::ocsp::response_next_update(&bytes)
                    .unwrap_or_else(|| now.checked_add(ttl).unwrap_or(Timestamp::MAX));
                if now <= until {
                    self.ocsp.put(&key, Arc::from(bytes.as_slice()), until);
                }
                Fetched::Bytes(bytes)
            }
            Err(e) => match self.ocsp.still_valid(&key, now) {
                Some(b) => Fetched::Bytes(b.to_vec()),
                None => Fetched::Failed(e),
            },
        }
    }

    fn http(&self) -> Result<&reqwest::Client, String> {
        let built = self.http.get_or_init(|| {
            crate::fetch::install_default_provider();
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(3))
                .connect_timeout(self.options.revocation_timeout.max(self.options.ocsp_timeout))
                .user_agent(concat!("trustwatch/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client for revocation checks: {e}"))
        });
        built.as_ref().map_err(Clone::clone)
    }

    /// GET `url` (or POST an OCSP request to it): the body on 2xx, at most `limit` bytes,
    /// within `timeout` (connection, headers and body). Anything else is why not.
    async fn http_fetch(
        &self,
        url: &str,
        ocsp_request: Option<&[u8]>,
        timeout: Duration,
        limit: usize,
    ) -> Result<Vec<u8>, String> {
        let client = self.http()?;
        let req = match ocsp_request {
            // RFC 6960 A.1: "An OCSP request using the POST method is constructed as follows:
            // The Content-Type header has the value "application/ocsp-request", while the
            // body of the message is the binary value of the DER encoding of the OCSPRequest."
            Some(body) => client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
                .header(reqwest::header::ACCEPT, "application/ocsp-response")
                .body(body.to_vec()),
            None => client.get(url),
        }
        .timeout(timeout);
        let secs = timeout.as_secs_f64();
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                format!("timed out after {secs}s")
            } else {
                let mut detail = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    detail = format!("{detail}: {s}");
                    src = s.source();
                }
                detail
            }
        };
        let resp = req.send().await.map_err(describe)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(format!("response is larger than the {limit}-byte limit"));
        }
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(describe)?;
            if out.len() + chunk.len() > limit {
                return Err(format!("response is larger than the {limit}-byte limit"));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Whether a revocation outcome needs no more data: anything but "unknown".
fn decided(outcome: &Outcome) -> bool {
    match outcome {
        Err(NotationError::RevocationUnknown { .. }) => false,
        Err(_) => true,
        Ok(v) => !v.warnings.iter().any(|w| w.reason == "RevocationUnknown"),
    }
}

/// The answer from what was found. A verified signature wins. An outage never becomes
/// Unsigned (the signature we could not read may be the valid one): then only evidence of
/// tampering or invalid signatures outranks it.
fn decide(image: &ImageRef, evaluated: &Evaluated, now: Timestamp, expiry_warning: SignedDuration) -> Resolution {
    let f = SignatureFormat::Notation;
    let of_problem = |p: &Problem| {
        let mut r = Resolution::new(f, image, p.verdict, p.reason, p.message.clone());
        r.digest = image.digest.clone();
        r
    };
    match evaluated {
        Evaluated::Failed(p) => of_problem(p),
        Evaluated::Signatures(found) => {
            let Found { best, problems, listed, examined } = &**found;
            let mut r = match best {
                None if problems.is_empty() => {
                    let mut r = Resolution::new(
                        f,
                        image,
                        Verdict::Unsigned,
                        "NoSignature",
                        format!(
                            "no Notation signature is associated with {}@{}",
                            image.gun(),
                            image.digest.as_deref().unwrap_or("")
                        ),
                    );
                    r.digest = image.digest.clone();
                    r
                }
                None => {
                    let worst = problems.iter().max_by_key(|p| p.verdict.severity()).expect("problems is not empty");
                    let mut r = of_problem(worst);
                    r.warnings.extend(problems.iter().filter(|p| *p != worst).map(|p| p.message.clone()));
                    r
                }
                Some(Ok(_)) => {
                    let mut r = to_resolution(image, best.as_ref().expect("some"), now, expiry_warning);
                    r.warnings.extend(problems.iter().map(|p| p.message.clone()));
                    r
                }
                Some(Err(e)) => {
                    let outage = problems.iter().any(|p| p.verdict == Verdict::TrustDataUnavailable);
                    let counts = !outage || matches!(e.verdict(), Verdict::Tampered | Verdict::SignatureInvalid);
                    let mut r: Option<Resolution> =
                        counts.then(|| to_resolution(image, best.as_ref().expect("some"), now, expiry_warning));
                    for p in problems {
                        if r.as_ref().is_none_or(|b| p.verdict.severity() > b.verdict.severity()) {
                            r = Some(of_problem(p));
                        }
                    }
                    r.expect("either the core error counts or there is an outage")
                }
            };
            if examined < listed {
                r.warnings.push(format!("only the first {examined} of {listed} signatures were examined"));
            }
            r
        }
    }
}

impl Verifier for NotationVerifier {
    fn format(&self) -> SignatureFormat {
        SignatureFormat::Notation
    }

    fn verify<'a>(&'a self, request: VerifyRequest<'a>) -> BoxFuture<'a, Resolution> {
        Box::pin(async move {
            self.verify_image(request.image, request.now, request.expiry_warning, request.fresh_since).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageRef {
        ImageRef::parse(&format!("r.io/team/app:v1@sha256:{}", "a".repeat(64))).unwrap()
    }

    fn outage() -> Problem {
        Problem { verdict: Verdict::TrustDataUnavailable, reason: "ConnectionFailed", message: "down".into() }
    }

    fn sigs(best: Option<Outcome>, problems: Vec<Problem>) -> Evaluated {
        Evaluated::found(best, problems, 2, 2)
    }

    #[test]
    fn no_signature_is_unsigned_but_an_unreadable_one_is_an_outage() {
        let now = Timestamp::now();
        let none = Evaluated::found(None, vec![], 0, 0);
        let r = decide(&image(), &none, now, SignedDuration::ZERO);
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::Unsigned, "NoSignature"));
        assert_eq!(r.digest, image().digest);
        let r = decide(&image(), &sigs(None, vec![outage()]), now, SignedDuration::ZERO);
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::TrustDataUnavailable, "ConnectionFailed"));
        let r = decide(&image(), &Evaluated::Failed(outage()), now, SignedDuration::ZERO);
        assert_eq!(r.verdict, Verdict::TrustDataUnavailable);
    }

    #[test]
    fn an_outage_outranks_mild_failures_but_not_tampering() {
        let now = Timestamp::now();
        let expired: Outcome = Err(NotationError::SignatureExpired { expiry: "x".into() });
        let r = decide(&image(), &sigs(Some(expired.clone()), vec![outage()]), now, SignedDuration::ZERO);
        assert_eq!(r.verdict, Verdict::TrustDataUnavailable, "the unreadable signature may be the valid one");
        let r = decide(&image(), &sigs(Some(expired), vec![]), now, SignedDuration::ZERO);
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::TrustDataExpired, "SignatureExpired"));
        let tampered: Outcome = Err(NotationError::TargetDigestMismatch { expected: "a".into(), found: "b".into() });
        let r = decide(&image(), &sigs(Some(tampered), vec![outage()]), now, SignedDuration::ZERO);
        assert_eq!(r.verdict, Verdict::Tampered);
    }

    #[tokio::test]
    async fn policies_are_picked_per_repository_skip_fetches_nothing_and_a_broken_one_fails_only_its_images() {
        let doc = TrustPolicyDocument::from_json(
            br#"{"version":"1.0","trustPolicies":[
                {"name":"exact","registryScopes":["r.io/team/skipped"],"signatureVerification":{"level":"skip"}},
                {"name":"global","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:missing"],"trustedIdentities":["*"]}]}"#,
        )
        .unwrap();
        let source = NotationTrustSource::Notation { policy: doc, store: TrustStore::new() };
        // No registry behind it: nothing may be fetched.
        let client = Arc::new(RegistryClient::new(Default::default()).unwrap());
        let v = NotationVerifier::new(client, source, ShellOptions::default());
        let (index, config) = v.policies.for_repository("r.io/team/skipped").unwrap();
        assert!(index == 0 && config.is_skip());
        let digest = format!("@sha256:{}", "b".repeat(64));
        let skipped = ImageRef::parse(&format!("r.io/team/skipped:v1{digest}")).unwrap();
        let r = v.verify_image(&skipped, Timestamp::now(), SignedDuration::ZERO, Instant::now()).await;
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::Verified, "VerificationSkipped"));
        assert_eq!(v.counts().registry.total() + v.counts().tag_lookups, 0, "level skip fetches nothing");
        let other = ImageRef::parse(&format!("r.io/team/other{digest}")).unwrap();
        let r = v.verify_image(&other, Timestamp::now(), SignedDuration::ZERO, Instant::now()).await;
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::TrustDataUnavailable, "InvalidTrustStore"));
        assert_eq!(v.counts().registry.total(), 0);
    }

    #[test]
    fn revocation_is_decided_unless_unknown() {
        let unknown: Outcome =
            Err(NotationError::RevocationUnknown { index: 0, subject: "s".into(), detail: "d".into() });
        assert!(!decided(&unknown));
        let revoked: Outcome = Err(NotationError::CertificateRevoked {
            index: 0,
            subject: "s".into(),
            serial: "1".into(),
            revoked_at: "t".into(),
        });
        assert!(decided(&revoked));
    }

    #[test]
    fn the_revocation_cache_is_bounded_and_keeps_valid_copies_for_outages() {
        let c = RevocationCache::new(2, 100);
        let now = Timestamp::now();
        let later = now + SignedDuration::from_hours(1);
        c.put("a", Arc::from(&[1u8; 40][..]), later);
        c.put("b", Arc::from(&[2u8; 40][..]), later);
        c.put("c", Arc::from(&[3u8; 40][..]), later);
        assert_eq!(c.usage(), (2, 80));
        assert!(c.fresh("a", now, Duration::from_secs(60)).is_none(), "the oldest entry went first");
        assert!(c.fresh("c", now, Duration::from_secs(60)).is_some());
        assert!(c.fresh("c", now, Duration::ZERO).is_none(), "older than the max age: fetch again");
        assert!(c.still_valid("c", now).is_some(), "but usable while the fetch fails");
        assert!(c.still_valid("c", later + SignedDuration::from_secs(1)).is_none(), "not after nextUpdate");
        c.put("huge", Arc::from(&[0u8; 101][..]), later);
        assert!(c.still_valid("huge", now).is_none());
    }
}
