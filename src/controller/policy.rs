//! The ImageTrustPolicy controller: re-verifies every pod a policy selects, writes one report
//! per workload, quarantines and releases pods, and publishes events on transitions.

use super::roots::verify_all;
use super::status::{invalid_policy_status, policy_status};
use super::{Context, Error, MANAGED_BY, QUARANTINE_NETWORK_POLICY};
use crate::crd::{
    API_VERSION, FIELD_MANAGER, ImageTrustPolicy, ImageTrustPolicySpec, ImageTrustPolicyStatus, ImageTrustReportStatus,
    POLICY_LABEL, QUARANTINE_REASON_ANNOTATION, QUARANTINED_LABEL, RECHECK_ANNOTATION,
};
use crate::scanner::pods::{OwnerIndex, PodView, pod_view};
use crate::scanner::{
    DecideInput, EventTarget, EventType, QuarantineChange, ScanOutcome, decide, plan, previous_verdicts,
    report_needs_write,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// A stored report is rewritten at least this often even when nothing changed, so its
/// `lastVerified` never lags by more than this.
pub const REPORT_MAX_AGE: SignedDuration = SignedDuration::from_hours(1);

pub async fn reconcile(policy: Arc<ImageTrustPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = scan(&policy, &ctx).await;
    ctx.metrics.record_reconcile("imagetrustpolicy", result.is_ok(), started.elapsed().as_secs_f64());
    result
}

pub fn error_policy(policy: Arc<ImageTrustPolicy>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(policy = %policy.name_any(), reason = error.reason(), %error, "policy reconcile failed; retrying in 30s");
    Action::requeue(Duration::from_secs(30))
}

/// The pods a policy selects, from the caches.
pub fn gather_pods(ctx: &Context, spec: &ImageTrustPolicySpec) -> Vec<PodView> {
    let ns_labels: HashMap<String, BTreeMap<String, String>> =
        ctx.namespaces.state().iter().map(|n| (n.name_any(), n.labels().clone())).collect();
    let mut owners = OwnerIndex::default();
    owners.extend("ReplicaSet", ctx.replicasets.state().iter().map(|m| &m.metadata));
    owners.extend("Job", ctx.jobs.state().iter().map(|m| &m.metadata));
    let empty = BTreeMap::new();
    let mut pods: Vec<PodView> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| {
            let ns = p.namespace().unwrap_or_default();
            spec.selects_namespace(&ns, ns_labels.get(&ns).unwrap_or(&empty), ctx.operator_namespace())
        })
        .map(|p| pod_view(p, &owners))
        .collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    pods
}

/// `kubectl annotate itp NAME trustwatch.dev/recheck=now` forces a pass with fresh trust data.
fn take_recheck(ctx: &Context, policy: &ImageTrustPolicy) -> bool {
    let Some(value) = policy.annotations().get(RECHECK_ANNOTATION) else { return false };
    let mut seen = ctx.rechecks.lock().expect("recheck map poisoned");
    seen.insert(policy.name_any(), value.clone()).as_ref() != Some(value)
}

/// When to scan again: the interval, or earlier when a verdict changes by itself.
pub fn requeue_after(spec: &ImageTrustPolicySpec, next_change: Option<Timestamp>, now: Timestamp) -> Duration {
    let interval = spec.interval_period();
    let until_change =
        next_change.map(|t| Duration::from_secs(t.duration_since(now).as_secs().max(0) as u64 + 1)).unwrap_or(interval);
    interval.min(until_change).max(Duration::from_secs(5))
}

async fn scan(policy: &ImageTrustPolicy, ctx: &Context) -> Result<Action, Error> {
    let name = policy.name_any();
    let now = Timestamp::now();
    let policies: Api<ImageTrustPolicy> = Api::all(ctx.client.clone());
    if let Err(errors) = policy.spec.validate() {
        warn!(policy = %name, ?errors, "invalid spec");
        patch_status(&policies, &name, &invalid_policy_status(policy, &errors, now)).await?;
        return Ok(Action::await_change());
    }
    let pods = gather_pods(ctx, &policy.spec);
    let plan = plan(&policy.spec, &pods);
    let roots = ctx.roots.read().await.clone();
    let referenced: BTreeSet<&String> = policy.spec.images.iter().map(|r| &r.trust_root).collect();
    let missing: Vec<String> = referenced.into_iter().filter(|r| !roots.contains_key(*r)).cloned().collect();
    let force = take_recheck(ctx, policy);
    let results = verify_all(&plan.keys(), &roots, now, force, Some(&ctx.metrics)).await;

    let reports: Api<crate::crd::ImageTrustReport> = Api::all(ctx.client.clone());
    let existing = reports.list(&ListParams::default().labels(&format!("{POLICY_LABEL}={name}"))).await?;
    let stored: HashMap<(String, String), Option<ImageTrustReportStatus>> =
        existing.items.iter().map(|r| ((r.namespace().unwrap_or_default(), r.name_any()), r.status.clone())).collect();
    let previous = previous_verdicts(stored.iter().filter_map(|((ns, _), s)| s.as_ref().map(|s| (ns.as_str(), s))));
    let warnings = roots.iter().map(|(n, r)| (n.clone(), r.expiry_warning)).collect();
    let outcome = decide(&DecideInput {
        policy: &name,
        spec: &policy.spec,
        pods: &pods,
        plan: &plan,
        results: &results,
        warnings: &warnings,
        previous: &previous,
        operator_namespace: ctx.operator_namespace(),
        now,
    });

    write_reports(ctx, &name, &outcome, &stored, now).await?;
    apply_quarantine(ctx, &outcome).await?;
    apply_network_policies(ctx, &outcome).await?;
    let status = policy_status(policy, &outcome, &missing, now);
    let mut outcome = outcome;
    outcome.events.extend(compliance_event(policy, &status));
    publish_events(ctx, policy, &outcome).await;
    patch_status(&policies, &name, &status).await?;

    let last_scan = now.as_second() as f64;
    ctx.metrics.set_policy(
        &name,
        &outcome.counts,
        &outcome.quarantined_by_namespace,
        policy.spec.interval_period().as_secs_f64(),
        last_scan,
    );
    info!(
        policy = %name,
        pods = outcome.summary.pods,
        containers = outcome.summary.containers,
        failing = outcome.summary.failing,
        quarantined = outcome.summary.quarantined,
        "scan complete"
    );
    Ok(Action::requeue(requeue_after(&policy.spec, outcome.next_change, now)))
}

/// An event on the policy when its `Compliant` condition flips.
pub fn compliance_event(policy: &ImageTrustPolicy, new: &ImageTrustPolicyStatus) -> Option<crate::scanner::EventSpec> {
    use crate::crd::condition::types::COMPLIANT;
    let old = policy.status.as_ref().and_then(|s| crate::crd::find_condition(&s.conditions, COMPLIANT));
    let new = crate::crd::find_condition(&new.conditions, COMPLIANT)?;
    if old.is_some_and(|o| o.status == new.status) {
        return None;
    }
    let ok = new.status == "True";
    if old.is_none() && ok {
        return None;
    }
    Some(crate::scanner::EventSpec {
        target: EventTarget::Policy,
        type_: if ok { EventType::Normal } else { EventType::Warning },
        reason: if ok { "Verified" } else { "VerificationFailed" },
        message: new.message.clone(),
    })
}

async fn patch_status(api: &Api<ImageTrustPolicy>, name: &str, status: &ImageTrustPolicyStatus) -> Result<(), Error> {
    let body = json!({"apiVersion": API_VERSION, "kind": "ImageTrustPolicy", "status": status});
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

/// Writes reports whose content changed, creates new ones owned by their workload and
/// deletes the policy's reports for workloads it no longer selects.
async fn write_reports(
    ctx: &Context,
    policy: &str,
    outcome: &ScanOutcome,
    stored: &HashMap<(String, String), Option<ImageTrustReportStatus>>,
    now: Timestamp,
) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut keep = BTreeSet::new();
    for r in &outcome.reports {
        let key = (r.namespace.clone(), r.name.clone());
        keep.insert(key.clone());
        let api: Api<crate::crd::ImageTrustReport> = Api::namespaced(ctx.client.clone(), &r.namespace);
        let existing = stored.get(&key);
        if existing.is_none() {
            let owner = r.workload.uid.as_ref().map(|uid| {
                json!([{"apiVersion": r.workload.api_version, "kind": r.workload.kind, "name": r.workload.name, "uid": uid}])
            });
            let mut meta = json!({"name": r.name, "namespace": r.namespace, "labels": {POLICY_LABEL: policy}});
            if let Some(o) = owner {
                meta["ownerReferences"] = o;
            }
            let body = json!({"apiVersion": API_VERSION, "kind": "ImageTrustReport", "metadata": meta, "spec": {}});
            api.patch(&r.name, &params, &Patch::Apply(&body)).await?;
        }
        if report_needs_write(existing.and_then(|s| s.as_ref()), &r.status, now, REPORT_MAX_AGE) {
            let body = json!({"apiVersion": API_VERSION, "kind": "ImageTrustReport", "status": r.status});
            api.patch_status(&r.name, &params, &Patch::Apply(&body)).await?;
        }
    }
    for (ns, name) in stored.keys().filter(|k| !keep.contains(*k)) {
        let api: Api<crate::crd::ImageTrustReport> = Api::namespaced(ctx.client.clone(), ns);
        ignore_not_found(api.delete(name, &DeleteParams::default()).await)?;
    }
    Ok(())
}

fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn apply_quarantine(ctx: &Context, outcome: &ScanOutcome) -> Result<(), Error> {
    for change in &outcome.quarantine {
        let (ns, pod, body) = match change {
            QuarantineChange::Add { namespace, pod, reason } => (
                namespace,
                pod,
                json!({"metadata": {"labels": {QUARANTINED_LABEL: "true"}, "annotations": {QUARANTINE_REASON_ANNOTATION: reason}}}),
            ),
            QuarantineChange::Remove { namespace, pod } => (
                namespace,
                pod,
                json!({"metadata": {"labels": {QUARANTINED_LABEL: null}, "annotations": {QUARANTINE_REASON_ANNOTATION: null}}}),
            ),
        };
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        // A pod that went away between the scan and the patch needs nothing.
        ignore_not_found(api.patch(pod, &PatchParams::default(), &Patch::Merge(&body)).await)?;
        info!(namespace = %ns, pod = %pod, change = ?change, "quarantine changed");
    }
    Ok(())
}

/// The deny-all NetworkPolicy selecting quarantined pods.
pub fn quarantine_network_policy(namespace: &str) -> serde_json::Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": QUARANTINE_NETWORK_POLICY, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
        "spec": {
            "podSelector": {"matchLabels": {QUARANTINED_LABEL: "true"}},
            "policyTypes": ["Ingress", "Egress"]
        }
    })
}

async fn apply_network_policies(ctx: &Context, outcome: &ScanOutcome) -> Result<(), Error> {
    if outcome.network_policies.is_empty() {
        return Ok(());
    }
    let all: Api<NetworkPolicy> = Api::all(ctx.client.clone());
    let existing: BTreeSet<String> = all
        .list(&ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)))
        .await?
        .items
        .iter()
        .filter(|np| np.name_any() == QUARANTINE_NETWORK_POLICY)
        .filter_map(|np| np.namespace())
        .collect();
    for (ns, want) in &outcome.network_policies {
        let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
        match (*want, existing.contains(ns)) {
            (true, false) => {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                api.patch(QUARANTINE_NETWORK_POLICY, &params, &Patch::Apply(&quarantine_network_policy(ns))).await?;
                info!(namespace = %ns, "quarantine network policy created");
            }
            (false, true) => {
                ignore_not_found(api.delete(QUARANTINE_NETWORK_POLICY, &DeleteParams::default()).await)?;
                info!(namespace = %ns, "quarantine network policy removed");
            }
            _ => {}
        }
    }
    Ok(())
}

async fn publish_events(ctx: &Context, policy: &ImageTrustPolicy, outcome: &ScanOutcome) {
    let policy_ref = policy.object_ref(&());
    for ev in &outcome.events {
        let reference = match &ev.target {
            EventTarget::Pod { namespace, name, uid } => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                uid: Some(uid.clone()),
                ..Default::default()
            },
            EventTarget::Policy => policy_ref.clone(),
        };
        let event = Event {
            type_: match ev.type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: ev.reason.to_string(),
            note: Some(format!("{} (policy {})", ev.message, policy.name_any())),
            action: "Verify".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(reason = ev.reason, error = %e, "cannot publish event");
        }
    }
}
