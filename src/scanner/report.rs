//! Reports: one per workload and policy, one entry per container name, image and running
//! digest (however many pods run it), bounded so that no workload outgrows an object.

use super::pods::{ContainerView, PodView, Workload};
use crate::crd::{ContainerVerification, ImageTrustReportStatus, MAX_MESSAGE_LEN, MAX_REPORT_ENTRIES, MAX_SAMPLE_PODS};
use crate::verdict::Verdict;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;

/// One report to write: the workload, its namespace and the computed status.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPlan {
    pub namespace: String,
    pub name: String,
    pub workload: Workload,
    pub status: ImageTrustReportStatus,
}

/// What identifies a report entry across scans: namespace, workload, container, image and
/// running digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    pub namespace: String,
    pub workload_kind: String,
    pub workload: String,
    pub container: String,
    pub image: String,
    pub running_digest: Option<String>,
}

impl EntryKey {
    pub fn of(namespace: &str, workload_kind: &str, workload: &str, c: &ContainerVerification) -> EntryKey {
        EntryKey {
            namespace: namespace.into(),
            workload_kind: workload_kind.into(),
            workload: workload.into(),
            container: c.container.clone(),
            image: c.image.clone(),
            running_digest: c.running_digest.clone(),
        }
    }

    /// The key of a running container's entry, as a scan sees the pod.
    pub fn running(pod: &PodView, c: &ContainerView) -> EntryKey {
        EntryKey {
            namespace: pod.namespace.clone(),
            workload_kind: pod.workload.kind.clone(),
            workload: pod.workload.name.clone(),
            container: c.name.clone(),
            image: c.image.clone(),
            running_digest: c.running_digest().map(str::to_string),
        }
    }
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

/// Cuts a message to [`MAX_MESSAGE_LEN`] characters, with an ellipsis.
pub fn bounded_message(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE_LEN {
        return message.to_string();
    }
    let cut: String = message.chars().take(MAX_MESSAGE_LEN - 1).collect();
    format!("{cut}…")
}

/// Adds one pod's container to its workload's entries (merging pods that run the same
/// container, image and digest with the same verdict).
pub(super) fn add_to_entries(entries: &mut Vec<ContainerVerification>, pod: &PodView, entry: ContainerVerification) {
    let same = |e: &ContainerVerification| {
        e.container == entry.container
            && e.image == entry.image
            && e.running_digest == entry.running_digest
            && e.verdict == entry.verdict
            && e.reason == entry.reason
    };
    match entries.iter_mut().find(|e| same(e)) {
        Some(e) => {
            e.pods += 1;
            if e.sample_pods.len() < MAX_SAMPLE_PODS {
                e.sample_pods.push(pod.name.clone());
            }
        }
        None => entries.push(ContainerVerification { pods: 1, sample_pods: vec![pod.name.clone()], ..entry }),
    }
}

/// Counts one more pod in the entry for this container, image, running digest and answer,
/// when there is one already; false when there is none (the caller adds it).
pub(super) fn add_to_existing_entry(
    entries: &mut [ContainerVerification],
    pod: &PodView,
    c: &super::pods::ContainerView,
    verdict: Verdict,
    reason: &str,
) -> bool {
    let running = c.running_digest();
    let same = |e: &&mut ContainerVerification| {
        e.container == c.name
            && e.image == c.image
            && e.running_digest.as_deref() == running
            && e.verdict == verdict
            && e.reason == reason
    };
    match entries.iter_mut().find(same) {
        Some(e) => {
            e.pods += 1;
            if e.sample_pods.len() < MAX_SAMPLE_PODS {
                e.sample_pods.push(pod.name.clone());
            }
            true
        }
        None => false,
    }
}

/// Orders entries worst first and keeps at most [`MAX_REPORT_ENTRIES`]; returns how many
/// were left out.
pub(super) fn bound_entries(entries: &mut Vec<ContainerVerification>) -> Option<i32> {
    entries.sort_by(|a, b| {
        b.verdict
            .severity()
            .cmp(&a.verdict.severity())
            .then_with(|| a.container.cmp(&b.container))
            .then_with(|| a.image.cmp(&b.image))
            .then_with(|| a.running_digest.cmp(&b.running_digest))
    });
    let omitted = entries.len().saturating_sub(MAX_REPORT_ENTRIES);
    entries.truncate(MAX_REPORT_ENTRIES);
    (omitted > 0).then_some(omitted as i32)
}

/// What the stored reports remember of each entry across scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryHistory {
    /// Since when it has been failing.
    pub failing_since: Option<Timestamp>,
    /// When it last verified as trusted.
    pub last_trusted: Option<Timestamp>,
}

/// The history of each stored entry, from the stored reports.
pub fn entry_history<'a>(
    reports: impl IntoIterator<Item = (&'a str, &'a ImageTrustReportStatus)>,
) -> HashMap<EntryKey, EntryHistory> {
    let mut out = HashMap::new();
    for (ns, status) in reports {
        let Some(w) = &status.workload else { continue };
        for c in &status.containers {
            let h = EntryHistory {
                failing_since: c.failing_since.as_ref().map(|t| t.0),
                last_trusted: c.last_trusted.as_ref().map(|t| t.0),
            };
            if h != EntryHistory::default() {
                out.insert(EntryKey::of(ns, &w.kind, &w.name, c), h);
            }
        }
    }
    out
}

/// The verdict each pod's container had, as far as the stored reports tell: every pod whose
/// container, image and digest match an entry of its workload's report had that entry's
/// verdict. Used when the process has no memory of its own (after a restart), so that a
/// restart raises no events for transitions that happened before it.
pub fn previous_verdicts<'a>(
    reports: impl IntoIterator<Item = (&'a str, &'a ImageTrustReportStatus)>,
    pods: &[PodView],
) -> HashMap<(String, String, String), Verdict> {
    let mut by_entry: HashMap<EntryKey, Verdict> = HashMap::new();
    for (ns, status) in reports {
        let Some(w) = &status.workload else { continue };
        for c in &status.containers {
            by_entry.insert(EntryKey::of(ns, &w.kind, &w.name, c), c.verdict);
        }
    }
    let mut out = HashMap::new();
    for pod in pods {
        for c in &pod.containers {
            if let Some(v) = by_entry.get(&EntryKey::running(pod, c)) {
                out.insert((pod.namespace.clone(), pod.name.clone(), c.name.clone()), *v);
            }
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
    // The instants a scan stamps on what it verified: lastVerified, and lastTrusted of a
    // trusted entry (the same instant). Written with other changes, or at `max_age`.
    let strip = |s: &ImageTrustReportStatus| {
        let mut s = s.clone();
        s.last_verified = None;
        for c in &mut s.containers {
            c.last_verified = None;
            if c.verdict.is_trusted() {
                c.last_trusted = None;
            }
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
