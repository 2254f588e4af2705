//! A refresh that finds nothing new keeps the trusted state as it is (`tuf::refresh_within`
//! answers `Refreshed::Unchanged`, the engine hands out the same `Arc`), against a real
//! notary-server. What the shortcut must not skip is checked too: the clock (an expired
//! timestamp still fails), the operator's revocations, and anything published.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;
use support::*;
use trustwatch::engine::{ResolveOptions, Source, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{Anchors, Fetch, FetchError, PinnedKey, Refreshed, TrustedRepo, refresh_within};
use trustwatch::verdict::Verdict;

/// The state the engine holds for `gun` after a refresh at `now` (`fresh_since` = now, so the
/// server is asked every time).
async fn state(e: &TrustEngine<NotaryHttp>, gun: &str, now: Timestamp) -> Result<Arc<TrustedRepo>, String> {
    e.repository(gun, now, Instant::now()).await.result.map_err(|e| format!("{}: {e}", e.reason()))
}

/// One repository of a server, as the pure core reads it.
struct Repo<'a> {
    http: &'a NotaryHttp,
    gun: &'a str,
}

impl Fetch for Repo<'_> {
    fn fetch(
        &self,
        name: &str,
        limit: u64,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
        self.http.fetch(self.gun, name, limit)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_repository_keeps_its_state_and_still_answers_to_the_clock_revocation_and_publishing() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/unchanged/app";
    client.init(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    let pinned = vec![PinnedKey::from_pem("root", &client.root_cert_pem(gun)).unwrap()];
    let anchors = Anchors { pinned, revoked: BTreeSet::new() };
    let mut cfg = ServerConfig::new(&server.url());
    cfg.ca_pem = Some(server.ca_pem());
    let http = NotaryHttp::new(cfg.clone()).unwrap();
    let engine = TrustEngine::new(NotaryHttp::new(cfg).unwrap(), anchors.clone());

    // Nothing published between two refreshes: the very same state, not a copy.
    // The answers' generation (what lets a quiet scan skip asking again) moves with the
    // state, not with the refreshes.
    let g0 = engine.generation();
    let first = state(&engine, gun, Timestamp::now()).await.expect("cold refresh");
    let g1 = engine.generation();
    assert_ne!(g1, g0, "a repository seen for the first time changes the answers");
    let second = state(&engine, gun, Timestamp::now()).await.expect("warm refresh");
    assert!(Arc::ptr_eq(&first, &second), "an unchanged repository was rebuilt");
    assert_eq!(engine.generation(), g1, "a refresh that kept the state moved the generation");

    // The clock still counts: past the timestamp's expiry the same bytes are refused...
    let expires = first.timestamp.doc.expires;
    let late = expires + SignedDuration::from_secs(1);
    let err = state(&engine, gun, late).await.expect_err("an expired timestamp was kept");
    assert!(err.starts_with("Expired"), "{err}");
    let g2 = engine.generation();
    assert_ne!(g2, g1, "a failed refresh must not pass for unchanged answers");
    // ...and at the right time the state trusted before is kept, still untouched.
    let again = state(&engine, gun, Timestamp::now()).await.expect("refresh after the expired one");
    assert!(Arc::ptr_eq(&first, &again), "the state was rebuilt after a failed refresh");
    let g3 = engine.generation();
    assert_ne!(g3, g2, "the answers changed back from the failure");

    // The operator's revocations are judged again: with the timestamp key revoked the same
    // bytes no longer pass, though nothing changed on the server.
    let repo = Repo { http: &http, gun };
    let memory = first.memory();
    let now = Timestamp::now();
    let kept = refresh_within(&repo, gun, Some(&first), &memory, &anchors, now, u64::MAX).await;
    assert!(matches!(kept, Ok(Refreshed::Unchanged)), "nothing changed, yet: {:?}", kept.map(|_| "a new state"));
    let ts_key = first.root.doc.signed.roles["timestamp"].keyids[0].clone();
    let revoking = Anchors { revoked: BTreeSet::from([ts_key]), ..anchors.clone() };
    let revoked = refresh_within(&repo, gun, Some(&first), &memory, &revoking, now, u64::MAX).await;
    match revoked {
        Err(e) => assert_eq!(e.verdict(), Verdict::SignerRevoked, "{e}"),
        Ok(_) => panic!("a revoked timestamp key still passed"),
    }
    // Remembered versions other than the state's own: the full update decides, and builds a
    // state that remembers them.
    let mut other = memory.clone();
    other.versions.insert("targets/elsewhere".into(), 7);
    match refresh_within(&repo, gun, Some(&first), &other, &anchors, now, u64::MAX).await {
        Ok(Refreshed::New(r)) => assert_eq!(r.remembered.get("targets/elsewhere"), Some(&7)),
        Ok(Refreshed::Unchanged) => panic!("kept a state that does not hold the remembered versions"),
        Err(e) => panic!("the full update failed: {e}"),
    }

    // Something published: a new state, and the new tag in it.
    client.add_hash(gun, "v2", 10, &sha_hex("v2"), &[]);
    let third = state(&engine, gun, Timestamp::now()).await.expect("refresh after a publish");
    assert!(!Arc::ptr_eq(&first, &third), "a publish was not picked up");
    assert_ne!(engine.generation(), g3, "a new state kept the answers' generation");
    let opts = ResolveOptions { signers: vec![], now: Timestamp::now(), expiry_warning: SignedDuration::from_hours(1) };
    let v2 = ImageRef::parse(&format!("{gun}:v2@sha256:{}", sha_hex("v2"))).unwrap();
    let r = engine.verify(&v2, &opts, Instant::now()).await;
    assert_eq!(r.verdict, Verdict::Verified, "{r:#?}");
}
