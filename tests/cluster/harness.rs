//! The cluster harness: one real control plane per test binary (etcd, kube-apiserver and
//! kube-controller-manager started by `hack/control-plane.sh`), the operator as a child
//! process under its own ServiceAccount identity, and the test playing scheduler and kubelet.
//!
//! ```text
//! ControlPlane::shared() -> &'static ControlPlane   // started once, stopped when the binary exits
//!   .admin().await -> kube::Client                  // system:masters
//!   .kubectl(&[..]) -> Result<String, String>       // admin kubectl, JSON in/out
//!   .kubectl_as_operator(&[..])
//! Operator::start(cp, &Config) -> Operator          // `trustwatch run`, killed on Drop
//!   .logs()  .metrics()  .kill()  .pid()
//! Kubelet::start(client, namespaces, resolver)      // binds pods to the fake Node, writes status
//! eventually(what, timeout, || async { Ok(..) / Err(why) })
//! ```
//!
//! Each test works in namespaces and under cluster-scoped names of its own, and its operator
//! only reconciles TrustRoots and ImageTrustPolicies labelled with the test's instance label
//! (`--policy-selector`), so tests run side by side on one control plane.

#![allow(dead_code)]

use futures::Future;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The Node every pod is bound to.
pub const NODE: &str = "trustwatch-test-node";
/// The label that ties a test's TrustRoots and policies to its operator.
pub const INSTANCE_LABEL: &str = "test.trustwatch.dev/instance";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first line `bash hack/SCRIPT ARG` prints (a directory of the Go-built peers).
pub fn hack_dir(script: &str, arg: &str) -> PathBuf {
    let out = Command::new("bash").arg(repo_root().join("hack").join(script)).arg(arg).output().unwrap();
    assert!(out.status.success(), "hack/{script} {arg}: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim())
}

/// `FILE` in the directory `hack/go-tools.sh WHAT` prints, built or fetched first when
/// missing (minutes, once per version); a build that fails fails the test.
pub fn go_tool(what: &str, file: &str) -> PathBuf {
    let path = hack_dir("go-tools.sh", what).join(file);
    if !path.exists() {
        let built = Command::new("bash").arg(repo_root().join("hack/go-tools.sh")).arg("build").status().unwrap();
        assert!(built.success(), "hack/go-tools.sh build did not build {file}: see the messages above");
    }
    assert!(path.exists(), "{} is missing after hack/go-tools.sh build", path.display());
    path
}

pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub operator_kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub server: String,
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static BARE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

impl ControlPlane {
    /// The control plane of this test binary, started on first use, with the CRDs, the
    /// operator's namespace and `config/rbac` installed. Missing binaries are built by the
    /// script (minutes, once per version); if that fails, the test fails with the script's
    /// message.
    pub fn shared() -> &'static ControlPlane {
        Self::once(&SHARED, || {
            let cp = Self::start();
            cp.install();
            cp
        })
    }

    /// A control plane with nothing of trustwatch installed, only the fake Node (for the
    /// chart tests, where helm must own every object it installs).
    pub fn bare() -> &'static ControlPlane {
        Self::once(&BARE, || {
            let cp = Self::start();
            cp.add_node();
            cp
        })
    }

    fn once(
        cell: &'static OnceLock<Result<ControlPlane, String>>,
        start: fn() -> ControlPlane,
    ) -> &'static ControlPlane {
        let started = cell.get_or_init(|| {
            std::panic::catch_unwind(start).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the control plane did not start".into())
            })
        });
        match started {
            Ok(cp) => cp,
            Err(e) => panic!("{e}"),
        }
    }

    fn start() -> ControlPlane {
        {
            let dir = std::env::temp_dir().join(format!("trustwatch-cluster-{}", std::process::id()));
            let script = repo_root().join("hack/control-plane.sh");
            let started = Instant::now();
            // TRUSTWATCH_KEEP_CLUSTER=1 leaves the control plane running after the tests, for
            // a look with DIR/bin/kubectl (stop it with `hack/control-plane.sh down DIR`).
            let owner = match std::env::var("TRUSTWATCH_KEEP_CLUSTER").as_deref() {
                Ok("1") => vec![],
                _ => vec!["--owner-pid".to_string(), std::process::id().to_string()],
            };
            let status = Command::new("bash")
                .arg(&script)
                .arg("up")
                .arg(&dir)
                .args(&owner)
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit())
                .status()
                .expect("bash runs hack/control-plane.sh");
            assert!(
                status.success(),
                "the control plane did not start: see the messages above; build it with `bash hack/control-plane.sh build` (needs Go 1.26 and the Go module proxy)"
            );
            eprintln!("control plane up in {:.1}s at {}", started.elapsed().as_secs_f64(), dir.display());
            ControlPlane {
                kubeconfig: dir.join("kubeconfig"),
                operator_kubeconfig: dir.join("operator.kubeconfig"),
                kubectl: dir.join("bin/kubectl"),
                server: std::fs::read_to_string(dir.join("server")).unwrap().trim().to_string(),
                dir,
            }
        }
    }

    /// The CRDs from `crds/`, the operator's namespace and `config/rbac`, and the fake Node.
    fn install(&self) {
        let root = repo_root();
        self.kubectl(&["apply", "--server-side", "-k", root.join("crds").to_str().unwrap()]).unwrap();
        self.kubectl(&["create", "namespace", "trustwatch-system"]).unwrap();
        self.kubectl(&["apply", "-k", root.join("config/rbac").to_str().unwrap()]).unwrap();
        for crd in ["trustroots", "imagetrustpolicies", "imagetrustreports"] {
            self.kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{crd}.trustwatch.dev"),
            ])
            .unwrap();
        }
        self.add_node();
    }

    /// The Node every pod is bound to, Ready and untainted.
    fn add_node(&self) {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}},
        });
        self.kubectl_stdin(&["apply", "-f", "-"], &node.to_string()).unwrap();
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "played by the test", "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()}]}});
        self.kubectl(&["patch", "node", NODE, "--subresource=status", "--type=merge", "-p", &status.to_string()])
            .unwrap();
        // The TaintNodesByCondition admission plugin taints a new Node not-ready; the node
        // lifecycle controller would lift it once the Node is Ready. We play that part too.
        self.kubectl(&["patch", "node", NODE, "--type=merge", "-p", r#"{"spec":{"taints":null}}"#]).unwrap();
    }

    pub async fn admin(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    pub async fn operator_client(&self) -> Client {
        client_from(&self.operator_kubeconfig).await
    }

    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        run_kubectl(&self.kubectl, &self.kubeconfig, args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<String, String> {
        run_kubectl(&self.kubectl, &self.kubeconfig, args, Some(stdin))
    }

    pub fn kubectl_as_operator(&self, args: &[&str]) -> Result<String, String> {
        run_kubectl(&self.kubectl, &self.operator_kubeconfig, args, None)
    }

    /// `kubectl apply -f -` of one object (JSON).
    pub fn apply(&self, object: &Value) -> Result<String, String> {
        self.kubectl_stdin(&["apply", "-f", "-"], &object.to_string())
    }

    /// Log of one control-plane component (`kube-apiserver`, `kube-controller-manager`, `etcd`).
    pub fn component_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("logs/{name}.log"))).unwrap_or_default()
    }

    /// The process group id of a component, as `hack/control-plane.sh` recorded it.
    pub fn component_pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.dir.join(format!("pids/{name}"))).unwrap().trim().parse().unwrap()
    }
}

async fn client_from(path: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig is usable");
    Client::try_from(config).expect("kube client")
}

fn run_kubectl(kubectl: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut cmd = Command::new(kubectl);
    cmd.env("KUBECONFIG", kubeconfig).arg("--request-timeout=60s").args(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", kubectl.display()))?;
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("kubectl {}: {}{}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim(), stdout))
    }
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Waits until `check` succeeds; panics with what it last saw after `timeout`. A bounded wait
/// for something the operator does asynchronously, not a timing assertion.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("{what}: not within {timeout:?}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// How the operator process is started.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The test's instance label value: the operator reconciles only objects carrying it.
    pub instance: String,
    /// Leader election Lease name (defaults to `trustwatch-<instance>`).
    pub lease: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub extra_args: Vec<String>,
    /// Extra environment (e.g. the identity reported in events).
    pub env: Vec<(String, String)>,
}

impl OperatorConfig {
    pub fn new(instance: &str) -> OperatorConfig {
        OperatorConfig { instance: instance.into(), lease: None, kubeconfig: None, extra_args: vec![], env: vec![] }
    }
}

/// `trustwatch run` as a child process, talking to the control plane with
/// `operator.kubeconfig` (so `config/rbac` alone authorizes it). Killed on Drop.
/// Waits until `op` holds its Lease (`trustwatch_leader` is 1 for its identity).
pub async fn leads(op: &Operator) {
    eventually("the replica leads", Duration::from_secs(90), || {
        let m = op.metrics().unwrap_or_default();
        let leads = metric_value(&m, "trustwatch_leader", &[("identity", &op.identity)]) == Some(1.0);
        async move { if leads { Ok(()) } else { Err(m) } }
    })
    .await;
}

pub struct Operator {
    child: Option<Child>,
    log: PathBuf,
    pub metrics_addr: String,
    pub identity: String,
    _dir: tempfile::TempDir,
}

impl Operator {
    pub fn start(cp: &ControlPlane, config: &OperatorConfig) -> Operator {
        let dir = tempfile::Builder::new().prefix("trustwatch-operator-").tempdir().unwrap();
        let log = dir.path().join("operator.log");
        let port = free_port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let identity = format!("{}-{}", config.instance, port);
        let lease = config.lease.clone().unwrap_or_else(|| format!("trustwatch-{}", config.instance));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustwatch"));
        cmd.env("KUBECONFIG", config.kubeconfig.as_deref().unwrap_or(&cp.operator_kubeconfig))
            .env("RUST_LOG", "info,trustwatch=debug")
            .env("POD_NAME", &identity)
            .env("TRUSTWATCH_EXIT_WITH_PARENT", "1")
            .args(["run", "--metrics-addr", &metrics_addr, "--health-addr", &metrics_addr])
            .args(["--policy-selector", &format!("{INSTANCE_LABEL}={}", config.instance)])
            .args(["--leader-election-id", &lease, "--scan-throttle", "1s"])
            .args(&config.extra_args)
            .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        let child = cmd.spawn().expect("the trustwatch binary runs");
        Operator { child: Some(child), log, metrics_addr, identity, _dir: dir }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every call the operator made was authorized by its RBAC: nothing in its log was
    /// forbidden.
    pub fn assert_authorized(&self) {
        let logs = self.logs();
        let denied: Vec<&str> =
            logs.lines().filter(|l| l.contains("forbidden") || l.contains("403 Forbidden")).take(5).collect();
        assert!(denied.is_empty(), "calls refused by RBAC:\n{}", denied.join("\n"));
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `/metrics` as Prometheus text.
    pub fn metrics(&self) -> Result<String, String> {
        http_get(&format!("http://{}/metrics", self.metrics_addr))
    }

    pub fn ready(&self) -> bool {
        http_get(&format!("http://{}/readyz", self.metrics_addr)).is_ok()
    }

    /// SIGKILL: a crash, not a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- operator {} log (last 80 lines) ----", self.identity);
            let logs = self.logs();
            let lines: Vec<&str> = logs.lines().collect();
            for l in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{l}");
            }
        }
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn http_get(url: &str) -> Result<String, String> {
    let out = Command::new("curl").args(["-sf", "--max-time", "5", url]).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("GET {url} failed ({})", out.status))
    }
}

/// The value of one Prometheus sample, by metric name and a label subset.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name {
            return None;
        }
        if !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

/// What a pulled image runs: `image as written in the pod spec` -> `repo@sha256:..`.
pub type Resolver = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Plays scheduler and kubelet for the pods of some namespaces: binds them to [`NODE`]
/// through `pods/binding` and writes their status through `pods/status` (Running, Ready,
/// `containerStatuses[].imageID` from the resolver; a container whose image does not resolve
/// waits in ErrImagePull with no imageID). Jobs' pods keep running unless the test finishes
/// them with [`finish_pod`].
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<HashMap<String, String>>>,
}

impl Kubelet {
    pub fn start(client: Client, namespaces: Vec<String>, resolver: Resolver) -> Kubelet {
        let seen: Arc<Mutex<HashMap<String, String>>> = Default::default();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                for ns in &namespaces {
                    if let Err(e) = kubelet_pass(&client, ns, &resolver, &seen2).await {
                        eprintln!("kubelet: {ns}: {e}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Kubelet { task, seen }
    }

    /// Restarts a pod's containers: they pull again, and report what the registry serves now.
    pub fn restart(&self, namespace: &str, pod: &str) {
        let prefix = format!("{namespace}/{pod}/");
        self.seen.lock().unwrap().retain(|k, _| !k.starts_with(&prefix));
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn kubelet_pass(
    client: &Client,
    ns: &str,
    resolver: &Resolver,
    seen: &Mutex<HashMap<String, String>>,
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for pod in pods.list(&ListParams::default()).await? {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            // No kubelet confirms the deletion: finish it as a kubelet would.
            let _ = pods
                .delete(&name, &kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                .await;
            continue;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.node_name.is_none() {
            bind_pod(client, ns, &name).await;
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        // A container pulls once, when it starts: a tag pushed over later changes nothing for
        // it until it restarts ([`Kubelet::restart`]).
        let key = format!("{ns}/{name}/{}", pod.metadata.uid.clone().unwrap_or_default());
        if seen.lock().unwrap().contains_key(&key) {
            continue;
        }
        let status = pod_status(&spec, resolver);
        let fingerprint = status.to_string();
        let patch = json!({"status": status});
        match pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                seen.lock().unwrap().insert(key, fingerprint);
            }
            Err(e) => eprintln!("kubelet: status {ns}/{name}: {e}"),
        }
    }
    Ok(())
}

/// Binds a pod to the Node, as the scheduler would.
pub async fn bind_pod(client: &Client, ns: &str, name: &str) {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}});
    let url = format!("/api/v1/namespaces/{ns}/pods/{name}/binding");
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    if let Err(e) = client.request::<Value>(req).await {
        eprintln!("kubelet: bind {ns}/{name}: {e}");
    }
}

fn pod_status(spec: &k8s_openapi::api::core::v1::PodSpec, resolver: &Resolver) -> Value {
    let started = "2026-01-01T00:00:00Z";
    let container = |c: &k8s_openapi::api::core::v1::Container, init: bool| {
        let image = c.image.clone().unwrap_or_default();
        match resolver(&image) {
            Some(id) => json!({
                "name": c.name, "image": image, "imageID": id, "ready": !init, "started": !init, "restartCount": 0,
                "state": if init { json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started}}) }
                         else { json!({"running": {"startedAt": started}}) },
            }),
            None => json!({
                "name": c.name, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": format!("{image}: not found in the test registry")}},
            }),
        }
    };
    let init: Vec<Value> = spec.init_containers.iter().flatten().map(|c| container(c, true)).collect();
    let regular: Vec<Value> = spec.containers.iter().map(|c| container(c, false)).collect();
    let all_ready = regular.iter().all(|c| c["ready"] == true);
    let cond =
        |t: &str, ok: bool| json!({"type": t, "status": if ok {"True"} else {"False"}, "lastTransitionTime": started});
    json!({
        "phase": if all_ready { "Running" } else { "Pending" },
        "hostIP": "10.0.0.10", "podIP": "10.1.0.10",
        "startTime": started,
        "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", all_ready), cond("Ready", all_ready)],
        "initContainerStatuses": init,
        "containerStatuses": regular,
    })
}

/// Ends a pod as a kubelet would when its containers exit (`Succeeded` or `Failed`).
pub async fn finish_pod(client: &Client, ns: &str, name: &str, phase: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// Creates a namespace with labels (the policy selects namespaces by label).
pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let api: Api<Namespace> = Api::all(client.clone());
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let ns = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// The Node exists (installed with the control plane).
pub async fn node_exists(client: &Client) -> bool {
    Api::<Node>::all(client.clone()).get_opt(NODE).await.ok().flatten().is_some()
}
