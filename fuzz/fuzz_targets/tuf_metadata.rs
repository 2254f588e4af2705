//! The pure TUF core (`tuf::update`) with real trusted state, one document served as the
//! fuzzer's bytes: byte 0 picks the document (one of the real ones, or the next root version,
//! which the server does not have), bit 0 of byte 1 picks a first verification or an
//! incremental one from the trusted state. Whatever the bytes, nothing but a genuine document
//! is ever trusted, and no input panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustwatch::engine::{ResolveOptions, resolve};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{DelegationOutcome, TrustMemory, update};
use trustwatch_fuzz::{Served, fixtures};

fuzz_target!(|data: &[u8]| {
    let f = fixtures();
    if data.len() < 2 {
        return;
    }
    let next_root = format!("{}.root.json", f.trusted.root.doc.signed.version + 1);
    let slot = data[0] as usize % (f.files.len() + 1);
    let name = f.files.get(slot).map_or(next_root.as_str(), |(n, _)| n.as_str());
    let incremental = data[1] & 1 == 1;
    let served = Served::new(&f.files, Some((name, &data[2..])));
    let (prev, memory) =
        if incremental { (Some(&f.trusted), f.trusted.memory()) } else { (None, TrustMemory::default()) };
    let Ok(repo) = futures::executor::block_on(update(&served, &f.gun, prev, &memory, &f.anchors, f.now)) else {
        return;
    };
    let genuine = |role: &str, canonical: &[u8]| f.genuine.get(role).is_some_and(|s| s.contains(canonical));
    assert!(genuine("root", &repo.root.doc.canonical), "a root that is not genuine was trusted");
    assert!(genuine("timestamp", &repo.timestamp.doc.canonical), "a timestamp that is not genuine was trusted");
    assert!(genuine("snapshot", &repo.snapshot.doc.canonical), "a snapshot that is not genuine was trusted");
    assert!(genuine("targets", &repo.targets.doc.canonical), "targets that are not genuine were trusted");
    for (role, d) in &repo.delegations {
        if let DelegationOutcome::Verified(v) = &d.outcome {
            assert!(genuine(role, &v.doc.canonical), "{role} that is not genuine was trusted");
        }
    }
    for tag in ["v1", "v2", "qa-v3", "v4"] {
        let image = ImageRef::parse(&format!("{}:{tag}", f.gun)).unwrap();
        for signers in [vec![], vec!["releases".to_string()]] {
            let opts = ResolveOptions { signers, now: f.now, expiry_warning: jiff::SignedDuration::ZERO };
            let _ = resolve(&repo, &image, &opts);
        }
    }
});
