//! The cosign core on signatures cosign cannot make here, made with openssl instead: pure
//! Ed25519 and RSA-PSS signatures (cosign 2.6.5 signs neither with key files), and Rekor
//! entries with their signed entry timestamps (no Rekor server runs offline), for both the
//! classic bundle annotation and a Sigstore bundle's tlog entry.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use trustwatch::cosign::payload::pae;
use trustwatch::cosign::rekor::{LogEntry, set_payload};
use trustwatch::cosign::verify::{BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION, SIGSTORE_BUNDLE_V03};
use trustwatch::cosign::{
    ArtifactKind, CosignError, CosignKey, LogKey, SignatureArtifact, TrustConfig, resolution, verify,
};
use trustwatch::image::ImageRef;
use trustwatch::verdict::Verdict;

struct Openssl(tempfile::TempDir);

impl Openssl {
    fn new() -> Openssl {
        Openssl(tempfile::tempdir().unwrap())
    }
    fn run(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.0.path()).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    /// Generates a key (`genpkey` args) and returns the PEM public key.
    fn key(&self, name: &str, genpkey: &[&str]) -> String {
        let mut args = vec!["genpkey"];
        args.extend(genpkey);
        let out = format!("{name}.pem");
        args.extend(["-out", &out]);
        self.run(&args);
        self.run(&["pkey", "-in", &out, "-pubout", "-out", &format!("{name}.pub")]);
        std::fs::read_to_string(self.0.path().join(format!("{name}.pub"))).unwrap()
    }
    fn p256(&self, name: &str) -> String {
        self.key(name, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    }
    /// `openssl dgst -sha256 -sign` (ECDSA DER / RSA) with extra `-sigopt`s.
    fn sign(&self, name: &str, msg: &[u8], sigopts: &[&str]) -> Vec<u8> {
        std::fs::write(self.0.path().join("msg"), msg).unwrap();
        let key = format!("{name}.pem");
        let mut args = vec!["dgst", "-sha256", "-sign", &key, "-out", "sig"];
        for o in sigopts {
            args.extend(["-sigopt", o]);
        }
        args.push("msg");
        self.run(&args);
        std::fs::read(self.0.path().join("sig")).unwrap()
    }
    /// Pure Ed25519 over the message.
    fn sign_ed25519(&self, name: &str, msg: &[u8]) -> Vec<u8> {
        std::fs::write(self.0.path().join("msg"), msg).unwrap();
        self.run(&["pkeyutl", "-sign", "-inkey", &format!("{name}.pem"), "-rawin", "-in", "msg", "-out", "sig"]);
        std::fs::read(self.0.path().join("sig")).unwrap()
    }
}

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn payload(digest: &str, optional: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": "registry.example.com/team/app"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": optional
    }))
    .unwrap()
}

fn simple(payload: &[u8], sig: &[u8], extra: &[(&str, String)]) -> SignatureArtifact {
    let mut annotations = BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), B64.encode(sig))]);
    for (k, v) in extra {
        annotations.insert(k.to_string(), v.clone());
    }
    SignatureArtifact {
        kind: ArtifactKind::SimpleSigning,
        bytes: Arc::from(payload),
        annotations,
        source: "test@sha256:sig layer 0".into(),
    }
}

fn trust(keys: Vec<CosignKey>) -> TrustConfig {
    TrustConfig { keys, ..Default::default() }
}

fn reason(r: &Result<trustwatch::cosign::Verified, CosignError>) -> &'static str {
    match r {
        Ok(_) => "Verified",
        Err(e) => e.reason(),
    }
}

#[test]
fn pure_ed25519_signatures_made_with_openssl_verify() {
    let o = Openssl::new();
    let pem = o.key("ed", &["-algorithm", "ed25519"]);
    let key = CosignKey::from_pem("ed", &pem).unwrap();
    assert_eq!(key.scheme, trustwatch::cosign::KeyScheme::Ed25519);
    let p = payload(DIGEST, json!({"team": "web"}));
    let sig = o.sign_ed25519("ed", &p);
    let t = trust(vec![key]);
    let r = verify(&[simple(&p, &sig, &[])], &t, DIGEST, Timestamp::now());
    assert_eq!(r.as_ref().unwrap().signers(), vec!["ed".to_string()]);
    let mut changed = p.clone();
    changed[10] ^= 1;
    let r = verify(&[simple(&changed, &sig, &[])], &t, DIGEST, Timestamp::now());
    assert_eq!(reason(&r), "KeyMismatch");
}

#[test]
fn rsa_pss_and_pkcs1_signatures_verify_only_under_their_configured_scheme() {
    let o = Openssl::new();
    let pem = o.key("rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let p = payload(DIGEST, json!(null));
    let pss = o.sign("rsa", &p, &["rsa_padding_mode:pss", "rsa_pss_saltlen:digest", "rsa_mgf1_md:sha256"]);
    let pkcs1 = o.sign("rsa", &p, &[]);
    let as_pss = trust(vec![CosignKey::from_pem("rsa", &pem).unwrap().with_rsa_pss().unwrap()]);
    let as_pkcs1 = trust(vec![CosignKey::from_pem("rsa", &pem).unwrap()]);
    let now = Timestamp::now();
    assert_eq!(reason(&verify(&[simple(&p, &pss, &[])], &as_pss, DIGEST, now)), "Verified");
    assert_eq!(reason(&verify(&[simple(&p, &pkcs1, &[])], &as_pkcs1, DIGEST, now)), "Verified");
    assert_eq!(reason(&verify(&[simple(&p, &pss, &[])], &as_pkcs1, DIGEST, now)), "KeyMismatch");
    assert_eq!(reason(&verify(&[simple(&p, &pkcs1, &[])], &as_pss, DIGEST, now)), "KeyMismatch");
    assert!(CosignKey::from_pem("p", &o.p256("ec")).unwrap().with_rsa_pss().is_err());
}

#[test]
fn unsupported_keys_are_refused_when_configured() {
    let o = Openssl::new();
    let p384 = o.key("p384", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]);
    assert!(CosignKey::from_pem("p384", &p384).unwrap_err().contains("P-256"));
    assert!(CosignKey::from_pem("x", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err());
}

/// A signer, a log, and a signed classic bundle annotation for `payload`.
struct Logged {
    o: Openssl,
    signer: CosignKey,
    log: LogKey,
    signer_pem: String,
}

impl Logged {
    fn new() -> Logged {
        let o = Openssl::new();
        let signer_pem = o.p256("signer");
        let log_pem = o.p256("log");
        Logged {
            signer: CosignKey::from_pem("release", &signer_pem).unwrap(),
            log: LogKey::from_pem("rekor", &log_pem).unwrap(),
            o,
            signer_pem,
        }
    }

    fn hashedrekord(&self, content: &[u8], sig: &[u8]) -> String {
        let body = json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(content))}},
                "signature": {"content": B64.encode(sig), "publicKey": {"content": B64.encode(&self.signer_pem)}}
            }
        });
        B64.encode(serde_json::to_vec(&body).unwrap())
    }

    fn entry(&self, body_b64: String, integrated_time: i64) -> (LogEntry, Vec<u8>) {
        let mut e = LogEntry {
            body_b64,
            integrated_time,
            log_index: 4242,
            log_id: self.log.log_id.clone(),
            signed_entry_timestamp: vec![],
        };
        let set = self.o.sign("log", &set_payload(&e), &[]);
        e.signed_entry_timestamp = set.clone();
        (e, set)
    }

    fn annotation(e: &LogEntry) -> String {
        json!({
            "SignedEntryTimestamp": B64.encode(&e.signed_entry_timestamp),
            "Payload": {"body": e.body_b64, "integratedTime": e.integrated_time, "logIndex": e.log_index, "logID": e.log_id}
        })
        .to_string()
    }

    fn trust(&self) -> TrustConfig {
        TrustConfig { keys: vec![self.signer.clone()], log_keys: vec![self.log.clone()], ..Default::default() }
    }
}

#[test]
fn classic_rekor_bundles_are_verified_offline_with_the_pinned_log_key() {
    let l = Logged::new();
    let p = payload(DIGEST, json!({"team": "web"}));
    let sig = l.o.sign("signer", &p, &[]);
    let at = 1_780_000_000;
    let now = Timestamp::from_second(at + 3600).unwrap();
    let (entry, _) = l.entry(l.hashedrekord(&p, &sig), at);
    let good = simple(&p, &sig, &[(BUNDLE_ANNOTATION, Logged::annotation(&entry))]);

    let r = verify(std::slice::from_ref(&good), &l.trust(), DIGEST, now);
    let v = r.as_ref().unwrap();
    assert_eq!(v.signatures[0].integrated_time, Some(Timestamp::from_second(at).unwrap()));
    let image = ImageRef::parse(&format!("registry.example.com/team/app@{DIGEST}")).unwrap();
    let res = resolution(&image, DIGEST, &r);
    assert_eq!(
        (res.verdict, res.timestamped, res.signing_time),
        (Verdict::Verified, Some(true), Some(Timestamp::from_second(at).unwrap()))
    );
    // Without a pinned log the entry is not needed, and not looked at.
    assert_eq!(reason(&verify(&[simple(&p, &sig, &[])], &trust(vec![l.signer.clone()]), DIGEST, now)), "Verified");

    let case = |name: &str, a: SignatureArtifact, t: &TrustConfig, now: Timestamp, want: &str, verdict: Verdict| {
        let r = verify(&[a], t, DIGEST, now);
        assert_eq!(reason(&r), want, "{name}: {r:?}");
        assert_eq!(r.unwrap_err().verdict(), verdict, "{name}");
    };
    case("no entry", simple(&p, &sig, &[]), &l.trust(), now, "TlogEntryMissing", Verdict::SignatureInvalid);

    let mut flipped = entry.clone();
    flipped.signed_entry_timestamp[12] ^= 1;
    let a = simple(&p, &sig, &[(BUNDLE_ANNOTATION, Logged::annotation(&flipped))]);
    case("SET flipped", a, &l.trust(), now, "TlogEntryInvalid", Verdict::SignatureInvalid);

    let mut moved = entry.clone();
    moved.integrated_time -= 86_400;
    let a = simple(&p, &sig, &[(BUNDLE_ANNOTATION, Logged::annotation(&moved))]);
    case("integratedTime changed", a, &l.trust(), now, "TlogEntryInvalid", Verdict::SignatureInvalid);

    let early = Timestamp::from_second(at - 3600).unwrap();
    case("integrated in the future", good.clone(), &l.trust(), early, "TlogEntryInvalid", Verdict::SignatureInvalid);

    let other_log = LogKey::from_pem("other", &l.o.p256("otherlog")).unwrap();
    let t = TrustConfig { log_keys: vec![other_log], ..l.trust() };
    case("unpinned log", good.clone(), &t, now, "TlogEntryInvalid", Verdict::SignatureInvalid);

    // A genuine entry (valid SET) for another payload, attached to this signature.
    let other_payload = payload(DIGEST, json!({"team": "ops"}));
    let other_sig = l.o.sign("signer", &other_payload, &[]);
    let (foreign, _) = l.entry(l.hashedrekord(&other_payload, &other_sig), at);
    let a = simple(&p, &sig, &[(BUNDLE_ANNOTATION, Logged::annotation(&foreign))]);
    case("entry for other content", a, &l.trust(), now, "TlogBodyMismatch", Verdict::Tampered);

    // A kind we cannot read (Rekor v2's 0.0.2 entries) is unverified evidence, not tampering.
    let v2 = B64.encode(br#"{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{}}}"#);
    let (unreadable, _) = l.entry(v2, at);
    let a = simple(&p, &sig, &[(BUNDLE_ANNOTATION, Logged::annotation(&unreadable))]);
    case("unsupported entry kind", a, &l.trust(), now, "TlogEntryInvalid", Verdict::SignatureInvalid);
}

#[test]
fn sigstore_bundle_tlog_entries_and_key_hints_are_checked() {
    let l = Logged::new();
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": DIGEST.trim_start_matches("sha256:")}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1"
    });
    let payload = serde_json::to_vec(&statement).unwrap();
    let payload_type = "application/vnd.in-toto+json";
    let sig = l.o.sign("signer", &pae(payload_type, &payload), &[]);
    let at = 1_780_000_000;
    let now = Timestamp::from_second(at + 60).unwrap();
    let body = json!({
        "apiVersion": "0.0.1", "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": "00"},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload))},
            "signatures": [{"signature": B64.encode(&sig), "verifier": B64.encode(&l.signer_pem)}]
        }
    });
    let (entry, set) = l.entry(B64.encode(serde_json::to_vec(&body).unwrap()), at);
    let bundle = |sig: &[u8], set: &[u8], hint: &[u8]| {
        let b = json!({
            "mediaType": SIGSTORE_BUNDLE_V03,
            "verificationMaterial": {
                "publicKey": {"hint": B64.encode(hint)},
                "tlogEntries": [{
                    "logIndex": entry.log_index.to_string(),
                    "logId": {"keyId": B64.encode(hex::decode(&entry.log_id).unwrap())},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": entry.integrated_time.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": B64.encode(set)},
                    "canonicalizedBody": entry.body_b64,
                }]
            },
            "dsseEnvelope": {"payload": B64.encode(&payload), "payloadType": payload_type, "signatures": [{"sig": B64.encode(sig)}]}
        });
        SignatureArtifact {
            kind: ArtifactKind::SigstoreBundle,
            bytes: Arc::from(serde_json::to_vec(&b).unwrap()),
            annotations: BTreeMap::new(),
            source: "test bundle".into(),
        }
    };
    let hint = l.signer.key_id();
    let r = verify(&[bundle(&sig, &set, &hint)], &l.trust(), DIGEST, now);
    assert_eq!(r.unwrap().signatures[0].integrated_time, Some(Timestamp::from_second(at).unwrap()));

    let mut bad_set = set.clone();
    bad_set[10] ^= 1;
    assert_eq!(reason(&verify(&[bundle(&sig, &bad_set, &hint)], &l.trust(), DIGEST, now)), "TlogEntryInvalid");
    // Another digest: the statement's subject is not the running digest.
    let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    assert_eq!(reason(&verify(&[bundle(&sig, &set, &hint)], &l.trust(), other, now)), "DigestMismatch");
    // A broken signature from the key the bundle names (a trusted one): SignatureInvalid,
    // not "another signer".
    let mut broken = sig.clone();
    let n = broken.len();
    broken[n - 2] ^= 1;
    let r = verify(&[bundle(&broken, &set, &hint)], &l.trust(), DIGEST, now);
    assert_eq!((reason(&r), r.unwrap_err().verdict()), ("SignatureInvalid", Verdict::SignatureInvalid));
    // The same broken signature naming an unknown key: KeyMismatch.
    assert_eq!(reason(&verify(&[bundle(&broken, &set, &[0u8; 32])], &l.trust(), DIGEST, now)), "KeyMismatch");
}

#[test]
fn the_worst_failure_is_reported_and_any_valid_signature_wins() {
    let o = Openssl::new();
    let key = CosignKey::from_pem("release", &o.p256("k")).unwrap();
    let t = trust(vec![key]);
    let good_payload = payload(DIGEST, json!({}));
    let good = simple(&good_payload, &o.sign("k", &good_payload, &[]), &[]);
    let other = payload("sha256:3333333333333333333333333333333333333333333333333333333333333333", json!({}));
    let copied = simple(&other, &o.sign("k", &other, &[]), &[]);
    let stranger = simple(&good_payload, &o.sign("k", b"something else", &[]), &[]);
    let now = Timestamp::now();
    assert_eq!(reason(&verify(&[stranger.clone(), copied.clone()], &t, DIGEST, now)), "DigestMismatch");
    assert_eq!(reason(&verify(&[stranger.clone(), copied, good], &t, DIGEST, now)), "Verified");
    assert_eq!(reason(&verify(&[stranger], &t, DIGEST, now)), "KeyMismatch");
    assert_eq!(reason(&verify(&[], &t, DIGEST, now)), "NoSignature");
}

#[test]
fn a_docker_reference_for_another_repository_is_a_warning_not_a_failure() {
    let o = Openssl::new();
    let key = CosignKey::from_pem("release", &o.p256("k")).unwrap();
    let p = payload(DIGEST, json!({}));
    let a = simple(&p, &o.sign("k", &p, &[]), &[]);
    let r = verify(&[a], &trust(vec![key]), DIGEST, Timestamp::now());
    let mirror = ImageRef::parse(&format!("mirror.example.com/team/app@{DIGEST}")).unwrap();
    let res = resolution(&mirror, DIGEST, &r);
    assert_eq!(res.verdict, Verdict::Verified);
    assert!(res.warnings.len() == 1 && res.warnings[0].contains("registry.example.com/team/app"), "{:?}", res.warnings);
    let same = ImageRef::parse(&format!("registry.example.com/team/app:v1@{DIGEST}")).unwrap();
    assert!(resolution(&same, DIGEST, &r).warnings.is_empty());
}

// RFC 6962 §2.1.1, the recursive definitions: MTH(D[n]) and PATH(m, D[n]).
fn mth(leaves: &[Vec<u8>]) -> Vec<u8> {
    match leaves.len() {
        0 => Sha256::digest(b"").to_vec(),
        1 => trustwatch::cosign::rekor::leaf_hash(&leaves[0]).to_vec(),
        n => {
            let k = split(n);
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(mth(&leaves[..k]));
            h.update(mth(&leaves[k..]));
            h.finalize().to_vec()
        }
    }
}

/// The largest power of two smaller than `n`.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if leaves.len() <= 1 {
        return vec![];
    }
    let k = split(leaves.len());
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

#[test]
fn inclusion_proofs_verify_for_every_leaf_of_every_small_tree_and_fail_when_altered() {
    use trustwatch::cosign::rekor::{leaf_hash, verify_inclusion};
    for n in 1..=17usize {
        let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
        let root = mth(&leaves);
        for m in 0..n {
            let p = path(m, &leaves);
            let leaf = leaf_hash(&leaves[m]);
            assert!(verify_inclusion(leaf, m as u64, n as u64, &p, &root), "n={n} m={m}");
            if let Some(first) = p.first() {
                let mut bad = p.clone();
                bad[0] = first.iter().map(|b| b ^ 1).collect();
                assert!(!verify_inclusion(leaf, m as u64, n as u64, &bad, &root), "n={n} m={m}: altered path");
            }
            if n > 1 {
                let other = (m + 1) % n;
                assert!(!verify_inclusion(leaf, other as u64, n as u64, &p, &root), "n={n} m={m}: wrong index");
            }
            assert!(!verify_inclusion(leaf, n as u64, n as u64, &p, &root), "index outside the tree");
        }
    }
}

#[test]
fn bundle_entries_with_only_an_inclusion_proof_need_a_checkpoint_signed_by_the_pinned_log() {
    let l = Logged::new();
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": DIGEST.trim_start_matches("sha256:")}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1"
    });
    let payload = serde_json::to_vec(&statement).unwrap();
    let payload_type = "application/vnd.in-toto+json";
    let sig = l.o.sign("signer", &pae(payload_type, &payload), &[]);
    let body = serde_json::to_vec(&json!({
        "apiVersion": "0.0.1", "kind": "dsse",
        "spec": {
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload))},
            "signatures": [{"signature": B64.encode(&sig), "verifier": B64.encode(&l.signer_pem)}]
        }
    }))
    .unwrap();
    // Our entry at index 5 of a 7-entry tree.
    let mut leaves: Vec<Vec<u8>> = (0..7).map(|i| format!("other entry {i}").into_bytes()).collect();
    leaves[5] = body.clone();
    let root = mth(&leaves);
    let proof_hashes: Vec<String> = path(5, &leaves).iter().map(|h| B64.encode(h)).collect();
    let note = format!("log.example.com - 1234\n7\n{}\n", B64.encode(&root));
    let checkpoint = |signer: &str, note: &str| {
        let hint =
            &LogKey::from_pem("k", &std::fs::read_to_string(l.o.0.path().join(format!("{signer}.pub"))).unwrap())
                .unwrap()
                .key
                .key_id()[..4];
        let mut raw = hint.to_vec();
        raw.extend(l.o.sign(signer, note.as_bytes(), &[]));
        format!("{note}\n\u{2014} log.example.com {}\n", B64.encode(raw))
    };
    let bundle = |hashes: &[String], envelope: String| {
        let b = json!({
            "mediaType": SIGSTORE_BUNDLE_V03,
            "verificationMaterial": {
                "publicKey": {"hint": B64.encode(l.signer.key_id())},
                "tlogEntries": [{
                    "logIndex": "5",
                    "logId": {"keyId": B64.encode(l.log.key.key_id())},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "inclusionProof": {"logIndex": "5", "rootHash": B64.encode(&root), "treeSize": "7", "hashes": hashes, "checkpoint": {"envelope": envelope}},
                    "canonicalizedBody": B64.encode(&body),
                }]
            },
            "dsseEnvelope": {"payload": B64.encode(&payload), "payloadType": payload_type, "signatures": [{"sig": B64.encode(&sig)}]}
        });
        SignatureArtifact {
            kind: ArtifactKind::SigstoreBundle,
            bytes: Arc::from(serde_json::to_vec(&b).unwrap()),
            annotations: BTreeMap::new(),
            source: "proof bundle".into(),
        }
    };
    let now = Timestamp::now();
    let r = verify(&[bundle(&proof_hashes, checkpoint("log", &note))], &l.trust(), DIGEST, now);
    assert_eq!(r.as_ref().unwrap().signatures[0].integrated_time, None, "a proof does not authenticate a time");

    let mut altered = proof_hashes.clone();
    altered[1] = B64.encode([7u8; 32]);
    let r = verify(&[bundle(&altered, checkpoint("log", &note))], &l.trust(), DIGEST, now);
    assert!(matches!(&r, Err(CosignError::TlogEntryInvalid { detail, .. }) if detail.contains("root hash")), "{r:?}");

    l.o.p256("impostor");
    let r = verify(&[bundle(&proof_hashes, checkpoint("impostor", &note))], &l.trust(), DIGEST, now);
    assert!(matches!(&r, Err(CosignError::TlogEntryInvalid { detail, .. }) if detail.contains("not signed")), "{r:?}");

    let other_head = format!("log.example.com - 1234\n8\n{}\n", B64.encode(&root));
    let r = verify(&[bundle(&proof_hashes, checkpoint("log", &other_head))], &l.trust(), DIGEST, now);
    assert!(matches!(&r, Err(CosignError::TlogEntryInvalid { detail, .. }) if detail.contains("tree head")), "{r:?}");
}
