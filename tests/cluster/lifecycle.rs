//! Re-verification triggers, quarantine and its release, restarts and outages.

use crate::harness::*;
use crate::world::*;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use serde_json::json;
use std::time::Duration;

fn entry_verdict(r: &trustwatch::crd::ImageTrustReport) -> String {
    r.status.as_ref().and_then(|s| s.verdict).map(|v| v.to_string()).unwrap_or_default()
}

async fn pod_label(w: &World, ns: &str, selector: &str, label: &str) -> Vec<Option<String>> {
    w.pods(ns, selector).await.iter().map(|p| p.metadata.labels.as_ref().and_then(|l| l.get(label).cloned())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn re_signs_removed_signers_and_new_image_ids_lead_to_rescans() {
    let ns = "tw-rescan";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/pay", "v1", "pay v1");
    w.init("shop/pay");
    w.add_signer("shop/pay", "targets/releases", "ci");
    w.sign("shop/pay", "v1", &["targets/releases"]);
    w.apply(&w.trust_root(json!({"refreshInterval": "10s"})));
    w.apply(&w.policy("rescan", json!({"interval": "10m"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    w.apply(&deployment(ns, "pay", &format!("{}:v1", w.repo("shop/pay")), 1));
    let _op = w.operator();
    w.report_verdict(ns, "deployment-web-rescan", "Verified").await;
    w.report_verdict(ns, "deployment-pay-rescan", "Verified").await;

    // A new image is pushed over the tag, unsigned, and the pod restarts: its imageID changes.
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.restart_pods(ns, "app=web").await;
    w.report_verdict(ns, "deployment-web-rescan", "DigestDrift").await;

    // The tag is re-signed on the Notary server for what now runs: the next trust data refresh
    // notices, and the policy scans again without waiting for its 10m interval.
    w.sign("shop/web", "v1", &[]);
    w.report_verdict(ns, "deployment-web-rescan", "Verified").await;

    // The signer of pay loses its only key.
    w.revoke_signer("shop/pay", "targets/releases");
    w.report_verdict(ns, "deployment-pay-rescan", "SignerRevoked").await;
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_long_intervals_a_recheck_annotation_forces_fresh_trust_data() {
    let ns = "tw-recheck";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.apply(&w.trust_root(json!({"refreshInterval": "1h"})));
    w.apply(&w.policy("recheck", json!({"interval": "1h"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    let _op = w.operator();
    w.report_verdict(ns, "deployment-web-recheck", "Verified").await;

    // The tag is re-signed for another digest, so the running one drifts; nobody refreshes
    // for an hour: the report still says Verified after several scans' worth of time.
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.sign("shop/web", "v1", &[]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(entry_verdict(&w.reports(ns).await["deployment-web-recheck"]), "Verified");

    // `kubectl annotate pod ... trustwatch.dev/recheck=...` on the pod forces fresh trust data.
    let pod = w.pods(ns, "app=web").await.remove(0).metadata.name.unwrap();
    w.cp.kubectl(&["-n", ns, "annotate", "pod", &pod, "trustwatch.dev/recheck=1"]).unwrap();
    w.report_verdict(ns, "deployment-web-recheck", "DigestDrift").await;
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_isolates_and_is_released_when_trusted_again_and_when_the_policy_goes() {
    let ns = "tw-quarantine";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("quarantine", json!({"action": "Quarantine"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 2));
    let op = w.operator();
    w.report_verdict(ns, "deployment-web-quarantine", "DigestDrift").await;
    let nps: Api<NetworkPolicy> = Api::namespaced(w.client.clone(), ns);
    eventually("both pods are quarantined and the deny-all NetworkPolicy exists", REACT, || async {
        let labels = pod_label(&w, ns, "app=web", "trustwatch.dev/quarantined").await;
        let np = nps.get_opt("trustwatch-quarantine").await.map_err(|e| e.to_string())?;
        if labels.len() == 2 && labels.iter().all(|l| l.as_deref() == Some("true")) && np.is_some() {
            Ok(())
        } else {
            Err(format!("labels {labels:?}, policy {:?}", np.map(|n| n.spec)))
        }
    })
    .await;
    let np = nps.get("trustwatch-quarantine").await.unwrap();
    let spec = serde_json::to_value(np.spec.unwrap()).unwrap();
    assert_eq!(spec["podSelector"], json!({"matchLabels": {"trustwatch.dev/quarantined": "true"}}));
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(spec.get("ingress").is_none() && spec.get("egress").is_none(), "no rule: deny all: {spec}");
    let status = w.policy_status("quarantine").await.unwrap();
    assert_eq!(status["summary"]["quarantined"], 2, "{status}");

    // Re-signed for what runs: released, and the NetworkPolicy goes with the last quarantine.
    w.sign("shop/web", "v1", &[]);
    eventually("the pods are released and the NetworkPolicy removed", REACT, || async {
        let labels = pod_label(&w, ns, "app=web", "trustwatch.dev/quarantined").await;
        let np = nps.get_opt("trustwatch-quarantine").await.map_err(|e| e.to_string())?;
        if labels.iter().all(|l| l.is_none()) && np.is_none() { Ok(()) } else { Err(format!("{labels:?} {np:?}")) }
    })
    .await;
    let pod = w.pods(ns, "app=web").await.remove(0).metadata.name.unwrap();
    let reasons: Vec<String> = w.events_about(ns, &pod).await.into_iter().map(|(r, _)| r).collect();
    for r in ["VerificationFailed", "Quarantined", "Verified", "Released"] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }

    // Drifted again, quarantined again; then the policy is deleted: its finalizer releases.
    w.push("shop/web", "v1", "web v1, rebuilt twice");
    w.restart_pods(ns, "app=web").await;
    eventually("quarantined again", REACT, || async {
        let labels = pod_label(&w, ns, "app=web", "trustwatch.dev/quarantined").await;
        if labels.iter().all(|l| l.as_deref() == Some("true")) { Ok(()) } else { Err(format!("{labels:?}")) }
    })
    .await;
    w.cp.kubectl(&["delete", "itp", "quarantine", "--wait=false"]).unwrap();
    eventually("deleting the policy releases its pods, removes its NetworkPolicy and reports", REACT, || async {
        let labels = pod_label(&w, ns, "app=web", "trustwatch.dev/quarantined").await;
        let np = nps.get_opt("trustwatch-quarantine").await.map_err(|e| e.to_string())?;
        let reports = w.reports(ns).await;
        let policy_gone = w.cp.kubectl(&["get", "itp", "quarantine"]).is_err();
        if labels.iter().all(|l| l.is_none()) && np.is_none() && reports.is_empty() && policy_gone {
            Ok(())
        } else {
            Err(format!(
                "labels {labels:?}, np {}, reports {:?}, policy gone {policy_gone}",
                np.is_some(),
                reports.keys()
            ))
        }
    })
    .await;
    op.assert_authorized();
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_operator_keeps_rollback_protection_from_status() {
    let ns = "tw-restart";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    // More versions of targets, snapshot and timestamp.
    for tag in ["v2", "v3"] {
        w.push("shop/web", tag, &format!("web {tag}"));
        w.sign("shop/web", tag, &[]);
    }
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("restart", json!({})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 1));
    let mut op = w.operator();
    w.report_verdict(ns, "deployment-web-restart", "Verified").await;
    let versions = eventually("the trust root remembers the trusted versions", REACT, || async {
        let s = w.trust_root_status().await.ok_or("no status")?;
        let v = s["repositories"][0]["versions"].clone();
        if v["targets"].as_i64().unwrap_or(0) >= 4 { Ok(v) } else { Err(s.to_string()) }
    })
    .await;
    op.kill();

    // While the operator is down, the repository is served as it was at its first publish (a
    // server restored from an old backup): same root key, lower versions.
    let gun = w.repo("shop/web");
    let old = crate::support::NotaryServer::start(crate::support::Variant::Local);
    let replay = crate::support::NotaryClient::new(&old);
    std::fs::create_dir_all(replay.trust_dir().join("private")).unwrap();
    copy_dir(&w.signer.trust_dir().join("private"), &replay.trust_dir().join("private"));
    replay.init(&gun);
    let v1 = w.registry.resolve("shop/web", "v1").unwrap();
    replay.add_hash(&gun, "v1", v1.size, v1.hex(), &[]);
    let mut tr = w.trust_root(json!({}));
    tr["spec"]["server"] = json!(old.url());
    tr["spec"]["caBundle"] = json!(old.ca_pem());
    w.apply(&tr);

    // A new operator reads the trusted versions back from status: the old data is a rollback.
    let _op2 = w.operator();
    let r = w.report_verdict(ns, "deployment-web-restart", "Tampered").await;
    let c = &r.status.unwrap().containers[0];
    assert_eq!(c.reason, "Rollback", "{c:?} (trusted versions before the restart: {versions})");
    w.cleanup().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_quarantines_nothing_shows_the_last_good_verification_and_heals_by_itself() {
    let ns = "tw-outage";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.apply(&w.trust_root(json!({"refreshInterval": "10s"})));
    w.apply(&w.policy("outage", json!({"action": "Quarantine", "onUnavailable": "Ignore", "interval": "10s"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{}:v1", w.repo("shop/web")), 2));
    let _op = w.operator();
    let good = w.report_verdict(ns, "deployment-web-outage", "Verified").await;
    let last_good = good.status.unwrap().containers[0].last_trusted.clone().expect("lastTrusted");

    // The Notary server stops answering (SIGSTOP: a hung server; its data is kept).
    let pid = w.notary.server_pid();
    signal(pid, "STOP");
    w.cp.kubectl(&["annotate", "--overwrite", "itp", "outage", "trustwatch.dev/recheck=outage"]).unwrap();
    let r = w.report_verdict(ns, "deployment-web-outage", "TrustDataUnavailable").await;
    let c = &r.status.unwrap().containers[0];
    assert_eq!(c.last_trusted.as_ref(), Some(&last_good), "the last good verification is shown: {c:?}");
    let labels = pod_label(&w, ns, "app=web", "trustwatch.dev/quarantined").await;
    assert!(labels.iter().all(|l| l.is_none()), "an outage quarantines nothing: {labels:?}");
    let status = w.policy_status("outage").await.unwrap();
    assert_eq!(status["summary"]["quarantined"], 0);
    assert_eq!(condition(&status, "Compliant").map(|c| c.0), Some("True".into()), "not failing under Ignore: {status}");

    // The server comes back: the verdicts come back by themselves.
    signal(pid, "CONT");
    w.report_verdict(ns, "deployment-web-outage", "Verified").await;
    let labels = pod_label(&w, ns, "app=web", "trustwatch.dev/quarantined").await;
    assert!(labels.iter().all(|l| l.is_none()), "{labels:?}");
    w.cleanup().await;
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap().success();
    assert!(ok, "kill -{sig} {pid}");
}

async fn trust_root_version(w: &World) -> String {
    let api: Api<trustwatch::crd::TrustRoot> = Api::all(w.client.clone());
    api.get(&w.name).await.unwrap().metadata.resource_version.unwrap()
}

/// Successful refreshes of the world's trust root, from the operator's /metrics.
fn refreshes(op: &Operator, trust_root: &str) -> u64 {
    let text = op.metrics().unwrap_or_default();
    let labels = [("trust_root", trust_root), ("result", "success")];
    metric_value(&text, "trustwatch_trust_refreshes_total", &labels).unwrap_or(0.0) as u64
}

fn repository<'a>(status: &'a serde_json::Value, gun: &str) -> Option<&'a serde_json::Value> {
    status["repositories"].as_array()?.iter().find(|r| r["gun"] == gun)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trust_root_status_is_written_when_trust_data_or_the_object_changed_and_only_then() {
    let ns = "tw-trstatus";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    let gun = w.repo("shop/web");
    w.apply(&w.trust_root(json!({"refreshInterval": "10s"})));
    w.apply(&w.policy("trstatus", json!({"interval": "10s"})));
    w.start_kubelet();
    w.apply(&deployment(ns, "web", &format!("{gun}:v1"), 1));
    let op = w.operator();
    w.report_verdict(ns, "deployment-web-trstatus", "Verified").await;
    let status = eventually("the repository in status", REACT, || async {
        let s = w.trust_root_status().await.ok_or("no status")?;
        repository(&s, &gun).filter(|r| r["versions"]["targets"].as_i64().is_some()).ok_or(s.to_string())?;
        Ok(s)
    })
    .await;
    let targets = repository(&status, &gun).unwrap()["versions"]["targets"].as_i64().unwrap();

    // Unchanged trust data: refresh after refresh, the TrustRoot is not written.
    let before = (trust_root_version(&w).await, refreshes(&op, &w.name));
    eventually("three more refreshes", REACT, || async {
        let n = refreshes(&op, &w.name);
        if n >= before.1 + 3 { Ok(n) } else { Err(format!("{n} refreshes, {} before", before.1)) }
    })
    .await;
    assert_eq!(trust_root_version(&w).await, before.0, "unchanged trust data wrote the TrustRoot");

    // Someone else rewrites the status: the next refresh puts the repositories back.
    w.cp.kubectl(&[
        "patch",
        "trustroot",
        &w.name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"repositories":[]}}"#,
    ])
    .unwrap();
    eventually("the repositories written back", REACT, || async {
        let s = w.trust_root_status().await.ok_or("no status")?;
        repository(&s, &gun).map(|_| ()).ok_or(s.to_string())
    })
    .await;

    // A publish on the server: the new targets version shows.
    w.push("shop/web", "v1", "web v1, rebuilt");
    w.sign("shop/web", "v1", &[]);
    eventually("the new targets version", REACT, || async {
        let s = w.trust_root_status().await.ok_or("no status")?;
        let r = repository(&s, &gun).ok_or(s.to_string())?;
        if r["versions"]["targets"].as_i64() > Some(targets) { Ok(()) } else { Err(r.to_string()) }
    })
    .await;

    // A failure shows as the repository's last error, and goes when the server answers again.
    let pid = w.notary.server_pid();
    signal(pid, "STOP");
    for (what, failing) in [("the refresh failure in status", true), ("the failure cleared", false)] {
        if !failing {
            signal(pid, "CONT");
        }
        eventually(what, REACT, || async {
            let s = w.trust_root_status().await.ok_or("no status")?;
            let r = repository(&s, &gun).ok_or(s.to_string())?;
            if r["lastError"].is_string() == failing { Ok(()) } else { Err(r.to_string()) }
        })
        .await;
    }
    w.cleanup().await;
}
