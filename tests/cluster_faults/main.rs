//! Faults on the Kubernetes side, on a control plane of their own (these tests restart the API
//! server and count quarantined pods cluster-wide, which would disturb the shared suite in
//! tests/cluster): the API server restarting mid-scan, the operator killed mid-scan, and the
//! cluster-wide quarantine cap. Nothing is lost: reports converge and rollback protection
//! survives.

#[path = "../support/mod.rs"]
mod support;

#[path = "../cluster/harness.rs"]
mod harness;
#[path = "../cluster/world.rs"]
mod world;

use harness::*;
use serde_json::json;
use std::time::Duration;
use world::*;

/// One fault at a time: a test that restarts the API server fails the reads of any test that
/// runs beside it (a CI run counted 0 quarantined pods while the server was down).
/// (tokio's Mutex: it is held across awaits, by tests on runtimes of their own, and a test that
/// panics releases it.)
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Workloads enough that a scan takes a while: `n` Deployments over three images, some
/// drifted.
fn workloads(w: &mut World, ns: &str, n: usize) {
    w.push_signed("shop/web", "v1", "web v1");
    w.push_signed("shop/api", "v1", "api v1");
    w.push("shop/api", "v1", "api v1, rebuilt");
    w.push("shop/job", "v1", "unsigned");
    for i in 0..n {
        let repo = ["shop/web", "shop/api", "shop/job"][i % 3];
        w.apply(&deployment(ns, &format!("app-{i}"), &format!("{}:v1", w.repo(repo)), 2));
    }
}

fn expected(i: usize) -> &'static str {
    ["Verified", "DigestDrift", "Unsigned"][i % 3]
}

async fn all_converged(w: &World, ns: &str, n: usize) -> Result<(), String> {
    let reports = w.reports(ns).await;
    for i in 0..n {
        let name = format!("deployment-app-{i}-faults");
        let r = reports.get(&name).ok_or(format!("{name} missing ({} reports)", reports.len()))?;
        let s = r.status.clone().ok_or(format!("{name} has no status"))?;
        let v = s.verdict.map(|v| v.to_string()).unwrap_or_default();
        if v != expected(i) || s.summary.map(|s| s.pods) != Some(2) {
            return Err(format!("{name}: {v} {:?}", s.summary));
        }
    }
    if reports.len() != n {
        return Err(format!("{} reports for {n} workloads", reports.len()));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_restart_and_an_operator_killed_mid_scan_lose_nothing() {
    let _exclusive = ONE_AT_A_TIME.lock().await;
    let ns = "tw-faults";
    let mut w = World::new(ns).await;
    let n = 60;
    workloads(&mut w, ns, n);
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("faults", json!({"interval": "10s"})));
    w.start_kubelet();
    let mut op = w.operator();
    // Mid-scan: as soon as the first reports appear, the API server goes down and comes back.
    eventually("the first reports are written", Duration::from_secs(180), || async {
        let n = w.reports(ns).await.len();
        if n > 0 { Ok(()) } else { Err("none yet".to_string()) }
    })
    .await;
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("hack/control-plane.sh"))
        .args(["restart", w.cp.dir.to_str().unwrap(), "kube-apiserver"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("every workload's report converges after the API server restart", Duration::from_secs(240), || {
        all_converged(&w, ns, n)
    })
    .await;
    assert!(op.is_running(), "the operator rides out the restart:\n{}", op.logs());
    let versions = eventually("the trust root remembers its three repositories", REACT, || async {
        let r = w.trust_root_status().await.ok_or("no status")?["repositories"].clone();
        if r.as_array().is_some_and(|a| a.len() == 3) { Ok(r) } else { Err(r.to_string()) }
    })
    .await;

    // Killed mid-scan (SIGKILL while a forced scan writes), then started again.
    w.cp.kubectl(&["-n", ns, "delete", "imagetrustreports", "--all"]).unwrap();
    w.cp.kubectl(&["annotate", "--overwrite", "itp", "faults", "trustwatch.dev/recheck=after-kill"]).unwrap();
    eventually("some reports are rewritten", Duration::from_secs(120), || async {
        let n = w.reports(ns).await.len();
        if n > 0 { Ok(()) } else { Err("none yet".to_string()) }
    })
    .await;
    op.kill();
    let _op2 = w.operator();
    eventually("the reports converge after the kill", Duration::from_secs(240), || all_converged(&w, ns, n)).await;
    // Rollback protection survives: the trusted versions in status are never lower.
    let after = w.trust_root_status().await.unwrap()["repositories"].clone();
    for (b, a) in versions.as_array().unwrap().iter().zip(after.as_array().unwrap()) {
        for role in ["root", "targets", "snapshot", "timestamp"] {
            assert!(a["versions"][role].as_i64() >= b["versions"][role].as_i64(), "{role}: {b} then {a}");
        }
    }
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quarantine_cap_is_a_total_for_the_cluster_not_only_per_scan() {
    let _exclusive = ONE_AT_A_TIME.lock().await;
    let mut w = World::new("tw-cap-a").await;
    w.add_namespace("tw-cap-b").await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.apply(&w.trust_root(json!({})));
    let only = |n: &str| json!({"matchLabels": {"kubernetes.io/metadata.name": n}});
    w.apply(&w.policy("cap-a", json!({"action": "Quarantine", "namespaceSelector": only("tw-cap-a")})));
    w.apply(&w.policy("cap-b", json!({"action": "Quarantine", "namespaceSelector": only("tw-cap-b")})));
    w.start_kubelet();
    let image = format!("{}:v1", w.repo("shop/web"));
    w.apply(&deployment("tw-cap-a", "web", &image, 3));
    w.apply(&deployment("tw-cap-b", "web", &image, 3));
    let _op = w.operator_with(&["--max-quarantined", "4"]);
    let count = || async {
        let mut n = 0;
        for ns in ["tw-cap-a", "tw-cap-b"] {
            let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(w.client.clone(), ns);
            let pods = api.list(&kube::api::ListParams::default().labels("app=web")).await;
            n += pods
                .unwrap_or_else(|e| panic!("listing the pods of {ns}: {e}"))
                .items
                .iter()
                .filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get("trustwatch.dev/quarantined")).is_some())
                .count();
        }
        n
    };
    eventually("four pods quarantined across both policies", REACT, || async {
        let n = count().await;
        if n == 4 { Ok(()) } else { Err(format!("{n} quarantined")) }
    })
    .await;
    // More scans never go over the cap.
    for i in 0..3 {
        for p in ["cap-a", "cap-b"] {
            w.cp.kubectl(&["annotate", "--overwrite", "itp", p, &format!("trustwatch.dev/recheck={i}")]).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(count().await, 4, "the cap holds");
    }
    let limited = eventually("a policy says the cluster cap held it back", REACT, || async {
        for p in ["cap-a", "cap-b"] {
            if let Some(s) = w.policy_status(p).await
                && condition(&s, "QuarantineLimited") == Some(("True".into(), "ClusterLimitReached".into()))
            {
                return Ok(s);
            }
        }
        Err("no policy is limited".to_string())
    })
    .await;
    assert!(limited.to_string().contains("--max-quarantined"), "{limited}");
    w.cleanup().await;
}
