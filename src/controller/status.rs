//! Status of TrustRoots and ImageTrustPolicies, computed purely from what a reconcile
//! gathered and `now`.

use super::roots::TrustRootRuntime;
use crate::crd::condition::{reasons, types};
use crate::crd::{
    ImageTrustPolicy, ImageTrustPolicyStatus, NextExpiry, RepositoryTrust, SignerKeys, TrustRoot, TrustRootStatus,
    new_condition, set_condition,
};
use crate::engine::RepoView;
use crate::scanner::ScanOutcome;
use crate::tuf::TrustMemory;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, BTreeSet};

/// What a TrustRoot reconcile found.
pub enum RootState<'a> {
    /// The spec or its secret cannot be used: (reason, message).
    Invalid(&'a str, String),
    /// Notary v1: the repositories in use, refreshed.
    Ready { runtime: &'a TrustRootRuntime, views: &'a [(String, RepoView)] },
    /// Notation or cosign: the configuration is loaded; trust data is read per image.
    Registry { runtime: &'a TrustRootRuntime },
}

pub fn trust_root_status(tr: &TrustRoot, state: RootState<'_>, now: Timestamp) -> TrustRootStatus {
    let generation = tr.metadata.generation;
    let mut status = tr.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.kind = Some(tr.spec.kind());
    let (ok, reason, message) = match state {
        RootState::Invalid(reason, message) => (false, reason.to_string(), message),
        RootState::Registry { runtime } => {
            status.retirement = None;
            status.certificates = runtime.certificates.iter().map(|(c, _)| c.clone()).collect();
            let what = match &tr.spec.cosign {
                Some(c) => format!("{} cosign keys loaded; signatures are read from the registry", c.keys.len()),
                None => notation_summary(&runtime.certificates, now),
            };
            (true, reasons::READY.to_string(), what)
        }
        RootState::Ready { runtime, views } => {
            status.pinned_key_ids = runtime.pinned_key_ids.clone();
            status.retirement = runtime.retirement.clone();
            let old: BTreeMap<String, RepositoryTrust> =
                status.repositories.iter().map(|r| (r.gun.clone(), r.clone())).collect();
            status.repositories = views.iter().map(|(gun, v)| repository_trust(gun, v, old.get(gun))).collect();
            status.repository_count = Some(status.repositories.len() as i32);
            status.next_expiry = next_expiry(views);
            let failing: Vec<&str> =
                status.repositories.iter().filter(|r| r.last_error.is_some()).map(|r| r.gun.as_str()).collect();
            if !views.is_empty() && failing.len() == views.len() {
                (
                    false,
                    reasons::TRUST_DATA_UNAVAILABLE.to_string(),
                    format!("no repository could be verified: {failing:?}"),
                )
            } else if failing.is_empty() {
                (true, reasons::READY.to_string(), format!("{} repositories verified", views.len()))
            } else {
                (true, reasons::READY.to_string(), format!("{} repositories failing: {failing:?}", failing.len()))
            }
        }
    };
    set_condition(&mut status.conditions, new_condition(types::READY, ok, &reason, message, generation, Time(now)));
    let retiring = match &status.retirement {
        Some(r) => new_condition(
            types::ENDPOINT_RETIRING,
            true,
            reasons::NOTARY_V1_RETIRING,
            format!("{} stops serving Notary v1 on {}. Source: {}", r.endpoint, r.date, r.source),
            generation,
            Time(now),
        ),
        None => new_condition(types::ENDPOINT_RETIRING, false, reasons::NOT_RETIRING, "", generation, Time(now)),
    };
    set_condition(&mut status.conditions, retiring);
    status
}

/// What a loaded Notation trust root says: its certificates and the first to expire.
fn notation_summary(certs: &[(crate::crd::CertificateStatus, Timestamp)], now: Timestamp) -> String {
    let expired: Vec<&str> = certs.iter().filter(|(_, t)| *t <= now).map(|(c, _)| c.store.as_str()).collect();
    let first = certs.iter().min_by_key(|(_, t)| *t);
    let mut what = format!("Notation trust policy loaded: {} trust store certificates", certs.len());
    if let Some((c, t)) = first {
        what.push_str(&format!(" (first to expire: {} on {t})", c.store));
    }
    if !expired.is_empty() {
        what.push_str(&format!(
            "; EXPIRED certificates {expired:?} anchor nothing any more: replace them in spec.notation.trustStores"
        ));
    }
    what.push_str("; signatures are read from the registry");
    what
}

fn repository_trust(gun: &str, v: &RepoView, old: Option<&RepositoryTrust>) -> RepositoryTrust {
    let mut r = RepositoryTrust {
        gun: gun.to_string(),
        versions: v.memory.versions.iter().map(|(k, n)| (k.clone(), *n as i64)).collect(),
        signers: v
            .memory
            .signers
            .iter()
            .map(|(name, ids)| SignerKeys { name: name.clone(), key_ids: ids.iter().cloned().collect() })
            .collect(),
        last_refresh: Some(Time(v.refreshed_at)),
        ..Default::default()
    };
    match &v.result {
        Ok(repo) => {
            for e in repo.expiries() {
                let t = e.expires.to_string();
                r.expires.entry(e.role).and_modify(|cur: &mut String| *cur = cur.clone().min(t.clone())).or_insert(t);
            }
        }
        Err(e) => {
            r.last_error = Some(format!("{}: {e}", e.reason()));
            if let Some(o) = old {
                r.expires = o.expires.clone();
            }
        }
    }
    r
}

/// The earliest expiry of a role people sign (root, targets, delegations, certificates).
fn next_expiry(views: &[(String, RepoView)]) -> Option<NextExpiry> {
    views
        .iter()
        .filter_map(|(gun, v)| v.result.as_ref().ok().map(|r| (gun, r)))
        .flat_map(|(gun, r)| r.expiries().into_iter().filter(|e| !e.server_managed).map(move |e| (gun.clone(), e)))
        .min_by_key(|(_, e)| e.expires)
        .map(|(gun, e)| NextExpiry { role: e.role, gun, time: e.expires.to_string() })
}

/// Trusted versions and signers read back from status, so rollback protection and
/// revocation history survive an operator restart.
pub fn memory_from_status(status: Option<&TrustRootStatus>) -> Vec<(String, TrustMemory)> {
    let Some(status) = status else { return vec![] };
    status
        .repositories
        .iter()
        .map(|r| {
            let memory = TrustMemory {
                versions: r.versions.iter().filter(|(_, v)| **v >= 0).map(|(k, v)| (k.clone(), *v as u64)).collect(),
                signers: r
                    .signers
                    .iter()
                    .map(|s| (s.name.clone(), s.key_ids.iter().cloned().collect::<BTreeSet<_>>()))
                    .collect(),
                removed: BTreeMap::new(),
            };
            (r.gun.clone(), memory)
        })
        .collect()
}

/// Whether a TrustRoot status changed in a way worth writing (refresh times excluded).
pub fn trust_root_status_changed(old: Option<&TrustRootStatus>, new: &TrustRootStatus) -> bool {
    let strip = |s: &TrustRootStatus| {
        let mut s = s.clone();
        for r in &mut s.repositories {
            r.last_refresh = None;
        }
        s
    };
    old.is_none_or(|o| strip(o) != strip(new))
}

/// Status of a policy whose spec is invalid.
pub fn invalid_policy_status(policy: &ImageTrustPolicy, errors: &[String], now: Timestamp) -> ImageTrustPolicyStatus {
    let generation = policy.metadata.generation;
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let msg = errors.join("; ");
    set_condition(
        &mut status.conditions,
        new_condition(types::READY, false, reasons::INVALID_SPEC, msg, generation, Time(now)),
    );
    status
}

/// Status of a policy after a scan. `missing_roots` are referenced trust roots that do not
/// exist or are not ready; `write_errors` the reports that could not be written.
pub fn policy_status(
    policy: &ImageTrustPolicy,
    outcome: &ScanOutcome,
    missing_roots: &[String],
    write_errors: &[String],
    now: Timestamp,
) -> ImageTrustPolicyStatus {
    let generation = policy.metadata.generation;
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.summary = Some(outcome.summary);
    status.last_scan_time = Some(Time(now));
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        new_condition(type_, ok, reason, message, generation, Time(now))
    };
    let ready = if !missing_roots.is_empty() {
        cond(
            types::READY,
            false,
            reasons::TRUST_ROOT_NOT_READY,
            format!("trust roots not ready: {} (kubectl get troot)", missing_roots.join(", ")),
        )
    } else if !write_errors.is_empty() {
        let shown: Vec<&str> = write_errors.iter().take(3).map(String::as_str).collect();
        cond(
            types::READY,
            false,
            reasons::REPORT_WRITE_FAILED,
            bounded(format!("{} reports could not be written: {}", write_errors.len(), shown.join("; "))),
        )
    } else {
        cond(types::READY, true, reasons::READY, "spec is valid and its trust roots are ready".into())
    };
    set_condition(&mut status.conditions, ready);
    let failing = outcome.summary.failing;
    let compliant = if failing == 0 {
        cond(types::COMPLIANT, true, reasons::ALL_VERIFIED, format!("{} containers verified", outcome.summary.verified))
    } else {
        let worst = outcome.worst.map(|v| v.to_string()).unwrap_or_else(|| reasons::VERIFICATION_FAILED.to_string());
        cond(
            types::COMPLIANT,
            false,
            &worst,
            format!("{failing} of {} containers failing; worst verdict {worst}", outcome.summary.containers),
        )
    };
    set_condition(&mut status.conditions, compliant);
    let limited = match (outcome.limited.is_empty(), outcome.cluster_limited) {
        (true, _) => cond(types::QUARANTINE_LIMITED, false, reasons::WITHIN_LIMIT, String::new()),
        (false, true) => cond(
            types::QUARANTINE_LIMITED,
            true,
            reasons::CLUSTER_LIMIT_REACHED,
            format!(
                "{} pods were reported but not quarantined: the cluster-wide cap of quarantined pods (trustwatch run --max-quarantined) is reached",
                outcome.limited.len()
            ),
        ),
        (false, false) => cond(
            types::QUARANTINE_LIMITED,
            true,
            reasons::LIMIT_REACHED,
            format!(
                "{} pods were reported but not quarantined: spec.quarantineLimit ({}) reached in one scan",
                outcome.limited.len(),
                policy.spec.quarantine_limit
            ),
        ),
    };
    set_condition(&mut status.conditions, limited);
    let ineffective = match outcome.ineffective.first() {
        None => cond(types::QUARANTINE_INEFFECTIVE, false, reasons::ISOLATED, String::new()),
        Some((_, pod, gap)) => cond(
            types::QUARANTINE_INEFFECTIVE,
            true,
            gap.reason(),
            bounded(format!(
                "{} quarantined pods are not isolated; e.g. {}",
                outcome.ineffective.len(),
                gap.describe(pod)
            )),
        ),
    };
    set_condition(&mut status.conditions, ineffective);
    status
}

/// Condition messages stay short enough to read in `kubectl describe`.
fn bounded(message: String) -> String {
    super::policy::truncate(&message, 2048)
}
