//! The CRDs, samples and `config/default` on the real API server: structural schemas, CEL
//! rules compiled and enforced, the messages a user sees, and `kubectl explain`.

use crate::harness::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn valid_trust_root(name: &str) -> Value {
    json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": name},
        "spec": {"server": "https://notary.example.com",
                 "rootKeys": [{"name": "root", "publicKey": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhckfN5AEipyAj7O98t/JU7wTU1lK\n8jYNrbmELwBharobeTmX+FQw70DDkSORQxC/EPuGVKWgx1aWRSrBUL2zzQ==\n-----END PUBLIC KEY-----\n"}]}})
}

fn valid_policy(name: &str) -> Value {
    json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy", "metadata": {"name": name},
        "spec": {"images": [{"pattern": "registry.example.com/**", "trustRoot": "example"}]}})
}

/// Sets `value` at a `/`-separated path (array indices as numbers); `None` removes the field.
fn set_path(obj: &mut Value, path: &str, value: Option<Value>) {
    let parts: Vec<&str> = path.split('/').collect();
    let mut cur = obj;
    for p in &parts[..parts.len() - 1] {
        cur = match p.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*p],
        };
    }
    let last = parts[parts.len() - 1];
    match value {
        Some(v) => cur[last] = v,
        None => {
            cur.as_object_mut().unwrap().remove(last);
        }
    }
}

/// Every CEL rule (`x-kubernetes-validations`) in a CRD's schema: (field path, message).
fn cel_rules(schema: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for r in rules {
            out.push((path.to_string(), r["message"].as_str().unwrap_or_default().to_string()));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            cel_rules(v, &format!("{path}.{k}"), out);
        }
    }
    if schema.get("items").is_some() {
        cel_rules(&schema["items"], &format!("{path}[]"), out);
    }
}

fn crd_schema(cp: &ControlPlane, plural: &str) -> Value {
    let crd: Value =
        serde_json::from_str(&cp.kubectl(&["get", "crd", &format!("{plural}.trustwatch.dev"), "-o", "json"]).unwrap())
            .unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_samples_and_config_default_are_accepted_and_explained() {
    let cp = ControlPlane::shared();
    let root = repo_root();
    // Every sample is accepted by the real server (validated, admitted; not persisted).
    let out = cp.kubectl(&["apply", "--dry-run=server", "-f", root.join("config/samples").to_str().unwrap()]);
    let out = out.unwrap_or_else(|e| panic!("config/samples rejected: {e}"));
    assert!(out.lines().count() >= 3, "every sample applied: {out}");
    // The whole install, as a user runs it.
    let out = cp.kubectl(&["apply", "-k", root.join("config/default").to_str().unwrap()]).unwrap();
    for kind in ["customresourcedefinition", "clusterrole", "serviceaccount", "deployment"] {
        assert!(out.contains(kind), "kubectl apply -k config/default applied a {kind}: {out}");
    }
    // No kubelet runs the operator's own Deployment here: scale it away again.
    cp.kubectl(&["-n", "trustwatch-system", "scale", "deployment/trustwatch", "--replicas=0"]).unwrap();

    // `kubectl explain` shows the field docs, as prose.
    let explain = cp.kubectl(&["explain", "trustroot.spec.rootKeys"]).unwrap();
    assert!(explain.contains("root keys pinned for every repository"), "{explain}");
    let schema = crd_schema(cp, "trustroots");
    let doc = schema["properties"]["spec"]["properties"]["rootKeys"]["description"].as_str().unwrap();
    assert!(
        !doc.split("\n\n").any(|para| para.contains('\n')),
        "field docs are prose paragraphs, not the source's line breaks: {doc:?}"
    );
    let explain = cp.kubectl(&["explain", "imagetrustpolicy.spec.action"]).unwrap();
    assert!(explain.contains("Quarantine"), "{explain}");
    let explain = cp.kubectl(&["explain", "imagetrustreport.status.containers"]).unwrap();
    assert!(explain.contains("runningDigest"), "{explain}");
}

/// (kind, field path in the object, invalid value, what the message must say). The test
/// below checks that every CEL rule of the CRDs has an entry here.
fn invalid_cases() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    vec![
        ("TrustRoot", "spec/server", json!("http://notary.example.com"), "must be an https:// URL with a host"),
        ("TrustRoot", "spec/server", json!("https://"), "must be an https:// URL with a host"),
        ("TrustRoot", "spec/caBundle", json!("not a certificate"), "must hold at least one PEM certificate"),
        ("TrustRoot", "spec/rootKeys/0/publicKey", json!("MFkw"), "must be a PEM public key or certificate"),
        (
            "TrustRoot",
            "spec/rootKeys",
            json!([]),
            "a Notary v1 trust root (spec.server) needs at least one entry in rootKeys",
        ),
        (
            "TrustRoot",
            "spec/cosign",
            json!({"keys": [{"name": "k", "publicKey": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"}]}),
            "set exactly one kind of trust root",
        ),
        ("TrustRoot", "spec/registry", json!({"plainHTTP": true}), "registry is for Notation and cosign trust roots"),
        ("TrustRoot", "spec/caBundle", json!("not a certificate"), "must hold at least one PEM certificate"),
        ("TrustRoot", "spec/revokedKeys", json!(["ABC"]), "should match"),
        ("TrustRoot", "spec/refreshInterval", json!("5 minutes"), "should match"),
        ("TrustRoot", "spec/expiryWarning", json!("soon"), "should match"),
        (
            "ImageTrustPolicy",
            "spec/images/0/pattern",
            json!("registry.example.com//app"),
            "must be a repository path such as registry.example.com/team/*",
        ),
        ("ImageTrustPolicy", "spec/images/0/pattern", json!("Registry.example.com/app"), "should match"),
        ("ImageTrustPolicy", "spec/images/0/signers", json!(["not a signer"]), "should match"),
        ("ImageTrustPolicy", "spec/action", json!("Delete"), "supported values: \"Audit\", \"Quarantine\""),
        ("ImageTrustPolicy", "spec/onUnavailable", json!("Maybe"), "supported values"),
        ("ImageTrustPolicy", "spec/interval", json!("often"), "should match"),
        ("ImageTrustPolicy", "spec/images", json!([]), "should have at least 1 items"),
        ("ImageTrustPolicy", "spec/images/0/trustRoots", json!(["a", "b"]), "set either trustRoot or trustRoots"),
        ("ImageTrustPolicy", "spec/images/0/trustRoot", json!(null), "set either trustRoot or trustRoots"),
        ("ImageTrustPolicy", "spec/images/0/require", json!("AllOf"), "require applies to trustRoots"),
        ("ImageTrustPolicy", "spec/quarantineAfter", json!("later"), "should match"),
    ]
}

/// The same for a cosign and a Notation trust root (their own rules).
fn invalid_kind_cases() -> Vec<(Value, &'static str)> {
    let key = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----";
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    let cosign = |keys: Value| json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "crd-check-cosign"}, "spec": {"cosign": {"keys": keys}}});
    let notation = |n: Value| json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "crd-check-notation"}, "spec": {"notation": n}});
    vec![
        (cosign(json!([{"name": "k"}])), "set exactly one of publicKey, configMapKeyRef and secretKeyRef"),
        (cosign(json!([{"name": "k", "publicKey": "MFkw"}])), "must be a PEM public key"),
        (cosign(json!([])), "should have at least 1 items"),
        (
            notation(
                json!({"trustStores": {"ca": [{"name": "c", "pem": cert, "configMapKeyRef": {"name": "x", "key": "y"}}]}, "trustedIdentities": ["*"]}),
            ),
            "set exactly one of pem, configMapKeyRef and secretKeyRef",
        ),
        (
            notation(json!({"trustStores": {"ca": [{"name": "c", "pem": "nope"}]}, "trustedIdentities": ["*"]})),
            "must hold at least one PEM certificate",
        ),
        (
            notation(
                json!({"trustStores": {"ca": [{"name": "c", "pem": cert}]}, "trustedIdentities": ["*"], "overrides": {"authenticity": "skip"}}),
            ),
            "authenticity can be enforce or log, not skip",
        ),
        (
            notation(
                json!({"trustStores": {"ca": [{"name": "c", "pem": cert}]}, "trustedIdentities": ["*"], "overrides": {"authenticTimestamp": "skip"}}),
            ),
            "authenticTimestamp can be enforce or log, not skip",
        ),
        (
            notation(
                json!({"trustStores": {"ca": [{"name": "c", "pem": cert}]}, "trustedIdentities": ["*"], "overrides": {"expiry": "skip"}}),
            ),
            "expiry can be enforce or log, not skip",
        ),
        (
            notation(json!({"trustStores": {"ca": [{"name": "c", "pem": cert}]}, "trustedIdentities": []})),
            "should have at least 1 items",
        ),
        (
            notation(
                json!({"trustStores": {"ca": [{"name": "c", "pem": cert}]}, "trustedIdentities": ["*"], "verificationLevel": "skip"}),
            ),
            "supported values",
        ),
        (
            json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "crd-check-cosign"}, "spec": {"cosign": {"keys": [{"name": "k", "publicKey": key}]}, "registry": {"caBundle": "x"}}}),
            "must hold at least one PEM certificate",
        ),
    ]
}

/// Required fields, removed one at a time: (kind, path).
fn required_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TrustRoot", "spec/rootKeys/0/name"),
        ("TrustRoot", "spec/rootKeys/0/publicKey"),
        ("ImageTrustPolicy", "spec/images"),
        ("ImageTrustPolicy", "spec/images/0/pattern"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cel_rule_and_required_field_rejects_invalid_objects_with_a_readable_message() {
    let cp = ControlPlane::shared();
    let base = |kind: &str| if kind == "TrustRoot" { valid_trust_root("crd-check") } else { valid_policy("crd-check") };
    for kind in ["TrustRoot", "ImageTrustPolicy"] {
        cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &base(kind).to_string())
            .unwrap_or_else(|e| panic!("the valid {kind} is accepted: {e}"));
    }
    for (kind, path, value, message) in invalid_cases() {
        let mut obj = base(kind);
        set_path(&mut obj, path, Some(value.clone()));
        let err = cp
            .kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &obj.to_string())
            .expect_err(&format!("{kind} with {path} = {value} is rejected"));
        assert!(err.contains(message), "{kind} {path}={value}: the message says {message:?}: {err}");
        let field = path.split('/').filter(|p| p.parse::<usize>().is_err()).collect::<Vec<_>>().join(".");
        let leaf = field.rsplit('.').next().unwrap();
        assert!(err.contains(leaf), "{kind} {path}: the message names the field {leaf}: {err}");
    }
    for (kind, path) in required_cases() {
        let mut obj = base(kind);
        set_path(&mut obj, path, None);
        let err = cp
            .kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &obj.to_string())
            .expect_err(&format!("{kind} without {path} is rejected"));
        let leaf = path.rsplit('/').next().unwrap();
        assert!(err.contains("Required value") && err.contains(leaf), "{kind} without {path}: {err}");
    }

    for (obj, message) in invalid_kind_cases() {
        let err = cp
            .kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &obj.to_string())
            .expect_err(&format!("{obj} is rejected"));
        assert!(err.contains(message), "{obj}: the message says {message:?}: {err}");
    }
    // A valid trust root of each kind is accepted.
    let key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhckfN5AEipyAj7O98t/JU7wTU1lK\n8jYNrbmELwBharobeTmX+FQw70DDkSORQxC/EPuGVKWgx1aWRSrBUL2zzQ==\n-----END PUBLIC KEY-----\n";
    let ok = json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "crd-check-cosign"},
        "spec": {"cosign": {"keys": [{"name": "release", "publicKey": key}]}, "registry": {"plainHTTP": true}}});
    cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &ok.to_string())
        .expect("a cosign trust root is accepted");

    // Every CEL rule in the served CRDs has a case above: a new rule needs its test.
    let mut covered: BTreeSet<&str> = invalid_cases().iter().map(|(_, _, _, m)| *m).collect();
    covered.extend(invalid_kind_cases().iter().map(|(_, m)| *m));
    for plural in ["trustroots", "imagetrustpolicies", "imagetrustreports"] {
        let mut rules = vec![];
        cel_rules(&crd_schema(cp, plural), "", &mut rules);
        for (path, message) in rules {
            assert!(
                covered.iter().any(|c| message.starts_with(c) || c.starts_with(&message)),
                "{plural}{path}: CEL rule {message:?} has no invalid case in this test"
            );
        }
    }
}
