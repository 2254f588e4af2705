//! PolicyReports (`trustwatch run --policy-reports`) on the real control plane, in both groups,
//! with the CRDs as their projects publish them (Kyverno's wgpolicyk8s.io PolicyReport,
//! OpenReports' openreports.io Report; `hack/go-tools.sh report-crds`).

use crate::harness::*;
use crate::support::oci::Cosign;
use crate::world::*;
use serde_json::{Value, json};

fn install_report_crds(cp: &ControlPlane) {
    for (file, crd) in [
        ("wgpolicyk8s.io_policyreports.yaml", "policyreports.wgpolicyk8s.io"),
        ("openreports.io_reports.yaml", "reports.openreports.io"),
    ] {
        cp.kubectl(&["apply", "--server-side", "-f", go_tool("report-crds", file).to_str().unwrap()]).unwrap();
        cp.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{crd}")]).unwrap();
    }
}

fn report_json(cp: &ControlPlane, resource: &str, ns: &str, name: &str) -> Result<Value, String> {
    let out = cp.kubectl(&["get", resource, name, "-n", ns, "-o", "json"])?;
    serde_json::from_str(&out).map_err(|e| e.to_string())
}

/// Writes of wgpolicyk8s.io PolicyReports, by kube-apiserver's request counter.
fn policy_report_writes(cp: &ControlPlane) -> f64 {
    let text = cp.kubectl(&["get", "--raw", "/metrics"]).unwrap();
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains(r#"group="wgpolicyk8s.io""#) && l.contains(r#"resource="policyreports""#))
        .filter(|l| ["APPLY", "PATCH", "POST", "PUT"].iter().any(|v| l.contains(&format!(r#"verb="{v}""#))))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn result_for<'a>(report: &'a Value, workload: &str) -> &'a Value {
    report["results"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["resources"][0]["name"] == workload))
        .unwrap_or_else(|| panic!("no result for {workload}: {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn verdicts_become_policy_reports_written_on_change_in_either_group() {
    let ns = "tw-preports";
    let mut w = World::new(ns).await;
    install_report_crds(w.cp);
    let cosign = Cosign::new();
    let (key, public) = cosign.generate_key_pair("release");
    let good = w.push("shop/good", "v1", "good v1");
    cosign.sign(&format!("{}@{}", w.repo("shop/good"), good.digest), &key, &[], &[]);
    let unsigned = w.push("shop/unsigned", "v1", "unsigned v1");
    let root = format!("{ns}-cosign");
    w.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": root, "labels": {INSTANCE_LABEL: w.name}},
        "spec": {"cosign": {"keys": [{"name": "release", "publicKey": public}]}, "registry": {"plainHTTP": true}}}));
    let policy = "preports";
    w.apply(
        &w.policy(policy, json!({"images": [{"pattern": format!("{}/**", w.registry.host()), "trustRoot": root}]})),
    );
    w.start_kubelet();
    for app in ["good", "unsigned"] {
        w.apply(&deployment(ns, app, &format!("{}:v1", w.repo(&format!("shop/{app}"))), 1));
    }
    let mut op = w.operator_with(&["--policy-reports", "wgpolicyk8s.io"]);
    w.report_verdict(ns, &format!("deployment-good-{policy}"), "Verified").await;
    w.report_verdict(ns, &format!("deployment-unsigned-{policy}"), "Unsigned").await;

    let name = format!("trustwatch-{policy}");
    let report = eventually("a PolicyReport with both workloads", REACT, || async {
        let r = report_json(w.cp, "policyreports.wgpolicyk8s.io", ns, &name)?;
        if r["summary"]["pass"] == 1 && r["summary"]["fail"] == 1 { Ok(r) } else { Err(r.to_string()) }
    })
    .await;
    assert_eq!(report["metadata"]["ownerReferences"][0]["kind"], "ImageTrustPolicy", "{report}");
    let fail = result_for(&report, "unsigned");
    assert_eq!((fail["result"].as_str(), fail["severity"].as_str()), (Some("fail"), Some("high")), "{fail}");
    assert_eq!(fail["source"], "trustwatch");
    assert_eq!(fail["policy"], policy);
    assert_eq!(fail["resources"][0]["kind"], "Deployment");
    assert_eq!(fail["properties"]["digest"], unsigned.digest.as_str(), "the running digest is a property");
    assert_eq!(fail["properties"]["verdict"], "Unsigned");
    let pass = result_for(&report, "good");
    assert_eq!(pass["result"], "pass");
    assert_eq!(pass["properties"]["digest"], good.digest.as_str());

    // Written only on change: a full scan with the same verdicts (forced by a recheck) sends
    // no write, counted by kube-apiserver itself (a no-op apply would keep the
    // resourceVersion, so that alone proves nothing).
    let version = report["metadata"]["resourceVersion"].clone();
    let writes = policy_report_writes(w.cp);
    let scanned = w.policy_status(policy).await.unwrap()["lastScanTime"].clone();
    w.cp.kubectl(&["annotate", "--overwrite", "itp", policy, "trustwatch.dev/recheck=same-verdicts"]).unwrap();
    eventually("a full scan", REACT, || async {
        let s = w.policy_status(policy).await.ok_or("no status")?;
        if s["lastScanTime"] != scanned { Ok(()) } else { Err(s.to_string()) }
    })
    .await;
    assert_eq!(policy_report_writes(w.cp), writes, "an unchanged PolicyReport is not written again");
    let now = report_json(w.cp, "policyreports.wgpolicyk8s.io", ns, &name).unwrap();
    assert_eq!(now["metadata"]["resourceVersion"], version);

    // A new verdict is a new report.
    cosign.sign(&format!("{}@{}", w.repo("shop/unsigned"), unsigned.digest), &key, &[], &[]);
    w.cp.kubectl(&["annotate", "--overwrite", "itp", policy, &format!("trustwatch.dev/recheck={}", now_rfc3339())])
        .unwrap();
    w.report_verdict(ns, &format!("deployment-unsigned-{policy}"), "Verified").await;
    eventually("the PolicyReport follows the verdict", REACT, || async {
        let r = report_json(w.cp, "policyreports.wgpolicyk8s.io", ns, &name)?;
        if r["summary"]["pass"] == 2 && r["summary"]["fail"] == 0 { Ok(()) } else { Err(r.to_string()) }
    })
    .await;

    // The successor group: the same results as an openreports.io Report.
    op.stop();
    let _op = w.operator_with(&["--policy-reports", "openreports.io"]);
    let open = eventually("an openreports.io Report", REACT, || async {
        let r = report_json(w.cp, "reports.openreports.io", ns, &name)?;
        if r["summary"]["pass"] == 2 { Ok(r) } else { Err(r.to_string()) }
    })
    .await;
    assert_eq!(open["source"], "trustwatch", "{open}");
    assert_eq!(result_for(&open, "unsigned")["properties"]["digest"], unsigned.digest.as_str());

    // Deleting the policy deletes its reports (owner references, the garbage collector).
    w.cp.kubectl(&["delete", "imagetrustpolicy", policy, "--wait=true", "--timeout=60s"]).unwrap();
    eventually("the policy's reports are gone", REACT, || async {
        let a = w.cp.kubectl(&["get", "policyreports.wgpolicyk8s.io", "-n", ns, "-o", "name"])?;
        let b = w.cp.kubectl(&["get", "reports.openreports.io", "-n", ns, "-o", "name"])?;
        if a.is_empty() && b.is_empty() { Ok(()) } else { Err(format!("{a} {b}")) }
    })
    .await;
    w.cleanup().await;
}
