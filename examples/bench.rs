//! `make bench`: throughput and latency of the trust engine against a real notary-server on
//! loopback, and of the scanner's decide step for a large cluster. Prints a table; the
//! numbers in the README come from here.

#[path = "../tests/support/mod.rs"]
mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use support::*;
use trustwatch::engine::{ResolveOptions, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::scanner::pods::{ContainerView, PodView, Workload};
use trustwatch::scanner::{DecideInput, decide, plan};
use trustwatch::tuf::{Anchors, PinnedKey};

const GUN: &str = "registry.bench/team/app";
const TAGS: usize = 200;

fn row(what: &str, n: usize, elapsed: Duration) {
    let per = elapsed.as_secs_f64() / n as f64;
    println!("{what:<58} {n:>7} {:>12.3} ms {:>12.1} /s", per * 1e3, 1.0 / per);
}

/// A row for the median of `samples` (seconds per operation, `n` operations each).
fn median_row(what: &str, n: usize, mut samples: Vec<f64>) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per = samples[samples.len() / 2];
    println!("{what:<58} {n:>7} {:>12.3} ms {:>12.1} /s", per * 1e3, 1.0 / per);
}

/// CPU time of this thread so far, in nanoseconds (/proc/thread-self/schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The first random bytes each TLS crypto provider draws in a process (what a one-shot
/// `trustwatch verify` pays before its first handshake), and P-256 ECDSA verification by the
/// three implementations at hand: RustCrypto p256 (src/tuf/keys.rs), ring and aws-lc-rs.
fn crypto() {
    use ring::rand::SecureRandom as _;
    let mut buf = [0u8; 32];
    let t = thread_cpu_ns();
    ring::rand::SystemRandom::new().fill(&mut buf).unwrap();
    let ring_first = thread_cpu_ns() - t;
    let t = thread_cpu_ns();
    aws_lc_rs::rand::fill(&mut buf).unwrap();
    let aws_first = thread_cpu_ns() - t;
    println!("{:<58} {:>7} {:>12.3} ms", "first random bytes of the process, ring (CPU)", 1, ring_first as f64 / 1e6);
    println!(
        "{:<58} {:>7} {:>12.3} ms",
        "first random bytes of the process, aws-lc-rs (CPU)",
        1,
        aws_first as f64 / 1e6
    );

    use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // About the size of a timestamp.json's signed part.
    let msg = vec![b'x'; 600];
    let sig = pair.sign(&rng, &msg).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let p256_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let ring_key = ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point.clone());
    let aws_key = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED, point);
    let n = 500;
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            use p256::ecdsa::signature::Verifier as _;
            let s = p256::ecdsa::Signature::from_slice(sig.as_ref()).unwrap();
            assert!(p256_key.verify(std::hint::black_box(&msg), &s).is_ok());
        }
        samples[0].push(t.elapsed().as_secs_f64() / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            assert!(ring_key.verify(std::hint::black_box(&msg), sig.as_ref()).is_ok());
        }
        samples[1].push(t.elapsed().as_secs_f64() / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            assert!(aws_key.verify(std::hint::black_box(&msg), sig.as_ref()).is_ok());
        }
        samples[2].push(t.elapsed().as_secs_f64() / n as f64);
    }
    for (name, s) in ["p256 (RustCrypto)", "ring", "aws-lc-rs"].into_iter().zip(samples) {
        median_row(&format!("ECDSA P-256 verify, {name} (median of 5)"), n, s);
    }
}

/// RSASSA-PSS verification of a 2048-bit, SHA-256 signature (a Notation envelope from a key
/// `notation cert generate-test` makes) by the `rsa` crate and by ring (src/notation/x509.rs
/// uses ring where it implements the scheme). Fixtures: tests/fixtures/rsa.
fn rsa_pss() {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::signature::Verifier as _;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (der, msg, sig) = (read("rsa2048.pub.der"), read("msg"), read("rsa2048.pss-sha256.sig"));
    let crate_key = rsa::RsaPublicKey::from_pkcs1_der(&der).unwrap();
    let ring_key = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA256, &der);
    let n = 200;
    let mut samples: [Vec<f64>; 2] = Default::default();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            let s = rsa::pss::Signature::try_from(&sig[..]).unwrap();
            let k = rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len(crate_key.clone(), 32);
            assert!(k.verify(std::hint::black_box(&msg), &s).is_ok());
        }
        samples[0].push(t.elapsed().as_secs_f64() / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            assert!(ring_key.verify(std::hint::black_box(&msg), &sig).is_ok());
        }
        samples[1].push(t.elapsed().as_secs_f64() / n as f64);
    }
    for (name, s) in ["rsa crate", "ring"].into_iter().zip(samples) {
        median_row(&format!("RSA-2048 PSS SHA-256 verify, {name} (median of 5)"), n, s);
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    crypto();
    rsa_pss();
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    client.init(GUN);
    client.add_delegation_signer(GUN, "targets/releases", "alice", KeyKind::Ecdsa);
    // Many tags in one publish: stage them, then publish once.
    for i in 0..TAGS {
        let role = if i % 2 == 0 { "targets/releases" } else { "targets" };
        client.run(&["addhash", GUN, &format!("v{i}"), "10", "--sha256", &sha_hex(&format!("d{i}")), "--roles", role]);
    }
    client.run(&["publish", GUN]);
    let root = client.root_cert_pem(GUN);
    let engine = || {
        let mut cfg = ServerConfig::new(&server.url());
        cfg.ca_pem = Some(server.ca_pem());
        let pinned = vec![PinnedKey::from_pem("root", &root).unwrap()];
        TrustEngine::new(NotaryHttp::new(cfg).unwrap(), Anchors { pinned, revoked: BTreeSet::new() })
    };
    let opts =
        ResolveOptions { signers: vec![], now: Timestamp::now(), expiry_warning: SignedDuration::from_hours(168) };
    println!("{:<58} {:>7} {:>15} {:>14}", "measurement", "n", "per op", "rate");

    // Cold: a new engine walks root, timestamp, snapshot, targets and the delegation.
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        let e = engine();
        let r = e.repository(GUN, Timestamp::now(), Instant::now()).await;
        assert!(r.result.is_ok());
    }
    row(&format!("cold refresh of a repository ({TAGS} tags, 1 delegation)"), n, t.elapsed());

    // Incremental: only timestamp.json is fetched when nothing changed.
    let e = engine();
    e.repository(GUN, Timestamp::now(), Instant::now()).await.result.unwrap();
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        e.repository(GUN, Timestamp::now(), Instant::now()).await.result.unwrap();
    }
    row("incremental refresh (unchanged, timestamp only)", n, t.elapsed());

    // Cached: trust data fresh, each verification only resolves.
    let images: Vec<ImageRef> = (0..TAGS)
        .map(|i| ImageRef::parse(&format!("{GUN}:v{i}@sha256:{}", sha_hex(&format!("d{i}")))).unwrap())
        .collect();
    let since = Instant::now();
    e.repository(GUN, Timestamp::now(), since).await.result.unwrap();
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n {
        let r = e.verify(&images[i % TAGS], &opts, since - Duration::from_secs(1)).await;
        assert!(r.verdict.is_trusted(), "{r:?}");
    }
    row("verify with fresh trust data (cache hit, resolve only)", n, t.elapsed());

    // Pure resolution.
    let repo = e.repository(GUN, Timestamp::now(), since - Duration::from_secs(1)).await.result.unwrap();
    let n = 100_000;
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(trustwatch::engine::resolve(&repo, &images[i % TAGS], &opts));
    }
    row("resolve (pure)", n, t.elapsed());

    // The decide step of one scan over 10,000 pods.
    let spec: trustwatch::crd::ImageTrustPolicySpec = serde_json::from_value(serde_json::json!({
        "action": "Quarantine", "images": [{"pattern": "registry.bench/**", "trustRoot": "bench"}]
    }))
    .unwrap();
    let pods: Vec<PodView> = (0..10_000)
        .map(|i| PodView {
            namespace: format!("ns{}", i % 50),
            name: format!("pod{i}"),
            uid: format!("uid{i}"),
            labels: Default::default(),
            quarantine_reason: None,
            recheck: None,
            workload: Workload {
                kind: "Deployment".into(),
                name: format!("w{}", i / 3),
                api_version: "apps/v1".into(),
                uid: None,
            },
            containers: vec![ContainerView {
                name: "app".into(),
                image: format!("{GUN}:v{}", i % TAGS),
                running: trustwatch::scanner::pods::RunningImage::Digest(format!(
                    "sha256:{}",
                    sha_hex(&format!("d{}", i % TAGS))
                )),
            }],
            host_network: false,
            pull: Default::default(),
        })
        .collect();
    let t = Instant::now();
    let p = plan(&spec, &pods, &Default::default());
    let results: HashMap<_, _> = p
        .keys()
        .into_iter()
        .map(|k| {
            let r = trustwatch::engine::resolve(&repo, &ImageRef::parse(&k.image).unwrap(), &opts);
            (k, r)
        })
        .collect();
    let plan_secs = t.elapsed();
    let t2 = Instant::now();
    let out = decide(&DecideInput {
        policy: "bench",
        spec: &spec,
        pods: &pods,
        plan: &p,
        results: &results,
        warnings: &HashMap::new(),
        previous: &HashMap::new(),
        previous_scan: None,
        history: &HashMap::new(),
        network_policies: &[],
        cluster_quarantined: 0,
        max_quarantined: 100,
        operator_namespace: "trustwatch-system",
        now: Timestamp::now(),
    });
    assert_eq!(out.summary.pods, 10_000);
    row("plan + resolve of a 10,000-pod scan (200 distinct images)", 1, plan_secs);
    row("decide for a 10,000-pod scan (3,334 reports)", 1, t2.elapsed());
}
