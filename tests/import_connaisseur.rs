//! `trustwatch import connaisseur` on Connaisseur Helm values laid out as Connaisseur's own docs
//! show them (tests/fixtures/connaisseur/: the 3.x layout under `application`, the 2.x layout at
//! the top level with snake_case keys). The exact objects and the exact "not mapped" lines are
//! asserted; keys and certificates are compared with the fixture's own text; every object passes
//! its `spec.validate()`; and the CLI's YAML stream deserializes into the same objects.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use trustwatch::crd::{ImageTrustPolicy, NotationLevel, Require, TrustRoot};
use trustwatch::import::Imported;
use trustwatch::import::connaisseur::{ConnaisseurOptions, import};

fn fixture(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/connaisseur").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

fn imported(name: &str) -> Imported {
    let (path, text) = fixture(name);
    import(&text, &path.display().to_string(), &ConnaisseurOptions::default()).unwrap()
}

/// The base64 body of every PEM block, whitespace and `Name: value` headers removed: what a
/// key or certificate is, however it is indented or wrapped.
fn pem_bodies(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur: Option<String> = None;
    for l in text.lines().map(str::trim) {
        if l.starts_with("-----BEGIN ") {
            cur = Some(String::new());
        } else if l.starts_with("-----END ") {
            out.extend(cur.take());
        } else if let Some(c) = cur.as_mut()
            && !l.contains(':')
        {
            c.push_str(l);
        }
    }
    out
}

/// A string of the fixture: `validators[name].trustRoots[root].field` (or a validator field).
fn fixture_value(values: &Value, validator: &str, root: Option<&str>, field: &str) -> String {
    let validators = values
        .pointer("/application/validators")
        .or_else(|| values.get("validators"))
        .and_then(Value::as_array)
        .unwrap();
    let v = validators.iter().find(|v| v["name"] == validator).unwrap();
    let node = match root {
        Some(r) => {
            let roots = v.get("trustRoots").or_else(|| v.get("trust_roots")).and_then(Value::as_array).unwrap();
            roots.iter().find(|x| x["name"] == r).unwrap()
        }
        None => v,
    };
    let mut cur = node;
    for part in field.split('.') {
        cur = &cur[part];
    }
    cur.as_str().unwrap_or_else(|| panic!("{validator}/{root:?}/{field} is not a string")).to_string()
}

fn root<'a>(out: &'a Imported, name: &str) -> &'a TrustRoot {
    out.trust_roots
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no TrustRoot {name}"))
}

/// (pattern, trust roots, require, signers) of an image rule.
type Rule = (String, Vec<String>, Option<Require>, Vec<String>);

fn rules(p: &ImageTrustPolicy) -> Vec<Rule> {
    p.spec
        .images
        .iter()
        .map(|r| (r.pattern.clone(), r.roots().iter().map(|s| s.to_string()).collect(), r.require, r.signers.clone()))
        .collect()
}

fn rule(pattern: &str, roots: &[&str], require: Option<Require>, signers: &[&str]) -> Rule {
    (
        pattern.into(),
        roots.iter().map(|s| s.to_string()).collect(),
        require,
        signers.iter().map(|s| s.to_string()).collect(),
    )
}

fn names(out: &Imported) -> Vec<&str> {
    out.trust_roots.iter().map(|r| r.metadata.name.as_deref().unwrap()).collect()
}

#[track_caller]
fn all_valid(out: &Imported) {
    for r in &out.trust_roots {
        assert_eq!(r.spec.validate(), Ok(()), "{:?}", r.metadata.name);
    }
    assert_eq!(out.policy.as_ref().unwrap().spec.validate(), Ok(()));
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cli(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_trustwatch")).args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn connaisseur_3_validators_become_one_trust_root_per_trust_root_with_their_keys() {
    let out = imported("v3-values.yaml");
    let (_, text) = fixture("v3-values.yaml");
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        names(&out),
        [
            "dockerhub-default",
            "dockerhub-sse",
            "private-notary-release-root",
            "myvalidator-mykey",
            "multicosigner-alice",
            "multicosigner-bob",
            "multicosigner-charlie",
            "bitnami-notation-bitnami",
            "multicosigner-alice-no-tlog",
            "multicosigner-bob-no-tlog",
            "multicosigner-charlie-no-tlog",
            "bitnami-notation-bitnami-permissive",
        ]
    );
    all_valid(&out);

    // notaryv1: host -> https server, trustRoots[].key -> rootKeys, cert -> caBundle, inline
    // credentials -> a Secret reference (and a comment on how to create it, no credentials).
    for (name, tr) in [("dockerhub-default", "default"), ("dockerhub-sse", "sse")] {
        let s = &root(&out, name).spec;
        assert_eq!(s.server.as_deref(), Some("https://notary.docker.io"));
        assert_eq!(s.root_keys.len(), 1);
        assert_eq!(s.root_keys[0].name, tr);
        assert_eq!(
            pem_bodies(&s.root_keys[0].public_key),
            pem_bodies(&fixture_value(&values, "dockerhub", Some(tr), "key"))
        );
        assert_eq!(
            pem_bodies(s.ca_bundle.as_deref().unwrap()),
            pem_bodies(&fixture_value(&values, "dockerhub", None, "cert"))
        );
        let secret = s.auth_secret_ref.as_ref().unwrap();
        assert_eq!((secret.name.as_str(), secret.namespace.as_str()), ("dockerhub-notary-auth", "trustwatch-system"));
        assert!(s.registry.is_none() && s.notation.is_none() && s.cosign.is_none());
    }
    let comment = out.comments["dockerhub-default"].join("\n");
    assert!(comment.contains("kubectl -n trustwatch-system create secret generic dockerhub-notary-auth"), "{comment}");
    assert!(!out.comments.contains_key("dockerhub-sse"), "the comment is given once per validator");
    // A root.pub with its `role: root` header (as `docker trust key generate` writes it).
    let private = &root(&out, "private-notary-release-root").spec;
    assert_eq!(private.server.as_deref(), Some("https://notary.example.com:4443"));
    assert_eq!(
        pem_bodies(&private.root_keys[0].public_key),
        pem_bodies(&fixture_value(&values, "private_notary", Some("release_root"), "key"))
    );
    assert!(!private.root_keys[0].public_key.contains("role:"));
    assert_eq!(private.auth_secret_ref.as_ref().unwrap().name, "notary-credentials");

    // cosign: trustRoots[].key -> keys; auth.secretName -> registry access; host.rekorPubkey ->
    // logKeys, except for rules with verifyInTransparencyLog: false.
    let my = root(&out, "myvalidator-mykey").spec.cosign.clone().unwrap();
    assert_eq!(my.keys.len(), 1);
    assert_eq!(
        pem_bodies(my.keys[0].public_key.as_deref().unwrap()),
        pem_bodies(&fixture_value(&values, "myvalidator", Some("mykey"), "key"))
    );
    assert!(my.log_keys.is_empty());
    let reg = root(&out, "myvalidator-mykey").spec.registry.clone().unwrap();
    assert_eq!(reg.auth_secret_ref.unwrap().name, "my-secret");
    for who in ["alice", "bob", "charlie"] {
        let c = root(&out, &format!("multicosigner-{who}")).spec.cosign.clone().unwrap();
        assert_eq!(
            pem_bodies(c.keys[0].public_key.as_deref().unwrap()),
            pem_bodies(&fixture_value(&values, "multicosigner", Some(who), "key"))
        );
        assert_eq!(
            pem_bodies(c.log_keys[0].public_key.as_deref().unwrap()),
            pem_bodies(&fixture_value(&values, "multicosigner", None, "host.rekorPubkey"))
        );
        let no_tlog = root(&out, &format!("multicosigner-{who}-no-tlog")).spec.cosign.clone().unwrap();
        assert_eq!(no_tlog.keys, c.keys);
        assert!(no_tlog.log_keys.is_empty());
    }

    // notation: trustRoots[].cert -> the ca trust store; trustedIdentities "*" (with a note);
    // with.verificationLevel -> a variant.
    let n = root(&out, "bitnami-notation-bitnami").spec.notation.clone().unwrap();
    assert_eq!(n.trust_stores.ca.len(), 1);
    assert_eq!(
        pem_bodies(n.trust_stores.ca[0].pem.as_deref().unwrap()),
        pem_bodies(&fixture_value(&values, "bitnami_notation", Some("bitnami"), "cert"))
    );
    assert_eq!(n.trusted_identities, ["*"]);
    assert_eq!(n.verification_level, NotationLevel::Strict);
    let p = root(&out, "bitnami-notation-bitnami-permissive").spec.notation.clone().unwrap();
    assert_eq!(p.verification_level, NotationLevel::Permissive);
    assert_eq!(p.trust_stores, n.trust_stores);
}

#[test]
fn connaisseur_3_policy_rules_become_image_rules_in_the_same_order() {
    let out = imported("v3-values.yaml");
    let policy = out.policy.as_ref().unwrap();
    assert_eq!(policy.metadata.name.as_deref(), Some("connaisseur"));
    use Require::{AllOf, AnyOf};
    assert_eq!(
        rules(policy),
        [
            rule("docker.io/library/**", &["dockerhub-default"], None, &[]),
            rule("docker.io/securesystemsengineering/**", &["dockerhub-sse"], None, &[]),
            rule(
                "docker.io/securesystemsengineering/connaisseur",
                &["dockerhub-sse"],
                None,
                &["belitzphilipp", "starkteetje"]
            ),
            rule("registry.example.com/**", &["private-notary-release-root"], None, &[]),
            // notaryv1 trustRoot "*": Connaisseur requires the root to be signed by every key.
            rule("quay.io/acme/**", &["dockerhub-default", "dockerhub-sse"], Some(AllOf), &[]),
            // cosign trustRoot "*" alone: every trust root must have signed.
            rule(
                "ghcr.io/acme/**",
                &["multicosigner-alice", "multicosigner-bob", "multicosigner-charlie"],
                Some(AllOf),
                &[]
            ),
            // threshold 1: any of them.
            rule(
                "ghcr.io/acme/rotating/**",
                &["multicosigner-alice-no-tlog", "multicosigner-bob-no-tlog", "multicosigner-charlie-no-tlog"],
                Some(AnyOf),
                &[],
            ),
            // threshold 2 of 3 cannot be expressed: all of them, reported.
            rule(
                "ghcr.io/acme/critical/**",
                &["multicosigner-alice", "multicosigner-bob", "multicosigner-charlie"],
                Some(AllOf),
                &[]
            ),
            // required alice and bob: those two.
            rule("ghcr.io/acme/gated/**", &["multicosigner-alice", "multicosigner-bob"], Some(AllOf), &[]),
            rule("docker.io/bitnami/**", &["bitnami-notation-bitnami"], None, &[]),
            rule("docker.io/bitnamicharts/**", &["bitnami-notation-bitnami-permissive"], None, &[]),
        ]
    );
    // Connaisseur denies: the import reports, it does not quarantine.
    assert_eq!(policy.spec.action, trustwatch::crd::PolicyAction::Audit);
    let sel = policy.spec.namespace_selector.as_ref().unwrap();
    let expr = &sel.match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (expr.key.as_str(), expr.operator.as_str(), expr.values.clone().unwrap()),
        ("securesystemsengineering.connaisseur/webhook", "In", vec!["validate".to_string()])
    );
}

#[test]
fn connaisseur_3_items_that_cannot_be_mapped_are_reported_one_line_each() {
    let out = imported("v3-values.yaml");
    assert_eq!(
        out.unmapped,
        [
            "validators[private_notary].isAcr: no trustwatch equivalent (Azure Container Registry's Notary is read like any other)",
            "validators[myvalidator]: Connaisseur checks signatures against the transparency log rekor.sigstore.dev (unless a rule sets verifyInTransparencyLog: false); trustwatch checks a log only with its public key in spec.cosign.logKeys, which the values do not give (host.rekorPubkey): the log check is not mapped",
            "validators[keylessvalidator].trustRoots[keyless]: keyless (Fulcio certificate) trust roots cannot be mapped: trustwatch verifies cosign signatures with keys; not emitted",
            "policy[0] \"*:*\": validator \"deny\" is static (approve: false): trustwatch cannot deny an image without verifying it; not emitted: its images are NotCovered (reported, not failing; spec.unmatchedImages: Fail would count every image no rule covers as failing)",
            "policy[4] \"registry.k8s.io/*:*\": validator \"allow\" is static (approve: true): trustwatch has no image rule without verification; not emitted: its images are NotCovered (reported, not failing)",
            "policy[7] \"docker.io/securesystemsengineering/testimage:co-*\": the tag filter \"co-*\" cannot be expressed: the rule covers every tag of docker.io/securesystemsengineering/testimage",
            "policy[7] \"docker.io/securesystemsengineering/testimage:co-*\": \"key\" is not a Connaisseur rule option (Connaisseur 1 spelling; Connaisseur 2 and 3 read trustRoot); ignored",
            "policy[7] \"docker.io/securesystemsengineering/testimage:co-*\": validator \"myvalidator\" has no trust root \"default\" (Connaisseur fails images under this rule); not emitted: its images (e.g. docker.io/securesystemsengineering/testimage:co-w) fall under policy[2] \"docker.io/securesystemsengineering/**\" instead",
            "policy[10] \"ghcr.io/acme/critical/*:*\": with.threshold 2 of 3 trust roots cannot be expressed (trustwatch combines trust roots with AnyOf or AllOf); emitted AllOf over all 3, which is stricter",
            "policy[12] \"ghcr.io/acme/keyless/*:*\": its trust root \"keyless\" could not be mapped (keyless (Fulcio certificate) trust roots cannot be mapped: trustwatch verifies cosign signatures with keys); not emitted: its images (e.g. ghcr.io/acme/keyless/w:latest) fall under policy[8] \"ghcr.io/acme/**\" instead",
            "alerting: Connaisseur's alert receivers are not mapped; trustwatch reports through events, metrics and its Prometheus alert rules",
        ]
    );
    assert_eq!(
        out.notes,
        [
            "validators[dockerhub]: its TrustRoots read Secret trustwatch-system/dockerhub-notary-auth, which must exist: see the comment above TrustRoot dockerhub-default in the output",
            "validators[private_notary]: its TrustRoots read Secret trustwatch-system/notary-credentials, which must exist: see the comment above TrustRoot private-notary-release-root in the output",
            "validators[myvalidator]: its TrustRoots read Secret trustwatch-system/my-secret, which must exist: see the comment above TrustRoot myvalidator-mykey in the output",
            "validators[bitnami_notation]: Connaisseur accepts any signer its certificates anchor; the TrustRoots use trustedIdentities [\"*\"]: narrow them to the signers' x509.subject",
            "Connaisseur requires targets/releases when a repository has delegations and no with.delegations is set; trustwatch then resolves as docker trust does (targets/releases, then targets, then other delegations)",
            "policy[13] \"bitnami/*:*\": \"bitnami/*:*\" names no registry: Docker Hub (docker.io) is assumed, as `docker pull` does",
            "Connaisseur 3 matches a pattern anywhere in the image name (it adds a leading and a trailing `*`); trustwatch patterns match whole repositories",
            "namespacedValidation (validate) is spec.namespaceSelector on the label securesystemsengineering.connaisseur/webhook; it replaces trustwatch's default exclusion of kube-system and the operator's namespace",
            "Connaisseur denies untrusted images; the ImageTrustPolicy has action Audit (report only): spec.action: Quarantine is trustwatch's stronger equivalent (it isolates running pods that fail), set it knowingly",
        ]
    );
}

#[test]
fn connaisseur_2_snake_case_values_import_like_connaisseur_3() {
    let out = imported("v2-values.yaml");
    let (_, text) = fixture("v2-values.yaml");
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        names(&out),
        [
            "default-default",
            "dockerhub-basics-docker-official",
            "dockerhub-basics-securesystemsengineering-official",
            "myvalidator-mykey"
        ]
    );
    all_valid(&out);
    let d = &root(&out, "default-default").spec;
    assert_eq!(d.auth_secret_ref.as_ref().unwrap().name, "k8ssecret");
    assert_eq!(
        pem_bodies(&d.root_keys[0].public_key),
        pem_bodies(&fixture_value(&values, "default", Some("default"), "key"))
    );
    let policy = out.policy.as_ref().unwrap();
    assert_eq!(
        rules(policy),
        [
            // `*:*` without a validator: the validator named default, its trust root default.
            rule("**", &["default-default"], None, &[]),
            rule("docker.io/library/**", &["dockerhub-basics-docker-official"], None, &[]),
            rule(
                "docker.io/securesystemsengineering/**",
                &["dockerhub-basics-securesystemsengineering-official"],
                None,
                &[]
            ),
            rule("docker.io/securesystemsengineering/testimage", &["myvalidator-mykey"], None, &[]),
        ]
    );
    assert_eq!(
        out.unmapped,
        [
            "validators[myvalidator]: Connaisseur checks signatures against the transparency log rekor.sigstore.dev (unless a rule sets verifyInTransparencyLog: false); trustwatch checks a log only with its public key in spec.cosign.logKeys, which the values do not give (host.rekorPubkey): the log check is not mapped",
            "policy[2] \"k8s.gcr.io/*:*\": validator \"allow\" is static (approve: true): trustwatch has no image rule without verification; not emitted: its images (e.g. k8s.gcr.io/w:latest) fall under policy[0] \"**\" instead",
            "policy[4] \"docker.io/securesystemsengineering/testimage:co*\": the tag filter \"co*\" cannot be expressed: the rule covers every tag of docker.io/securesystemsengineering/testimage",
            "policy[5] \"docker.io/myrepo/deniedimage:*\": validator \"deny\" is static (approve: false): trustwatch cannot deny an image without verifying it; not emitted: its images (e.g. docker.io/myrepo/deniedimage:latest) fall under policy[0] \"**\" instead",
        ]
    );
    assert!(out.notes.iter().any(|n| n.starts_with("detectionMode is on")), "{:?}", out.notes);
    let expr = &policy.spec.namespace_selector.as_ref().unwrap().match_expressions.as_ref().unwrap()[0];
    assert_eq!((expr.operator.as_str(), expr.values.clone().unwrap()), ("NotIn", vec!["ignore".to_string()]));
}

#[test]
fn the_cli_prints_the_stream_on_stdout_and_the_report_on_stderr() {
    for name in ["v3-values.yaml", "v2-values.yaml"] {
        let (path, _) = fixture(name);
        let run = cli(&["import", "connaisseur", path.to_str().unwrap()]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let lib = imported(name);
        let expected: Vec<String> = lib.report_lines();
        assert_eq!(run.stderr.lines().collect::<Vec<_>>(), expected);
        // The stream holds the same objects, and nothing but them.
        let docs = trustwatch::audit::parse_documents(&run.stdout).unwrap();
        assert_eq!(docs.len(), lib.trust_roots.len() + 1);
        let roots: Vec<TrustRoot> =
            docs[..docs.len() - 1].iter().map(|d| serde_json::from_value(d.clone()).unwrap()).collect();
        assert_eq!(roots, lib.trust_roots);
        let policy: ImageTrustPolicy = serde_json::from_value(docs[docs.len() - 1].clone()).unwrap();
        assert_eq!(Some(&policy), lib.policy.as_ref());
        // Credentials in the values never reach the output.
        assert!(!run.stdout.contains("lookatmeimjumping") && !run.stdout.contains("superuser"));
    }
    let (path, _) = fixture("v3-values.yaml");
    let run = cli(&[
        "import",
        "connaisseur",
        path.to_str().unwrap(),
        "--name-prefix",
        "cn-",
        "--secret-namespace",
        "security",
    ]);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("  name: cn-dockerhub-default\n"));
    assert!(run.stdout.contains("    name: cn-dockerhub-notary-auth\n    namespace: security\n"), "{}", run.stdout);
    assert!(run.stdout.contains("  name: cn-connaisseur\n"));
}

#[test]
fn unreadable_input_exits_2_and_input_of_which_nothing_maps_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let run = cli(&["import", "connaisseur", missing.to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("cannot read Connaisseur values"), "{}", run.stderr);
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "replicaCount: 2\n").unwrap();
    let run = cli(&["import", "connaisseur", other.to_str().unwrap()]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no Connaisseur validators found"), "{}", run.stderr);
    let only_static = dir.path().join("static.yaml");
    std::fs::write(
        &only_static,
        "application:\n  validators:\n  - name: allow\n    type: static\n    approve: true\n  policy:\n  - pattern: \"*:*\"\n    validator: allow\n",
    )
    .unwrap();
    let run = cli(&["import", "connaisseur", only_static.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.starts_with("not mapped: policy[0] \"*:*\": validator \"allow\" is static (approve: true)"),
        "{}",
        run.stderr
    );
}
