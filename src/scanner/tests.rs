//! The decide layer with small builders and a fixed clock.

use super::pods::{ContainerView, OwnerIndex, PodView, Workload, pod_view, strip_pod};
use super::*;
use serde_json::json;

const NOW: &str = "2026-11-22T12:00:00Z";
const OP_NS: &str = "trustwatch-system";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn digest(seed: &str) -> String {
    format!("sha256:{}", crate::tuf::keys::sha256_hex(seed.as_bytes()))
}

fn mk_policy(extra: serde_json::Value) -> ImageTrustPolicySpec {
    let mut base = json!({
        "images": [
            {"pattern": "registry.example.com/team/**", "trustRoot": "corp"},
            {"pattern": "registry.example.com/team/secure", "trustRoot": "corp", "signers": ["releases", "targets/qa"]}
        ]
    });
    base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn mk_pod(ns: &str, name: &str, image: &str, running: Option<&str>) -> PodView {
    PodView {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels: BTreeMap::new(),
        quarantine_reason: None,
        workload: Workload {
            kind: "Deployment".into(),
            name: format!("{name}-deploy"),
            api_version: "apps/v1".into(),
            uid: None,
        },
        containers: vec![ContainerView {
            name: "app".into(),
            image: image.into(),
            running_digest: running.map(str::to_string),
        }],
    }
}

fn quarantined(mut p: PodView, policy: &str) -> PodView {
    p.labels.insert(crate::crd::QUARANTINED_LABEL.into(), "true".into());
    p.quarantine_reason = Some(format!("{policy}: DigestDrift: app: old"));
    p
}

fn res(verdict: Verdict) -> Resolution {
    let image = crate::image::ImageRef::parse("registry.example.com/team/app:v1").unwrap();
    let mut r = Resolution::new(
        crate::verifier::SignatureFormat::NotaryV1,
        &image,
        verdict,
        verdict.to_string(),
        format!("it is {verdict}"),
    );
    r.image = String::new();
    r.digest = Some(digest("signed"));
    r.signers = vec!["targets".into()];
    r.expires = Some("2026-12-01T00:00:00Z".parse().unwrap());
    r.expires_role = Some("targets".into());
    r
}

struct Scan {
    spec: ImageTrustPolicySpec,
    pods: Vec<PodView>,
    verdicts: Vec<Verdict>,
    previous: HashMap<(String, String, String), Verdict>,
}

impl Scan {
    fn new(spec: ImageTrustPolicySpec, pods: Vec<PodView>, verdicts: Vec<Verdict>) -> Scan {
        Scan { spec, pods, verdicts, previous: HashMap::new() }
    }

    fn run(&self) -> ScanOutcome {
        let plan = plan(&self.spec, &self.pods);
        // Verdicts are handed out in plan order to the Verify entries.
        let mut results = HashMap::new();
        let mut vs = self.verdicts.iter();
        for (_, p) in &plan.containers {
            if let ContainerPlan::Verify(k) = p {
                if let Some(v) = vs.next() {
                    results.insert(k.clone(), res(*v));
                }
            }
        }
        let warnings = HashMap::from([("corp".to_string(), SignedDuration::from_hours(7 * 24))]);
        decide(&DecideInput {
            policy: "prod",
            spec: &self.spec,
            pods: &self.pods,
            plan: &plan,
            results: &results,
            warnings: &warnings,
            previous: &self.previous,
            operator_namespace: OP_NS,
            now: now(),
        })
    }
}

fn img(n: &str) -> String {
    format!("registry.example.com/team/{n}:v1")
}

#[test]
fn plan_verifies_the_running_digest_against_the_most_specific_pattern() {
    let spec = mk_policy(json!({}));
    let d = digest("running");
    let pods = vec![
        mk_pod("app", "a", &img("app"), Some(&d)),
        mk_pod("app", "b", &img("secure"), None),
        mk_pod("app", "c", "docker.io/library/nginx:1", None),
        mk_pod("app", "d", "Bad//Image", None),
    ];
    let p = plan(&spec, &pods);
    let plans: Vec<&ContainerPlan> = p.containers.iter().map(|(_, c)| c).collect();
    assert_eq!(
        plans[0],
        &ContainerPlan::Verify(VerifyKey {
            trust_root: "corp".into(),
            image: format!("{}@{d}", img("app")),
            signers: vec![]
        })
    );
    assert_eq!(
        plans[1],
        &ContainerPlan::Verify(VerifyKey {
            trust_root: "corp".into(),
            image: img("secure"),
            signers: vec!["targets/qa".into(), "targets/releases".into()]
        })
    );
    assert_eq!(plans[2], &ContainerPlan::NotCovered { gun: Some("docker.io/library/nginx".into()) });
    assert!(matches!(plans[3], ContainerPlan::Invalid { .. }));
    assert_eq!(p.keys().len(), 2);
}

#[test]
fn verified_pods_get_a_report_per_workload_and_no_events_or_actions() {
    let s = Scan::new(
        mk_policy(json!({"action": "Quarantine"})),
        vec![mk_pod("app", "a", &img("app"), None)],
        vec![Verdict::Verified],
    );
    let out = s.run();
    assert_eq!(out.reports.len(), 1);
    let r = &out.reports[0];
    assert_eq!(r.name, "deployment-a-deploy-prod");
    assert_eq!(r.status.verdict, Some(Verdict::Verified));
    assert_eq!(r.status.containers[0].signed_digest, Some(digest("signed")));
    assert_eq!(r.status.containers[0].trust_root.as_deref(), Some("corp"));
    assert_eq!(out.summary, PolicySummary { pods: 1, containers: 1, verified: 1, ..Default::default() });
    assert!(out.events.is_empty() && out.quarantine.is_empty());
    assert_eq!(out.worst, Some(Verdict::Verified));
}

#[test]
fn drift_under_a_quarantine_policy_labels_the_pod_and_denies_its_traffic() {
    let s = Scan::new(
        mk_policy(json!({"action": "Quarantine"})),
        vec![mk_pod("app", "a", &img("app"), None)],
        vec![Verdict::DigestDrift],
    );
    let out = s.run();
    assert!(matches!(&out.quarantine[..], [QuarantineChange::Add { namespace, pod, reason }]
        if namespace == "app" && pod == "a" && reason.starts_with("prod: DigestDrift")));
    assert_eq!(out.network_policies.get("app"), Some(&true));
    let reasons: Vec<&str> = out.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, vec!["VerificationFailed", "Quarantined"]);
    assert_eq!(out.summary.failing, 1);
    assert_eq!(out.summary.quarantined, 1);
}

#[test]
fn audit_policies_report_but_never_touch_pods() {
    let s = Scan::new(mk_policy(json!({})), vec![mk_pod("app", "a", &img("app"), None)], vec![Verdict::SignerRevoked]);
    let out = s.run();
    assert!(out.quarantine.is_empty());
    assert!(out.network_policies.is_empty(), "an audit policy never manages NetworkPolicies");
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.reports[0].status.verdict, Some(Verdict::SignerRevoked));
}

#[test]
fn an_outage_quarantines_nothing_unless_the_policy_asks_for_it() {
    let pods = vec![mk_pod("app", "a", &img("app"), None)];
    let out =
        Scan::new(mk_policy(json!({"action": "Quarantine"})), pods.clone(), vec![Verdict::TrustDataUnavailable]).run();
    assert!(out.quarantine.is_empty());
    assert_eq!(out.summary.failing, 0);
    let out = Scan::new(
        mk_policy(json!({"action": "Quarantine", "onUnavailable": "Fail"})),
        pods,
        vec![Verdict::TrustDataUnavailable],
    )
    .run();
    assert_eq!(out.quarantine.len(), 1);
}

#[test]
fn protected_namespaces_and_the_per_scan_cap_limit_quarantine() {
    let pods = vec![
        mk_pod("kube-system", "k", &img("app"), None),
        mk_pod(OP_NS, "o", &img("app"), None),
        mk_pod("app", "a", &img("app"), None),
        mk_pod("app", "b", &img("app"), None),
        mk_pod("app", "c", &img("app"), None),
    ];
    let spec = mk_policy(json!({"action": "Quarantine", "quarantineLimit": 1}));
    let out = Scan::new(spec, pods, vec![Verdict::Tampered; 5]).run();
    assert_eq!(out.quarantine.len(), 1);
    assert_eq!(out.limited, vec![("app".to_string(), "b".to_string()), ("app".to_string(), "c".to_string())]);
    assert_eq!(out.protected.len(), 2);
    assert_eq!(out.summary.failing, 5);
}

#[test]
fn a_recovered_pod_is_released_and_its_namespace_policy_removed() {
    let pod = quarantined(mk_pod("app", "a", &img("app"), None), "prod");
    let mut s = Scan::new(mk_policy(json!({"action": "Quarantine"})), vec![pod], vec![Verdict::Verified]);
    s.previous.insert(("app".into(), "a".into(), "app".into()), Verdict::DigestDrift);
    let out = s.run();
    assert_eq!(out.quarantine, vec![QuarantineChange::Remove { namespace: "app".into(), pod: "a".into() }]);
    assert_eq!(out.network_policies.get("app"), Some(&false));
    let reasons: Vec<&str> = out.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, vec!["Verified", "Released"]);
}

#[test]
fn pods_quarantined_by_another_policy_are_left_alone() {
    let pod = quarantined(mk_pod("app", "a", &img("app"), None), "other");
    let out = Scan::new(mk_policy(json!({"action": "Quarantine"})), vec![pod], vec![Verdict::Verified]).run();
    assert!(out.quarantine.is_empty());
    assert_eq!(out.network_policies.get("app"), Some(&true), "still quarantined by the other policy");
}

#[test]
fn events_are_raised_only_on_transitions() {
    let pods = vec![mk_pod("app", "a", &img("app"), None)];
    let mut s = Scan::new(mk_policy(json!({})), pods, vec![Verdict::DigestDrift]);
    s.previous.insert(("app".into(), "a".into(), "app".into()), Verdict::DigestDrift);
    assert!(s.run().events.is_empty(), "unchanged failure: no event");
    s.previous.insert(("app".into(), "a".into(), "app".into()), Verdict::SignerRevoked);
    assert!(s.run().events.is_empty(), "failing to failing: no new event");
    s.previous.insert(("app".into(), "a".into(), "app".into()), Verdict::Verified);
    assert_eq!(s.run().events[0].reason, "VerificationFailed");
    s.verdicts = vec![Verdict::ExpiringSoon];
    assert_eq!(s.run().events[0].reason, "TrustDataExpiring");
    s.verdicts = vec![Verdict::Verified];
    assert!(s.run().events.is_empty(), "verified to verified: no event");
}

#[test]
fn unmatched_images_fail_only_when_the_policy_says_so() {
    let pods = vec![mk_pod("app", "a", "docker.io/library/nginx:1", None)];
    let out = Scan::new(mk_policy(json!({})), pods.clone(), vec![]).run();
    assert_eq!(out.reports[0].status.containers[0].verdict, Verdict::NotCovered);
    assert_eq!((out.summary.failing, out.worst), (0, None));
    let out = Scan::new(mk_policy(json!({"unmatchedImages": "Fail", "action": "Quarantine"})), pods, vec![]).run();
    assert_eq!(out.summary.failing, 1);
    assert_eq!(out.quarantine.len(), 1);
}

#[test]
fn a_digest_pinned_spec_running_another_digest_is_drift() {
    let pinned = digest("pinned");
    let image = format!("registry.example.com/team/app@{pinned}");
    let pods = vec![mk_pod("app", "a", &image, Some(&digest("actually-running")))];
    let out = Scan::new(mk_policy(json!({})), pods, vec![Verdict::Verified]).run();
    let c = &out.reports[0].status.containers[0];
    assert_eq!((c.verdict, c.reason.as_str()), (Verdict::DigestDrift, "RunningDigestMismatch"));
}

#[test]
fn the_next_change_is_the_start_of_the_warning_window_or_the_expiry() {
    let out =
        Scan::new(mk_policy(json!({})), vec![mk_pod("app", "a", &img("app"), None)], vec![Verdict::Verified]).run();
    // Expires 2026-12-01; the 7-day window opens 2026-11-24, after NOW.
    assert_eq!(out.next_change, Some("2026-11-24T00:00:00Z".parse().unwrap()));
}

#[test]
fn reports_are_rewritten_only_when_content_changes_or_they_grow_old() {
    let out =
        Scan::new(mk_policy(json!({})), vec![mk_pod("app", "a", &img("app"), None)], vec![Verdict::Verified]).run();
    let stored = out.reports[0].status.clone();
    let later = now() + SignedDuration::from_mins(5);
    let mut again = stored.clone();
    again.last_verified = Some(Time(later));
    again.containers[0].last_verified = Some(Time(later));
    let hour = SignedDuration::from_hours(1);
    assert!(!report_needs_write(Some(&stored), &again, later, hour));
    assert!(report_needs_write(Some(&stored), &again, now() + SignedDuration::from_hours(2), hour));
    again.containers[0].verdict = Verdict::DigestDrift;
    assert!(report_needs_write(Some(&stored), &again, later, hour));
    assert!(report_needs_write(None, &again, later, hour));
}

#[test]
fn pods_are_stripped_and_mapped_to_their_top_owner() {
    let d = digest("x");
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-7d9f-abcde", "namespace": "app", "uid": "u1",
            "labels": {"pod-template-hash": "7d9f"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "trustwatch.dev/quarantine-reason": "prod: X"},
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f", "uid": "rs1", "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/team/app:v1", "env": [{"name": "SECRET", "value": "x"}]}],
                 "initContainers": [{"name": "init", "image": "registry.example.com/team/init:v1"}]},
        "status": {"phase": "Running",
            "containerStatuses": [{"name": "app", "image": "x", "imageID": format!("registry.example.com/team/app@{d}"),
                "ready": true, "restartCount": 0}],
            "initContainerStatuses": [{"name": "init", "image": "y", "imageID": "", "ready": false, "restartCount": 0}]}
    }))
    .unwrap();
    let mut stripped = pod.clone();
    strip_pod(&mut stripped);
    assert!(stripped.metadata.managed_fields.is_none());
    let annotations = stripped.metadata.annotations.clone().unwrap();
    assert_eq!(annotations.len(), 1, "only trustwatch annotations are kept");
    assert!(stripped.spec.as_ref().unwrap().containers[0].env.is_none());

    // Without the ReplicaSet object: kubectl's name heuristic.
    let view = pod_view(&stripped, &OwnerIndex::default());
    assert_eq!((view.workload.kind.as_str(), view.workload.name.as_str()), ("Deployment", "web"));
    assert_eq!(view.containers.len(), 2);
    assert_eq!(view.containers[0].name, "init");
    assert_eq!(view.containers[1].running_digest, Some(d));
    assert_eq!(view.quarantine_reason.as_deref(), Some("prod: X"));

    // With the ReplicaSet's owner known, its UID is kept for the report's owner reference.
    let mut idx = OwnerIndex::default();
    idx.insert(
        "app",
        "ReplicaSet",
        "web-7d9f",
        serde_json::from_value(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep1", "controller": true}),
        )
        .unwrap(),
    );
    let view = pod_view(&stripped, &idx);
    assert_eq!(view.workload.uid.as_deref(), Some("dep1"));
}
