//! The ImageTrustPolicy controller: re-verifies every pod a policy selects, writes one report
//! per workload, quarantines and releases pods, and publishes events on transitions. A
//! finalizer releases the policy's pods and removes its reports when it is deleted.

use super::roots::{TrustRootRuntime, answers_generation, verify_all};
use super::status::{invalid_policy_status, policy_status};
use super::{Context, Error, MANAGED_BY, QUARANTINE_NETWORK_POLICY};
use crate::crd::{
    API_VERSION, FIELD_MANAGER, ImageTrustPolicy, ImageTrustPolicySpec, ImageTrustPolicyStatus, ImageTrustReport,
    ImageTrustReportStatus, POLICY_FINALIZER, POLICY_LABEL, QUARANTINE_REASON_ANNOTATION, QUARANTINED_LABEL,
    RECHECK_ANNOTATION, policy_label_value,
};
use crate::engine::Resolution;
use crate::scanner::VerifyKey;
use crate::scanner::pods::{CachedPod, OwnerIndex, PodView, pod_view};
use crate::scanner::{
    DecideInput, EventSpec, EventTarget, EventType, NetworkPolicyView, QuarantineChange, ScanOutcome, decide,
    entry_history, plan, previous_verdicts, report_needs_write,
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
use tracing::{debug, info, warn};

/// A stored report is rewritten at least this often even when nothing changed, so its
/// `lastVerified` never lags by more than this.
pub const REPORT_MAX_AGE: SignedDuration = SignedDuration::from_hours(1);
/// A scan decides everything afresh at least this often, however unchanged its inputs: the
/// reports' age is judged then (a quarter of [`REPORT_MAX_AGE`], so none lags much longer).
pub const FULL_SCAN_AT_LEAST_EVERY: SignedDuration = SignedDuration::from_mins(15);

/// A policy's last full scan: when it ran, the verdict of every (namespace, pod, container)
/// then (the next scan's `previous`), and what a later scan needs to find that nothing it
/// reads has changed since.
pub struct LastScan {
    /// The last scan that decided these verdicts, or found them standing (Unix seconds).
    confirmed: std::sync::atomic::AtomicI64,
    pub verdicts: super::PodVerdicts,
    reuse: Option<Reuse>,
}

impl LastScan {
    fn confirmed(&self) -> Option<Timestamp> {
        Timestamp::from_second(self.confirmed.load(std::sync::atomic::Ordering::Relaxed)).ok()
    }
}

/// A full scan's inputs and decision, for scans that find the same inputs.
struct Reuse {
    /// [`inputs_fingerprint`] when the scan started.
    inputs: u64,
    keys: BTreeSet<VerifyKey>,
    results: HashMap<VerifyKey, Resolution>,
    /// The decision, without its reports, events and verdicts (written and kept already).
    outcome: ScanOutcome,
    missing: Vec<String>,
    /// The trust roots' answer generations (`roots::answers_generation`) read before the
    /// answers were last found the same; `None` when some answer cannot tell
    /// ([`keepable_generations`]).
    generations: std::sync::Mutex<Option<BTreeMap<String, u64>>>,
    /// The decision holds until then: the first change it foresaw (an expiry, a warning
    /// window, a grace period) or [`FULL_SCAN_AT_LEAST_EVERY`] after it was made.
    until: Timestamp,
}

/// Everything a scan reads besides trust data and the clock, in one number: the policy's spec
/// and annotations, the trust roots loaded, and the (UID, resourceVersion) of every cached
/// pod, namespace, owner, NetworkPolicy and report. The same number means the same inputs
/// (any change to an object changes its resourceVersion); per-object hashes are summed, so
/// the caches' order does not count, under a key chosen at random per process. (A UID names
/// one object for its whole life, so namespace and name add nothing. foldhash's quality
/// hasher rather than SipHash: this runs over every cached object on every scan, where SipHash
/// took 8% of the operator's CPU at 10,000 pods, BENCHMARKS.md.)
fn inputs_fingerprint(ctx: &Context, policy: &ImageTrustPolicy, roots: &HashMap<String, Arc<TrustRootRuntime>>) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::LazyLock<foldhash::quality::RandomState> = std::sync::LazyLock::new(Default::default);
    let one =
        |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| KEY.hash_one((&m.uid, &m.resource_version));
    let sum = |it: &mut dyn Iterator<Item = u64>| it.fold(0u64, u64::wrapping_add);
    let pods = sum(&mut ctx.pods.state().iter().map(|p| one(&p.metadata)));
    let namespaces = sum(&mut ctx.namespaces.state().iter().map(|n| one(&n.metadata)));
    let owners = sum(&mut ctx.replicasets.state().iter().map(|o| one(&o.metadata))).wrapping_add(sum(&mut ctx
        .jobs
        .state()
        .iter()
        .map(|o| one(&o.metadata))));
    let network = sum(&mut ctx.network_policies.state().iter().map(|n| one(&n.metadata)));
    let reports = sum(&mut ctx.reports.state().iter().map(|r| one(&r.metadata)));
    let mut loaded: Vec<(&String, usize)> = roots.iter().map(|(n, r)| (n, Arc::as_ptr(r) as usize)).collect();
    loaded.sort();
    let lifecycle = super::triggers::spec_or_lifecycle(policy);
    KEY.hash_one((&policy.metadata.uid, lifecycle, pods, namespaces, owners, network, reports, loaded))
}
/// The generations a later scan may keep `results` by, without asking again: none when an
/// answer is `ExpiringSoon`, whose message says how long is left and so changes with the
/// clock alone.
fn keepable_generations(
    generations: Option<BTreeMap<String, u64>>,
    results: &HashMap<VerifyKey, Resolution>,
) -> Option<BTreeMap<String, u64>> {
    generations.filter(|_| results.values().all(|r| r.verdict != crate::verdict::Verdict::ExpiringSoon))
}

/// `events.k8s.io/v1` refuses a `note` over 1 KiB.
pub const MAX_EVENT_NOTE: usize = 1024;

pub async fn reconcile(policy: Arc<ImageTrustPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = if policy.metadata.deletion_timestamp.is_some() {
        release_on_delete(&policy, &ctx).await
    } else {
        match ensure_finalizer(&policy, &ctx).await {
            Ok(()) => scan(&policy, &ctx).await,
            Err(e) => Err(e),
        }
    };
    ctx.metrics.record_reconcile("imagetrustpolicy", result.is_ok(), started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        report_failure(&policy, &ctx, e).await;
    }
    result
}

/// A pass that failed says so in the policy's status (best effort: the status write may be
/// what fails), so that `kubectl get itp` shows it, not only the logs.
async fn report_failure(policy: &ImageTrustPolicy, ctx: &Context, error: &Error) {
    let api: Api<ImageTrustPolicy> = Api::all(ctx.client.clone());
    let mut status = policy.status.clone().unwrap_or_default();
    let message = truncate(&format!("the last scan failed and is retried in 30s: {error}"), 2048);
    crate::crd::set_condition(
        &mut status.conditions,
        crate::crd::new_condition(
            crate::crd::condition::types::READY,
            false,
            error.reason(),
            message,
            policy.metadata.generation,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        ),
    );
    if let Err(e) = patch_status(&api, &policy.name_any(), &status).await {
        warn!(policy = %policy.name_any(), error = %e, "cannot record the failure in status either");
    }
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
        .filter(|p| !crate::scanner::pods::is_finished(p))
        .filter(|p| {
            let ns = p.namespace().unwrap_or_default();
            spec.selects_namespace(&ns, ns_labels.get(&ns).unwrap_or(&empty), ctx.operator_namespace())
        })
        .map(|p| pod_view(p, &owners))
        .collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    pods
}

/// `kubectl annotate itp NAME trustwatch.dev/recheck=now` (or the same on a pod) forces a pass
/// with fresh trust data. Each new value is honoured once.
fn take_recheck(ctx: &Context, policy: &ImageTrustPolicy, pods: &[PodView]) -> bool {
    let mut seen = ctx.rechecks.lock().expect("recheck map poisoned");
    let mut fresh = |key: String, value: &String| seen.insert(key, value.clone()).as_ref() != Some(value);
    let mut force = false;
    if let Some(value) = policy.annotations().get(RECHECK_ANNOTATION) {
        force |= fresh(format!("policy/{}", policy.name_any()), value);
    }
    for p in pods {
        if let Some(value) = &p.recheck {
            force |= fresh(format!("pod/{}/{}/{}", policy.name_any(), p.namespace, p.name), value);
        }
    }
    force
}

/// When to scan again: the interval, or earlier when a verdict changes by itself.
pub fn requeue_after(spec: &ImageTrustPolicySpec, next_change: Option<Timestamp>, now: Timestamp) -> Duration {
    let interval = spec.interval_period();
    let until_change =
        next_change.map(|t| Duration::from_secs(t.duration_since(now).as_secs().max(0) as u64 + 1)).unwrap_or(interval);
    interval.min(until_change).max(Duration::from_secs(5))
}

/// The trust roots a policy uses that exist but have not been loaded since the process
/// started. Scanning before they are would report an outage for trust data that is fine.
fn roots_not_loaded_yet(
    ctx: &Context,
    spec: &ImageTrustPolicySpec,
    loaded: &HashMap<String, impl Sized>,
) -> Vec<String> {
    let existing: BTreeSet<String> = ctx.trust_roots.state().iter().map(|t| t.name_any()).collect();
    let referenced: BTreeSet<&str> = spec.images.iter().flat_map(|r| r.roots()).collect();
    referenced.into_iter().filter(|r| existing.contains(*r) && !loaded.contains_key(*r)).map(str::to_string).collect()
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
    if !ctx.synced.load(std::sync::atomic::Ordering::SeqCst) {
        debug!(policy = %name, "waiting for the caches to sync before the first scan");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let roots = ctx.roots.read().await.clone();
    let waiting = roots_not_loaded_yet(ctx, &policy.spec, &roots);
    if !waiting.is_empty() {
        debug!(policy = %name, trust_roots = ?waiting, "waiting for trust roots to load before the first scan");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let last_scan = ctx.verdicts.lock().expect("verdict map poisoned").get(&name).cloned();
    let inputs = inputs_fingerprint(ctx, policy, &roots);
    if let Some(reuse) = last_scan.as_ref().and_then(|l| l.reuse.as_ref())
        && reuse.inputs == inputs
        && now < reuse.until
    {
        // Nothing the decision rests on changed but maybe trust data. When every trust root
        // tells that its answers cannot have changed, they are not asked again: only the
        // clock could change them, and `until` is the first instant it does (an expiry, a
        // warning window). Otherwise verify again (cached answers unless stale); when every
        // answer is the same, the decision stands.
        let generations = keepable_generations(answers_generation(&reuse.keys, &roots), &reuse.results);
        let known = generations.is_some() && *reuse.generations.lock().expect("generations poisoned") == generations;
        let same = known || {
            let results = verify_all(&reuse.keys, &roots, now, false, Some(&ctx.metrics), &Default::default()).await;
            let same = results == reuse.results;
            if same {
                *reuse.generations.lock().expect("generations poisoned") = generations;
            }
            same
        };
        if same {
            let status = policy_status(policy, &reuse.outcome, &reuse.missing, &[], now);
            let events: Vec<EventSpec> = compliance_event(policy, &status).into_iter().collect();
            publish_events(ctx, policy, &events).await;
            patch_status(&policies, &name, &status).await?;
            record_scan_metrics(ctx, &name, policy, &reuse.outcome, now);
            if let Some(l) = &last_scan {
                l.confirmed.store(now.as_second(), std::sync::atomic::Ordering::Relaxed);
            }
            info!(
                policy = %name,
                pods = reuse.outcome.summary.pods,
                trust_data_unchanged = known,
                "scan complete: inputs and answers unchanged"
            );
            return Ok(Action::requeue(requeue_after(&policy.spec, reuse.outcome.next_change, now)));
        }
    }
    let pods = gather_pods(ctx, &policy.spec);
    let pull_roots: BTreeSet<String> =
        roots.iter().filter(|(_, r)| r.uses_pod_pull_secrets()).map(|(n, _)| n.clone()).collect();
    let plan = plan(&policy.spec, &pods, &pull_roots);
    let referenced: BTreeSet<&str> = policy.spec.images.iter().flat_map(|r| r.roots()).collect();
    let missing: Vec<String> = referenced.into_iter().filter(|r| !roots.contains_key(*r)).map(str::to_string).collect();
    let force = take_recheck(ctx, policy, &pods);
    let keys = plan.keys();
    let pulls = super::pull::read_pull_configs(ctx, keys.iter().filter_map(|k| k.pull.as_ref())).await;
    // Read before the answers: a change that lands while they are asked shows on the next scan.
    let generations = answers_generation(&keys, &roots);
    let results = verify_all(&keys, &roots, now, force, Some(&ctx.metrics), &pulls).await;
    let generations = keepable_generations(generations, &results);

    let cached = current_reports(ctx, &name).await?;
    let stored = stored_reports(&cached, &name);
    let stored_statuses = || stored.iter().filter_map(|((ns, _), s)| s.map(|s| (ns.as_str(), s)));
    let stored_previous;
    let (previous_scan, previous) = match &last_scan {
        Some(l) => (l.confirmed(), &l.verdicts),
        None => {
            stored_previous = previous_verdicts(stored_statuses(), &pods);
            (None, &stored_previous)
        }
    };
    let history = entry_history(stored_statuses());
    let network_policies: Vec<NetworkPolicyView> =
        ctx.network_policies.state().iter().map(|np| NetworkPolicyView::from_resource(np)).collect();
    // One policy at a time decides and applies quarantines, so the cluster-wide cap holds.
    let mut ledger = ctx.quarantine.lock().await;
    let cluster_quarantined = ledger.count(&ctx.pods);
    let warnings = roots.iter().map(|(n, r)| (n.clone(), r.expiry_warning)).collect();
    let mut outcome = decide(&DecideInput {
        policy: &name,
        spec: &policy.spec,
        pods: &pods,
        plan: &plan,
        results: &results,
        warnings: &warnings,
        previous,
        previous_scan,
        history: &history,
        network_policies: &network_policies,
        cluster_quarantined,
        max_quarantined: ctx.config.max_quarantined,
        operator_namespace: ctx.operator_namespace(),
        now,
    });

    let applied = apply_quarantine(ctx, &outcome, &mut ledger).await;
    drop(ledger);
    applied?;
    let mut write_errors = write_reports(ctx, &name, &outcome, &stored, now).await;
    write_errors.extend(write_policy_reports(ctx, policy, &outcome).await);
    apply_network_policies(ctx, &outcome).await?;
    let status = policy_status(policy, &outcome, &missing, &write_errors, now);
    let mut events = outcome.events.clone();
    events.extend(compliance_event(policy, &status));
    publish_events(ctx, policy, &events).await;
    patch_status(&policies, &name, &status).await?;
    record_scan_metrics(ctx, &name, policy, &outcome, now);
    info!(
        policy = %name,
        pods = outcome.summary.pods,
        containers = outcome.summary.containers,
        failing = outcome.summary.failing,
        quarantined = outcome.summary.quarantined,
        reports = outcome.reports.len(),
        report_errors = write_errors.len(),
        dropped_events = outcome.dropped_events,
        "scan complete"
    );
    let next = requeue_after(&policy.spec, outcome.next_change, now);
    // What the next scan may reuse: not after a failed write (it must be retried), nor with
    // pods' own registry credentials (read afresh every scan).
    let reusable = write_errors.is_empty() && keys.iter().all(|k| k.pull.is_none());
    let verdicts = std::mem::take(&mut outcome.verdicts);
    let reuse = reusable.then(|| {
        let until = outcome
            .next_change
            .unwrap_or(Timestamp::MAX)
            .min(now.saturating_add(FULL_SCAN_AT_LEAST_EVERY).unwrap_or(now));
        (outcome.reports, outcome.events) = (vec![], vec![]);
        Reuse { inputs, keys, results, outcome, missing, generations: generations.into(), until }
    });
    ctx.verdicts
        .lock()
        .expect("verdict map poisoned")
        .insert(name.clone(), Arc::new(LastScan { confirmed: now.as_second().into(), verdicts, reuse }));
    Ok(Action::requeue(if write_errors.is_empty() { next } else { next.min(Duration::from_secs(30)) }))
}

/// The policy's gauges from a scan's decision.
fn record_scan_metrics(ctx: &Context, name: &str, policy: &ImageTrustPolicy, outcome: &ScanOutcome, now: Timestamp) {
    ctx.metrics.set_policy(
        name,
        &outcome.counts,
        &outcome.quarantined_by_namespace,
        policy.spec.interval_period().as_secs_f64(),
        now.as_second() as f64,
    );
    let signature_expiry =
        outcome.signature_expiry.iter().map(|(k, t)| (k.clone(), t.duration_since(now).as_secs_f64())).collect();
    ctx.metrics.set_migration(
        name,
        &outcome.by_format,
        &outcome.migration,
        &outcome.notary_only_by_root,
        &signature_expiry,
    );
}

/// The reports to compare a scan with: the report cache once it has listed; until then (a
/// slow start, or a watch the operator's RBAC refuses) a LIST of the policy's reports, so a
/// refusal shows in the policy status as the failed call it is rather than as no scan at all.
async fn current_reports(ctx: &Context, policy: &str) -> Result<Vec<Arc<ImageTrustReport>>, Error> {
    use futures::FutureExt as _;
    if ctx.reports.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok()) {
        return Ok(ctx.reports.state());
    }
    let reports: Api<ImageTrustReport> = Api::all(ctx.client.clone());
    let selector = format!("{POLICY_LABEL}={}", policy_label_value(policy));
    let listed = reports.list(&ListParams::default().labels(&selector)).await?;
    Ok(listed.items.into_iter().map(Arc::new).collect())
}

/// The policy's reports, by (namespace, name), among `cached`.
fn stored_reports<'a>(
    cached: &'a [Arc<ImageTrustReport>],
    policy: &str,
) -> HashMap<(String, String), Option<&'a ImageTrustReportStatus>> {
    let label = policy_label_value(policy);
    cached
        .iter()
        .filter(|r| r.labels().get(POLICY_LABEL).is_some_and(|v| *v == label))
        // The label value of a long name is a hash prefix: the status names the policy.
        .filter(|r| r.status.as_ref().and_then(|s| s.policy.as_deref()).is_none_or(|p| p == policy))
        .map(|r| ((r.namespace().unwrap_or_default(), r.name_any()), r.status.as_ref()))
        .collect()
}

/// An event on the policy when its `Compliant` condition flips.
pub fn compliance_event(policy: &ImageTrustPolicy, new: &ImageTrustPolicyStatus) -> Option<EventSpec> {
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
    Some(EventSpec {
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
/// deletes the policy's reports for workloads it no longer selects. A report that cannot be
/// written does not stop the others: the failures are returned for the policy's status.
async fn write_reports(
    ctx: &Context,
    policy: &str,
    outcome: &ScanOutcome,
    stored: &HashMap<(String, String), Option<&ImageTrustReportStatus>>,
    now: Timestamp,
) -> Vec<String> {
    let mut errors = vec![];
    let mut keep = BTreeSet::new();
    for r in &outcome.reports {
        let key = (r.namespace.clone(), r.name.clone());
        keep.insert(key.clone());
        if let Err(e) = write_report(ctx, policy, r, stored.get(&key), now).await {
            warn!(policy, namespace = %r.namespace, report = %r.name, error = %e, "cannot write report; the other reports are written");
            errors.push(format!("{}/{}: {e}", r.namespace, r.name));
        }
    }
    for (ns, name) in stored.keys().filter(|k| !keep.contains(*k)) {
        let api: Api<ImageTrustReport> = Api::namespaced(ctx.client.clone(), ns);
        if let Err(e) = ignore_not_found(api.delete(name, &DeleteParams::default()).await) {
            errors.push(format!("{ns}/{name}: cannot delete: {e}"));
        }
    }
    errors
}

async fn write_report(
    ctx: &Context,
    policy: &str,
    r: &crate::scanner::ReportPlan,
    existing: Option<&Option<&ImageTrustReportStatus>>,
    now: Timestamp,
) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let api: Api<ImageTrustReport> = Api::namespaced(ctx.client.clone(), &r.namespace);
    if existing.is_none() {
        let mut meta =
            json!({"name": r.name, "namespace": r.namespace, "labels": {POLICY_LABEL: policy_label_value(policy)}});
        if let Some(uid) = &r.workload.uid {
            meta["ownerReferences"] = json!([{"apiVersion": r.workload.api_version, "kind": r.workload.kind, "name": r.workload.name, "uid": uid}]);
        }
        let body = json!({"apiVersion": API_VERSION, "kind": "ImageTrustReport", "metadata": meta, "spec": {}});
        api.patch(&r.name, &params, &Patch::Apply(&body)).await?;
    }
    if report_needs_write(existing.and_then(|s| *s), &r.status, now, REPORT_MAX_AGE) {
        let body = json!({"apiVersion": API_VERSION, "kind": "ImageTrustReport", "status": r.status});
        api.patch_status(&r.name, &params, &Patch::Apply(&body)).await?;
    }
    Ok(())
}

/// The policy's PolicyReports (`--policy-reports`): one per namespace with workloads, written
/// when its content changed since this process last wrote it; those of namespaces the policy
/// no longer reports on are deleted. Failures are returned for the policy's status, like the
/// ImageTrustReports' (and the scan is not reused, so the next one retries).
async fn write_policy_reports(ctx: &Context, policy: &ImageTrustPolicy, outcome: &ScanOutcome) -> Vec<String> {
    use crate::scanner::policy_report::{Counting, Owner, policy_reports};
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let Some(group) = ctx.config.policy_reports else { return vec![] };
    let name = policy.name_any();
    let (g, v) = group.api_version().split_once('/').unwrap_or_default();
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, group.kind()), group.plural());
    let what = format!("{} {}", group.api_version(), group.kind());
    let hint = |e: &kube::Error| match e {
        kube::Error::Api(s) if s.code == 404 => format!("{e} (is the {} CRD installed?)", group.group()),
        _ => e.to_string(),
    };
    let mut errors = vec![];
    let known = ctx.policy_reports.lock().expect("policy report memo poisoned").get(&name).cloned();
    let mut written = match known {
        Some(w) => w,
        // First scan of this process: the policy's reports already in the cluster, to delete
        // the ones it no longer makes (their content is unknown, so each is written again).
        None => {
            let all: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
            let lp = ListParams::default().labels(&format!("{POLICY_LABEL}={}", policy_label_value(&name)));
            match all.list_metadata(&lp).await {
                Ok(list) => list.items.iter().filter_map(|o| o.metadata.namespace.clone()).map(|ns| (ns, 0)).collect(),
                Err(e) => return vec![format!("{what}: cannot list the policy's reports: {}", hint(&e))],
            }
        }
    };
    let counting = Counting { on_unavailable: policy.spec.on_unavailable, unmatched: policy.spec.unmatched_images };
    let owner = Owner { policy: &name, uid: policy.metadata.uid.as_deref() };
    let plans = policy_reports(group, owner, counting, &outcome.reports);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for plan in &plans {
        let fingerprint = {
            use std::hash::BuildHasher;
            foldhash::fast::FixedState::with_seed(0).hash_one(serde_json::to_vec(&plan.body).unwrap_or_default())
        };
        if written.get(&plan.namespace) == Some(&fingerprint) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &plan.namespace, &resource);
        match api.patch(&plan.name, &params, &Patch::Apply(&plan.body)).await {
            Ok(_) => {
                written.insert(plan.namespace.clone(), fingerprint);
            }
            Err(e) => {
                warn!(policy = %name, namespace = %plan.namespace, error = %e, "cannot write the PolicyReport");
                errors.push(format!("{}/{} ({what}): {}", plan.namespace, plan.name, hint(&e)));
            }
        }
    }
    let current: BTreeSet<&str> = plans.iter().map(|p| p.namespace.as_str()).collect();
    let gone: Vec<String> = written.keys().filter(|ns| !current.contains(ns.as_str())).cloned().collect();
    for ns in gone {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &resource);
        match ignore_not_found(
            api.delete(&crate::scanner::policy_report::report_name(&name), &DeleteParams::default()).await,
        ) {
            Ok(()) => {
                written.remove(&ns);
            }
            Err(e) => errors.push(format!("{ns} ({what}): cannot delete: {e}")),
        }
    }
    ctx.policy_reports.lock().expect("policy report memo poisoned").insert(name, written);
    errors
}

fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn apply_quarantine(
    ctx: &Context,
    outcome: &ScanOutcome,
    ledger: &mut super::QuarantineLedger,
) -> Result<(), Error> {
    for change in &outcome.quarantine {
        let (ns, pod, on) = match change {
            QuarantineChange::Add { namespace, pod, .. } => (namespace, pod, true),
            QuarantineChange::Remove { namespace, pod } => (namespace, pod, false),
        };
        patch_quarantine(ctx, ns, pod, change).await?;
        ledger.recent.insert((ns.clone(), pod.clone()), on);
        info!(namespace = %ns, pod = %pod, change = ?change, "quarantine changed");
    }
    Ok(())
}

async fn patch_quarantine(ctx: &Context, ns: &str, pod: &str, change: &QuarantineChange) -> Result<(), Error> {
    let body = match change {
        QuarantineChange::Add { reason, .. } => json!({"metadata": {"labels": {QUARANTINED_LABEL: "true"},
            "annotations": {QUARANTINE_REASON_ANNOTATION: truncate(reason, 1024)}}}),
        QuarantineChange::Remove { .. } => json!({"metadata": {"labels": {QUARANTINED_LABEL: null},
            "annotations": {QUARANTINE_REASON_ANNOTATION: null}}}),
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    // A pod that went away between the scan and the patch needs nothing.
    ignore_not_found(api.patch(pod, &PatchParams::default(), &Patch::Merge(&body)).await)
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

/// Namespaces that hold trustwatch's deny-all NetworkPolicy, from the cache.
fn namespaces_with_network_policy(ctx: &Context) -> BTreeSet<String> {
    ctx.network_policies
        .state()
        .iter()
        .filter(|np| np.name_any() == QUARANTINE_NETWORK_POLICY)
        .filter(|np| np.labels().get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1))
        .filter_map(|np| np.namespace())
        .collect()
}

async fn apply_network_policies(ctx: &Context, outcome: &ScanOutcome) -> Result<(), Error> {
    let existing = namespaces_with_network_policy(ctx);
    for (ns, want) in &outcome.network_policies {
        set_network_policy(ctx, ns, *want, existing.contains(ns)).await?;
    }
    Ok(())
}

async fn set_network_policy(ctx: &Context, ns: &str, want: bool, exists: bool) -> Result<(), Error> {
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
    match (want, exists) {
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
    Ok(())
}

/// Cuts text to at most `max` bytes at a character boundary, with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

async fn publish_events(ctx: &Context, policy: &ImageTrustPolicy, events: &[EventSpec]) {
    let policy_ref = policy.object_ref(&());
    for ev in events {
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
            note: Some(truncate(&format!("{} (policy {})", ev.message, policy.name_any()), MAX_EVENT_NOTE)),
            action: "Verify".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(reason = ev.reason, error = %e, "cannot publish event");
        }
    }
}

/// Adds the release finalizer, so that deleting the policy releases its pods first.
async fn ensure_finalizer(policy: &ImageTrustPolicy, ctx: &Context) -> Result<(), Error> {
    if policy.finalizers().iter().any(|f| f == POLICY_FINALIZER) {
        return Ok(());
    }
    let api: Api<ImageTrustPolicy> = Api::all(ctx.client.clone());
    let mut finalizers = policy.finalizers().to_vec();
    finalizers.push(POLICY_FINALIZER.to_string());
    let body = json!({"metadata": {"finalizers": finalizers, "resourceVersion": policy.resource_version()}});
    api.patch(&policy.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await?;
    Ok(())
}

/// A deleted policy releases the pods it quarantined, removes the deny-all NetworkPolicy
/// where nothing stays quarantined, deletes its reports, and then lets the policy go.
async fn release_on_delete(policy: &ImageTrustPolicy, ctx: &Context) -> Result<Action, Error> {
    let name = policy.name_any();
    if !policy.finalizers().iter().any(|f| f == POLICY_FINALIZER) {
        return Ok(Action::await_change());
    }
    let prefix = format!("{name}: ");
    let pods = ctx.pods.state();
    let quarantined = |p: &CachedPod| p.labels().get(QUARANTINED_LABEL).is_some_and(|v| v == "true");
    let ours =
        |p: &CachedPod| p.annotations().get(QUARANTINE_REASON_ANNOTATION).is_some_and(|r| r.starts_with(&prefix));
    let mut released = 0;
    let mut touched = BTreeSet::new();
    for pod in pods.iter().filter(|p| quarantined(p) && ours(p)) {
        let (ns, pod_name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        patch_quarantine(
            ctx,
            &ns,
            &pod_name,
            &QuarantineChange::Remove { namespace: ns.clone(), pod: pod_name.clone() },
        )
        .await?;
        touched.insert(ns);
        released += 1;
    }
    let still: BTreeSet<String> =
        pods.iter().filter(|p| quarantined(p) && !ours(p)).filter_map(|p| p.namespace()).collect();
    let existing = namespaces_with_network_policy(ctx);
    for ns in touched.iter().filter(|ns| !still.contains(*ns)) {
        set_network_policy(ctx, ns, false, existing.contains(ns)).await?;
    }
    let reports: Api<ImageTrustReport> = Api::all(ctx.client.clone());
    let selector = format!("{POLICY_LABEL}={}", policy_label_value(&name));
    for r in reports.list(&ListParams::default().labels(&selector)).await?.items {
        let api: Api<ImageTrustReport> = Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
        ignore_not_found(api.delete(&r.name_any(), &DeleteParams::default()).await)?;
    }
    let finalizers: Vec<String> = policy.finalizers().iter().filter(|f| *f != POLICY_FINALIZER).cloned().collect();
    let api: Api<ImageTrustPolicy> = Api::all(ctx.client.clone());
    let body = json!({"metadata": {"finalizers": finalizers, "resourceVersion": policy.resource_version()}});
    ignore_not_found(api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)).await)?;
    ctx.verdicts.lock().expect("verdict map poisoned").remove(&name);
    // Its PolicyReports go with it (owner references); a policy of the same name starts anew.
    ctx.policy_reports.lock().expect("policy report memo poisoned").remove(&name);
    ctx.metrics.forget_policy(&name);
    info!(policy = %name, released, "policy deleted: its pods are released and its reports removed");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_and_annotations_are_cut_at_a_character_boundary() {
        let long = "é".repeat(1000);
        let cut = truncate(&long, MAX_EVENT_NOTE);
        assert!(cut.len() <= MAX_EVENT_NOTE && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(truncate("short", MAX_EVENT_NOTE), "short");
    }

    #[test]
    fn long_policy_names_still_make_valid_label_values() {
        let name = "a".repeat(200);
        let v = policy_label_value(&name);
        assert!(v.len() <= 63, "{v}");
        assert_ne!(policy_label_value(&format!("{name}b")), v, "distinct names, distinct values");
        assert_eq!(policy_label_value("prod"), "prod");
    }
}
