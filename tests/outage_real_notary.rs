//! An outage is never a revocation, a drift or "unsigned": real metadata from a real
//! notary-server, with the hostile proxy failing the one document each scenario needs.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::*;
use trustwatch::engine::{Resolution, ResolveOptions, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{Anchors, PinnedKey, TrustMemory};
use trustwatch::verdict::Verdict;

type Engine = TrustEngine<NotaryHttp>;

fn engine(url: &str, ca_pem: Option<String>, root_pem: &str) -> Engine {
    let mut cfg = ServerConfig::new(url);
    cfg.ca_pem = ca_pem;
    cfg.timeout = Duration::from_secs(3);
    let pinned = vec![PinnedKey::from_pem("root", root_pem).unwrap()];
    TrustEngine::new(NotaryHttp::new(cfg).unwrap(), Anchors { pinned, revoked: BTreeSet::new() })
}

fn opts(signers: &[&str]) -> ResolveOptions {
    ResolveOptions {
        signers: signers.iter().map(|s| s.to_string()).collect(),
        now: Timestamp::now(),
        expiry_warning: SignedDuration::from_hours(24),
    }
}

async fn check(e: &Engine, image: &str, o: &ResolveOptions) -> Resolution {
    e.verify(&ImageRef::parse(image).unwrap(), o, Instant::now()).await
}

async fn memory(e: &Engine, gun: &str) -> TrustMemory {
    std::sync::Arc::unwrap_or_clone(e.repository(gun, Timestamp::now(), Instant::now()).await.memory)
}

fn assert_verdict(r: &Resolution, verdict: Verdict, reason: &str) {
    assert_eq!((r.verdict, r.reason.as_str()), (verdict, reason), "unexpected resolution: {r:#?}");
}

/// `targets/releases` (alice) delegating `targets/releases/qa` (bob), which signs `v1`.
fn nested_repository(client: &NotaryClient, gun: &str) -> String {
    client.init(gun);
    client.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(gun, "rel", 10, &sha_hex("rel"), &["targets/releases"]);
    let bob = client.gen_delegation_key("bob", KeyKind::Ecdsa);
    client.import_key(&bob, "targets/releases/qa");
    client.delegation_add(gun, "targets/releases/qa", &bob, None);
    let digest = sha_hex("qa-v1");
    client.add_hash(gun, "v1", 10, &digest, &["targets/releases/qa"]);
    digest
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_delegation_that_fails_to_load_does_not_revoke_its_children() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/outage/nested";
    let digest = nested_repository(&client, gun);
    let proxy = HostileServer::proxy(&server).await;
    let root = client.root_cert_pem(gun);
    let running = engine(&proxy.url(), None, &root);
    let image = format!("{gun}:v1@sha256:{digest}");
    assert_verdict(&check(&running, &image, &opts(&["releases/qa"])).await, Verdict::Verified, "Verified");
    // What `trustwatch verify --state` or TrustRoot status keeps across a restart.
    let saved = memory(&running, gun).await;
    assert!(saved.signers.contains_key("targets/releases/qa"), "{saved:?}");

    // The parent changes (so the running engine fetches it again) and cannot be loaded.
    client.add_hash(gun, "rel2", 10, &sha_hex("rel2"), &["targets/releases"]);
    proxy.set_rule(&listed_name(&server, gun, "targets/releases"), Rule::Status(503));
    let restarted = engine(&proxy.url(), None, &root);
    restarted.remember(gun, saved.clone()).await;
    for (who, e) in [("running", &running), ("restarted", &restarted)] {
        let r = check(e, &image, &opts(&["releases/qa"])).await;
        assert_eq!(r.verdict, Verdict::TrustDataUnavailable, "{who}: {r:#?}");
        assert!(r.message.contains("targets/releases"), "{who}: the failing parent is named: {}", r.message);
        let view = e.repository(gun, Timestamp::now(), Instant::now()).await;
        let repo = view.result.expect("the repository itself verifies");
        assert!(
            !repo.removed.contains_key("targets/releases/qa"),
            "{who}: an outage is no removal: {:?}",
            repo.removed
        );
        assert!(view.memory.signers.contains_key("targets/releases/qa"), "{who}: the child is remembered");
        assert_eq!(
            view.memory.versions.get("targets/releases/qa"),
            saved.versions.get("targets/releases/qa"),
            "{who}: its trusted version is kept for rollback protection"
        );
        // Without a required signer the answer is the same: the role ahead of the rest failed.
        let r = check(e, &image, &opts(&[])).await;
        assert_eq!(r.verdict, Verdict::TrustDataUnavailable, "{who}: {r:#?}");
    }

    // A verifier that never saw the child cannot know it, but it does not call a required
    // signer below a failing parent missing either.
    let fresh = engine(&proxy.url(), None, &root);
    let r = check(&fresh, &image, &opts(&["releases/qa"])).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "RoleUnavailable");

    // Once the parent loads again, the child verifies again.
    proxy.clear_rules();
    assert_verdict(&check(&running, &image, &opts(&["releases/qa"])).await, Verdict::Verified, "Verified");
    // A child its verified parent stops listing is removed: that is a revocation.
    client.delegation_remove_role(gun, "targets/releases/qa");
    let r = check(&running, &image, &opts(&["releases/qa"])).await;
    assert_verdict(&r, Verdict::SignerRevoked, "SignerRemoved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_role_ahead_is_never_skipped_for_a_lower_roles_mismatch() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/outage/fallback";
    client.init(gun);
    let (older, current) = (sha_hex("v1-old"), sha_hex("v1-current"));
    // `targets` still signs an older digest of v1; `targets/releases`, first in the order
    // Docker Content Trust resolves tags in (`docker pull`; `notary list` lists `targets`
    // first instead), signs the one the pods run.
    client.add_hash(gun, "v1", 10, &older, &[]);
    client.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(gun, "v1", 10, &current, &["targets/releases"]);
    let proxy = HostileServer::proxy(&server).await;
    let root = client.root_cert_pem(gun);
    let running = format!("{gun}:v1@sha256:{current}");
    assert_verdict(
        &check(&engine(&proxy.url(), None, &root), &running, &opts(&[])).await,
        Verdict::Verified,
        "Verified",
    );

    let releases = listed_name(&server, gun, "targets/releases");
    proxy.set_rule(&releases, Rule::Status(503));
    let r = check(&engine(&proxy.url(), None, &root), &running, &opts(&[])).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "RoleUnavailable");
    assert!(r.message.contains("targets/releases") && r.message.contains("503"), "{}", r.message);
    // A lower role's Verified for the very digest running may stand.
    let r = check(&engine(&proxy.url(), None, &root), &format!("{gun}:v1@sha256:{older}"), &opts(&[])).await;
    assert_verdict(&r, Verdict::Verified, "Verified");
    assert_eq!(r.signers, vec!["targets"]);

    // An integrity failure of the role ahead is the answer, not the lower role's mismatch.
    proxy.set_rule(&releases, Rule::FlipBit { byte_index: 100 });
    let r = check(&engine(&proxy.url(), None, &root), &running, &opts(&[])).await;
    assert_verdict(&r, Verdict::Tampered, "HashMismatch");
    assert!(r.message.contains("targets/releases"), "{}", r.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_verified_before_that_answers_404_is_unavailable_not_unsigned() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/outage/vanished";
    client.init(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    let proxy = HostileServer::proxy(&server).await;
    let root = client.root_cert_pem(gun);
    let image = format!("{gun}:v1");
    let running = engine(&proxy.url(), None, &root);
    assert_verdict(&check(&running, &image, &opts(&[])).await, Verdict::Verified, "Verified");
    let saved = memory(&running, gun).await;

    proxy.set_rule("/timestamp.json", Rule::Status(404));
    let r = check(&running, &image, &opts(&[])).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "TrustDataVanished");
    assert!(r.message.contains("timestamp"), "{}", r.message);
    proxy.set_rule("/root.json", Rule::Status(404));
    let restarted = engine(&proxy.url(), None, &root);
    restarted.remember(gun, saved.clone()).await;
    let r = check(&restarted, &image, &opts(&[])).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "TrustDataVanished");
    assert!(r.message.contains("root"), "{}", r.message);
    // The versions survive the outage, so the data cannot come back older.
    assert_eq!(memory(&restarted, gun).await.versions, saved.versions);
    // A repository never verified before is simply not signed.
    let r = check(&engine(&proxy.url(), None, &root), &image, &opts(&[])).await;
    assert_verdict(&r, Verdict::Unsigned, "NoTrustData");

    proxy.clear_rules();
    assert_verdict(&check(&running, &image, &opts(&[])).await, Verdict::Verified, "Verified");
    assert_verdict(&check(&restarted, &image, &opts(&[])).await, Verdict::Verified, "Verified");
}
