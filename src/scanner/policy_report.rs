//! PolicyReports: a policy's verdicts in the report format Policy Reporter and other tools
//! read, one report per (namespace, policy), built purely from the scan's report plans.
//!
//! Two groups carry the same result schema (`PolicyReportResult` / `ReportResult`):
//! - `wgpolicyk8s.io/v1alpha2` `PolicyReport`, from the Kubernetes policy working group, which
//!   Kyverno writes by default and every Policy Reporter release reads;
//! - `openreports.io/v1alpha1` `Report`, its successor (OpenReports, a CNCF project; Kyverno
//!   1.15+ writes it behind a flag, "an initial step to eventually deprecate wgpolicyk8s").
//!
//! One result per workload container: source `trustwatch`, the policy, the verdict mapped to
//! pass, fail, warn, error or skip with a severity, the workload as the resource, the reason
//! and message, and the digests as properties. No per-scan instant is written, so an
//! unchanged verdict makes an identical report, which is not written again.

use super::report::ReportPlan;
use crate::crd::{ContainerVerification, UnavailablePolicy, UnmatchedPolicy};
use crate::verdict::Verdict;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The most results in one report: a namespace with more workload containers keeps the
/// failing ones first and says how many it left out. Each result is under 2 KiB, so a report
/// stays far below etcd's 1.5 MiB request limit (kyverno#2674).
pub const MAX_RESULTS: usize = 500;

/// The annotation that counts the results left out of a report ([`MAX_RESULTS`]).
pub const OMITTED_ANNOTATION: &str = "trustwatch.dev/omitted-results";

/// The `source` of every result.
pub const SOURCE: &str = "trustwatch";

/// Which report group trustwatch writes (`trustwatch run --policy-reports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyReportGroup {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport.
    #[value(name = "wgpolicyk8s.io")]
    Wgpolicyk8s,
    /// `openreports.io/v1alpha1` Report.
    #[value(name = "openreports.io")]
    OpenReports,
}

impl PolicyReportGroup {
    pub fn api_version(self) -> &'static str {
        match self {
            PolicyReportGroup::Wgpolicyk8s => "wgpolicyk8s.io/v1alpha2",
            PolicyReportGroup::OpenReports => "openreports.io/v1alpha1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            PolicyReportGroup::Wgpolicyk8s => "PolicyReport",
            PolicyReportGroup::OpenReports => "Report",
        }
    }

    /// The resource name, for the API path and RBAC.
    pub fn plural(self) -> &'static str {
        match self {
            PolicyReportGroup::Wgpolicyk8s => "policyreports",
            PolicyReportGroup::OpenReports => "reports",
        }
    }

    pub fn group(self) -> &'static str {
        self.api_version().split('/').next().unwrap_or_default()
    }
}

/// What a policy decided about outages and unmatched images: the same containers count as
/// failing here as in the policy's status.
#[derive(Debug, Clone, Copy)]
pub struct Counting {
    pub on_unavailable: UnavailablePolicy,
    pub unmatched: UnmatchedPolicy,
}

/// A result's outcome and severity (PolicyReportResult.result, .severity).
pub fn outcome(verdict: Verdict, counting: Counting) -> (&'static str, &'static str) {
    match verdict {
        Verdict::Verified => ("pass", "info"),
        Verdict::ExpiringSoon => ("warn", "medium"),
        // An outage is not a verdict against the image: `error` ("the policy could not be
        // evaluated") unless the policy treats outages as failures.
        Verdict::TrustDataUnavailable => match counting.on_unavailable {
            UnavailablePolicy::Ignore => ("error", "medium"),
            UnavailablePolicy::Fail => ("fail", "high"),
        },
        Verdict::NotCovered => match counting.unmatched {
            UnmatchedPolicy::Ignore => ("skip", "info"),
            UnmatchedPolicy::Fail => ("fail", "medium"),
        },
        // What an attacker or a compromised signer would produce.
        Verdict::DigestDrift | Verdict::SignerRevoked | Verdict::SignatureInvalid | Verdict::Tampered => {
            ("fail", "critical")
        }
        Verdict::Unsigned | Verdict::SignerMissing | Verdict::TrustDataExpired => ("fail", "high"),
    }
}

/// The report's name in each namespace: `trustwatch-<policy>`, within the 253 characters of
/// an object name.
pub fn report_name(policy: &str) -> String {
    let name = format!("trustwatch-{policy}");
    if name.len() <= 253 {
        return name;
    }
    let hash = crate::tuf::keys::sha256_hex(policy.as_bytes());
    format!("trustwatch-{}-{}", policy[..200].trim_end_matches(['-', '.']), &hash[..12])
}

/// One namespace's report, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyReportPlan {
    pub namespace: String,
    pub name: String,
    pub body: Value,
}

/// The policy this report belongs to, for its labels and owner.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub policy: &'a str,
    pub uid: Option<&'a str>,
}

/// The reports of one policy's scan, one per namespace that has workloads.
pub fn policy_reports(
    group: PolicyReportGroup,
    owner: Owner<'_>,
    counting: Counting,
    reports: &[ReportPlan],
) -> Vec<PolicyReportPlan> {
    let mut by_namespace: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for r in reports {
        let results = by_namespace.entry(r.namespace.as_str()).or_default();
        results.extend(r.status.containers.iter().map(|c| result(owner.policy, counting, r, c)));
    }
    by_namespace
        .into_iter()
        .map(|(namespace, results)| {
            let name = report_name(owner.policy);
            let body = report_body(group, owner, namespace, &name, results);
            PolicyReportPlan { namespace: namespace.to_string(), name, body }
        })
        .collect()
}

fn report_body(
    group: PolicyReportGroup,
    owner: Owner<'_>,
    namespace: &str,
    name: &str,
    mut results: Vec<Value>,
) -> Value {
    let mut summary: BTreeMap<&str, u64> =
        ["pass", "fail", "warn", "error", "skip"].into_iter().map(|k| (k, 0)).collect();
    for r in &results {
        if let Some(n) = r["result"].as_str().and_then(|k| summary.get_mut(k)) {
            *n += 1;
        }
    }
    // Failing first, then by resource and container, so that a cut keeps what needs acting on.
    let rank = |r: &Value| match r["result"].as_str() {
        Some("fail") => 0,
        Some("error") => 1,
        Some("warn") => 2,
        _ => 3,
    };
    results.sort_by(|a, b| {
        (rank(a), a["resources"][0]["name"].as_str(), a["properties"]["container"].as_str()).cmp(&(
            rank(b),
            b["resources"][0]["name"].as_str(),
            b["properties"]["container"].as_str(),
        ))
    });
    let omitted = results.len().saturating_sub(MAX_RESULTS);
    results.truncate(MAX_RESULTS);
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "trustwatch",
            crate::crd::POLICY_LABEL: crate::crd::policy_label_value(owner.policy),
        },
    });
    if omitted > 0 {
        metadata["annotations"] = json!({OMITTED_ANNOTATION: omitted.to_string()});
    }
    if let Some(uid) = owner.uid {
        // A namespaced object may have a cluster-scoped owner: deleting the policy deletes its
        // reports. No blockOwnerDeletion (it needs update on the policy's finalizers).
        metadata["ownerReferences"] = json!([{"apiVersion": crate::crd::API_VERSION, "kind": "ImageTrustPolicy",
            "name": owner.policy, "uid": uid}]);
    }
    let mut body = json!({
        "apiVersion": group.api_version(),
        "kind": group.kind(),
        "metadata": metadata,
        "summary": summary,
        "results": results,
    });
    if group == PolicyReportGroup::OpenReports {
        body["source"] = json!(SOURCE);
    }
    body
}

fn result(policy: &str, counting: Counting, r: &ReportPlan, c: &ContainerVerification) -> Value {
    let (outcome, severity) = outcome(c.verdict, counting);
    let mut properties = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            properties.insert(k.to_string(), Value::String(v.to_string()));
        }
    };
    put("container", Some(&c.container));
    put("image", Some(&c.image));
    put("digest", c.running_digest.as_deref());
    put("signedDigest", c.signed_digest.as_deref());
    put("verdict", Some(c.verdict.as_str()));
    put("reason", Some(&c.reason));
    put("trustRoot", c.trust_root.as_deref());
    put("format", c.format.map(|f| f.as_str()));
    put("signers", (!c.signers.is_empty()).then(|| c.signers.join(", ")).as_deref());
    put("migration", c.migration.map(|m| m.as_str()));
    properties.insert("pods".into(), Value::String(c.pods.to_string()));
    let mut resource = json!({"apiVersion": r.workload.api_version, "kind": r.workload.kind,
        "name": r.workload.name, "namespace": r.namespace});
    if let Some(uid) = &r.workload.uid {
        resource["uid"] = json!(uid);
    }
    let message = super::report::bounded_message(&format!(
        "{} ({}): {}: {}: {}",
        c.image,
        c.container,
        c.verdict.as_str(),
        c.reason,
        c.message
    ));
    json!({
        "source": SOURCE,
        "policy": policy,
        "rule": c.trust_root.as_deref().unwrap_or("unmatched"),
        "category": "Image Trust",
        "result": outcome,
        "severity": severity,
        "scored": true,
        "message": message,
        "resources": [resource],
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ImageTrustReportStatus;
    use crate::scanner::pods::Workload;

    fn container(name: &str, verdict: Verdict) -> ContainerVerification {
        serde_json::from_value(json!({"container": name, "image": format!("registry.example/{name}:v1"),
            "runningDigest": format!("sha256:{}", "a".repeat(64)), "pods": 2, "verdict": verdict.as_str(),
            "reason": "Because", "message": "what happened", "trustRoot": "prod", "format": "Cosign"}))
        .unwrap()
    }

    fn plan(ns: &str, workload: &str, containers: Vec<ContainerVerification>) -> ReportPlan {
        ReportPlan {
            namespace: ns.into(),
            name: format!("deployment-{workload}"),
            workload: Workload {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: workload.into(),
                uid: Some("uid-1".into()),
            },
            status: ImageTrustReportStatus { containers, ..Default::default() },
        }
    }

    const IGNORE: Counting = Counting { on_unavailable: UnavailablePolicy::Ignore, unmatched: UnmatchedPolicy::Ignore };
    const OWNER: Owner<'static> = Owner { policy: "prod", uid: Some("policy-uid") };

    #[test]
    fn every_verdict_maps_to_a_result_and_a_severity_the_crd_accepts() {
        for v in Verdict::ALL {
            for counting in
                [IGNORE, Counting { on_unavailable: UnavailablePolicy::Fail, unmatched: UnmatchedPolicy::Fail }]
            {
                let (r, s) = outcome(v, counting);
                assert!(["pass", "fail", "warn", "error", "skip"].contains(&r), "{v:?}: {r}");
                assert!(["critical", "high", "medium", "low", "info"].contains(&s), "{v:?}: {s}");
                assert_eq!(r == "pass", v == Verdict::Verified, "{v:?}");
            }
        }
    }

    #[test]
    fn an_outage_is_an_error_unless_the_policy_fails_on_it() {
        assert_eq!(outcome(Verdict::TrustDataUnavailable, IGNORE).0, "error");
        let fail = Counting { on_unavailable: UnavailablePolicy::Fail, ..IGNORE };
        assert_eq!(outcome(Verdict::TrustDataUnavailable, fail).0, "fail");
        assert_eq!(outcome(Verdict::NotCovered, IGNORE).0, "skip");
        assert_eq!(outcome(Verdict::Tampered, IGNORE), ("fail", "critical"));
    }

    #[test]
    fn one_report_per_namespace_with_a_result_per_workload_container() {
        let reports = vec![
            plan("shop", "web", vec![container("web", Verdict::Verified), container("sidecar", Verdict::Unsigned)]),
            plan("shop", "api", vec![container("api", Verdict::ExpiringSoon)]),
            plan("pay", "cart", vec![container("cart", Verdict::DigestDrift)]),
        ];
        let out = policy_reports(PolicyReportGroup::Wgpolicyk8s, OWNER, IGNORE, &reports);
        assert_eq!(out.iter().map(|p| p.namespace.as_str()).collect::<Vec<_>>(), ["pay", "shop"]);
        let shop = &out[1].body;
        assert_eq!(shop["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(shop["kind"], "PolicyReport");
        assert_eq!(shop["metadata"]["name"], "trustwatch-prod");
        assert_eq!(shop["metadata"]["ownerReferences"][0]["uid"], "policy-uid");
        assert_eq!(shop["summary"], json!({"pass": 1, "fail": 1, "warn": 1, "error": 0, "skip": 0}));
        let first = &shop["results"][0];
        assert_eq!(first["result"], "fail", "failing results come first");
        assert_eq!(first["source"], "trustwatch");
        assert_eq!(first["policy"], "prod");
        assert_eq!(first["severity"], "high");
        assert_eq!(
            first["resources"][0],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop", "uid": "uid-1"})
        );
        assert_eq!(first["properties"]["container"], "sidecar");
        assert_eq!(first["properties"]["digest"], format!("sha256:{}", "a".repeat(64)));
        assert_eq!(first["properties"]["verdict"], "Unsigned");
        assert!(first["message"].as_str().unwrap().contains("Unsigned: Because: what happened"));
        assert!(shop.get("source").is_none(), "a PolicyReport has no top-level source");
        let open = policy_reports(PolicyReportGroup::OpenReports, OWNER, IGNORE, &reports);
        assert_eq!(
            (open[0].body["apiVersion"].as_str(), open[0].body["kind"].as_str()),
            (Some("openreports.io/v1alpha1"), Some("Report"))
        );
        assert_eq!(open[0].body["source"], "trustwatch");
    }

    #[test]
    fn the_same_verdicts_make_the_same_report() {
        let reports = vec![plan("shop", "web", vec![container("web", Verdict::Verified)])];
        let a = policy_reports(PolicyReportGroup::Wgpolicyk8s, OWNER, IGNORE, &reports);
        let b = policy_reports(PolicyReportGroup::Wgpolicyk8s, OWNER, IGNORE, &reports);
        assert_eq!(a, b);
    }

    #[test]
    fn a_large_namespace_keeps_the_failing_results_and_counts_the_rest() {
        let mut containers: Vec<_> =
            (0..MAX_RESULTS + 10).map(|i| container(&format!("c{i:04}"), Verdict::Verified)).collect();
        containers.push(container("zz-bad", Verdict::SignerRevoked));
        let out = policy_reports(PolicyReportGroup::Wgpolicyk8s, OWNER, IGNORE, &[plan("big", "w", containers)]);
        let body = &out[0].body;
        assert_eq!(body["results"].as_array().unwrap().len(), MAX_RESULTS);
        assert_eq!(body["results"][0]["properties"]["container"], "zz-bad");
        assert_eq!(body["metadata"]["annotations"][OMITTED_ANNOTATION], "11");
        assert_eq!(body["summary"]["pass"], MAX_RESULTS as u64 + 10, "the summary counts every result");
        assert!(serde_json::to_vec(body).unwrap().len() < 1024 * 1024);
    }

    #[test]
    fn long_policy_names_make_valid_report_names() {
        let long = "p".repeat(253);
        let name = report_name(&long);
        assert!(name.len() <= 253 && name.starts_with("trustwatch-p"), "{name}");
        assert_ne!(report_name(&long), report_name(&"p".repeat(252)));
    }
}
