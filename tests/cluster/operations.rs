//! Running it: leader election, scans under pod churn, report size, long names and notes,
//! start-up and finished pods.

use crate::harness::*;
use crate::world::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

fn leading(op: &Operator) -> Option<bool> {
    let m = op.metrics().ok()?;
    metric_value(&m, "trustwatch_leader", &[("identity", &op.identity)]).map(|v| v == 1.0)
}

/// trustwatch's events in a namespace, as (reason, reporting instance).
async fn event_instances(w: &World, ns: &str) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(w.client.clone(), ns);
    api.list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("trustwatch"))
        .map(|e| (e.reason.unwrap_or_default(), e.reporting_instance.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_leader_writes_and_a_standby_takes_over_within_the_lease() {
    let ns = "tw-leader";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/bad", "v1", "unsigned");
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("leader", json!({})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    let lease = "trustwatch-leader-test".to_string();
    let start = |_: u8| {
        let mut c = OperatorConfig::new(ns);
        c.lease = Some(lease.clone());
        c.extra_args = vec!["--lease-duration".into(), "6s".into()];
        Operator::start(w.cp, &c)
    };
    let a = start(0);
    let b = start(1);
    let (leader, standby) = eventually("one replica leads, the other stands by", REACT, || async {
        match (leading(&a), leading(&b)) {
            (Some(true), Some(false)) => Ok((a.identity.clone(), b.identity.clone())),
            (Some(false), Some(true)) => Ok((b.identity.clone(), a.identity.clone())),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Both serve health and metrics (ready once their caches have synced, leader or not).
    eventually("both replicas serve health and metrics", REACT, || async {
        if a.ready() && b.ready() { Ok(()) } else { Err(format!("ready: {} {}", a.ready(), b.ready())) }
    })
    .await;
    w.report_verdict(ns, "deployment-web-leader", "Verified").await;
    let (mut leader_op, standby_op) = if leader == a.identity { (a, b) } else { (b, a) };
    assert!(!standby_op.logs().contains("scan complete"), "the standby does not scan:\n{}", standby_op.logs());

    // The leader dies (no release of the Lease): the standby takes over once it expires.
    leader_op.kill();
    let killed = Instant::now();
    eventually("the standby takes over within the lease duration", Duration::from_secs(6 + 10), || async {
        if leading(&standby_op) == Some(true) { Ok(()) } else { Err(standby_op.logs()) }
    })
    .await;
    eprintln!("takeover {:.1}s after the leader was killed (lease 6s)", killed.elapsed().as_secs_f64());
    // The new leader does the work: a new failing workload gets its report and events, by it.
    w.apply(&deployment(ns, "bad", &format!("{}:v1", w.repo("shop/bad")), 1));
    w.report_verdict(ns, "deployment-bad-leader", "Unsigned").await;
    let instances = eventually("the VerificationFailed event of the new workload", REACT, || async {
        let evs = event_instances(&w, ns).await;
        if evs.iter().any(|(r, _)| r == "VerificationFailed") { Ok(evs) } else { Err(format!("{evs:?}")) }
    })
    .await;
    for (reason, instance) in &instances {
        assert!(instance == &standby || instance == &leader, "{reason} reported by {instance}");
    }
    assert!(instances.iter().any(|(_, i)| i == &standby), "the new leader publishes: {instances:?}");
    let log = standby_op.logs();
    let leading_at = log.find("leading: starting the controllers").expect("the standby became leader");
    assert!(!log[..leading_at].contains("scan complete"), "no scan (and so no write) before it led");
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_churn_never_starves_scans_and_irrelevant_updates_trigger_none() {
    let ns = "tw-churn";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.apply(&w.trust_root(json!({"refreshInterval": "1h"})));
    // Only changes trigger scans here: the interval is an hour.
    w.apply(&w.policy("churn", json!({"interval": "1h"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    w.apply(&deployment(ns, "noisy", &format!("{}:v1", w.repo("shop/web")), 1));
    let op = w.operator();
    w.report_verdict(ns, "deployment-web-churn", "Verified").await;
    let noisy = eventually("the noisy pod runs", REACT, || async {
        w.pods(ns, "app=noisy").await.pop().and_then(|p| p.metadata.name).ok_or_else(|| "no pod".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Updates no scan reads (an annotation that is not trustwatch's): no scan.
    let scans = |op: &Operator| op.logs().matches("scan complete").count();
    let before = scans(&op);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(w.client.clone(), ns);
    for i in 0..10 {
        let patch = json!({"metadata": {"annotations": {"example.com/heartbeat": i.to_string()}}});
        pods.patch(&noisy, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(scans(&op), before, "annotations no scan reads trigger no scan");

    // Relevant churn (a label flipping every 200 ms, for 20 s): a debounce would wait for a
    // quiet moment that never comes; the throttle still scans, so a drift elsewhere shows up
    // while the churn goes on.
    let churn = {
        let pods = pods.clone();
        let noisy = noisy.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let patch = json!({"metadata": {"labels": {"churn": (i % 2).to_string()}}});
                let _ = pods.patch(&noisy, &PatchParams::default(), &Patch::Merge(&patch)).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.restart_pods(ns, "app=web").await;
    w.report_verdict(ns, "deployment-web-churn", "DigestDrift").await;
    assert!(!churn.is_finished(), "the drift was reported while the churn went on");
    churn.abort();
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_workload_makes_a_small_report_and_one_rejected_report_spares_the_others() {
    let ns = "tw-size";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("size", json!({})));
    // A real server fault: an admission policy refuses one report, as it would refuse an
    // object over a size limit.
    w.apply(&json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "tw-size-deny-one-report"},
        "spec": {"failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["trustwatch.dev"], "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["imagetrustreports", "imagetrustreports/status"]}]},
            "validations": [{"expression": "object.metadata.name != 'deployment-rejected-size'",
                "message": "report refused by the test"}]}}));
    w.apply(&json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "tw-size-deny-one-report"},
        "spec": {"policyName": "tw-size-deny-one-report", "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}}}));
    // The API server loads admission policies in the background: wait until it refuses the
    // report (a server-side dry run goes through admission), or the operator may write it first.
    eventually("the admission policy is enforced", REACT, || async {
        let report = json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustReport",
            "metadata": {"name": "deployment-rejected-size", "namespace": ns}, "spec": {}});
        match w.cp.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &report.to_string()) {
            Err(e) if e.contains("report refused by the test") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    w.start_kubelet();
    let image = format!("{}:v1", w.repo("shop/web"));
    w.apply(&deployment(ns, "huge", &image, 300));
    w.apply(&deployment(ns, "rejected", &image, 1));
    let _op = w.operator();
    let report = eventually("the report of 300 pods", Duration::from_secs(240), || async {
        let r = w.reports(ns).await.remove("deployment-huge-size").ok_or("no report")?;
        let s = r.status.clone().ok_or("no status")?;
        if s.summary.map(|x| x.pods) == Some(300) && s.verdict.map(|v| v.to_string()).as_deref() == Some("Verified") {
            Ok(r)
        } else {
            Err(format!("{:?}", s.summary))
        }
    })
    .await;
    let s = report.status.clone().unwrap();
    assert_eq!(s.containers.len(), 1, "one entry for 300 identical pods");
    assert_eq!((s.containers[0].pods, s.containers[0].sample_pods.len()), (300, 5));
    let size = serde_json::to_vec(&report).unwrap().len();
    assert!(size < 8 * 1024, "the report of 300 pods is {size} bytes");

    let status = eventually("the refused report shows in the policy status", REACT, || async {
        let s = w.policy_status("size").await.ok_or("no status")?;
        match condition(&s, "Ready") {
            Some((st, reason)) if st == "False" && reason == "ReportWriteFailed" => Ok(s),
            _ => Err(s.to_string()),
        }
    })
    .await;
    let msg = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("deployment-rejected-size") && msg.contains("report refused by the test"), "{msg}");
    assert!(!w.reports(ns).await.contains_key("deployment-rejected-size"));
    let _ = w.cp.kubectl(&[
        "delete",
        "validatingadmissionpolicybinding,validatingadmissionpolicy",
        "tw-size-deny-one-report",
    ]);
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_policy_names_label_their_reports_and_long_event_notes_are_cut_to_fit() {
    let ns = "tw-long";
    let mut w = World::new(ns).await;
    let repo = format!("shop/{}/{}", "a".repeat(90), "b".repeat(90));
    let tag = format!("v1-{}", "c".repeat(100));
    w.push_signed(&repo, &tag, "long v1");
    w.push(&repo, &tag, "long v1, rebuilt");
    let policy = format!("p{}", "-long".repeat(40));
    assert!(policy.len() > 63 && policy.len() <= 253);
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy(&policy, json!({"action": "Quarantine"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:{tag}", w.repo(&repo)), 1));
    let _op = w.operator();
    let reports = eventually("a report for the long-named policy", REACT, || async {
        let r = w.reports(ns).await;
        if r.len() == 1 { Ok(r) } else { Err(format!("{:?}", r.keys())) }
    })
    .await;
    let r = reports.values().next().unwrap();
    let label = r
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("trustwatch.dev/policy"))
        .unwrap_or_else(|| panic!("the report has the policy label: {r:#?}"));
    assert!(label.len() <= 63, "{label}");
    assert_eq!(r.status.as_ref().unwrap().policy.as_deref(), Some(policy.as_str()));
    let pod = w.pods(ns, "app=web").await.remove(0).metadata.name.unwrap();
    let notes = eventually("the Quarantined event, its note cut to 1 KiB", REACT, || async {
        let evs = w.events_about(ns, &pod).await;
        match evs.iter().find(|(r, _)| r == "Quarantined") {
            Some((_, note)) => Ok(note.clone()),
            None => Err(format!("{evs:?}")),
        }
    })
    .await;
    assert!(notes.len() <= 1024 && notes.ends_with('…'), "{} bytes: {notes}", notes.len());
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_never_reads_as_an_outage_and_finished_pods_are_not_scanned() {
    let ns = "tw-startup";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/job", "v1", "unsigned job");
    w.apply(&w.trust_root(json!({})));
    // The strictest setting: an outage would quarantine.
    w.apply(&w.policy("startup", json!({"action": "Quarantine", "onUnavailable": "Fail"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 2));
    w.apply(&job(ns, "once", &format!("{}:v1", w.repo("shop/job"))));
    let mut op = w.operator();
    // Both replicas running and verified (the kubelet writes each pod's digest when it gets to
    // it; a pod not started yet is TrustDataUnavailable, which this policy would quarantine).
    eventually("both web pods verified", REACT, || async {
        let r = w.report_verdict(ns, "deployment-web-startup", "Verified").await;
        let s = r.status.unwrap().summary.unwrap_or_default();
        if (s.pods, s.verified) == (2, 2) { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    w.report_verdict(ns, "job-once-startup", "Unsigned").await;
    op.stop();

    // A new process: its first scans must wait for the trust roots, never report them missing.
    let op2 = w.operator();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        let reports = w.reports(ns).await;
        if let Some(r) = reports.get("deployment-web-startup") {
            let s = r.status.clone().unwrap();
            assert_eq!(s.verdict.map(|v| v.to_string()).as_deref(), Some("Verified"), "after restart: {s:?}");
        }
        let labels: Vec<_> = w
            .pods(ns, "app=web")
            .await
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref().and_then(|l| l.get("trustwatch.dev/quarantined").cloned()))
            .collect();
        assert!(labels.is_empty(), "nothing quarantined by a restart: {labels:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(op2.logs().contains("scan complete"), "the new process scanned");

    // The Job's pod finishes: it runs nothing, so nothing is scanned and its report goes.
    let job_pod = w.pods(ns, "app=once").await.remove(0).metadata.name.unwrap();
    finish_pod(&w.client, ns, &job_pod, "Succeeded").await;
    eventually("the finished Job's report is removed", REACT, || async {
        if w.reports(ns).await.contains_key("job-once-startup") { Err("still there".to_string()) } else { Ok(()) }
    })
    .await;
    w.cleanup().await;
}
