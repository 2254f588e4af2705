//! The scanner: turns the pods a policy selects into verdicts, reports, quarantine actions
//! and events. Gather -> [`plan`] -> verify (I/O, elsewhere) -> [`decide`]: both steps here
//! are pure functions of their inputs and `now`.

pub mod pods;

use crate::crd::{ContainerVerification, ImageTrustReportStatus, ReportSummary};
use crate::crd::{ImageTrustPolicySpec, PolicyAction, PolicySummary, UnavailablePolicy, UnmatchedPolicy};
use crate::engine::{Resolution, normalize_signer};
use crate::image::ImageRef;
use crate::verdict::Verdict;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pods::{PodView, Workload};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What must be verified for one container: a trust root, an image reference (the spec's tag
/// with the running digest, so drift shows) and the required signers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VerifyKey {
    pub trust_root: String,
    pub image: String,
    pub signers: Vec<String>,
}

/// How one container will be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerPlan {
    Verify(VerifyKey),
    /// No policy entry matches the image.
    NotCovered {
        gun: Option<String>,
    },
    /// The pod spec's image cannot be parsed.
    Invalid {
        message: String,
    },
}

/// The plan of a scan: one entry per (pod index, container index).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub containers: Vec<((usize, usize), ContainerPlan)>,
}

impl Plan {
    /// The distinct verifications to run.
    pub fn keys(&self) -> BTreeSet<VerifyKey> {
        self.containers
            .iter()
            .filter_map(|(_, p)| match p {
                ContainerPlan::Verify(k) => Some(k.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Chooses, for each container, the policy entry and the image reference to verify.
pub fn plan(spec: &ImageTrustPolicySpec, pods: &[PodView]) -> Plan {
    let mut out = Plan::default();
    for (pi, pod) in pods.iter().enumerate() {
        for (ci, c) in pod.containers.iter().enumerate() {
            let p = match ImageRef::parse(&c.image) {
                Err(e) => ContainerPlan::Invalid { message: e },
                Ok(mut image) => {
                    let gun = image.gun();
                    match spec.rule_for(&gun) {
                        None => ContainerPlan::NotCovered { gun: Some(gun) },
                        Some(rule) => {
                            // Drift: the running digest is compared with the digest signed for
                            // the spec's tag. A digest-pinned spec is checked as written and
                            // compared with the running digest in `decide`.
                            if image.digest.is_none() {
                                image.digest = c.running_digest.clone();
                            }
                            let mut signers: Vec<String> = rule.signers.iter().map(|s| normalize_signer(s)).collect();
                            signers.sort();
                            signers.dedup();
                            ContainerPlan::Verify(VerifyKey {
                                trust_root: rule.trust_root.clone(),
                                image: image.to_string(),
                                signers,
                            })
                        }
                    }
                }
            };
            out.containers.push(((pi, ci), p));
        }
    }
    out
}

/// Whether a verdict counts as failing under the policy.
pub fn is_failing(spec: &ImageTrustPolicySpec, v: Verdict) -> bool {
    match v {
        Verdict::Verified | Verdict::ExpiringSoon => false,
        Verdict::NotCovered => spec.unmatched_images == UnmatchedPolicy::Fail,
        Verdict::TrustDataUnavailable => spec.on_unavailable == UnavailablePolicy::Fail,
        _ => true,
    }
}

/// Namespaces where trustwatch never quarantines.
pub fn is_protected_namespace(ns: &str, operator_namespace: &str) -> bool {
    ns == "kube-system" || ns == operator_namespace
}

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
    /// `VerificationFailed`, `Verified`, `Quarantined`, `Released`, `TrustDataExpiring`.
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineChange {
    Add { namespace: String, pod: String, reason: String },
    Remove { namespace: String, pod: String },
}

/// One report to write: the workload, its namespace and the computed status.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPlan {
    pub namespace: String,
    pub name: String,
    pub workload: Workload,
    pub status: ImageTrustReportStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScanOutcome {
    pub reports: Vec<ReportPlan>,
    pub summary: PolicySummary,
    /// The worst verdict of covered containers (`None` when nothing is covered).
    pub worst: Option<Verdict>,
    pub counts: BTreeMap<Verdict, u64>,
    pub quarantine: Vec<QuarantineChange>,
    /// Pods that should be quarantined but were not: the per-scan cap was reached.
    pub limited: Vec<(String, String)>,
    /// Pods in protected namespaces that would have been quarantined.
    pub protected: Vec<(String, String)>,
    /// Namespace -> whether the deny-all NetworkPolicy must exist.
    pub network_policies: BTreeMap<String, bool>,
    pub quarantined_by_namespace: BTreeMap<String, u64>,
    pub events: Vec<EventSpec>,
    /// When a verdict will change by itself (an expiry or the start of a warning window).
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
    /// Previous verdict per (namespace, pod, container), from the existing reports.
    pub previous: &'a HashMap<(String, String, String), Verdict>,
    pub operator_namespace: &'a str,
    pub now: Timestamp,
}

/// A report's name: `<kind>-<workload>-<policy>`, lowercase, within the 253-character limit.
pub fn report_name(workload: &Workload, policy: &str) -> String {
    let name = format!("{}-{}-{}", workload.kind.to_lowercase(), workload.name, policy);
    if name.len() <= 253 {
        return name;
    }
    let hash = crate::tuf::keys::sha256_hex(name.as_bytes());
    format!("{}-{}", &name[..240], &hash[..12])
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn judge(c: &pods::ContainerView, plan: &ContainerPlan, results: &HashMap<VerifyKey, Resolution>) -> Judged {
    match plan {
        ContainerPlan::Invalid { message } => Judged {
            verdict: Verdict::Unsigned,
            reason: "InvalidImageReference".into(),
            message: message.clone(),
            resolution: None,
            key: None,
        },
        ContainerPlan::NotCovered { gun } => Judged {
            verdict: Verdict::NotCovered,
            reason: "NoMatchingPattern".into(),
            message: format!("no spec.images pattern matches {}", gun.as_deref().unwrap_or(&c.image)),
            resolution: None,
            key: None,
        },
        ContainerPlan::Verify(key) => match results.get(key) {
            None => Judged {
                verdict: Verdict::TrustDataUnavailable,
                reason: "NotVerified".into(),
                message: format!("trust root {} has not verified this image yet", key.trust_root),
                resolution: None,
                key: Some(key.clone()),
            },
            Some(r) => {
                let mut j = Judged {
                    verdict: r.verdict,
                    reason: r.reason.clone(),
                    message: r.message.clone(),
                    resolution: Some(r.clone()),
                    key: Some(key.clone()),
                };
                // A digest-pinned spec must also be what runs.
                if let (Some(running), Ok(spec)) = (&c.running_digest, ImageRef::parse(&c.image)) {
                    if let Some(pinned) = spec.digest.filter(|d| d != running) {
                        if r.verdict.is_trusted() {
                            j.verdict = Verdict::DigestDrift;
                            j.reason = "RunningDigestMismatch".into();
                            j.message = format!("the pod spec pins {pinned}, but the container runs {running}");
                        }
                    }
                }
                j
            }
        },
    }
}

struct Judged {
    verdict: Verdict,
    reason: String,
    message: String,
    resolution: Option<Resolution>,
    key: Option<VerifyKey>,
}

/// Decides reports, summary, quarantine changes and events for one scan of one policy.
pub fn decide(input: &DecideInput<'_>) -> ScanOutcome {
    let spec = input.spec;
    let mut by_pod: BTreeMap<usize, Vec<(usize, Judged)>> = BTreeMap::new();
    for ((pi, ci), p) in &input.plan.containers {
        let c = &input.pods[*pi].containers[*ci];
        by_pod.entry(*pi).or_default().push((*ci, judge(c, p, input.results)));
    }

    let mut reports: BTreeMap<(String, Workload), Vec<ContainerVerification>> = BTreeMap::new();
    let mut counts: BTreeMap<Verdict, u64> = BTreeMap::new();
    let mut summary = PolicySummary { pods: input.pods.len() as i32, ..Default::default() };
    let mut events = vec![];
    let mut quarantine = vec![];
    let mut limited = vec![];
    let mut protected = vec![];
    let mut newly_quarantined = 0i32;
    let mut quarantined_after: BTreeMap<String, u64> = BTreeMap::new();
    let mut next_change: Option<Timestamp> = None;
    let mut covered = vec![];

    for (pi, pod) in input.pods.iter().enumerate() {
        let judged = by_pod.remove(&pi).unwrap_or_default();
        let mut pod_worst: Option<(Verdict, String)> = None;
        for (ci, j) in &judged {
            let c = &pod.containers[*ci];
            summary.containers += 1;
            *counts.entry(j.verdict).or_default() += 1;
            if j.verdict != Verdict::NotCovered {
                covered.push(j.verdict);
            }
            if j.verdict.is_trusted() {
                summary.verified += 1;
            }
            if j.verdict == Verdict::ExpiringSoon {
                summary.expiring_soon += 1;
            }
            let failing = is_failing(spec, j.verdict);
            if failing {
                summary.failing += 1;
                if pod_worst.as_ref().is_none_or(|(w, _)| j.verdict.severity() > w.severity()) {
                    pod_worst = Some((j.verdict, format!("{}: {}", c.name, j.message)));
                }
            }
            // Events on transitions of this container's verdict.
            let prev = input.previous.get(&(pod.namespace.clone(), pod.name.clone(), c.name.clone())).copied();
            if let Some(ev) = transition_event(pod, &c.name, prev, j, failing, spec) {
                events.push(ev);
            }
            if let Some(r) = &j.resolution {
                if let Some(exp) = r.expires.filter(|e| *e > input.now) {
                    next_change = min_time(next_change, exp);
                    let warn = j.key.as_ref().and_then(|k| input.warnings.get(&k.trust_root)).copied();
                    if let Some(start) = warn.and_then(|w| exp.checked_sub(w).ok()).filter(|s| *s > input.now) {
                        next_change = min_time(next_change, start);
                    }
                }
            }
            let resolution = j.resolution.as_ref();
            reports.entry((pod.namespace.clone(), pod.workload.clone())).or_default().push(ContainerVerification {
                pod: pod.name.clone(),
                container: c.name.clone(),
                image: c.image.clone(),
                running_digest: c.running_digest.clone(),
                signed_digest: resolution.and_then(|r| r.digest.clone()),
                verdict: j.verdict,
                reason: j.reason.clone(),
                message: j.message.clone(),
                signers: resolution.map(|r| r.signers.clone()).unwrap_or_default(),
                trust_root: j.key.as_ref().map(|k| k.trust_root.clone()),
                gun: resolution.map(|r| r.gun.clone()),
                expires: resolution.and_then(|r| r.expires).map(time),
                last_verified: Some(time(input.now)),
            });
        }

        // Quarantine: label failing pods, release recovered ones, within the guardrails.
        let should = spec.action == PolicyAction::Quarantine && pod_worst.is_some();
        let ours = pod.quarantine_reason.as_deref().is_none_or(|r| r.starts_with(&format!("{}: ", input.policy)));
        let mut stays_quarantined = pod.is_quarantined();
        if should && !pod.is_quarantined() {
            let (verdict, msg) = pod_worst.clone().expect("should implies a failing verdict");
            if is_protected_namespace(&pod.namespace, input.operator_namespace) {
                protected.push((pod.namespace.clone(), pod.name.clone()));
            } else if newly_quarantined >= spec.quarantine_limit {
                limited.push((pod.namespace.clone(), pod.name.clone()));
            } else {
                newly_quarantined += 1;
                stays_quarantined = true;
                let reason = format!("{}: {verdict}: {msg}", input.policy);
                events.push(EventSpec {
                    target: pod_target(pod),
                    type_: EventType::Warning,
                    reason: "Quarantined",
                    message: format!("quarantined by policy {}: {verdict} ({msg})", input.policy),
                });
                quarantine.push(QuarantineChange::Add {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    reason,
                });
            }
        } else if !should && pod.is_quarantined() && ours && !judged.is_empty() {
            stays_quarantined = false;
            events.push(EventSpec {
                target: pod_target(pod),
                type_: EventType::Normal,
                reason: "Released",
                message: format!("released by policy {}: every image is trusted again", input.policy),
            });
            quarantine.push(QuarantineChange::Remove { namespace: pod.namespace.clone(), pod: pod.name.clone() });
        }
        // Namespaces matter for the NetworkPolicy only under a quarantine policy or where a
        // pod was quarantined before this scan (an audit policy never lists NetworkPolicies).
        if spec.action != PolicyAction::Quarantine && !pod.is_quarantined() {
            continue;
        }
        let entry = quarantined_after.entry(pod.namespace.clone()).or_default();
        if stays_quarantined {
            *entry += 1;
            if ours {
                summary.quarantined += 1;
            }
        }
    }

    let reports = reports
        .into_iter()
        .map(|((namespace, workload), containers)| {
            let mut s = ReportSummary { containers: containers.len() as i32, ..Default::default() };
            for c in &containers {
                if c.verdict.is_trusted() {
                    s.verified += 1;
                }
                if c.verdict == Verdict::ExpiringSoon {
                    s.expiring_soon += 1;
                }
                if is_failing(spec, c.verdict) {
                    s.failing += 1;
                }
            }
            let verdict = Verdict::worst(containers.iter().map(|c| c.verdict));
            ReportPlan {
                name: report_name(&workload, input.policy),
                namespace,
                status: ImageTrustReportStatus {
                    workload: Some(workload.as_ref()),
                    policy: Some(input.policy.to_string()),
                    verdict,
                    summary: Some(s),
                    last_verified: Some(time(input.now)),
                    containers,
                },
                workload,
            }
        })
        .collect();

    let network_policies = quarantined_after.iter().map(|(ns, n)| (ns.clone(), *n > 0)).collect();
    ScanOutcome {
        reports,
        summary,
        worst: Verdict::worst(covered),
        counts,
        quarantine,
        limited,
        protected,
        network_policies,
        quarantined_by_namespace: quarantined_after.into_iter().filter(|(_, n)| *n > 0).collect(),
        events,
        next_change,
    }
}

fn min_time(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn pod_target(pod: &PodView) -> EventTarget {
    EventTarget::Pod { namespace: pod.namespace.clone(), name: pod.name.clone(), uid: pod.uid.clone() }
}

/// The event for a container whose verdict changed since the last scan. A container seen for
/// the first time only raises an event when it fails.
fn transition_event(
    pod: &PodView,
    container: &str,
    prev: Option<Verdict>,
    j: &Judged,
    failing: bool,
    spec: &ImageTrustPolicySpec,
) -> Option<EventSpec> {
    let target = pod_target(pod);
    let was_failing = prev.map(|p| is_failing(spec, p));
    if prev == Some(j.verdict) {
        return None;
    }
    if failing && was_failing != Some(true) {
        return Some(EventSpec {
            target,
            type_: EventType::Warning,
            reason: "VerificationFailed",
            message: format!("container {container}: {}: {}", j.verdict, j.message),
        });
    }
    if j.verdict == Verdict::ExpiringSoon {
        return Some(EventSpec {
            target,
            type_: EventType::Warning,
            reason: "TrustDataExpiring",
            message: format!("container {container}: {}", j.message),
        });
    }
    if j.verdict == Verdict::Verified && was_failing == Some(true) {
        return Some(EventSpec {
            target,
            type_: EventType::Normal,
            reason: "Verified",
            message: format!("container {container}: {}", j.message),
        });
    }
    None
}

/// The previous verdicts recorded in existing reports, keyed by (namespace, pod, container).
pub fn previous_verdicts<'a>(
    reports: impl IntoIterator<Item = (&'a str, &'a ImageTrustReportStatus)>,
) -> HashMap<(String, String, String), Verdict> {
    let mut out = HashMap::new();
    for (ns, status) in reports {
        for c in &status.containers {
            out.insert((ns.to_string(), c.pod.clone(), c.container.clone()), c.verdict);
        }
    }
    out
}

/// Whether a report must be written: its content differs from what is stored, ignoring the
/// verification timestamps (no etcd churn from unchanged re-verification), or the stored
/// `lastVerified` is older than `max_age` (so it never goes stale for long).
pub fn report_needs_write(
    stored: Option<&ImageTrustReportStatus>,
    new: &ImageTrustReportStatus,
    now: Timestamp,
    max_age: SignedDuration,
) -> bool {
    let Some(stored) = stored else { return true };
    let strip = |s: &ImageTrustReportStatus| {
        let mut s = s.clone();
        s.last_verified = None;
        for c in &mut s.containers {
            c.last_verified = None;
        }
        s
    };
    if strip(stored) != strip(new) {
        return true;
    }
    match &stored.last_verified {
        Some(Time(t)) => now.duration_since(*t) >= max_age,
        None => true,
    }
}

#[cfg(test)]
mod tests;
