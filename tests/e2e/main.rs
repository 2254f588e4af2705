//! End-to-end: the operator built from this repository, in a real Kubernetes cluster, against
//! a real notary-server running in the same cluster.
//!
//! Opt-in. Without `TRUSTWATCH_E2E=1` and a reachable cluster every cluster test writes why it
//! skipped and how to run it to stderr and passes (see [`gate`]). To run it:
//!
//! ```text
//! hack/e2e-kind.sh        # a throwaway kind cluster: builds and loads the image, runs, deletes
//! # or, against the current kubeconfig context:
//! TRUSTWATCH_E2E=1 TRUSTWATCH_IMAGE=<image the cluster can pull> \
//!     cargo test --test e2e -- --nocapture --test-threads=1
//! ```
//!
//! Needs kubectl, the notary CLI, openssl and curl on PATH. `TRUSTWATCH_E2E_KEEP=1` leaves
//! everything in place after the run; `TRUSTWATCH_E2E_REQUIRED=1` makes a skip a failure.
//!
//! What the cluster test does (namespaces `trustwatch-e2e` for notary-server and
//! `trustwatch-e2e-apps` for the workloads; removed afterwards, as is config/default when the
//! test installed it):
//!
//! 1. deploys `notary:server-0.7.0` with a TLS certificate for `notary.trustwatch-e2e.svc`
//!    and signs trust data into it with the notary CLI through `kubectl port-forward`;
//! 2. installs trustwatch (`kubectl apply -k config/default`, image `TRUSTWATCH_IMAGE`);
//! 3. applies a TrustRoot for the in-cluster server and a Quarantine policy, and four
//!    Deployments whose verdicts are Verified, DigestDrift, Unsigned and SignerRevoked (see
//!    [`scenario`] for why unpullable images are enough);
//! 4. asserts the policy's conditions and counts, a report per workload with its verdict, the
//!    quarantine label and the VerificationFailed and Quarantined events on the failing pods,
//!    and the deny-all NetworkPolicy;
//! 5. signs the unsigned image: that pod is released (Verified and Released events, label
//!    gone) while the others stay quarantined;
//! 6. switches the policy to Audit: every pod is released, the NetworkPolicy is deleted, and
//!    the reports still say what fails.
//!
//! Traffic denial itself is not tested: kind's default CNI (kindnet) does not enforce
//! NetworkPolicies, so only the NetworkPolicy object is asserted.
//!
//! The offline twin runs the same signing and the same pods through `trustwatch audit`
//! against a notary-server on loopback: it needs no cluster, and it pins the verdicts the
//! cluster test expects to the operator's decide code.

#[path = "../support/mod.rs"]
mod support;

mod checks;
mod cluster;
mod gate;
mod notary_server;
mod operator;
mod scenario;

use cluster::{Cluster, eventually, step};
use notary_server::InClusterNotary;
use scenario::{APPS_NAMESPACE, Workload};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use trustwatch::verdict::Verdict;

/// How long the operator may take to act on a change (scans run every 10s).
const REACT: Duration = Duration::from_secs(180);

#[test]
fn untrusted_pods_are_reported_quarantined_and_released_once_trusted() {
    let Some(target) = gate::cluster_or_skip("untrusted_pods_are_reported_quarantined_and_released_once_trusted")
    else {
        return;
    };
    let cluster = Cluster::new(&target.context);
    step(&format!("cluster: context {} (Kubernetes {})", target.context, target.server_version));
    let mut teardown = operator::Teardown::begin(&cluster);

    // 1. A real notary-server in the cluster, and trust data signed by the real CLI.
    let notary = InClusterNotary::deploy(&cluster);
    let signer = notary.client();
    step("signing registry.e2e/app:v1 and registry.e2e/payments:v1, then revoking the payments signer");
    let signed = scenario::sign(&signer);
    let workloads = scenario::workloads(&signed);

    // 2. The operator.
    teardown.install = Some(operator::install(&cluster));

    // 3. Trust root, policy and workloads.
    step("applying the TrustRoot, the Quarantine policy and the workloads");
    cluster.apply(&scenario::trust_root(notary_server::IN_CLUSTER_URL, &notary.ca_pem(), &signed.root_cert_pem));
    cluster.apply(&scenario::policy("Quarantine"));
    cluster.apply(&scenario::apps_namespace());
    for w in &workloads {
        cluster.apply(&scenario::deployment(w));
    }
    let pods = eventually("one pod per workload", Duration::from_secs(60), || checks::pods_of(&cluster, &workloads));

    // 4. Verdicts, reports, quarantine.
    step("waiting for the operator to verify against the in-cluster notary-server");
    eventually("the TrustRoot to verify registry.e2e/app", REACT, || {
        checks::trust_root_verified(&cluster, scenario::APP)
    });
    every_workload_is_reported_with_its_verdict(&cluster, &workloads, &pods, &signed, |w| w.initially);
    failing_pods_are_quarantined_and_the_rest_left_alone(&cluster, &workloads, &pods, |w| w.initially);
    let failing: Vec<&String> = workloads.iter().filter(|w| w.fails_initially()).map(|w| &pods[w.name]).collect();
    eventually("VerificationFailed and Quarantined events on the failing pods", REACT, || {
        checks::events_present(&cluster, &failing, &["VerificationFailed", "Quarantined"])
    });
    checks::events_absent(&cluster, &pods["signed"], &["VerificationFailed", "Quarantined"])
        .unwrap_or_else(|e| panic!("the verified pod must be left alone: {e}"));
    eventually("the quarantine NetworkPolicy", REACT, || checks::network_policy(&cluster, true));

    // 5. Fix one cause: sign the unsigned image. Its pod is released, the others are not.
    step("signing registry.e2e/unsigned:v1");
    scenario::sign_the_unsigned_repository(&signer);
    cluster.kubectl(&[
        "annotate",
        "imagetrustpolicy",
        scenario::POLICY,
        "trustwatch.dev/recheck=unsigned-is-signed",
        "--overwrite",
    ]);
    every_workload_is_reported_with_its_verdict(&cluster, &workloads, &pods, &signed, |w| w.once_signed);
    failing_pods_are_quarantined_and_the_rest_left_alone(&cluster, &workloads, &pods, |w| w.once_signed);
    eventually("Verified and Released events on the pod that is now signed", REACT, || {
        checks::events_present(&cluster, &[&pods["unsigned"]], &["Verified", "Released"])
    });
    checks::network_policy(&cluster, true)
        .unwrap_or_else(|e| panic!("pods are still quarantined, the NetworkPolicy must stay: {e}"));

    // 6. Switch the policy to Audit: everything is released, the findings stay.
    step("switching the policy to Audit");
    cluster.apply(&scenario::policy("Audit"));
    let still_failing: Vec<&String> =
        workloads.iter().filter(|w| !w.once_signed.is_trusted()).map(|w| &pods[w.name]).collect();
    eventually("every pod released under Audit", REACT, || {
        checks::policy_status(&cluster, false, workloads.len() as i64, 0)?;
        checks::quarantine_labels(&cluster, &pods, |_| false)
    });
    eventually("Released events on the pods released by the switch", REACT, || {
        checks::events_present(&cluster, &still_failing, &["Released"])
    });
    eventually("the quarantine NetworkPolicy to be deleted", REACT, || checks::network_policy(&cluster, false));
    checks::reports_match(&cluster, &workloads, &pods, &signed, |w| w.once_signed)
        .unwrap_or_else(|e| panic!("an Audit policy still reports what fails: {e}"));
    step("passed");
}

/// A report per workload, with the verdicts of this stage of the test.
fn every_workload_is_reported_with_its_verdict(
    cluster: &Cluster,
    workloads: &[Workload],
    pods: &BTreeMap<&'static str, String>,
    signed: &scenario::Signed,
    verdict: impl Fn(&Workload) -> Verdict + Copy,
) {
    let summary: Vec<String> = workloads.iter().map(|w| format!("{} {}", w.name, verdict(w))).collect();
    step(&format!("expecting reports: {}", summary.join(", ")));
    eventually("a report per workload with its verdict", REACT, || {
        checks::reports_match(cluster, workloads, pods, signed, verdict)
    });
}

/// Quarantine labels exactly on the failing pods, and the policy's counts to match.
fn failing_pods_are_quarantined_and_the_rest_left_alone(
    cluster: &Cluster,
    workloads: &[Workload],
    pods: &BTreeMap<&'static str, String>,
    verdict: impl Fn(&Workload) -> Verdict,
) {
    let failing: Vec<&str> = workloads.iter().filter(|w| !verdict(w).is_trusted()).map(|w| w.name).collect();
    step(&format!("expecting quarantined: {}", failing.join(", ")));
    eventually("the failing pods, and only those, to be quarantined", REACT, || {
        checks::policy_status(cluster, failing.is_empty(), workloads.len() as i64, failing.len() as i64)?;
        checks::quarantine_labels(cluster, pods, |w| failing.contains(&w))
    });
}

/// The verdicts the cluster test expects, from the operator's own decide code: the same
/// signing against a notary-server on loopback, the same pods as the API server shows them
/// (unpulled, no imageID), through `trustwatch audit`.
#[test]
fn the_scenario_verdicts_hold_under_trustwatch_audit_without_a_cluster() {
    let missing: Vec<&str> =
        ["notary-server", "notary", "openssl", "curl"].into_iter().filter(|b| !gate::on_path(b)).collect();
    if !missing.is_empty() {
        let msg = format!(
            "SKIPPED the_scenario_verdicts_hold_under_trustwatch_audit_without_a_cluster: not on PATH: {} \
             (`make deps` installs the Debian package notary)\n",
            missing.join(", ")
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
        return;
    }
    let server = support::NotaryServer::start(support::Variant::Local);
    let client = support::NotaryClient::new(&server);
    let signed = scenario::sign(&client);
    let workloads = scenario::workloads(&signed);
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests.json");
    let trust_root = scenario::trust_root(&server.url(), &server.ca_pem(), &signed.root_cert_pem);
    std::fs::write(&manifests, json!([trust_root, scenario::policy("Quarantine")]).to_string()).unwrap();
    let pods = dir.path().join("pods.json");
    let mut items = vec![scenario::apps_namespace()];
    items.extend(workloads.iter().map(scenario::unpulled_pod));
    std::fs::write(&pods, json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()).unwrap();

    let audit = || -> BTreeMap<String, Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_trustwatch"))
            .args(["audit", "-f", manifests.to_str().unwrap(), "--pods", pods.to_str().unwrap(), "-o", "json"])
            .output()
            .expect("run trustwatch audit");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(0 | 1)), "trustwatch audit failed: {stderr}");
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}; stderr: {stderr}"));
        let items = list["items"].as_array().cloned().unwrap_or_default();
        items.into_iter().map(|r| (r["metadata"]["name"].as_str().unwrap_or_default().to_string(), r)).collect()
    };
    let check = |reports: &BTreeMap<String, Value>, verdict: &dyn Fn(&Workload) -> Verdict| {
        assert_eq!(reports.len(), workloads.len(), "one report per workload: {:?}", reports.keys());
        for w in &workloads {
            let r = reports.get(&w.report_name()).unwrap_or_else(|| panic!("no report {}", w.report_name()));
            assert_eq!(r["metadata"]["namespace"], APPS_NAMESPACE);
            assert_eq!(r["status"]["workload"], json!({"kind": "Deployment", "name": w.name}));
            let c = &r["status"]["containers"][0];
            assert_eq!(c["verdict"], verdict(w).as_str(), "{}: {}", w.name, c["message"]);
            assert_eq!(c.get("runningDigest"), None, "{}: an unpulled image has no running digest", w.name);
        }
        let drifted = &reports["deployment-drifted-e2e-quarantine"]["status"]["containers"][0];
        assert_eq!(drifted["signedDigest"], signed.app_v1.as_str());
    };
    check(&audit(), &|w| w.initially);
    scenario::sign_the_unsigned_repository(&client);
    check(&audit(), &|w| w.once_signed);
}

#[test]
fn without_opt_in_the_cluster_tests_skip_and_say_how_to_run_them() {
    let facts = gate::Facts {
        enabled: None,
        kubeconfig: None,
        default_kubeconfig: Some("/nonexistent-home/.kube/config".into()),
        found_kubeconfigs: vec![],
        missing_tools: vec![],
    };
    let decision = gate::decide(&facts, || panic!("no cluster may be contacted without TRUSTWATCH_E2E=1"));
    let gate::Decision::Skip { reason } = decision else { panic!("must skip: {decision:?}") };
    let msg = gate::skip_message("some_test", &reason, &facts);
    for needle in [
        "SKIPPED some_test: the cluster tests are opt-in (TRUSTWATCH_E2E is not set)",
        "TRUSTWATCH_E2E (not set)",
        "KUBECONFIG (not set), then /nonexistent-home/.kube/config (missing)",
        "hack/e2e-kind.sh",
        "TRUSTWATCH_E2E=1 TRUSTWATCH_IMAGE=<operator image the cluster can pull> cargo test --test e2e -- --nocapture",
        "kubectl, notary, openssl, curl on PATH",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
    }
}

#[test]
fn with_opt_in_the_cluster_tests_run_only_when_kubectl_reaches_a_cluster() {
    let facts = gate::Facts {
        enabled: Some("1".into()),
        kubeconfig: Some("/tmp/kind-e2e.kubeconfig".into()),
        default_kubeconfig: None,
        found_kubeconfigs: vec!["/tmp/kind-e2e.kubeconfig".into()],
        missing_tools: vec![],
    };
    let target = gate::Target { context: "kind-trustwatch-e2e".into(), server_version: "v1.35.0".into() };
    assert_eq!(gate::decide(&facts, || Ok(target.clone())), gate::Decision::Run(target));

    let unreachable = gate::decide(&facts, || Err("dial tcp 127.0.0.1:6443: connect: connection refused".into()));
    assert!(matches!(&unreachable, gate::Decision::Skip { reason } if reason.contains("connection refused")));

    let no_tools = gate::Facts { missing_tools: vec!["notary"], ..facts.clone() };
    let decision = gate::decide(&no_tools, || panic!("tools are checked first"));
    assert!(matches!(&decision, gate::Decision::Skip { reason } if reason == "not on PATH: notary"), "{decision:?}");

    let no_config = gate::Facts { found_kubeconfigs: vec![], ..facts.clone() };
    let decision = gate::decide(&no_config, || panic!("the kubeconfig is checked first"));
    let gate::Decision::Skip { reason } = decision else { panic!("must skip") };
    let msg = gate::skip_message("t", &reason, &no_config);
    assert!(msg.contains("no kubeconfig file found") && msg.contains("KUBECONFIG=/tmp/kind-e2e.kubeconfig"), "{msg}");
}
