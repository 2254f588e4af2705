//! `make bench`, part 2 (issue 11, benchmarks 3, 4 and 5): the operator on a real control plane
//! (etcd, kube-apiserver, kube-controller-manager from `hack/control-plane.sh`) with 1,000,
//! 10,000 and 50,000 running pods of 1,000 distinct images from 200 Notary v1 repositories on a
//! real notary-server, all trust data verified.
//!
//! Per size: operator CPU per scan cycle (utime + stime from /proc/<pid>/stat over a window,
//! divided by the policy scans in it; a cycle also holds the TrustRoot refresh of the 200
//! repositories, both at 10 s), API writes per cycle when nothing changes (kube-apiserver's
//! `apiserver_request_total`, by resource and verb), and resident memory (VmRSS). At 10,000
//! pods: detection latency of a re-sign, a removed target and a removed delegation key, forced
//! with `trustwatch.dev/recheck` and at the default 5m intervals.
//!
//! The bench plays scheduler and kubelet in bulk: pods are created bound to the harness Node,
//! owned by ReplicationControllers (10 pods each, no controller runs for them here, so nothing
//! else writes), and their status is written with concurrent patches.
//!
//! Environment: `TRUSTWATCH_BASELINE_BIN` (another trustwatch binary, measured the same way
//! after the current one at each size, before the detection benchmark: before/after in one
//! run), `TRUSTWATCH_BENCH_SIZES`
//! (default `1000,10000,50000`), `TRUSTWATCH_BENCH_WINDOW` (seconds, default 60),
//! `TRUSTWATCH_BENCH_DEFAULT_INTERVAL=0` skips the 5-minute detection at default intervals,
//! `TRUSTWATCH_BENCH_HOLD=<seconds>` keeps each operator running that long after its
//! measurement (to profile it).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/cluster/harness.rs"]
mod harness;

use futures::StreamExt;
use harness::{ControlPlane, INSTANCE_LABEL, NODE, free_port, http_get, metric_value};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{KeyKind, NotaryClient, NotaryServer, Variant, sha_hex};
use trustwatch::crd::{ImageTrustPolicy, ImageTrustReport};

const REPOS: usize = 200;
const TAGS: usize = 5;
const PODS_PER_WORKLOAD: usize = 10;
const NAMESPACES: usize = 100;
const INSTANCE: &str = "bench";
/// Repositories whose `v0` is signed by the delegation `targets/releases` (key removal).
const DELEGATED: [usize; 2] = [2, 5];

fn gun(repo: usize) -> String {
    format!("registry.bench/team{repo:03}/app")
}

fn digest(repo: usize, tag: usize) -> String {
    format!("sha256:{}", sha_hex(&format!("{repo}/{tag}")))
}

/// Workload `w`: its namespace, name, and image (repository, tag): 1,000 distinct images.
fn workload(w: usize) -> (String, String, usize, usize) {
    let img = w % (REPOS * TAGS);
    (format!("bench-{:03}", w % NAMESPACES), format!("w{w:05}"), img % REPOS, img / REPOS)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The operator as a child process (as the harness starts it, with the log level of a
/// production install), with any trustwatch binary.
struct Op {
    child: Child,
    metrics: String,
    #[allow(dead_code)]
    log: PathBuf,
}

impl Op {
    fn start(cp: &ControlPlane, bin: &Path, lease: &str, dir: &Path) -> Op {
        let port = free_port();
        let metrics = format!("127.0.0.1:{port}");
        let log = dir.join(format!("operator-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .env("KUBECONFIG", &cp.operator_kubeconfig)
            .env("RUST_LOG", "info")
            .env("POD_NAME", format!("bench-{port}"))
            .env("TRUSTWATCH_EXIT_WITH_PARENT", "1")
            .args(["run", "--metrics-addr", &metrics, "--health-addr", &metrics])
            .args(["--policy-selector", &format!("{INSTANCE_LABEL}={INSTANCE}")])
            .args(["--leader-election-id", lease])
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the trustwatch binary runs");
        eprintln!("operator {} (pid {}) logs to {}", bin.display(), child.id(), log.display());
        Op { child, metrics, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime, seconds.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of proc(5), counted from the state (field 3) here.
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
    }

    fn scans(&self) -> f64 {
        let text = http_get(&format!("http://{}/metrics", self.metrics)).unwrap_or_default();
        metric_value(&text, "trustwatch_reconcile_total", &[("controller", "imagetrustpolicy"), ("result", "success")])
            .unwrap_or(0.0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes by (group/resource[/subresource], verb), from kube-apiserver's own counter.
fn api_writes(cp: &ControlPlane) -> BTreeMap<(String, String), f64> {
    let text = cp.kubectl(&["get", "--raw", "/metrics"]).expect("kube-apiserver /metrics");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let label = |k: &str| {
            let key = format!("{k}=\"");
            series.split(&key).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string()
        };
        let verb = label("verb");
        if !["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"].contains(&verb.as_str()) {
            continue;
        }
        let (group, resource, sub) = (label("group"), label("resource"), label("subresource"));
        let mut what = if group.is_empty() { resource } else { format!("{group}/{resource}") };
        if !sub.is_empty() {
            what = format!("{what}/{sub}");
        }
        *out.entry((what, verb)).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("{what}: not within {timeout:?}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Creates workloads `from..to` (ReplicationControllers, 10 bound pods each) and writes the
/// pods' status as a kubelet would: Running, with the imageID of the signed digest.
async fn grow(client: &kube::Client, from: usize, to: usize) {
    let t = Instant::now();
    let workloads: Vec<usize> = (from / PODS_PER_WORKLOAD..to / PODS_PER_WORKLOAD).collect();
    let rcs = futures::stream::iter(workloads)
        .map(|w| {
            let client = client.clone();
            async move {
                let (ns, name, repo, tag) = workload(w);
                let api: Api<ReplicationController> = Api::namespaced(client, &ns);
                let rc: ReplicationController = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"replicas": 0, "selector": {"app": name},
                        "template": {"metadata": {"labels": {"app": name}},
                            "spec": {"containers": [{"name": "app", "image": format!("{}:v{tag}", gun(repo))}]}}}
                }))
                .unwrap();
                let created = api.create(&PostParams::default(), &rc).await.expect("create rc");
                (w, created.metadata.uid.unwrap())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let uids: BTreeMap<usize, String> = rcs.into_iter().collect();
    let pods = futures::stream::iter(from..to)
        .map(|p| {
            let client = client.clone();
            let uid = uids[&(p / PODS_PER_WORKLOAD)].clone();
            async move {
                let (ns, name, repo, tag) = workload(p / PODS_PER_WORKLOAD);
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let image = format!("{}:v{tag}", gun(repo));
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("{name}-{p:06}"), "labels": {"app": name},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController", "name": name,
                            "uid": uid, "controller": true}]},
                    "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": image}]}
                }))
                .unwrap();
                let created = api.create(&PostParams::default(), &pod).await.expect("create pod");
                let started = "2026-01-01T00:00:00Z";
                let status = json!({"status": {
                    "phase": "Running", "hostIP": "10.0.0.10", "podIP": "10.1.0.10", "startTime": started,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
                    "containerStatuses": [{"name": "app", "image": image,
                        "imageID": format!("{}@{}", gun(repo), digest(repo, tag)), "ready": true, "started": true,
                        "restartCount": 0, "state": {"running": {"startedAt": started}}}]}});
                api.patch_status(
                    created.metadata.name.as_deref().unwrap(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await
                .expect("pod status");
            }
        })
        .buffer_unordered(48)
        .count()
        .await;
    eprintln!("{pods} pods created and running ({from}..{to}) in {:.0}s", t.elapsed().as_secs_f64());
}

async fn policy_summary(client: &kube::Client) -> Option<(i64, i64)> {
    let api: Api<ImageTrustPolicy> = Api::all(client.clone());
    let p = api.get_opt(INSTANCE).await.ok()??;
    let v = serde_json::to_value(p.status?.summary?).ok()?;
    Some((v["pods"].as_i64()?, v["verified"].as_i64()?))
}

async fn report_count(client: &kube::Client) -> usize {
    let api: Api<ImageTrustReport> = Api::all(client.clone());
    api.list_metadata(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0)
}

/// One size, one operator: steady state, then a window of scan cycles.
struct Sample {
    pods: usize,
    scans: f64,
    cpu_per_scan: f64,
    writes_per_scan: BTreeMap<(String, String), f64>,
    rss: f64,
    hwm: f64,
    scan_seconds: f64,
}

/// Pods of the workloads whose image the detection benchmark changed (no longer verified):
/// the first `changed` workloads' images (3 when only the forced detection ran, 6 with the
/// default-interval one).
fn changed_pods(pods: usize, changed: usize) -> usize {
    (0..pods / PODS_PER_WORKLOAD).filter(|w| w % (REPOS * TAGS) < changed).count() * PODS_PER_WORKLOAD
}

/// Waits until `op` has scanned and verified every pod, written one report per workload, and
/// scanned twice more.
async fn settle(client: &kube::Client, op: &Op, pods: usize, failing: usize) {
    let workloads = pods / PODS_PER_WORKLOAD;
    wait_for("every pod scanned and verified", Duration::from_secs(900), || async {
        match policy_summary(client).await {
            Some((p, v)) if p as usize == pods && v as usize + failing == pods => Ok(()),
            other => Err(format!("summary {other:?}")),
        }
    })
    .await;
    wait_for("one report per workload", Duration::from_secs(900), || async {
        let n = report_count(client).await;
        if n == workloads { Ok(()) } else { Err(format!("{n} reports")) }
    })
    .await;
    // The summary and reports above may still be a previous operator's: this one's first scan
    // (after its initial LIST) has to be behind it before its quiet cycles are counted.
    wait_for("a first scan by this operator", Duration::from_secs(900), || async {
        if op.scans() >= 1.0 { Ok(()) } else { Err("starting".into()) }
    })
    .await;
    // Two more cycles: the reports written, nothing changes any more.
    let s0 = op.scans();
    wait_for("two quiet scans", Duration::from_secs(120), || async {
        if op.scans() >= s0 + 2.0 { Ok(()) } else { Err("scanning".into()) }
    })
    .await;
}

async fn steady(cp: &ControlPlane, client: &kube::Client, op: &Op, pods: usize, failing: usize) -> Sample {
    settle(client, op, pods, failing).await;
    let window = env_or("TRUSTWATCH_BENCH_WINDOW", "60").parse::<u64>().unwrap();
    let (scans0, cpu0, writes0) = (op.scans(), op.cpu(), api_writes(cp));
    let text0 = http_get(&format!("http://{}/metrics", op.metrics)).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(window)).await;
    let (scans1, cpu1, writes1) = (op.scans(), op.cpu(), api_writes(cp));
    let text1 = http_get(&format!("http://{}/metrics", op.metrics)).unwrap_or_default();
    let sum = |t: &str| {
        metric_value(t, "trustwatch_reconcile_duration_seconds_sum", &[("controller", "imagetrustpolicy")])
            .unwrap_or(0.0)
    };
    let scans = (scans1 - scans0).max(1.0);
    let writes_per_scan = writes1
        .iter()
        .map(|(k, v)| (k.clone(), (v - writes0.get(k).copied().unwrap_or(0.0)) / scans))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    let (rss, hwm) = op.memory();
    Sample {
        pods,
        scans,
        cpu_per_scan: (cpu1 - cpu0) / scans,
        writes_per_scan,
        rss,
        hwm,
        scan_seconds: (sum(&text1) - sum(&text0)) / scans,
    }
}

fn print_samples(label: &str, samples: &[Sample]) {
    println!("\n### {label}\n");
    println!(
        "goal: < 50 ms CPU per cycle and < 100 MiB at 10,000 pods; < 300 MiB at 50,000; 0 writes per quiet cycle but one policy status; linear growth\n"
    );
    println!(
        "| pods | scans in window | CPU per cycle | CPU per 1,000 pods | scan wall time | VmRSS | VmHWM | API writes per cycle (resource verb: count) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for s in samples {
        let writes: Vec<String> = s.writes_per_scan.iter().map(|((r, v), n)| format!("{r} {v}: {n:.2}")).collect();
        println!(
            "| {} | {:.0} | {:.1} ms | {:.2} ms | {:.1} ms | {:.1} MiB | {:.1} MiB | {} |",
            s.pods,
            s.scans,
            s.cpu_per_scan * 1e3,
            s.cpu_per_scan * 1e6 / s.pods as f64,
            s.scan_seconds * 1e3,
            s.rss,
            s.hwm,
            writes.join("; ")
        );
    }
}

/// Detection latency: the time from a published change to the report's verdict changing.
async fn report_verdict(client: &kube::Client, w: usize) -> String {
    let (ns, name, _, _) = workload(w);
    let api: Api<ImageTrustReport> = Api::namespaced(client.clone(), &ns);
    let r = api.get_opt(&format!("replicationcontroller-{name}-{INSTANCE}")).await.ok().flatten();
    r.and_then(|r| r.status?.verdict).map(|v| v.to_string()).unwrap_or_default()
}

/// Publishes change `kind` for workload `w`'s repository and tag 0.
fn publish_change(signer: &NotaryClient, kind: &str, w: usize) {
    let (_, _, repo, _) = workload(w);
    let g = gun(repo);
    match kind {
        "re-sign" => signer.add_hash(&g, "v0", 10, &sha_hex(&format!("resigned/{repo}")), &[]),
        "target removed" => signer.remove_target(&g, "v0", &[]),
        "delegation key removed" => {
            for k in signer.delegation_key_ids(&g, "targets/releases") {
                signer.delegation_remove_key(&g, "targets/releases", &k);
            }
        }
        other => panic!("{other}"),
    }
}

async fn detect(
    client: &kube::Client,
    signer: &NotaryClient,
    cases: &[(&str, usize)],
    force: bool,
    timeout: Duration,
) -> Vec<(String, f64, String)> {
    let mut out = vec![];
    let mut published: Vec<(&str, usize, Instant)> = vec![];
    for (kind, w) in cases {
        assert_eq!(report_verdict(client, *w).await, "Verified", "{kind}: verified before the change");
        publish_change(signer, kind, *w);
        published.push((kind, *w, Instant::now()));
        if force {
            let api: Api<ImageTrustPolicy> = Api::all(client.clone());
            let value = format!("{}-{w}", jiff::Timestamp::now().as_millisecond());
            let body = json!({"metadata": {"annotations": {trustwatch::crd::RECHECK_ANNOTATION: value}}});
            api.patch(INSTANCE, &PatchParams::default(), &Patch::Merge(&body)).await.unwrap();
            let (_, _, at) = published.last().unwrap();
            let at = *at;
            let v = wait_for(&format!("{kind}: the verdict changes"), timeout, || async {
                let v = report_verdict(client, *w).await;
                if v != "Verified" && !v.is_empty() { Ok(v) } else { Err(v) }
            })
            .await;
            published.pop();
            out.push((kind.to_string(), at.elapsed().as_secs_f64(), v));
        }
    }
    // Default intervals: every change published, then all reports watched together.
    let deadline = Instant::now() + timeout;
    let mut seen: BTreeMap<usize, (f64, String)> = BTreeMap::new();
    while seen.len() < published.len() {
        assert!(Instant::now() < deadline, "verdicts did not change within {timeout:?}: {seen:?}");
        for (_, w, at) in &published {
            if seen.contains_key(w) {
                continue;
            }
            let v = report_verdict(client, *w).await;
            if v != "Verified" && !v.is_empty() {
                seen.insert(*w, (at.elapsed().as_secs_f64(), v));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (kind, w, _) in &published {
        let (secs, v) = seen[w].clone();
        out.push((kind.to_string(), secs, v));
    }
    out
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (make unit) runs this binary
    // without it: then nothing is measured (a run takes about 20 minutes).
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/scale.rs measures only under `cargo bench` (make bench)");
        return;
    }
    let sizes: Vec<usize> =
        env_or("TRUSTWATCH_BENCH_SIZES", "1000,10000,50000").split(',').map(|s| s.trim().parse().unwrap()).collect();
    let current = PathBuf::from(env!("CARGO_BIN_EXE_trustwatch"));
    let baseline = std::env::var("TRUSTWATCH_BASELINE_BIN").ok().map(PathBuf::from);
    println!("## Scale benchmarks (benches/scale.rs)\n");

    // Trust data: 200 repositories, 5 tags each (1,000 images); in two of them `v0` is signed
    // by a delegation whose key the detection benchmark removes.
    let server = NotaryServer::start(Variant::Local);
    let signer = NotaryClient::new(&server);
    let t = Instant::now();
    let publish = |repo: usize| {
        let g = gun(repo);
        signer.run(&["init", &g, "-p"]);
        if DELEGATED.contains(&repo) {
            signer.add_delegation_signer(&g, "targets/releases", &format!("alice{repo}"), KeyKind::Ecdsa);
        }
        for tag in 0..TAGS {
            let mut args: Vec<String> =
                vec!["addhash".into(), g.clone(), format!("v{tag}"), "10".into(), "--sha256".into()];
            args.push(digest(repo, tag).trim_start_matches("sha256:").to_string());
            if DELEGATED.contains(&repo) && tag == 0 {
                args.extend(["--roles".to_string(), "targets/releases".to_string()]);
            }
            signer.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        signer.run(&["publish", &g]);
    };
    publish(0);
    std::thread::scope(|sc| {
        for w in 0..4 {
            let publish = &publish;
            sc.spawn(move || (1..REPOS).filter(|i| i % 4 == w).for_each(publish));
        }
    });
    eprintln!("published {REPOS} repositories in {:.0}s", t.elapsed().as_secs_f64());

    let cp = ControlPlane::shared();
    let client = cp.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let root = signer.root_cert_pem(&gun(0));
    for ns in 0..NAMESPACES {
        harness::create_namespace(&client, &format!("bench-{ns:03}"), &[(INSTANCE_LABEL, INSTANCE)]).await;
    }
    let trust_root = |interval: &str| {
        json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
            "metadata": {"name": INSTANCE, "labels": {INSTANCE_LABEL: INSTANCE}},
            "spec": {"server": server.url(), "caBundle": server.ca_pem(),
                "rootKeys": [{"name": "root", "publicKey": root}], "refreshInterval": interval}})
    };
    let policy = |interval: &str| {
        json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy",
            "metadata": {"name": INSTANCE, "labels": {INSTANCE_LABEL: INSTANCE}},
            "spec": {"namespaceSelector": {"matchLabels": {INSTANCE_LABEL: INSTANCE}},
                "images": [{"pattern": "registry.bench/**", "trustRoot": INSTANCE}], "interval": interval}})
    };
    cp.apply(&trust_root("10s")).unwrap();
    cp.apply(&policy("10s")).unwrap();

    let mut current_samples = vec![];
    let mut baseline_samples = vec![];
    let mut have = 0;
    let mut changed = 0;
    for (i, &size) in sizes.iter().enumerate() {
        grow(&client, have, size).await;
        have = size;
        let mut op = Op::start(cp, &current, "bench-current", dir.path());
        let s = steady(cp, &client, &op, size, changed_pods(size, changed)).await;
        eprintln!("current at {size}: {:.1} ms CPU per cycle, {:.0} MiB", s.cpu_per_scan * 1e3, s.rss);
        current_samples.push(s);
        if let Some(secs) = std::env::var("TRUSTWATCH_BENCH_HOLD").ok().and_then(|v| v.parse::<u64>().ok()) {
            // A look at the operator in its steady state (perf, /proc), scanning every 10 s.
            eprintln!("holding: operator pid {} at {size} pods for {secs}s", op.pid());
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        let last = i + 1 == sizes.len();
        let detects = size == 10_000 || (last && !sizes.contains(&10_000));
        if let Some(b) = &baseline {
            // Side by side on the same quiet trust data: the baseline is measured before the
            // detection benchmark below changes any (and the current build is started again
            // for it).
            op.stop();
            let bop = Op::start(cp, b, "bench-baseline", dir.path());
            let s = steady(cp, &client, &bop, size, changed_pods(size, changed)).await;
            eprintln!("baseline at {size}: {:.1} ms CPU per cycle, {:.0} MiB", s.cpu_per_scan * 1e3, s.rss);
            baseline_samples.push(s);
            bop.stop();
            if !detects {
                continue;
            }
            op = Op::start(cp, &current, "bench-current", dir.path());
            settle(&client, &op, size, changed_pods(size, changed)).await;
        }
        if detects {
            // Detection, forced: publish, then annotate the policy.
            let forced = detect(
                &client,
                &signer,
                &[("re-sign", 0), ("target removed", 1), ("delegation key removed", 2)],
                true,
                Duration::from_secs(60),
            )
            .await;
            changed = 3;
            println!("\n### Detection latency at {size} pods, forced with `trustwatch.dev/recheck` (goal < 2 s)\n");
            println!("| change published on the notary-server | publish → report verdict changed | new verdict |");
            println!("|---|---|---|");
            for (k, secs, v) in &forced {
                println!("| {k} | {:.2} s | {v} |", secs);
            }
            if env_or("TRUSTWATCH_BENCH_DEFAULT_INTERVAL", "1") != "0" {
                cp.apply(&trust_root("5m")).unwrap();
                cp.apply(&policy("5m")).unwrap();
                tokio::time::sleep(Duration::from_secs(20)).await;
                let cases = [("re-sign", 3), ("target removed", 4), ("delegation key removed", 5)];
                let late = detect(&client, &signer, &cases, false, Duration::from_secs(420)).await;
                println!("\n### Detection latency at {size} pods, default intervals (5m; goal ≤ one interval)\n");
                println!("| change published on the notary-server | publish → report verdict changed | new verdict |");
                println!("|---|---|---|");
                for (k, secs, v) in &late {
                    println!("| {k} | {:.1} s | {v} |", secs);
                }
                changed = 6;
                cp.apply(&trust_root("10s")).unwrap();
                cp.apply(&policy("10s")).unwrap();
            }
        }
        op.stop();
    }
    print_samples("Operator at scale (current build)", &current_samples);
    if let Some(b) = &baseline {
        print_samples(&format!("Operator at scale (baseline {})", b.display()), &baseline_samples);
    }
    // The operators' logs stay for a look (the temporary directory is removed otherwise).
    let _ = dir.keep();
}
