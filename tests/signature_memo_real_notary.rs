//! The TUF signature memo (src/tuf/metadata.rs `SignatureMemo`) against a real notary-server:
//! a refresh of unchanged metadata does no public-key operation, and a document that changed
//! in any byte is verified again, so a hostile server cannot pass an edited document off under
//! the signatures of the genuine one. One test in its own binary: it reads the process-wide
//! signature counter, which concurrent tests would move.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::*;
use trustwatch::engine::{Resolution, ResolveOptions, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{Anchors, PinnedKey, signature_verifications};
use trustwatch::verdict::Verdict;

fn opts() -> ResolveOptions {
    ResolveOptions { signers: vec![], now: Timestamp::now(), expiry_warning: SignedDuration::from_hours(1) }
}

/// A refresh now (`fresh_since` = now: nothing cached counts as fresh), and the public-key
/// operations it did.
async fn refresh(e: &TrustEngine<NotaryHttp>, image: &str) -> (Resolution, u64) {
    let before = signature_verifications();
    let r = e.verify(&ImageRef::parse(image).unwrap(), &opts(), Instant::now()).await;
    (r, signature_verifications() - before)
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_metadata_is_not_verified_again_and_any_changed_byte_is() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/memo/app";
    client.init(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    let proxy = HostileServer::proxy(&server).await;
    let mut cfg = ServerConfig::new(&proxy.url());
    cfg.timeout = Duration::from_secs(5);
    let pinned = vec![PinnedKey::from_pem("root", &client.root_cert_pem(gun)).unwrap()];
    let engine = TrustEngine::new(NotaryHttp::new(cfg).unwrap(), Anchors { pinned, revoked: BTreeSet::new() });
    let v1 = format!("{gun}:v1@sha256:{}", sha_hex("v1"));

    // Cold: root, timestamp, snapshot and targets are each verified.
    let (r, cold) = refresh(&engine, &v1).await;
    assert_eq!(r.verdict, Verdict::Verified, "{r:#?}");
    assert!(cold >= 4, "a cold update verifies every top-level role, counted {cold}");

    // Warm, nothing changed on the server: the same documents, no public-key operation.
    for _ in 0..2 {
        let (r, warm) = refresh(&engine, &v1).await;
        assert_eq!(r.verdict, Verdict::Verified, "{r:#?}");
        assert_eq!(warm, 0, "unchanged metadata verified again");
    }

    // The proxy serves the genuine timestamp with one field of its signed part changed and the
    // genuine signatures kept. Were the memo keyed on the signature alone it would pass.
    let (status, genuine) = fetch_raw(&server, &metadata_path(gun, "timestamp"));
    assert_eq!(status, 200);
    let mut edited: serde_json::Value = serde_json::from_slice(&genuine).unwrap();
    let version = edited["signed"]["version"].as_u64().unwrap();
    edited["signed"]["version"] = serde_json::json!(version + 1);
    proxy.set_rule("/timestamp.json", Rule::Serve { status: 200, body: serde_json::to_vec(&edited).unwrap() });
    let (r, forged) = refresh(&engine, &v1).await;
    assert_eq!((r.verdict, r.reason.as_str()), (Verdict::SignatureInvalid, "SignatureThreshold"), "{r:#?}");
    assert!(forged >= 1, "the edited timestamp was not verified");

    // The genuine document again, served byte for byte: answered from the memo once more.
    proxy.set_rule("/timestamp.json", Rule::Serve { status: 200, body: genuine.clone() });
    let (r, replay) = refresh(&engine, &v1).await;
    assert_eq!(r.verdict, Verdict::Verified, "{r:#?}");
    assert_eq!(replay, 0, "the genuine timestamp verified again");
    proxy.clear_rules();

    // A real re-sign (a new target): new targets, snapshot and timestamp, each verified, and
    // the new tag seen.
    client.add_hash(gun, "v2", 10, &sha_hex("v2"), &[]);
    let v2 = format!("{gun}:v2@sha256:{}", sha_hex("v2"));
    let (r, resigned) = refresh(&engine, &v2).await;
    assert_eq!(r.verdict, Verdict::Verified, "{r:#?}");
    assert!(resigned >= 3, "a re-signed repository verifies timestamp, snapshot and targets, counted {resigned}");
    let (r, warm) = refresh(&engine, &v2).await;
    assert_eq!((r.verdict, warm), (Verdict::Verified, 0), "{r:#?}");
}
