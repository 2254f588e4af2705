//! The Notation I/O shell (`NotationVerifier`) and `trustwatch verify` for Notation and cosign,
//! against REAL peers: images in Debian's docker-registry (no referrers API: the referrers tag
//! schema) and in olareg (the referrers API), signed by the real `notation` CLI (JWS and COSE;
//! `notation cert generate-test` and openssl chains; an RFC 3161 TSA from `openssl ts`; CRLs
//! from `openssl ca` and an `openssl ocsp` responder served over HTTP on loopback) and by the
//! real `cosign` CLI (offline). For every case trustwatch agrees with `notation verify` (or
//! `cosign verify`) on the same image and trust configuration.

mod support;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Registry;
use support::notation::*;
use support::oci::{Cosign, Olareg, Oras, http_get, http_put_manifest};
use trustwatch::image::ImageRef;
use trustwatch::notation::{
    Actions, Cert, Level, NotationCounts, NotationTrustSource, NotationVerifier, SIGNATURE_ARTIFACT_TYPE, ShellOptions,
    TrustConfig, TrustedIdentities, VerifyTimestamp,
};
use trustwatch::oci::{
    RegistryClient, RegistryConfig, Repository, RequestEvent, RequestKind, RequestObserver, referrers_tag,
};
use trustwatch::verdict::Verdict;
use trustwatch::verifier::{Resolution, SignatureFormat};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn policy(level: &str, stores: &[&str], identities: &[&str], extra: &str) -> String {
    serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "images",
            "registryScopes": ["*"],
            "signatureVerification": serde_json::from_str::<Value>(&format!(r#"{{"level":"{level}"{extra}}}"#)).unwrap(),
            "trustStores": stores,
            "trustedIdentities": identities,
        }]
    })
    .to_string()
}

fn client() -> Arc<RegistryClient> {
    Arc::new(RegistryClient::new(RegistryConfig { plain_http: true, ..Default::default() }).unwrap())
}

/// Every request a client made: (kind, path, status).
type Log = Arc<Mutex<Vec<(RequestKind, String, Option<u16>)>>>;

fn observed_client() -> (Arc<RegistryClient>, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let observer: RequestObserver =
        Arc::new(move |e: &RequestEvent<'_>| l.lock().unwrap().push((e.kind, e.path.to_string(), e.status)));
    let config = RegistryConfig { plain_http: true, observer: Some(observer), ..Default::default() };
    (Arc::new(RegistryClient::new(config).unwrap()), log)
}

/// A shell over notation's own configuration directory, as the CLI builds it.
fn shell_with(v: &Verifier, client: Arc<RegistryClient>, options: ShellOptions) -> NotationVerifier {
    NotationVerifier::new(client, NotationTrustSource::from_config_dir(&v.config_dir()).unwrap(), options)
}

fn shell_for(v: &Verifier) -> NotationVerifier {
    shell_with(v, client(), ShellOptions::default())
}

async fn check(shell: &NotationVerifier, image: &str, fresh_since: Instant) -> Resolution {
    shell.verify_image(&ImageRef::parse(image).unwrap(), Timestamp::now(), SignedDuration::ZERO, fresh_since).await
}

fn at(host: &str, repo: &str, digest: &str) -> String {
    format!("{host}/{repo}@{digest}")
}

/// trustwatch trusts the image exactly when `notation verify` does, and that is the expected side.
#[track_caller]
fn agree(v: &Verifier, reference: &str, r: &Resolution, expect_trusted: bool) {
    let theirs = v.notation_verify(reference);
    assert_eq!(
        theirs.success(),
        expect_trusted,
        "notation verify {reference}: expected trusted={expect_trusted}\nstdout: {}\nstderr: {}",
        theirs.stdout,
        theirs.stderr
    );
    assert_eq!(
        r.verdict.is_trusted(),
        theirs.success(),
        "trustwatch says {} ({}: {}), notation verify says {}: {}{}",
        r.verdict,
        r.reason,
        r.message,
        theirs.success(),
        theirs.stdout,
        theirs.stderr
    );
    assert_eq!(r.format, SignatureFormat::Notation);
}

#[track_caller]
fn expect(r: &Resolution, verdict: Verdict, reason: &str) {
    assert_eq!((r.verdict, r.reason.as_str()), (verdict, reason), "{r:#?}");
}

/// `trustwatch <args>`: (exit code, stdout, stderr), with no Notary variables from the
/// environment.
fn trustwatch(args: &[&str]) -> (i32, String, String) {
    trustwatch_env(args, &[])
}

fn trustwatch_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustwatch"));
    cmd.args(args)
        .env_remove("TRUSTWATCH_NOTARY_SERVER")
        .env_remove("TRUSTWATCH_NOTARY_USERNAME")
        .env_remove("TRUSTWATCH_NOTARY_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run trustwatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn json(code: i32, expected_code: i32, stdout: &str, stderr: &str) -> Vec<Value> {
    assert_eq!(code, expected_code, "stdout: {stdout}\nstderr: {stderr}");
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn delta(after: NotationCounts, before: NotationCounts) -> String {
    format!(
        "referrer lookups {}, HTTP: referrers {} manifest GET {} manifest HEAD {} blob GET {} token {}; \
         envelope reads {}, verifications {} (cached {}), CRL downloads {} (cached {}), OCSP {} (cached {})",
        after.referrer_lookups - before.referrer_lookups,
        after.registry.referrers - before.registry.referrers,
        after.registry.manifest_get - before.registry.manifest_get,
        after.registry.manifest_head - before.registry.manifest_head,
        after.registry.blob_get - before.registry.blob_get,
        after.registry.token - before.registry.token,
        after.envelope_reads - before.envelope_reads,
        after.verifications - before.verifications,
        after.verification_cache_hits - before.verification_cache_hits,
        after.crl_downloads - before.crl_downloads,
        after.crl_cache_hits - before.crl_cache_hits,
        after.ocsp_requests - before.ocsp_requests,
        after.ocsp_cache_hits - before.ocsp_cache_hits,
    )
}

fn openssl_time(t: Timestamp) -> String {
    t.strftime("%Y%m%d%H%M%SZ").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jws_and_cose_verify_through_the_shell_and_the_cli_like_notation_verify() {
    let registry = Registry::start();
    let host = registry.host();
    let repo = "shop/web";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let jws = registry.push_image(repo, "jws", "signed as JWS");
    let cose = registry.push_image(repo, "cose", "signed as COSE");
    signer.sign(&at(&host, repo, &jws.digest), "jws", &[]);
    signer.sign(&at(&host, repo, &cose.digest), "cose", &[]);
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["x509.subject: C=US, ST=WA, O=Notary"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    let subject = "CN=wabbit,O=Notary,L=Seattle,ST=WA,C=US";

    // The operator's path: one TrustConfig built from PEM (a TrustRoot), no files.
    let from_crd = TrustConfig {
        policy_name: "crd".into(),
        actions: Actions::of_level(Level::Strict),
        verify_timestamp: VerifyTimestamp::Always,
        ca: Cert::parse_many(signer.test_cert_pem("wabbit").as_bytes()).unwrap(),
        signing_authority: vec![],
        tsa: vec![],
        trusted_identities: TrustedIdentities::parse(&["x509.subject: C=US, ST=WA, O=Notary, CN=wabbit".into()])
            .unwrap(),
    };
    let crd = NotationVerifier::new(client(), NotationTrustSource::Config(from_crd), ShellOptions::default());
    let shell = shell_for(&v);
    let now = Timestamp::now();
    for (img, tag) in [(&jws, "jws"), (&cose, "cose")] {
        let image = format!("{host}/{repo}:{tag}@{}", img.digest);
        let r = check(&shell, &image, Instant::now()).await;
        agree(&v, &at(&host, repo, &img.digest), &r, true);
        expect(&r, Verdict::Verified, "Verified");
        assert_eq!(
            (r.image.as_str(), r.digest.as_deref(), r.tag.as_deref()),
            (image.as_str(), Some(&*img.digest), Some(tag))
        );
        assert_eq!(r.certificate.as_ref().unwrap().subject, subject);
        assert_eq!((r.timestamped, r.expires_role.as_deref()), (Some(false), Some("leaf certificate")));
        let signed_at = r.signing_time.expect("a signing time");
        assert!(now.duration_since(signed_at).abs() < SignedDuration::from_mins(10), "{signed_at}");
        assert_eq!(r.tag_digest, None, "the tag still names the signed digest");
        assert!(r.message.contains("\"images\""), "the policy of trustpolicy.json: {}", r.message);
        let r = check(&crd, &image, Instant::now()).await;
        expect(&r, Verdict::Verified, "Verified");
        assert!(r.message.contains("\"crd\""), "{}", r.message);
    }

    // The CLI, on notation's own configuration directory.
    let dir = v.config_dir();
    let dir = dir.to_str().unwrap();
    let (jws_ref, cose_ref) = (at(&host, repo, &jws.digest), at(&host, repo, &cose.digest));
    let (code, out, err) = trustwatch(&[
        "verify",
        "--notation-config",
        dir,
        "--plain-http",
        "--expiry-warning",
        "0s",
        "-o",
        "json",
        &jws_ref,
        &cose_ref,
    ]);
    let results = json(code, 0, &out, &err);
    assert_eq!(results.len(), 2);
    for (r, img) in results.iter().zip([&jws, &cose]) {
        for field in ["image", "gun", "digest", "verdict", "reason", "message", "signers", "expires", "expiresRole"] {
            assert!(r.get(field).is_some(), "field {field} missing in {r}");
        }
        assert_eq!((r["verdict"].as_str(), r["format"].as_str()), (Some("Verified"), Some("Notation")), "{r}");
        assert_eq!(r["digest"], img.digest.as_str());
        assert_eq!(r["gun"], format!("{host}/{repo}"));
        assert_eq!(r["certificate"]["subject"], subject);
        assert_eq!(r["signers"][0], subject);
        assert_eq!(r["timestamped"], false);
        assert_eq!(r["expiresRole"], "leaf certificate");
        assert!(r["signingTime"].as_str().unwrap().parse::<Timestamp>().is_ok(), "{r}");
        assert!(r.get("tagDigest").is_none() && r.get("warnings").is_none(), "{r}");
    }
    // notation's files as --trust-policy and --trust-store; a tag is resolved in the registry
    // first, and the answer says which digest was verified.
    let tp = v.config_dir().join("trustpolicy.json");
    let ts = v.truststore_dir();
    let files = ["--trust-policy", tp.to_str().unwrap(), "--trust-store", ts.to_str().unwrap(), "--plain-http"];
    let tag_ref = format!("{host}/{repo}:jws");
    let (code, out, err) = trustwatch(&[&["verify", "-o", "json"][..], &files, &[&tag_ref]].concat());
    let r = &json(code, 0, &out, &err)[0];
    assert_eq!((r["image"].as_str(), r["tag"].as_str()), (Some(tag_ref.as_str()), Some("jws")));
    assert_eq!(r["digest"], jws.digest.as_str());
    assert!(v.notation_verify(&tag_ref).success(), "notation verify resolves the tag too");
    // --expiry-warning: the one-day test certificate is within 48h, still trusted (exit 0).
    let (code, out, err) =
        trustwatch(&[&["verify", "-o", "json", "--expiry-warning", "48h"][..], &files, &[&jws_ref]].concat());
    let r = &json(code, 0, &out, &err)[0];
    assert_eq!((r["verdict"].as_str(), r["reason"].as_str()), (Some("ExpiringSoon"), Some("CertificateExpiring")));
    // --now: two days later the leaf has expired.
    let later = (now + SignedDuration::from_hours(48)).to_string();
    let (code, out, err) = trustwatch(&[&["verify", "-o", "json", "--now", &later][..], &files, &[&jws_ref]].concat());
    let r = &json(code, 1, &out, &err)[0];
    assert_eq!((r["verdict"].as_str(), r["reason"].as_str()), (Some("TrustDataExpired"), Some("CertificateExpired")));
    // The table for people.
    let (code, out, err) =
        trustwatch(&[&["verify", "--expiry-warning", "0s"][..], &files, &[&jws_ref, &cose_ref]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Verified") && out.contains(subject), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_tampered_foreign_expired_and_missing_signatures_fail_like_notation_verify() {
    let registry = Registry::start();
    let host = registry.host();
    let repo = "shop/api";
    let signer = Signer::new();
    signer.generate_test("wabbit");
    let other = Signer::new();
    other.generate_test("mallory");
    let img = registry.push_image(repo, "v1", "api");
    signer.sign(&at(&host, repo, &img.digest), "jws", &[]);
    let reference = at(&host, repo, &img.digest);

    // Wrong trust store: it holds another root.
    let wrong = Verifier::new(&policy("strict", &["ca:mallory"], &["*"], ""));
    wrong.add_cert("ca", "mallory", &other.test_cert_pem("mallory"));
    let r = check(&shell_for(&wrong), &reference, Instant::now()).await;
    agree(&wrong, &reference, &r, false);
    expect(&r, Verdict::SignatureInvalid, "UntrustedCertificateChain");
    // audit only logs authenticity.
    wrong.set_policy(&policy("audit", &["ca:mallory"], &["*"], ""));
    let r = check(&shell_for(&wrong), &reference, Instant::now()).await;
    agree(&wrong, &reference, &r, true);
    assert_eq!(r.warnings.len(), 1, "{r:#?}");
    assert!(r.warnings[0].contains("UntrustedCertificateChain"), "{:?}", r.warnings);

    // The right store, an identity that is not trusted.
    let ident = Verifier::new(&policy("strict", &["ca:wabbit"], &["x509.subject: C=US, ST=WA, O=Wabbit Networks"], ""));
    ident.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    let r = check(&shell_for(&ident), &reference, Instant::now()).await;
    agree(&ident, &reference, &r, false);
    expect(&r, Verdict::SignatureInvalid, "IdentityNotTrusted");

    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["*"], ""));
    v.add_cert("ca", "wabbit", &signer.test_cert_pem("wabbit"));
    let shell = shell_for(&v);
    let r = check(&shell, &reference, Instant::now()).await;
    agree(&v, &reference, &r, true);

    // The signature of `img`, presented as the signature of another digest.
    let sig = fetch_signatures(&registry, repo, &img.digest).remove(0);
    let foreign = registry.push_image(repo, "v2", "api v2");
    attach_envelope(&registry, repo, &foreign, &sig.media_type, &sig.bytes);
    let r = check(&shell, &at(&host, repo, &foreign.digest), Instant::now()).await;
    agree(&v, &at(&host, repo, &foreign.digest), &r, false);
    expect(&r, Verdict::Tampered, "TargetDigestMismatch");

    // Envelopes tampered with after signing (pushed as proper blobs: the digests match).
    for format in ["jws", "cose"] {
        let t = registry.push_image(repo, &format!("tampered-{format}"), &format!("{format} tampered"));
        signer.sign(&at(&host, repo, &t.digest), format, &[]);
        let sig = fetch_signatures(&registry, repo, &t.digest).remove(0);
        let mut bytes = sig.bytes.clone();
        let i = if format == "jws" {
            String::from_utf8(bytes.clone()).unwrap().find("\"signature\":\"").unwrap() + 20
        } else {
            bytes.len() - 10
        };
        bytes[i] ^= if format == "jws" { 0x01 } else { 0x80 };
        attach_envelope(&registry, repo, &t, &sig.media_type, &bytes);
        let r = check(&shell, &at(&host, repo, &t.digest), Instant::now()).await;
        agree(&v, &at(&host, repo, &t.digest), &r, false);
        assert!(matches!(r.reason.as_str(), "SignatureMismatch" | "MalformedEnvelope"), "{format}: {r:#?}");
    }

    // An expiring signature: verified while fresh (and that verification is cached), expired
    // once its expiry passes, whatever the cache holds.
    let short = registry.push_image(repo, "short", "short-lived");
    signer.sign(&at(&host, repo, &short.digest), "cose", &["--expiry", "4s"]);
    let short_ref = at(&host, repo, &short.digest);
    let r = check(&shell, &short_ref, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    assert_eq!(r.expires_role.as_deref(), Some("signature"));
    let expiry = r.expires.unwrap();
    while Timestamp::now() <= expiry + SignedDuration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = check(&shell, &short_ref, Instant::now()).await;
    agree(&v, &short_ref, &r, false);
    expect(&r, Verdict::TrustDataExpired, "SignatureExpired");
    v.set_policy(&policy("strict", &["ca:wabbit"], &["*"], r#","override":{"expiry":"log"}"#));
    let r = check(&shell_for(&v), &short_ref, Instant::now()).await;
    agree(&v, &short_ref, &r, true);
    assert!(r.warnings[0].contains("SignatureExpired"), "{:?}", r.warnings);

    // No signature at all.
    let unsigned = registry.push_image(repo, "unsigned", "never signed");
    let r = check(&shell, &at(&host, repo, &unsigned.digest), Instant::now()).await;
    agree(&v, &at(&host, repo, &unsigned.digest), &r, false);
    expect(&r, Verdict::Unsigned, "NoSignature");
    assert_eq!(r.digest.as_deref(), Some(unsigned.digest.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_by_crl_and_ocsp_and_unreachable_revocation_data_agree_with_notation_verify() {
    let registry = Registry::start();
    let host = registry.host();
    let repo = "shop/payments";
    let crl_peer = HttpPeer::start(None);
    let crl_path = "/crl/acme-int.crl";
    let pki = Pki::new("Acme", Some(crl_peer.url(crl_path)));
    crl_peer.put(crl_path, pki.crl_der());
    let release = pki.issue_leaf("release", LeafKey::Ec("P-384"), Validity::Days(30));
    let legacy = pki.issue_leaf("legacy", LeafKey::Rsa(3072), Validity::Days(30));
    let good = registry.push_image(repo, "good", "good build");
    let bad = registry.push_image(repo, "bad", "build by a compromised key");
    let signer = Signer::new();
    signer.use_key("release", &release.key, &release.chain);
    signer.sign(&at(&host, repo, &good.digest), "cose", &[]);
    signer.use_key("legacy", &legacy.key, &legacy.chain);
    signer.sign(&at(&host, repo, &bad.digest), "jws", &[]);
    pki.revoke(&legacy);
    crl_peer.put(crl_path, pki.crl_der());
    let (good_ref, bad_ref) = (at(&host, repo, &good.digest), at(&host, repo, &bad.digest));

    let strict = policy("strict", &["ca:acme"], &["x509.subject: C=US, ST=WA, O=Acme, OU=Builds"], "");
    let v = Verifier::new(&strict);
    v.add_cert("ca", "acme", &pki.root_pem());
    let shell = shell_for(&v);
    let eager = shell_with(&v, client(), ShellOptions { revocation_max_age: Duration::ZERO, ..Default::default() });

    let r = check(&shell, &good_ref, Instant::now()).await;
    agree(&v, &good_ref, &r, true);
    expect(&r, Verdict::Verified, "Verified");
    assert_eq!(shell.counts().crl_downloads, 1, "{:?}", shell.counts());
    assert!(crl_peer.requests().iter().any(|r| r == &format!("GET {crl_path}")), "{:?}", crl_peer.requests());
    // The next refresh reuses the CRL until its nextUpdate.
    let before = shell.counts();
    let r = check(&shell, &good_ref, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    assert_eq!((shell.counts().crl_downloads, shell.counts().crl_cache_hits), (1, before.crl_cache_hits + 1));
    // The revoked leaf, listed in the CRL.
    let r = check(&shell, &bad_ref, Instant::now()).await;
    agree(&v, &bad_ref, &r, false);
    expect(&r, Verdict::SignerRevoked, "CertificateRevoked");
    let r = check(&eager, &good_ref, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");

    // OCSP, preferred over the CRL: the revocation is in the CA database the responder reads
    // but not yet in the CRL that is served.
    let ocsp_peer = HttpPeer::start(None);
    let stale_crl = "/crl/ocsp-int.crl";
    let mut pki2 = Pki::new("Acme", Some(ocsp_peer.url(stale_crl)));
    pki2.set_ocsp_url(ocsp_peer.url("/ocsp"));
    ocsp_peer.serve_ocsp(Some(pki2.dir()));
    ocsp_peer.put(stale_crl, pki2.crl_der());
    let keep = pki2.issue_leaf("keep", LeafKey::Ec("P-256"), Validity::Days(10));
    let gone = pki2.issue_leaf("gone", LeafKey::Rsa(2048), Validity::Days(10));
    let kept = registry.push_image(repo, "kept", "still trusted");
    let revoked = registry.push_image(repo, "revoked", "signed by a revoked key");
    signer.use_key("keep", &keep.key, &keep.chain);
    signer.sign(&at(&host, repo, &kept.digest), "jws", &[]);
    signer.use_key("gone", &gone.key, &gone.chain);
    signer.sign(&at(&host, repo, &revoked.digest), "cose", &[]);
    pki2.revoke(&gone);
    let (kept_ref, revoked_ref) = (at(&host, repo, &kept.digest), at(&host, repo, &revoked.digest));
    let v2 = Verifier::new(&policy("strict", &["ca:acme"], &["*"], ""));
    v2.add_cert("ca", "acme", &pki2.root_pem());
    let shell2 = shell_for(&v2);
    let r = check(&shell2, &kept_ref, Instant::now()).await;
    agree(&v2, &kept_ref, &r, true);
    let r = check(&shell2, &revoked_ref, Instant::now()).await;
    agree(&v2, &revoked_ref, &r, false);
    expect(&r, Verdict::SignerRevoked, "CertificateRevoked");
    assert!(shell2.counts().ocsp_requests >= 2, "{:?}", shell2.counts());
    assert_eq!(shell2.counts().crl_downloads, 0, "OCSP decided: no CRL needed");
    // The responder is down: the CRL decides (it does not list `gone` yet), as in notation.
    ocsp_peer.serve_ocsp(None);
    v2.set_policy(&policy("strict", &["ca:acme"], &["*"], ""));
    let r = check(&shell_for(&v2), &revoked_ref, Instant::now()).await;
    agree(&v2, &revoked_ref, &r, true);

    // The CRL server goes down. A verifier without the CRL cannot know: TrustDataUnavailable,
    // never Verified, never SignerRevoked.
    drop(crl_peer);
    v.set_policy(&strict);
    let r = check(&shell_for(&v), &good_ref, Instant::now()).await;
    agree(&v, &good_ref, &r, false);
    expect(&r, Verdict::TrustDataUnavailable, "RevocationUnknown");
    // A verifier holding the CRL uses it until its nextUpdate, even when fetching it again
    // fails.
    let r = check(&shell, &good_ref, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    let r = check(&eager, &good_ref, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    assert_eq!(eager.counts().crl_downloads, 2, "it tried again: {:?}", eager.counts());
    // Logged revocation: verified, with a warning.
    v.set_policy(&policy("strict", &["ca:acme"], &["*"], r#","override":{"revocation":"log"}"#));
    let r = check(&shell_for(&v), &good_ref, Instant::now()).await;
    agree(&v, &good_ref, &r, true);
    expect(&r, Verdict::Verified, "Verified");
    assert!(r.warnings.iter().any(|w| w.contains("RevocationUnknown")), "{:?}", r.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamped_signature_outlives_its_expired_leaf_like_notation_verify() {
    let registry = Registry::start();
    let host = registry.host();
    let repo = "shop/archive";
    let tsa = Tsa::new();
    let tsa_root = tsa.root_path();
    let tsa_root_pem = tsa.root_pem();
    let http = HttpPeer::start(Some(tsa));
    let pki = Pki::new("Acme", None);
    // The CA certificates start "now": let the timestamp's accuracy not reach before them.
    std::thread::sleep(Duration::from_secs(2));
    let start = Timestamp::now() - SignedDuration::from_hours(1);
    let end = Timestamp::now() + SignedDuration::from_secs(20);
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
        &at(&host, repo, &stamped.digest),
        "jws",
        &["--timestamp-url", &tsa_url, "--timestamp-root-cert", tsa_root.to_str().unwrap()],
    );
    signer.sign(&at(&host, repo, &plain.digest), "cose", &[]);
    let v = Verifier::new(&policy("strict", &["ca:acme", "tsa:stamps"], &["*"], ""));
    v.add_cert("ca", "acme", &pki.root_pem());
    v.add_cert("tsa", "stamps", &tsa_root_pem);
    let shell = shell_for(&v);
    let (stamped_ref, plain_ref) = (at(&host, repo, &stamped.digest), at(&host, repo, &plain.digest));
    let r = check(&shell, &stamped_ref, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    assert_eq!(r.timestamped, Some(true));
    let gen_time = r.signing_time.unwrap();

    while Timestamp::now() <= end + SignedDuration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = check(&shell, &stamped_ref, Instant::now()).await;
    agree(&v, &stamped_ref, &r, true);
    expect(&r, Verdict::Verified, "Verified");
    assert_eq!((r.timestamped, r.signing_time), (Some(true), Some(gen_time)));
    assert_ne!(r.expires_role.as_deref(), Some("leaf certificate"), "the expired leaf no longer decides: {r:#?}");
    let r = check(&shell, &plain_ref, Instant::now()).await;
    agree(&v, &plain_ref, &r, false);
    expect(&r, Verdict::TrustDataExpired, "CertificateExpired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn olareg_serves_signatures_through_the_referrers_api_and_a_refresh_sees_added_and_deleted_ones() {
    let registry = Olareg::start_with(&["--api-delete"]);
    let host = registry.host();
    let repo = "shop/api";
    let oras = Oras::new();
    let d1 = oras.push(&format!("{host}/{repo}:v1"), "api v1");
    let wabbit = Signer::new();
    wabbit.generate_test("wabbit");
    let mallory = Signer::new();
    mallory.generate_test("mallory");
    // The referrers API only: no referrers tag.
    let api_only = ["--force-referrers-tag=false"];
    mallory.sign(&at(&host, repo, &d1), "jws", &api_only);
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["*"], ""));
    v.add_cert("ca", "wabbit", &wabbit.test_cert_pem("wabbit"));
    let (client, log) = observed_client();
    let shell = shell_with(&v, client.clone(), ShellOptions::default());
    let image = format!("{host}/{repo}:v1@{d1}");
    let reference = at(&host, repo, &d1);

    let t0 = Instant::now();
    let r = check(&shell, &image, t0).await;
    agree(&v, &reference, &r, false);
    expect(&r, Verdict::SignatureInvalid, "UntrustedCertificateChain");
    // Found through the referrers API (it answered), not the tag schema (no such tag).
    let requests = log.lock().unwrap().clone();
    assert!(
        requests.iter().any(|(k, p, s)| *k == RequestKind::Referrers && p.ends_with(&d1) && *s == Some(200)),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(k, p, s)| *k == RequestKind::ManifestGet && p.ends_with(&referrers_tag(&d1)) && *s == Some(404)),
        "{requests:?}"
    );
    let oci_repo = Repository::from_image(&ImageRef::parse(&image).unwrap());
    let listed = client.referrers(&oci_repo, &d1, &[SIGNATURE_ARTIFACT_TYPE]).await.unwrap();
    assert!(listed.api_supported && listed.via_tag_schema.is_empty() && listed.via_api.len() == 1, "{listed:?}");

    wabbit.sign(&reference, "cose", &api_only);
    // Within the same refresh the answer stands, and costs nothing.
    let c = client.counts();
    let r = check(&shell, &image, t0).await;
    expect(&r, Verdict::SignatureInvalid, "UntrustedCertificateChain");
    assert_eq!(client.counts(), c, "no request within a refresh");
    // The next refresh finds the new signature.
    let r = check(&shell, &image, Instant::now()).await;
    agree(&v, &reference, &r, true);
    expect(&r, Verdict::Verified, "Verified");

    // A warm refresh with unchanged trust data: one referrers lookup, no envelope download,
    // no signature verification.
    let before = shell.counts();
    let r = check(&shell, &image, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    let after = shell.counts();
    eprintln!("warm refresh on olareg (2 signatures, tagged image): {}", delta(after, before));
    assert_eq!(after.referrer_lookups - before.referrer_lookups, 1);
    assert_eq!(after.registry.referrers - before.registry.referrers, 1);
    assert_eq!(after.registry.blob_get, before.registry.blob_get);
    assert_eq!((after.verifications, after.envelope_reads), (before.verifications, before.envelope_reads));
    assert_eq!(after.verification_cache_hits - before.verification_cache_hits, 2);

    // The tag moves to another image: the answer says so, the verdict stays.
    let d2 = oras.push(&format!("{host}/{repo}:v1"), "api v1, rebuilt");
    assert_ne!(d1, d2);
    let r = check(&shell, &image, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    assert_eq!((r.digest.as_deref(), r.tag_digest.as_deref()), (Some(d1.as_str()), Some(d2.as_str())));
    let dir = v.config_dir();
    let (code, out, err) = trustwatch(&[
        "verify",
        "--notation-config",
        dir.to_str().unwrap(),
        "--plain-http",
        "--expiry-warning",
        "0s",
        "-o",
        "json",
        &image,
    ]);
    let j = &json(code, 0, &out, &err)[0];
    assert_eq!(
        (j["verdict"].as_str(), j["digest"].as_str(), j["tagDigest"].as_str()),
        (Some("Verified"), Some(d1.as_str()), Some(d2.as_str()))
    );

    // The trusted signature is deleted: the next refresh no longer uses it.
    let now_listed = client.referrers(&oci_repo, &d1, &[SIGNATURE_ARTIFACT_TYPE]).await.unwrap();
    let added: Vec<&String> = now_listed.via_api.iter().filter(|d| !listed.via_api.contains(d)).collect();
    assert_eq!(added.len(), 1, "{now_listed:?}");
    oras.run(&["manifest", "delete", "--force", &format!("{host}/{repo}@{}", added[0])]);
    let r = check(&shell, &image, Instant::now()).await;
    agree(&v, &reference, &r, false);
    expect(&r, Verdict::SignatureInvalid, "UntrustedCertificateChain");

    // The one documented disagreement. notation's default (`--force-referrers-tag`) stores the
    // signature under the referrers tag schema, which olareg's referrers API does not list;
    // notation verify then reads only the API (the registry supports it) and finds nothing,
    // while trustwatch reads the union of both (as the OCI client does for every registry:
    // writers differ in where they put referrers) and verifies the signature. Reading more
    // signatures can never make an untrusted image trusted: each one is verified.
    let d3 = oras.push(&format!("{host}/{repo}:v3"), "api v3");
    let reference = at(&host, repo, &d3);
    wabbit.sign(&reference, "jws", &[]);
    let both = client.referrers(&oci_repo, &d3, &[SIGNATURE_ARTIFACT_TYPE]).await.unwrap();
    assert_eq!((both.via_api.len(), both.via_tag_schema.len()), (0, 1), "{both:?}");
    let r = check(&shell, &reference, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    let theirs = v.notation_verify(&reference);
    assert!(
        !theirs.success() && theirs.stderr.contains("no signature is associated"),
        "notation verify reads only the referrers API here: {}{}",
        theirs.stdout,
        theirs.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_registry_signatures_come_from_the_tag_schema_are_cached_and_outages_are_never_unsigned() {
    let registry = Registry::start();
    let (host, url) = (registry.host(), registry.url());
    let repo = "shop/cart";
    let img = registry.push_image(repo, "v1", "cart");
    let unsigned = registry.push_image(repo, "v2", "cart, never signed");
    let wabbit = Signer::new();
    wabbit.generate_test("wabbit");
    let mallory = Signer::new();
    mallory.generate_test("mallory");
    let reference = at(&host, repo, &img.digest);
    mallory.sign(&reference, "jws", &[]);
    wabbit.sign(&reference, "cose", &[]);
    let v = Verifier::new(&policy("strict", &["ca:wabbit"], &["*"], ""));
    v.add_cert("ca", "wabbit", &wabbit.test_cert_pem("wabbit"));
    let (client, log) = observed_client();
    let shell = shell_with(&v, client.clone(), ShellOptions::default());

    let t0 = Instant::now();
    let first = shell.counts();
    let r = check(&shell, &reference, t0).await;
    agree(&v, &reference, &r, true);
    expect(&r, Verdict::Verified, "Verified");
    eprintln!("cold verification on docker-registry (2 signatures): {}", delta(shell.counts(), first));
    let requests = log.lock().unwrap().clone();
    assert!(
        requests.iter().any(|(k, _, s)| *k == RequestKind::Referrers && *s == Some(404)),
        "docker-registry has no referrers API: {requests:?}"
    );
    assert!(
        requests.iter().any(|(k, p, s)| *k == RequestKind::ManifestGet
            && p.ends_with(&referrers_tag(&img.digest))
            && *s == Some(200)),
        "{requests:?}"
    );
    // 100 more pods running the digest in the same refresh: nothing fetched, nothing verified.
    let c = client.counts();
    let before = shell.counts();
    for _ in 0..100 {
        let r = check(&shell, &reference, t0).await;
        expect(&r, Verdict::Verified, "Verified");
    }
    assert_eq!(client.counts(), c);
    assert_eq!(shell.counts().answers_reused - before.answers_reused, 100);
    // A warm refresh: one referrers lookup; manifests, envelopes and verifications cached.
    let before = shell.counts();
    let r = check(&shell, &reference, Instant::now()).await;
    expect(&r, Verdict::Verified, "Verified");
    let after = shell.counts();
    eprintln!("warm refresh on docker-registry (2 signatures, digest only): {}", delta(after, before));
    assert_eq!(after.referrer_lookups - before.referrer_lookups, 1);
    assert_eq!(after.registry.blob_get, before.registry.blob_get, "no envelope download");
    assert_eq!(after.verifications, before.verifications, "no signature verified again");
    assert_eq!(after.registry.referrers, before.registry.referrers, "the API answered 404: not asked again yet");
    assert_eq!(after.registry.total() - before.registry.total(), 1, "the tag-schema GET alone");

    // wabbit's entry is removed from the referrers tag index: the next refresh no longer uses it.
    let wabbit_print = Cert::parse_many(wabbit.test_cert_pem("wabbit").as_bytes()).unwrap()[0].sha256_fingerprint();
    let tag = referrers_tag(&img.digest);
    let (status, index) = http_get(&url, &format!("/v2/{repo}/manifests/{tag}"), OCI_INDEX);
    assert_eq!(status, 200);
    let mut index: Value = serde_json::from_slice(&index).unwrap();
    let entries = index["manifests"].as_array().unwrap().clone();
    let kept: Vec<Value> = entries
        .into_iter()
        .filter(|m| {
            let (_, manifest) = http_get(
                &url,
                &format!("/v2/{repo}/manifests/{}", m["digest"].as_str().unwrap()),
                "application/vnd.oci.image.manifest.v1+json",
            );
            !String::from_utf8_lossy(&manifest).to_ascii_lowercase().contains(&wabbit_print)
        })
        .collect();
    assert_eq!(kept.len(), 1, "mallory's signature stays");
    index["manifests"] = Value::Array(kept);
    http_put_manifest(&url, repo, &tag, OCI_INDEX, &serde_json::to_vec(&index).unwrap());
    let r = check(&shell, &reference, Instant::now()).await;
    agree(&v, &reference, &r, false);
    expect(&r, Verdict::SignatureInvalid, "UntrustedCertificateChain");

    // No signature: Unsigned, also through the CLI (exit 1).
    let unsigned_ref = at(&host, repo, &unsigned.digest);
    let r = check(&shell, &unsigned_ref, Instant::now()).await;
    agree(&v, &unsigned_ref, &r, false);
    expect(&r, Verdict::Unsigned, "NoSignature");
    let dir = v.config_dir();
    let cli = ["verify", "--notation-config", dir.to_str().unwrap(), "--plain-http", "-o", "json"];
    let (code, out, err) = trustwatch(&[&cli[..], &[&unsigned_ref]].concat());
    assert_eq!(json(code, 1, &out, &err)[0]["verdict"], "Unsigned");

    // The registry goes down: TrustDataUnavailable for the signed and the unsigned digest
    // alike, never Unsigned.
    drop(registry);
    for reference in [&reference, &unsigned_ref] {
        let r = check(&shell, reference, Instant::now()).await;
        agree(&v, reference, &r, false);
        assert_eq!(r.verdict, Verdict::TrustDataUnavailable, "{r:#?}");
        let (code, out, err) = trustwatch(&[&cli[..], &[reference]].concat());
        assert_eq!(json(code, 1, &out, &err)[0]["verdict"], "TrustDataUnavailable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_through_the_cli_agrees_with_cosign_verify() {
    let registry = Registry::start();
    let host = registry.host();
    let oras = Oras::new();
    let cosign = Cosign::new();
    let (key, release) = cosign.generate_key_pair("release");
    let (_, other) = cosign.generate_key_pair("other");
    let (_, _rekor) = cosign.generate_key_pair("rekor");
    let signed = oras.push(&format!("{host}/shop/c:v1"), "c v1");
    let unsigned = oras.push(&format!("{host}/shop/c:v2"), "c v2");
    let signed_ref = format!("{host}/shop/c@{signed}");
    let unsigned_ref = format!("{host}/shop/c@{unsigned}");
    cosign.sign(&signed_ref, &key, &["-a", "team=web"], &[]);
    let pubkey = |name: &str| cosign.dir().join(format!("{name}.pub")).display().to_string();
    let tw = |key: &str, extra: &[&str], image: &str| {
        trustwatch(&[&["verify", "--key", key, "--plain-http", "-o", "json"][..], extra, &[image]].concat())
    };

    let (code, out, err) = tw(&pubkey("release"), &[], &signed_ref);
    let r = &json(code, 0, &out, &err)[0];
    assert!(cosign.verify(&signed_ref, &release, &[], &[]).ok);
    assert_eq!((r["verdict"].as_str(), r["format"].as_str()), (Some("Verified"), Some("Cosign")), "{r}");
    assert_eq!((r["digest"].as_str(), r["signers"][0].as_str()), (Some(signed.as_str()), Some("release.pub")));

    let (code, out, err) = tw(&pubkey("other"), &[], &signed_ref);
    let r = &json(code, 1, &out, &err)[0];
    assert!(!cosign.verify(&signed_ref, &other, &[], &[]).ok);
    assert_eq!((r["verdict"].as_str(), r["reason"].as_str()), (Some("SignerMissing"), Some("KeyMismatch")));
    // Any of several keys.
    let (code, out, err) = trustwatch(&[
        "verify",
        "--key",
        &pubkey("other"),
        "--key",
        &pubkey("release"),
        "--plain-http",
        "-o",
        "json",
        &signed_ref,
    ]);
    assert_eq!(json(code, 0, &out, &err)[0]["verdict"], "Verified");

    let (code, out, err) = tw(&pubkey("release"), &[], &unsigned_ref);
    let r = &json(code, 1, &out, &err)[0];
    assert!(!cosign.verify(&unsigned_ref, &release, &[], &[]).ok);
    assert_eq!((r["verdict"].as_str(), r["reason"].as_str()), (Some("Unsigned"), Some("NoSignature")));

    for (annotation, trusted) in [("team=web", true), ("team=db", false)] {
        let (code, out, err) = tw(&pubkey("release"), &["--annotation", annotation], &signed_ref);
        let r = &json(code, if trusted { 0 } else { 1 }, &out, &err)[0];
        assert_eq!(cosign.verify(&signed_ref, &release, &["-a", annotation], &[]).ok, trusted, "{annotation}");
        assert_eq!(r["verdict"] == "Verified", trusted, "{annotation}: {r}");
    }
    // A pinned Rekor key: every signature needs a log entry, and these were signed offline.
    let (code, out, err) = tw(&pubkey("release"), &["--rekor-key", &pubkey("rekor")], &signed_ref);
    assert_ne!(json(code, 1, &out, &err)[0]["verdict"], "Verified");

    // A tag is resolved first; the output names the digest verified.
    let tag_ref = format!("{host}/shop/c:v1");
    let (code, out, err) = tw(&pubkey("release"), &[], &tag_ref);
    let r = &json(code, 0, &out, &err)[0];
    assert!(cosign.verify(&tag_ref, &release, &[], &[]).ok);
    assert_eq!((r["image"].as_str(), r["digest"].as_str()), (Some(tag_ref.as_str()), Some(signed.as_str())));
    // The tag moves: said, verdict unchanged.
    let rebuilt = oras.push(&format!("{host}/shop/c:v1"), "c v1, rebuilt");
    let pinned = format!("{host}/shop/c:v1@{signed}");
    let (code, out, err) = tw(&pubkey("release"), &[], &pinned);
    let r = &json(code, 0, &out, &err)[0];
    assert_eq!((r["digest"].as_str(), r["tagDigest"].as_str()), (Some(signed.as_str()), Some(rebuilt.as_str())));
    // The table.
    let (code, out, _) = trustwatch(&["verify", "--key", &pubkey("release"), "--plain-http", &pinned]);
    assert_eq!(code, 0);
    assert!(out.contains("Verified") && out.contains(&rebuilt), "{out}");
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

#[test]
fn the_cli_refuses_mixed_formats_and_bad_configuration_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ts = d.join("truststore");
    std::fs::create_dir_all(ts.join("x509/ca")).unwrap();
    let ts = ts.display().to_string();
    let tp = write(d, "trustpolicy.json", &policy("strict", &["ca:missing"], &["*"], ""));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=k", "-keyout"])
        .arg(d.join("k.key"))
        .arg("-out")
        .arg(d.join("k.crt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let pubkey = Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(d.join("k.key")).output().unwrap();
    let key = write(d, "cosign.pub", &String::from_utf8(pubkey.stdout).unwrap());
    let garbage = write(d, "garbage", "not a key, not JSON, not PEM");
    let img = format!("127.0.0.1:1/app@sha256:{}", "a".repeat(64));
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["--key", &key, "--trust-policy", &tp, "--trust-store", &ts],
            &["cannot be mixed", "--key", "--trust-policy"],
        ),
        (vec!["--root-key", &key, "--key", &key], &["cannot be mixed", "--root-key"]),
        (vec!["--server", "https://notary.example", "--key", &key], &["cannot be mixed", "--server"]),
        (vec!["--notation-config", d.to_str().unwrap(), "--annotation", "a=b"], &["cannot be mixed"]),
        (vec![], &["--key", "--trust-policy", "--root-key"]),
        (vec!["--trust-policy", &tp], &["--trust-store"]),
        (vec!["--trust-store", &ts], &["--trust-policy"]),
        (vec!["--trust-policy", "/nonexistent/tp.json", "--trust-store", &ts], &["/nonexistent/tp.json"]),
        (vec!["--trust-policy", &garbage, "--trust-store", &ts], &["--trust-policy", "garbage"]),
        (vec!["--trust-policy", &tp, "--trust-store", "/nonexistent/ts"], &["--trust-store", "/nonexistent/ts"]),
        (vec!["--trust-policy", &tp, "--trust-store", &ts], &["--trust-store", "missing"]),
        (vec!["--notation-config", "/nonexistent/notation"], &["--notation-config", "/nonexistent/notation"]),
        (vec!["--key", "/nonexistent/cosign.pub"], &["/nonexistent/cosign.pub"]),
        (vec!["--key", &garbage], &["--key", "garbage"]),
        (vec!["--key", &key, "--annotation", "novalue"], &["--annotation", "novalue"]),
        (vec!["--key", &key, "--rekor-key", &garbage], &["--rekor-key"]),
        (vec!["--key", &key, "--registry-config", &garbage], &["--registry-config", "garbage"]),
        (vec!["--key", &key, "--registry-ca", &garbage], &["--registry-ca", "garbage"]),
        (vec!["--key", &key, "--timeout", "soon"], &["--timeout"]),
        (vec!["--key", &key, "--now", "yesterday"], &["--now"]),
        (vec!["--key", &key, "--expiry-warning", "later"], &["--expiry-warning"]),
        (vec!["--server", "https://notary.example", "--root-key", &key, "--plain-http"], &["--plain-http"]),
        (vec!["--server", "https://notary.example"], &["--root-key"]),
        (vec!["--root-key", &key], &["--server"]),
    ];
    for (flags, needles) in &cases {
        let (code, out, err) = trustwatch(&[&["verify"][..], flags, &[&img]].concat());
        assert_eq!(code, 2, "{flags:?}: exit {code}\nstdout: {out}\nstderr: {err}");
        for n in *needles {
            assert!(err.contains(n), "{flags:?}: the message should name {n:?}: {err}");
        }
    }
    // An image that names neither a digest nor a tag.
    let (code, _, err) = trustwatch(&["verify", "--key", &key, "127.0.0.1:1/app"]);
    assert_eq!(code, 2);
    assert!(err.contains("127.0.0.1:1/app") && err.contains("digest"), "{err}");
    // A Notary server from the environment is not a flag: with --key it is cosign.
    let (code, _, err) = trustwatch_env(
        &["verify", "--key", &key, "127.0.0.1:1/app"],
        &[("TRUSTWATCH_NOTARY_SERVER", "https://n.example")],
    );
    assert_eq!(code, 2);
    assert!(!err.contains("mixed") && err.contains("digest"), "{err}");
    // The help names every format's flags and the exit codes.
    let (code, out, _) = trustwatch(&["verify", "--help"]);
    assert_eq!(code, 0);
    for n in [
        "--trust-policy",
        "--trust-store",
        "--notation-config",
        "--key",
        "--annotation",
        "--rekor-key",
        "--registry-ca",
        "--registry-config",
        "--plain-http",
        "--root-key",
        "Exit codes",
    ] {
        assert!(out.contains(n), "help lacks {n}: {out}");
    }
}
