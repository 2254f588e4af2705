//! The OCI registry client against real registries: Debian's docker-registry (no referrers
//! API: the tag schema), olareg (the referrers API), artifacts pushed and attached with the
//! real oras CLI, docker-registry with htpasswd basic auth and with token auth behind a JWT
//! realm, and a faulty proxy in front of a real registry for 429, 5xx, timeouts, flipped
//! bytes and oversized bodies.

mod support;

use base64::Engine as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Registry;
use support::oci::*;
use trustwatch::oci::{DockerConfig, Limits, OciError, RegistryClient, RegistryConfig, Repository, RetryPolicy};
use trustwatch::verdict::Verdict;

const TYPE_A: &str = "application/vnd.trustwatch.test.a";
const TYPE_B: &str = "application/vnd.trustwatch.test.b";

fn plain() -> RegistryConfig {
    RegistryConfig { plain_http: true, ..Default::default() }
}

fn client(config: RegistryConfig) -> RegistryClient {
    RegistryClient::new(config).unwrap()
}

fn docker_config(host: &str, user: &str, pass: &str) -> DockerConfig {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    DockerConfig::parse(format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#).as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifests_and_blobs_are_fetched_by_tag_and_digest_and_verified() {
    let registry = Registry::start();
    let pushed = registry.push_image("shop/web", "v1", "layer bytes of v1");
    let c = client(plain());
    let repo = Repository::new(&registry.host(), "shop/web");

    let head = c.head_manifest(&repo, "v1").await.unwrap().expect("v1 exists");
    assert_eq!((head.digest.as_str(), head.size), (pushed.digest.as_str(), pushed.size));
    assert_eq!(head.media_type, "application/vnd.oci.image.manifest.v1+json");

    let by_tag = c.get_manifest(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(by_tag.descriptor.digest, pushed.digest, "the digest of the body is the registry's digest");
    let layer = by_tag.image().unwrap().layers[0].clone();
    let blob = c.get_blob(&repo, &layer, 1 << 20).await.unwrap().unwrap();
    assert_eq!(&blob[..], b"layer bytes of v1");

    // By digest: served from the cache, no request.
    let before = c.counts();
    let by_digest = c.get_manifest(&repo, &pushed.digest).await.unwrap().unwrap();
    assert_eq!(by_digest.bytes, by_tag.bytes);
    let blob_again = c.get_blob(&repo, &layer, 1 << 20).await.unwrap().unwrap();
    assert_eq!(blob_again, blob);
    let after = c.counts();
    assert_eq!((after.total(), after.cache_hits), (before.total(), before.cache_hits + 2), "{after:?}");

    // A tag through get_tag: HEAD, then the cached manifest.
    let before = c.counts();
    let tagged = c.get_tag(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(tagged.descriptor.digest, pushed.digest);
    let after = c.counts();
    assert_eq!((after.manifest_head, after.manifest_get), (before.manifest_head + 1, before.manifest_get));

    // 404s are None, everywhere.
    assert_eq!(c.get_tag(&repo, "sha256-0000.sig").await.unwrap(), None);
    assert_eq!(c.head_manifest(&repo, "nope").await.unwrap(), None);
    assert_eq!(c.get_manifest(&Repository::new(&registry.host(), "no/such"), "v1").await.unwrap(), None);
    let mut missing = layer.clone();
    missing.digest = trustwatch::oci::sha256_digest(b"never pushed");
    assert_eq!(c.get_blob(&repo, &missing, 1 << 20).await.unwrap(), None);

    // A blob whose descriptor is over the caller's limit is not fetched at all.
    let before = c.counts();
    let err = c.get_blob(&repo, &layer, 4).await.unwrap_err();
    assert_eq!((err.reason(), err.verdict()), ("TooLarge", Verdict::Tampered));
    assert_eq!(c.counts().total(), before.total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn olareg_referrers_come_from_the_api_filtered_by_artifact_type() {
    let olareg = Olareg::start();
    let oras = Oras::new();
    let subject = oras.push(&format!("{}/app:v1", olareg.host()), "subject");
    let at = format!("{}/app@{subject}", olareg.host());
    let a = oras.attach(&at, TYPE_A, "sig a", None);
    let b = oras.attach(&at, TYPE_B, "sig b", None);
    let c = client(plain());
    let repo = Repository::new(&olareg.host(), "app");

    let only_a = c.referrers(&repo, &subject, &[TYPE_A]).await.unwrap();
    assert!(only_a.api_supported, "olareg implements the referrers API");
    assert_eq!(only_a.via_api, vec![a.clone()]);
    assert_eq!(only_a.via_tag_schema, Vec::<String>::new(), "oras used the API, so no tag-schema index");
    assert_eq!(only_a.descriptors.len(), 1);
    assert_eq!(only_a.descriptors[0].artifact_type.as_deref(), Some(TYPE_A));

    let all = c.referrers(&repo, &subject, &[]).await.unwrap();
    let mut digests: Vec<_> = all.descriptors.iter().map(|d| d.digest.clone()).collect();
    digests.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(digests, want);

    let none = c.referrers(&repo, &trustwatch::oci::sha256_digest(b"unreferenced"), &[]).await.unwrap();
    assert!(none.api_supported && none.descriptors.is_empty(), "{none:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_registry_referrers_come_from_the_tag_schema() {
    let registry = Registry::start();
    let oras = Oras::new();
    let subject = oras.push(&format!("{}/app:v1", registry.host()), "subject");
    let at = format!("{}/app@{subject}", registry.host());
    let a = oras.attach(&at, TYPE_A, "sig a", None);
    let b = oras.attach(&at, TYPE_B, "sig b", None);
    let c = client(plain());
    let repo = Repository::new(&registry.host(), "app");

    let only_b = c.referrers(&repo, &subject, &[TYPE_B]).await.unwrap();
    assert!(!only_b.api_supported, "distribution 2.8 has no referrers API");
    assert_eq!(only_b.via_tag_schema, vec![b.clone()]);
    assert_eq!(only_b.descriptors.len(), 1);
    let all = c.referrers(&repo, &subject, &[]).await.unwrap();
    assert_eq!(all.descriptors.len(), 2);
    assert!(all.via_tag_schema.contains(&a) && all.via_tag_schema.contains(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_without_the_referrers_api_is_not_asked_again_within_the_recheck() {
    let registry = Registry::start();
    let olareg = Olareg::start();
    let oras = Oras::new();
    let c = client(plain());
    let asked_api = |c: &RegistryClient| c.counts().referrers;

    // docker-registry answers 404: asked once, then only the tag schema, one lookup per
    // digest, and what is attached meanwhile is still found there.
    let subject = oras.push(&format!("{}/app:v1", registry.host()), "subject");
    let at = format!("{}/app@{subject}", registry.host());
    let a = oras.attach(&at, TYPE_A, "sig a", None);
    let repo = Repository::new(&registry.host(), "app");
    let first = c.referrers(&repo, &subject, &[TYPE_A]).await.unwrap();
    assert_eq!((first.api_supported, first.via_tag_schema.clone()), (false, vec![a.clone()]));
    assert_eq!(asked_api(&c), 1);
    let b = oras.attach(&at, TYPE_A, "sig b", None);
    let before = c.counts();
    let second = c.referrers(&repo, &subject, &[TYPE_A]).await.unwrap();
    let after = c.counts();
    assert_eq!(after.referrers, before.referrers, "the API is not asked again within the recheck");
    assert_eq!(after.manifest_get - before.manifest_get, 1, "one tag-schema lookup: {before:?} -> {after:?}");
    assert!(second.via_tag_schema.contains(&a) && second.via_tag_schema.contains(&b), "{second:?}");

    // A registry that has the API is asked every time: the memory is per host.
    let o_subject = oras.push(&format!("{}/app:v1", olareg.host()), "subject");
    let o_at = format!("{}/app@{o_subject}", olareg.host());
    let via_api = oras.attach(&o_at, TYPE_A, "written with the API", Some("v1.1-referrers-api"));
    let o_repo = Repository::new(&olareg.host(), "app");
    for _ in 0..2 {
        let before = asked_api(&c);
        let r = c.referrers(&o_repo, &o_subject, &[TYPE_A]).await.unwrap();
        assert!(r.api_supported && r.via_api.contains(&via_api), "{r:?}");
        assert_eq!(asked_api(&c), before + 1);
    }

    // With no recheck window, docker-registry is asked every time.
    let every_time = client(RegistryConfig { referrers_api_recheck: Duration::ZERO, ..plain() });
    for n in 1..=2 {
        every_time.referrers(&repo, &subject, &[TYPE_A]).await.unwrap();
        assert_eq!(asked_api(&every_time), n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_union_of_api_and_tag_schema_is_read_and_deduplicated() {
    let olareg = Olareg::start();
    let oras = Oras::new();
    let subject = oras.push(&format!("{}/app:v1", olareg.host()), "subject");
    let at = format!("{}/app@{subject}", olareg.host());
    let via_api = oras.attach(&at, TYPE_A, "written with the API", Some("v1.1-referrers-api"));
    let via_tag = oras.attach(&at, TYPE_A, "written to the tag schema", Some("v1.1-referrers-tag"));
    let c = client(plain());
    let repo = Repository::new(&olareg.host(), "app");

    let r = c.referrers(&repo, &subject, &[TYPE_A]).await.unwrap();
    assert!(r.via_api.contains(&via_api), "{r:?}");
    assert!(r.via_tag_schema.contains(&via_tag), "{r:?}");
    let mut digests: Vec<_> = r.descriptors.iter().map(|d| d.digest.clone()).collect();
    let n = digests.len();
    digests.sort();
    digests.dedup();
    assert_eq!(n, digests.len(), "no digest listed twice: {r:?}");
    assert_eq!(digests.len(), 2, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn basic_auth_with_docker_config_credentials() {
    let registry = Registry::start_with(|dir| htpasswd_auth(dir, "alice", "s3cret"));
    let oras = Oras::with_credentials("alice", "s3cret");
    let digest = oras.push(&format!("{}/private/app:v1", registry.host()), "private");
    let repo = Repository::new(&registry.host(), "private/app");

    let good = client(RegistryConfig { credentials: docker_config(&registry.host(), "alice", "s3cret"), ..plain() });
    let m = good.get_manifest(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(m.descriptor.digest, digest);
    let before = good.counts();
    good.get_tag(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(
        good.counts().total(),
        before.total() + 1,
        "known basic host: credentials sent first, no 401 round trip"
    );

    let anonymous = client(plain());
    let err = anonymous.get_manifest(&repo, "v1").await.unwrap_err();
    assert_eq!((err.reason(), err.verdict()), ("AuthenticationFailed", Verdict::TrustDataUnavailable), "{err}");
    assert!(err.to_string().contains("none are configured"), "{err}");

    let wrong = client(RegistryConfig { credentials: docker_config(&registry.host(), "alice", "nope"), ..plain() });
    let err = wrong.get_manifest(&repo, "v1").await.unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    assert!(!err.to_string().contains("nope") && !format!("{err:?}").contains("nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_token_flow_against_a_token_auth_registry() {
    let realm = TokenRealm::start("bob", "hunter2").await;
    let auth = realm.registry_auth();
    let registry = Registry::start_with(|_| auth);
    let oras = Oras::with_credentials("bob", "hunter2");
    let digest = oras.push(&format!("{}/team/app:v1", registry.host()), "behind tokens");
    let attached = oras.attach(&format!("{}/team/app@{digest}", registry.host()), TYPE_A, "sig", None);
    let other = oras.push(&format!("{}/team/other:v1", registry.host()), "another repository");
    let pushes = realm.requests().len();

    let c = client(RegistryConfig { credentials: docker_config(&registry.host(), "bob", "hunter2"), ..plain() });
    let repo = Repository::new(&registry.host(), "team/app");
    let m = c.get_manifest(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(m.descriptor.digest, digest);
    let asked = realm.requests()[pushes..].to_vec();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].authenticated, "the realm is the registry's loopback host: credentials go there");
    assert!(asked[0].query.contains("scope=repository%3Ateam%2Fapp%3Apull") && asked[0].query.contains("service="));

    // The token is cached for the repository: more requests, no more token requests.
    let r = c.referrers(&repo, &digest, &[TYPE_A]).await.unwrap();
    assert_eq!(r.via_tag_schema, vec![attached]);
    assert_eq!(realm.requests().len(), pushes + 1);
    assert_eq!(c.counts().token, 1);

    // Another repository on the same host: a token for its scope, fetched before the request.
    let before = c.counts();
    let o = c.get_manifest(&Repository::new(&registry.host(), "team/other"), "v1").await.unwrap().unwrap();
    assert_eq!(o.descriptor.digest, other);
    let after = c.counts();
    assert_eq!((after.token, after.manifest_get), (before.token + 1, before.manifest_get + 1), "no 401 round trip");

    // No credentials: the realm refuses, an authentication failure (an outage, not Unsigned).
    let anonymous = client(plain());
    let err = anonymous.get_manifest(&repo, "v1").await.unwrap_err();
    assert_eq!((err.reason(), err.verdict()), ("AuthenticationFailed", Verdict::TrustDataUnavailable), "{err}");
    assert!(realm.requests().iter().rev().take(1).all(|r| !r.authenticated && r.authorization.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_are_not_sent_to_a_plain_http_realm_on_another_host() {
    let realm = TokenRealm::start("bob", "hunter2").await;
    // The same realm, named `localhost`, while the registry is `127.0.0.1`: another host.
    let auth = realm.registry_auth().replace("http://127.0.0.1:", "http://localhost:");
    let registry = Registry::start_with(|_| auth);
    let c = client(RegistryConfig { credentials: docker_config(&registry.host(), "bob", "hunter2"), ..plain() });
    let err = c.get_manifest(&Repository::new(&registry.host(), "team/app"), "v1").await.unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    let asked = realm.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].authorization, None, "no credentials to a plain-http realm that is not the registry's host");
}

type Seen = Arc<Mutex<Vec<(String, Option<u16>)>>>;

fn observed() -> (RegistryConfig, Seen) {
    let log = Arc::new(Mutex::new(vec![]));
    let l = log.clone();
    let cfg = RegistryConfig {
        observer: Some(Arc::new(move |e| l.lock().unwrap().push((e.kind.as_str().to_string(), e.status)))),
        retry: RetryPolicy {
            max_retries: 2,
            max_wait: Duration::from_secs(2),
            base_backoff: Duration::from_millis(10),
        },
        ..plain()
    };
    (cfg, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_many_requests_are_retried_after_retry_after_then_a_typed_error() {
    let registry = Registry::start();
    let pushed = registry.push_image("app", "v1", "rate limited");
    let proxy = FaultyProxy::start(&registry.url()).await;
    let (cfg, log) = observed();
    let c = client(cfg);
    let repo = Repository::new(&proxy.host(), "app");

    proxy.set("/manifests/", Fault::TooManyRequests { times: 2, retry_after: Some("1".into()) });
    let m = c.get_manifest(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(m.descriptor.digest, pushed.digest);
    assert_eq!(c.counts().retries, 2);
    let statuses: Vec<_> = log.lock().unwrap().iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, vec![Some(429), Some(429), Some(200)], "the observer sees every request");

    // Still limited after the retries: RateLimited, an outage.
    proxy.set("/manifests/", Fault::TooManyRequests { times: 100, retry_after: Some("0".into()) });
    let err = c.get_manifest(&repo, "v1").await.unwrap_err();
    assert!(matches!(err, OciError::RateLimited { retries: 2, .. }), "{err:?}");
    assert_eq!((err.reason(), err.verdict()), ("RateLimited", Verdict::TrustDataUnavailable));

    // A Retry-After beyond what we wait for: the error at once, no retry.
    let before = c.counts();
    proxy.set("/manifests/", Fault::TooManyRequests { times: 100, retry_after: Some("3600".into()) });
    let err = c.get_manifest(&repo, "v1").await.unwrap_err();
    assert!(matches!(err, OciError::RateLimited { retries: 0, retry_after_secs: Some(3600), .. }), "{err:?}");
    assert_eq!(c.counts().manifest_get, before.manifest_get + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_timeouts_and_a_dead_registry_are_typed_outages() {
    let registry = Registry::start();
    registry.push_image("app", "v1", "outages");
    let proxy = FaultyProxy::start(&registry.url()).await;
    let repo = Repository::new(&proxy.host(), "app");
    let c = client(RegistryConfig { timeout: Duration::from_secs(1), ..plain() });

    for status in [500, 502, 503] {
        proxy.set("/manifests/", Fault::Status(status));
        let err = c.get_manifest(&repo, "v1").await.unwrap_err();
        assert!(matches!(err, OciError::Server { status: s, .. } if s == status), "{err:?}");
        assert_eq!((err.reason(), err.verdict()), ("ServerError", Verdict::TrustDataUnavailable));
    }
    proxy.set("/referrers/", Fault::Status(500));
    let err = c.referrers(&repo, &trustwatch::oci::sha256_digest(b"x"), &[]).await.unwrap_err();
    assert_eq!(err.reason(), "ServerError", "a failing referrers API is an outage, not 'no referrers'");

    proxy.set("/manifests/", Fault::Hang);
    let err = c.get_manifest(&repo, "v1").await.unwrap_err();
    assert_eq!((err.reason(), err.verdict()), ("Timeout", Verdict::TrustDataUnavailable), "{err:?}");

    proxy.set("/manifests/", Fault::Close);
    let err = c.get_manifest(&repo, "v1").await.unwrap_err();
    assert_eq!(err.verdict(), Verdict::TrustDataUnavailable, "{err:?}");

    let dead = Repository::new(
        &format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()),
        "app",
    );
    let err = c.get_manifest(&dead, "v1").await.unwrap_err();
    assert_eq!((err.reason(), err.verdict()), ("ConnectionFailed", Verdict::TrustDataUnavailable), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flipped_bytes_and_oversized_manifests_are_refused() {
    let registry = Registry::start();
    let pushed = registry.push_image("app", "v1", "the real layer");
    let proxy = FaultyProxy::start(&registry.url()).await;
    let repo = Repository::new(&proxy.host(), "app");
    let c = client(RegistryConfig {
        limits: Limits { manifest: 64 << 10, ..Limits::default() },
        cache_bytes: 0,
        ..plain()
    });
    let manifest = c.get_manifest(&repo, &pushed.digest).await.unwrap().unwrap();
    let layer = manifest.image().unwrap().layers[0].clone();

    proxy.set("/blobs/", Fault::FlipByte { index: 3 });
    let err = c.get_blob(&repo, &layer, 1 << 20).await.unwrap_err();
    assert!(
        matches!(&err, OciError::DigestMismatch { what: "blob", expected, .. } if *expected == layer.digest),
        "{err:?}"
    );
    assert_eq!(err.verdict(), Verdict::Tampered);

    // By tag: the body no longer hashes to the registry's Docker-Content-Digest.
    proxy.set("/manifests/", Fault::FlipByte { index: 40 });
    let err = c.get_manifest(&repo, "v1").await.unwrap_err();
    assert!(
        matches!(&err, OciError::DigestMismatch { what: "manifest", expected, .. } if *expected == pushed.digest),
        "{err:?}"
    );
    // By digest: the body does not hash to the digest asked for.
    let err = c.get_manifest(&repo, &pushed.digest).await.unwrap_err();
    assert_eq!((err.reason(), err.verdict()), ("DigestMismatch", Verdict::Tampered));

    proxy.set("/manifests/", Fault::Oversized { bytes: 5 << 20 });
    let err = c.get_manifest(&repo, "v1").await.unwrap_err();
    assert!(matches!(err, OciError::TooLarge { what: "manifest", limit, .. } if limit == 64 << 10), "{err:?}");
    assert_eq!(err.verdict(), Verdict::Tampered);

    proxy.clear();
    assert_eq!(c.get_manifest(&repo, "v1").await.unwrap().unwrap().descriptor.digest, pushed.digest);
}
