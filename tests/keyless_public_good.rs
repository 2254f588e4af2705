//! The keyless core on real public-good Sigstore data, offline: bundles signed by the
//! public-good Fulcio and logged in the public-good Rekor, with the public-good trusted root
//! (copied from sigstore-go v1.4.0 with their provenance, `tests/fixtures/sigstore-public-good/`).
//! Each is verified at its signing time (the log's integrated time, under its signed entry
//! timestamp), and each negative changes one thing of the real data.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde_json::Value;
use trustwatch::cosign::LogKey;
use trustwatch::cosign::keyless::{Identity, KeylessError, verify_certificate};
use trustwatch::cosign::rekor::{InclusionProof, LogEntry, parse_bundle_entry, verify_inclusion_proof, verify_set};
use trustwatch::cosign::trusted_root::TrustedRoot;
use trustwatch::verdict::Verdict;

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const RELEASE: &str = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigstore-public-good").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn root() -> TrustedRoot {
    TrustedRoot::parse(&fixture("trusted_root.json")).expect("the public-good trusted root parses")
}

struct Signed {
    leaf: Vec<u8>,
    entry: LogEntry,
    proof: Option<InclusionProof>,
}

impl Signed {
    fn load(name: &str) -> Signed {
        let bundle: Value = serde_json::from_slice(&fixture(name)).unwrap();
        let vm = &bundle["verificationMaterial"];
        let leaf = vm["x509CertificateChain"]["certificates"][0]["rawBytes"]
            .as_str()
            .or_else(|| vm["certificate"]["rawBytes"].as_str())
            .expect("a signing certificate");
        let (entry, proof) = parse_bundle_entry(&vm["tlogEntries"][0]).expect("the log entry parses");
        Signed { leaf: B64.decode(leaf).unwrap(), entry, proof }
    }

    /// The signing time: the log's integrated time.
    fn at(&self) -> Timestamp {
        Timestamp::from_second(self.entry.integrated_time).unwrap()
    }
}

/// The trusted root's Rekor logs as the log keys the entry checks take.
fn rekor_keys(root: &TrustedRoot) -> Vec<LogKey> {
    root.tlogs
        .iter()
        .map(|l| LogKey {
            key: trustwatch::cosign::CosignKey::from_spki_der(&l.base_url, &l.spki_der).unwrap(),
            log_id: hex::encode(l.log_id),
        })
        .collect()
}

fn exact(issuer: &str, subject: &str) -> Vec<Identity> {
    vec![Identity::new(Some(issuer), None, Some(subject), None).unwrap()]
}

#[test]
fn the_public_good_trusted_root_lists_its_authorities_and_logs_with_their_validity() {
    let root = root();
    assert_eq!(root.certificate_authorities.len(), 2);
    assert_eq!(root.tlogs.len(), 1);
    assert_eq!(root.ctlogs.len(), 2);
    assert_eq!(root.timestamp_authorities.len(), 1);
    // The first Fulcio CA was retired at the end of 2022; the second is current.
    let first = &root.certificate_authorities[0];
    assert!(first.valid_for.contains("2022-06-01T00:00:00Z".parse().unwrap()));
    assert!(!first.valid_for.contains("2023-01-01T00:00:00Z".parse().unwrap()));
    assert!(root.certificate_authorities[1].valid_for.contains("2026-12-07T00:00:00Z".parse().unwrap()));
    // RFC 6962 §3.2: the log ID is the SHA-256 of the log's key, as the bundles name it.
    let signed = Signed::load("sigstore-js-2.0.0-provenance.sigstore.json");
    assert_eq!(hex::encode(root.tlogs[0].log_id), signed.entry.log_id);
}

#[test]
fn github_actions_provenance_verifies_at_its_signing_time_with_the_log_entry_and_its_proof() {
    let root = root();
    let logs = rekor_keys(&root);
    for name in ["sigstore-js-2.0.0-provenance.sigstore.json", "sigstore-js-provenance-2023-04.sigstore.json"] {
        let s = Signed::load(name);
        // The signing time is the log's, under the log's signed entry timestamp.
        verify_set(&s.entry, &logs, Timestamp::now()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let id = verify_certificate(&s.leaf, &root, s.at(), &exact(GITHUB, RELEASE))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(id.issuer, GITHUB);
        assert!(id.sans.iter().any(|s| s == RELEASE), "{:?}", id.sans);
    }
    let s = Signed::load("sigstore-js-2.0.0-provenance.sigstore.json");
    let proof = s.proof.as_ref().expect("the 2.0.0 bundle carries an inclusion proof");
    verify_inclusion_proof(&s.entry, proof, &logs).unwrap();
}

#[test]
fn an_email_identity_of_2022_verifies_under_the_ca_valid_then() {
    let root = root();
    let s = Signed::load("dsse-2022.sigstore.json");
    verify_set(&s.entry, &rekor_keys(&root), Timestamp::now()).unwrap();
    let id = verify_certificate(&s.leaf, &root, s.at(), &exact("https://github.com/login/oauth", "brian@dehamer.com"))
        .unwrap();
    assert_eq!(id.sans, vec!["brian@dehamer.com".to_string()]);
}

#[test]
fn another_identity_or_an_unanchored_match_is_signer_missing() {
    let root = root();
    let s = Signed::load("sigstore-js-2.0.0-provenance.sigstore.json");
    let other = exact(GITHUB, "https://github.com/sigstore/sigstore-js/.github/workflows/ci.yml@refs/heads/main");
    let e = verify_certificate(&s.leaf, &root, s.at(), &other).unwrap_err();
    assert!(matches!(e, KeylessError::IdentityMismatch { .. }), "{e}");
    assert_eq!(e.verdict(), Verdict::SignerMissing);
    // Another issuer with the same subject.
    let e = verify_certificate(&s.leaf, &root, s.at(), &exact("https://gitlab.com", RELEASE)).unwrap_err();
    assert_eq!(e.reason(), "IdentityMismatch");
    // `github.com/sigstore/sigstore-js` is found inside the subject (Go's unanchored
    // regexp.MatchString would accept it); anchored, it must be the whole subject.
    let unanchored = vec![Identity::new(Some(GITHUB), None, None, Some("github.com/sigstore/sigstore-js")).unwrap()];
    let e = verify_certificate(&s.leaf, &root, s.at(), &unanchored).unwrap_err();
    assert_eq!(e.reason(), "IdentityMismatch");
    let anchored = vec![
        Identity::new(
            None,
            Some(r"https://token\.actions\.githubusercontent\.com"),
            None,
            Some(r"https://github\.com/sigstore/sigstore-js/\.github/workflows/release\.yml@refs/heads/.*"),
        )
        .unwrap(),
    ];
    verify_certificate(&s.leaf, &root, s.at(), &anchored).unwrap();
}

#[test]
fn outside_the_certificates_ten_minutes_the_signature_does_not_hold() {
    let root = root();
    let s = Signed::load("sigstore-js-2.0.0-provenance.sigstore.json");
    let later = Timestamp::from_second(s.entry.integrated_time + 3600).unwrap();
    let e = verify_certificate(&s.leaf, &root, later, &exact(GITHUB, RELEASE)).unwrap_err();
    assert!(matches!(e, KeylessError::CertificateNotValidAtSigningTime { .. }), "{e}");
    assert_eq!(e.verdict(), Verdict::SignatureInvalid);
}

#[test]
fn a_trusted_root_that_drops_or_retires_the_ca_no_longer_trusts_the_signature() {
    let s = Signed::load("sigstore-js-2.0.0-provenance.sigstore.json");
    let mut json: Value = serde_json::from_slice(&fixture("trusted_root.json")).unwrap();
    // Rotated to drop the CA that issued it (the current one): signed by no trusted CA.
    json["certificateAuthorities"].as_array_mut().unwrap().truncate(1);
    let dropped = TrustedRoot::parse(json.to_string().as_bytes()).unwrap();
    let e = verify_certificate(&s.leaf, &dropped, s.at(), &exact(GITHUB, RELEASE)).unwrap_err();
    assert_eq!(e.reason(), "UntrustedCertificate", "{e}");
    // The CA kept but its validity ended before the signing time: a retired signer.
    let mut json: Value = serde_json::from_slice(&fixture("trusted_root.json")).unwrap();
    json["certificateAuthorities"][1]["validFor"]["end"] = Value::from("2023-01-01T00:00:00Z");
    let retired = TrustedRoot::parse(json.to_string().as_bytes()).unwrap();
    let e = verify_certificate(&s.leaf, &retired, s.at(), &exact(GITHUB, RELEASE)).unwrap_err();
    assert!(matches!(e, KeylessError::CaNotValidAtSigningTime { .. }), "{e}");
    assert_eq!(e.verdict(), Verdict::SignerRevoked);
}

#[test]
fn a_forged_entry_timestamp_checkpoint_or_proof_is_refused() {
    let root = root();
    let logs = rekor_keys(&root);
    let s = Signed::load("sigstore-js-2.0.0-provenance.sigstore.json");
    // Another integrated time under the same SET: the promise does not cover it.
    let mut moved = s.entry.clone();
    moved.integrated_time -= 86_400;
    assert!(verify_set(&moved, &logs, Timestamp::now()).is_err(), "a moved integrated time kept its promise");
    // A log the trusted root does not list.
    let mut foreign = s.entry.clone();
    foreign.log_id = "00".repeat(32);
    assert!(verify_set(&foreign, &logs, Timestamp::now()).unwrap_err().contains("not a pinned log"));
    let proof = s.proof.clone().unwrap();
    // A checkpoint whose tree head was rewritten: its signature no longer holds.
    let mut forged = proof.clone();
    let mut lines: Vec<String> = forged.checkpoint.lines().map(String::from).collect();
    lines[1] = (proof.tree_size + 1).to_string();
    forged.checkpoint = lines.join("\n") + "\n";
    forged.tree_size += 1;
    assert!(verify_inclusion_proof(&s.entry, &forged, &logs).is_err(), "a forged checkpoint was accepted");
    // The proof for another tree than the checkpoint's.
    let mut other_tree = proof.clone();
    other_tree.root_hash[0] ^= 1;
    assert!(verify_inclusion_proof(&s.entry, &other_tree, &logs).is_err(), "a proof for another tree was accepted");
    // Another entry body (another artifact) under the same proof.
    let mut other_body = s.entry.clone();
    let mut body = B64.decode(&other_body.body_b64).unwrap();
    let last = body.len() - 2;
    body[last] ^= 1;
    other_body.body_b64 = B64.encode(body);
    assert!(verify_inclusion_proof(&other_body, &proof, &logs).is_err(), "another body was proven included");
    assert!(verify_set(&other_body, &logs, Timestamp::now()).is_err(), "another body kept the promise");
}

/// The DSSE payload of a bundle, after its signature verified with the signing certificate's
/// key over PAE(payloadType, payload).
fn verified_statement(name: &str) -> Vec<u8> {
    use der::{Decode, Encode};
    let bundle: Value = serde_json::from_slice(&fixture(name)).unwrap();
    let env = &bundle["dsseEnvelope"];
    let payload_type = env["payloadType"].as_str().unwrap();
    let payload = B64.decode(env["payload"].as_str().unwrap()).unwrap();
    let sig = B64.decode(env["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    let leaf = x509_cert::Certificate::from_der(&Signed::load(name).leaf).unwrap();
    let spki = leaf.tbs_certificate().subject_public_key_info().to_der().unwrap();
    let key = trustwatch::cosign::CosignKey::from_spki_der("fulcio leaf", &spki).unwrap();
    assert!(key.verify(&trustwatch::cosign::payload::pae(payload_type, &payload), &sig), "{name}: DSSE signature");
    payload
}

fn subject_of(statement: &[u8]) -> String {
    let v: Value = serde_json::from_slice(statement).unwrap();
    format!("sha512:{}", v["subject"][0]["digest"]["sha512"].as_str().unwrap())
}

#[test]
fn slsa_provenance_attests_its_subject_with_its_builder_and_source_repository() {
    use trustwatch::cosign::attestation::{Requirement, SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02, check};
    use trustwatch::cosign::keyless::Matcher;
    let exact = |s: &str| Some(Matcher::Exact(s.into()));
    let repo = "https://github.com/sigstore/sigstore-js";
    // SLSA provenance v1 (sigstore-js 2.0.0, GitHub-hosted runner).
    let v1 = verified_statement("sigstore-js-2.0.0-provenance.sigstore.json");
    let req = Requirement {
        predicate_type: SLSA_PROVENANCE_V1.into(),
        builder_id: exact("https://github.com/actions/runner/github-hosted"),
        source_repository: exact(repo),
    };
    let found = check(&v1, &subject_of(&v1), &req).unwrap();
    assert_eq!(found.source_repository.as_deref(), Some(repo));
    // SLSA provenance v0.2 (sigstore-js 1.3.0): the repository from configSource.uri.
    let v02 = verified_statement("sigstore-js-provenance-2023-04.sigstore.json");
    let req02 = Requirement {
        predicate_type: SLSA_PROVENANCE_V02.into(),
        builder_id: exact("https://github.com/actions/runner"),
        source_repository: exact(repo),
    };
    check(&v02, &subject_of(&v02), &req02).unwrap();

    // A statement about other bytes (the 2.0.0 provenance, offered for 1.3.0's digest).
    let e = check(&v1, &subject_of(&v02), &req).unwrap_err();
    assert_eq!((e.reason(), e.verdict()), ("AttestationSubjectMismatch", Verdict::Tampered));
    // Another predicate type than required.
    let e = check(&v02, &subject_of(&v02), &req).unwrap_err();
    assert_eq!((e.reason(), e.verdict()), ("AttestationTypeMismatch", Verdict::SignerMissing));
    // Another source repository, and one that matches only unanchored.
    let other = Requirement { source_repository: exact("https://github.com/sigstore/cosign"), ..req.clone() };
    assert_eq!(check(&v1, &subject_of(&v1), &other).unwrap_err().reason(), "AttestationSourceMismatch");
    let unanchored =
        Requirement { source_repository: Some(Matcher::regex("github.com/sigstore").unwrap()), ..req.clone() };
    assert_eq!(check(&v1, &subject_of(&v1), &unanchored).unwrap_err().reason(), "AttestationSourceMismatch");
    // Another builder (a self-hosted runner is not the GitHub-hosted one).
    let builder = Requirement { builder_id: exact("https://github.com/actions/runner/self-hosted"), ..req };
    assert_eq!(check(&v1, &subject_of(&v1), &builder).unwrap_err().reason(), "AttestationBuilderMismatch");
}

/// The SubjectPublicKeyInfo of the certificate `index` of the chain of CA `ca` in the trusted
/// root.
fn ca_spki(ca: usize, index: usize) -> Vec<u8> {
    use der::{Decode, Encode};
    let json: Value = serde_json::from_slice(&fixture("trusted_root.json")).unwrap();
    let raw = json["certificateAuthorities"][ca]["certChain"]["certificates"][index]["rawBytes"].as_str().unwrap();
    let cert = x509_cert::Certificate::from_der(&B64.decode(raw).unwrap()).unwrap();
    cert.tbs_certificate().subject_public_key_info().to_der().unwrap()
}

#[test]
fn the_embedded_scts_verify_with_the_public_good_ct_logs() {
    use trustwatch::cosign::sct::verify_embedded_sct;
    let root = root();
    // The current Fulcio CA (index 1): its intermediate issued the three leaves.
    let issuer = ca_spki(1, 0);
    for name in [
        "sigstore-js-2.0.0-provenance.sigstore.json",
        "sigstore-js-provenance-2023-04.sigstore.json",
        "dsse-2022.sigstore.json",
    ] {
        let s = Signed::load(name);
        let (log, at) = verify_embedded_sct(&s.leaf, &issuer, &root.ctlogs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(log.base_url.contains("ctfe.sigstore.dev"), "{}", log.base_url);
        // The SCT comes at issuance, before the log entry, within the certificate's minutes.
        let lag = s.entry.integrated_time - at.as_second();
        assert!((0..600).contains(&lag), "{name}: SCT at {at}, logged {lag} s later");
    }
}

#[test]
fn a_missing_foreign_or_misbound_sct_is_refused() {
    use trustwatch::cosign::sct::{SctError, verify_embedded_sct};
    let root = root();
    let issuer = ca_spki(1, 0);
    let s = Signed::load("sigstore-js-2.0.0-provenance.sigstore.json");
    // No CT log trusted: the SCT is a foreign log's.
    let e = verify_embedded_sct(&s.leaf, &issuer, &[]).unwrap_err();
    assert!(e.to_string().contains("not in the trusted root"), "{e}");
    assert_eq!(e.reason(), "SctUntrusted");
    // The log trusted only until before the SCT was issued.
    let mut json: Value = serde_json::from_slice(&fixture("trusted_root.json")).unwrap();
    for l in json["ctlogs"].as_array_mut().unwrap() {
        l["publicKey"]["validFor"]["end"] = Value::from("2023-01-01T00:00:00Z");
    }
    let expired = TrustedRoot::parse(json.to_string().as_bytes()).unwrap();
    let e = verify_embedded_sct(&s.leaf, &issuer, &expired.ctlogs).unwrap_err();
    assert!(e.to_string().contains("was not trusted at"), "{e}");
    // Another issuer key hash: the SCT binds the issuer (the root CA is not the issuer).
    let e = verify_embedded_sct(&s.leaf, &ca_spki(1, 1), &root.ctlogs).unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
    // Another certificate under the same SCT (one byte of the serial number changed).
    let cert = {
        use der::Decode;
        x509_cert::Certificate::from_der(&s.leaf).unwrap()
    };
    let serial = cert.tbs_certificate().serial_number().as_bytes().to_vec();
    let at = s.leaf.windows(serial.len()).position(|w| w == serial).expect("the serial's bytes");
    let mut other = s.leaf.clone();
    other[at + serial.len() - 1] ^= 1;
    let e = verify_embedded_sct(&other, &issuer, &root.ctlogs).unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
    // A certificate without SCTs (the intermediate CA's own).
    let json: Value = serde_json::from_slice(&fixture("trusted_root.json")).unwrap();
    let intermediate = B64
        .decode(json["certificateAuthorities"][1]["certChain"]["certificates"][0]["rawBytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(verify_embedded_sct(&intermediate, &issuer, &root.ctlogs).unwrap_err(), SctError::Missing);
}
