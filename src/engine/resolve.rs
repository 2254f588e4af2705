//! Resolving an image against verified trust data: pure, no I/O, no clock.
//!
//! With no required signers a tag resolves as Docker Content Trust does: `targets/releases`
//! first, then `targets`, then the other delegations. With required signers, every one of
//! them must have signed the same digest.

use crate::image::ImageRef;
use crate::tuf::metadata::{FileMeta, delegation_matches, target_sha256_hex};
use crate::tuf::{DelegationOutcome, Expiry, TrustedRepo, TufError};
use crate::verdict::Verdict;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;

pub use crate::verifier::Resolution;
use crate::verifier::SignatureFormat;

pub const RELEASES: &str = "targets/releases";

#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Required signers: delegation names (`releases` means `targets/releases`).
    pub signers: Vec<String>,
    pub now: Timestamp,
    pub expiry_warning: SignedDuration,
}

/// `releases` -> `targets/releases`; `targets/...` and `targets` are kept.
pub fn normalize_signer(s: &str) -> String {
    let s = s.trim().trim_end_matches('/');
    if s == "targets" || s.starts_with("targets/") { s.to_string() } else { format!("targets/{s}") }
}

fn base(image: &ImageRef) -> Resolution {
    Resolution::new(SignatureFormat::NotaryV1, image, Verdict::Unsigned, "", "")
}

/// The resolution of an image whose repository could not be verified at all.
pub fn from_error(image: &ImageRef, err: &TufError) -> Resolution {
    base(image).with(err.verdict(), err.reason(), err.to_string())
}

/// What one role says about the image.
enum Finding {
    Signed { role: String, digest: String },
    NotSigned,
    Failed(TufError),
}

/// Roles on the path from `targets` to `role`, checking delegation paths all the way down:
/// a child may only sign names its ancestors delegated to it.
fn role_may_sign(repo: &TrustedRepo, role: &str, target: &str) -> bool {
    let mut cur = role;
    while cur != "targets" {
        let Some(d) = repo.delegations.get(cur) else { return false };
        let as_role = crate::tuf::metadata::DelegatedRole {
            name: d.name.clone(),
            keyids: vec![],
            threshold: d.threshold,
            paths: d.paths.clone(),
            path_hash_prefixes: d.path_hash_prefixes.clone(),
        };
        if !delegation_matches(&as_role, target) {
            return false;
        }
        cur = &d.parent;
    }
    true
}

fn role_targets<'a>(repo: &'a TrustedRepo, role: &str) -> Result<Option<&'a BTreeMap<String, FileMeta>>, TufError> {
    if role == "targets" {
        return Ok(Some(&repo.targets.doc.signed.targets));
    }
    match repo.delegations.get(role).map(|d| &d.outcome) {
        Some(DelegationOutcome::Verified(v)) => Ok(Some(&v.doc.signed.targets)),
        Some(DelegationOutcome::Failed(e)) => Err(e.clone()),
        Some(DelegationOutcome::Unpublished) | None => Ok(None),
    }
}

/// What `role` signed for `tag` (or, with no tag, whether it signed `digest`).
fn find(repo: &TrustedRepo, role: &str, image: &ImageRef) -> Finding {
    let targets = match role_targets(repo, role) {
        Ok(Some(t)) => t,
        Ok(None) => return Finding::NotSigned,
        Err(e) => {
            // A failing role only matters if it could have signed this image.
            let may = match &image.tag {
                Some(tag) => role_may_sign(repo, role, tag),
                None => true,
            };
            return if may { Finding::Failed(e) } else { Finding::NotSigned };
        }
    };
    match (&image.tag, &image.digest) {
        (Some(tag), _) => {
            if !role_may_sign(repo, role, tag) {
                return Finding::NotSigned;
            }
            match targets.get(tag).and_then(target_sha256_hex) {
                Some(h) => Finding::Signed { role: role.into(), digest: format!("sha256:{h}") },
                None => Finding::NotSigned,
            }
        }
        (None, Some(digest)) => {
            let hit = targets.iter().any(|(name, m)| {
                role_may_sign(repo, role, name)
                    && target_sha256_hex(m).is_some_and(|h| format!("sha256:{h}") == *digest)
            });
            if hit { Finding::Signed { role: role.into(), digest: digest.clone() } } else { Finding::NotSigned }
        }
        (None, None) => Finding::NotSigned,
    }
}

/// The DCT search order: `targets/releases`, `targets`, then other delegations.
fn default_roles(repo: &TrustedRepo) -> Vec<String> {
    let mut roles = vec![RELEASES.to_string(), "targets".to_string()];
    roles.extend(repo.delegations.keys().filter(|r| r.as_str() != RELEASES).cloned());
    roles
}

/// Was this image signed by a role that has since been removed?
fn revoked_signer_for(
    repo: &TrustedRepo,
    image: &ImageRef,
    roles: Option<&[String]>,
) -> Option<(String, Option<String>)> {
    repo.removed.values().filter(|r| roles.is_none_or(|rs| rs.contains(&r.role))).find_map(|r| {
        let hit = match (&image.tag, &image.digest) {
            (Some(tag), _) => r.targets.get(tag).map(|h| Some(format!("sha256:{h}"))),
            (None, Some(d)) => r.targets.values().any(|h| format!("sha256:{h}") == *d).then(|| Some(d.clone())),
            _ => None,
        };
        // After a restart only the role name is remembered: a required signer that was
        // removed is still a revocation.
        let hit = hit.or_else(|| (roles.is_some() && r.targets.is_empty()).then_some(None));
        hit.map(|d| (r.role.clone(), d))
    })
}

/// Resolves `image` against the verified repository.
pub fn resolve(repo: &TrustedRepo, image: &ImageRef, opts: &ResolveOptions) -> Resolution {
    let base = base(image);
    let required: Vec<String> = opts.signers.iter().map(|s| normalize_signer(s)).collect();
    let mut out = if required.is_empty() {
        resolve_default(repo, image, base)
    } else {
        resolve_required(repo, image, &required, base)
    };
    apply_expiry(repo, &mut out, opts);
    out
}

fn resolve_default(repo: &TrustedRepo, image: &ImageRef, base: Resolution) -> Resolution {
    let gun = image.gun();
    let what = describe(image);
    if image.tag.is_some() {
        // Roles are consulted in DCT order and the first that signed the tag decides. A role
        // ahead that failed its checks adds no trust, but it is never skipped in favour of a
        // lower role's failing verdict: the lower role may hold an older signature (a drift
        // against it, while the role ahead signs the running digest, would be false). So a
        // lower role may only confirm: its Verified for the very digest running stands (with
        // no running digest, not while the role ahead is unreadable: what it says the tag is
        // is unknown), unless the role ahead was tampered with, which is how an attacker
        // would hide a newer signature to let an older one stand. Any other answer is the
        // failure of the role ahead: TrustDataUnavailable for an outage, the integrity
        // failure itself otherwise.
        let mut ahead: Option<(String, TufError)> = None;
        for role in default_roles(repo) {
            match find(repo, &role, image) {
                Finding::Signed { role, digest } => {
                    let r = check_digest(image, base.clone(), role.clone(), digest);
                    let Some((failed, e)) = &ahead else { return r };
                    let confirms = r.verdict == Verdict::Verified
                        && e.verdict() != Verdict::Tampered
                        && (image.digest.is_some() || !e.is_outage());
                    return if confirms { r } else { failed_ahead(base, failed, e, &role, &what) };
                }
                Finding::Failed(e) => ahead = ahead.or(Some((role, e))),
                Finding::NotSigned => {}
            }
        }
        if let Some((role, e)) = ahead {
            return failed_role(base, &role, &e);
        }
    } else {
        let roles: Vec<String> = default_roles(repo);
        let mut signers = vec![];
        let mut failure = None;
        for role in &roles {
            match find(repo, role, image) {
                Finding::Signed { role, .. } => signers.push(role),
                Finding::Failed(e) => failure = failure.or(Some((role.clone(), e))),
                Finding::NotSigned => {}
            }
        }
        if !signers.is_empty() {
            let mut r = base;
            r.digest = image.digest.clone();
            r.signers = signers;
            return verified(r);
        }
        if let Some((role, e)) = failure {
            return failed_role(base, &role, &e);
        }
    }
    if let Some((role, digest)) = revoked_signer_for(repo, image, None) {
        let mut r = base;
        r.digest = digest;
        r.signers = vec![role.clone()];
        return r.with(
            Verdict::SignerRevoked,
            "SignerRemoved",
            format!("{what} was signed by {role}, which has since been removed from the delegations of {gun}"),
        );
    }
    base.with(Verdict::Unsigned, "NoSignedTarget", format!("{gun} has no signed target for {what}"))
}

/// A lower role answered while `failed`, ahead of it in DCT order, could not be trusted.
fn failed_ahead(base: Resolution, failed: &str, e: &TufError, lower: &str, what: &str) -> Resolution {
    let why = if e.is_outage() { "could not be read" } else { "failed its checks" };
    let r = failed_role(base, failed, e);
    let message =
        format!("{failed}, consulted before {lower} for {what}, {why} ({e}); {lower}'s answer cannot stand in for it");
    let (verdict, reason) = (r.verdict, r.reason.clone());
    r.with(verdict, reason, message)
}

fn resolve_required(repo: &TrustedRepo, image: &ImageRef, required: &[String], base: Resolution) -> Resolution {
    let what = describe(image);
    let mut found: Vec<(String, String)> = vec![];
    let mut failures: Vec<Resolution> = vec![];
    for role in required {
        let exists = role == "targets" || repo.delegations.contains_key(role);
        if !exists && let Some((parent, e)) = failed_ancestor(repo, role) {
            // Not reached because the role above it failed: unknown, not missing.
            let cause = match e {
                TufError::DelegatorFailed { cause, .. } => cause.clone(),
                other => Box::new(other.clone()),
            };
            let e = TufError::DelegatorFailed { role: role.clone(), parent: parent.to_string(), cause };
            failures.push(failed_role(base.clone(), role, &e));
            continue;
        }
        if !exists {
            let r = match revoked_signer_for(repo, image, Some(std::slice::from_ref(role))) {
                Some(_) => base.clone().with(
                    Verdict::SignerRevoked,
                    "SignerRemoved",
                    format!("required signer {role} has been removed from the delegations of {}", image.gun()),
                ),
                None => base.clone().with(
                    Verdict::SignerMissing,
                    "NoSuchDelegation",
                    format!("required signer {role} is not a delegation of {}", image.gun()),
                ),
            };
            failures.push(r);
            continue;
        }
        match find(repo, role, image) {
            Finding::Signed { role, digest } => found.push((role, digest)),
            Finding::Failed(e) => failures.push(failed_role(base.clone(), role, &e)),
            Finding::NotSigned => failures.push(base.clone().with(
                Verdict::SignerMissing,
                "NotSignedBySigner",
                format!("required signer {role} has not signed {what}"),
            )),
        }
    }
    if let Some(worst) = failures.into_iter().max_by_key(|r| r.verdict.severity()) {
        let mut w = worst;
        w.signers = found.iter().map(|(r, _)| r.clone()).collect();
        return w;
    }
    let first = found[0].1.clone();
    if let Some((role, other)) = found.iter().find(|(_, d)| *d != first) {
        let mut r = base;
        r.signers = found.iter().map(|(r, _)| r.clone()).collect();
        return r.with(
            Verdict::SignerMissing,
            "SignersDisagree",
            format!("signers disagree on {what}: {} signed {first}, {role} signed {other}", found[0].0),
        );
    }
    let mut r = check_digest(image, base, found[0].0.clone(), first);
    r.signers = found.into_iter().map(|(r, _)| r).collect();
    r
}

/// The nearest delegation above `role` (by name: notary names a role below the one that
/// delegates it) that the repository holds, when it failed.
fn failed_ancestor<'a>(repo: &'a TrustedRepo, role: &str) -> Option<(&'a str, &'a TufError)> {
    let mut cur = role;
    while let Some((parent, _)) = cur.rsplit_once('/') {
        if parent == "targets" {
            return None;
        }
        match repo.delegations.get(parent) {
            Some(d) => {
                return match &d.outcome {
                    DelegationOutcome::Failed(e) => Some((d.name.as_str(), e)),
                    // A verified parent that does not list it: it really is not delegated.
                    _ => None,
                };
            }
            None => cur = parent,
        }
    }
    None
}

fn describe(image: &ImageRef) -> String {
    match (&image.tag, &image.digest) {
        (Some(t), _) => format!("tag {t:?}"),
        (None, Some(d)) => format!("digest {d}"),
        (None, None) => "the image".into(),
    }
}

/// A role that could not be trusted is the answer. An outage says so in its reason
/// (`RoleUnavailable`): it is never a revocation, a drift or "unsigned".
fn failed_role(base: Resolution, role: &str, e: &TufError) -> Resolution {
    if e.is_outage() {
        return base.with(
            Verdict::TrustDataUnavailable,
            "RoleUnavailable",
            format!("signer {role} could not be read: {e} ({})", e.reason()),
        );
    }
    base.with(e.verdict(), e.reason(), format!("signer {role} cannot be trusted: {e}"))
}

/// Compares the digest signed for the tag with the digest the image names.
fn check_digest(image: &ImageRef, mut r: Resolution, role: String, signed: String) -> Resolution {
    r.digest = Some(signed.clone());
    r.signers = vec![role.clone()];
    match &image.digest {
        Some(d) if *d != signed => {
            let tag = image.tag.as_deref().unwrap_or_default();
            r.with(
                Verdict::DigestDrift,
                "DigestMismatch",
                format!("tag {tag:?} is signed for {signed} (by {role}), not for {d}"),
            )
        }
        _ => verified(r),
    }
}

fn verified(r: Resolution) -> Resolution {
    let msg = format!("signed by {}", r.signers.join(", "));
    r.with(Verdict::Verified, "Verified", msg)
}

/// Fills `expires` with the earliest expiry of the chain the verdict rests on, and turns
/// `Verified` into `ExpiringSoon` when a role whose keys people hold expires within the
/// warning window. Server-managed roles (timestamp, snapshot) are re-signed by the server
/// and only matter once expired, which the update already refuses.
fn apply_expiry(repo: &TrustedRepo, r: &mut Resolution, opts: &ResolveOptions) {
    let chain: Vec<Expiry> = repo
        .expiries()
        .into_iter()
        .filter(|e| {
            let role = e.role.trim_end_matches(" certificate");
            !role.starts_with("targets/") || r.signers.iter().any(|s| s == role)
        })
        .collect();
    if let Some(first) = chain.iter().min_by_key(|e| e.expires) {
        r.expires = Some(first.expires);
        r.expires_role = Some(first.role.clone());
    }
    if r.verdict != Verdict::Verified {
        return;
    }
    let horizon = opts.now.checked_add(opts.expiry_warning).unwrap_or(Timestamp::MAX);
    if let Some(soon) = chain.iter().filter(|e| !e.server_managed && e.expires <= horizon).min_by_key(|e| e.expires) {
        let left = soon.expires.duration_since(opts.now);
        let msg = format!(
            "{}; {} expires at {} (in {})",
            r.message,
            soon.role,
            soon.expires,
            crate::engine::human_duration(left)
        );
        let reason = format!("{}Expiring", if soon.role.ends_with("certificate") { "Certificate" } else { "Metadata" });
        *r = r.clone().with(Verdict::ExpiringSoon, &reason, msg);
    }
}
