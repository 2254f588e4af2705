//! The admission webhook on the real control plane: kube-apiserver calls `trustwatch run
//! --webhook-addr` over TLS (`clientConfig.url` on loopback, with the caBundle the operator
//! patched into the ValidatingWebhookConfiguration), and the real kubectl shows what a
//! developer sees.

use crate::harness::*;
use crate::world::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// `kubectl apply -f -` of `object`: (succeeded, stdout, stderr). kubectl prints admission
/// warnings and refusals on stderr.
fn kubectl_apply(cp: &ControlPlane, object: &Value) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(&cp.kubectl)
        .env("KUBECONFIG", &cp.kubeconfig)
        .args(["--request-timeout=60s", "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(object.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The webhook configuration of the test: the operator's name for it (its RBAC allows that
/// one), called at `url`, for the namespaces `namespaces` only (other tests share the
/// control plane).
pub(crate) fn webhook_configuration(url: &str, namespaces: &[&str], failure_policy: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "trustwatch"},
        "webhooks": [{
            "name": "images.trustwatch.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": failure_policy,
            "timeoutSeconds": 10,
            "clientConfig": {"url": url},
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
            ]},
            "rules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]},
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}
            ]
        }]
    })
}

/// Replaces one field of the test's webhook configuration.
pub(crate) fn patch_webhook(cp: &ControlPlane, path: &str, value: Value) {
    let op = json!([{"op": "replace", "path": path, "value": value}]).to_string();
    cp.kubectl(&["patch", "validatingwebhookconfiguration", "trustwatch", "--type=json", "-p", &op]).unwrap();
}

/// The webhook configuration and the Secret are the operator's by name (its RBAC grants those
/// names only): the tests that use them take turns.
pub(crate) static WEBHOOK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_is_refused_warned_or_admitted_by_a_follower_replica_and_an_outage_follows_failure_policy() {
    let _turn = WEBHOOK.lock().await;
    let ns = "tw-admit";
    let operator_ns = "trustwatch-system";
    let mut w = World::new(ns).await;
    let signed = w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/web", "v2", "web v2, never signed");
    w.apply(&w.trust_root(json!({})));
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}/validate");
    // The operator's namespace is selected by the policy (and, below, routed to the webhook),
    // so that only the operator's own rule keeps it out.
    w.cp.kubectl(&["label", "namespace", operator_ns, &format!("{INSTANCE_LABEL}={ns}"), "--overwrite"]).unwrap();
    w.cp.apply(&webhook_configuration(&url, &[ns], "Fail")).unwrap();
    let policy = |mode: &str| {
        w.policy(
            "admit",
            json!({"namespaceSelector": {"matchLabels": {INSTANCE_LABEL: ns}}, "admission": {"mode": mode}}),
        )
    };
    w.apply(&policy("Enforce"));
    // A leader that serves no webhook, then the replica that does: every case below is
    // answered by a follower, which reconciles nothing and loads the trust root itself.
    let leader = w.operator();
    leads(&leader).await;
    let addr = format!("127.0.0.1:{port}");
    let mut op = w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1"]);

    // Signed by tag: admitted once the operator serves and patched its caBundle.
    let web = w.repo("shop/web");
    let deploy = |name: &str, image: &str| deployment(ns, name, image, 1);
    let (ok, _, err) = eventually("the webhook admits a signed image", REACT, || {
        let r = kubectl_apply(w.cp, &deploy("signed-tag", &format!("{web}:v1")));
        async move { if r.0 { Ok(r) } else { Err(r.2) } }
    })
    .await;
    assert!(ok && !err.contains("Warning"), "{err}");
    let vwc = w.cp.kubectl(&["get", "validatingwebhookconfiguration", "trustwatch", "-o", "json"]).unwrap();
    let vwc: Value = serde_json::from_str(&vwc).unwrap();
    assert!(vwc["webhooks"][0]["clientConfig"]["caBundle"].as_str().is_some_and(|b| !b.is_empty()));

    // Signed by digest: admitted.
    let (ok, _, err) = kubectl_apply(w.cp, &deploy("signed-digest", &format!("{web}@{}", signed.digest)));
    assert!(ok, "{err}");

    // Unsigned under Enforce: refused, with the one line on kubectl's stderr.
    let unsigned = deploy("unsigned", &format!("{web}:v2"));
    let (ok, _, err) = kubectl_apply(w.cp, &unsigned);
    assert!(!ok, "an unsigned image was admitted under Enforce");
    let line = format!("trustwatch: image {web}:v2 is Unsigned under ImageTrustPolicy admit: ");
    assert!(err.contains(&line), "kubectl's stderr: {err}");
    assert!(err.contains("sign it or change the policy"), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("trustwatch: image")).count(), 1, "{err}");
    // The same Deployment in the operator's namespace is never refused. The namespace is
    // shared with every test: it is in the webhook's scope only while the webhook answers.
    patch_webhook(w.cp, "/webhooks/0/namespaceSelector/matchExpressions/0/values", json!([ns, operator_ns]));
    let (ok, _, err) = kubectl_apply(w.cp, &deployment(operator_ns, "tw-admit-own", &format!("{web}:v2"), 0));
    assert!(ok, "the operator's namespace was refused: {err}");
    patch_webhook(w.cp, "/webhooks/0/namespaceSelector/matchExpressions/0/values", json!([ns]));
    let _ = w.cp.kubectl(&["delete", "deployment", "-n", operator_ns, "tw-admit-own", "--wait=false"]);

    // Warn: admitted, and kubectl prints the warning.
    w.apply(&policy("Warn"));
    let err = eventually("Warn admits with a warning", REACT, || {
        let r = kubectl_apply(w.cp, &unsigned);
        async move { if r.0 { Ok(r.2) } else { Err(r.2) } }
    })
    .await;
    assert!(err.contains(&format!("Warning: {line}")), "kubectl's stderr: {err}");

    // Off: nothing is said (a change of image, so that the update is checked at all).
    w.apply(&policy("Off"));
    let quiet = deploy("unsigned", &format!("{web}:v2-off"));
    w.push("shop/web", "v2-off", "web v2, off");
    let err = eventually("Off admits without a word", REACT, || {
        let r = kubectl_apply(w.cp, &quiet);
        async move { if r.0 && !r.2.contains("trustwatch") { Ok(r.2) } else { Err(r.2) } }
    })
    .await;
    assert!(!err.contains("Warning"), "{err}");
    let metrics = op.metrics().unwrap();
    let denied =
        metric_value(&metrics, "trustwatch_admission_requests_total", &[("kind", "Deployment"), ("effect", "denied")]);
    assert!(denied.is_some_and(|v| v >= 1.0), "{metrics}");
    op.assert_authorized();
    let follower = op.metrics().unwrap();
    assert_eq!(metric_value(&follower, "trustwatch_leader", &[("identity", &op.identity)]), Some(0.0), "{follower}");

    // The webhook down: failurePolicy Fail refuses, Ignore admits.
    w.apply(&policy("Enforce"));
    op.stop();
    let (ok, _, err) = kubectl_apply(w.cp, &deploy("during-outage", &format!("{web}:v1")));
    assert!(!ok && err.contains("failed calling webhook"), "failurePolicy Fail: {err}");
    patch_webhook(w.cp, "/webhooks/0/failurePolicy", json!("Ignore"));
    let (ok, _, err) = kubectl_apply(w.cp, &deploy("during-outage", &format!("{web}:v2")));
    assert!(ok, "failurePolicy Ignore: {err}");

    let _ = w.cp.kubectl(&["delete", "validatingwebhookconfiguration", "trustwatch", "--wait=false"]);
    let _ = w.cp.kubectl(&["label", "namespace", operator_ns, &format!("{INSTANCE_LABEL}-")]);
    w.cleanup().await;
}

/// `kubectl apply --dry-run=server`: admission runs (webhooks with sideEffects None are called),
/// nothing is stored.
pub(crate) fn dry_run(cp: &ControlPlane, object: &Value) -> Result<String, String> {
    cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &object.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_serving_certificate_rotates_without_a_failed_request() {
    let _turn = WEBHOOK.lock().await;
    let ns = "tw-rotate";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/web", "v2", "web v2, never signed");
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("rotate", json!({"admission": {"mode": "Enforce"}})));
    let port = free_port();
    w.cp.apply(&webhook_configuration(&format!("https://127.0.0.1:{port}/validate"), &[ns], "Fail")).unwrap();
    // A certificate of another test's validity would not be due; start from none.
    let _ =
        w.cp.kubectl(&["delete", "secret", "-n", "trustwatch-system", "trustwatch-webhook-tls", "--ignore-not-found"]);
    let addr = format!("127.0.0.1:{port}");
    // 30 s certificates, rotated when 10 s are left (checked every 3 s): one every ~20 s.
    let op =
        w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1", "--webhook-cert-validity", "30s"]);
    let web = w.repo("shop/web");
    let signed = deployment(ns, "web", &format!("{web}:v1"), 1);
    let unsigned = deployment(ns, "web", &format!("{web}:v2"), 1);
    eventually("the webhook answers", REACT, || {
        let r = dry_run(w.cp, &signed);
        async move { r }
    })
    .await;
    let serving_cert = || w.webhook_secret("tls.crt");
    let mut certs = std::collections::BTreeSet::from([serving_cert()]);
    let (mut requests, mut failures) = (0, vec![]);
    let started = std::time::Instant::now();
    while certs.len() < 3 && started.elapsed() < std::time::Duration::from_secs(120) {
        requests += 1;
        if let Err(e) = dry_run(w.cp, &signed) {
            failures.push(e);
        }
        requests += 1;
        match dry_run(w.cp, &unsigned) {
            Err(e) if e.contains("is Unsigned under ImageTrustPolicy rotate") => {}
            other => failures.push(format!("the unsigned image: {other:?}")),
        }
        certs.insert(serving_cert());
    }
    // Two rotations seen, and requests kept going for a few seconds after the last.
    for _ in 0..20 {
        requests += 1;
        if let Err(e) = dry_run(w.cp, &signed) {
            failures.push(e);
        }
    }
    assert!(certs.len() >= 3, "no two rotations within 120 s: {} certificates seen", certs.len());
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed across two rotations:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // What the webhook itself spent per review, warm (an observation, not a timed assertion).
    let m = op.metrics().unwrap();
    let sum = metric_value(&m, "trustwatch_admission_duration_seconds_sum", &[("kind", "Deployment")]).unwrap_or(0.0);
    let count =
        metric_value(&m, "trustwatch_admission_duration_seconds_count", &[("kind", "Deployment")]).unwrap_or(0.0);
    eprintln!(
        "{requests} admission requests across {} serving certificates, none failed; {count} reviews, {:.2} ms each on average",
        certs.len(),
        1000.0 * sum / count.max(1.0)
    );
    op.assert_authorized();
    let _ = w.cp.kubectl(&["delete", "validatingwebhookconfiguration", "trustwatch", "--wait=false"]);
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verification_over_the_budget_is_an_outage_that_on_unavailable_decides() {
    let _turn = WEBHOOK.lock().await;
    let ns = "tw-budget";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    // A Notary server that accepts connections and never answers: a fault no real server
    // produces on demand.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("https://{}", silent.local_addr().unwrap());
    w.apply(&w.trust_root(json!({"server": silent_url})));
    let policy = |on_unavailable: &str| {
        w.policy("budget", json!({"onUnavailable": on_unavailable, "admission": {"mode": "Enforce"}}))
    };
    w.apply(&policy("Fail"));
    let port = free_port();
    w.cp.apply(&webhook_configuration(&format!("https://127.0.0.1:{port}/validate"), &[ns], "Fail")).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let op = w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1", "--webhook-timeout", "1s"]);
    let object = deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1);
    let refused = eventually("the webhook refuses what it cannot verify in time", REACT, || {
        let r = dry_run(w.cp, &object);
        async move {
            match r {
                Err(e) if e.contains("AdmissionBudgetExceeded") => Ok(e),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(
        refused.contains("is TrustDataUnavailable under ImageTrustPolicy budget: AdmissionBudgetExceeded"),
        "{refused}"
    );
    assert!(
        !refused.contains("failed calling webhook"),
        "the webhook answered, within the API server's timeout: {refused}"
    );
    // onUnavailable Ignore: admitted, with the warning.
    w.apply(&policy("Ignore"));
    let warned = eventually("Ignore admits with a warning", REACT, || {
        let r =
            w.cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-", "--warnings-as-errors"], &object.to_string());
        async move {
            match r {
                Err(e) if e.contains("Warning: trustwatch: image") && e.contains("AdmissionBudgetExceeded") => Ok(e),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(warned.contains("is TrustDataUnavailable under ImageTrustPolicy budget"), "{warned}");
    op.assert_authorized();
    drop(silent);
    let _ = w.cp.kubectl(&["delete", "validatingwebhookconfiguration", "trustwatch", "--wait=false"]);
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_webhook_is_accepted_by_the_api_server_and_keeps_the_cluster_from_locking_itself_out() {
    let cp = ControlPlane::shared();
    let file = repo_root().join("config/webhook/webhook.yaml");
    let out = cp.kubectl(&["apply", "--dry-run=server", "-o", "json", "-f", file.to_str().unwrap()]).unwrap();
    let list: Value = serde_json::from_str(&out).unwrap();
    let items = list["items"].as_array().cloned().unwrap_or_else(|| vec![list.clone()]);
    let vwc = items.iter().find(|i| i["kind"] == "ValidatingWebhookConfiguration").expect("a webhook configuration");
    assert_eq!(vwc["metadata"]["name"], "trustwatch", "the name --webhook-configuration and config/rbac expect");
    let hook = &vwc["webhooks"][0];
    assert_eq!((hook["failurePolicy"].as_str(), hook["timeoutSeconds"].as_i64()), (Some("Fail"), Some(10)));
    let excluded = &hook["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(
        (excluded["key"].as_str(), excluded["operator"].as_str()),
        (Some("kubernetes.io/metadata.name"), Some("NotIn"))
    );
    assert_eq!(excluded["values"], json!(["kube-system", "trustwatch-system"]));
    let resources: Vec<&str> = hook["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap().iter().filter_map(Value::as_str))
        .collect();
    for r in ["pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"] {
        assert!(resources.contains(&r), "{r} not in {resources:?}");
    }
    // The mutating webhook (pinDigest): the same name, scope and exclusions; Ignore, always.
    let mwc = items.iter().find(|i| i["kind"] == "MutatingWebhookConfiguration").expect("a mutating configuration");
    assert_eq!(mwc["metadata"]["name"], "trustwatch", "the name --webhook-configuration and config/rbac expect");
    let pin = &mwc["webhooks"][0];
    assert_eq!(
        (pin["failurePolicy"].as_str(), pin["timeoutSeconds"].as_i64(), pin["sideEffects"].as_str()),
        (Some("Ignore"), Some(10), Some("None"))
    );
    assert_eq!(pin["reinvocationPolicy"], "IfNeeded");
    assert_eq!(pin["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!((&pin["namespaceSelector"], &pin["rules"]), (&hook["namespaceSelector"], &hook["rules"]));
    let service = items.iter().find(|i| i["kind"] == "Service").expect("the webhook's Service");
    assert_eq!(service["metadata"]["name"], "trustwatch-webhook", "the name in the serving certificate");
}

#[tokio::test(flavor = "multi_thread")]
async fn notary_v1_and_cosign_under_all_of_admit_a_tag_both_sign_and_agree_with_cosign_verify() {
    use crate::support::oci::Cosign;
    let _turn = WEBHOOK.lock().await;
    let ns = "tw-admit-allof";
    let mut w = World::new(ns).await;
    let cosign = Cosign::new();
    let (key, public) = cosign.generate_key_pair("release");
    // Signed with both formats; with Notary v1 only.
    w.push_signed("shop/both", "v1", "both v1");
    let both = w.registry.resolve("shop/both", "v1").unwrap().digest;
    cosign.sign(&format!("{}@{both}", w.repo("shop/both")), &key, &[], &[]);
    w.push_signed("shop/dct", "v1", "dct v1");
    w.apply(&w.trust_root(json!({})));
    let cosign_root = format!("{ns}-cosign");
    w.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": cosign_root, "labels": {INSTANCE_LABEL: ns}},
        "spec": {"cosign": {"keys": [{"name": "release", "publicKey": public}]}, "registry": {"plainHTTP": true}}}));
    let rule =
        json!([{"pattern": format!("{}/**", w.registry.host()), "trustRoots": [ns, cosign_root], "require": "AllOf"}]);
    w.apply(&w.policy("admit-allof", json!({"images": rule, "admission": {"mode": "Enforce"}})));
    let port = free_port();
    w.cp.apply(&webhook_configuration(&format!("https://127.0.0.1:{port}/validate"), &[ns], "Fail")).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let op = w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1"]);

    // By tag: Notary v1 resolves it from its signed targets, cosign through the registry.
    let both_tag = format!("{}:v1", w.repo("shop/both"));
    eventually("a tag both formats sign is admitted", REACT, || {
        let r = dry_run(w.cp, &deployment(ns, "both", &both_tag, 1));
        async move { r }
    })
    .await;
    let dct_tag = format!("{}:v1", w.repo("shop/dct"));
    let err =
        dry_run(w.cp, &deployment(ns, "dct", &dct_tag, 1)).expect_err("AllOf admitted an image cosign never signed");
    assert!(
        err.contains(&format!("trustwatch: image {dct_tag} (sha256:"))
            && err.contains("is Unsigned under ImageTrustPolicy admit-allof"),
        "{err}"
    );
    // The reference client agrees on both.
    assert!(cosign.verify(&both_tag, &public, &[], &[]).ok, "cosign verify refuses what trustwatch admitted");
    assert!(!cosign.verify(&dct_tag, &public, &[], &[]).ok, "cosign verify accepts what trustwatch refused");
    op.assert_authorized();
    let _ = w.cp.kubectl(&["delete", "validatingwebhookconfiguration", "trustwatch", "--wait=false"]);
    w.cleanup().await;
}

/// The mutating webhook's configuration of the test (the operator's name for it, so that its
/// RBAC lets it patch the caBundle): `/mutate` at `url`, for `namespaces` only. failurePolicy
/// Fail here, unlike config/webhook's Ignore, so that an answer the API server cannot apply
/// fails the test rather than storing the tag silently.
fn mutating_configuration(url: &str, namespaces: &[&str]) -> Value {
    let mut c = webhook_configuration(url, namespaces, "Fail");
    c["kind"] = json!("MutatingWebhookConfiguration");
    c["webhooks"][0]["name"] = json!("pin.images.trustwatch.dev");
    c["webhooks"][0]["reinvocationPolicy"] = json!("IfNeeded");
    c
}

/// A kubelet that pulls what the image names: its digest when it has one (a real kubelet does
/// not look at the tag then), else what the tag points at now.
fn pulling_kubelet(w: &World, ns: &str) -> Kubelet {
    let registry = w.registry.clone();
    let host = registry.host();
    let resolver: Resolver = Arc::new(move |image: &str| {
        let rest = image.strip_prefix(&format!("{host}/"))?;
        let (name, digest) = match rest.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (rest, None),
        };
        let (repo, tag) = name.split_once(':').unwrap_or((name, "latest"));
        let digest = match digest {
            Some(d) => d.to_string(),
            None => registry.resolve(repo, tag)?.digest,
        };
        Some(format!("{host}/{repo}@{digest}"))
    });
    Kubelet::start(w.client.clone(), vec![ns.to_string()], resolver)
}

/// `kubectl create --dry-run=server -o json`: the object as the API server would store it,
/// after the mutating webhooks, or the refusal.
fn as_stored(cp: &ControlPlane, object: &Value) -> Result<Value, String> {
    let out = cp.kubectl_stdin(&["create", "--dry-run=server", "-o", "json", "-f", "-"], &object.to_string())?;
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn pin_digest_stores_the_verified_digest_that_the_pod_then_runs_and_pins_nothing_untrusted() {
    use crate::support::oci::Cosign;
    let _turn = WEBHOOK.lock().await;
    let ns = "tw-pin";
    let mut w = World::new(ns).await;
    let signed = w.push_signed("shop/web", "v1", "web v1");
    // Under cosign, an unsigned tag's answer names the digest the tag points at (Notary v1's
    // names none): only the trust check keeps it from being pinned.
    let cosign = Cosign::new();
    let (_key, public) = cosign.generate_key_pair("release");
    let loose = w.push("shop/loose", "v1", "loose v1, never signed");
    w.apply(&w.trust_root(json!({})));
    let cosign_root = format!("{ns}-cosign");
    w.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": cosign_root, "labels": {INSTANCE_LABEL: ns}},
        "spec": {"cosign": {"keys": [{"name": "release", "publicKey": public}]}, "registry": {"plainHTTP": true}}}));
    let host = w.registry.host();
    let rules = json!([
        {"pattern": format!("{host}/**"), "trustRoot": ns},
        {"pattern": format!("{host}/shop/loose"), "trustRoot": cosign_root},
    ]);
    let policy = |mode: &str, pin: bool| {
        w.policy("pin", json!({"images": rules, "admission": {"mode": mode, "pinDigest": pin}}))
    };
    w.apply(&policy("Enforce", true));
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    w.cp.apply(&webhook_configuration(&format!("{base}/validate"), &[ns], "Fail")).unwrap();
    w.cp.apply(&mutating_configuration(&format!("{base}/mutate"), &[ns])).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let op = w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1"]);
    let web = w.repo("shop/web");
    let pinned = format!("{web}:v1@{}", signed.digest);
    let image_of = |o: &Value, pointer: &str| o.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_string();

    // A Pod by tag is stored by the digest the trust root verified.
    let pod = bare_pod(ns, "web", &format!("{web}:v1"));
    eventually("the mutating webhook pins a signed tag", REACT, || {
        let r = as_stored(w.cp, &pod).map(|o| image_of(&o, "/spec/containers/0/image"));
        let want = pinned.clone();
        async move { if r.as_ref() == Ok(&want) { Ok(()) } else { Err(format!("{r:?}")) } }
    })
    .await;
    w.cp.kubectl_stdin(&["create", "-f", "-"], &pod.to_string()).unwrap();
    let stored = w.cp.kubectl(&["get", "pod", "-n", ns, "web", "-o", "jsonpath={.spec.containers[0].image}"]).unwrap();
    assert_eq!(stored, pinned);
    let mwc = w.cp.kubectl(&["get", "mutatingwebhookconfiguration", "trustwatch", "-o", "json"]).unwrap();
    let mwc: Value = serde_json::from_str(&mwc).unwrap();
    assert!(mwc["webhooks"][0]["clientConfig"]["caBundle"].as_str().is_some_and(|b| !b.is_empty()), "{mwc}");

    // A Deployment's pod template is pinned too.
    let (ok, _, err) = kubectl_apply(w.cp, &deployment(ns, "web", &format!("{web}:v1"), 0));
    assert!(ok, "{err}");
    let template = w
        .cp
        .kubectl(&["get", "deployment", "-n", ns, "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"])
        .unwrap();
    assert_eq!(template, pinned);

    // The tag is pushed over (unsigned) before the pod starts: the pinned pod still runs,
    // and is reported to run, the digest that was verified.
    w.push("shop/web", "v1", "web v1, pushed over and never signed");
    let _kubelet = pulling_kubelet(&w, ns);
    let c = eventually("the report names the digest the pinned pod runs", REACT, || async {
        let r = w.report_verdict(ns, "pod-web-pin", "Verified").await;
        let c = r.status.as_ref().and_then(|s| s.containers.first().cloned()).ok_or("no container")?;
        if c.running_digest.is_some() { Ok(c) } else { Err(format!("{c:?}")) }
    })
    .await;
    assert_eq!((c.image.as_str(), c.running_digest.as_deref()), (pinned.as_str(), Some(signed.digest.as_str())));
    assert_eq!(c.verdict.to_string(), "Verified");

    // An unsigned tag is not pinned: the validating webhook refuses it, by tag, under Enforce...
    let loose_repo = w.repo("shop/loose");
    let (ok, _, err) = kubectl_apply(w.cp, &bare_pod(ns, "loose", &format!("{loose_repo}:v1")));
    assert!(!ok, "an unsigned image was admitted under Enforce");
    let short = &loose.digest[..19];
    assert!(
        err.contains(&format!("trustwatch: image {loose_repo}:v1 ({short}…) is Unsigned under ImageTrustPolicy pin")),
        "the refused image was not the tag as written: {err}"
    );
    // ...and Warn admits it as written.
    w.apply(&policy("Warn", true));
    let stored = eventually("Warn admits the unsigned tag", REACT, || {
        let r = as_stored(w.cp, &bare_pod(ns, "loose", &format!("{loose_repo}:v1")));
        async move { r.map(|o| image_of(&o, "/spec/containers/0/image")) }
    })
    .await;
    assert_eq!(stored, format!("{loose_repo}:v1"), "an unsigned tag was pinned");

    // Without pinDigest nothing is mutated: the pod runs what the tag points at now, which the
    // scan then reports as drift from the signed digest.
    w.apply(&policy("Enforce", false));
    let plain = bare_pod(ns, "plain", &format!("{web}:v1"));
    eventually("a policy without pinDigest mutates nothing", REACT, || {
        let r = as_stored(w.cp, &plain).map(|o| image_of(&o, "/spec/containers/0/image"));
        let want = format!("{web}:v1");
        async move { if r.as_ref() == Ok(&want) { Ok(()) } else { Err(format!("{r:?}")) } }
    })
    .await;
    w.cp.kubectl_stdin(&["create", "-f", "-"], &plain.to_string()).unwrap();
    let stored =
        w.cp.kubectl(&["get", "pod", "-n", ns, "plain", "-o", "jsonpath={.spec.containers[0].image}"]).unwrap();
    assert_eq!(stored, format!("{web}:v1"));
    w.report_verdict(ns, "pod-plain-pin", "DigestDrift").await;

    let m = op.metrics().unwrap();
    let pinned_reviews =
        metric_value(&m, "trustwatch_admission_requests_total", &[("kind", "Pod"), ("effect", "pinned")]);
    assert!(pinned_reviews.is_some_and(|v| v >= 1.0), "{m}");
    op.assert_authorized();
    let _ = w.cp.kubectl(&["delete", "mutatingwebhookconfiguration,validatingwebhookconfiguration", "trustwatch"]);
    w.cleanup().await;
}

/// `/readyz` with `--webhook-addr`: 503 until the webhook listens, so that the webhook's
/// Service sends the API server's calls only to replicas that answer them. The certificate
/// comes from `--webhook-cert-dir` (as with cert-manager); until its files appear the webhook
/// cannot serve, and once they do it serves them, writing no Secret and patching no caBundle.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_waits_for_the_webhook_which_serves_a_cert_dir_once_its_files_appear() {
    use trustwatch::admission::certs::{DEFAULT_VALIDITY, generate};
    let ns = "tw-readyz";
    let w = World::new(ns).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let op = w.operator_with(&["--webhook-addr", &addr, "--webhook-cert-dir", dir.path().to_str().unwrap()]);
    eventually("the caches sync", REACT, || {
        let logs = op.logs();
        async move { if logs.contains("caches synced") { Ok(()) } else { Err(logs) } }
    })
    .await;
    assert!(op.metrics().is_ok(), "the admin server answers");
    assert!(!op.ready(), "ready while the webhook cannot serve:\n{}", op.logs());

    let m = generate(&["127.0.0.1".to_string()], DEFAULT_VALIDITY, jiff::Timestamp::now(), None).unwrap();
    std::fs::write(dir.path().join("tls.key"), &m.key).unwrap();
    std::fs::write(dir.path().join("tls.crt"), &m.cert).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &m.ca_bundle).unwrap();
    eventually("ready once the webhook serves", REACT, || {
        let ready = op.ready();
        async move { if ready { Ok(()) } else { Err("not ready".to_string()) } }
    })
    .await;
    // The files' certificate is what it serves (curl verifies it under their CA).
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert", ca.to_str().unwrap(), "-X", "POST"])
        .args(["-H", "content-type: application/json", "-d", "{}", &format!("https://{addr}/validate")])
        .output()
        .unwrap();
    assert!(out.status.success(), "TLS under the files' CA: {}", String::from_utf8_lossy(&out.stderr));
    let logs = op.logs();
    assert!(!logs.contains("webhook serving certificate written"), "a Secret was written:\n{logs}");
    assert!(!logs.contains("caBundle patched"), "a caBundle was patched:\n{logs}");
    op.assert_authorized();
    w.cleanup().await;
}
