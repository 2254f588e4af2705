//! The fuzz targets' trusted state and seed corpora (fuzz/fixtures/, fuzz/corpus/) are real
//! notary metadata. `TRUSTWATCH_UPDATE_FUZZ_SEEDS=1 cargo test --test fuzz_fixtures` makes them
//! anew with the real notary-server and CLI (hack/fuzz.sh says when); otherwise this test
//! checks that the committed fixtures still verify with the pure core at their recorded
//! instant, so the fuzzers start from trust data the verifier accepts.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use support::*;
use trustwatch::engine::{ResolveOptions, Source, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{Anchors, FetchError, PinnedKey};
use trustwatch::verdict::Verdict;

const GUN: &str = "registry.example.com/fuzz/app";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// What a verification of `image` with `signers` must say with the fixtures.
fn expectations() -> Vec<(String, Vec<String>)> {
    vec![
        (format!("{GUN}:v1@sha256:{}", sha_hex("fuzz-v1")), vec![]),
        (format!("{GUN}:v2@sha256:{}", sha_hex("fuzz-v2")), vec!["releases".into()]),
        (format!("{GUN}:qa-v3@sha256:{}", sha_hex("fuzz-qa-v3")), vec!["qa".into()]),
        (format!("{GUN}:v4@sha256:{}", sha_hex("fuzz-v4")), vec!["releases/ci".into()]),
    ]
}

/// Serves the documents a real server served, by the names the engine asked for.
struct Recorded {
    files: BTreeMap<String, Vec<u8>>,
}

impl Source for Recorded {
    async fn fetch(&self, _gun: &str, name: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        match self.files.get(name) {
            Some(b) if b.len() as u64 > limit => Err(FetchError::TooLarge { path: name.into(), limit }),
            other => Ok(other.cloned()),
        }
    }
}

/// Records what the real server answers.
struct Recorder {
    http: NotaryHttp,
    seen: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Source for Recorder {
    async fn fetch(&self, gun: &str, name: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let r = self.http.fetch(gun, name, limit).await;
        if let Ok(Some(b)) = &r {
            self.seen.lock().unwrap().insert(name.to_string(), b.clone());
        }
        r
    }
}

fn flat(name: &str) -> String {
    name.replace('/', "%2F")
}

fn opts(signers: &[String], now: Timestamp) -> ResolveOptions {
    ResolveOptions { signers: signers.to_vec(), now, expiry_warning: SignedDuration::ZERO }
}

async fn generate() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    client.init(GUN);
    client.add_hash(GUN, "v1", 11, &sha_hex("fuzz-v1"), &[]);
    client.add_delegation_signer(GUN, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(GUN, "v2", 12, &sha_hex("fuzz-v2"), &["targets/releases"]);
    let bob = client.gen_delegation_key("bob", KeyKind::Rsa);
    client.import_key(&bob, "targets/qa");
    client.delegation_add(GUN, "targets/qa", &bob, Some(&["qa-"]));
    client.add_hash(GUN, "qa-v3", 13, &sha_hex("fuzz-qa-v3"), &["targets/qa"]);
    let ci = client.gen_delegation_key("ci", KeyKind::Ecdsa);
    client.import_key(&ci, "targets/releases/ci");
    client.delegation_add(GUN, "targets/releases/ci", &ci, None);
    client.add_hash(GUN, "v4", 14, &sha_hex("fuzz-v4"), &["targets/releases/ci"]);
    let first_root = client.root_cert_pem(GUN);
    client.rotate_root(GUN);

    let mut cfg = ServerConfig::new(&server.url());
    cfg.ca_pem = Some(server.ca_pem());
    let pinned = vec![PinnedKey::from_pem("root", &first_root).unwrap()];
    let recorder = Recorder { http: NotaryHttp::new(cfg).unwrap(), seen: Mutex::new(BTreeMap::new()) };
    let engine = TrustEngine::new(recorder, Anchors { pinned, revoked: BTreeSet::new() });
    let now = Timestamp::now();
    for (image, signers) in expectations() {
        let r = engine.verify(&ImageRef::parse(&image).unwrap(), &opts(&signers, now), Instant::now()).await;
        assert_eq!(r.verdict, Verdict::Verified, "{r:#?}");
    }
    // The first root is only read when the pinned key is not in the latest one.
    for v in [1, 2] {
        let name = format!("{v}.root.json");
        let (status, body) = fetch_raw(&server, &format!("/v2/{GUN}/_trust/tuf/{name}"));
        assert_eq!(status, 200, "{name}");
        engine.source().seen.lock().unwrap().insert(name, body);
    }
    let files = engine.source().seen.lock().unwrap().clone();

    let fixtures = fuzz_dir().join("fixtures");
    let _ = std::fs::remove_dir_all(&fixtures);
    std::fs::create_dir_all(&fixtures).unwrap();
    for (name, bytes) in &files {
        std::fs::write(fixtures.join(flat(name)), bytes).unwrap();
    }
    let index = serde_json::json!({
        "gun": GUN, "now": now.to_string(), "rootPem": first_root,
        "files": files.keys().collect::<Vec<_>>(),
    });
    std::fs::write(fixtures.join("index.json"), serde_json::to_vec_pretty(&index).unwrap()).unwrap();

    // Seed corpora: each real document as each slot of the TUF target (selector byte, mode
    // byte, then the document); the documents themselves for canonical JSON; references and
    // challenges as real clients meet them.
    let corpus = fuzz_dir().join("corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    let dir = |t: &str| {
        let d = corpus.join(t);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let tuf = dir("tuf_metadata");
    for (i, (name, bytes)) in files.iter().enumerate() {
        for mode in [0u8, 1] {
            let mut seed = vec![i as u8, mode];
            seed.extend_from_slice(bytes);
            std::fs::write(tuf.join(format!("{}-{mode}", flat(name))), seed).unwrap();
        }
    }
    let cjson = dir("cjson");
    for (name, bytes) in &files {
        std::fs::write(cjson.join(flat(name)), bytes).unwrap();
    }
    let refs = dir("image_ref");
    let references = [
        format!("{GUN}:v1"),
        format!("{GUN}:v1@sha256:{}", sha_hex("fuzz-v1")),
        format!("{GUN}@sha256:{}", sha_hex("fuzz-v1")),
        "nginx".into(),
        "bitnami/redis:7".into(),
        "index.docker.io/library/nginx:1.27".into(),
        format!("localhost:5000/team/app:v2@sha256:{}", sha_hex("x")),
        format!("docker-pullable://registry.example.com/a/b@sha256:{}", sha_hex("y")),
        format!("docker://sha256:{}", sha_hex("config")),
    ];
    for (i, r) in references.iter().enumerate() {
        std::fs::write(refs.join(format!("ref-{i}")), r).unwrap();
    }
    let challenges = dir("www_authenticate");
    let headers = [
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        r#"Bearer realm="https://harbor.example.com/service/token",service="harbor-notary",scope="repository:library/app:pull""#,
        r#"Basic realm="Registry Realm""#,
        r#"Bearer realm="http://127.0.0.1:5001/token",service="notary",scope="repository:registry.example.com/fuzz/app:pull""#,
        "Bearer realm=https://auth.example.com/token, service=notary",
    ];
    for (i, h) in headers.iter().enumerate() {
        std::fs::write(challenges.join(format!("challenge-{i}")), h).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fuzzers_start_from_real_notary_metadata_that_verifies() {
    if std::env::var_os("TRUSTWATCH_UPDATE_FUZZ_SEEDS").is_some() {
        generate().await;
    }
    let fixtures = fuzz_dir().join("fixtures");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("index.json")).unwrap_or_else(|e| {
            panic!("{e}: make the fixtures with TRUSTWATCH_UPDATE_FUZZ_SEEDS=1 cargo test --test fuzz_fixtures")
        }))
        .unwrap();
    let mut files = BTreeMap::new();
    for name in index["files"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        files.insert(name.to_string(), std::fs::read(fixtures.join(flat(name))).unwrap());
    }
    let now: Timestamp = index["now"].as_str().unwrap().parse().unwrap();
    let pinned = vec![PinnedKey::from_pem("root", index["rootPem"].as_str().unwrap()).unwrap()];
    let engine = TrustEngine::new(Recorded { files: files.clone() }, Anchors { pinned, revoked: BTreeSet::new() });
    for (image, signers) in expectations() {
        let r = engine.verify(&ImageRef::parse(&image).unwrap(), &opts(&signers, now), Instant::now()).await;
        assert_eq!(r.verdict, Verdict::Verified, "{image}: {r:#?}");
    }
    // The walk from the pinned (first) root to the rotated one is part of the fixtures.
    let repo = engine.repository(GUN, now, Instant::now()).await.result.unwrap();
    assert_eq!(repo.root.doc.signed.version, 2);
    assert_eq!(repo.delegations.len(), 3, "{:?}", repo.delegations.keys());
    // Every seed of the TUF target holds one of these documents, behind its two header bytes.
    let seeds = std::fs::read_dir(fuzz_dir().join("corpus/tuf_metadata")).unwrap().count();
    assert_eq!(seeds, files.len() * 2);
}
