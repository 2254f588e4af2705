//! cosign signatures made by the real cosign CLI (v2.6.5, offline: `--tlog-upload=false`)
//! with generated key pairs, on images pushed with oras to Debian's docker-registry and to
//! olareg, in every layout cosign writes: the classic `.sig` tag, Sigstore bundles as
//! referrers (`--new-bundle-format`), and classic signatures as referrers
//! (`--registry-referrers-mode=oci-1-1`). For every case trustwatch's verdict agrees with
//! `cosign verify --key .. --insecure-ignore-tlog=true` (one documented exception: cosign
//! 2.6 neither signs nor checks `-a` annotations in the bundle layout; trustwatch refuses to
//! call a required annotation present when nothing signed it).

mod support;

use jiff::Timestamp;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use support::Registry;
use support::oci::*;
use trustwatch::cosign::{CosignKey, CosignVerifier, TrustConfig};
use trustwatch::image::ImageRef;
use trustwatch::oci::{RegistryClient, RegistryConfig};
use trustwatch::verdict::Verdict;
use trustwatch::verifier::{Resolution, SignatureFormat};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn trust(keys: &[(&str, &str)], annotations: &[(&str, &str)]) -> TrustConfig {
    TrustConfig {
        keys: keys.iter().map(|(n, pem)| CosignKey::from_pem(n, pem).unwrap()).collect(),
        required_annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        log_keys: vec![],
    }
}

fn verifier(trust: TrustConfig) -> CosignVerifier {
    let client = RegistryClient::new(RegistryConfig { plain_http: true, ..Default::default() }).unwrap();
    CosignVerifier::new(Arc::new(client), trust)
}

async fn trustwatch(image: &str, trust: TrustConfig) -> Resolution {
    let image = ImageRef::parse(image).unwrap();
    verifier(trust).verify_image(&image, Timestamp::now(), Instant::now()).await
}

/// trustwatch trusts the image exactly when cosign verify succeeds.
fn agree(case: &str, cosign: &Run, r: &Resolution) {
    assert_eq!(
        cosign.ok,
        r.verdict.is_trusted(),
        "{case}: cosign verify ok={} but trustwatch says {} ({}: {})\ncosign: {}",
        cosign.ok,
        r.verdict,
        r.reason,
        r.message,
        cosign.output
    );
}

fn expect(case: &str, r: &Resolution, verdict: Verdict, reason: &str) {
    assert_eq!((r.verdict, r.reason.as_str()), (verdict, reason), "{case}: {r:#?}");
    assert_eq!(r.format, SignatureFormat::Cosign);
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classic_signatures_on_docker_registry_agree_with_cosign_verify() {
    let registry = Registry::start();
    let (host, url) = (registry.host(), registry.url());
    let oras = Oras::new();
    let cosign = Cosign::new();
    let (key, release) = cosign.generate_key_pair("release");
    let (_, other) = cosign.generate_key_pair("other");
    let at = |d: &str| format!("{host}/shop/web@{d}");
    let signed = oras.push(&format!("{host}/shop/web:v1"), "web v1");
    let unsigned = oras.push(&format!("{host}/shop/web:v2"), "web v2");
    cosign.sign(&at(&signed), &key, &["-a", "team=web"], &[]);

    let c = cosign.verify(&at(&signed), &release, &[], &[]);
    let r = trustwatch(&at(&signed), trust(&[("release", &release)], &[])).await;
    agree("valid", &c, &r);
    expect("valid", &r, Verdict::Verified, "Verified");
    assert_eq!(r.signers, vec!["release".to_string()]);
    assert_eq!(r.digest.as_deref(), Some(signed.as_str()));
    assert!(r.warnings.is_empty(), "docker-reference is this repository: {:?}", r.warnings);

    let c = cosign.verify(&at(&signed), &other, &[], &[]);
    let r = trustwatch(&at(&signed), trust(&[("other", &other)], &[])).await;
    agree("wrong key", &c, &r);
    expect("wrong key", &r, Verdict::SignerMissing, "KeyMismatch");

    let c = cosign.verify(&at(&unsigned), &release, &[], &[]);
    let r = trustwatch(&at(&unsigned), trust(&[("release", &release)], &[])).await;
    agree("unsigned", &c, &r);
    expect("unsigned", &r, Verdict::Unsigned, "NoSignature");

    let c = cosign.verify(&at(&signed), &release, &["-a", "team=web"], &[]);
    let r = trustwatch(&at(&signed), trust(&[("release", &release)], &[("team", "web")])).await;
    agree("annotation present", &c, &r);
    expect("annotation present", &r, Verdict::Verified, "Verified");

    let c = cosign.verify(&at(&signed), &release, &["-a", "team=db"], &[]);
    let r = trustwatch(&at(&signed), trust(&[("release", &release)], &[("team", "db")])).await;
    agree("annotation with another value", &c, &r);
    expect("annotation with another value", &r, Verdict::SignerMissing, "AnnotationMismatch");

    let c = cosign.verify(&at(&signed), &release, &["-a", "env=prod"], &[]);
    let r = trustwatch(&at(&signed), trust(&[("release", &release)], &[("env", "prod")])).await;
    agree("annotation missing", &c, &r);
    expect("annotation missing", &r, Verdict::SignerMissing, "AnnotationMissing");

    // A valid signature copied onto another digest's .sig tag.
    let copied = oras.push(&format!("{host}/shop/web:v3"), "web v3");
    let (status, sig_manifest) = http_get(&url, &format!("/v2/shop/web/manifests/{}", sig_tag(&signed)), OCI_MANIFEST);
    assert_eq!(status, 200);
    http_put_manifest(&url, "shop/web", &sig_tag(&copied), OCI_MANIFEST, &sig_manifest);
    let c = cosign.verify(&at(&copied), &release, &[], &[]);
    let r = trustwatch(&at(&copied), trust(&[("release", &release)], &[])).await;
    agree("signature copied onto another digest", &c, &r);
    expect("signature copied onto another digest", &r, Verdict::Tampered, "DigestMismatch");
    assert!(r.message.contains(&signed) && r.message.contains(&copied), "{}", r.message);

    // A payload changed after signing, pushed as a proper blob (valid digest), keeping the
    // signature annotation: no trusted key verifies the new bytes.
    let tampered = oras.push(&format!("{host}/shop/web:v4"), "web v4");
    cosign.sign(&at(&tampered), &key, &["-a", "team=web"], &[]);
    let (_, m) = http_get(&url, &format!("/v2/shop/web/manifests/{}", sig_tag(&tampered)), OCI_MANIFEST);
    let mut m: Value = serde_json::from_slice(&m).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let (_, payload) = http_get(&url, &format!("/v2/shop/web/blobs/{layer}"), "*/*");
    let forged = String::from_utf8(payload).unwrap().replace("\"team\":\"web\"", "\"team\":\"ops\"");
    assert!(forged.contains("\"team\":\"ops\""));
    m["layers"][0]["digest"] = Value::String(http_push_blob(&url, "shop/web", forged.as_bytes()));
    m["layers"][0]["size"] = Value::from(forged.len());
    http_put_manifest(&url, "shop/web", &sig_tag(&tampered), OCI_MANIFEST, &serde_json::to_vec(&m).unwrap());
    let c = cosign.verify(&at(&tampered), &release, &[], &[]);
    let r = trustwatch(&at(&tampered), trust(&[("release", &release)], &[])).await;
    agree("payload changed after signing", &c, &r);
    expect("payload changed after signing", &r, Verdict::SignerMissing, "KeyMismatch");

    // The payload flipped in transit (a proxy in front of the registry).
    let proxy = FaultyProxy::start(&url).await;
    proxy.set("/blobs/", Fault::FlipByte { index: 20 });
    let via = format!("{}/shop/web@{signed}", proxy.host());
    let c = cosign.verify(&via, &release, &[], &[]);
    let r = trustwatch(&via, trust(&[("release", &release)], &[])).await;
    agree("payload flipped in transit", &c, &r);
    expect("payload flipped in transit", &r, Verdict::Tampered, "DigestMismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigstore_bundles_as_referrers_on_olareg_and_docker_registry() {
    let olareg = Olareg::start();
    let registry = Registry::start();
    let oras = Oras::new();
    let cosign = Cosign::new();
    let (key, release) = cosign.generate_key_pair("release");
    let (_, other) = cosign.generate_key_pair("other");
    for (name, host) in [("olareg", olareg.host()), ("docker-registry", registry.host())] {
        let at = |d: &str| format!("{host}/app@{d}");
        let signed = oras.push(&format!("{host}/app:v1"), &format!("app on {name}"));
        cosign.sign(&at(&signed), &key, &["--new-bundle-format", "-a", "team=web"], &[]);

        let c = cosign.verify_bundle(&at(&signed), &release, &[]);
        let r = trustwatch(&at(&signed), trust(&[("release", &release)], &[])).await;
        agree(&format!("{name}: bundle"), &c, &r);
        expect(name, &r, Verdict::Verified, "Verified");
        assert_eq!(r.signers, vec!["release".to_string()]);

        if name == "olareg" {
            // cosign names the key in the bundle: base64 SHA-256 of its SPKI DER, the hint a
            // failing signature by a trusted key is recognized by.
            let (_, list) = http_get(
                &olareg.url(),
                &format!("/v2/app/referrers/{signed}"),
                "application/vnd.oci.image.index.v1+json",
            );
            let list: Value = serde_json::from_slice(&list).unwrap();
            let referrer = list["manifests"][0]["digest"].as_str().unwrap().to_string();
            let (_, m) = http_get(&olareg.url(), &format!("/v2/app/manifests/{referrer}"), OCI_MANIFEST);
            let m: Value = serde_json::from_slice(&m).unwrap();
            let (_, bundle) = http_get(
                &olareg.url(),
                &format!("/v2/app/blobs/{}", m["layers"][0]["digest"].as_str().unwrap()),
                "*/*",
            );
            let bundle: Value = serde_json::from_slice(&bundle).unwrap();
            use base64::Engine as _;
            let hint = base64::engine::general_purpose::STANDARD
                .encode(CosignKey::from_pem("release", &release).unwrap().key_id());
            assert_eq!(bundle["verificationMaterial"]["publicKey"]["hint"], Value::String(hint));
        }

        let c = cosign.verify_bundle(&at(&signed), &other, &[]);
        let r = trustwatch(&at(&signed), trust(&[("other", &other)], &[])).await;
        agree(&format!("{name}: bundle, wrong key"), &c, &r);
        expect(name, &r, Verdict::SignerMissing, "KeyMismatch");

        // The documented exception: cosign 2.6 drops `-a` from the bundle's statement and
        // `cosign verify -a` passes anyway; trustwatch does not call unsigned claims present.
        let c = cosign.verify_bundle(&at(&signed), &release, &["-a", "team=web"]);
        assert!(c.ok, "cosign accepts the annotation it did not sign: {}", c.output);
        let r = trustwatch(&at(&signed), trust(&[("release", &release)], &[("team", "web")])).await;
        expect(&format!("{name}: annotation required of a bundle"), &r, Verdict::SignerMissing, "AnnotationMissing");
    }

    // A bundle referrer copied onto another digest (olareg: a manifest with another subject).
    let host = olareg.host();
    let signed = oras.push(&format!("{host}/app:v2"), "signed v2");
    let other_digest = oras.push(&format!("{host}/app:v3"), "victim v3");
    cosign.sign(&format!("{host}/app@{signed}"), &key, &["--new-bundle-format"], &[]);
    let (_, list) =
        http_get(&olareg.url(), &format!("/v2/app/referrers/{signed}"), "application/vnd.oci.image.index.v1+json");
    let list: Value = serde_json::from_slice(&list).unwrap();
    let referrer = list["manifests"][0]["digest"].as_str().unwrap().to_string();
    let (_, m) = http_get(&olareg.url(), &format!("/v2/app/manifests/{referrer}"), OCI_MANIFEST);
    let (_, victim) = http_get(&olareg.url(), &format!("/v2/app/manifests/{other_digest}"), OCI_MANIFEST);
    let mut m: Value = serde_json::from_slice(&m).unwrap();
    m["subject"]["digest"] = Value::String(other_digest.clone());
    m["subject"]["size"] = Value::from(victim.len());
    let bytes = serde_json::to_vec(&m).unwrap();
    let d = trustwatch::oci::sha256_digest(&bytes);
    http_put_manifest(&olareg.url(), "app", &d, OCI_MANIFEST, &bytes);
    let at = format!("{host}/app@{other_digest}");
    let c = cosign.verify_bundle(&at, &release, &[]);
    let r = trustwatch(&at, trust(&[("release", &release)], &[])).await;
    agree("bundle copied onto another digest", &c, &r);
    expect("bundle copied onto another digest", &r, Verdict::Tampered, "DigestMismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classic_signatures_stored_as_referrers_on_olareg() {
    let olareg = Olareg::start();
    let host = olareg.host();
    let oras = Oras::new();
    let cosign = Cosign::new();
    let (key, release) = cosign.generate_key_pair("release");
    let signed = oras.push(&format!("{host}/app:v1"), "referrers mode");
    let at = format!("{host}/app@{signed}");
    let experimental = [("COSIGN_EXPERIMENTAL", "1")];
    cosign.sign(&at, &key, &["--registry-referrers-mode=oci-1-1", "-a", "team=web"], &experimental);
    let (status, _) = http_get(&olareg.url(), &format!("/v2/app/manifests/{}", sig_tag(&signed)), OCI_MANIFEST);
    assert_eq!(status, 404, "no .sig tag: the signature is only a referrer");

    let c = cosign.verify(&at, &release, &["--experimental-oci11", "-a", "team=web"], &experimental);
    let r = trustwatch(&at, trust(&[("release", &release)], &[("team", "web")])).await;
    agree("classic signature as a referrer", &c, &r);
    expect("classic signature as a referrer", &r, Verdict::Verified, "Verified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imported_rsa_keys_verify_and_cosigns_ed25519_signatures_do_not() {
    let registry = Registry::start();
    let host = registry.host();
    let oras = Oras::new();
    let cosign = Cosign::new();
    let dir = cosign.dir().to_path_buf();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"]);
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    let (rsa_key, rsa_pub) = cosign.import_key_pair("rsa", &dir.join("rsa.pem"));
    let (ed_key, ed_pub) = cosign.import_key_pair("ed", &dir.join("ed.pem"));

    let d = oras.push(&format!("{host}/keys:rsa"), "rsa");
    let at = format!("{host}/keys@{d}");
    cosign.sign(&at, &rsa_key, &[], &[]);
    let c = cosign.verify(&at, &rsa_pub, &[], &[]);
    let r = trustwatch(&at, trust(&[("rsa", &rsa_pub)], &[])).await;
    agree("RSA key (PKCS#1 v1.5)", &c, &r);
    expect("RSA key", &r, Verdict::Verified, "Verified");

    // cosign 2.6.5 signs with an Ed25519 key in a way its own verify rejects (it verifies
    // pure Ed25519): trustwatch, verifying pure Ed25519 too, agrees.
    let d = oras.push(&format!("{host}/keys:ed"), "ed25519");
    let at = format!("{host}/keys@{d}");
    cosign.sign(&at, &ed_key, &[], &[]);
    let c = cosign.verify(&at, &ed_pub, &[], &[]);
    assert!(!c.ok, "cosign verify rejects the Ed25519 signature cosign sign made: {}", c.output);
    let r = trustwatch(&at, trust(&[("ed", &ed_pub)], &[])).await;
    agree("Ed25519 key", &c, &r);
    expect("Ed25519 key", &r, Verdict::SignerMissing, "KeyMismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_digest_run_by_many_pods_is_fetched_and_verified_once_per_refresh() {
    let registry = Registry::start();
    let host = registry.host();
    let oras = Oras::new();
    let cosign = Cosign::new();
    let (key, release) = cosign.generate_key_pair("release");
    let signed = oras.push(&format!("{host}/app:v1"), "popular");
    cosign.sign(&format!("{host}/app@{signed}"), &key, &[], &[]);
    let v = verifier(trust(&[("release", &release)], &[]));
    let image = ImageRef::parse(&format!("{host}/app:v1@{signed}")).unwrap();

    let first_refresh = Instant::now();
    let r = v.verify_image(&image, Timestamp::now(), first_refresh).await;
    expect("first", &r, Verdict::Verified, "Verified");
    let first = v.client().counts();
    // A cold digest: the .sig tag is fetched whole (no HEAD first), its manifest then comes
    // from the content cache, and the one signature layer is read. Beside it the referrers
    // API (404 on docker-registry) and the referrers tag.
    assert_eq!(first.manifest_head, 0, "the .sig tag of a cold digest is not HEADed: {first:?}");
    assert_eq!(first.manifest_get, 2, "the .sig tag and the referrers tag: {first:?}");
    assert_eq!((first.blob_get, first.referrers), (1, 1), "{first:?}");
    // 10,000 pods in the same refresh: no request.
    for _ in 0..10_000 {
        let r = v.verify_image(&image, Timestamp::now(), first_refresh).await;
        assert_eq!(r.verdict, Verdict::Verified);
    }
    assert_eq!(v.client().counts(), first, "same refresh: answered from memory");
    // The next refresh: the .sig tag HEAD and the referrers tag, no manifest or blob GET and
    // no signature check (the signature manifest's outcome is cached by its digest). The
    // referrers API answered 404 the first time: not asked again within the recheck.
    let r = v.verify_image(&image, Timestamp::now(), Instant::now()).await;
    expect("next refresh", &r, Verdict::Verified, "Verified");
    let second = v.client().counts();
    let delta = second.total() - first.total();
    eprintln!("requests: first verification {}, each later refresh {delta} ({first:?} -> {second:?})", first.total());
    assert_eq!(second.blob_get, first.blob_get);
    assert_eq!(second.manifest_head, first.manifest_head + 1);
    assert_eq!(second.referrers, first.referrers, "docker-registry has no referrers API");
    assert_eq!(delta, 2, "HEAD .sig and the referrers tag");
    // A pod naming the digest by another tag gets the same answer, about its own reference.
    let alias = ImageRef::parse(&format!("{host}/app:stable@{signed}")).unwrap();
    let r = v.verify_image(&alias, Timestamp::now(), first_refresh).await;
    assert_eq!((r.verdict, r.tag.as_deref()), (Verdict::Verified, Some("stable")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outages_are_trust_data_unavailable_never_unsigned() {
    let registry = Registry::start();
    let (host, url) = (registry.host(), registry.url());
    let oras = Oras::new();
    let cosign = Cosign::new();
    let (key, release) = cosign.generate_key_pair("release");
    let signed = oras.push(&format!("{host}/app:v1"), "signed");
    let unsigned = oras.push(&format!("{host}/app:v2"), "unsigned");
    cosign.sign(&format!("{host}/app@{signed}"), &key, &[], &[]);
    let keys = [("release", release.as_str())];

    // The registry down.
    let dead =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let at = format!("{dead}/app@{signed}");
    let c = cosign.verify(&at, &release, &[], &[]);
    let r = trustwatch(&at, trust(&keys, &[])).await;
    agree("registry down", &c, &r);
    expect("registry down", &r, Verdict::TrustDataUnavailable, "ConnectionFailed");

    // Every request failing with 503.
    let proxy = FaultyProxy::start(&url).await;
    proxy.set("/v2/", Fault::Status(503));
    let at = format!("{}/app@{signed}", proxy.host());
    let c = cosign.verify(&at, &release, &[], &[]);
    let r = trustwatch(&at, trust(&keys, &[])).await;
    agree("registry answering 503", &c, &r);
    expect("registry answering 503", &r, Verdict::TrustDataUnavailable, "ServerError");

    // Only the referrers failing: an unsigned digest cannot be called Unsigned...
    proxy.clear();
    proxy.set("/referrers/", Fault::Status(500));
    let r = trustwatch(&format!("{}/app@{unsigned}", proxy.host()), trust(&keys, &[])).await;
    expect("referrers failing, no .sig", &r, Verdict::TrustDataUnavailable, "ServerError");
    // ...while a valid classic signature still verifies, with a warning.
    let r = trustwatch(&format!("{}/app@{signed}", proxy.host()), trust(&keys, &[])).await;
    expect("referrers failing, valid .sig", &r, Verdict::Verified, "Verified");
    assert!(r.warnings.iter().any(|w| w.contains("referrers")), "{:?}", r.warnings);
}
