//! Property: a verifier never says "verified" when it could not verify. Real metadata from a
//! real notary-server is served from memory; every single-bit flip and many truncations of
//! every document must yield a verdict other than Verified, and never a panic.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;
use support::*;
use trustwatch::engine::{ResolveOptions, Source, TrustEngine};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{Anchors, FetchError, PinnedKey};
use trustwatch::verdict::Verdict;

const GUN: &str = "registry.example.com/prop/app";

/// Serves captured documents by name; `mutate` replaces one of them.
struct Memory {
    files: HashMap<String, Vec<u8>>,
    mutated: Mutex<Option<(String, Vec<u8>)>>,
    /// Whether the mutated document was read at all.
    read_mutated: Mutex<bool>,
}

impl Source for Memory {
    async fn fetch(&self, _gun: &str, name: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let body = match &*self.mutated.lock().unwrap() {
            Some((n, b)) if n == name => {
                *self.read_mutated.lock().unwrap() = true;
                Some(b.clone())
            }
            _ => self.files.get(name).cloned(),
        };
        match body {
            Some(b) if b.len() as u64 > limit => Err(FetchError::TooLarge { path: name.into(), limit }),
            other => Ok(other),
        }
    }
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_bit_flip_or_truncation_of_any_document_ever_verifies() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    client.init(GUN);
    client.add_delegation_signer(GUN, "targets/releases", "alice", KeyKind::Ecdsa);
    let digest = sha_hex("v1");
    client.add_hash(GUN, "v1", 10, &digest, &["targets/releases"]);

    // Capture every document the engine asks for, by the names it uses.
    let mut files = HashMap::new();
    let names: Vec<String> = vec!["root.json".into(), "1.root.json".into(), "timestamp.json".into()];
    for n in &names {
        let (status, body) = fetch_raw(&server, &format!("/v2/{GUN}/_trust/tuf/{n}"));
        if status == 200 {
            files.insert(n.clone(), body);
        }
    }
    let ts: serde_json::Value = serde_json::from_slice(&files["timestamp.json"]).unwrap();
    let hex_of = |meta: &serde_json::Value| {
        use base64::Engine as _;
        hex::encode(
            base64::engine::general_purpose::STANDARD.decode(meta["hashes"]["sha256"].as_str().unwrap()).unwrap(),
        )
    };
    let snap_name = format!("snapshot.{}.json", hex_of(&ts["signed"]["meta"]["snapshot"]));
    let (_, snap) = fetch_raw(&server, &format!("/v2/{GUN}/_trust/tuf/{snap_name}"));
    let snap_doc: serde_json::Value = serde_json::from_slice(&snap).unwrap();
    files.insert(snap_name.clone(), snap);
    for role in ["targets", "targets/releases"] {
        let name = format!("{role}.{}.json", hex_of(&snap_doc["signed"]["meta"][role]));
        let (status, body) = fetch_raw(&server, &format!("/v2/{GUN}/_trust/tuf/{name}"));
        assert_eq!(status, 200, "{name}");
        files.insert(name, body);
    }
    drop(server);

    let pinned = vec![PinnedKey::from_pem("root", &client.root_cert_pem(GUN)).unwrap()];
    let memory = Memory { files: files.clone(), mutated: Mutex::new(None), read_mutated: Mutex::new(false) };
    let engine = TrustEngine::new(memory, Anchors { pinned, revoked: BTreeSet::new() });
    let image = ImageRef::parse(&format!("{GUN}:v1@sha256:{digest}")).unwrap();
    let opts = ResolveOptions {
        signers: vec!["releases".into()],
        now: Timestamp::now(),
        expiry_warning: SignedDuration::ZERO,
    };
    let fresh = TrustEngine::new(
        Memory { files: files.clone(), mutated: Mutex::new(None), read_mutated: Mutex::new(false) },
        engine.anchors().clone(),
    );
    assert_eq!(
        fresh.verify(&image, &opts, Instant::now()).await.verdict,
        Verdict::Verified,
        "the unmutated data verifies"
    );

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tried = 0;
    let mut by_verdict: HashMap<Verdict, usize> = HashMap::new();
    for (name, original) in &files {
        let mut mutations: Vec<Vec<u8>> = vec![];
        for _ in 0..120 {
            let mut m = original.clone();
            let i = (rng.next() as usize) % m.len();
            m[i] ^= 1 << (rng.next() % 8);
            mutations.push(m);
        }
        for _ in 0..20 {
            let cut = (rng.next() as usize) % original.len();
            mutations.push(original[..cut].to_vec());
        }
        for m in mutations {
            // A fresh engine per mutation: nothing trusted earlier can mask the mutation.
            let mem = Memory {
                files: files.clone(),
                mutated: Mutex::new(Some((name.clone(), m.clone()))),
                read_mutated: Mutex::new(false),
            };
            let e = TrustEngine::new(mem, engine.anchors().clone());
            let r = e.verify(&image, &opts, Instant::now()).await;
            if !*e.source().read_mutated.lock().unwrap() {
                // 1.root.json is only read when the current root is not anchored directly.
                continue;
            }
            assert!(
                !r.verdict.is_trusted(),
                "a mutation of {name} verified: {r:#?}\nmutated bytes: {}",
                String::from_utf8_lossy(&m)
            );
            // Corruption is tampering or a bad signature, never mistaken for a revocation.
            assert!(
                matches!(r.verdict, Verdict::Tampered | Verdict::SignatureInvalid),
                "a mutation of {name} read as {r:#?}"
            );
            *by_verdict.entry(r.verdict).or_default() += 1;
            tried += 1;
        }
    }
    eprintln!("{tried} mutations, none verified: {by_verdict:?}");
    assert!(tried >= 140 * 5, "only {tried} mutations reached the verifier");
}
