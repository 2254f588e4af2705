//! Quarantine that does what it says (isolation gaps, grace period, dry run), Secrets read only
//! where allowed, credentials that never leak, and RBAC failures that show.

use crate::harness::*;
use crate::world::*;
use serde_json::json;
use std::time::Duration;

async fn quarantined(w: &World, ns: &str, selector: &str) -> Vec<bool> {
    w.pods(ns, selector)
        .await
        .iter()
        .map(|p| {
            p.metadata.labels.as_ref().and_then(|l| l.get("trustwatch.dev/quarantined")).is_some_and(|v| v == "true")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantine_that_cannot_isolate_says_so_and_dry_runs_and_grace_periods_label_nothing() {
    let ns = "tw-guard";
    let mut w = World::new(ns).await;
    w.add_namespace("tw-guard-dry").await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.apply(&w.trust_root(json!({})));
    let only = |n: &str| json!({"matchLabels": {"kubernetes.io/metadata.name": n}});
    w.apply(&w.policy("guard", json!({"action": "Quarantine", "namespaceSelector": only(ns)})));
    w.apply(
        &w.policy("dry", json!({"action": "Quarantine", "dryRun": true, "namespaceSelector": only("tw-guard-dry")})),
    );
    // Another NetworkPolicy lets traffic to the web pods in: NetworkPolicies add up.
    w.apply(&json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-web", "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}}));
    w.start_kubelet();
    let image = format!("{}:v1", w.repo("shop/web"));
    w.apply(&deployment(ns, "web", &image, 1));
    let mut host = bare_pod(ns, "host", &image);
    host["spec"]["hostNetwork"] = json!(true);
    w.apply(&host);
    w.apply(&deployment("tw-guard-dry", "web", &image, 1));
    let op = w.operator();

    // Quarantined, but not isolated: reported on the report, the policy and an event.
    let report = eventually("the isolation gaps are reported", REACT, || async {
        let r = w.reports(ns).await.remove("deployment-web-guard").ok_or("no report")?;
        let q = r.status.clone().and_then(|s| s.quarantine).ok_or("no quarantine status")?;
        if q.quarantined == 1 && !q.ineffective.is_empty() { Ok(q) } else { Err(format!("{q:?}")) }
    })
    .await;
    assert!(report.ineffective[0].contains("allow-web"), "{report:?}");
    // The verdict may be reported a scan before the quarantine (a scan quarantines a bounded
    // number of pods): wait for the quarantine and its gap.
    w.report_verdict(ns, "pod-host-guard", "DigestDrift").await;
    eventually("the host-network pod's isolation gap is reported", REACT, || async {
        let r = w.reports(ns).await.remove("pod-host-guard").ok_or("no report")?;
        let q = r.status.and_then(|s| s.quarantine).ok_or("no quarantine status yet")?;
        if q.ineffective.iter().any(|g| g.contains("host network")) { Ok(()) } else { Err(format!("{q:?}")) }
    })
    .await;
    let status = w.policy_status("guard").await.unwrap();
    assert_eq!(condition(&status, "QuarantineIneffective").map(|c| c.0), Some("True".into()), "{status}");
    let pod = w.pods(ns, "app=web").await.remove(0).metadata.name.unwrap();
    let evs = w.events_about(ns, &pod).await;
    assert!(evs.iter().any(|(r, _)| r == "QuarantineIneffective"), "{evs:?}");

    // The dry run labels nothing and creates no NetworkPolicy, but says what it would do.
    let dry = eventually("the dry run reports what it would quarantine", REACT, || async {
        let s = w.policy_status("dry").await.ok_or("no status")?;
        if s["summary"]["wouldQuarantine"] == 1 { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    assert_eq!(dry["summary"]["quarantined"], 0, "{dry}");
    assert_eq!(quarantined(&w, "tw-guard-dry", "app=web").await, vec![false]);
    assert!(w.cp.kubectl(&["-n", "tw-guard-dry", "get", "networkpolicy", "trustwatch-quarantine"]).is_err());
    let dry_pod = w.pods("tw-guard-dry", "app=web").await.remove(0).metadata.name.unwrap();
    let evs = w.events_about("tw-guard-dry", &dry_pod).await;
    assert!(evs.iter().any(|(r, _)| r == "WouldQuarantine"), "{evs:?}");
    op.assert_authorized();
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_must_last_quarantine_after_before_a_pod_is_isolated() {
    let ns = "tw-grace";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("grace", json!({"action": "Quarantine", "quarantineAfter": "15s"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    let _op = w.operator();
    w.report_verdict(ns, "deployment-web-grace", "Verified").await;
    // A push over the tag, and the pod restarts: drift, pending for the grace period.
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.restart_pods(ns, "app=web").await;
    let r = w.report_verdict(ns, "deployment-web-grace", "DigestDrift").await;
    let since = r.status.clone().unwrap().containers[0].failing_since.clone().expect("failingSince");
    let q = r.status.unwrap().quarantine.unwrap();
    assert_eq!((q.quarantined, q.pending), (0, 1), "pending, not quarantined: {q:?}");
    assert_eq!(quarantined(&w, ns, "app=web").await, vec![false]);
    // The failure persists: quarantined once the grace period is over.
    eventually("quarantined after the grace period", Duration::from_secs(60), || async {
        if quarantined(&w, ns, "app=web").await == vec![true] { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    let r = w.reports(ns).await.remove("deployment-web-grace").unwrap();
    assert_eq!(r.status.unwrap().containers[0].failing_since.as_ref(), Some(&since), "counted from the first failure");
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_outside_the_operators_namespace_are_refused_and_credentials_never_leak() {
    let ns = "tw-secrets";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    let planted = "PLANTED-c2VjcmV0-7f3a9e";
    let secret = |namespace: &str, name: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"username": "ci", "password": planted}})
    };
    w.apply(&secret(ns, "notary-credentials"));
    w.apply(&secret("trustwatch-system", "tw-secrets-notary-credentials"));
    // The TrustRoot points at a Secret in an application namespace: refused, with what to do.
    w.apply(&w.trust_root(json!({"authSecretRef": {"name": "notary-credentials", "namespace": ns}})));
    w.apply(&w.policy("secrets", json!({"action": "Quarantine"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    let op = w.operator();
    let tr = eventually("the trust root refuses the Secret", REACT, || async {
        let s = w.trust_root_status().await.ok_or("no status")?;
        match condition(&s, "Ready") {
            Some((st, reason)) if st == "False" && reason == "AuthSecretInvalid" => Ok(s),
            _ => Err(s.to_string()),
        }
    })
    .await;
    let msg = tr.to_string();
    assert!(msg.contains("only in the operator's namespace") && msg.contains("--secret-namespace"), "{msg}");
    // In the operator's namespace it is used, and the image verifies.
    w.apply(&w.trust_root(
        json!({"authSecretRef": {"name": "tw-secrets-notary-credentials", "namespace": "trustwatch-system"}}),
    ));
    w.report_verdict(ns, "deployment-web-secrets", "Verified").await;
    eventually("the trust root is ready with its Secret", REACT, || async {
        let s = w.trust_root_status().await.ok_or("no status")?;
        if condition(&s, "Ready").map(|c| c.0) == Some("True".into()) { Ok(()) } else { Err(s.to_string()) }
    })
    .await;

    // The planted password appears nowhere trustwatch writes or says.
    let mut everything = op.logs();
    everything.push_str(&op.metrics().unwrap_or_default());
    for what in ["trustroots", "imagetrustpolicies"] {
        everything.push_str(&w.cp.kubectl(&["get", what, "-o", "yaml"]).unwrap());
    }
    for what in ["imagetrustreports", "events"] {
        everything.push_str(&w.cp.kubectl(&["get", what, "-A", "-o", "yaml"]).unwrap());
    }
    everything.push_str(&w.cp.kubectl(&["-n", ns, "get", "pods", "-o", "yaml"]).unwrap());
    assert!(everything.len() > 10_000, "the haystack holds logs, metrics and objects");
    assert!(!everything.contains(planted), "the password leaked");
    op.assert_authorized();
    let _ = w.cp.kubectl(&["-n", "trustwatch-system", "delete", "secret", "tw-secrets-notary-credentials"]);
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_rbac_rule_shows_in_status_and_logs_and_the_operator_keeps_running() {
    let ns = "tw-rbac";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("rbac", json!({})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    // config/rbac for another identity, minus the rules on imagetrustreports.
    let text = std::fs::read_to_string(repo_root().join("config/rbac/role.yaml")).unwrap();
    let docs = trustwatch::audit::parse_documents(&text).unwrap();
    let mut cluster_role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap().clone();
    let full_rules = cluster_role["rules"].clone();
    let without: Vec<_> = full_rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            !r["resources"].as_array().unwrap().iter().any(|x| x.as_str().unwrap().starts_with("imagetrustreports"))
        })
        .cloned()
        .collect();
    cluster_role["metadata"] = json!({"name": "tw-rbac-limited"});
    cluster_role["rules"] = json!(without);
    w.apply(&cluster_role);
    let subject = json!([{"kind": "User", "name": "system:serviceaccount:trustwatch-system:trustwatch-limited"}]);
    w.apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "tw-rbac-limited"}, "subjects": subject,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tw-rbac-limited"}}));
    w.apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "tw-rbac-limited", "namespace": "trustwatch-system"}, "subjects": subject,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "trustwatch-leader-election"}}));
    let mut config = OperatorConfig::new(ns);
    config.kubeconfig = Some(w.cp.dir.join("limited.kubeconfig"));
    let mut op = Operator::start(w.cp, &config);
    let status = eventually("the failure shows in the policy status", REACT, || async {
        let s = w.policy_status("rbac").await.ok_or("no status")?;
        match condition(&s, "Ready") {
            Some((st, _)) if st == "False" && s.to_string().contains("forbidden") => Ok(s),
            _ => Err(s.to_string()),
        }
    })
    .await;
    assert!(status.to_string().contains("imagetrustreports"), "{status}");
    assert!(op.logs().contains("forbidden"), "the logs say it too");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(op.is_running(), "the operator does not crash:\n{}", op.logs());

    // The rule is granted back: the operator recovers by itself.
    cluster_role["rules"] = full_rules;
    w.apply(&cluster_role);
    w.report_verdict(ns, "deployment-web-rbac", "Verified").await;
    let _ = w.cp.kubectl(&["delete", "clusterrolebinding,clusterrole", "tw-rbac-limited"]);
    let _ = w.cp.kubectl(&["-n", "trustwatch-system", "delete", "rolebinding", "tw-rbac-limited"]);
    w.cleanup().await;
}
