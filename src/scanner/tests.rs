//! The decide layer with small builders and a fixed clock.

use super::pods::{ContainerView, OwnerIndex, PodView, RunningImage, Workload, pod_view, strip_pod};
use super::*;
use crate::crd::PolicySummary;
use crate::engine::Resolution;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

const NOW: &str = "2026-11-22T12:00:00Z";
const OP_NS: &str = "trustwatch-system";
/// A digest a started container reports.
const RUNNING: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

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
        recheck: None,
        workload: Workload {
            kind: "Deployment".into(),
            name: format!("{name}-deploy"),
            api_version: "apps/v1".into(),
            uid: None,
        },
        containers: vec![ContainerView {
            name: "app".into(),
            image: image.into(),
            running: running.map(|d| RunningImage::Digest(d.to_string())).unwrap_or_default(),
        }],
        host_network: false,
        pull: Default::default(),
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
    previous_scan: Option<Timestamp>,
    history: HashMap<EntryKey, EntryHistory>,
    at: Timestamp,
    network_policies: Vec<NetworkPolicyView>,
    cluster_quarantined: u32,
}

impl Scan {
    fn new(spec: ImageTrustPolicySpec, pods: Vec<PodView>, verdicts: Vec<Verdict>) -> Scan {
        Scan {
            spec,
            pods,
            verdicts,
            previous: HashMap::new(),
            previous_scan: None,
            history: HashMap::new(),
            at: now(),
            network_policies: vec![],
            cluster_quarantined: 0,
        }
    }

    fn run(&self) -> ScanOutcome {
        let plan = plan(&self.spec, &self.pods, &Default::default());
        // Verdicts are handed out in plan order to the Verify entries.
        let mut results = HashMap::new();
        let mut vs = self.verdicts.iter();
        for (_, p) in &plan.containers {
            if let ContainerPlan::Verify { keys, .. } = p {
                for k in keys {
                    if let Some(v) = vs.next() {
                        results.insert(k.clone(), res(*v));
                    }
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
            previous_scan: self.previous_scan,
            history: &self.history,
            network_policies: &self.network_policies,
            cluster_quarantined: self.cluster_quarantined,
            max_quarantined: 10,
            operator_namespace: OP_NS,
            now: self.at,
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
    let pinned = digest("pinned");
    let mut config_id = mk_pod("app", "e", &img("app"), None);
    config_id.containers[0].running = RunningImage::from_image_id(&format!("docker://{d}"));
    let pods = vec![
        mk_pod("app", "a", &img("app"), Some(&d)),
        mk_pod("app", "b", &img("secure"), Some(&d)),
        mk_pod("app", "c", "docker.io/library/nginx:1", None),
        mk_pod("app", "d", "Bad//Image", None),
        config_id,
        mk_pod("app", "f", &img("app"), None),
        mk_pod("app", "g", &format!("registry.example.com/team/app@{pinned}"), None),
    ];
    let p = plan(&spec, &pods, &Default::default());
    let plans: Vec<&ContainerPlan> = p.containers.iter().map(|(_, c)| c).collect();
    assert_eq!(
        plans[0],
        &ContainerPlan::Verify {
            keys: vec![VerifyKey {
                trust_root: "corp".into(),
                image: format!("{}@{d}", img("app")),
                signers: vec![],
                pull: None
            }],
            require: crate::crd::Require::AnyOf
        }
    );
    assert_eq!(
        plans[1],
        &ContainerPlan::Verify {
            keys: vec![VerifyKey {
                trust_root: "corp".into(),
                image: format!("{}@{d}", img("secure")),
                signers: vec!["targets/qa".into(), "targets/releases".into()],
                pull: None
            }],
            require: crate::crd::Require::AnyOf
        }
    );
    assert_eq!(plans[2], &ContainerPlan::NotCovered { gun: Some("docker.io/library/nginx".into()) });
    assert!(matches!(plans[3], ContainerPlan::Invalid { .. }));
    // A local image configuration ID is not a repository digest: never compared as drift.
    assert!(matches!(plans[4], ContainerPlan::Undetermined { reason: "ImageIdNotADigest", .. }), "{:?}", plans[4]);
    // No imageID yet: a tag alone is never verified.
    assert!(matches!(plans[5], ContainerPlan::Undetermined { reason: "RunningDigestUnknown", .. }), "{:?}", plans[5]);
    // A digest-pinned spec is what the runtime pulls: verified as written.
    assert!(
        matches!(plans[6], ContainerPlan::Verify { keys, .. } if keys[0].image.ends_with(&pinned)),
        "{:?}",
        plans[6]
    );
    assert_eq!(p.keys().len(), 3);
}

#[test]
fn image_ids_are_read_in_every_runtime_form() {
    let d = digest("x");
    assert_eq!(RunningImage::from_image_id(&format!("docker-pullable://nginx@{d}")), RunningImage::Digest(d.clone()));
    assert_eq!(RunningImage::from_image_id(&format!("docker.io/library/nginx@{d}")), RunningImage::Digest(d.clone()));
    assert_eq!(RunningImage::from_image_id(&d), RunningImage::ConfigId(d.clone()));
    assert_eq!(RunningImage::from_image_id(&format!("docker://{d}")), RunningImage::ConfigId(d.clone()));
    assert_eq!(RunningImage::from_image_id(""), RunningImage::Unknown);
    assert_eq!(RunningImage::from_image_id("nginx:latest"), RunningImage::Unknown);
}

#[test]
fn a_container_that_has_not_started_is_undecided_not_verified() {
    let out =
        Scan::new(mk_policy(json!({"action": "Quarantine"})), vec![mk_pod("app", "a", &img("app"), None)], vec![])
            .run();
    let c = &out.reports[0].status.containers[0];
    assert_eq!((c.verdict, c.reason.as_str()), (Verdict::TrustDataUnavailable, "RunningDigestUnknown"));
    assert!(out.quarantine.is_empty() && out.summary.verified == 0);
}

#[test]
fn verified_pods_get_a_report_per_workload_and_no_events_or_actions() {
    let s = Scan::new(
        mk_policy(json!({"action": "Quarantine"})),
        vec![mk_pod("app", "a", &img("app"), Some(RUNNING))],
        vec![Verdict::Verified],
    );
    let out = s.run();
    assert_eq!(out.reports.len(), 1);
    let r = &out.reports[0];
    assert_eq!(r.name, "deployment-a-deploy-prod");
    assert_eq!(r.status.verdict, Some(Verdict::Verified));
    assert_eq!(r.status.containers[0].signed_digest, Some(digest("signed")));
    assert_eq!(r.status.containers[0].trust_root.as_deref(), Some("corp"));
    assert_eq!(
        out.summary,
        PolicySummary { pods: 1, containers: 1, verified: 1, notary_v1_only: 1, ..Default::default() }
    );
    assert!(out.events.is_empty() && out.quarantine.is_empty());
    assert_eq!(out.worst, Some(Verdict::Verified));
}

#[test]
fn drift_under_a_quarantine_policy_labels_the_pod_and_denies_its_traffic() {
    let s = Scan::new(
        mk_policy(json!({"action": "Quarantine"})),
        vec![mk_pod("app", "a", &img("app"), Some(RUNNING))],
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
    let s = Scan::new(
        mk_policy(json!({})),
        vec![mk_pod("app", "a", &img("app"), Some(RUNNING))],
        vec![Verdict::SignerRevoked],
    );
    let out = s.run();
    assert!(out.quarantine.is_empty());
    assert!(out.network_policies.is_empty(), "an audit policy never manages NetworkPolicies");
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.reports[0].status.verdict, Some(Verdict::SignerRevoked));
}

#[test]
fn an_outage_quarantines_nothing_unless_the_policy_asks_for_it() {
    let pods = vec![mk_pod("app", "a", &img("app"), Some(RUNNING))];
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
        mk_pod("kube-system", "k", &img("app"), Some(RUNNING)),
        mk_pod(OP_NS, "o", &img("app"), Some(RUNNING)),
        mk_pod("app", "a", &img("app"), Some(RUNNING)),
        mk_pod("app", "b", &img("app"), Some(RUNNING)),
        mk_pod("app", "c", &img("app"), Some(RUNNING)),
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
    let pod = quarantined(mk_pod("app", "a", &img("app"), Some(RUNNING)), "prod");
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
    let pod = quarantined(mk_pod("app", "a", &img("app"), Some(RUNNING)), "other");
    let out = Scan::new(mk_policy(json!({"action": "Quarantine"})), vec![pod], vec![Verdict::Verified]).run();
    assert!(out.quarantine.is_empty());
    assert_eq!(out.network_policies.get("app"), Some(&true), "still quarantined by the other policy");
}

#[test]
fn events_are_raised_only_on_transitions() {
    let pods = vec![mk_pod("app", "a", &img("app"), Some(RUNNING))];
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
    let pods = vec![mk_pod("app", "a", "docker.io/library/nginx:1", Some(RUNNING))];
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
        Scan::new(mk_policy(json!({})), vec![mk_pod("app", "a", &img("app"), Some(RUNNING))], vec![Verdict::Verified])
            .run();
    // Expires 2026-12-01; the 7-day window opens 2026-11-24, after NOW.
    assert_eq!(out.next_change, Some("2026-11-24T00:00:00Z".parse().unwrap()));
}

#[test]
fn reports_are_rewritten_only_when_content_changes_or_they_grow_old() {
    let out =
        Scan::new(mk_policy(json!({})), vec![mk_pod("app", "a", &img("app"), Some(RUNNING))], vec![Verdict::Verified])
            .run();
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
fn a_steady_workload_is_not_rewritten_by_later_scans_and_keeps_when_it_was_last_trusted() {
    let pods = vec![mk_pod("app", "a", &img("app"), Some(RUNNING))];
    let scan = |verdict: Verdict, at: Timestamp| {
        let mut s = Scan::new(mk_policy(json!({})), pods.clone(), vec![verdict]);
        s.at = at;
        s
    };
    let hour = SignedDuration::from_hours(1);
    let first = scan(Verdict::Verified, now()).run();
    let stored = first.reports[0].status.clone();
    let ns = first.reports[0].namespace.clone();
    let history = entry_history([(ns.as_str(), &stored)]);

    // Five minutes later, still verified: lastVerified and lastTrusted moved, nothing to write.
    let five = now() + SignedDuration::from_mins(5);
    let mut s = scan(Verdict::Verified, five);
    (s.previous, s.previous_scan, s.history) = (first.verdicts.clone(), Some(now()), history.clone());
    let second = s.run();
    assert_eq!(second.reports[0].status.containers[0].last_trusted, Some(Time(five)));
    assert!(!report_needs_write(Some(&stored), &second.reports[0].status, five, hour));

    // Five minutes more, it fails: written, last trusted at the previous scan (the stored
    // report, not rewritten since, says the first).
    let ten = now() + SignedDuration::from_mins(10);
    let mut s = scan(Verdict::Unsigned, ten);
    (s.previous, s.previous_scan, s.history) = (second.verdicts.clone(), Some(five), history.clone());
    let third = s.run();
    assert_eq!(third.reports[0].status.containers[0].last_trusted, Some(Time(five)));
    assert!(report_needs_write(Some(&stored), &third.reports[0].status, ten, hour));
    // After a restart nothing in memory: the stored report's instant stands.
    let mut s = scan(Verdict::Unsigned, ten);
    s.history = history;
    assert_eq!(s.run().reports[0].status.containers[0].last_trusted, Some(Time(now())));
}

#[test]
fn a_report_as_the_api_server_keeps_it_equals_the_next_scans_for_the_same_answers() {
    // Instants finer than a second (a TUF expiry, the scan's own `now`): metav1.Time keeps
    // whole seconds, so the stored report must still compare equal.
    let pods = vec![mk_pod("app", "a", &img("app"), Some(RUNNING))];
    let spec = mk_policy(json!({}));
    let p = plan(&spec, &pods, &Default::default());
    let mut r = res(Verdict::Verified);
    r.expires = Some("2026-12-01T00:00:00.987654321Z".parse().unwrap());
    r.signing_time = Some("2026-11-01T00:00:00.5Z".parse().unwrap());
    let results: HashMap<_, _> = p.keys().into_iter().map(|k| (k, r.clone())).collect();
    let at = |t: &str| {
        decide(&DecideInput {
            policy: "prod",
            spec: &spec,
            pods: &pods,
            plan: &p,
            results: &results,
            warnings: &HashMap::new(),
            previous: &HashMap::new(),
            previous_scan: None,
            history: &HashMap::new(),
            network_policies: &[],
            cluster_quarantined: 0,
            max_quarantined: 10,
            operator_namespace: OP_NS,
            now: t.parse().unwrap(),
        })
    };
    let first = at("2026-11-22T12:00:00.123456Z").reports[0].status.clone();
    let stored: crate::crd::ImageTrustReportStatus =
        serde_json::from_value(serde_json::to_value(&first).unwrap()).unwrap();
    let second = at("2026-11-22T12:05:00.654321Z").reports[0].status.clone();
    let later = "2026-11-22T12:05:01Z".parse().unwrap();
    assert!(!report_needs_write(Some(&stored), &second, later, SignedDuration::from_hours(1)));
}

#[test]
fn pods_are_stripped_and_mapped_to_their_top_owner() {
    let d = digest("x");
    // The JSON the API server sends, deserialized as the cache does: only what a scan reads.
    let pod: super::pods::CachedPod = serde_json::from_value(json!({
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
    let cached = serde_json::to_string(&stripped).unwrap();
    assert!(!cached.contains("SECRET") && !cached.contains("restartCount"), "{cached}");

    // Without the ReplicaSet object: kubectl's name heuristic.
    let view = pod_view(&stripped, &OwnerIndex::default());
    assert_eq!((view.workload.kind.as_str(), view.workload.name.as_str()), ("Deployment", "web"));
    assert_eq!(view.containers.len(), 2);
    assert_eq!(view.containers[0].name, "init");
    assert_eq!(view.containers[1].running_digest(), Some(d.as_str()));
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

fn same_workload(mut p: PodView) -> PodView {
    p.workload.name = "web".into();
    p
}

#[test]
fn thousands_of_identical_pods_make_one_bounded_entry() {
    let pods: Vec<PodView> =
        (0..2000).map(|i| same_workload(mk_pod("app", &format!("web-{i:04}"), &img("app"), Some(RUNNING)))).collect();
    let out = Scan::new(mk_policy(json!({})), pods, vec![Verdict::DigestDrift]).run();
    assert_eq!(out.reports.len(), 1);
    let status = &out.reports[0].status;
    assert_eq!(status.containers.len(), 1);
    let e = &status.containers[0];
    assert_eq!((e.pods, e.sample_pods.len()), (2000, crate::crd::MAX_SAMPLE_PODS));
    assert_eq!(status.summary.unwrap().containers, 2000);
    assert_eq!(status.summary.unwrap().pods, 2000);
    assert!(serde_json::to_vec(status).unwrap().len() < 4096, "the report does not grow with the pods");
}

#[test]
fn a_workload_with_more_distinct_digests_than_entries_keeps_the_worst_and_counts_the_rest() {
    let pods: Vec<PodView> = (0..100)
        .map(|i| same_workload(mk_pod("app", &format!("web-{i}"), &img("app"), Some(&digest(&format!("d{i}"))))))
        .collect();
    let mut verdicts = vec![Verdict::Verified; 99];
    verdicts.push(Verdict::Tampered);
    let out = Scan::new(mk_policy(json!({})), pods, verdicts).run();
    let status = &out.reports[0].status;
    assert_eq!(status.containers.len(), crate::crd::MAX_REPORT_ENTRIES);
    assert_eq!(status.omitted, Some(100 - crate::crd::MAX_REPORT_ENTRIES as i32));
    assert_eq!(status.containers[0].verdict, Verdict::Tampered, "the worst entry is kept first");
    assert_eq!(status.verdict, Some(Verdict::Tampered));
}

#[test]
fn quarantine_waits_out_the_grace_period_counted_from_the_first_failure() {
    let pods = vec![mk_pod("app", "a", &img("app"), Some(RUNNING))];
    let spec = mk_policy(json!({"action": "Quarantine", "quarantineAfter": "10m"}));
    let mut s = Scan::new(spec, pods, vec![Verdict::DigestDrift]);
    let out = s.run();
    assert!(out.quarantine.is_empty());
    assert_eq!(out.pending, vec![("app".to_string(), "a".to_string())]);
    let since = out.reports[0].status.containers[0].failing_since.clone().unwrap();
    assert_eq!(since, Time(now()));
    assert_eq!(out.next_change, Some(now() + SignedDuration::from_mins(10)), "a scan when the grace ends");
    // The failure has lasted 11 minutes: quarantined now.
    let stored = out.reports[0].status.clone();
    s.history = entry_history([("app", &stored)]);
    for h in s.history.values_mut() {
        h.failing_since = Some(now() - SignedDuration::from_mins(11));
    }
    assert_eq!(s.run().quarantine.len(), 1);
}

#[test]
fn a_dry_run_labels_nothing_and_says_what_it_would_quarantine() {
    let pods = vec![
        mk_pod("app", "a", &img("app"), Some(RUNNING)),
        quarantined(mk_pod("app", "b", &img("app"), Some(RUNNING)), "prod"),
    ];
    let out =
        Scan::new(mk_policy(json!({"action": "Quarantine", "dryRun": true})), pods, vec![Verdict::SignerRevoked; 2])
            .run();
    assert_eq!(out.would_quarantine.len(), 2);
    assert_eq!(
        out.quarantine,
        vec![QuarantineChange::Remove { namespace: "app".into(), pod: "b".into() }],
        "a dry run releases what it labelled before"
    );
    assert!(out.events.iter().any(|e| e.reason == "WouldQuarantine"));
    assert!(!out.events.iter().any(|e| e.reason == "Quarantined"));
    assert_eq!(out.network_policies.get("app"), Some(&false));
}

#[test]
fn the_cluster_wide_cap_holds_across_policies() {
    let pods = (0..5).map(|i| mk_pod("app", &format!("p{i}"), &img("app"), Some(RUNNING))).collect();
    let mut s = Scan::new(mk_policy(json!({"action": "Quarantine"})), pods, vec![Verdict::Tampered; 5]);
    s.cluster_quarantined = 8; // max_quarantined is 10 in these tests
    let out = s.run();
    assert_eq!(out.quarantine.len(), 2);
    assert_eq!(out.limited.len(), 3);
    assert!(out.cluster_limited);
}

#[test]
fn a_quarantine_that_another_network_policy_defeats_is_reported() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let mut pod = mk_pod("app", "a", &img("app"), Some(RUNNING));
    pod.labels.insert("app".into(), "web".into());
    let np: NetworkPolicy = serde_json::from_value(json!({"metadata": {"name": "allow-web", "namespace": "app"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}}))
    .unwrap();
    let mut s = Scan::new(mk_policy(json!({"action": "Quarantine"})), vec![pod], vec![Verdict::DigestDrift]);
    s.network_policies = vec![NetworkPolicyView::from_resource(&np)];
    let out = s.run();
    assert_eq!(out.quarantine.len(), 1);
    assert_eq!(out.ineffective.len(), 1);
    assert!(out.events.iter().any(|e| e.reason == "QuarantineIneffective"));
    let q = out.reports[0].status.quarantine.clone().unwrap();
    assert!(q.ineffective[0].contains("allow-web"), "{q:?}");
}

#[test]
fn during_an_outage_the_entry_shows_the_last_good_verification() {
    let pods = vec![mk_pod("app", "a", &img("app"), Some(RUNNING))];
    let mut s = Scan::new(mk_policy(json!({})), pods, vec![Verdict::Verified]);
    let first = s.run();
    assert_eq!(first.reports[0].status.containers[0].last_trusted, Some(Time(now())));
    s.history = entry_history([("app", &first.reports[0].status)]);
    s.verdicts = vec![Verdict::TrustDataUnavailable];
    let out = s.run();
    let c = &out.reports[0].status.containers[0];
    assert_eq!(c.verdict, Verdict::TrustDataUnavailable);
    assert_eq!(c.last_trusted, Some(Time(now())), "the last good verification is kept");
}

#[test]
fn several_trust_roots_are_each_reported_and_combined_by_require() {
    let image = img("app");
    let pods = vec![mk_pod("app", "a", &image, Some(RUNNING))];
    let run = |require: &str, notation: Verdict| {
        let spec = mk_policy(
            json!({"images": [{"pattern": "registry.example.com/**", "trustRoots": ["corp", "nv"], "require": require}]}),
        );
        let plan = plan(&spec, &pods, &Default::default());
        let mut results = HashMap::new();
        for key in plan.keys() {
            let mut r = res(if key.trust_root == "corp" { Verdict::Verified } else { notation });
            if key.trust_root == "nv" {
                r.format = crate::verifier::SignatureFormat::Notation;
            }
            results.insert(key, r);
        }
        decide(&DecideInput {
            policy: "prod",
            spec: &spec,
            pods: &pods,
            plan: &plan,
            results: &results,
            warnings: &HashMap::new(),
            previous: &HashMap::new(),
            previous_scan: None,
            history: &HashMap::new(),
            network_policies: &[],
            cluster_quarantined: 0,
            max_quarantined: 10,
            operator_namespace: OP_NS,
            now: now(),
        })
    };
    let out = run("AnyOf", Verdict::Unsigned);
    let e = &out.reports[0].status.containers[0];
    assert_eq!(e.verdict, Verdict::Verified);
    let said: Vec<(String, Verdict)> = e.trust_roots.iter().map(|r| (r.name.clone(), r.verdict)).collect();
    assert_eq!(
        said,
        vec![("corp".into(), Verdict::Verified), ("nv".into(), Verdict::Unsigned)],
        "DCT: Verified, Notation: Unsigned"
    );
    assert_eq!(e.migration, Some(crate::crd::MigrationState::NotaryV1Only));
    assert_eq!(out.notary_only_by_root.get("corp"), Some(&1));
    let out = run("AllOf", Verdict::Unsigned);
    assert_eq!(out.reports[0].status.containers[0].verdict, Verdict::Unsigned, "AllOf needs Notation too");
    let out = run("AllOf", Verdict::Verified);
    let e = &out.reports[0].status.containers[0];
    assert_eq!((e.verdict, e.migration), (Verdict::Verified, Some(crate::crd::MigrationState::SuccessorVerified)));
    assert_eq!(out.summary.successor_verified, 1);
}
