//! Real image digests: images pushed to a real docker-registry, their manifest digests (as
//! the registry reports them, which is what a runtime puts in `imageID`) signed with the
//! notary CLI, and verified by trustwatch. A push over a signed tag without signing is drift
//! for every pod that pulls it afterwards.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::time::Instant;
use support::*;
use trustwatch::engine::{ResolveOptions, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::{ImageRef, RunningDigest, running_digest};
use trustwatch::tuf::{Anchors, PinnedKey};
use trustwatch::verdict::Verdict;

#[tokio::test(flavor = "multi_thread")]
async fn registry_digests_signed_with_notary_verify_and_an_unsigned_push_over_the_tag_is_drift() {
    let registry = Registry::start();
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let repo = "shop/web";
    let gun = format!("{}/{repo}", registry.host());

    let v1 = registry.push_image(repo, "v1", "hello from v1");
    client.init(&gun);
    client.add_hash(&gun, "v1", v1.size, v1.hex(), &[]);
    let listed = client.lookup(&gun, "v1").expect("notary lookup v1");
    assert_eq!((listed.digest_hex.as_str(), listed.size), (v1.hex(), v1.size), "notary signed the registry's digest");

    let mut cfg = ServerConfig::new(&server.url());
    cfg.ca_pem = Some(server.ca_pem());
    let pinned = vec![PinnedKey::from_pem("root", &client.root_cert_pem(&gun)).unwrap()];
    let engine = TrustEngine::new(NotaryHttp::new(cfg).unwrap(), Anchors { pinned, revoked: BTreeSet::new() });
    let opts =
        ResolveOptions { signers: vec![], now: Timestamp::now(), expiry_warning: SignedDuration::from_hours(168) };

    // What a pod that pulled v1 reports as imageID.
    let image_id = format!("{gun}@{}", v1.digest);
    let running = running_digest(&image_id).repository().expect("a repository digest").to_string();
    // What a runtime reports for an image it only knows by ID (built or loaded locally): the
    // config digest, which no signature covers. It is its own kind, never compared as drift.
    let config = registry.config_digest(repo, "v1");
    assert_ne!(config, v1.digest);
    for id in [config.clone(), format!("docker://{config}")] {
        assert_eq!(running_digest(&id), RunningDigest::ConfigId(config.clone()), "{id}");
    }
    let pod_image = ImageRef::parse(&format!("{gun}:v1@{running}")).unwrap();
    let r = engine.verify(&pod_image, &opts, Instant::now()).await;
    assert_eq!(r.verdict, Verdict::Verified, "{r:#?}");
    assert_eq!(r.digest.as_deref(), Some(v1.digest.as_str()));

    // Someone pushes over v1 without signing: the registry now serves another digest.
    let pushed_over = registry.push_image(repo, "v1", "tampered v1");
    assert_ne!(pushed_over.digest, v1.digest);
    assert_eq!(registry.resolve(repo, "v1"), Some(pushed_over.clone()));
    let pulled_now = ImageRef::parse(&format!("{gun}:v1@{}", pushed_over.digest)).unwrap();
    let r = engine.verify(&pulled_now, &opts, Instant::now()).await;
    assert_eq!((r.verdict, r.reason.as_str()), (Verdict::DigestDrift, "DigestMismatch"), "{r:#?}");
    assert!(r.message.contains(&v1.digest) && r.message.contains(&pushed_over.digest), "{}", r.message);
    // Pods still running the signed digest stay verified.
    let r = engine.verify(&pod_image, &opts, Instant::now()).await;
    assert_eq!(r.verdict, Verdict::Verified);
}
