//! Keyless cosign material from sigstore-go's VirtualSigstore (hack/sigstore-fixture, built by
//! `bash hack/go-tools.sh sigstore-fixture`): a trusted_root.json and a Sigstore bundle v0.3 for
//! an image digest, in the layout cosign v3 writes (DSSE in-toto statement, predicateType
//! https://sigstore.dev/cosign/sign/v1). trustwatch's pure keyless core reads the same bytes
//! sigstore-go's verifier accepts (`sigstore-fixture verify`), and both agree on the identity
//! checks. The real Fulcio/Rekor/TSA services are the next step.

mod support;

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::oci::{Olareg, Oras};
use trustwatch::cosign::keyless::{Identity, KeylessError, verify_certificate};
use trustwatch::cosign::trusted_root::TrustedRoot;
use trustwatch::verdict::Verdict;

const SAN: &str = "ci@example.com";
const ISSUER: &str = "https://issuer.example";

fn fixture_bin() -> PathBuf {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/go-tools.sh"))
        .arg("sigstore-fixture")
        .output()
        .expect("bash hack/go-tools.sh sigstore-fixture");
    assert!(
        out.status.success(),
        "hack/go-tools.sh sigstore-fixture failed (needs Go 1.26): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

struct Material {
    dir: tempfile::TempDir,
    bin: PathBuf,
    digest: String,
}

impl Material {
    fn make(digest: &str) -> Material {
        let bin = fixture_bin();
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new(&bin)
            .args(["make", "-digest", digest, "-identity", SAN, "-issuer", ISSUER, "-out"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "sigstore-fixture make");
        Material { dir, bin, digest: digest.to_string() }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn root(&self) -> TrustedRoot {
        TrustedRoot::parse(&std::fs::read(self.path("trusted_root.json")).unwrap()).unwrap()
    }
    fn bundle(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path("bundle.json")).unwrap()).unwrap()
    }
    /// sigstore-go's own verdict (exact identity).
    fn sigstore_go(&self, digest: &str, san: &str, issuer: &str) -> bool {
        self.sigstore_go_with_root(&self.path("trusted_root.json"), digest, san, issuer)
    }
    fn sigstore_go_with_root(&self, root: &Path, digest: &str, san: &str, issuer: &str) -> bool {
        Command::new(&self.bin)
            .args(["verify", "-root"])
            .arg(root)
            .arg("-bundle")
            .arg(self.path("bundle.json"))
            .args(["-digest", digest, "-identity", san, "-issuer", issuer])
            .output()
            .unwrap()
            .status
            .success()
    }
}

fn leaf_der(bundle: &Value) -> Vec<u8> {
    let b64 = bundle["verificationMaterial"]["certificate"]["rawBytes"].as_str().expect("a leaf certificate");
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

fn integrated_time(bundle: &Value) -> Timestamp {
    let t = &bundle["verificationMaterial"]["tlogEntries"][0]["integratedTime"];
    Timestamp::from_second(t.as_str().unwrap().parse().unwrap()).unwrap()
}

fn digest_of(s: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(s.as_bytes())))
}

fn exact(issuer: &str, subject: &str) -> Vec<Identity> {
    vec![Identity::new(Some(issuer), None, Some(subject), None).unwrap()]
}

#[test]
fn virtual_sigstore_material_is_what_trustwatch_reads() {
    let m = Material::make(&digest_of("image-a"));
    let root = m.root();
    assert_eq!(
        (root.certificate_authorities.len(), root.tlogs.len(), root.ctlogs.len(), root.timestamp_authorities.len()),
        (1, 1, 1, 1),
        "VirtualSigstore's trusted root: one Fulcio CA, one Rekor log, one CT log, one TSA"
    );
    let bundle = m.bundle();
    assert_eq!(bundle["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json");
    let payload =
        base64::engine::general_purpose::STANDARD.decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["predicateType"], "https://sigstore.dev/cosign/sign/v1");
    assert_eq!(format!("sha256:{}", statement["subject"][0]["digest"]["sha256"].as_str().unwrap()), m.digest);

    // The reference accepts it, and so does trustwatch's certificate core at the logged time.
    assert!(m.sigstore_go(&m.digest, SAN, ISSUER), "sigstore-go verifies the fixture");
    let at = integrated_time(&bundle);
    let id = verify_certificate(&leaf_der(&bundle), &root, at, &exact(ISSUER, SAN)).unwrap();
    assert_eq!((id.issuer.as_str(), id.sans.as_slice()), (ISSUER, [SAN.to_string()].as_slice()));
}

#[test]
fn another_identity_fails_in_both() {
    let m = Material::make(&digest_of("image-b"));
    let bundle = m.bundle();
    let at = integrated_time(&bundle);
    for (issuer, san) in [(ISSUER, "other@example.com"), ("https://other.example", SAN)] {
        assert!(!m.sigstore_go(&m.digest, san, issuer), "sigstore-go refuses {issuer} {san}");
        let err = verify_certificate(&leaf_der(&bundle), &m.root(), at, &exact(issuer, san)).unwrap_err();
        assert!(matches!(err, KeylessError::IdentityMismatch { .. }), "{err:?}");
        assert_eq!(err.verdict(), Verdict::SignerMissing);
    }
}

#[test]
fn certificate_outside_validity_at_the_time_fails() {
    let m = Material::make(&digest_of("image-c"));
    let bundle = m.bundle();
    // VirtualSigstore's leaf lives 10 minutes from its making; 20 minutes after the logged time
    // (5 minutes in) it has expired, while the CA is still trusted.
    let late = integrated_time(&bundle) + jiff::SignedDuration::from_mins(20);
    let err = verify_certificate(&leaf_der(&bundle), &m.root(), late, &exact(ISSUER, SAN)).unwrap_err();
    assert!(matches!(err, KeylessError::CertificateNotValidAtSigningTime { .. }), "{err:?}");
    assert_eq!(err.verdict(), Verdict::SignatureInvalid);
}

#[test]
fn a_trusted_root_without_the_ca_refuses_the_certificate() {
    let a = Material::make(&digest_of("image-d"));
    let other = Material::make(&digest_of("image-d"));
    let bundle = a.bundle();
    let at = integrated_time(&bundle);
    // Another VirtualSigstore's trusted root: another Fulcio CA, so the chain cannot be built.
    let err = verify_certificate(&leaf_der(&bundle), &other.root(), at, &exact(ISSUER, SAN)).unwrap_err();
    assert!(matches!(err, KeylessError::UntrustedCertificate(_)), "{err:?}");
    assert_eq!(err.verdict(), Verdict::SignerMissing);
    let foreign_root = other.path("trusted_root.json");
    assert!(!a.sigstore_go_with_root(&foreign_root, &a.digest, SAN, ISSUER), "sigstore-go refuses it as well");
}

/// cosign v3 (`cosign3`, hack/go-tools.sh cosign3-bin) on a bundle attached as a referrer.
/// VirtualSigstore's leaf certificates carry no embedded SCT, hence `--insecure-ignore-sct`.
fn cosign3_verify(image: &str, root: &Path, san: &str) -> bool {
    let dir = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/go-tools.sh"))
        .arg("cosign3-bin")
        .output()
        .expect("bash hack/go-tools.sh cosign3-bin");
    let bin = PathBuf::from(String::from_utf8(dir.stdout).unwrap().trim()).join("cosign3");
    assert!(bin.is_file(), "cosign3 is missing at {}: run `bash hack/go-tools.sh build`", bin.display());
    let out = Command::new(bin)
        .args(["verify", "--allow-insecure-registry", "--allow-http-registry", "--insecure-ignore-sct"])
        .arg("--trusted-root")
        .arg(root)
        .args(["--certificate-identity", san, "--certificate-oidc-issuer", ISSUER, image])
        .output()
        .unwrap();
    eprintln!("cosign3 verify {image} as {san}: {}", String::from_utf8_lossy(&out.stderr).trim());
    out.status.success()
}

#[test]
fn cosign_v3_reads_the_referrer_and_agrees_with_sigstore_go() {
    let reg = Olareg::start();
    let oras = Oras::new();
    let a = oras.push(&format!("{}/app:a", reg.host()), "image a");
    let b = oras.push(&format!("{}/app:b", reg.host()), "image b");
    let m = Material::make(&a);
    let root = m.path("trusted_root.json");
    // cosign v3 looks for a referrer of this artifact type whose layer has the bundle's media
    // type; the bundle for digest A is attached to digest B as well.
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let file = format!("{}:{BUNDLE}", m.path("bundle.json").display());
    for subject in [&a, &b] {
        let subject = format!("{}/app@{subject}", reg.host());
        oras.run(&["attach", "--disable-path-validation", "--artifact-type", BUNDLE, &subject, &file]);
    }
    let image_a = format!("{}/app@{a}", reg.host());
    let image_b = format!("{}/app@{b}", reg.host());
    for (image, digest, san, want) in
        [(&image_a, &a, SAN, true), (&image_a, &a, "other@example.com", false), (&image_b, &b, SAN, false)]
    {
        assert_eq!(cosign3_verify(image, &root, san), want, "cosign3 verify {image} as {san}");
        assert_eq!(m.sigstore_go(digest, san, ISSUER), want, "sigstore-go on {digest} as {san}");
    }
}
