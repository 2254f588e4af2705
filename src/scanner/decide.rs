//! Decide: from the plan, the verification results, the previous state and `now` to reports,
//! summary, quarantine changes and events. Pure.

use super::combine::{combine, migration_state};
use super::isolation::{IsolationGap, NetworkPolicyView, isolation_gaps};
use super::pods::{ContainerView, PodView, Workload};
use super::report::{
    EntryHistory, EntryKey, ReportPlan, add_to_entries, add_to_existing_entry, bound_entries, bounded_message,
    report_name,
};
use super::{ContainerPlan, Plan, VerifyKey, is_failing, is_protected_namespace};
use crate::crd::{
    ContainerVerification, ImageTrustPolicySpec, ImageTrustReportStatus, MigrationState, PolicyAction, PolicySummary,
    QuarantineStatus, ReportSummary, TrustRootResult,
};
use crate::engine::Resolution;
use crate::image::ImageRef;
use crate::verdict::Verdict;
use crate::verifier::SignatureFormat;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// At most this many pod events per scan (a key rotation gone wrong must not flood the
/// cluster with thousands of events); the policy's status and metrics carry the totals.
pub const MAX_POD_EVENTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTarget {
    Pod { namespace: String, name: String, uid: String },
    Policy,
}

/// An event to publish: only on transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub target: EventTarget,
    pub type_: EventType,
    /// `VerificationFailed`, `Verified`, `Quarantined`, `Released`, `TrustDataExpiring`,
    /// `WouldQuarantine`, `QuarantineIneffective`.
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineChange {
    Add { namespace: String, pod: String, reason: String },
    Remove { namespace: String, pod: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScanOutcome {
    pub reports: Vec<ReportPlan>,
    pub summary: PolicySummary,
    /// The worst verdict of covered containers (`None` when nothing is covered).
    pub worst: Option<Verdict>,
    pub counts: BTreeMap<Verdict, u64>,
    pub quarantine: Vec<QuarantineChange>,
    /// Pods that should be quarantined but were not: a cap was reached.
    pub limited: Vec<(String, String)>,
    /// The cap reached was the cluster-wide one (`--max-quarantined`).
    pub cluster_limited: bool,
    /// Pods in protected namespaces that would have been quarantined.
    pub protected: Vec<(String, String)>,
    /// Failing pods waiting out spec.quarantineAfter.
    pub pending: Vec<(String, String)>,
    /// Failing pods a dry run would quarantine.
    pub would_quarantine: Vec<(String, String)>,
    /// Quarantined pods that are not isolated, and why.
    pub ineffective: Vec<(String, String, IsolationGap)>,
    /// Namespace -> whether the deny-all NetworkPolicy must exist.
    pub network_policies: BTreeMap<String, bool>,
    pub quarantined_by_namespace: BTreeMap<String, u64>,
    pub events: Vec<EventSpec>,
    /// Pod events left out by [`MAX_POD_EVENTS`].
    pub dropped_events: usize,
    /// Covered containers by the signature format that decided their verdict.
    pub by_format: BTreeMap<SignatureFormat, u64>,
    /// Containers by migration state.
    pub migration: BTreeMap<MigrationState, u64>,
    /// Containers that depend on Notary v1 alone, by the Notary v1 trust root they depend on.
    pub notary_only_by_root: BTreeMap<String, u64>,
    /// The earliest expiry of Notation and cosign signatures (`signature`) and their
    /// certificates (`certificate`) among the running containers, by trust root.
    pub signature_expiry: BTreeMap<(String, String), Timestamp>,
    /// The verdict of every (namespace, pod, container) this scan: the next scan's `previous`.
    pub verdicts: HashMap<(String, String, String), Verdict>,
    /// When a verdict or a quarantine will change by itself (an expiry, the start of a warning
    /// window, the end of a grace period).
    pub next_change: Option<Timestamp>,
}

/// What the scan needs besides the plan and the verification results.
pub struct DecideInput<'a> {
    pub policy: &'a str,
    pub spec: &'a ImageTrustPolicySpec,
    pub pods: &'a [PodView],
    pub plan: &'a Plan,
    pub results: &'a HashMap<VerifyKey, Resolution>,
    /// Trust root -> warning window (for the next time a verdict changes by itself).
    pub warnings: &'a HashMap<String, SignedDuration>,
    /// Previous verdict per (namespace, pod, container).
    pub previous: &'a HashMap<(String, String, String), Verdict>,
    /// When the scan that produced `previous` ran (`None` when the stored reports stand in,
    /// after a restart): the last trusted time of an entry that was trusted then.
    pub previous_scan: Option<Timestamp>,
    /// What the stored reports remember of each entry (failing since, last trusted).
    pub history: &'a HashMap<EntryKey, EntryHistory>,
    /// The NetworkPolicies of the cluster (to tell whether a quarantine isolates).
    pub network_policies: &'a [NetworkPolicyView],
    /// Pods labelled quarantined in the cluster before this scan, by every policy.
    pub cluster_quarantined: u32,
    /// The most pods quarantined in the cluster (`--max-quarantined`).
    pub max_quarantined: u32,
    pub operator_namespace: &'a str,
    pub now: Timestamp,
}

/// One container's verdict. The answers are borrowed from the verification results (one
/// scan judges every container of the cluster: copies of each answer per container were most
/// of its work).
/// A report being built: its entries, summary and quarantine counts.
type ReportAcc = (Vec<ContainerVerification>, ReportSummary, QuarantineStatus);

struct Judged<'a> {
    verdict: Verdict,
    reason: Cow<'a, str>,
    message: Cow<'a, str>,
    /// The answer that decided the verdict, and the key it answers.
    resolution: Option<Cow<'a, Resolution>>,
    key: Option<&'a VerifyKey>,
    /// Every trust root's answer, when the rule names several.
    answers: Vec<(&'a str, Cow<'a, Resolution>)>,
    migration: Option<MigrationState>,
}

impl<'a> Judged<'a> {
    fn plain(verdict: Verdict, reason: &'a str, message: Cow<'a, str>) -> Judged<'a> {
        Judged {
            verdict,
            reason: reason.into(),
            message,
            resolution: None,
            key: None,
            answers: vec![],
            migration: None,
        }
    }
}

/// The answer for one key: the verification result, or "not verified yet".
fn answer_for<'a>(key: &VerifyKey, results: &'a HashMap<VerifyKey, Resolution>) -> Cow<'a, Resolution> {
    if let Some(r) = results.get(key) {
        return Cow::Borrowed(r);
    }
    Cow::Owned(match ImageRef::parse(&key.image) {
        Ok(image) => Resolution::new(
            crate::verifier::SignatureFormat::NotaryV1,
            &image,
            Verdict::TrustDataUnavailable,
            "NotVerified",
            format!("trust root {} has not verified this image yet", key.trust_root),
        ),
        Err(_) => Resolution::unparsed(
            crate::verifier::SignatureFormat::NotaryV1,
            &key.image,
            Verdict::TrustDataUnavailable,
            "NotVerified",
            format!("trust root {} has not verified this image yet", key.trust_root),
        ),
    })
}

fn judge<'a>(c: &ContainerView, plan: &'a ContainerPlan, results: &'a HashMap<VerifyKey, Resolution>) -> Judged<'a> {
    match plan {
        ContainerPlan::Invalid { message } => {
            Judged::plain(Verdict::Unsigned, "InvalidImageReference", Cow::Borrowed(message))
        }
        ContainerPlan::NotCovered { gun } => Judged::plain(
            Verdict::NotCovered,
            "NoMatchingPattern",
            Cow::Owned(format!("no spec.images pattern matches {}", gun.as_deref().unwrap_or(&c.image))),
        ),
        ContainerPlan::Undetermined { reason, message } => {
            Judged::plain(Verdict::TrustDataUnavailable, reason, Cow::Borrowed(message))
        }
        ContainerPlan::Verify { keys, require } => {
            let mut answers: Vec<Cow<'a, Resolution>> = keys.iter().map(|k| answer_for(k, results)).collect();
            let i = combine(*require, &answers);
            let migration = migration_state(&answers);
            let (r, answers) = if keys.len() > 1 {
                let r = answers[i].clone();
                (r, keys.iter().map(|k| k.trust_root.as_str()).zip(answers).collect())
            } else {
                (answers.swap_remove(i), vec![])
            };
            let (verdict, reason, message) = match &r {
                Cow::Borrowed(b) => (b.verdict, Cow::Borrowed(b.reason.as_str()), Cow::Borrowed(b.message.as_str())),
                Cow::Owned(o) => (o.verdict, Cow::Owned(o.reason.clone()), Cow::Owned(o.message.clone())),
            };
            let mut j =
                Judged { verdict, reason, message, key: Some(&keys[i]), migration, answers, resolution: Some(r) };
            // A digest-pinned spec must also be what runs.
            if let (Some(running), Ok(spec)) = (c.running_digest(), ImageRef::parse(&c.image))
                && let Some(pinned) = spec.digest.filter(|d| d != running)
                && j.verdict.is_trusted()
            {
                j.verdict = Verdict::DigestDrift;
                j.reason = "RunningDigestMismatch".into();
                j.message = format!("the pod spec pins {pinned}, but the container runs {running}").into();
            }
            j
        }
    }
}

/// Accumulates one scan's results.
struct Scan<'a> {
    input: &'a DecideInput<'a>,
    /// One per namespace and workload (borrowed from the pods), in the order first seen.
    reports: Vec<((&'a str, &'a Workload), ReportAcc)>,
    /// Where each workload's report is in `reports`.
    report_index: HashMap<(&'a str, &'a Workload), usize>,
    /// The report of the pod being decided (pods of one workload mostly come in a row).
    current: usize,
    out: ScanOutcome,
    newly_quarantined: u32,
    covered: Vec<Verdict>,
    pod_events: Vec<EventSpec>,
}

/// Decides reports, summary, quarantine changes and events for one scan of one policy.
pub fn decide(input: &DecideInput<'_>) -> ScanOutcome {
    let mut by_pod: BTreeMap<usize, Vec<(usize, Judged)>> = BTreeMap::new();
    for ((pi, ci), p) in &input.plan.containers {
        let c = &input.pods[*pi].containers[*ci];
        by_pod.entry(*pi).or_default().push((*ci, judge(c, p, input.results)));
    }
    let mut scan = Scan {
        input,
        reports: vec![],
        report_index: HashMap::new(),
        current: 0,
        out: ScanOutcome {
            reports: vec![],
            summary: PolicySummary { pods: input.pods.len() as i32, ..Default::default() },
            worst: None,
            counts: BTreeMap::new(),
            quarantine: vec![],
            limited: vec![],
            cluster_limited: false,
            protected: vec![],
            pending: vec![],
            would_quarantine: vec![],
            ineffective: vec![],
            network_policies: BTreeMap::new(),
            quarantined_by_namespace: BTreeMap::new(),
            events: vec![],
            dropped_events: 0,
            by_format: BTreeMap::new(),
            migration: BTreeMap::new(),
            notary_only_by_root: BTreeMap::new(),
            signature_expiry: BTreeMap::new(),
            verdicts: HashMap::new(),
            next_change: None,
        },
        newly_quarantined: 0,
        covered: vec![],
        pod_events: vec![],
    };
    let mut quarantined_after: BTreeMap<String, u64> = BTreeMap::new();
    for (pi, pod) in input.pods.iter().enumerate() {
        let judged = by_pod.remove(&pi).unwrap_or_default();
        let failure = scan.judge_pod(pod, &judged);
        let stays = scan.quarantine_pod(pod, &judged, failure);
        // Namespaces matter for the NetworkPolicy only under an enforcing quarantine policy or
        // where a pod was quarantined before this scan (an audit policy never lists them).
        if enforcing(input.spec) || pod.is_quarantined() {
            let n = quarantined_after.entry(pod.namespace.clone()).or_default();
            if stays {
                *n += 1;
            }
        }
    }
    scan.finish(quarantined_after)
}

/// An instant as the API server keeps it in a report: metav1.Time has whole seconds. A status
/// built with finer instants (a TUF expiry, `now`) would never equal the stored one, and every
/// scan would rewrite every report.
fn api_time(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn enforcing(spec: &ImageTrustPolicySpec) -> bool {
    spec.action == PolicyAction::Quarantine && !spec.dry_run
}

fn min_time(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn pod_target(pod: &PodView) -> EventTarget {
    EventTarget::Pod { namespace: pod.namespace.clone(), name: pod.name.clone(), uid: pod.uid.clone() }
}

/// A failing pod: its worst verdict, why, since when, and whether it just started failing.
struct PodFailure {
    verdict: Verdict,
    message: String,
    since: Timestamp,
    new: bool,
}

impl<'a> Scan<'a> {
    /// Judges the containers of one pod into counts, report entries and transition events;
    /// returns the pod's failure, if it fails.
    fn judge_pod(&mut self, pod: &'a PodView, judged: &[(usize, Judged<'_>)]) -> Option<PodFailure> {
        let input = self.input;
        let spec = input.spec;
        let mut failure: Option<PodFailure> = None;
        let key = (pod.namespace.as_str(), &pod.workload);
        if self.reports.get(self.current).is_none_or(|(k, _)| *k != key) {
            let reports = &mut self.reports;
            self.current = *self.report_index.entry(key).or_insert_with(|| {
                reports.push((key, (vec![], ReportSummary::default(), QuarantineStatus::default())));
                reports.len() - 1
            });
        }
        let report = &mut self.reports[self.current].1;
        report.1.pods += 1;
        for (ci, j) in judged {
            let c = &pod.containers[*ci];
            let s = &mut self.out.summary;
            s.containers += 1;
            report.1.containers += 1;
            *self.out.counts.entry(j.verdict).or_default() += 1;
            if j.verdict != Verdict::NotCovered {
                self.covered.push(j.verdict);
            }
            if let Some(r) = &j.resolution {
                *self.out.by_format.entry(r.format).or_default() += 1;
                if let (Some(exp), Some(k)) = (r.expires, &j.key)
                    && r.format != SignatureFormat::NotaryV1
                {
                    let kind = if r.expires_role.as_deref() == Some("signature") { "signature" } else { "certificate" };
                    let slot = self.out.signature_expiry.entry((k.trust_root.clone(), kind.into())).or_insert(exp);
                    *slot = (*slot).min(exp);
                }
            }
            if let Some(m) = j.migration {
                *self.out.migration.entry(m).or_default() += 1;
                match m {
                    MigrationState::NotaryV1Only => {
                        s.notary_v1_only += 1;
                        let dct =
                            j.answers.iter().find(|(_, a)| a.format == SignatureFormat::NotaryV1).map(|(n, _)| *n);
                        if let Some(root) = dct.or(j.key.map(|k| k.trust_root.as_str())) {
                            match self.out.notary_only_by_root.get_mut(root) {
                                Some(n) => *n += 1,
                                None => {
                                    self.out.notary_only_by_root.insert(root.to_string(), 1);
                                }
                            }
                        }
                    }
                    MigrationState::SuccessorVerified => s.successor_verified += 1,
                    MigrationState::SuccessorFailing => s.successor_failing += 1,
                }
            }
            if j.verdict.is_trusted() {
                s.verified += 1;
                report.1.verified += 1;
            }
            if j.verdict == Verdict::ExpiringSoon {
                s.expiring_soon += 1;
                report.1.expiring_soon += 1;
            }
            let failing = is_failing(spec, j.verdict);
            let key = (pod.namespace.clone(), pod.name.clone(), c.name.clone());
            let prev = input.previous.get(&key).copied();
            self.out.verdicts.insert(key, j.verdict);
            // What the stored reports remember of this entry: needed only when it fails
            // (since when) or is not trusted (when it last was).
            let history =
                if failing || !j.verdict.is_trusted() { input.history.get(&EntryKey::running(pod, c)) } else { None };
            let since = failing.then(|| history.and_then(|h| h.failing_since).unwrap_or(input.now));
            // A trusted entry's lastTrusted is this scan; a report is not rewritten for that
            // alone (report_needs_write), so the stored one may be older: an entry trusted at
            // the previous scan of this process was last trusted then.
            let last_trusted = if j.verdict.is_trusted() {
                Some(input.now)
            } else {
                let at_previous_scan = input.previous_scan.filter(|_| prev.is_some_and(|p| p.is_trusted()));
                at_previous_scan.max(history.and_then(|h| h.last_trusted))
            };
            if let Some(since) = since {
                s.failing += 1;
                report.1.failing += 1;
                let new = prev.is_none_or(|p| !is_failing(spec, p));
                if failure.as_ref().is_none_or(|f| j.verdict.severity() > f.verdict.severity()) {
                    failure = Some(PodFailure {
                        verdict: j.verdict,
                        message: format!("{} ({}): {}", c.name, c.image, j.message),
                        since: failure.as_ref().map_or(since, |f| f.since.min(since)),
                        new: new || failure.as_ref().is_some_and(|f| f.new),
                    });
                } else if let Some(f) = &mut failure {
                    f.since = f.since.min(since);
                    f.new |= new;
                }
            }
            if let Some(ev) = transition_event(pod, c, prev, j, failing, spec) {
                self.pod_events.push(ev);
            }
            self.out.next_change = next_change(self.out.next_change, j, input);
            // Pods that run the same container, image and digest with the same answer share
            // one entry: most pods only add to an entry, which is then all there is to do.
            if add_to_existing_entry(&mut report.0, pod, c, j.verdict, &j.reason) {
                continue;
            }
            let r = j.resolution.as_deref();
            add_to_entries(
                &mut report.0,
                pod,
                ContainerVerification {
                    container: c.name.clone(),
                    image: c.image.clone(),
                    running_digest: c.running_digest().map(str::to_string),
                    pods: 0,
                    sample_pods: vec![],
                    signed_digest: r.and_then(|r| r.digest.clone()),
                    verdict: j.verdict,
                    reason: j.reason.to_string(),
                    message: bounded_message(&j.message),
                    signers: r.map(|r| r.signers.iter().take(16).cloned().collect()).unwrap_or_default(),
                    trust_root: j.key.map(|k| k.trust_root.clone()),
                    format: r.map(|r| r.format),
                    trust_roots: j
                        .answers
                        .iter()
                        .map(|(name, a)| TrustRootResult {
                            name: name.to_string(),
                            format: a.format,
                            verdict: a.verdict,
                            reason: a.reason.clone(),
                        })
                        .collect(),
                    migration: j.migration,
                    certificate: r.and_then(|r| r.certificate.clone()),
                    signing_time: r.and_then(|r| r.signing_time).map(api_time),
                    timestamped: r.and_then(|r| r.timestamped),
                    tag_digest: r.and_then(|r| r.tag_digest.clone()),
                    gun: r.map(|r| r.gun.clone()),
                    expires: r.and_then(|r| r.expires).map(api_time),
                    expires_what: r.and_then(|r| r.expires_role.clone()),
                    failing_since: since.map(api_time),
                    last_trusted: last_trusted.map(api_time),
                    last_verified: Some(api_time(input.now)),
                },
            );
        }
        failure
    }

    /// Quarantine decisions for one pod within the guardrails; returns whether the pod stays
    /// (or becomes) quarantined after this scan.
    fn quarantine_pod(
        &mut self,
        pod: &'a PodView,
        judged: &[(usize, Judged<'_>)],
        failure: Option<PodFailure>,
    ) -> bool {
        let input = self.input;
        let spec = input.spec;
        let name = || (pod.namespace.clone(), pod.name.clone());
        let ours = pod.quarantine_reason.as_deref().is_none_or(|r| r.starts_with(&format!("{}: ", input.policy)));
        debug_assert!(self.reports[self.current].0 == (pod.namespace.as_str(), &pod.workload), "judged first");
        let report = &mut self.reports[self.current].1.2;
        let Some(f) = failure.filter(|_| spec.action == PolicyAction::Quarantine) else {
            // Not failing (or an audit policy): release what we quarantined.
            if pod.is_quarantined() && ours && !judged.is_empty() {
                self.out
                    .quarantine
                    .push(QuarantineChange::Remove { namespace: pod.namespace.clone(), pod: pod.name.clone() });
                self.pod_events.push(EventSpec {
                    target: pod_target(pod),
                    type_: EventType::Normal,
                    reason: "Released",
                    message: format!("released by policy {}: every image is trusted again", input.policy),
                });
                return false;
            }
            return pod.is_quarantined();
        };
        if spec.dry_run {
            self.out.would_quarantine.push(name());
            self.out.summary.would_quarantine += 1;
            report.would_quarantine += 1;
            if f.new {
                self.pod_events.push(EventSpec {
                    target: pod_target(pod),
                    type_: EventType::Warning,
                    reason: "WouldQuarantine",
                    message: format!(
                        "policy {} (dry run) would quarantine this pod: {} ({})",
                        input.policy, f.verdict, f.message
                    ),
                });
            }
            if pod.is_quarantined() && ours {
                // A dry run labels nothing: release what an earlier enforcing run labelled.
                self.out
                    .quarantine
                    .push(QuarantineChange::Remove { namespace: pod.namespace.clone(), pod: pod.name.clone() });
                return false;
            }
            return pod.is_quarantined();
        }
        if pod.is_quarantined() {
            if ours {
                self.out.summary.quarantined += 1;
                report.quarantined += 1;
                self.note_gaps(pod, false);
            }
            return true;
        }
        if is_protected_namespace(&pod.namespace, input.operator_namespace) {
            self.out.protected.push(name());
            return false;
        }
        let grace = SignedDuration::try_from(spec.quarantine_grace()).unwrap_or(SignedDuration::ZERO);
        let due = f.since.checked_add(grace).unwrap_or(Timestamp::MAX);
        if due > input.now {
            self.out.pending.push(name());
            self.out.summary.pending_quarantine += 1;
            report.pending += 1;
            self.out.next_change = min_time(self.out.next_change, due);
            return false;
        }
        if self.newly_quarantined >= spec.quarantine_limit.max(0) as u32 {
            self.out.limited.push(name());
            return false;
        }
        if input.cluster_quarantined + self.newly_quarantined >= input.max_quarantined {
            self.out.limited.push(name());
            self.out.cluster_limited = true;
            return false;
        }
        self.newly_quarantined += 1;
        self.out.summary.quarantined += 1;
        report.quarantined += 1;
        self.pod_events.push(EventSpec {
            target: pod_target(pod),
            type_: EventType::Warning,
            reason: "Quarantined",
            message: format!("quarantined by policy {}: {} ({})", input.policy, f.verdict, f.message),
        });
        self.out.quarantine.push(QuarantineChange::Add {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            reason: format!("{}: {}: {}", input.policy, f.verdict, f.message),
        });
        self.note_gaps(pod, true);
        true
    }

    /// Records why a quarantined pod is not isolated (and an event when it is new).
    fn note_gaps(&mut self, pod: &'a PodView, newly: bool) {
        let gaps = isolation_gaps(pod, self.input.network_policies);
        debug_assert!(self.reports[self.current].0 == (pod.namespace.as_str(), &pod.workload), "judged first");
        let report = &mut self.reports[self.current].1.2;
        for gap in gaps {
            let text = gap.describe(&pod.name);
            if report.ineffective.len() < 8 {
                report.ineffective.push(text.clone());
            }
            if newly {
                self.pod_events.push(EventSpec {
                    target: pod_target(pod),
                    type_: EventType::Warning,
                    reason: "QuarantineIneffective",
                    message: text,
                });
            }
            self.out.ineffective.push((pod.namespace.clone(), pod.name.clone(), gap));
        }
    }

    fn finish(self, quarantined_after: BTreeMap<String, u64>) -> ScanOutcome {
        let Scan { input, mut reports, mut out, covered, mut pod_events, .. } = self;
        reports.sort_by(|a, b| a.0.cmp(&b.0));
        out.reports = reports
            .into_iter()
            .map(|((namespace, workload), (mut containers, summary, quarantine))| {
                let (namespace, workload) = (namespace.to_string(), workload.clone());
                let verdict = Verdict::worst(containers.iter().map(|c| c.verdict));
                let states: Vec<MigrationState> = containers.iter().filter_map(|c| c.migration).collect();
                let migration = [MigrationState::NotaryV1Only, MigrationState::SuccessorFailing]
                    .into_iter()
                    .find(|m| states.contains(m))
                    .or_else(|| states.first().copied());
                let omitted = bound_entries(&mut containers);
                let quarantine = (input.spec.action == PolicyAction::Quarantine).then_some(quarantine);
                ReportPlan {
                    name: report_name(&workload, input.policy),
                    namespace,
                    status: ImageTrustReportStatus {
                        workload: Some(workload.as_ref()),
                        policy: Some(input.policy.to_string()),
                        verdict,
                        summary: Some(summary),
                        last_verified: Some(api_time(input.now)),
                        containers,
                        migration,
                        omitted,
                        quarantine,
                    },
                    workload,
                }
            })
            .collect();
        out.worst = Verdict::worst(covered);
        out.dropped_events = pod_events.len().saturating_sub(MAX_POD_EVENTS);
        pod_events.truncate(MAX_POD_EVENTS);
        out.events = pod_events;
        out.network_policies = quarantined_after.iter().map(|(ns, n)| (ns.clone(), *n > 0)).collect();
        out.quarantined_by_namespace = quarantined_after.into_iter().filter(|(_, n)| *n > 0).collect();
        out
    }
}

/// The earliest time this container's verdict changes by itself: its expiry, or the start of
/// its trust root's warning window.
fn next_change(cur: Option<Timestamp>, j: &Judged, input: &DecideInput<'_>) -> Option<Timestamp> {
    let Some(exp) = j.resolution.as_ref().and_then(|r| r.expires).filter(|e| *e > input.now) else { return cur };
    let mut next = min_time(cur, exp);
    let warn = j.key.as_ref().and_then(|k| input.warnings.get(&k.trust_root)).copied();
    if let Some(start) = warn.and_then(|w| exp.checked_sub(w).ok()).filter(|s| *s > input.now) {
        next = min_time(next, start);
    }
    next
}

/// The event for a container whose verdict changed since the last scan. A container seen for
/// the first time only raises an event when it fails.
fn transition_event(
    pod: &PodView,
    c: &ContainerView,
    prev: Option<Verdict>,
    j: &Judged,
    failing: bool,
    spec: &ImageTrustPolicySpec,
) -> Option<EventSpec> {
    let was_failing = prev.map(|p| is_failing(spec, p));
    if prev == Some(j.verdict) {
        return None;
    }
    let target = pod_target(pod);
    if failing && was_failing != Some(true) {
        return Some(EventSpec {
            target,
            type_: EventType::Warning,
            reason: "VerificationFailed",
            message: format!("container {} ({}): {}: {}", c.name, c.image, j.verdict, j.message),
        });
    }
    if j.verdict == Verdict::ExpiringSoon {
        return Some(EventSpec {
            target,
            type_: EventType::Warning,
            reason: "TrustDataExpiring",
            message: format!("container {} ({}): {}", c.name, c.image, j.message),
        });
    }
    if j.verdict == Verdict::Verified && was_failing == Some(true) {
        return Some(EventSpec {
            target,
            type_: EventType::Normal,
            reason: "Verified",
            message: format!("container {} ({}): {}", c.name, c.image, j.message),
        });
    }
    None
}
