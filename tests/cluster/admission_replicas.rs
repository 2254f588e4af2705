//! Every replica answers admission: a follower keeps up with the Secrets and ConfigMaps its
//! trust roots are built from (only the leader reconciles TrustRoots, so the follower reads
//! them again itself, at the trust root's refreshInterval, at most every 30 s), and a replica
//! is ready only once its webhook listens.

use crate::admission::{WEBHOOK, dry_run, webhook_configuration};
use crate::harness::*;
use crate::world::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_refuses_once_the_key_in_its_configmap_is_replaced() {
    use crate::support::oci::Cosign;
    let _turn = WEBHOOK.lock().await;
    let ns = "tw-admit-cm";
    let w = World::new(ns).await;
    let cosign = Cosign::new();
    let (release, release_pub) = cosign.generate_key_pair("release");
    let (_, other_pub) = cosign.generate_key_pair("other");
    let image = w.push("shop/app", "v1", "app v1");
    let tag = format!("{}:v1", w.repo("shop/app"));
    cosign.sign(&format!("{}@{}", w.repo("shop/app"), image.digest), &release, &[], &[]);

    // The key comes from a ConfigMap of the operator's namespace.
    let cm = format!("{ns}-keys");
    let keys = |public: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": cm, "namespace": "trustwatch-system"}, "data": {"cosign.pub": public}})
    };
    w.apply(&keys(&release_pub));
    let root = format!("{ns}-cosign");
    w.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": root, "labels": {INSTANCE_LABEL: ns}},
        "spec": {"cosign": {"keys": [{"name": "release", "configMapKeyRef": {"name": cm, "key": "cosign.pub"}}]},
                 "registry": {"plainHTTP": true}, "refreshInterval": "10s"}}));
    let rule = json!([{"pattern": format!("{}/**", w.registry.host()), "trustRoot": root}]);
    w.apply(&w.policy("admit-cm", json!({"images": rule, "admission": {"mode": "Enforce"}})));

    // A leader that serves no webhook, then the follower that answers.
    let leader = w.operator();
    leads(&leader).await;
    let port = free_port();
    w.cp.apply(&webhook_configuration(&format!("https://127.0.0.1:{port}/validate"), &[ns], "Fail")).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let follower = w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1"]);
    eventually("the follower admits the image the ConfigMap's key signed", REACT, || {
        let r = dry_run(w.cp, &deployment(ns, "app", &tag, 1));
        async move { r }
    })
    .await;
    assert!(cosign.verify(&tag, &release_pub, &[], &[]).ok, "cosign verify refuses what trustwatch admitted");

    // The key is replaced in the ConfigMap: the follower, which reconciles nothing, refuses
    // once it has read the ConfigMap again, as the reference client does with the new key.
    w.apply(&keys(&other_pub));
    let err = eventually("the follower refuses after the key was replaced", REACT, || {
        let r = dry_run(w.cp, &deployment(ns, "app", &tag, 1));
        async move {
            match r {
                Ok(out) => Err(format!("still admitted: {out}")),
                Err(e) => Ok(e),
            }
        }
    })
    .await;
    assert!(err.contains(&format!("trustwatch: image {tag} (sha256:")), "{err}");
    assert!(err.contains("under ImageTrustPolicy admit-cm"), "{err}");
    assert!(!err.contains("TrustDataUnavailable"), "a replaced key is not an outage: {err}");
    assert!(!cosign.verify(&tag, &other_pub, &[], &[]).ok, "cosign verify accepts what trustwatch refused");
    let m = follower.metrics().unwrap();
    assert_eq!(metric_value(&m, "trustwatch_leader", &[("identity", &follower.identity)]), Some(0.0), "{m}");
    follower.assert_authorized();
    let _ = w.cp.kubectl(&["delete", "validatingwebhookconfiguration", "trustwatch", "--wait=false"]);
    let _ = w.cp.kubectl(&["delete", "configmap", "-n", "trustwatch-system", &cm, "--wait=false"]);
    w.cleanup().await;
}

/// `/readyz` says ready only once the webhook listens: a Service then sends the API server's
/// calls to replicas that answer them.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_whose_webhook_cannot_listen_is_not_ready_until_it_can() {
    let ns = "tw-admit-ready";
    let w = World::new(ns).await;
    // Another process holds the webhook's address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let op = w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1"]);
    eventually("the operator says why it is not ready", REACT, || {
        let logs = op.logs();
        async move { if logs.contains("the webhook cannot listen") { Ok(()) } else { Err(logs) } }
    })
    .await;
    assert!(op.metrics().is_ok(), "the operator serves its metrics meanwhile");
    assert!(!op.ready(), "ready while the webhook does not listen");
    drop(taken);
    eventually("ready once the webhook listens", REACT, || {
        let ready = op.ready();
        async move { if ready { Ok(()) } else { Err("not ready".to_string()) } }
    })
    .await;
    assert!(op.logs().contains("admission webhook serving"), "{}", op.logs());
    w.cleanup().await;
}
