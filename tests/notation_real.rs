//! The Notation core against REAL signatures: images pushed to a real docker-registry, signed
//! by the real `notation` CLI (JWS and COSE; `notation cert generate-test` and openssl chains;
//! an RFC 3161 TSA from `openssl ts`; CRLs from `openssl ca`), the signature envelopes read
//! back from the registry and fed to the core. For every case the core's verdict agrees with
//! `notation verify` on the same image, trust policy and trust store.

mod support;

use jiff::{SignedDuration, Timestamp};
use support::notation::*;
use support::{Pushed, Registry};
use trustwatch::image::ImageRef;
use trustwatch::notation::*;
use trustwatch::verdict::Verdict;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn target(p: &Pushed) -> Descriptor {
    Descriptor { media_type: OCI_MANIFEST.into(), digest: p.digest.clone(), size: p.size }
}

fn reference(registry: &Registry, repo: &str, p: &Pushed) -> String {
    format!("{}/{repo}@{}", registry.host(), p.digest)
}

fn policy(level: &str, stores: &[&str], identities: &[&str], extra: &str) -> String {
    serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "images",
            "registryScopes": ["*"],
            "signatureVerification": serde_json::from_str::<serde_json::Value>(&format!(r#"{{"level":"{level}"{extra}}}"#)).unwrap(),
            "trustStores": stores,
            "trustedIdentities": identities,
        }]
    })
    .to_string()
}

/// What the I/O shell will do: pick the policy, verify each signature, fetch the CRLs the
/// core asks for, finish, and keep the best outcome.
fn core(v: &Verifier, registry: &Registry, repo: &str, image: &Pushed, now: Timestamp) -> Outcome {
    let (doc, store) = load_notation_config(&v.config_dir())?;
    let config = TrustConfig::from_policy(doc.policy_for(&format!("{}/{repo}", registry.host()))?, &store)?;
    let sigs = fetch_signatures(registry, repo, &image.digest);
    assert!(!sigs.is_empty(), "notation left no signature for {}", image.digest);
    for s in &sigs {
        let m = parse_signature_manifest(&s.manifest).expect("a notation signature manifest");
        assert_eq!(m.subject.digest, image.digest, "the referrers index lists signatures of this digest");
        m.check_envelope(&s.bytes)?;
    }
    best_outcome(sigs.iter().map(|s| verify_blob(&config, image, s, now))).expect("at least one signature")
}

fn verify_blob(config: &TrustConfig, image: &Pushed, s: &SignatureBlob, now: Timestamp) -> Outcome {
    // The manifest as the registry served it names this blob (the tests that mutate the blob
    // skip that check: they are about the envelope).
    let manifest = parse_signature_manifest(&s.manifest)?;
    assert_eq!(manifest.envelope.media_type, s.media_type);
    let checked = verify_signature(config, &target(image), &s.media_type, &s.bytes, now)?;
    let mut data = RevocationData::default();
    for r in checked.revocation_requests() {
        if let Some(req) = &r.ocsp_request {
            for url in &r.ocsp_urls {
                let fetched = match post_ocsp(url, req) {
                    Ok(b) => Fetched::Bytes(b),
                    Err(e) => Fetched::Failed(e),
                };
                data = data.with_ocsp(r.index, url.clone(), fetched);
            }
        }
        for url in &r.crl_urls {
            let fetched = match fetch_url(url) {
                Ok(b) => Fetched::Bytes(b),
                Err(e) => Fetched::Failed(e),
            };
            data = data.with_crl(url.clone(), fetched);
        }
    }
    checked.finish(&data, now)
}

/// The core and `notation verify` agree, and the expected side is taken.
#[track_caller]
fn agree(v: &Verifier, reference: &str, ours: &Outcome, expect_verified: bool) {
    let theirs = v.notation_verify(reference);
    assert_eq!(
        theirs.success(),
        expect_verified,
        "notation verify {reference}: expected verified={expect_verified}\nstdout: {}\nstderr: {}",
        theirs.stdout,
        theirs.stderr
    );
    assert_eq!(
        ours.is_ok(),
        theirs.success(),
        "the core says {ours:?}, notation verify says {}: {}{}",
        theirs.success(),
        theirs.stdout,
        theirs.stderr
    );
}

#[track_caller]
fn failure(o: &Outcome) -> &NotationError {
    o.as_ref().err().unwrap_or_else(|| panic!("expected a failure, got {o:?}"))
}

fn image_ref(registry: &Registry, repo: &str, p: &Pushed) -> ImageRef {
    ImageRef::parse(&format!("{}/{repo}:v1@{}", registry.host(), p.digest)).unwrap()
}

fn openssl_time(t: Timestamp) -> String {
    t.strftime("%Y%m%d%H%M%SZ").to_string()
}

#[test]
fn jws_and_cose_from_notation_verify_and_map_to_verified_with_evidence() {
    let registry = Registry::start();
    let repo = "shop/web";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let jws_img = registry.push_image(repo, "jws", "signed as JWS");
    let cose_img = registry.push_image(repo, "cose", "signed as COSE");
    signer.sign(&reference(&registry, repo, &jws_img), "jws", &[]);
    signer.sign(&reference(&registry, repo, &cose_img), "cose", &[]);

    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["x509.subject: C=US, ST=WA, O=Notary"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    let now = Timestamp::now();
    for (img, format) in [(&jws_img, EnvelopeFormat::Jws), (&cose_img, EnvelopeFormat::Cose)] {
        let ours = core(&v, &registry, repo, img, now);
        agree(&v, &reference(&registry, repo, img), &ours, true);
        let ok = ours.as_ref().unwrap();
        assert_eq!(ok.format, Some(format));
        assert_eq!(ok.signing_scheme, Some(SigningScheme::X509));
        assert!(!ok.timestamped && ok.warnings.is_empty(), "{ok:?}");
        let signed_at = ok.signing_time.expect("notation.x509 carries a signing time");
        assert!(signed_at <= now && now.duration_since(signed_at) < SignedDuration::from_mins(10), "{signed_at}");

        let r = to_resolution(&image_ref(&registry, repo, img), &ours, now, SignedDuration::from_hours(1));
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::Verified, "Verified"), "{r:?}");
        assert_eq!(r.format, trustwatch::verifier::SignatureFormat::Notation);
        let cert = r.certificate.as_ref().unwrap();
        assert_eq!(cert.subject, "CN=wabbit,O=Notary,L=Seattle,ST=WA,C=US");
        assert_eq!(cert.subject, cert.issuer, "generate-test makes a self-signed leaf");
        assert_eq!((r.timestamped, r.expires_role.as_deref()), (Some(false), Some("leaf certificate")));
        let left = r.expires.unwrap().duration_since(now);
        assert!(
            left > SignedDuration::from_hours(23) && left <= SignedDuration::from_hours(24),
            "a one-day test certificate: {left}"
        );
        assert_eq!(r.digest.as_deref(), Some(img.digest.as_str()));
        // Within a warning window longer than the certificate's life: ExpiringSoon.
        let r = to_resolution(&image_ref(&registry, repo, img), &ours, now, SignedDuration::from_hours(48));
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::ExpiringSoon, "CertificateExpiring"));
    }

    // The same trust, built the way the lead will from a CRD: PEM lists, no files.
    let config = TrustConfig {
        policy_name: "crd".into(),
        actions: Actions::of_level(Level::Strict),
        verify_timestamp: VerifyTimestamp::Always,
        ca: Cert::parse_many(signer.test_cert_pem("wabbit").as_bytes()).unwrap(),
        signing_authority: vec![],
        tsa: vec![],
        trusted_identities: TrustedIdentities::parse(&["x509.subject: C=US, ST=WA, O=Notary, CN=wabbit".into()])
            .unwrap(),
    };
    let sig = &fetch_signatures(&registry, repo, &cose_img.digest)[0];
    let checked = verify_signature(&config, &target(&cose_img), &sig.media_type, &sig.bytes, now).unwrap();
    assert!(!checked.needs_revocation(), "a generate-test certificate names no CRL or OCSP");
    assert!(checked.finish(&RevocationData::default(), now).is_ok());
}

#[test]
fn untrusted_store_and_identity_fail_like_notation_and_audit_only_logs_them() {
    let registry = Registry::start();
    let repo = "shop/api";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let other = Signer::new();
    other.generate_test("mallory");
    let img = registry.push_image(repo, "v1", "api");
    signer.sign(&reference(&registry, repo, &img), "jws", &[]);
    let r = reference(&registry, repo, &img);
    let now = Timestamp::now();

    // Wrong trust store: a store that holds another root.
    let v = Verifier::new(&policy("strict", &["ca:mallory"], &["*"], ""));
    v.add_cert("ca", "mallory", &other.test_cert_pem("mallory"));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!(
        (failure(&ours).reason(), failure(&ours).verdict()),
        ("UntrustedCertificateChain", Verdict::SignatureInvalid)
    );

    // audit: "only enforces signature integrity", the rest is logged.
    v.set_policy(&policy("audit", &["ca:mallory"], &["*"], ""));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, true);
    let w = &ours.as_ref().unwrap().warnings;
    assert_eq!(
        w.iter().map(|w| (w.check, w.reason)).collect::<Vec<_>>(),
        vec![(Check::Authenticity, "UntrustedCertificateChain")]
    );
    let res = to_resolution(&image_ref(&registry, repo, &img), &ours, now, SignedDuration::ZERO);
    assert_eq!((res.verdict, res.warnings.len()), (Verdict::Verified, 1));

    // Right store, identity not trusted.
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["x509.subject: C=US, ST=WA, O=Wabbit Networks"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!(failure(&ours).reason(), "IdentityNotTrusted");
    // permissive still enforces authenticity.
    v.set_policy(&policy("permissive", &["ca:wabbit"], &["x509.subject: C=US, ST=WA, O=Wabbit Networks"], ""));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    // Policy selection: an exact scope beats "*"; `skip` verifies nothing; no scope, no trust.
    let scoped = |first: &str, level: &str| {
        serde_json::json!({"version": "1.0", "trustPolicies": [
            {"name": "exact", "registryScopes": [first], "signatureVerification": {"level": level}},
            {"name": "global", "registryScopes": ["*"], "signatureVerification": {"level": "strict"}, "trustStores": ["ca:wabbit"], "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Wabbit Networks"]},
        ]})
        .to_string()
    };
    v.set_policy(&scoped(&format!("{}/{repo}", registry.host()), "skip"));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, true);
    assert!(ours.as_ref().unwrap().skipped);
    let res = to_resolution(&image_ref(&registry, repo, &img), &ours, now, SignedDuration::ZERO);
    assert_eq!((res.verdict, res.reason.as_str()), (Verdict::Verified, "VerificationSkipped"));
    assert_eq!(res.warnings.len(), 1, "a skipped verification is never silent");
    v.set_policy(&scoped(&format!("{}/elsewhere", registry.host()), "skip"));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!(failure(&ours).reason(), "IdentityNotTrusted", "the global policy applies");
    v.set_policy(
        &serde_json::json!({"version": "1.0", "trustPolicies": [{"name": "only", "registryScopes": [format!("{}/elsewhere", registry.host())], "signatureVerification": {"level": "strict"}, "trustStores": ["ca:wabbit"], "trustedIdentities": ["*"]}]})
            .to_string(),
    );
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!((failure(&ours).reason(), failure(&ours).verdict()), ("NoApplicableTrustPolicy", Verdict::NotCovered));

    // The identity with all of the leaf's attributes in another order and spacing matches.
    v.set_policy(&policy("strict", &["ca:wabbit"], &["x509.subject: CN=wabbit,O=Notary,L=Seattle,ST=WA,C=US"], ""));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, true);

    // A second signature, by another key: one verified signature is enough, whichever store.
    other.sign(&r, "cose", &[]);
    assert_eq!(fetch_signatures(&registry, repo, &img.digest).len(), 2);
    for store in ["wabbit", "mallory"] {
        let v = Verifier::new(&policy("strict", &[&format!("ca:{store}")], &["*"], ""));
        let pem = if store == "wabbit" { signer.test_cert_pem("wabbit") } else { other.test_cert_pem("mallory") };
        v.add_cert("ca", store, &pem);
        let ours = core(&v, &registry, repo, &img, now);
        agree(&v, &r, &ours, true);
        assert!(ours.unwrap().leaf_subject.starts_with(&format!("CN={store},")));
    }
}

#[test]
fn an_expired_signature_is_trust_data_expired_like_notation_unless_expiry_is_logged() {
    let registry = Registry::start();
    let repo = "shop/batch";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let img = registry.push_image(repo, "v1", "short-lived");
    let before = Timestamp::now();
    signer.sign(&reference(&registry, repo, &img), "cose", &["--expiry", "3s"]);
    let r = reference(&registry, repo, &img);
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["*"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));

    // The core takes `now`: while the signature is fresh it verifies, and it is expiring.
    let fresh = core(&v, &registry, repo, &img, before);
    let expiry = fresh.as_ref().unwrap().expiry.expect("--expiry sets io.cncf.notary.expiry");
    let res = to_resolution(&image_ref(&registry, repo, &img), &fresh, before, SignedDuration::from_hours(1));
    assert_eq!(
        (res.verdict, res.reason.as_str(), res.expires_role.as_deref()),
        (Verdict::ExpiringSoon, "SignatureExpiring", Some("signature"))
    );
    assert_eq!(res.expires, Some(expiry));

    // Wait it out for notation verify, which reads the real clock.
    while Timestamp::now() <= expiry + SignedDuration::from_secs(1) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let now = Timestamp::now();
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!((failure(&ours).reason(), failure(&ours).verdict()), ("SignatureExpired", Verdict::TrustDataExpired));

    v.set_policy(&policy("strict", &["ca:wabbit"], &["*"], r#","override":{"expiry":"log"}"#));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, true);
    assert_eq!(ours.as_ref().unwrap().warnings[0].reason, "SignatureExpired");
    // An expiry already past is no longer an upcoming one.
    assert!(ours.as_ref().unwrap().expiries.iter().all(|e| e.what != "signature"));
}

#[test]
fn tampered_envelopes_and_a_signature_for_another_digest_fail_like_notation() {
    let registry = Registry::start();
    let repo = "shop/cart";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["*"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    let now = Timestamp::now();
    for format in ["jws", "cose"] {
        let signed = registry.push_image(repo, &format!("{format}-a"), &format!("{format} signed"));
        let other = registry.push_image(repo, &format!("{format}-b"), &format!("{format} other"));
        let victim = registry.push_image(repo, &format!("{format}-c"), &format!("{format} victim"));
        signer.sign(&reference(&registry, repo, &signed), format, &[]);
        let sig = fetch_signatures(&registry, repo, &signed.digest).remove(0);
        assert!(core(&v, &registry, repo, &signed, now).is_ok());

        // The envelope of `signed`, presented as the signature of `other`.
        attach_envelope(&registry, repo, &other, &sig.media_type, &sig.bytes);
        let ours = core(&v, &registry, repo, &other, now);
        agree(&v, &reference(&registry, repo, &other), &ours, false);
        assert_eq!(
            (failure(&ours).reason(), failure(&ours).verdict()),
            ("TargetDigestMismatch", Verdict::Tampered),
            "{format}"
        );

        // One flipped bit inside the signature value.
        let mut bytes = sig.bytes.clone();
        let at = if format == "jws" {
            let s = String::from_utf8(bytes.clone()).unwrap();
            s.find("\"signature\":\"").unwrap() + 20
        } else {
            bytes.len() - 10
        };
        bytes[at] ^= if format == "jws" { 0x01 } else { 0x80 };
        attach_envelope(&registry, repo, &victim, &sig.media_type, &bytes);
        let ours = verify_blob(
            &signed_config(&v, &registry, repo),
            &victim,
            &SignatureBlob { bytes: bytes.clone(), ..sig.clone() },
            now,
        );
        // The envelope names `signed`, so even an intact signature would be for another
        // digest; against `signed` itself the flipped bit must be what fails.
        assert!(matches!(failure(&ours).verdict(), Verdict::Tampered | Verdict::SignatureInvalid), "{ours:?}");
        let tampered =
            verify_blob(&signed_config(&v, &registry, repo), &signed, &SignatureBlob { bytes, ..sig.clone() }, now);
        assert!(
            matches!(failure(&tampered).reason(), "SignatureMismatch" | "MalformedEnvelope"),
            "{format}: {tampered:?}"
        );
        agree(&v, &reference(&registry, repo, &victim), &ours, false);
    }
}

fn signed_config(v: &Verifier, registry: &Registry, repo: &str) -> TrustConfig {
    let doc = TrustPolicyDocument::from_json(&v.policy_bytes()).unwrap();
    let store = TrustStore::load_dir(&v.truststore_dir()).unwrap();
    TrustConfig::from_policy(doc.policy_for(&format!("{}/{repo}", registry.host())).unwrap(), &store).unwrap()
}

#[test]
fn openssl_chains_with_a_crl_verify_and_a_revoked_leaf_is_signer_revoked_like_notation() {
    let registry = Registry::start();
    let repo = "shop/payments";
    let http = HttpPeer::start(None);
    let crl_path = "/crl/acme-int.crl";
    let pki = Pki::new("Acme", Some(http.url(crl_path)));
    http.put(crl_path, pki.crl_der());
    let ec = pki.issue_leaf("release", LeafKey::Ec("P-384"), Validity::Days(30));
    let rsa = pki.issue_leaf("legacy", LeafKey::Rsa(3072), Validity::Days(30));
    let good = registry.push_image(repo, "good", "good build");
    let bad = registry.push_image(repo, "bad", "build by a compromised key");
    let signer = Signer::new();
    signer.use_key("release", &ec.key, &ec.chain);
    signer.sign(&reference(&registry, repo, &good), "cose", &[]);
    signer.use_key("legacy", &rsa.key, &rsa.chain);
    signer.sign(&reference(&registry, repo, &bad), "jws", &[]);
    pki.revoke(&rsa);
    http.put(crl_path, pki.crl_der());

    let v = Verifier::new(&policy("strict", &["ca:acme"], &["x509.subject: C=US, ST=WA, O=Acme, OU=Builds"], ""));
    v.add_cert("ca", "acme", &pki.root_pem());
    let now = Timestamp::now();

    let ours = core(&v, &registry, repo, &good, now);
    agree(&v, &reference(&registry, repo, &good), &ours, true);
    let ok = ours.as_ref().unwrap();
    assert_eq!(ok.chain_fingerprints.len(), 3, "leaf, intermediate, root");
    assert_eq!(ok.leaf_issuer, "CN=Acme Intermediate,O=Acme,ST=WA,C=US");
    assert!(
        http.requests().iter().any(|r| r == &format!("GET {crl_path}")),
        "the core asked for the CRL: {:?}",
        http.requests()
    );
    let res = to_resolution(&image_ref(&registry, repo, &good), &ours, now, SignedDuration::from_hours(24 * 60));
    assert_eq!(
        (res.verdict, res.expires_role.as_deref()),
        (Verdict::ExpiringSoon, Some("leaf certificate")),
        "a 30-day leaf"
    );

    let ours = core(&v, &registry, repo, &bad, now);
    agree(&v, &reference(&registry, repo, &bad), &ours, false);
    assert_eq!((failure(&ours).reason(), failure(&ours).verdict()), ("CertificateRevoked", Verdict::SignerRevoked));

    // A CRL with the intermediate's name but another key: not the issuing CA's, so unknown,
    // never good.
    let forger = Pki::new("Acme", None);
    http.put(crl_path, forger.crl_der());
    v.set_policy(&policy("strict", &["ca:acme"], &["x509.subject: C=US, ST=WA, O=Acme, OU=Builds"], ""));
    let ours = core(&v, &registry, repo, &good, now);
    agree(&v, &reference(&registry, repo, &good), &ours, false);
    assert_eq!(failure(&ours).reason(), "RevocationUnknown");
    assert!(failure(&ours).to_string().contains("does not verify"), "{ours:?}");
    http.put(crl_path, pki.crl_der());
    // A week later the CRL (7 days) is stale: unknown, while the 30-day leaf is still valid.
    let ours = core(&v, &registry, repo, &good, now + SignedDuration::from_hours(24 * 8));
    assert_eq!(failure(&ours).reason(), "RevocationUnknown");
    assert!(failure(&ours).to_string().contains("nextUpdate"), "{ours:?}");

    // permissive logs revocation.
    v.set_policy(&policy("permissive", &["ca:acme"], &["x509.subject: C=US, ST=WA, O=Acme, OU=Builds"], ""));
    let ours = core(&v, &registry, repo, &bad, now);
    agree(&v, &reference(&registry, repo, &bad), &ours, true);
    assert_eq!(ours.as_ref().unwrap().warnings[0].reason, "CertificateRevoked");

    // The CRL goes away: unknown. Enforced, that is TrustDataUnavailable; logged, a warning.
    http.remove(crl_path);
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], ""));
    let ours = core(&v, &registry, repo, &good, now);
    agree(&v, &reference(&registry, repo, &good), &ours, false);
    assert_eq!(
        (failure(&ours).reason(), failure(&ours).verdict()),
        ("RevocationUnknown", Verdict::TrustDataUnavailable)
    );
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], r#","override":{"revocation":"log"}"#));
    let ours = core(&v, &registry, repo, &good, now);
    agree(&v, &reference(&registry, repo, &good), &ours, true);
    let res = to_resolution(&image_ref(&registry, repo, &good), &ours, now, SignedDuration::ZERO);
    assert_eq!(res.verdict, Verdict::Verified);
    assert!(res.warnings[0].contains("RevocationUnknown"), "{:?}", res.warnings);
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], r#","override":{"revocation":"skip"}"#));
    let ours = core(&v, &registry, repo, &bad, now);
    agree(&v, &reference(&registry, repo, &bad), &ours, true);
    assert!(ours.unwrap().warnings.is_empty());
}

#[test]
fn a_timestamped_signature_outlives_its_expired_leaf_only_with_the_tsa() {
    let registry = Registry::start();
    let repo = "shop/archive";
    let tsa = Tsa::new();
    let tsa_root = tsa.root_path();
    let tsa_root_pem = tsa.root_pem();
    let http = HttpPeer::start(Some(tsa));
    let pki = Pki::new("Acme", None);
    // The CA certificates start "now": a timestamp of this very second, less its one-second
    // accuracy, would reach before them (and rightly fail). Let a couple of seconds pass.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let start = Timestamp::now() - SignedDuration::from_hours(1);
    let end = Timestamp::now() + SignedDuration::from_secs(25);
    let leaf = pki.issue_leaf(
        "nightly",
        LeafKey::Ec("P-256"),
        Validity::Dates { start: openssl_time(start), end: openssl_time(end) },
    );
    let stamped = registry.push_image(repo, "stamped", "timestamped build");
    let plain = registry.push_image(repo, "plain", "untimestamped build");
    let signer = Signer::new();
    signer.use_key("nightly", &leaf.key, &leaf.chain);
    let tsa_url = http.url("/tsa");
    signer.sign(
        &reference(&registry, repo, &stamped),
        "jws",
        &["--timestamp-url", &tsa_url, "--timestamp-root-cert", tsa_root.to_str().unwrap()],
    );
    signer.sign(&reference(&registry, repo, &plain), "cose", &[]);
    let stamped_cose = registry.push_image(repo, "stamped-cose", "timestamped COSE build");
    signer.sign(
        &reference(&registry, repo, &stamped_cose),
        "cose",
        &["--timestamp-url", &tsa_url, "--timestamp-root-cert", tsa_root.to_str().unwrap()],
    );
    assert!(http.requests().iter().any(|r| r.starts_with("POST /tsa")), "notation asked the TSA");

    let v = Verifier::new(&policy("strict", &["ca:acme", "tsa:stamps"], &["*"], ""));
    v.add_cert("ca", "acme", &pki.root_pem());
    v.add_cert("tsa", "stamps", &tsa_root_pem);
    let signed_at = Timestamp::now();
    let ours = core(&v, &registry, repo, &stamped, signed_at);
    let ok = ours.as_ref().unwrap();
    assert!(ok.timestamped, "{ok:?}");
    let gen_time = ok.authentic_signing_time.unwrap();
    assert!(gen_time.duration_since(signed_at).abs() < SignedDuration::from_mins(5), "genTime {gen_time}");
    assert!(ok.expiries.iter().any(|e| e.what == "tsa certificate"), "{:?}", ok.expiries);
    let res = to_resolution(&image_ref(&registry, repo, &stamped), &ours, signed_at, SignedDuration::from_hours(1));
    assert_eq!(
        (res.timestamped, res.verdict, res.expires_role.as_deref()),
        (Some(true), Verdict::ExpiringSoon, Some("leaf certificate"))
    );

    // verifyTimestamp afterCertExpiry: while the chain is valid the timestamp is not even
    // looked at, so no tsa store is needed.
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], r#","verifyTimestamp":"afterCertExpiry""#));
    let ours = core(&v, &registry, repo, &stamped, Timestamp::now());
    agree(&v, &reference(&registry, repo, &stamped), &ours, true);
    assert!(!ours.as_ref().unwrap().timestamped);
    v.set_policy(&policy("strict", &["ca:acme", "tsa:stamps"], &["*"], ""));

    while Timestamp::now() <= end + SignedDuration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let now = Timestamp::now();
    let ours = core(&v, &registry, repo, &stamped, now);
    agree(&v, &reference(&registry, repo, &stamped), &ours, true);
    let res = to_resolution(&image_ref(&registry, repo, &stamped), &ours, now, SignedDuration::ZERO);
    assert_eq!((res.verdict, res.timestamped, res.signing_time), (Verdict::Verified, Some(true), Some(gen_time)));
    assert_ne!(res.expires_role.as_deref(), Some("leaf certificate"), "the expired leaf no longer decides: {res:?}");

    let ours = core(&v, &registry, repo, &stamped_cose, now);
    agree(&v, &reference(&registry, repo, &stamped_cose), &ours, true);
    assert!(ours.unwrap().timestamped, "COSE: the token is over the COSE signature bytes");

    let ours = core(&v, &registry, repo, &plain, now);
    agree(&v, &reference(&registry, repo, &plain), &ours, false);
    assert_eq!((failure(&ours).reason(), failure(&ours).verdict()), ("CertificateExpired", Verdict::TrustDataExpired));

    // Without a tsa store the timestamp cannot be trusted and the leaf is simply expired.
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], ""));
    let ours = core(&v, &registry, repo, &stamped, now);
    agree(&v, &reference(&registry, repo, &stamped), &ours, false);
    assert_eq!(failure(&ours).reason(), "UntrustedTimestamp");
    // permissive logs the authentic timestamp check.
    v.set_policy(&policy("permissive", &["ca:acme"], &["*"], ""));
    let ours = core(&v, &registry, repo, &plain, now);
    agree(&v, &reference(&registry, repo, &plain), &ours, true);
    assert_eq!(ours.as_ref().unwrap().warnings[0].reason, "CertificateExpired");
}

/// Where a mutation may legitimately leave the signature valid: the unsigned signing agent
/// ("the verifier MUST NOT validate formatting, or fail validation based on the content").
fn signing_agent_span(bytes: &[u8]) -> std::ops::Range<usize> {
    let key = b"io.cncf.notary.signingAgent";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("notation writes a signing agent");
    let value_end = at + key.len() + 40;
    at.saturating_sub(2)..value_end.min(bytes.len())
}

#[test]
fn bit_flips_and_truncations_of_real_envelopes_never_verify() {
    let registry = Registry::start();
    let repo = "shop/fuzz";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["*"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    let config = signed_config(&v, &registry, repo);
    let now = Timestamp::now();
    let mut checked = 0usize;
    for format in ["jws", "cose"] {
        let img = registry.push_image(repo, format, format);
        signer.sign(&reference(&registry, repo, &img), format, &[]);
        let sig = fetch_signatures(&registry, repo, &img.digest).remove(0);
        let original = verify_blob(&config, &img, &sig, now);
        assert!(original.is_ok(), "{original:?}");
        let agent = signing_agent_span(&sig.bytes);
        for i in 0..sig.bytes.len() {
            let mut bytes = sig.bytes.clone();
            bytes[i] ^= 1 << (i % 8);
            let out = verify_blob(&config, &img, &SignatureBlob { bytes, ..sig.clone() }, now);
            if agent.contains(&i) {
                assert!(out.is_err() || out == original, "{format} byte {i}: {out:?}");
            } else {
                assert!(out.is_err(), "{format}: flipping bit {} of byte {i} still verifies", i % 8);
            }
            checked += 1;
        }
        for len in (0..sig.bytes.len()).step_by(3) {
            let out =
                verify_blob(&config, &img, &SignatureBlob { bytes: sig.bytes[..len].to_vec(), ..sig.clone() }, now);
            assert!(out.is_err(), "{format} truncated to {len} bytes still verifies");
            checked += 1;
        }
        // Appended garbage is not part of the envelope either.
        let mut long = sig.bytes.clone();
        long.extend_from_slice(b"\x00");
        assert!(
            verify_blob(&config, &img, &SignatureBlob { bytes: long, ..sig.clone() }, now).is_err(),
            "{format} with a trailing byte"
        );
    }
    assert!(checked > 2000, "{checked} mutations");
}

#[test]
fn every_algorithm_of_the_spec_verifies_like_notation() {
    let registry = Registry::start();
    let repo = "shop/algorithms";
    let pki = Pki::new("Acme", None);
    let signer = Signer::new();
    let v = Verifier::new(&policy("strict", &["ca:acme"], &["x509.subject: C=US, ST=WA, O=Acme"], ""));
    v.add_cert("ca", "acme", &pki.root_pem());
    let cases = [
        (LeafKey::Rsa(2048), "jws"),
        (LeafKey::Rsa(3072), "cose"),
        (LeafKey::Rsa(4096), "jws"),
        (LeafKey::Ec("P-256"), "cose"),
        (LeafKey::Ec("P-384"), "jws"),
        (LeafKey::Ec("P-521"), "cose"),
    ];
    for (i, (key, format)) in cases.into_iter().enumerate() {
        let name = format!("alg{i}");
        let leaf = pki.issue_leaf(&name, key, Validity::Days(10));
        let img = registry.push_image(repo, &name, &format!("{key:?} {format}"));
        signer.use_key(&name, &leaf.key, &leaf.chain);
        signer.sign(&reference(&registry, repo, &img), format, &[]);
        let ours = core(&v, &registry, repo, &img, Timestamp::now());
        agree(&v, &reference(&registry, repo, &img), &ours, true);
        assert_eq!(ours.unwrap().leaf_subject, format!("CN={name},OU=Builds,O=Acme,L=Seattle,ST=WA,C=US"));
    }
}

#[test]
fn signing_authority_scheme_and_unknown_critical_attributes_decide_like_notation() {
    let registry = Registry::start();
    let repo = "shop/authority";
    let pki = Pki::new("Acme", None);
    let leaf = pki.issue_leaf("authority", LeafKey::Ec("P-256"), Validity::Days(10));
    let img = registry.push_image(repo, "v1", "signed by a signing authority");
    let payload = serde_json::to_vec(
        &serde_json::json!({"targetArtifact": {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.size}}),
    )
    .unwrap();
    // Whole seconds, as the spec asks ("fractional second SHOULD NOT be used"), and not before
    // the CA certificates issued this second.
    let signed_at = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let mut header = serde_json::json!({
        "alg": "ES256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.authenticSigningTime"],
        "io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
        "io.cncf.notary.authenticSigningTime": signed_at.to_string(),
    });
    attach_envelope(&registry, repo, &img, MEDIA_TYPE_JWS, &openssl_jws(&leaf, &header, &payload));
    let r = reference(&registry, repo, &img);
    let now = Timestamp::now();

    let v = Verifier::new(&policy("strict", &["signingAuthority:acme"], &["*"], ""));
    v.add_cert("signingAuthority", "acme", &pki.root_pem());
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, true);
    let ok = ours.as_ref().unwrap();
    assert_eq!(
        (ok.signing_scheme, ok.authentic_signing_time),
        (Some(SigningScheme::X509SigningAuthority), Some(signed_at))
    );

    // A signing authority's signature is not trusted through a `ca` store.
    let ca = Verifier::new(&policy("strict", &["ca:acme"], &["*"], ""));
    ca.add_cert("ca", "acme", &pki.root_pem());
    let ours = core(&ca, &registry, repo, &img, now);
    agree(&ca, &r, &ours, false);
    assert_eq!(failure(&ours).reason(), "UntrustedCertificateChain");

    // A critical attribute for a verification plugin we do not run.
    header["io.cncf.notary.verificationPlugin"] = "com.example.transparency".into();
    header["crit"] = serde_json::json!([
        "io.cncf.notary.signingScheme",
        "io.cncf.notary.authenticSigningTime",
        "io.cncf.notary.verificationPlugin"
    ]);
    attach_envelope(&registry, repo, &img, MEDIA_TYPE_JWS, &openssl_jws(&leaf, &header, &payload));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!(
        (failure(&ours).reason(), failure(&ours).verdict()),
        ("UnknownCriticalAttribute", Verdict::SignatureInvalid)
    );
}

#[test]
fn ocsp_answers_decide_before_crls_and_a_responder_outage_falls_back_like_notation() {
    let registry = Registry::start();
    let repo = "shop/ocsp";
    let http = HttpPeer::start(None);
    let crl_path = "/crl/acme-int.crl";
    let mut pki = Pki::new("Acme", Some(http.url(crl_path)));
    pki.set_ocsp_url(http.url("/ocsp"));
    http.serve_ocsp(Some(pki.dir()));
    http.put(crl_path, pki.crl_der());
    let keep = pki.issue_leaf("keep", LeafKey::Ec("P-256"), Validity::Days(10));
    let gone = pki.issue_leaf("gone", LeafKey::Rsa(2048), Validity::Days(10));
    let kept = registry.push_image(repo, "kept", "still trusted");
    let revoked = registry.push_image(repo, "revoked", "signed by a revoked key");
    let signer = Signer::new();
    signer.use_key("keep", &keep.key, &keep.chain);
    signer.sign(&reference(&registry, repo, &kept), "jws", &[]);
    signer.use_key("gone", &gone.key, &gone.chain);
    signer.sign(&reference(&registry, repo, &revoked), "cose", &[]);
    pki.revoke(&gone);
    // The revocation is in the CA database (what the responder reads) but not yet in the CRL
    // that is served: only OCSP knows.
    let v = Verifier::new(&policy("strict", &["ca:acme"], &["*"], ""));
    v.add_cert("ca", "acme", &pki.root_pem());
    let now = Timestamp::now();

    let ours = core(&v, &registry, repo, &kept, now);
    agree(&v, &reference(&registry, repo, &kept), &ours, true);
    assert!(http.requests().iter().any(|r| r == "POST /ocsp"), "{:?}", http.requests());
    let ours = core(&v, &registry, repo, &revoked, now);
    agree(&v, &reference(&registry, repo, &revoked), &ours, false);
    assert_eq!((failure(&ours).reason(), failure(&ours).verdict()), ("CertificateRevoked", Verdict::SignerRevoked));

    // The responder is down: OCSP cannot decide, the CRL does (it does not list `gone` yet).
    http.serve_ocsp(None);
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], ""));
    let ours = core(&v, &registry, repo, &revoked, now);
    agree(&v, &reference(&registry, repo, &revoked), &ours, true);
    // Responder and CRL both gone: unknown, enforced.
    http.remove(crl_path);
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], ""));
    let ours = core(&v, &registry, repo, &kept, now);
    agree(&v, &reference(&registry, repo, &kept), &ours, false);
    assert_eq!(
        (failure(&ours).reason(), failure(&ours).verdict()),
        ("RevocationUnknown", Verdict::TrustDataUnavailable)
    );
}

#[test]
fn notation_config_loading_reads_trustpolicy_json_like_notation_and_rejects_symlinked_certificates() {
    let registry = Registry::start();
    let repo = "shop/config";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let img = registry.push_image(repo, "v1", "config");
    signer.sign(&reference(&registry, repo, &img), "jws", &[]);
    let r = reference(&registry, repo, &img);
    let now = Timestamp::now();

    // notation 1.x reads trustpolicy.json and ignores a trustpolicy.oci.json (notation 2.x's
    // name) beside it; the core does the same, and uses the .oci.json when it is alone.
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["x509.subject: C=US, ST=WA, O=Nobody"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    std::fs::write(v.config_dir().join("trustpolicy.oci.json"), policy("strict", &["ca:wabbit"], &["*"], "")).unwrap();
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!(failure(&ours).reason(), "IdentityNotTrusted");
    let json = v.policy_bytes();
    std::fs::remove_file(v.config_dir().join("trustpolicy.json")).unwrap();
    assert!(core(&v, &registry, repo, &img, now).is_ok(), "trustpolicy.oci.json alone is used");
    std::fs::write(v.config_dir().join("trustpolicy.json"), &json).unwrap();
    std::fs::remove_file(v.config_dir().join("trustpolicy.oci.json")).unwrap();
    v.set_policy(&policy("strict", &["ca:wabbit"], &["*"], ""));
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, true);

    // "Symlinks are not supported for the named store directories or certificate files."
    let store = v.truststore_dir().join("x509/ca/wabbit");
    let cert = std::fs::read_dir(&store).unwrap().next().unwrap().unwrap().path();
    let elsewhere = v.config_dir().join("elsewhere.pem");
    std::fs::rename(&cert, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &cert).unwrap();
    let ours = core(&v, &registry, repo, &img, now);
    agree(&v, &r, &ours, false);
    assert_eq!(
        (failure(&ours).reason(), failure(&ours).verdict()),
        ("InvalidTrustStore", Verdict::TrustDataUnavailable)
    );
}
