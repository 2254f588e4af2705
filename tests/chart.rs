//! The Helm chart (`charts/trustwatch`), with the real `helm` CLI built from its Go module
//! (`hack/go-tools.sh`, helm.sh/helm/v4) and a control plane of its own on which nothing of
//! trustwatch is installed but what helm installs:
//!
//! - `helm lint --strict` with the default values and with every option on;
//! - `webhook.certManager.enabled` renders a Certificate the API server accepts with
//!   cert-manager's published CRDs, and hands the operator its Secret (--webhook-cert-dir);
//! - values.schema.json refuses a wrong value at `helm template` / `helm upgrade`;
//! - the chart and the kustomize install (`config/`) yield the same objects;
//! - the rendered chart, every option on, is accepted by the real API server (server-side
//!   dry run, with the Prometheus Operator's published CRDs);
//! - `helm install`, `helm upgrade` and `helm uninstall` with the operator running under the
//!   chart's RBAC alone, the API server calling its webhook through the chart's Service.
//!
//! The files the chart copies (the CRDs, the alert rules) are checked here too;
//! `TRUSTWATCH_UPDATE_CHART=1` rewrites them (`make manifests` does).

#[path = "cluster/harness.rs"]
mod harness;
#[path = "support/host.rs"]
mod host;

use harness::{ControlPlane, INSTANCE_LABEL, Kubelet, Operator, OperatorConfig, Resolver, eventually, repo_root};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const NAMESPACE: &str = "trustwatch-system";
const REACT: Duration = Duration::from_secs(60);

/// The chart's values that make it render what `config/` holds with every option on.
const ALL_OPTIONS: &[&str] = &[
    "--set",
    "podPullSecrets.enabled=true",
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
];

fn chart() -> PathBuf {
    repo_root().join("charts/trustwatch")
}

/// The helm binary (built on first use).
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| harness::go_tool("helm-bin", "helm"))
}

/// `helm ARGS` against `kubeconfig` (or none, for lint and template).
fn helm(kubeconfig: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(helm_bin());
    // helm's own state (repositories, cache, plugins) in a throwaway home.
    cmd.env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env_remove("KUBECONFIG")
        .args(args);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().map_err(|e| format!("cannot run helm: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("helm {}: {}{stdout}", args.join(" "), String::from_utf8_lossy(&out.stderr)))
    }
}

fn template(extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "trustwatch", chart.to_str().unwrap(), "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    helm(None, &args).unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap_or_else(|e| panic!("not YAML: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// What helm adds to an object that kustomize does not: its own labels and the keep policy
/// of the CRDs.
fn without_helm_metadata(mut object: Value) -> Value {
    let meta = &mut object["metadata"];
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        for l in
            ["helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"]
        {
            labels.remove(l);
        }
        if labels.is_empty() {
            meta.as_object_mut().unwrap().remove("labels");
        }
    }
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove("helm.sh/resource-policy");
        if annotations.is_empty() {
            meta.as_object_mut().unwrap().remove("annotations");
        }
    }
    object
}

fn by_identity(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|o| {
            let key = format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, o)
        })
        .collect()
}

/// `kubectl kustomize` of a kustomization over `resources` and `components` (paths relative
/// to the repository). kustomize refuses absolute roots, so it is written under target/.
fn kustomize(kubectl: &Path, resources: &[&str], components: &[&str]) -> String {
    let base = repo_root().join("target");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new().prefix("chart-kustomize-").tempdir_in(&base).unwrap();
    let list = |items: &[&str]| items.iter().map(|p| format!("  - ../../{p}\n")).collect::<String>();
    let mut text =
        format!("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}", list(resources));
    if !components.is_empty() {
        text.push_str(&format!("components:\n{}", list(components)));
    }
    std::fs::write(dir.path().join("kustomization.yaml"), text).unwrap();
    let out = Command::new(kubectl).arg("kustomize").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// kubectl from the control plane's build (`hack/control-plane.sh bin` prints the Kubernetes
/// directory first).
fn kubectl_bin() -> PathBuf {
    let kubectl = harness::hack_dir("control-plane.sh", "bin").join("kubectl");
    assert!(kubectl.exists(), "{} is missing: build it with `bash hack/control-plane.sh build`", kubectl.display());
    kubectl
}

fn assert_same_objects(chart: &str, kustomize: &str) {
    // kustomize creates the namespace; helm does not template it (`helm install
    // --create-namespace`, or a namespace the cluster's owner made), so it is left out.
    let from_kustomize: Vec<Value> = documents(kustomize).into_iter().filter(|o| o["kind"] != "Namespace").collect();
    let from_chart = by_identity(documents(chart).into_iter().map(without_helm_metadata).collect());
    let from_kustomize = by_identity(from_kustomize);
    let only = |a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>| {
        a.keys().filter(|k| !b.contains_key(*k)).cloned().collect::<Vec<_>>()
    };
    assert!(
        from_chart.keys().eq(from_kustomize.keys()),
        "only in the chart: {:?}; only in config/: {:?}",
        only(&from_chart, &from_kustomize),
        only(&from_kustomize, &from_chart)
    );
    for (key, object) in &from_chart {
        if let Some(at) = first_difference(object, &from_kustomize[key], String::new()) {
            panic!("{key} differs between the chart and config/: {at}");
        }
    }
}

/// Where two JSON values first differ, as `path: chart value != config/ value`.
fn first_difference(chart: &Value, kustomize: &Value, path: String) -> Option<String> {
    match (chart, kustomize) {
        (Value::Object(a), Value::Object(b)) => a.keys().chain(b.keys()).find_map(|k| match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) => first_difference(x, y, format!("{path}/{k}")),
            (x, y) => Some(format!("{path}/{k}: {x:?} != {y:?}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| first_difference(x, y, format!("{path}/{i}")))
        }
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: {a} != {b}")),
    }
}

/// The files the chart carries as copies: the generated CRDs and the alert rules.
#[test]
fn the_chart_carries_the_current_crds_and_alert_rules() {
    let root = repo_root();
    let mut copies: Vec<(PathBuf, PathBuf)> =
        vec![(root.join("dashboards/alerts/trustwatch.rules.yaml"), chart().join("files/trustwatch.rules.yaml"))];
    for entry in std::fs::read_dir(root.join("crds")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("trustwatch.dev_") {
            copies.push((path, chart().join("files/crds").join(name)));
        }
    }
    assert_eq!(copies.len(), 4, "three CRDs and the rules: {copies:?}");
    let update = std::env::var("TRUSTWATCH_UPDATE_CHART").as_deref() == Ok("1");
    for (source, copy) in copies {
        let want = std::fs::read(&source).unwrap();
        if update {
            std::fs::write(&copy, &want).unwrap();
        }
        assert!(
            std::fs::read(&copy).ok().as_deref() == Some(&want[..]),
            "{} is not a copy of {}: run `make manifests`",
            copy.display(),
            source.display()
        );
    }
}

#[test]
fn helm_lint_passes_with_the_defaults_and_with_every_option() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    helm(None, &["lint", "--strict", chart]).unwrap();
    let mut args = vec!["lint", "--strict", chart];
    args.extend_from_slice(ALL_OPTIONS);
    helm(None, &args).unwrap();
    for issuer in [&[][..], &["--set", "webhook.certManager.issuerRef.name=corp-ca"][..]] {
        let mut args = vec!["lint", "--strict", chart, "--set", "webhook.certManager.enabled=true"];
        args.extend_from_slice(issuer);
        helm(None, &args).unwrap();
    }
}

#[test]
fn a_wrong_value_fails_at_install_time_and_names_it() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for (value, expected) in [
        ("replicas=two", "/replicas"),
        ("replica=2", "additional properties 'replica' not allowed"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("metrics.serviceMonitor.interval=soon", "/metrics/serviceMonitor/interval"),
        ("operator.logFormat=xml", "/operator/logFormat"),
        ("policyReports=wgpolicy", "/policyReports"),
        ("webhook.failurePolicy=Never", "/webhook/failurePolicy"),
        ("webhook.verificationBudget=soon", "/webhook/verificationBudget"),
        ("webhook.certManager.enabled=yes", "/webhook/certManager/enabled"),
        ("webhook.certManager.issuerRef.kind=Issuer", "/webhook/certManager/issuerRef"),
        ("webhook.certManager.issuerRef.kind=Vault", "/webhook/certManager/issuerRef/kind"),
    ] {
        let err = helm(None, &["template", "trustwatch", chart, "--set", value]).unwrap_err();
        assert!(err.contains("schema") && err.contains(expected), "--set {value}: {err}");
    }
}

#[test]
fn the_policy_reports_value_passes_its_group_to_the_operator() {
    let args = |rendered: &str| -> Vec<String> {
        let d = documents(rendered).into_iter().find(|o| o["kind"] == "Deployment").expect("a Deployment");
        serde_json::from_value(d["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap()
    };
    assert!(!args(&template(&[])).iter().any(|a| a == "--policy-reports"));
    let with = args(&template(&["--set", "policyReports=openreports.io"]));
    let at = with.iter().position(|a| a == "--policy-reports").expect("--policy-reports is passed");
    assert_eq!(with[at + 1], "openreports.io");
}

#[test]
fn the_chart_and_the_kustomize_install_yield_the_same_objects() {
    let kubectl = kubectl_bin();
    // The kustomize image is ghcr.io/trustwatch/trustwatch:latest; the chart's tag defaults
    // to its appVersion.
    // The chart serves the webhook by default, with failurePolicy Ignore; config/webhook is
    // an opt-in component with Fail.
    assert_same_objects(
        &template(&["--set", "image.tag=latest", "--set", "webhook.enabled=false"]),
        &kustomize(&kubectl, &["config/default"], &[]),
    );
    assert_same_objects(
        &template(&["--set", "image.tag=latest", "--set", "webhook.failurePolicy=Fail"]),
        &kustomize(&kubectl, &["config/default"], &["config/webhook"]),
    );
    let mut all = vec!["--set", "image.tag=latest", "--set", "webhook.failurePolicy=Fail"];
    all.extend_from_slice(ALL_OPTIONS);
    assert_same_objects(
        &template(&all),
        &kustomize(
            &kubectl,
            &["config/default", "config/prometheus"],
            &["config/components/pod-pull-secrets", "config/webhook"],
        ),
    );
    let default = documents(&template(&[]));
    let webhook = default.iter().find(|o| o["kind"] == "ValidatingWebhookConfiguration").expect("the webhook is on");
    assert_eq!(webhook["webhooks"][0]["failurePolicy"], "Ignore", "an install never blocks pods by default");
}

#[test]
fn the_rendered_chart_with_every_option_is_accepted_by_the_api_server() {
    let cp = ControlPlane::bare();
    install_published_crds(cp, "monitoring-crds", "monitoring.coreos.com", &["servicemonitors", "prometheusrules"]);
    let namespace = "chart-dry-run";
    cp.kubectl(&["create", "namespace", namespace]).unwrap();
    let chart = chart();
    let mut args = vec!["template", "trustwatch", chart.to_str().unwrap(), "--namespace", namespace];
    args.extend_from_slice(ALL_OPTIONS);
    let rendered = helm(None, &args).unwrap();
    let kinds: Vec<String> =
        documents(&rendered).iter().map(|o| o["kind"].as_str().unwrap_or_default().to_string()).collect();
    for kind in [
        "CustomResourceDefinition",
        "Deployment",
        "ServiceMonitor",
        "PrometheusRule",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "the render has no {kind}: {kinds:?}");
    }
    // The server checks what a client would not: a ServiceMonitor with a wrong field is refused.
    assert_server_accepts(cp, &rendered, kinds.len(), ("scrapeTimeout: 10s", "scrapeTimeout: [10s]"), "scrapeTimeout");
}

/// The CRDs `GROUP_PLURAL.yaml` that `hack/go-tools.sh WHAT` copied from their project's Go
/// module, applied and established.
fn install_published_crds(cp: &ControlPlane, what: &str, group: &str, plurals: &[&str]) {
    for crd in plurals {
        let file = harness::go_tool(what, &format!("{group}_{crd}.yaml"));
        cp.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]).unwrap();
        // Right after the apply the CRD may not be readable yet (NotFound): wait again.
        let wait =
            || cp.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{crd}.{group}")]);
        let first = wait();
        if let Err(e) = first {
            std::thread::sleep(Duration::from_secs(1));
            wait().unwrap_or_else(|again| panic!("crd/{crd}.{group} not established: {e}; then: {again}"));
        }
    }
}

/// The API server accepts all `count` objects of `rendered` (server-side dry run), and refuses
/// them with `broken` (from, to) replaced, naming `field`: the CRDs' schemas are really checked.
fn assert_server_accepts(cp: &ControlPlane, rendered: &str, count: usize, broken: (&str, &str), field: &str) {
    let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], rendered).unwrap();
    assert_eq!(out.lines().count(), count, "every object passes the server's checks:\n{out}");
    let wrong = rendered.replace(broken.0, broken.1);
    assert!(wrong != rendered, "{} is not in the render", broken.0);
    let err = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &wrong).unwrap_err();
    assert!(err.contains(field), "{err}");
}

/// webhook.certManager.enabled: a cert-manager Issuer and Certificate for the names the
/// operator's own certificate carries, the CA injected into both webhook configurations, and
/// the Secret handed to the operator as --webhook-cert-dir. Accepted by the real API server
/// with cert-manager's published CRDs (copied from its Go module, hack/go-tools.sh).
#[test]
fn the_cert_manager_option_renders_what_the_api_server_accepts_and_hands_the_operator_its_files() {
    let cp = ControlPlane::bare();
    install_published_crds(cp, "cert-manager-crds", "cert-manager.io", &["issuers", "certificates"]);
    let namespace = "chart-cert-manager";
    cp.kubectl(&["create", "namespace", namespace]).unwrap();
    let chart = chart();
    let render = |extra: &[&str]| {
        let mut args = vec!["template", "trustwatch", chart.to_str().unwrap(), "--namespace", namespace];
        args.extend_from_slice(&["--set", "webhook.certManager.enabled=true"]);
        args.extend_from_slice(extra);
        helm(None, &args).unwrap()
    };
    let rendered = render(&[]);
    let objects = documents(&rendered);
    let find = |kind: &str| objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
    let certificate = find("Certificate");
    let names = trustwatch::admission::certs::serving_names("trustwatch-webhook", namespace, &[]);
    assert_eq!(certificate["spec"]["dnsNames"], json!(names), "the names the operator's own certificate has");
    assert_eq!(
        certificate["spec"]["issuerRef"],
        json!({"name": "trustwatch-webhook", "kind": "Issuer", "group": "cert-manager.io"})
    );
    assert_eq!(find("Issuer")["spec"], json!({"selfSigned": {}}));
    let secret = certificate["spec"]["secretName"].as_str().unwrap();
    assert_ne!(secret, trustwatch::admission::certs::DEFAULT_SECRET, "not the Secret the operator writes");
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        let inject = &find(kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
        assert_eq!(inject, &json!(format!("{namespace}/trustwatch-webhook")), "{kind}");
    }
    let pod = &find("Deployment")["spec"]["template"]["spec"];
    let args: Vec<String> = serde_json::from_value(pod["containers"][0]["args"].clone()).unwrap();
    let dir = args.iter().find_map(|a| a.strip_prefix("--webhook-cert-dir=")).expect("--webhook-cert-dir");
    let mount = pod["containers"][0]["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == dir);
    let mount = mount.expect("the directory is mounted");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert_eq!(volume["secret"]["secretName"], secret);
    // The server checks the Certificate against cert-manager's schema: a wrong field is refused.
    let broken = ("rotationPolicy: Always", "rotationPolicy: Sometimes");
    assert_server_accepts(cp, &rendered, objects.len(), broken, "rotationPolicy");

    // An issuer of the user's: no Issuer of the chart's, the Certificate refers to it.
    let rendered = render(&[
        "--set",
        "webhook.certManager.issuerRef.name=corp-ca",
        "--set",
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
    ]);
    let objects = documents(&rendered);
    assert!(!objects.iter().any(|o| o["kind"] == "Issuer"));
    let certificate = objects.iter().find(|o| o["kind"] == "Certificate").unwrap();
    assert_eq!(certificate["spec"]["issuerRef"], json!({"name": "corp-ca", "kind": "ClusterIssuer"}));
    cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered).unwrap();
    // Off (the default): none of it.
    let default = documents(&template(&[]));
    assert!(!default.iter().any(|o| o["kind"] == "Certificate" || o["kind"] == "Issuer"));
    assert!(!default.iter().any(|o| o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_string()));
}

/// A P-256 public key (PEM), made by openssl.
fn public_key() -> String {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let ok = Command::new("openssl")
        .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new("openssl").args(["ec", "-pubout", "-in"]).arg(&key).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Plays scheduler and kubelet for the chart's operator pods: bound to the Node, running at
/// `ip` (where the operator of the test listens), Ready or not.
async fn play_operator_pods(client: &kube::Client, ip: &str, ready: bool) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, Patch, PatchParams};
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let selector =
        ListParams::default().labels("app.kubernetes.io/name=trustwatch,app.kubernetes.io/component=controller");
    let status = if ready { "True" } else { "False" };
    for pod in pods.list(&selector).await.unwrap() {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
            harness::bind_pod(client, NAMESPACE, &name).await;
        }
        let at = "2026-01-01T00:00:00Z";
        let cond = |t: &str| json!({"type": t, "status": status, "lastTransitionTime": at});
        let patch = json!({"status": {
            "phase": "Running", "hostIP": ip, "podIP": ip, "podIPs": [{"ip": ip}], "startTime": at,
            "conditions": [cond("Initialized"), cond("ContainersReady"), cond("Ready")],
            "containerStatuses": [{"name": "manager", "image": "ghcr.io/trustwatch/trustwatch:0.1.0", "imageID": "",
                "ready": ready, "started": true, "restartCount": 0, "state": {"running": {"startedAt": at}}}],
        }});
        if let Err(e) = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            eprintln!("kubelet: status {NAMESPACE}/{name}: {e}");
        }
    }
}

/// The addresses of the chart webhook Service's ready endpoints, as kube-controller-manager's
/// EndpointSlice controller published them.
fn ready_endpoints(cp: &ControlPlane) -> Vec<String> {
    let out = cp
        .kubectl(&[
            "get",
            "endpointslices",
            "-n",
            NAMESPACE,
            "-l",
            "kubernetes.io/service-name=trustwatch-webhook",
            "-o",
            "json",
        ])
        .unwrap_or_default();
    let list: Value = serde_json::from_str(&out).unwrap_or_default();
    let mut found = vec![];
    for slice in list["items"].as_array().into_iter().flatten() {
        for e in slice["endpoints"].as_array().into_iter().flatten() {
            if e["conditions"]["ready"] == true {
                found.extend(
                    e["addresses"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(String::from)),
                );
            }
        }
    }
    found
}

fn can_i(cp: &ControlPlane, verb: &str, resource: &str, namespace: &str) -> bool {
    let sa = format!("system:serviceaccount:{NAMESPACE}:trustwatch");
    // `kubectl auth can-i` exits 1 for "no".
    cp.kubectl(&["auth", "can-i", verb, resource, "-n", namespace, "--as", &sa]).is_ok_and(|o| o.trim() == "yes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_and_uninstall_with_the_operator_running_under_the_charts_rbac() {
    let cp = ControlPlane::bare();
    let kubeconfig = cp.kubeconfig.as_path();
    let chart = chart();
    let chart = chart.to_str().unwrap();

    // install
    // The webhook's port: the operator below listens on it at this host's address, where the
    // chart's Service sends the API server.
    let webhook_port = harness::free_port();
    let port_value = format!("webhook.port={webhook_port}");
    let out = helm(
        Some(kubeconfig),
        &["install", "trustwatch", chart, "--namespace", NAMESPACE, "--create-namespace", "--set", &port_value],
    )
    .unwrap();
    assert!(out.contains("STATUS: deployed"), "{out}");
    for crd in ["trustroots", "imagetrustpolicies", "imagetrustreports"] {
        cp.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{crd}.trustwatch.dev")])
            .unwrap();
    }
    let deployment: Value =
        serde_json::from_str(&cp.kubectl(&["get", "deployment", "trustwatch", "-n", NAMESPACE, "-o", "json"]).unwrap())
            .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "ghcr.io/trustwatch/trustwatch:0.1.0");

    // The operator's main job, authorized by nothing but the chart's RBAC: the pods of a
    // namespace a policy selects are verified and reported per workload.
    let instance = "chart";
    let app_ns = "chart-app";
    let client = cp.admin().await;
    harness::create_namespace(&client, app_ns, &[(INSTANCE_LABEL, instance)]).await;
    let labels = json!({INSTANCE_LABEL: instance});
    cp.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": "chart-cosign", "labels": labels},
        "spec": {"cosign": {"keys": [{"name": "release", "publicKey": public_key()}]}, "registry": {"plainHTTP": true}}}))
    .unwrap();
    cp.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy",
        "metadata": {"name": "chart-policy", "labels": labels},
        "spec": {"namespaceSelector": {"matchLabels": {INSTANCE_LABEL: instance}},
                 "images": [{"pattern": "127.0.0.1:1/**", "trustRoot": "chart-cosign"}], "interval": "10s"}}))
        .unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let running = format!("127.0.0.1:1/app@{digest}");
    let resolver: Resolver = Arc::new(move |_image: &str| Some(running.clone()));
    let _kubelet = Kubelet::start(client.clone(), vec![app_ns.to_string()], resolver);
    cp.apply(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": app_ns},
        "spec": {"containers": [{"name": "app", "image": "127.0.0.1:1/app:v1"}]}}))
        .unwrap();
    // The operator serves the webhook, as the chart's Deployment has it: it makes its
    // certificate and patches the caBundle of the chart's webhook configuration, with the
    // chart's RBAC.
    let mut config = OperatorConfig::new(instance);
    let host = host::non_loopback_ip();
    config.extra_args = vec!["--webhook-addr".into(), format!("{host}:{webhook_port}")];
    let operator = Operator::start(cp, &config);
    let report = eventually("the operator reports the pod under the chart's RBAC", REACT, || async {
        let out = cp.kubectl(&["get", "imagetrustreports", "-n", app_ns, "-o", "json"])?;
        let list: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        let item = list["items"].get(0).cloned().ok_or_else(|| out.clone())?;
        if item["status"]["containers"].as_array().is_some_and(|c| !c.is_empty()) {
            Ok(item)
        } else {
            Err(item.to_string())
        }
    })
    .await;
    // No registry listens on 127.0.0.1:1: an outage, never a verdict against the image.
    assert!(report.to_string().contains("TrustDataUnavailable"), "{report}");
    eventually("the policy status is written", REACT, || async {
        let out = cp.kubectl(&["get", "imagetrustpolicy", "chart-policy", "-o", "json"])?;
        let p: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        if p["status"]["observedGeneration"].is_number() { Ok(()) } else { Err(out) }
    })
    .await;
    eventually("the operator patches the caBundle of the chart's webhook", REACT, || async {
        let ca = cp.kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            "trustwatch",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])?;
        if ca.is_empty() { Err("no caBundle yet".to_string()) } else { Ok(()) }
    })
    .await;
    cp.kubectl(&["get", "secret", "trustwatch-webhook-tls", "-n", NAMESPACE]).unwrap();

    // The API server calls the webhook through the chart's Service, at the endpoint of a ready
    // operator pod (the test plays kubelet for the chart's pods: at this host's address, Ready
    // as the operator's /readyz says). An outage under Enforce and onUnavailable Fail is
    // refused, so the refusal can only come from the webhook.
    eventually("the chart's Service has a ready endpoint", REACT, || async {
        play_operator_pods(&client, &host, operator.ready()).await;
        let ready = ready_endpoints(cp);
        if ready.contains(&host) { Ok(()) } else { Err(format!("ready endpoints: {ready:?}")) }
    })
    .await;
    cp.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy",
        "metadata": {"name": "chart-policy", "labels": labels},
        "spec": {"namespaceSelector": {"matchLabels": {INSTANCE_LABEL: instance}},
                 "images": [{"pattern": "127.0.0.1:1/**", "trustRoot": "chart-cosign"}], "interval": "10s",
                 "admission": {"mode": "Enforce"}, "onUnavailable": "Fail"}}))
        .unwrap();
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": app_ns},
            "spec": {"containers": [{"name": "app", "image": "127.0.0.1:1/app:v2"}]}})
    };
    let refused = eventually("the webhook refuses through the Service", REACT, || async {
        match cp.apply(&pod("through-service")) {
            Ok(out) => {
                let _ = cp.kubectl(&["delete", "pod", "-n", app_ns, "through-service", "--wait=false"]);
                Err(format!("admitted: {out}"))
            }
            Err(e) if e.contains("trustwatch: image") => Ok(e),
            Err(e) => Err(e),
        }
    })
    .await;
    assert!(
        refused.contains(
            "trustwatch: image 127.0.0.1:1/app:v2 is TrustDataUnavailable under ImageTrustPolicy chart-policy"
        ),
        "{refused}"
    );
    // Unready pods leave the Service without an endpoint: the chart's failurePolicy (Ignore)
    // admits.
    eventually("no ready endpoint once the pods are unready", REACT, || async {
        play_operator_pods(&client, &host, false).await;
        let ready = ready_endpoints(cp);
        if ready.is_empty() { Ok(()) } else { Err(format!("ready endpoints: {ready:?}")) }
    })
    .await;
    eventually("failurePolicy Ignore admits without an endpoint", REACT, || async {
        cp.apply(&pod("no-endpoint")).map_err(|e| e.to_string())
    })
    .await;
    let _ = cp.kubectl(&["delete", "pod", "-n", app_ns, "no-endpoint", "--wait=false"]);
    operator.assert_authorized();
    assert!(
        !can_i(cp, "get", "secrets", "default"),
        "without podPullSecrets, no Secret outside the operator's namespace"
    );

    // upgrade: a changed value reaches the objects; an option adds its RBAC.
    let out = helm(
        Some(kubeconfig),
        &[
            "upgrade",
            "trustwatch",
            chart,
            "--namespace",
            NAMESPACE,
            "--set",
            "replicas=3",
            "--set",
            "podPullSecrets.enabled=true",
        ],
    )
    .unwrap();
    assert!(out.contains("REVISION: 2"), "{out}");
    assert_eq!(
        cp.kubectl(&["get", "deployment", "trustwatch", "-n", NAMESPACE, "-o", "jsonpath={.spec.replicas}"]).unwrap(),
        "3"
    );
    assert!(can_i(cp, "get", "secrets", "default"), "podPullSecrets grants get on Secrets");
    // A wrong value is refused before anything changes.
    let err =
        helm(Some(kubeconfig), &["upgrade", "trustwatch", chart, "--namespace", NAMESPACE, "--set", "replicas=-1"])
            .unwrap_err();
    assert!(err.contains("/replicas"), "{err}");
    let history = helm(Some(kubeconfig), &["history", "trustwatch", "--namespace", NAMESPACE, "-o", "json"]).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&history).unwrap().as_array().map(Vec::len), Some(2), "{history}");
    operator.assert_authorized();

    // uninstall: the operator's objects and rights go; the CRDs and the users' objects stay.
    helm(Some(kubeconfig), &["uninstall", "trustwatch", "--namespace", NAMESPACE, "--wait"]).unwrap();
    assert!(cp.kubectl(&["get", "deployment", "trustwatch", "-n", NAMESPACE]).is_err());
    assert!(cp.kubectl(&["get", "clusterrole", "trustwatch-manager"]).is_err());
    assert!(!can_i(cp, "list", "pods", app_ns), "the operator keeps no rights after uninstall");
    cp.kubectl(&["get", "crd", "trustroots.trustwatch.dev", "imagetrustreports.trustwatch.dev"]).unwrap();
    cp.kubectl(&["get", "trustroot", "chart-cosign"]).unwrap();
    cp.kubectl(&["get", "imagetrustpolicy", "chart-policy"]).unwrap();
}
