//! What the cluster test reads back: the policy's status, the reports, the pods' quarantine
//! state and events, and the quarantine NetworkPolicy. Each check returns `Err(what it saw)`
//! until it holds, for [`crate::cluster::eventually`].

use crate::cluster::Cluster;
use crate::scenario::{self, APPS_NAMESPACE, POLICY, Workload};
use serde_json::Value;
use std::collections::BTreeMap;
use trustwatch::verdict::Verdict;

/// The label and annotation the operator puts on quarantined pods (the documented contract).
pub const QUARANTINED_LABEL: &str = "trustwatch.dev/quarantined";
pub const QUARANTINE_REASON_ANNOTATION: &str = "trustwatch.dev/quarantine-reason";
/// The deny-all NetworkPolicy selecting quarantined pods.
pub const QUARANTINE_NETWORK_POLICY: &str = "trustwatch-quarantine";

/// The single pod of each workload's Deployment, by workload name.
pub fn pods_of(cluster: &Cluster, workloads: &[Workload]) -> Result<BTreeMap<&'static str, String>, String> {
    let mut pods = BTreeMap::new();
    for w in workloads {
        let items = cluster.list(APPS_NAMESPACE, "pods", Some(&format!("app={}", w.name)))?;
        let names: Vec<&str> = items.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
        match names.as_slice() {
            [one] => pods.insert(w.name, one.to_string()),
            other => return Err(format!("deployment {} has pods {other:?}", w.name)),
        };
    }
    Ok(pods)
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// The TrustRoot is Ready and has verified `gun` from the in-cluster server.
pub fn trust_root_verified(cluster: &Cluster, gun: &str) -> Result<(), String> {
    let tr = cluster.get(None, "trustroot", scenario::TRUST_ROOT)?.ok_or("the TrustRoot does not exist")?;
    let ready = condition(&tr, "Ready").ok_or_else(|| format!("no Ready condition yet: {}", tr["status"]))?;
    if ready["status"] != "True" {
        return Err(format!("Ready is {}: {} {}", ready["status"], ready["reason"], ready["message"]));
    }
    let repos = tr["status"]["repositories"].as_array().cloned().unwrap_or_default();
    let repo = repos.iter().find(|r| r["gun"] == gun).ok_or_else(|| format!("{gun} not among {repos:?}"))?;
    if let Some(e) = repo["lastError"].as_str() {
        return Err(format!("{gun}: lastError {e}"));
    }
    if repo["versions"]["root"].as_i64().is_none() || repo["lastRefresh"].is_null() {
        return Err(format!("{gun} has not been refreshed: {repo}"));
    }
    Ok(())
}

/// The policy's status reflects its current spec: Ready True, Compliant as given, and the
/// counts of pods selected and quarantined.
pub fn policy_status(cluster: &Cluster, compliant: bool, pods: i64, quarantined: i64) -> Result<(), String> {
    let p = cluster.get(None, "imagetrustpolicy", POLICY)?.ok_or("the policy does not exist")?;
    let s = &p["status"];
    if s["observedGeneration"] != p["metadata"]["generation"] {
        return Err(format!(
            "status is for generation {}, spec is {}",
            s["observedGeneration"], p["metadata"]["generation"]
        ));
    }
    let ready = condition(&p, "Ready").ok_or("no Ready condition")?;
    if ready["status"] != "True" {
        return Err(format!("Ready is {}: {} {}", ready["status"], ready["reason"], ready["message"]));
    }
    let c = condition(&p, "Compliant").ok_or("no Compliant condition")?;
    let want = if compliant { "True" } else { "False" };
    if c["status"] != want {
        return Err(format!("Compliant is {} ({}: {}), want {want}", c["status"], c["reason"], c["message"]));
    }
    let summary = &s["summary"];
    if summary["pods"].as_i64() != Some(pods) || summary["quarantined"].as_i64().unwrap_or(0) != quarantined {
        return Err(format!("summary {summary}, want {pods} pods and {quarantined} quarantined"));
    }
    if let Some(limited) = condition(&p, "QuarantineLimited").filter(|c| c["status"] == "True") {
        return Err(format!("QuarantineLimited: {}", limited["message"]));
    }
    Ok(())
}

/// Every workload has its report, written by this policy, with the expected verdict for its
/// one container (`expected` picks the verdict for the stage of the test).
pub fn reports_match(
    cluster: &Cluster,
    workloads: &[Workload],
    pods: &BTreeMap<&str, String>,
    signed: &scenario::Signed,
    expected: impl Fn(&Workload) -> Verdict,
) -> Result<(), String> {
    let reports = cluster.list(APPS_NAMESPACE, "imagetrustreports", None)?;
    let mut problems = vec![];
    for w in workloads {
        let name = w.report_name();
        let Some(r) = reports.iter().find(|r| r["metadata"]["name"] == name) else {
            problems.push(format!("no report {name}"));
            continue;
        };
        let s = &r["status"];
        let c = &s["containers"][0];
        let want = expected(w);
        let got = (s["verdict"].as_str(), c["verdict"].as_str(), s["containers"].as_array().map(Vec::len));
        if got != (Some(want.as_str()), Some(want.as_str()), Some(1)) {
            problems.push(format!(
                "{name}: want {want}, got report {} container {} ({})",
                s["verdict"], c["verdict"], c["message"]
            ));
            continue;
        }
        let workload = (s["workload"]["kind"].as_str(), s["workload"]["name"].as_str());
        if workload != (Some("Deployment"), Some(w.name)) || s["policy"] != POLICY {
            problems.push(format!("{name}: workload {} policy {}", s["workload"], s["policy"]));
        }
        if c["pod"].as_str() != pods.get(w.name).map(String::as_str) || c["image"] != w.image.as_str() {
            problems.push(format!("{name}: container {c}"));
        }
        if c["trustRoot"] != scenario::TRUST_ROOT || c.get("runningDigest").is_some() {
            // The image was never pulled: there is no running digest, the spec is what counts.
            problems.push(format!("{name}: trustRoot {} runningDigest {}", c["trustRoot"], c["runningDigest"]));
        }
        if w.name == "drifted" && c["signedDigest"] != signed.app_v1.as_str() {
            problems.push(format!("{name}: signedDigest {} (want {})", c["signedDigest"], signed.app_v1));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// The pods that must be quarantined carry the label and the reason annotation (naming this
/// policy); the others carry neither.
pub fn quarantine_labels(
    cluster: &Cluster,
    pods: &BTreeMap<&str, String>,
    quarantined: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let mut problems = vec![];
    for (workload, pod) in pods {
        let p = cluster.get(Some(APPS_NAMESPACE), "pod", pod)?.ok_or_else(|| format!("pod {pod} is gone"))?;
        let label = p["metadata"]["labels"][QUARANTINED_LABEL].as_str();
        let reason = p["metadata"]["annotations"][QUARANTINE_REASON_ANNOTATION].as_str();
        let ok = if quarantined(workload) {
            label == Some("true") && reason.is_some_and(|r| r.starts_with(&format!("{POLICY}: ")))
        } else {
            label.is_none() && reason.is_none()
        };
        if !ok {
            problems.push(format!("{workload} ({pod}): label {label:?}, reason {reason:?}"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// Each listed pod has an event with each listed reason.
pub fn events_present(cluster: &Cluster, pods: &[&String], reasons: &[&str]) -> Result<(), String> {
    let mut problems = vec![];
    for pod in pods {
        let events = cluster.events_about(APPS_NAMESPACE, pod)?;
        for reason in reasons {
            if !events.iter().any(|e| e.reason == *reason) {
                let seen: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
                problems.push(format!("{pod}: no {reason} event (has {seen:?})"));
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// The pod has no event with any of these reasons.
pub fn events_absent(cluster: &Cluster, pod: &str, reasons: &[&str]) -> Result<(), String> {
    let events = cluster.events_about(APPS_NAMESPACE, pod)?;
    match events.iter().find(|e| reasons.contains(&e.reason.as_str())) {
        Some(e) => Err(format!("{pod} has a {} {} event: {}", e.type_, e.reason, e.message)),
        None => Ok(()),
    }
}

/// The deny-all NetworkPolicy for quarantined pods exists (or not) in the workloads'
/// namespace. Whether traffic is actually denied depends on the CNI (kind's kindnet does not
/// enforce NetworkPolicies), so only the object is checked.
pub fn network_policy(cluster: &Cluster, present: bool) -> Result<(), String> {
    let np = cluster.get(Some(APPS_NAMESPACE), "networkpolicy", QUARANTINE_NETWORK_POLICY)?;
    match (np, present) {
        (None, false) => Ok(()),
        (Some(_), false) => Err(format!("{QUARANTINE_NETWORK_POLICY} still exists")),
        (None, true) => Err(format!("no NetworkPolicy {QUARANTINE_NETWORK_POLICY} in {APPS_NAMESPACE}")),
        (Some(np), true) => {
            let selector = &np["spec"]["podSelector"]["matchLabels"];
            let types = np["spec"]["policyTypes"].as_array().cloned().unwrap_or_default();
            let denies_all = np["spec"]["ingress"].is_null() && np["spec"]["egress"].is_null();
            if selector[QUARANTINED_LABEL] == "true"
                && types.contains(&"Ingress".into())
                && types.contains(&"Egress".into())
                && denies_all
                && np["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "trustwatch"
            {
                Ok(())
            } else {
                Err(format!("unexpected {QUARANTINE_NETWORK_POLICY}: {}", np["spec"]))
            }
        }
    }
}
