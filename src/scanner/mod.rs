//! The scanner: turns the pods a policy selects into verdicts, reports, quarantine actions
//! and events. Gather -> [`plan`] -> verify (I/O, elsewhere) -> [`decide`]: both steps here
//! are pure functions of their inputs and `now`.

mod combine;
mod decide;
pub mod isolation;
pub mod pods;
pub mod policy_report;
mod report;

use crate::crd::{ImageTrustPolicySpec, Require, UnavailablePolicy, UnmatchedPolicy};
use crate::engine::normalize_signer;
use crate::image::ImageRef;
use crate::verdict::Verdict;
use pods::{PodView, PullRef, RunningImage};
use std::collections::BTreeSet;

pub use combine::{combine, migration_state};
pub use decide::{
    DecideInput, EventSpec, EventTarget, EventType, MAX_POD_EVENTS, QuarantineChange, ScanOutcome, decide,
};
pub use isolation::{IsolationGap, NetworkPolicyView, isolation_gaps};
pub use report::{
    EntryHistory, EntryKey, ReportPlan, entry_history, previous_verdicts, report_name, report_needs_write,
};

/// What must be verified for one container: a trust root, an image reference (the spec's tag
/// with the running digest, so drift shows) and the required signers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VerifyKey {
    pub trust_root: String,
    pub image: String,
    pub signers: Vec<String>,
    /// For trust roots that read registries with the pod's own credentials
    /// (`registry.usePodPullSecrets`): whose.
    pub pull: Option<PullRef>,
}

/// How one container will be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerPlan {
    /// One verification per trust root of the matching rule, combined by `require`.
    Verify { keys: Vec<VerifyKey>, require: Require },
    /// No policy entry matches the image.
    NotCovered { gun: Option<String> },
    /// The pod spec's image cannot be parsed.
    Invalid { message: String },
    /// What the container runs cannot be known (yet): it has no repository digest in its
    /// status and the spec pins none. A tag alone is never verified.
    Undetermined { reason: &'static str, message: String },
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
            .flat_map(|(_, p)| match p {
                ContainerPlan::Verify { keys, .. } => keys.clone(),
                _ => vec![],
            })
            .collect()
    }
}

/// Chooses, for each container, the policy entry and the image reference to verify.
/// `pull_roots` are the trust roots that read registries with each pod's own credentials.
pub fn plan(spec: &ImageTrustPolicySpec, pods: &[PodView], pull_roots: &BTreeSet<String>) -> Plan {
    let mut out = Plan::default();
    for (pi, pod) in pods.iter().enumerate() {
        for (ci, c) in pod.containers.iter().enumerate() {
            out.containers.push(((pi, ci), plan_container(spec, &c.image, &c.running, &pod.pull, pull_roots)));
        }
    }
    out
}

fn plan_container(
    spec: &ImageTrustPolicySpec,
    image: &str,
    running: &RunningImage,
    pull: &PullRef,
    pull_roots: &BTreeSet<String>,
) -> ContainerPlan {
    let (mut image, rule) = match matching_rule(spec, image) {
        Ok(m) => m,
        Err(plan) => return plan,
    };
    // Drift: the running digest is compared with the digest signed for the spec's tag. A
    // digest-pinned spec is checked as written (the runtime pulls exactly that digest) and
    // compared with the running digest in `decide`.
    if image.digest.is_none() {
        match running {
            RunningImage::Digest(d) => image.digest = Some(d.clone()),
            RunningImage::ConfigId(id) => {
                return ContainerPlan::Undetermined {
                    reason: "ImageIdNotADigest",
                    message: format!(
                        "the runtime reports image ID {id}, a local image configuration ID, not a repository digest: what runs cannot be compared with what is signed (pin the image by digest in the pod spec)"
                    ),
                };
            }
            RunningImage::Unknown => {
                return ContainerPlan::Undetermined {
                    reason: "RunningDigestUnknown",
                    message: "the container has not started: the digest it runs is not known yet, and a tag alone is never verified".into(),
                };
            }
        }
    }
    verify_plan(rule, &image, pull, pull_roots)
}

/// How one image of an object under admission will be judged: by the same entry of
/// spec.images a scan would pick. A digest is verified as written; an image named by a tag
/// alone is verified as the tag resolves now (each verifier resolves it: the registry for
/// Notation and cosign, the signed targets for Notary v1). Pod pull credentials are not
/// used at admission (the trust root's own are).
pub fn plan_admission(spec: &ImageTrustPolicySpec, image: &str) -> ContainerPlan {
    match matching_rule(spec, image) {
        Ok((image, rule)) => verify_plan(rule, &image, &PullRef::default(), &BTreeSet::new()),
        Err(plan) => plan,
    }
}

/// The image as parsed and the entry of spec.images that judges it, or the plan when there
/// is none to verify (a reference that does not parse, an image no entry matches): the one
/// matching step of scans and admission.
fn matching_rule<'a>(
    spec: &'a ImageTrustPolicySpec,
    image: &str,
) -> Result<(ImageRef, &'a crate::crd::ImageRule), ContainerPlan> {
    let image = ImageRef::parse(image).map_err(|e| ContainerPlan::Invalid { message: e })?;
    let gun = image.gun();
    match spec.rule_for(&gun) {
        Some(rule) => Ok((image, rule)),
        None => Err(ContainerPlan::NotCovered { gun: Some(gun) }),
    }
}

/// One verification per trust root of `rule`, combined by its `require`.
fn verify_plan(
    rule: &crate::crd::ImageRule,
    image: &ImageRef,
    pull: &PullRef,
    pull_roots: &BTreeSet<String>,
) -> ContainerPlan {
    let mut signers: Vec<String> = rule.signers.iter().map(|s| normalize_signer(s)).collect();
    signers.sort();
    signers.dedup();
    let image = image.to_string();
    let keys = rule
        .roots()
        .into_iter()
        .map(|r| VerifyKey {
            trust_root: r.to_string(),
            image: image.clone(),
            signers: signers.clone(),
            pull: pull_roots.contains(r).then(|| pull.clone()),
        })
        .collect();
    ContainerPlan::Verify { keys, require: rule.require.unwrap_or_default() }
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

#[cfg(test)]
mod tests;
