//! TUF and Notary rules a key thief or a hostile server would otherwise turn against the
//! cluster, each against real metadata from a real notary-server. Faults the notary CLI will
//! not make are made with the real keys of its trust dir and published through the server's
//! own API (support::resign), so the server validates them like any upload.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::*;
use trustwatch::engine::{Resolution, ResolveOptions, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{Anchors, PinnedKey};
use trustwatch::verdict::Verdict;

type Engine = TrustEngine<NotaryHttp>;

fn engine(url: &str, ca_pem: Option<String>, root_pem: &str) -> Engine {
    let mut cfg = ServerConfig::new(url);
    cfg.ca_pem = ca_pem;
    cfg.timeout = Duration::from_secs(3);
    let pinned = vec![PinnedKey::from_pem("root", root_pem).unwrap()];
    TrustEngine::new(NotaryHttp::new(cfg).unwrap(), Anchors { pinned, revoked: BTreeSet::new() })
}

fn engine_for(server: &NotaryServer, client: &NotaryClient, gun: &str) -> Engine {
    engine(&server.url(), Some(server.ca_pem()), &client.root_cert_pem(gun))
}

fn at(now: Timestamp, signers: &[&str]) -> ResolveOptions {
    ResolveOptions {
        signers: signers.iter().map(|s| s.to_string()).collect(),
        now,
        expiry_warning: SignedDuration::from_hours(1),
    }
}

fn opts(signers: &[&str]) -> ResolveOptions {
    at(Timestamp::now(), signers)
}

async fn check(e: &Engine, image: &str, o: &ResolveOptions) -> Resolution {
    e.verify(&ImageRef::parse(image).unwrap(), o, Instant::now()).await
}

fn assert_verdict(r: &Resolution, verdict: Verdict, reason: &str) {
    assert_eq!((r.verdict, r.reason.as_str()), (verdict, reason), "unexpected resolution: {r:#?}");
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Signs `doc` with the trust dir's key for `role` of `gun`, under the ID root lists it by.
fn resign_top_role(client: &NotaryClient, server: &NotaryServer, gun: &str, role: &str, doc: &Metadata) -> Vec<u8> {
    let root = Metadata::fetch(server, gun, "root");
    let sk = client.signing_key(role, if role == "root" { None } else { Some(gun) });
    let ids: Vec<String> = serde_json::from_value(root.signed["roles"][role]["keyids"].clone()).unwrap();
    let id = key_id_of(&root.signed["keys"], &ids, &sk);
    doc.resign(&[(&id, &sk)])
}

fn bump(doc: &mut Metadata) {
    doc.signed["version"] = serde_json::json!(doc.signed["version"].as_u64().unwrap() + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_repositorys_genuine_metadata_served_for_another_gun_is_refused() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let (a, b) = ("registry.example.com/gun/alpha", "registry.example.com/gun/beta");
    // `notary init` reuses the trust dir's root key for every GUN, with one certificate each.
    client.init(a);
    client.add_hash(a, "v1", 10, &sha_hex("alpha-v1"), &[]);
    client.init(b);
    client.add_hash(b, "v1", 10, &sha_hex("beta-v1"), &[]);
    let pin = client.root_cert_pem(b);
    let proxy = HostileServer::proxy(&server).await;
    let honest = engine(&proxy.url(), None, &pin);
    assert_verdict(&check(&honest, &format!("{b}:v1"), &opts(&[])).await, Verdict::Verified, "Verified");

    // The proxy answers every request for B with A's documents.
    proxy.set_rule("", Rule::Rewrite { from: format!("/v2/{b}/"), to: format!("/v2/{a}/") });
    let image = format!("{b}:v1@sha256:{}", sha_hex("alpha-v1"));
    let r = check(&engine(&proxy.url(), None, &pin), &image, &opts(&[])).await;
    assert_verdict(&r, Verdict::SignatureInvalid, "GunMismatch");
    assert!(r.message.contains(a) && r.message.contains(b), "both names are given: {}", r.message);
    // The running engine that trusted B's root refuses the swap too: A's timestamp is signed
    // by A's own timestamp key, which B's root does not list.
    let r = check(&honest, &image, &opts(&[])).await;
    assert_eq!(r.verdict, Verdict::SignatureInvalid, "{r:#?}");

    // The reference client, seeing the swap on first use, refuses it for the same reason.
    let reference = NotaryClient::with_remote(&proxy.url(), &server.ca_pem());
    let refused = tokio::task::spawn_blocking(move || reference.list(b)).await.unwrap();
    let err = refused.expect_err("notary list must refuse A's root for B");
    assert!(err.contains("unable to retrieve valid leaf certificates"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_trusted_root_recovers_through_its_successor_without_a_restart() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/roots/expiring";
    client.init_with_server_snapshot(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    // The next root version: the same keys, expiring in two days (the CLI signs 10 years).
    let mut root = Metadata::fetch(&server, gun, "root");
    bump(&mut root);
    let short_lived = root.signed["version"].as_u64().unwrap();
    let short = Timestamp::from_second(Timestamp::now().as_second() + 48 * 3600).unwrap();
    root.signed["expires"] = serde_json::json!(short.to_string());
    let signed = resign_top_role(&client, &server, gun, "root", &root);
    upload(&server, gun, &[("root", signed)]);

    let e = engine_for(&server, &client, gun);
    let image = format!("{gun}:v1");
    assert_verdict(&check(&e, &image, &opts(&[])).await, Verdict::Verified, "Verified");
    let trusted = e.repository(gun, Timestamp::now(), Instant::now()).await.result.unwrap();
    assert_eq!((trusted.root.doc.signed.version, trusted.root.doc.expires), (short_lived, short));

    // The publisher rotates the root (ten years again) while the engine runs.
    client.rotate_root(gun);
    let later = short + SignedDuration::from_hours(1);
    let r = check(&e, &image, &at(later, &[])).await;
    assert_verdict(&r, Verdict::Verified, "Verified");
    let trusted = e.repository(gun, later, Instant::now()).await.result.unwrap();
    assert_eq!(trusted.root.doc.signed.version, short_lived + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_vanishes_from_the_snapshot_while_still_delegated_is_a_rollback() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/roots/mix";
    client.init(gun);
    let (older, current) = (sha_hex("v1-vulnerable"), sha_hex("v1-fixed"));
    client.add_hash(gun, "v1", 10, &older, &[]);
    client.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(gun, "v1", 10, &current, &["targets/releases"]);
    let e = engine_for(&server, &client, gun);
    let vulnerable = format!("{gun}:v1@sha256:{older}");
    assert_verdict(&check(&e, &vulnerable, &opts(&[])).await, Verdict::DigestDrift, "DigestMismatch");
    let saved = e.repository(gun, Timestamp::now(), Instant::now()).await.memory;

    // A thief of the snapshot key (the CLI keeps it in the trust dir) publishes a snapshot
    // that no longer lists targets/releases, while targets still delegates to it: the release
    // disappears and v1 falls back to the older digest targets signed.
    let mut snap = Metadata::fetch(&server, gun, "snapshot");
    bump(&mut snap);
    snap.signed["meta"].as_object_mut().unwrap().remove("targets/releases").expect("listed");
    let forged = resign_top_role(&client, &server, gun, "snapshot", &snap);
    upload(&server, gun, &[("snapshot", forged)]);

    let r = check(&e, &vulnerable, &opts(&[])).await;
    assert_verdict(&r, Verdict::Tampered, "RoleVanished");
    assert!(r.message.contains("targets/releases"), "{}", r.message);
    let restarted = engine_for(&server, &client, gun);
    restarted.remember(gun, saved).await;
    let r = check(&restarted, &vulnerable, &opts(&[])).await;
    assert_verdict(&r, Verdict::Tampered, "RoleVanished");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delegation_certificate_does_not_count_before_its_not_before() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/keys/early";
    client.init(gun);
    // x509 validity has whole seconds: the delegation certificate must start after the root's.
    std::thread::sleep(Duration::from_millis(1100));
    let alice = client.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &["targets/releases"]);
    let not_before = cert_not_before(&alice.cert_pem);
    let e = engine_for(&server, &client, gun);
    let image = format!("{gun}:v1");
    assert_verdict(&check(&e, &image, &opts(&["releases"])).await, Verdict::Verified, "Verified");

    let early = not_before - SignedDuration::from_millis(500);
    let r = check(&engine_for(&server, &client, gun), &image, &at(early, &["releases"])).await;
    assert_verdict(&r, Verdict::SignatureInvalid, "CertificateNotYetValid");
    assert!(r.message.contains("targets/releases"), "{}", r.message);
}

fn cert_not_before(pem: &str) -> Timestamp {
    use x509_cert::der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).unwrap();
    let secs = cert.tbs_certificate().validity().not_before.to_unix_duration().as_secs();
    Timestamp::from_second(secs as i64).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_key_listed_under_two_ids_counts_once_toward_a_threshold() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/keys/twice";
    client.init(gun);
    let alice = client.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &["targets/releases"]);
    let image = format!("{gun}:v1");
    assert_verdict(
        &check(&engine_for(&server, &client, gun), &image, &opts(&["releases"])).await,
        Verdict::Verified,
        "Verified",
    );

    // The targets key holder lists alice's key a second time, in its bare form, and asks for
    // two signatures; alice alone signs under both IDs.
    let mut targets = Metadata::fetch(&server, gun, "targets");
    bump(&mut targets);
    let role = &mut targets.signed["delegations"]["roles"][0];
    let x509_id = role["keyids"][0].as_str().unwrap().to_string();
    let spki = {
        use p256::pkcs8::EncodePublicKey;
        alice.signing_key().verifying_key().to_public_key_der().unwrap().as_bytes().to_vec()
    };
    let bare_id = trustwatch::tuf::keys::key_id("ecdsa", &b64(&spki));
    assert_ne!(x509_id, bare_id);
    role["keyids"] = serde_json::json!([x509_id, bare_id]);
    role["threshold"] = serde_json::json!(2);
    targets.signed["delegations"]["keys"][&bare_id] =
        serde_json::json!({"keytype": "ecdsa", "keyval": {"private": null, "public": b64(&spki)}});
    let targets_bytes = resign_top_role(&client, &server, gun, "targets", &targets);
    let mut releases = Metadata::fetch(&server, gun, "targets/releases");
    bump(&mut releases);
    let sk = alice.signing_key();
    let releases_bytes = releases.resign(&[(&x509_id, &sk), (&bare_id, &sk)]);
    let mut snap = Metadata::fetch(&server, gun, "snapshot");
    bump(&mut snap);
    snap.signed["meta"]["targets"] = file_meta(&targets_bytes);
    snap.signed["meta"]["targets/releases"] = file_meta(&releases_bytes);
    let snap_bytes = resign_top_role(&client, &server, gun, "snapshot", &snap);
    upload(&server, gun, &[("targets", targets_bytes), ("targets/releases", releases_bytes), ("snapshot", snap_bytes)]);

    let r = check(&engine_for(&server, &client, gun), &image, &opts(&["releases"])).await;
    assert_verdict(&r, Verdict::SignatureInvalid, "SignatureThreshold");
    assert!(r.message.contains("1 valid") && r.message.contains("needs 2"), "{}", r.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_larger_than_its_memory_budget_is_refused() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/keys/budget";
    client.init(gun);
    client.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    for i in 0..20 {
        client.add_hash(gun, &format!("v{i}"), 10, &sha_hex(&format!("v{i}")), &["targets/releases"]);
    }
    let size = |name: &str| fetch_raw(&server, &format!("/v2/{gun}/_trust/tuf/{name}")).1.len() as u64;
    let total = ["root.json", "timestamp.json", "snapshot.json", "targets.json", "targets/releases.json"]
        .iter()
        .map(|n| size(n))
        .sum::<u64>();
    let image = format!("{gun}:v3");
    let within = engine_for(&server, &client, gun).with_repository_budget(total);
    assert_verdict(&check(&within, &image, &opts(&["releases"])).await, Verdict::Verified, "Verified");

    // One byte short: the last document (the delegation) does not fit.
    let over = engine_for(&server, &client, gun).with_repository_budget(total - 1);
    let r = check(&over, &image, &opts(&["releases"])).await;
    assert_verdict(&r, Verdict::Tampered, "RepositoryTooLarge");
    assert!(r.message.contains(&format!("{}", total - 1)), "{}", r.message);
    // Far short: the repository itself does not fit.
    let tiny = engine_for(&server, &client, gun).with_repository_budget(size("root.json") + 10);
    let r = check(&tiny, &image, &opts(&[])).await;
    assert_verdict(&r, Verdict::Tampered, "RepositoryTooLarge");
}

#[tokio::test(flavor = "multi_thread")]
async fn target_names_in_any_unicode_form_are_signed_and_verified_byte_for_byte_as_notary_does() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/cjson/names";
    client.init(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    // Target names are any string to notary: a decomposed accent (not NFC), a line separator.
    client.add_hash(gun, "cafe\u{301}", 10, &sha_hex("cafe"), &[]);
    client.add_hash(gun, "line\u{2028}break", 10, &sha_hex("line"), &[]);
    let listed = client.list(gun).expect("notary lists them");
    assert_eq!(listed.len(), 3, "{listed:?}");
    let r = check(&engine_for(&server, &client, gun), &format!("{gun}:v1"), &opts(&[])).await;
    assert_verdict(&r, Verdict::Verified, "Verified");
    let repo = engine_for(&server, &client, gun);
    let repo = repo.repository(gun, Timestamp::now(), Instant::now()).await.result.unwrap();
    assert!(repo.targets.doc.signed.targets.contains_key("cafe\u{301}"), "the name as signed, not normalized");
}
