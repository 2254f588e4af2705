//! `trustwatch import notation` on a REAL notation configuration: keys and trust stores made by
//! `notation cert generate-test` and `notation cert add`, a trust policy with several
//! statements (exact scopes, a `skip` statement, the global `*`) imported with `notation policy
//! import`, images in a real docker-registry signed with `notation sign`.
//!
//! What is checked: the TrustRoots carry exactly the certificates of the named stores
//! (fingerprints by openssl); for every sample image, the TrustRoot that trustwatch's rule
//! selection picks, given to the Notation core, verifies exactly when `notation verify` does;
//! the `skip` statement is reported, not emitted, and its fallback is named.

mod support;

use jiff::Timestamp;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Registry;
use support::notation::{fetch_signatures, go_tool};
use trustwatch::controller::roots::{ExternalInputs, notation_trust};
use trustwatch::crd::{
    CertificateSource, CheckAction, ImageTrustPolicy, NotationLevel, TrustRoot, VerifyTimestampMode,
};
use trustwatch::import::Imported;
use trustwatch::import::notation::{NotationOptions, import, load_config_dir, load_files};
use trustwatch::notation::{
    Descriptor, RevocationData, TrustConfig, TrustPolicyDocument, best_outcome, verify_signature,
};

/// One `$XDG_CONFIG_HOME` for signing keys, trust store and trust policy.
struct Home {
    dir: tempfile::TempDir,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Home {
    fn new() -> Home {
        go_tool("notation");
        Home { dir: tempfile::tempdir().unwrap() }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("notation")
    }

    fn try_notation(&self, args: &[&str]) -> Out {
        let out = Command::new(go_tool("notation"))
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .args(args)
            .output()
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn notation(&self, args: &[&str]) -> Out {
        let out = self.try_notation(args);
        assert!(out.ok, "notation {args:?} failed:\n{}\n{}", out.stdout, out.stderr);
        out
    }
}

/// SHA-256 fingerprint of one PEM certificate, by openssl.
fn fingerprint(pem: &str) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), pem).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(f.path())
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Fingerprints of every certificate in a PEM bundle.
fn bundle_fingerprints(pem: &str) -> BTreeSet<String> {
    pem.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(fingerprint)
        .collect()
}

fn sources_fingerprints(sources: &[CertificateSource]) -> BTreeSet<String> {
    sources.iter().flat_map(|s| bundle_fingerprints(s.pem.as_deref().unwrap())).collect()
}

/// Fingerprints of the files notation keeps in a named store.
fn store_fingerprints(config: &Path, store_type: &str, name: &str) -> BTreeSet<String> {
    let dir = config.join("truststore/x509").join(store_type).join(name);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| fingerprint(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .collect()
}

/// The Notation core's configuration for an imported TrustRoot, as the operator resolves it
/// from the CRD fields alone.
fn config_of(root: &TrustRoot) -> TrustConfig {
    let name = root.metadata.name.clone().unwrap();
    notation_trust(&name, &root.spec, &ExternalInputs::default()).expect("the imported TrustRoot resolves").config
}

fn root<'a>(out: &'a Imported, name: &str) -> &'a TrustRoot {
    out.trust_roots.iter().find(|r| r.metadata.name.as_deref() == Some(name)).unwrap_or_else(|| {
        panic!("no TrustRoot {name} in {:?}", out.trust_roots.iter().map(|r| &r.metadata.name).collect::<Vec<_>>())
    })
}

/// Whether the TrustRoot verifies the image's signatures in the registry (the Notation core).
fn core_verifies(root: &TrustRoot, registry: &Registry, repo: &str, digest: &str, size: u64) -> bool {
    let config = config_of(root);
    let target =
        Descriptor { media_type: "application/vnd.oci.image.manifest.v1+json".into(), digest: digest.into(), size };
    let now = Timestamp::now();
    let outcomes = fetch_signatures(registry, repo, digest).into_iter().map(|s| {
        let checked = verify_signature(&config, &target, &s.media_type, &s.bytes, now)?;
        assert!(
            checked.revocation_requests().iter().all(|r| r.crl_urls.is_empty() && r.ocsp_urls.is_empty()),
            "test certificates name no CRL or OCSP responder"
        );
        checked.finish(&RevocationData::default(), now)
    });
    matches!(best_outcome(outcomes), Some(Ok(_)))
}

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trustwatch")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn a_real_notation_configuration_imports_with_its_certificates_and_scope_precedence() {
    let home = Home::new();
    home.notation(&["cert", "generate-test", "--default", "alpha"]);
    home.notation(&["cert", "generate-test", "beta"]);
    let keys = home.config().join("localkeys");
    // A named store with both certificates, added as users add CA certificates.
    home.notation(&[
        "cert",
        "add",
        "--type",
        "ca",
        "--store",
        "shared",
        keys.join("alpha.crt").to_str().unwrap(),
        keys.join("beta.crt").to_str().unwrap(),
    ]);
    let registry = Registry::start();
    let host = registry.host();
    let policy = serde_json::json!({
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "team",
                "registryScopes": [format!("{host}/team/app"), format!("{host}/team/web")],
                "signatureVerification": {"level": "strict", "override": {"revocation": "log"}},
                "trustStores": ["ca:alpha"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary, CN=alpha"]
            },
            {
                "name": "legacy",
                "registryScopes": [format!("{host}/legacy/tool")],
                "signatureVerification": {"level": "skip"}
            },
            {
                "name": "shared",
                "registryScopes": [format!("{host}/shared/lib")],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:shared"],
                "trustedIdentities": ["*"]
            },
            {
                "name": "everything",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "permissive", "verifyTimestamp": "afterCertExpiry"},
                "trustStores": ["ca:beta"],
                "trustedIdentities": ["*"]
            }
        ]
    });
    let policy_file = home.dir.path().join("policy.json");
    std::fs::write(&policy_file, serde_json::to_vec_pretty(&policy).unwrap()).unwrap();
    home.notation(&["policy", "import", "--force", policy_file.to_str().unwrap()]);
    assert!(home.config().join("trustpolicy.json").is_file(), "notation policy import writes trustpolicy.json");

    // (repository, tag, signing key or None): what notation verify decides, per scope.
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("team/app", "v1", Some("alpha")),
        ("team/app", "v2", Some("beta")), // the exact scope beats "*", which would trust beta
        ("team/web", "v1", Some("alpha")),
        ("shared/lib", "v1", Some("alpha")),
        ("shared/lib", "v2", Some("beta")),
        ("other/thing", "v1", Some("beta")),
        ("other/thing", "v2", Some("alpha")), // under "*": ca:beta only
        ("other/thing", "v3", None),
        ("legacy/tool", "v1", None), // level skip
    ];
    let mut pushed = vec![];
    for (repo, tag, key) in cases {
        let p = registry.push_image(repo, tag, &format!("{repo}:{tag}"));
        let reference = format!("{host}/{repo}@{}", p.digest);
        if let Some(key) = key {
            home.notation(&["sign", "--insecure-registry", "--key", key, &reference]);
        }
        pushed.push((*repo, reference, p));
    }

    // The import, through the library and through the CLI.
    let opts = NotationOptions { name_prefix: "t-".into(), registry_secret: None, plain_http: true };
    let input = load_config_dir(&home.config()).unwrap();
    let out = import(&input.policy_json, &input.store, &opts).unwrap();
    let names: Vec<&str> = out.trust_roots.iter().map(|r| r.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["t-team", "t-shared", "t-everything"], "the skip statement is not a TrustRoot");
    for r in &out.trust_roots {
        assert_eq!(r.spec.validate(), Ok(()), "{:?}", r.metadata.name);
        assert!(r.spec.registry.as_ref().unwrap().plain_http);
    }
    let policy: &ImageTrustPolicy = out.policy.as_ref().unwrap();
    assert_eq!(policy.spec.validate(), Ok(()));
    let patterns: Vec<(&str, &str)> =
        policy.spec.images.iter().map(|r| (r.pattern.as_str(), r.trust_root.as_deref().unwrap())).collect();
    assert_eq!(
        patterns,
        [
            (format!("{host}/team/app").as_str(), "t-team"),
            (format!("{host}/team/web").as_str(), "t-team"),
            (format!("{host}/shared/lib").as_str(), "t-shared"),
            ("**", "t-everything"),
        ]
    );
    assert_eq!(
        out.unmapped,
        [format!(
            "trust policy statement \"legacy\" (registryScopes {host}/legacy/tool): a statement that verifies nothing (level skip) cannot be a TrustRoot; not emitted: {host}/legacy/tool falls under the rule \"**\" (TrustRoot t-everything) instead"
        )]
    );

    // Levels, overrides, verifyTimestamp and identities as written.
    let team = root(&out, "t-team").spec.notation.clone().unwrap();
    assert_eq!(team.verification_level, NotationLevel::Strict);
    assert_eq!(team.overrides.unwrap().revocation, Some(CheckAction::Log));
    assert_eq!(team.trusted_identities, ["x509.subject: C=US, ST=WA, O=Notary, CN=alpha"]);
    let everything = root(&out, "t-everything").spec.notation.clone().unwrap();
    assert_eq!(everything.verification_level, NotationLevel::Permissive);
    assert_eq!(everything.verify_timestamp, Some(VerifyTimestampMode::AfterCertExpiry));
    assert_eq!(everything.trusted_identities, ["*"]);

    // The certificates are those of the named stores, nothing more.
    let config = home.config();
    for (name, store) in [("t-team", "alpha"), ("t-shared", "shared"), ("t-everything", "beta")] {
        let n = root(&out, name).spec.notation.clone().unwrap();
        assert_eq!(n.trust_stores.ca.len(), 1, "{name}");
        assert_eq!(n.trust_stores.ca[0].name, store);
        assert_eq!(sources_fingerprints(&n.trust_stores.ca), store_fingerprints(&config, "ca", store), "{name}");
    }
    assert_eq!(store_fingerprints(&config, "ca", "shared").len(), 2);

    // Rule selection: for every image, the TrustRoot trustwatch picks verifies exactly when
    // `notation verify` (which picks its statement by scope) does; the core's own policy
    // selection picks the statement the TrustRoot came from.
    let doc = TrustPolicyDocument::from_json(&input.policy_json).unwrap();
    for ((repo, reference, p), (_, tag, key)) in pushed.iter().zip(cases) {
        let repository = format!("{host}/{repo}");
        let rule = policy.spec.rule_for(&repository).expect("the global rule covers every image");
        let tr = root(&out, rule.trust_root.as_deref().unwrap());
        let ours = core_verifies(tr, &registry, repo, &p.digest, p.size);
        let theirs = home.try_notation(&["verify", "--insecure-registry", reference]);
        let statement = doc.policy_for(&repository).unwrap();
        if statement.name == "legacy" {
            // notation skips verification; trustwatch falls back to the global rule (reported).
            assert!(theirs.ok, "notation verify skips {reference}: {}{}", theirs.stdout, theirs.stderr);
            assert!(!ours, "the unsigned image does not verify under the fallback rule");
            assert_eq!(tr.metadata.name.as_deref(), Some("t-everything"));
            continue;
        }
        assert_eq!(tr.metadata.name.as_deref(), Some(format!("t-{}", statement.name).as_str()), "{repository}");
        assert_eq!(
            ours,
            theirs.ok,
            "{repo}:{tag} signed by {key:?}: trustwatch's TrustRoot {} says {ours}, notation verify says {}: {}{}",
            rule.trust_root.as_deref().unwrap(),
            theirs.ok,
            theirs.stdout,
            theirs.stderr
        );
    }
    let verified: Vec<bool> = pushed
        .iter()
        .map(|(_, reference, _)| home.try_notation(&["verify", "--insecure-registry", reference]).ok)
        .collect();
    assert_eq!(
        verified,
        [true, false, true, true, true, true, false, false, true],
        "the scenario covers both outcomes"
    );

    // The CLI: the same objects on stdout, the report on stderr, with either way to name the files.
    let (code, stdout, stderr) = cli(&[
        "import",
        "notation",
        "--notation-config",
        config.to_str().unwrap(),
        "--name-prefix",
        "t-",
        "--plain-http",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.lines().collect::<Vec<_>>(), out.report_lines());
    let docs = trustwatch::audit::parse_documents(&stdout).unwrap();
    assert_eq!(docs.len(), 4);
    let roots: Vec<TrustRoot> = docs[..3].iter().map(|d| serde_json::from_value(d.clone()).unwrap()).collect();
    assert_eq!(roots, out.trust_roots);
    let back: ImageTrustPolicy = serde_json::from_value(docs[3].clone()).unwrap();
    assert_eq!(&back, policy);
    let (code, stdout2, _) = cli(&[
        "import",
        "notation",
        "--trust-policy",
        config.join("trustpolicy.json").to_str().unwrap(),
        "--trust-store",
        config.join("truststore").to_str().unwrap(),
        "--name-prefix",
        "t-",
        "--plain-http",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout2.lines().skip(1).collect::<Vec<_>>(),
        stdout.lines().skip(1).collect::<Vec<_>>(),
        "only the header (the file name) differs"
    );
    let files = load_files(&config.join("trustpolicy.json"), &config.join("truststore")).unwrap();
    assert_eq!(files.policy_json, input.policy_json);
}

#[test]
fn registry_credentials_and_unreadable_files_on_the_command_line() {
    let home = Home::new();
    home.notation(&["cert", "generate-test", "--default", "solo"]);
    let policy = r#"{"version":"1.0","trustPolicies":[{"name":"all","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:solo"],"trustedIdentities":["*"]}]}"#;
    let file = home.dir.path().join("policy.json");
    std::fs::write(&file, policy).unwrap();
    home.notation(&["policy", "import", "--force", file.to_str().unwrap()]);
    let config = home.config();
    let (code, stdout, stderr) = cli(&[
        "import",
        "notation",
        "--notation-config",
        config.to_str().unwrap(),
        "--registry-secret",
        "trustwatch-system/pull",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let docs = trustwatch::audit::parse_documents(&stdout).unwrap();
    let tr: TrustRoot = serde_json::from_value(docs[0].clone()).unwrap();
    let secret = tr.spec.registry.unwrap().auth_secret_ref.unwrap();
    assert_eq!((secret.namespace.as_str(), secret.name.as_str()), ("trustwatch-system", "pull"));
    let (code, _, stderr) =
        cli(&["import", "notation", "--notation-config", config.to_str().unwrap(), "--registry-secret", "pull"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is not NAMESPACE/NAME"), "{stderr}");
    let missing = home.dir.path().join("nowhere");
    let (code, _, stderr) = cli(&["import", "notation", "--notation-config", missing.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
    let (code, _, stderr) = cli(&["import", "notation", "--trust-policy", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "clap: --trust-store is required with --trust-policy: {stderr}");
    std::fs::write(&file, "{}").unwrap();
    let (code, _, stderr) = cli(&[
        "import",
        "notation",
        "--trust-policy",
        file.to_str().unwrap(),
        "--trust-store",
        config.join("truststore").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("notation configuration: "), "{stderr}");
}
