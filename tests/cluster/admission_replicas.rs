//! Every replica answers admission: a follower keeps up with the Secrets and ConfigMaps its
//! trust roots are built from (only the leader reconciles TrustRoots, so the follower reads
//! them again itself, at the trust root's refreshInterval, at most every 30 s), and a replica
//! is ready only once its webhook listens.

use crate::admission::{WEBHOOK, dry_run, patch_webhook, webhook_configuration};
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

/// Two replicas that both serve the webhook, the leader and the standby, share one CA and
/// both answer: the API server is sent to each in turn, and each refuses the unsigned image
/// and admits the signed one.
#[tokio::test(flavor = "multi_thread")]
async fn the_leader_and_the_standby_both_answer_with_one_ca() {
    let _turn = WEBHOOK.lock().await;
    let ns = "tw-admit-two";
    let mut w = World::new(ns).await;
    w.push_signed("shop/web", "v1", "web v1");
    w.push("shop/web", "v2", "web v2, never signed");
    w.apply(&w.trust_root(json!({})));
    w.apply(&w.policy("admit-two", json!({"admission": {"mode": "Enforce"}})));
    let (a, b) = (free_port(), free_port());
    w.cp.apply(&webhook_configuration(&format!("https://127.0.0.1:{a}/validate"), &[ns], "Fail")).unwrap();
    let first = w.operator_with(&["--webhook-addr", &format!("127.0.0.1:{a}"), "--webhook-host", "127.0.0.1"]);
    leads(&first).await;
    let second = w.operator_with(&["--webhook-addr", &format!("127.0.0.1:{b}"), "--webhook-host", "127.0.0.1"]);
    let web = w.repo("shop/web");
    let signed = deployment(ns, "signed", &format!("{web}:v1"), 1);
    let unsigned = deployment(ns, "unsigned", &format!("{web}:v2"), 1);
    for (port, op) in [(a, &first), (b, &second)] {
        patch_webhook(w.cp, "/webhooks/0/clientConfig/url", json!(format!("https://127.0.0.1:{port}/validate")));
        eventually("this replica admits the signed image", REACT, || {
            let r = dry_run(w.cp, &signed);
            async move { r }
        })
        .await;
        let err = dry_run(w.cp, &unsigned).expect_err("an unsigned image was admitted");
        assert!(
            err.contains(&format!("trustwatch: image {web}:v2 is Unsigned under ImageTrustPolicy admit-two")),
            "{err}"
        );
        let m = op.metrics().unwrap();
        let denied =
            metric_value(&m, "trustwatch_admission_requests_total", &[("kind", "Deployment"), ("effect", "denied")]);
        assert!(denied.is_some_and(|v| v >= 1.0), "replica on {port} did not answer: {m}");
        op.assert_authorized();
    }
    // One leads, the other stands by; the caBundle both are served under is one CA.
    let leader =
        |op: &Operator| metric_value(&op.metrics().unwrap(), "trustwatch_leader", &[("identity", &op.identity)]);
    assert_eq!((leader(&first), leader(&second)), (Some(1.0), Some(0.0)));
    let _ = w.cp.kubectl(&["delete", "validatingwebhookconfiguration", "trustwatch", "--wait=false"]);
    w.cleanup().await;
}
