//! The registry HTTP client: rustls via reqwest with an optional custom CA bundle, timeouts
//! (connect and whole request), bounded reads, the bearer token flow and basic auth,
//! `429`/`Retry-After` with bounded retries, digest verification of everything it returns, a
//! content-addressed cache and request counters.

use super::Repository;
use super::auth::{DockerConfig, TokenCache, token_lifetime};
use super::cache::{Cached, ContentCache};
use super::error::OciError;
use super::types::{
    Descriptor, MANIFEST_MEDIA_TYPES, Manifest, OCI_EMPTY, OCI_INDEX, digest_like, referrers_tag, validate_digest,
};
use crate::fetch::{Challenge, Credentials, parse_challenge};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::error::Error as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Size limits per kind of document. A larger answer is an error, never a truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Manifests and indexes (the distribution specification has registries accept at
    /// least 4 MiB manifests).
    pub manifest: u64,
    /// Referrers API pages.
    pub referrers_page: u64,
    /// Token service answers.
    pub token: u64,
    /// Blobs, unless the caller passes a smaller limit.
    pub blob: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { manifest: 4 << 20, referrers_page: 4 << 20, token: 64 << 10, blob: 4 << 20 }
    }
}

/// How `429 Too Many Requests` (and `503` with `Retry-After`) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; then [`OciError::RateLimited`].
    pub max_retries: u32,
    /// A `Retry-After` longer than this is not waited for: the error comes at once.
    pub max_wait: Duration,
    /// The first wait when the registry gives no `Retry-After`; doubled on each retry.
    pub base_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 3, max_wait: Duration::from_secs(10), base_backoff: Duration::from_millis(250) }
    }
}

/// What an HTTP request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    ManifestHead,
    ManifestGet,
    BlobGet,
    Referrers,
    Token,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::ManifestHead => "manifest_head",
            RequestKind::ManifestGet => "manifest_get",
            RequestKind::BlobGet => "blob_get",
            RequestKind::Referrers => "referrers",
            RequestKind::Token => "token",
        }
    }
}

/// One HTTP request, as reported to a [`RequestObserver`].
#[derive(Debug, Clone)]
pub struct RequestEvent<'a> {
    pub kind: RequestKind,
    pub host: &'a str,
    /// The path without query; never credentials.
    pub path: &'a str,
    /// `None` when no answer came (timeout, connection error).
    pub status: Option<u16>,
    pub seconds: f64,
}

/// A callback for every HTTP request the client makes (metrics, benchmarks).
pub type RequestObserver = Arc<dyn Fn(&RequestEvent<'_>) + Send + Sync>;

/// Requests made and cache hits since the client was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub manifest_head: u64,
    pub manifest_get: u64,
    pub blob_get: u64,
    pub referrers: u64,
    pub token: u64,
    /// Retries after 429/503 (included in the counts above).
    pub retries: u64,
    /// Manifests and blobs served from the content cache (no request made).
    pub cache_hits: u64,
}

impl RequestCounts {
    /// HTTP requests of every kind.
    pub fn total(&self) -> u64 {
        self.manifest_head + self.manifest_get + self.blob_get + self.referrers + self.token
    }
}

#[derive(Default)]
struct Counters {
    manifest_head: AtomicU64,
    manifest_get: AtomicU64,
    blob_get: AtomicU64,
    referrers: AtomicU64,
    token: AtomicU64,
    retries: AtomicU64,
    cache_hits: AtomicU64,
}

impl Counters {
    fn of(&self, kind: RequestKind) -> &AtomicU64 {
        match kind {
            RequestKind::ManifestHead => &self.manifest_head,
            RequestKind::ManifestGet => &self.manifest_get,
            RequestKind::BlobGet => &self.blob_get,
            RequestKind::Referrers => &self.referrers,
            RequestKind::Token => &self.token,
        }
    }
}

#[derive(Clone)]
pub struct RegistryConfig {
    /// PEM CA bundle; when set, only these roots are trusted.
    pub ca_pem: Option<String>,
    /// Talk plain `http://` to registries. Only for loopback or in-cluster test registries;
    /// credentials are still sent over plain HTTP to loopback hosts only.
    pub plain_http: bool,
    /// Registry credentials (docker `config.json` / `.dockerconfigjson`).
    pub credentials: DockerConfig,
    /// Whole-request timeout, body included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub limits: Limits,
    pub retry: RetryPolicy,
    /// Capacity of the content-addressed cache of manifests and blobs fetched by digest.
    pub cache_bytes: usize,
    /// Called for every HTTP request.
    pub observer: Option<RequestObserver>,
    /// Trust the system's root certificates for https (default) when `ca_pem` is unset. Off,
    /// https works only with `ca_pem`: for plain-http registries, where loading the system
    /// roots is most of a one-shot `trustwatch verify`.
    pub system_roots: bool,
    /// How long a registry that answered that it has no referrers API is believed: within it,
    /// only the referrers tag schema is read for that host. Zero asks the API every time.
    pub referrers_api_recheck: Duration,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("plain_http", &self.plain_http)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .field("cache_bytes", &self.cache_bytes)
            .field("observer", &self.observer.as_ref().map(|_| "<fn>"))
            .field("system_roots", &self.system_roots)
            .field("referrers_api_recheck", &self.referrers_api_recheck)
            .finish()
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            ca_pem: None,
            plain_http: false,
            credentials: DockerConfig::default(),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            cache_bytes: 64 << 20,
            observer: None,
            system_roots: true,
            referrers_api_recheck: Duration::from_secs(30 * 60),
        }
    }
}

/// The referrers of a subject digest: the union of the referrers API and the referrers tag
/// schema, deduplicated by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Referrers {
    /// API entries first, then tag-schema entries not listed by the API; after filtering by
    /// artifact type. `artifact_type` is filled in from the manifest when an index left it
    /// out or named the empty config type.
    pub descriptors: Vec<Descriptor>,
    /// Whether the registry answered the referrers API (false: it answered 404, now or within
    /// [`RegistryConfig::referrers_api_recheck`] before, and the API was not asked again).
    pub api_supported: bool,
    /// Digests each source listed (after filtering), for diagnostics.
    pub via_api: Vec<String>,
    pub via_tag_schema: Vec<String>,
}

/// How a host asked to be authenticated, learned from its last challenge.
#[derive(Clone)]
enum HostAuth {
    Bearer { realm: String, params: Vec<(String, String)> },
    Basic,
}

enum Auth {
    None,
    Basic(Credentials),
    Bearer(String),
}

/// A registry client. Cheap to share behind an `Arc`; tokens are cached per repository until
/// they expire, manifests and blobs fetched by digest in a bounded cache.
pub struct RegistryClient {
    http: reqwest::Client,
    config: RegistryConfig,
    tokens: TokenCache,
    host_auth: Mutex<HashMap<String, HostAuth>>,
    /// Hosts that answered that they have no referrers API, and when.
    no_referrers_api: Mutex<HashMap<String, Instant>>,
    cache: ContentCache,
    counters: Counters,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The largest number of referrers API pages followed.
const MAX_REFERRER_PAGES: usize = 16;
/// The largest number of referrer manifests fetched to learn an artifact type an index left out.
const MAX_ARTIFACT_TYPE_LOOKUPS: usize = 64;

impl RegistryClient {
    pub fn new(config: RegistryConfig) -> Result<RegistryClient, OciError> {
        let plain_http = config.plain_http;
        // Redirects (blob storage behind a CDN) are followed a few times; never from https
        // down to plain http unless plain http is allowed. reqwest drops `Authorization` when
        // a redirect leaves the host, so credentials stay with the registry.
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if attempt.url().scheme() == "http" && !plain_http {
                attempt.error("refusing a redirect to plain http")
            } else {
                attempt.follow()
            }
        });
        crate::fetch::install_default_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(redirect)
            .user_agent(concat!("trustwatch/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| OciError::Config { detail: format!("CA bundle is not valid PEM: {e}") })?;
            if certs.is_empty() {
                return Err(OciError::Config { detail: "CA bundle contains no certificate".into() });
            }
            builder = builder.tls_certs_only(certs);
        } else if !config.system_roots {
            builder = builder.tls_certs_only(std::iter::empty());
        }
        let http =
            builder.build().map_err(|e| OciError::Config { detail: format!("cannot build HTTP client: {e}") })?;
        let cache = ContentCache::new(config.cache_bytes);
        Ok(RegistryClient {
            http,
            config,
            tokens: TokenCache::default(),
            host_auth: Mutex::new(HashMap::new()),
            no_referrers_api: Mutex::new(HashMap::new()),
            cache,
            counters: Counters::default(),
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Requests made so far (a benchmark takes the difference over a cycle).
    pub fn counts(&self) -> RequestCounts {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            manifest_head: l(&c.manifest_head),
            manifest_get: l(&c.manifest_get),
            blob_get: l(&c.blob_get),
            referrers: l(&c.referrers),
            token: l(&c.token),
            retries: l(&c.retries),
            cache_hits: l(&c.cache_hits),
        }
    }

    /// (entries, bytes) in the content cache.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }

    /// HEAD a manifest by tag or digest: its descriptor as the registry states it (media
    /// type, `Docker-Content-Digest`, size). Nothing is hashed: GET by that digest to have
    /// verified content. `None` on 404.
    pub async fn head_manifest(&self, repo: &Repository, reference: &str) -> Result<Option<Descriptor>, OciError> {
        validate_reference(reference)?;
        let path = format!("/v2/{}/manifests/{reference}", repo.name);
        let resp =
            self.send(RequestKind::ManifestHead, reqwest::Method::HEAD, repo, &path, "", &manifest_accept()).await?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(repo, &path, status)),
        }
        let h = resp.headers();
        let media_type = content_type(h);
        let header_digest = h.get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let size = h.get(reqwest::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        match (header_digest, size) {
            (Some(digest), Some(size)) if validate_digest(&digest).is_ok() => {
                if is_digest(reference) && digest != reference {
                    return Err(OciError::DigestMismatch {
                        path,
                        what: "manifest",
                        expected: reference.to_string(),
                        found: digest,
                    });
                }
                if size > self.config.limits.manifest {
                    return Err(OciError::TooLarge { path, what: "manifest", limit: self.config.limits.manifest });
                }
                Ok(Some(Descriptor { media_type, digest, size, artifact_type: None, annotations: Default::default() }))
            }
            // A registry that states no digest on HEAD: the GET tells (and verifies) it.
            _ => Ok(self.get_manifest(repo, reference).await?.map(|m| m.descriptor)),
        }
    }

    /// GET a manifest (image manifest or index) by tag or digest, `None` on 404.
    ///
    /// Distribution spec: "If the manifest is fetched by digest, the client SHOULD verify the
    /// content matches the digest"; the `Docker-Content-Digest` header, when present, is
    /// the digest of the returned content. Both are checked by hashing the body; a
    /// manifest fetched by digest is served from the cache when it is there.
    pub async fn get_manifest(&self, repo: &Repository, reference: &str) -> Result<Option<Manifest>, OciError> {
        validate_reference(reference)?;
        let path = format!("/v2/{}/manifests/{reference}", repo.name);
        if is_digest(reference) {
            if let Some(c) = self.cache.get(reference) {
                self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Manifest::parse(&c.media_type, reference.to_string(), c.bytes)
                    .map(Some)
                    .map_err(|detail| OciError::Malformed { path, what: "manifest", detail });
            }
        }
        let resp =
            self.send(RequestKind::ManifestGet, reqwest::Method::GET, repo, &path, "", &manifest_accept()).await?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(repo, &path, status)),
        }
        let media_type = content_type(resp.headers());
        let header_digest =
            resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body: Arc<[u8]> = self.read_limited(resp, &path, "manifest", self.config.limits.manifest).await?.into();
        let digest = self.check_digests(&path, "manifest", reference, header_digest.as_deref(), &body)?;
        let manifest = Manifest::parse(&media_type, digest.clone(), body.clone())
            .map_err(|detail| OciError::Malformed { path, what: "manifest", detail })?;
        self.cache.put(&digest, Cached { media_type: manifest.descriptor.media_type.clone(), bytes: body });
        Ok(Some(manifest))
    }

    /// The manifest a tag points at now (e.g. cosign's `sha256-<hex>.sig`), `None` when the
    /// tag does not exist. The tag is HEADed first and the manifest GET by the digest it
    /// names, so an unchanged tag costs one HEAD once its manifest is cached.
    pub async fn get_tag(&self, repo: &Repository, tag: &str) -> Result<Option<Manifest>, OciError> {
        if is_digest(tag) {
            return Err(OciError::Config { detail: format!("{tag:?} is a digest, not a tag") });
        }
        validate_reference(tag)?;
        let Some(desc) = self.head_manifest(repo, tag).await? else { return Ok(None) };
        if self.cache.get(&desc.digest).is_none() {
            // Not cached: GET by tag (one request) and check it is what HEAD announced, or
            // that the tag moved in between (then the newer content wins).
            return self.get_manifest(repo, tag).await;
        }
        self.get_manifest(repo, &desc.digest).await
    }

    /// GET a blob by its descriptor: at most `limit` bytes (and the configured blob limit),
    /// exactly `descriptor.size` bytes hashing to `descriptor.digest`. `None` on 404.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Option<Arc<[u8]>>, OciError> {
        validate_digest(&descriptor.digest).map_err(|detail| OciError::Malformed {
            path: format!("/v2/{}/blobs/{}", repo.name, descriptor.digest),
            what: "descriptor",
            detail,
        })?;
        let path = format!("/v2/{}/blobs/{}", repo.name, descriptor.digest);
        let limit = limit.min(self.config.limits.blob);
        if descriptor.size > limit {
            return Err(OciError::TooLarge { path, what: "blob", limit });
        }
        if let Some(c) = self.cache.get(&descriptor.digest) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(c.bytes));
        }
        let resp = self.send(RequestKind::BlobGet, reqwest::Method::GET, repo, &path, "", "*/*").await?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(repo, &path, status)),
        }
        let body = self.read_limited(resp, &path, "blob", limit).await?;
        if body.len() as u64 != descriptor.size {
            return Err(OciError::SizeMismatch {
                path,
                what: "blob",
                expected: descriptor.size,
                found: body.len() as u64,
            });
        }
        let found = digest_like(&descriptor.digest, &body);
        if found != descriptor.digest {
            return Err(OciError::DigestMismatch { path, what: "blob", expected: descriptor.digest.clone(), found });
        }
        let body: Arc<[u8]> = body.into();
        self.cache.put(&descriptor.digest, Cached { media_type: descriptor.media_type.clone(), bytes: body.clone() });
        Ok(Some(body))
    }

    /// The referrers of `subject` (a manifest digest) of the given artifact types (none: all
    /// types): the union of the referrers API and the referrers tag schema. With exactly one
    /// type the API is asked to filter (`?artifactType=`); the result is filtered here anyway.
    ///
    /// Distribution spec v1.1: "A client querying the referrers API and receiving a `404 Not
    /// Found` MUST fallback to using an image index pushed to a tag described by the
    /// referrers tag schema." We read the tag schema even when the API answers, because
    /// clients and registries differ in where they write (notation writes the tag schema by
    /// default, cosign falls back to it per registry), and take the union.
    ///
    /// A registry without the API says so on every request, and its answer does not change
    /// until it is upgraded. So a host that answered "no API" is not asked again for
    /// `referrers_api_recheck`: a warm cycle there is one lookup per digest, the tag schema.
    /// Skipping the API can only leave signatures out, never add one: it cannot turn a
    /// failing verdict into a verified one.
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &str,
        artifact_types: &[&str],
    ) -> Result<Referrers, OciError> {
        validate_digest(subject).map_err(|detail| OciError::Config { detail })?;
        let mut out = Referrers::default();
        let query_type = if artifact_types.len() == 1 { Some(artifact_types[0]) } else { None };
        // Both ways of listing referrers at once (one round trip rather than two), answered in
        // the same order as one after the other.
        let tag = referrers_tag(subject);
        let ask_api = !self.known_without_referrers_api(&repo.api_host);
        let api_call = async {
            if !ask_api {
                return Ok(None);
            }
            let api = self.referrers_api(repo, subject, query_type).await;
            if let Ok(None) = api {
                self.no_referrers_api
                    .lock()
                    .expect("referrers memory poisoned")
                    .insert(repo.api_host.clone(), Instant::now());
            }
            api
        };
        let (api, tagged) = futures::join!(api_call, self.get_manifest(repo, &tag));
        let api = api?;
        let mut seen = HashSet::new();
        if let Some(list) = api {
            out.api_supported = true;
            for d in self.filter_by_type(repo, list, artifact_types).await? {
                out.via_api.push(d.digest.clone());
                if seen.insert(d.digest.clone()) {
                    out.descriptors.push(d);
                }
            }
        }
        if let Some(index) = tagged? {
            // A tag that holds something other than an index is not a referrers list.
            if let Some(index) = index.index() {
                for d in self.filter_by_type(repo, index.manifests.clone(), artifact_types).await? {
                    out.via_tag_schema.push(d.digest.clone());
                    if seen.insert(d.digest.clone()) {
                        out.descriptors.push(d);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether `host` answered "no referrers API" within `referrers_api_recheck`.
    fn known_without_referrers_api(&self, host: &str) -> bool {
        let recheck = self.config.referrers_api_recheck;
        let mut known = self.no_referrers_api.lock().expect("referrers memory poisoned");
        match known.get(host) {
            Some(at) if at.elapsed() < recheck => true,
            Some(_) => {
                known.remove(host);
                false
            }
            None => false,
        }
    }

    /// The referrers API: `None` when the registry does not implement it.
    async fn referrers_api(
        &self,
        repo: &Repository,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, OciError> {
        let path = format!("/v2/{}/referrers/{subject}", repo.name);
        let mut query = match artifact_type {
            Some(t) => format!("?artifactType={}", percent_encode(t)),
            None => String::new(),
        };
        let mut path_now = path.clone();
        let mut all = vec![];
        for page in 0..MAX_REFERRER_PAGES {
            let resp =
                self.send(RequestKind::Referrers, reqwest::Method::GET, repo, &path_now, &query, OCI_INDEX).await?;
            let status = resp.status().as_u16();
            match status {
                200 => {}
                // "If the registry supports the referrers API, the registry MUST NOT return a
                // 404 Not Found": 404 means no API. Registries that predate the API answer
                // other client errors too (400 on an unknown route, 405, 501).
                404 | 400 | 405 | 406 | 501 if page == 0 => return Ok(None),
                _ => return Err(self.status_error(repo, &path_now, status)),
            }
            let ct = content_type(resp.headers());
            let next = next_link(resp.headers());
            let body = self.read_limited(resp, &path_now, "referrers list", self.config.limits.referrers_page).await?;
            if page == 0 && ct != OCI_INDEX && ct != "application/json" {
                // Something answered 200 that is not the referrers API (an HTML page, a
                // proxy): treat as no API, the tag schema still applies.
                return Ok(None);
            }
            let index: super::types::ImageIndex = serde_json::from_slice(&body).map_err(|e| OciError::Malformed {
                path: path_now.clone(),
                what: "referrers list",
                detail: e.to_string(),
            })?;
            all.extend(index.manifests);
            // "If the result is paginated, the registry MUST include a Link header" (RFC 8288,
            // rel="next"). Only links on the same registry are followed.
            match next.and_then(|l| same_host_path(&l, &repo.api_host)) {
                Some((p, q)) => {
                    path_now = p;
                    query = q;
                }
                None => break,
            }
        }
        Ok(Some(all))
    }

    /// Registries may ignore `artifactType` (no `OCI-Filters-Applied`), and some writers put
    /// the config media type (`application/vnd.oci.empty.v1+json`) in the tag-schema index
    /// instead of the manifest's `artifactType`: filter here, and for such entries read the
    /// manifest (cached by digest; the verifier needs it next anyway).
    async fn filter_by_type(
        &self,
        repo: &Repository,
        list: Vec<Descriptor>,
        want: &[&str],
    ) -> Result<Vec<Descriptor>, OciError> {
        if want.is_empty() {
            return Ok(list);
        }
        let mut out = vec![];
        let mut lookups = 0;
        for mut d in list {
            if validate_digest(&d.digest).is_err() {
                continue;
            }
            match d.artifact_type.as_deref() {
                Some(t) if want.contains(&t) => out.push(d),
                None | Some(OCI_EMPTY) if lookups < MAX_ARTIFACT_TYPE_LOOKUPS => {
                    lookups += 1;
                    let Some(m) = self.get_manifest(repo, &d.digest).await? else { continue };
                    if let Some(img) = m.image() {
                        let t = img.effective_artifact_type();
                        if want.contains(&t) {
                            d.artifact_type = Some(t.to_string());
                            out.push(d);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Checks a manifest body against the reference (when it is a digest) and the
    /// `Docker-Content-Digest` header (when present); returns its digest.
    fn check_digests(
        &self,
        path: &str,
        what: &'static str,
        reference: &str,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<String, OciError> {
        if is_digest(reference) {
            let found = digest_like(reference, body);
            if found != reference {
                return Err(OciError::DigestMismatch { path: path.into(), what, expected: reference.into(), found });
            }
        }
        if let Some(h) = header {
            if validate_digest(h).is_ok() {
                let found = digest_like(h, body);
                if found != h {
                    return Err(OciError::DigestMismatch { path: path.into(), what, expected: h.into(), found });
                }
            }
        }
        Ok(if is_digest(reference) {
            reference.to_string()
        } else {
            header
                .filter(|h| validate_digest(h).is_ok())
                .map(str::to_string)
                .unwrap_or_else(|| digest_like("sha256:", body))
        })
    }

    fn status_error(&self, repo: &Repository, path: &str, status: u16) -> OciError {
        let host = repo.api_host.clone();
        match status {
            401 | 403 => OciError::Auth { host, path: path.into(), status, detail: "access denied".into() },
            429 => OciError::RateLimited { host, path: path.into(), retries: 0, retry_after_secs: None },
            500..=599 => OciError::Server { host, path: path.into(), status },
            _ => OciError::UnexpectedStatus { host, path: path.into(), status },
        }
    }

    fn base(&self, host: &str) -> String {
        format!("{}://{host}", if self.config.plain_http { "http" } else { "https" })
    }

    /// A request with authentication and 429/Retry-After handling.
    async fn send(
        &self,
        kind: RequestKind,
        method: reqwest::Method,
        repo: &Repository,
        path: &str,
        query: &str,
        accept: &str,
    ) -> Result<reqwest::Response, OciError> {
        let mut retries = 0;
        loop {
            let resp = self.send_authed(kind, method.clone(), repo, path, query, accept).await?;
            let status = resp.status().as_u16();
            let retry_after = retry_after(resp.headers());
            // 429 is always retried; 503 only when the registry says when to come back.
            if status == 429 || (status == 503 && retry_after.is_some()) {
                let wait = retry_after.unwrap_or_else(|| self.config.retry.base_backoff * 2u32.saturating_pow(retries));
                if retries >= self.config.retry.max_retries || wait > self.config.retry.max_wait {
                    if status == 503 {
                        return Err(OciError::Server { host: repo.api_host.clone(), path: path.into(), status });
                    }
                    return Err(OciError::RateLimited {
                        host: repo.api_host.clone(),
                        path: path.into(),
                        retries,
                        retry_after_secs: retry_after.map(|d| d.as_secs()),
                    });
                }
                retries += 1;
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn send_authed(
        &self,
        kind: RequestKind,
        method: reqwest::Method,
        repo: &Repository,
        path: &str,
        query: &str,
        accept: &str,
    ) -> Result<reqwest::Response, OciError> {
        let url = format!("{}{path}{query}", self.base(&repo.api_host));
        let token_key = format!("{}|{}", repo.api_host, repo.name);
        let auth = self.current_auth(repo, path, &token_key).await?;
        let had_auth = !matches!(auth, Auth::None);
        let resp = self.send_once(kind, method.clone(), &repo.api_host, path, &url, accept, &auth).await?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_challenge);
        let auth = match challenge {
            Some(Challenge::Bearer { realm, params }) => {
                self.tokens.remove(&token_key);
                let (token, lifetime) = self.fetch_token(repo, path, &realm, &params).await?;
                self.tokens.put(token_key, token.clone(), lifetime);
                let params = params.into_iter().filter(|(k, _)| k != "scope" && k != "error").collect();
                self.host_auth
                    .lock()
                    .expect("auth poisoned")
                    .insert(repo.api_host.clone(), HostAuth::Bearer { realm, params });
                Auth::Bearer(token)
            }
            Some(Challenge::Basic) => match self.basic_credentials(repo) {
                Some(c) if !had_auth => {
                    self.host_auth.lock().expect("auth poisoned").insert(repo.api_host.clone(), HostAuth::Basic);
                    Auth::Basic(c)
                }
                Some(_) => {
                    return Err(OciError::Auth {
                        host: repo.api_host.clone(),
                        path: path.into(),
                        status: 401,
                        detail: "the registry refused the configured username and password".into(),
                    });
                }
                None => {
                    return Err(OciError::Auth {
                        host: repo.api_host.clone(),
                        path: path.into(),
                        status: 401,
                        detail: "the registry requires a username and password; none are configured for it".into(),
                    });
                }
            },
            None => {
                return Err(OciError::Auth {
                    host: repo.api_host.clone(),
                    path: path.into(),
                    status: 401,
                    detail: "HTTP 401 without a usable WWW-Authenticate challenge".into(),
                });
            }
        };
        self.send_once(kind, method, &repo.api_host, path, &url, accept, &auth).await
    }

    /// The authentication to send first. Once a host has asked for bearer tokens, a token
    /// for another repository is fetched before the request, saving the 401 round trip.
    async fn current_auth(&self, repo: &Repository, path: &str, token_key: &str) -> Result<Auth, OciError> {
        let host_auth = self.host_auth.lock().expect("auth poisoned").get(&repo.api_host).cloned();
        Ok(match host_auth {
            Some(HostAuth::Bearer { realm, params }) => match self.tokens.get(token_key) {
                Some(t) => Auth::Bearer(t),
                None => {
                    let (token, lifetime) = self.fetch_token(repo, path, &realm, &params).await?;
                    self.tokens.put(token_key.to_string(), token.clone(), lifetime);
                    Auth::Bearer(token)
                }
            },
            Some(HostAuth::Basic) => self.basic_credentials(repo).map(Auth::Basic).unwrap_or(Auth::None),
            None => Auth::None,
        })
    }

    /// Credentials for the registry itself: over https, or over plain http to a loopback host.
    fn basic_credentials(&self, repo: &Repository) -> Option<Credentials> {
        if self.config.plain_http && !is_loopback(&repo.api_host) {
            return None;
        }
        self.config.credentials.credentials_for_repository(&repo.registry, &repo.name).cloned()
    }

    /// The token flow (Docker token authentication specification): `GET <realm>?service=..&
    /// scope=..`, with basic auth when we have credentials for the registry, answering
    /// `{"token": ..}` or `{"access_token": ..}` and an optional `expires_in`. Credentials go
    /// to a realm over https only, or to a loopback realm on the same host as a loopback
    /// registry reached over plain http (tests); otherwise the token is asked anonymously.
    async fn fetch_token(
        &self,
        repo: &Repository,
        path: &str,
        realm: &str,
        params: &[(String, String)],
    ) -> Result<(String, Duration), OciError> {
        let host = repo.api_host.clone();
        let auth_err =
            |status: u16, detail: String| OciError::Auth { host: host.clone(), path: path.into(), status, detail };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| auth_err(401, format!("token realm {realm:?} is not a URL: {e}")))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && self.config.plain_http) {
            return Err(auth_err(401, format!("token realm {realm:?} is not https")));
        }
        {
            let mut q = url.query_pairs_mut();
            let mut scoped = false;
            for (k, v) in params {
                if k == "error" {
                    continue;
                }
                if k == "scope" {
                    scoped = true;
                    // Several scopes come space-separated in one challenge.
                    for s in v.split(' ').filter(|s| !s.is_empty()) {
                        q.append_pair("scope", s);
                    }
                } else {
                    q.append_pair(k, v);
                }
            }
            if !scoped {
                q.append_pair("scope", &format!("repository:{}:pull", repo.name));
            }
        }
        let realm_host = url.host_str().unwrap_or("").to_string();
        let realm_ok = url.scheme() == "https"
            || (is_loopback(&realm_host) && host_without_port(&repo.api_host) == realm_host.trim_matches(['[', ']']));
        let creds = self.config.credentials.credentials_for_repository(&repo.registry, &repo.name).filter(|_| realm_ok);
        let token_path = url.path().to_string();
        let mut req = self.http.get(url.clone());
        if let Some(c) = creds {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let started = Instant::now();
        self.counters.token.fetch_add(1, Ordering::Relaxed);
        let result = req.send().await;
        self.observe(
            RequestKind::Token,
            &realm_host,
            &token_path,
            result.as_ref().ok().map(|r| r.status().as_u16()),
            started,
        );
        let resp = result.map_err(|e| self.map_err(&realm_host, url.as_str(), e))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            500..=599 => return Err(OciError::Server { host: realm_host, path: token_path, status }),
            _ => return Err(auth_err(status, format!("token service {realm} answered HTTP {status}"))),
        }
        let body = self.read_limited(resp, &token_path, "token", self.config.limits.token).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| auth_err(status, format!("token service answer is not JSON: {e}")))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| auth_err(status, "token service answer has no token".into()))?;
        Ok((token.to_string(), token_lifetime(v.get("expires_in").and_then(|e| e.as_u64()))))
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        kind: RequestKind,
        method: reqwest::Method,
        host: &str,
        path: &str,
        url: &str,
        accept: &str,
        auth: &Auth,
    ) -> Result<reqwest::Response, OciError> {
        let mut req = self.http.request(method, url).header(reqwest::header::ACCEPT, accept);
        req = match auth {
            Auth::None => req,
            Auth::Basic(c) => req.basic_auth(&c.username, Some(&c.password)),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        let started = Instant::now();
        self.counters.of(kind).fetch_add(1, Ordering::Relaxed);
        let result = req.send().await;
        self.observe(kind, host, path, result.as_ref().ok().map(|r| r.status().as_u16()), started);
        result.map_err(|e| self.map_err(host, url, e))
    }

    fn observe(&self, kind: RequestKind, host: &str, path: &str, status: Option<u16>, started: Instant) {
        if let Some(o) = &self.config.observer {
            o(&RequestEvent { kind, host, path, status, seconds: started.elapsed().as_secs_f64() });
        }
    }

    fn map_err(&self, host: &str, url: &str, e: reqwest::Error) -> OciError {
        let mut detail = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            detail = format!("{detail}: {s}");
            src = s.source();
        }
        let lower = detail.to_ascii_lowercase();
        if e.is_timeout() || lower.contains("timed out") {
            OciError::Timeout { url: url.into(), secs: self.config.timeout.as_secs() }
        } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            OciError::Tls { host: host.into(), detail }
        } else if e.is_connect() {
            OciError::Connect { host: host.into(), detail }
        } else {
            OciError::Body { path: url.into(), detail }
        }
    }

    /// Reads at most `limit` bytes of the body; a longer body is an error, not a truncation.
    async fn read_limited(
        &self,
        resp: reqwest::Response,
        path: &str,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, OciError> {
        if resp.content_length().is_some_and(|len| len > limit) {
            return Err(OciError::TooLarge { path: path.into(), what, limit });
        }
        let url = resp.url().to_string();
        let host = resp.url().host_str().unwrap_or("").to_string();
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match self.map_err(&host, &url, e) {
                OciError::Timeout { url, secs } => OciError::Timeout { url, secs },
                other => OciError::Body { path: path.into(), detail: other.to_string() },
            })?;
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(OciError::TooLarge { path: path.into(), what, limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

fn manifest_accept() -> String {
    MANIFEST_MEDIA_TYPES.join(", ")
}

fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

/// A tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) or a digest: nothing that could change the path.
fn validate_reference(reference: &str) -> Result<(), OciError> {
    if is_digest(reference) {
        return validate_digest(reference).map_err(|detail| OciError::Config { detail });
    }
    let ok = !reference.is_empty()
        && reference.len() <= 128
        && !reference.starts_with(['.', '-'])
        && reference.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok { Ok(()) } else { Err(OciError::Config { detail: format!("{reference:?} is not a valid tag") }) }
}

fn content_type(h: &reqwest::header::HeaderMap) -> String {
    h.get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The `rel="next"` target of a `Link` header.
fn next_link(h: &reqwest::header::HeaderMap) -> Option<String> {
    for v in h.get_all(reqwest::header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let (target, params) = part.split_once(';').unwrap_or((part, ""));
            let is_next = params.split(';').any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let t = target.trim().trim_start_matches('<').trim_end_matches('>');
                return Some(t.to_string());
            }
        }
    }
    None
}

/// (path, `?query`) of a link that stays on `host`: a relative path, or an absolute URL to
/// the same host.
fn same_host_path(link: &str, host: &str) -> Option<(String, String)> {
    let rel = if link.starts_with('/') {
        link.to_string()
    } else {
        let url = reqwest::Url::parse(link).ok()?;
        let h = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str()?),
            None => url.host_str()?.to_string(),
        };
        if h != host {
            return None;
        }
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    };
    if !rel.starts_with("/v2/") {
        return None;
    }
    match rel.split_once('?') {
        Some((p, q)) => Some((p.to_string(), format!("?{q}"))),
        None => Some((rel, String::new())),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host_without_port(host).trim_matches(['[', ']']);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn link_headers_are_followed_only_on_the_same_registry() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            HeaderValue::from_static("</v2/app/referrers/sha256:ab?n=1&last=x>; rel=\"next\""),
        );
        let l = next_link(&h).unwrap();
        assert_eq!(same_host_path(&l, "r:5000"), Some(("/v2/app/referrers/sha256:ab".into(), "?n=1&last=x".into())));
        assert_eq!(same_host_path("https://evil.example/v2/x", "r:5000"), None);
        assert_eq!(same_host_path("http://r:5000/v2/x?y=1", "r:5000"), Some(("/v2/x".into(), "?y=1".into())));
        assert_eq!(same_host_path("/other", "r:5000"), None);
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::LINK, HeaderValue::from_static("</a>; rel=\"prev\""));
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn references_that_could_escape_the_path_are_refused() {
        assert!(validate_reference("v1.0-rc_1").is_ok());
        assert!(validate_reference(&format!("sha256:{}", "a".repeat(64))).is_ok());
        for bad in ["../x", "a/b", "", ".hidden", "a?b", "sha256:short", &"x".repeat(129)] {
            assert!(validate_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognized_with_and_without_ports() {
        for h in ["127.0.0.1:5000", "localhost", "[::1]:5000", "127.1.2.3"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1:5000", "registry.example.com", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(percent_encode("application/vnd.x+json"), "application%2Fvnd.x%2Bjson");
    }

    #[test]
    fn bad_ca_bundles_are_refused_and_debug_never_shows_secrets() {
        let mut c = RegistryConfig { ca_pem: Some("not pem".into()), ..Default::default() };
        assert_eq!(RegistryClient::new(c.clone()).unwrap_err().reason(), "InvalidConfiguration");
        c.ca_pem = None;
        c.credentials.insert("ghcr.io", Credentials { username: "u".into(), password: "hunter2".into() });
        let client = RegistryClient::new(c).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
