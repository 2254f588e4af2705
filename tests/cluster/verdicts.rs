//! Verdicts on real workloads: every workload kind, every verdict, reports owned by their
//! workload and collected with it, status conditions, `kubectl get` columns, and events on
//! transitions only.

use crate::harness::*;
use crate::world::*;
use kube::api::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_kind_gets_a_report_with_the_verdict_of_the_digest_it_runs() {
    let ns = "tw-verdicts";
    let mut w = World::new(ns).await;
    // Signed and verified.
    w.push_signed("shop/web", "v1", "web v1");
    // Signed, then rebuilt and pushed over the tag without signing: pods pull the new digest.
    w.push_signed("shop/api", "v1", "api v1");
    w.push("shop/api", "v1", "api v1, rebuilt");
    // Signed by targets/releases, whose only key is then removed.
    w.push("shop/db", "v1", "db v1");
    w.init("shop/db");
    w.add_signer("shop/db", "targets/releases", "ci");
    w.sign("shop/db", "v1", &["targets/releases"]);
    w.revoke_signer("shop/db", "targets/releases");
    // Signed by a delegation whose certificate expires in 3 days (warning window: 7 days).
    w.push("shop/agent", "v1", "agent v1");
    w.init("shop/agent");
    w.add_expiring_signer("shop/agent", "targets/releases", "short-lived", 3);
    w.sign("shop/agent", "v1", &["targets/releases"]);
    // Pushed, never signed.
    w.push("shop/batch", "v1", "batch v1");

    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("verdicts", json!({})));
    w.start_kubelet();
    let img = |r: &str| format!("{}:v1", w.repo(r));
    for obj in [
        deployment(ns, "web", &img("shop/web"), 2),
        deployment(ns, "api", &img("shop/api"), 1),
        statefulset(ns, "db", &img("shop/db"), 1),
        daemonset(ns, "agent", &img("shop/agent")),
        job(ns, "batch", &img("shop/batch")),
        cronjob(ns, "nightly", &img("shop/web")),
        bare_pod(ns, "debug", &img("shop/batch")),
    ] {
        w.apply(&obj);
    }
    // What `kubectl create job --from=cronjob/nightly` does: a Job owned by the CronJob.
    w.cp.kubectl(&["-n", ns, "create", "job", "nightly-manual", "--from=cronjob/nightly"]).unwrap();
    let op = w.operator();

    for (report, verdict) in [
        ("deployment-web-verdicts", "Verified"),
        ("deployment-api-verdicts", "DigestDrift"),
        ("statefulset-db-verdicts", "SignerRevoked"),
        ("daemonset-agent-verdicts", "ExpiringSoon"),
        ("job-batch-verdicts", "Unsigned"),
        ("cronjob-nightly-verdicts", "Verified"),
        ("pod-debug-verdicts", "Unsigned"),
    ] {
        w.report_verdict(ns, report, verdict).await;
    }

    // Each report is owned by its workload (the top owner, found through ReplicaSets and Jobs).
    let reports = w.reports(ns).await;
    for (report, kind, name) in [
        ("deployment-web-verdicts", "Deployment", "web"),
        ("statefulset-db-verdicts", "StatefulSet", "db"),
        ("daemonset-agent-verdicts", "DaemonSet", "agent"),
        ("job-batch-verdicts", "Job", "batch"),
        ("cronjob-nightly-verdicts", "CronJob", "nightly"),
        ("pod-debug-verdicts", "Pod", "debug"),
    ] {
        let owners = reports[report].metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{report}: {owners:?}");
        assert_eq!((owners[0].kind.as_str(), owners[0].name.as_str()), (kind, name), "{report}");
        let uid =
            w.cp.kubectl(&["-n", ns, "get", &kind.to_lowercase(), name, "-o", "jsonpath={.metadata.uid}"]).unwrap();
        assert_eq!(owners[0].uid, uid, "{report} is owned by the live {kind}");
    }
    let api = &reports["deployment-api-verdicts"].status.as_ref().unwrap().containers[0];
    let pushed = w.registry.resolve("shop/api", "v1").unwrap();
    assert_eq!(api.running_digest.as_deref(), Some(pushed.digest.as_str()), "the digest the registry served");
    assert_ne!(api.signed_digest, api.running_digest, "drift shows both digests");
    assert!(api.message.contains(&pushed.digest), "{}", api.message);

    // Policy and trust root status.
    let status = w.policy_status("verdicts").await.unwrap();
    assert_eq!(condition(&status, "Ready"), Some(("True".into(), "Ready".into())), "{status}");
    assert_eq!(condition(&status, "Compliant"), Some(("False".into(), "SignerRevoked".into())), "{status}");
    let tr = eventually("the trust root reports its repositories", REACT, || async {
        let s = w.trust_root_status().await.ok_or("no status")?;
        if s["repositoryCount"].as_i64() == Some(5) { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    assert_eq!(condition(&tr, "Ready").map(|c| c.0), Some("True".into()), "{tr}");

    // The columns the README shows.
    let out = w.cp.kubectl(&["get", "itr", "-n", ns]).unwrap();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "KIND", "WORKLOAD", "POLICY", "VERDICT", "VERIFIED", "FAILING", "LAST", "VERIFIED", "AGE"]
    );
    assert!(out.lines().any(|l| l.starts_with("deployment-api-verdicts") && l.contains("DigestDrift")), "{out}");
    let out = w.cp.kubectl(&["get", "itp", "verdicts"]).unwrap();
    assert!(
        out.lines().next().unwrap().contains("ACTION   PODS   VERIFIED   FAILING   QUARANTINED   COMPLIANT"),
        "{out}"
    );
    let out = w.cp.kubectl(&["get", "troot", ns]).unwrap();
    assert!(out.contains("SERVER") && out.contains("READY") && out.contains("True"), "{out}");

    // Events on transitions only: one VerificationFailed per failing pod, however many scans.
    let api_pod = w.pods(ns, "app=api").await.remove(0).metadata.name.unwrap();
    eventually("VerificationFailed on the drifted pod", REACT, || async {
        let evs = w.events_about(ns, &api_pod).await;
        if evs.iter().any(|(r, _)| r == "VerificationFailed") { Ok(()) } else { Err(format!("{evs:?}")) }
    })
    .await;
    for i in 0..2 {
        w.cp.kubectl(&["annotate", "--overwrite", "itp", "verdicts", &format!("trustwatch.dev/recheck=again-{i}")])
            .unwrap();
        eventually("a forced scan completes", REACT, || async {
            let s = w.policy_status("verdicts").await.ok_or("no status")?;
            let t = s["lastScanTime"].as_str().unwrap_or_default().to_string();
            if t.as_str() > status["lastScanTime"].as_str().unwrap_or_default() { Ok(()) } else { Err(t) }
        })
        .await;
    }
    let evs = w.events_about(ns, &api_pod).await;
    let failed = evs.iter().filter(|(r, _)| r == "VerificationFailed").count();
    assert_eq!(failed, 1, "one event for one transition: {evs:?}");

    // Deleting a workload deletes its report (garbage collector, ownerReferences).
    w.cp.kubectl(&["-n", ns, "delete", "deployment", "api", "--wait=false"]).unwrap();
    let reports_api: Api<trustwatch::crd::ImageTrustReport> = Api::namespaced(w.client.clone(), ns);
    eventually("the garbage collector deletes the report of the deleted Deployment", REACT, || async {
        match reports_api.get_opt("deployment-api-verdicts").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|o| o.map(|r| r.metadata.deletion_timestamp)))),
        }
    })
    .await;
    op.assert_authorized();
    w.cleanup().await;
}
