//! The TUF client workflow (TUF specification 1.0, "Detailed client workflow", section 5),
//! adapted to Notary v1: the trust anchor is a set of pinned root keys rather than a shipped
//! root file, and documents are fetched by checksum when their parent lists a hash.
//!
//! Pure checks live in [`super::metadata`]; this module only sequences them around a
//! [`Fetch`] implementation, so the same code serves the operator, the CLI, tests and fuzzing.

use super::error::{FetchError, TufError};
use super::keys::{PinnedKey, PublicKey};
use super::metadata::{
    self, FileMeta, Parsed, Role, Root, Snapshot, Targets, check_expiry, check_file_meta, check_rollback,
    check_threshold, count_signatures, limits, load_keys,
};
use super::repo::{DelegationOutcome, DelegationState, RemovedSigner, TrustMemory, TrustedRepo, Verified};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;

/// Fetches one metadata document of one repository.
pub trait Fetch: Sync {
    /// GET `<server>/v2/<gun>/_trust/tuf/<name>`, reading at most `limit` bytes.
    /// `Ok(None)` when the server answers 404.
    fn fetch(&self, name: &str, limit: u64) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send;
}

/// The operator's trust anchor for a repository.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    pub pinned: Vec<PinnedKey>,
    /// Key IDs (either form) never to trust, whatever the metadata says.
    pub revoked: BTreeSet<String>,
}

enum Attempt {
    /// The snapshot lists a root other than the trusted one: walk root versions and retry.
    RootChanged(TufError),
    Failed(TufError),
}

impl From<TufError> for Attempt {
    fn from(e: TufError) -> Self {
        Attempt::Failed(e)
    }
}

impl From<FetchError> for Attempt {
    fn from(e: FetchError) -> Self {
        Attempt::Failed(e.into())
    }
}

/// Brings the trusted state of `gun` up to date. On error the caller keeps `prev`: nothing
/// already trusted is lost, and a later call starts again from it.
pub async fn update<F: Fetch>(
    f: &F,
    gun: &str,
    prev: Option<&TrustedRepo>,
    memory: &TrustMemory,
    anchors: &Anchors,
    now: Timestamp,
) -> Result<TrustedRepo, TufError> {
    // 5.2: Load the trusted root metadata file.
    let mut root = match prev {
        Some(p) => p.root.clone(),
        None => bootstrap_root(f, memory, anchors).await?,
    };
    let mut walked = prev.is_none();
    loop {
        match refresh_from_root(f, gun, &root, prev, memory, anchors, now).await {
            Ok(repo) => return Ok(repo),
            Err(Attempt::RootChanged(e))
            | Err(Attempt::Failed(e @ (TufError::SignatureThreshold { .. } | TufError::SignedByRevokedKeys { .. })))
                if !walked =>
            {
                // A new root (rotated timestamp, snapshot or targets keys) is found through
                // `<N+1>.root.json`; with no newer root, the original failure stands.
                let next = walk_root(f, root.clone(), anchors).await?;
                if next.doc.signed.version == root.doc.signed.version {
                    return Err(e);
                }
                root = next;
                walked = true;
            }
            Err(Attempt::RootChanged(e)) | Err(Attempt::Failed(e)) => return Err(e),
        }
    }
}

fn file_meta(bytes: &[u8]) -> FileMeta {
    FileMeta {
        hashes: BTreeMap::from([("sha256".to_string(), B64.encode(Sha256::digest(bytes)))]),
        length: bytes.len() as u64,
    }
}

fn parse_root(bytes: &[u8]) -> Result<Parsed<Root>, TufError> {
    metadata::parse::<Root>("root", bytes, limits::ROOT, Root::TYPE)
}

/// Keys listed for a top-level role in `root`.
fn top_role_keys(root: &Root, role: &str) -> Result<(BTreeMap<String, PublicKey>, u64), TufError> {
    let rk = root.roles.get(role).ok_or_else(|| TufError::InvalidMetadata {
        role: "root".into(),
        detail: format!("root defines no {role} role"),
    })?;
    Ok((load_keys(role, &root.keys, &rk.keyids)?, rk.threshold))
}

/// Counts signatures of `role` and checks the threshold. With `now`, keys whose x509
/// certificate has expired do not count.
fn check_signed<T>(
    doc: &Parsed<T>,
    keys: &BTreeMap<String, PublicKey>,
    threshold: u64,
    revoked: &BTreeSet<String>,
    now: Option<Timestamp>,
) -> Result<(), TufError> {
    let count = count_signatures(&doc.canonical, &doc.signatures, keys, revoked);
    let expired: Vec<&PublicKey> = count
        .valid
        .iter()
        .filter_map(|id| keys.get(id))
        .filter(|k| matches!((k.cert_not_after, now), (Some(t), Some(n)) if t <= n))
        .collect();
    let mut usable = count.clone();
    for k in &expired {
        usable.valid.remove(&k.id);
    }
    match check_threshold(&doc.role, &usable, threshold) {
        Err(_) if !expired.is_empty() && count.valid.len() as u64 >= threshold => {
            let k = expired[0];
            Err(TufError::CertificateExpired {
                role: doc.role.clone(),
                keyid: k.id.clone(),
                expires: k.cert_not_after.map(|t| t.to_string()).unwrap_or_default(),
            })
        }
        other => other,
    }
}

/// "Signed only by keys no longer authorized" needs evidence of a revocation: the role was
/// emptied below its threshold (what `notary delegation remove` of its last key leaves), or
/// one of the keys is `known` (authorized once, still described, or revoked by the operator).
/// Otherwise a signature from a key nobody knows is a forgery: a threshold failure.
fn with_revocation_evidence(e: TufError, emptied: bool, known: impl Fn(&str) -> bool) -> TufError {
    match e {
        TufError::SignedByRevokedKeys { role, keyids } if !emptied && !keyids.iter().any(|k| known(k)) => {
            TufError::SignatureThreshold { role, threshold: 1, valid: 0, unauthorized_keyids: keyids }
        }
        other => other,
    }
}

/// Signature check of a top-level role: revocation evidence is a key the operator revoked, or
/// one the root still describes without authorizing it for this role.
fn check_top_role<T>(
    doc: &Parsed<T>,
    root: &Root,
    role: &str,
    revoked: &BTreeSet<String>,
    now: Timestamp,
) -> Result<(), TufError> {
    let (keys, threshold) = top_role_keys(root, role)?;
    check_signed(doc, &keys, threshold, revoked, Some(now))
        .map_err(|e| with_revocation_evidence(e, false, |k| revoked.contains(k) || root.keys.contains_key(k)))
}

/// True when the root is signed by the pinned keys: at least one pinned key is among its
/// root keys and signed it, and its own root threshold is met.
fn check_anchored(doc: &Parsed<Root>, anchors: &Anchors) -> Result<(), TufError> {
    let version = doc.signed.version;
    let (keys, threshold) = top_role_keys(&doc.signed, "root")?;
    let pinned: Vec<&PublicKey> = keys.values().filter(|k| anchors.pinned.iter().any(|p| p.matches(k))).collect();
    if pinned.is_empty() {
        let listed: Vec<&str> = keys.values().map(|k| k.canonical_id.as_str()).collect();
        let want: Vec<&str> = anchors.pinned.iter().map(|p| p.canonical_id.as_str()).collect();
        return Err(TufError::UntrustedRoot {
            version,
            detail: format!("its root keys {listed:?} do not include a pinned key {want:?}"),
        });
    }
    let count = count_signatures(&doc.canonical, &doc.signatures, &keys, &anchors.revoked);
    if !pinned.iter().any(|k| count.valid.contains(&k.id)) {
        return Err(TufError::UntrustedRoot { version, detail: "no valid signature from a pinned key".into() });
    }
    check_threshold("root", &count, threshold)
}

/// Finds the first root the pinned keys sign and walks forward from it to the newest root.
async fn bootstrap_root<F: Fetch>(f: &F, memory: &TrustMemory, anchors: &Anchors) -> Result<Verified<Root>, TufError> {
    let bytes = f.fetch("root.json", limits::ROOT).await?.ok_or(TufError::NotFound { role: "root".into() })?;
    let latest = parse_root(&bytes)?;
    let latest_version = latest.signed.version;
    check_rollback("root", memory.versions.get("root").copied(), latest_version)?;
    let anchor = match check_anchored(&latest, anchors) {
        Ok(()) => Verified { doc: latest, meta: file_meta(&bytes) },
        Err(first_err) => {
            // The pinned key may belong to an older root that was rotated since: look for the
            // oldest root version it signs, then walk the rotations forward from there.
            let lowest = latest_version.saturating_sub(limits::MAX_ROOT_ROTATIONS).max(1);
            let mut found = None;
            for v in lowest..latest_version {
                let Some(b) = f.fetch(&format!("{v}.root.json"), limits::ROOT).await? else { continue };
                let doc = parse_root(&b)?;
                if doc.signed.version != v {
                    return Err(TufError::RootVersionMismatch { expected: v, found: doc.signed.version });
                }
                if check_anchored(&doc, anchors).is_ok() {
                    found = Some(Verified { doc, meta: file_meta(&b) });
                    break;
                }
            }
            found.ok_or(first_err)?
        }
    };
    let root = walk_root(f, anchor, anchors).await?;
    if root.doc.signed.version < latest_version {
        return Err(TufError::UntrustedRoot {
            version: latest_version,
            detail: format!("no chain of signed root versions leads from version {} to it", root.doc.signed.version),
        });
    }
    Ok(root)
}

/// 5.3: Update the root metadata file.
async fn walk_root<F: Fetch>(f: &F, mut cur: Verified<Root>, anchors: &Anchors) -> Result<Verified<Root>, TufError> {
    for _ in 0..limits::MAX_ROOT_ROTATIONS {
        // 5.3.2: "Try downloading version N+1 of the root metadata file [...] If this file
        // is not available [...] then go to step 5.3.10."
        let next = cur.doc.signed.version + 1;
        let Some(bytes) = f.fetch(&format!("{next}.root.json"), limits::ROOT).await? else {
            return Ok(cur);
        };
        let doc = parse_root(&bytes)?;
        // 5.3.4: "Check for a rollback attack. The version number of the new root metadata
        // (version N+1) MUST be exactly the version in the trusted root metadata (version N)
        // incremented by one."
        if doc.signed.version != next {
            return Err(TufError::RootVersionMismatch { expected: next, found: doc.signed.version });
        }
        // 5.3.3: "Check signatures. Version N+1 of the root metadata file MUST have been signed
        // by: (1) a threshold of keys specified in the trusted root metadata file (version N),
        // and (2) a threshold of keys specified in the new root metadata file being validated
        // (version N+1)."
        let (old_keys, old_threshold) = top_role_keys(&cur.doc.signed, "root")?;
        check_signed(&doc, &old_keys, old_threshold, &anchors.revoked, None)?;
        let (new_keys, new_threshold) = top_role_keys(&doc.signed, "root")?;
        check_signed(&doc, &new_keys, new_threshold, &anchors.revoked, None)?;
        // 5.3.5: "Note that the expiration of the new (intermediate) root metadata file does
        // not matter yet, because we will check for it in step 5.3.10."
        cur = Verified { doc, meta: file_meta(&bytes) };
    }
    Ok(cur)
}

/// Downloads a document listed (with hashes and length) by a parent role, by checksum when a
/// sha256 is listed so a concurrent publish cannot mix versions, and checks the raw bytes.
async fn fetch_listed<F: Fetch, T: Role>(
    f: &F,
    role: &str,
    listed_in: &str,
    meta: &FileMeta,
) -> Result<Verified<T>, TufError> {
    if meta.length > limits::MAX_LISTED {
        return Err(TufError::TooLarge { role: role.into(), size: meta.length, limit: limits::MAX_LISTED });
    }
    let name = match meta.hashes.get("sha256").and_then(|h| B64.decode(h.as_bytes()).ok()) {
        Some(h) => format!("{role}.{}.json", hex::encode(h)),
        None => format!("{role}.json"),
    };
    // Read one byte past the listed length, so a longer body is a length mismatch rather
    // than silently truncated.
    let bytes = f
        .fetch(&name, meta.length + 1)
        .await?
        .ok_or_else(|| TufError::Fetch(FetchError::Status { path: name.clone(), status: 404 }))?;
    check_file_meta(role, listed_in, &bytes, meta)?;
    let doc = metadata::parse::<T>(role, &bytes, meta.length, T::TYPE)?;
    Ok(Verified { doc, meta: meta.clone() })
}

fn trusted_version(prev: Option<u64>, memory: &TrustMemory, role: &str) -> Option<u64> {
    prev.max(memory.versions.get(role).copied())
}

async fn refresh_from_root<F: Fetch>(
    f: &F,
    gun: &str,
    root: &Verified<Root>,
    prev: Option<&TrustedRepo>,
    memory: &TrustMemory,
    anchors: &Anchors,
    now: Timestamp,
) -> Result<TrustedRepo, Attempt> {
    let revoked = &anchors.revoked;
    // 5.3.10: "Check for a freeze attack. The expiration timestamp in the trusted root
    // metadata file MUST be higher than the fixed update start time."
    check_expiry(&root.doc, now)?;
    let (root_keys, root_threshold) = top_role_keys(&root.doc.signed, "root")?;
    // An expired root certificate makes the root unusable (as the notary client does).
    check_signed(&root.doc, &root_keys, root_threshold, revoked, Some(now))?;

    // 5.4.1: "Download the timestamp metadata file, up to X number of bytes."
    let ts_bytes =
        f.fetch("timestamp.json", limits::TIMESTAMP).await?.ok_or(TufError::NotFound { role: "timestamp".into() })?;
    let ts = metadata::parse::<Snapshot>("timestamp", &ts_bytes, limits::TIMESTAMP, "Timestamp")?;
    // 5.4.2: "Check signatures. The new timestamp metadata file must have been signed by a
    // threshold of keys specified in the trusted root metadata file."
    check_top_role(&ts, &root.doc.signed, "timestamp", revoked, now)?;
    // 5.4.3.1: "The version number of the trusted timestamp metadata file, if any, MUST be
    // less than or equal to the version number of the new timestamp metadata file."
    let prev_ts = prev.map(|p| p.timestamp.doc.signed.version);
    check_rollback("timestamp", trusted_version(prev_ts, memory, "timestamp"), ts.signed.version)?;
    // 5.4.4: "Check for a freeze attack. The expiration timestamp in the new timestamp
    // metadata file MUST be higher than the fixed update start time."
    check_expiry(&ts, now)?;
    let timestamp = Verified { meta: file_meta(&ts_bytes), doc: ts };

    // 5.5.1: "Download snapshot metadata file, up to either the number of bytes specified in
    // the timestamp metadata file, or some Y number of bytes." Unchanged: reuse it.
    let snap_meta = timestamp
        .doc
        .signed
        .meta
        .get("snapshot")
        .ok_or(TufError::NotListed { role: "snapshot".into(), listed_in: "timestamp".into() })?;
    let snapshot: Verified<Snapshot> = match prev.filter(|p| p.snapshot.same_as(snap_meta)) {
        Some(p) => p.snapshot.clone(),
        None => {
            // 5.5.2: "The hashes of the new snapshot metadata file MUST match the hashes, if
            // any, listed in the trusted timestamp metadata."
            let s: Verified<Snapshot> = fetch_listed(f, "snapshot", "timestamp", snap_meta).await?;
            // 5.5.5: rollback: never accept an older snapshot than the one trusted.
            let prev_v = prev.map(|p| p.snapshot.doc.signed.version);
            check_rollback("snapshot", trusted_version(prev_v, memory, "snapshot"), s.doc.signed.version)?;
            s
        }
    };
    // 5.5.3: "The new snapshot metadata file MUST have been signed by a threshold of keys
    // specified in the trusted root metadata file." Checked on reuse too: the root may have
    // rotated the snapshot key.
    check_top_role(&snapshot.doc, &root.doc.signed, "snapshot", revoked, now)?;
    // 5.5.6: "Check for a freeze attack. The expiration timestamp in the new snapshot
    // metadata file MUST be higher than the fixed update start time."
    check_expiry(&snapshot.doc, now)?;

    // Notary lists the root in the snapshot: a different hash means the root was rotated
    // (new targets or snapshot keys) and must be walked before anything else is trusted.
    if let Some(listed_root) = snapshot.doc.signed.meta.get("root") {
        if !root.same_as(listed_root) {
            return Err(Attempt::RootChanged(TufError::HashMismatch {
                role: "root".into(),
                listed_in: "snapshot".into(),
                algorithm: "sha256".into(),
                expected: listed_root.hashes.get("sha256").cloned().unwrap_or_default(),
                found: root.meta.hashes.get("sha256").cloned().unwrap_or_default(),
            }));
        }
    }

    // 5.6.1: "Download the top-level targets metadata file, up to either the number of bytes
    // specified in the snapshot metadata file, or some Z number of bytes."
    let targets_meta = snapshot
        .doc
        .signed
        .meta
        .get("targets")
        .ok_or(TufError::NotListed { role: "targets".into(), listed_in: "snapshot".into() })?;
    let targets: Verified<Targets> = match prev.filter(|p| p.targets.same_as(targets_meta)) {
        Some(p) => p.targets.clone(),
        None => {
            // 5.6.2: "The hashes of the new targets metadata file MUST match the hashes, if
            // any, listed in the trusted snapshot metadata."
            let t: Verified<Targets> = fetch_listed(f, "targets", "snapshot", targets_meta).await?;
            // 5.6.4: rollback.
            let prev_v = prev.map(|p| p.targets.doc.signed.version);
            check_rollback("targets", trusted_version(prev_v, memory, "targets"), t.doc.signed.version)?;
            t
        }
    };
    // 5.6.3: "The new targets metadata file MUST have been signed by a threshold of keys
    // specified in the trusted root metadata file." Checked on reuse too.
    check_top_role(&targets.doc, &root.doc.signed, "targets", revoked, now)?;
    // 5.6.5: "Check for a freeze attack."
    check_expiry(&targets.doc, now)?;

    let delegations = walk_delegations(f, &targets, &snapshot, prev, memory, revoked, now).await;

    // Roles trusted before and no longer delegated are remembered as removed signers, with
    // what they had signed, so a running image signed only by them reads `SignerRevoked`.
    let mut removed: BTreeMap<String, RemovedSigner> = memory.removed.clone();
    if let Some(p) = prev {
        removed.extend(p.removed.clone());
        for (name, d) in &p.delegations {
            if delegations.contains_key(name) {
                continue;
            }
            let signed_targets = match &d.outcome {
                DelegationOutcome::Verified(v) => v
                    .doc
                    .signed
                    .targets
                    .iter()
                    .filter_map(|(t, m)| metadata::target_sha256_hex(m).map(|h| (t.clone(), h)))
                    .collect(),
                _ => BTreeMap::new(),
            };
            removed.insert(
                name.clone(),
                RemovedSigner { role: name.clone(), keyids: d.keyids.clone(), targets: signed_targets },
            );
        }
    }
    for (name, keyids) in &memory.signers {
        if !delegations.contains_key(name) && !removed.contains_key(name) {
            removed.insert(
                name.clone(),
                RemovedSigner {
                    role: name.clone(),
                    keyids: keyids.iter().cloned().collect(),
                    targets: BTreeMap::new(),
                },
            );
        }
    }
    removed.retain(|name, _| !delegations.contains_key(name));

    let mut all_keys = BTreeMap::new();
    for role in root.doc.signed.roles.keys() {
        all_keys.extend(top_role_keys(&root.doc.signed, role)?.0);
    }
    Ok(TrustedRepo {
        gun: gun.to_string(),
        root: root.clone(),
        timestamp,
        snapshot,
        targets,
        root_keys: all_keys,
        delegations,
        removed,
    })
}

/// 5.6.7: delegations, walked only from the verified `targets.json` (a role it no longer
/// lists is never fetched, even though the server still serves its stale file). Each role is
/// checked on its own: a failing delegation does not fail the repository, it signs nothing.
async fn walk_delegations<F: Fetch>(
    f: &F,
    targets: &Verified<Targets>,
    snapshot: &Verified<Snapshot>,
    prev: Option<&TrustedRepo>,
    memory: &TrustMemory,
    revoked: &BTreeSet<String>,
    now: Timestamp,
) -> BTreeMap<String, DelegationState> {
    let mut out = BTreeMap::new();
    let mut queue: VecDeque<(String, metadata::Delegations, usize)> = VecDeque::new();
    if let Some(d) = &targets.doc.signed.delegations {
        queue.push_back(("targets".to_string(), d.clone(), 1));
    }
    while let Some((parent, delegations, depth)) = queue.pop_front() {
        for role in &delegations.roles {
            if out.len() >= limits::MAX_DELEGATIONS || out.contains_key(&role.name) {
                continue;
            }
            let mut state = DelegationState {
                name: role.name.clone(),
                parent: parent.clone(),
                keyids: role.keyids.clone(),
                threshold: role.threshold,
                paths: role.paths.clone(),
                path_hash_prefixes: role.path_hash_prefixes.clone(),
                keys: BTreeMap::new(),
                outcome: DelegationOutcome::Unpublished,
            };
            state.outcome =
                match check_delegation(f, role, &parent, &delegations, snapshot, prev, memory, revoked, now).await {
                    Ok((keys, outcome)) => {
                        state.keys = keys;
                        outcome
                    }
                    Err(e) => DelegationOutcome::Failed(e),
                };
            if let DelegationOutcome::Verified(v) = &state.outcome {
                if let Some(children) = &v.doc.signed.delegations {
                    if depth < limits::MAX_DELEGATION_DEPTH && !children.roles.is_empty() {
                        queue.push_back((role.name.clone(), children.clone(), depth + 1));
                    }
                }
            }
            out.insert(role.name.clone(), state);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn check_delegation<F: Fetch>(
    f: &F,
    role: &metadata::DelegatedRole,
    parent: &str,
    delegations: &metadata::Delegations,
    snapshot: &Verified<Snapshot>,
    prev: Option<&TrustedRepo>,
    memory: &TrustMemory,
    revoked: &BTreeSet<String>,
    now: Timestamp,
) -> Result<(BTreeMap<String, PublicKey>, DelegationOutcome), TufError> {
    // Notary requires a delegated role to be named below the role that delegates it.
    if !role.name.starts_with(&format!("{parent}/")) {
        return Err(TufError::InvalidMetadata {
            role: role.name.clone(),
            detail: format!("delegated by {parent} but not named below it"),
        });
    }
    let keys = load_keys(&role.name, &delegations.keys, &role.keyids)?;
    let Some(listed) = snapshot.doc.signed.meta.get(&role.name) else {
        return Ok((keys, DelegationOutcome::Unpublished));
    };
    let prev_state = prev.and_then(|p| p.delegations.get(&role.name));
    let reusable = prev_state.and_then(|d| match &d.outcome {
        DelegationOutcome::Verified(v) if v.same_as(listed) => Some((**v).clone()),
        _ => None,
    });
    let doc = match reusable {
        Some(v) => v,
        None => fetch_listed::<F, Targets>(f, &role.name, "snapshot", listed).await?,
    };
    // 5.6.7.2.2: the delegated role's metadata must be signed by a threshold of the keys the
    // delegating role lists for it; revoked keys and expired certificates never count.
    let remembered = memory.signers.get(&role.name);
    let earlier = prev_state.map(|d| &d.keyids);
    let emptied = (role.keyids.len() as u64) < role.threshold;
    check_signed(&doc.doc, &keys, role.threshold, revoked, Some(now)).map_err(|e| {
        with_revocation_evidence(e, emptied, |k| {
            delegations.keys.contains_key(k)
                || remembered.is_some_and(|s| s.contains(k))
                || earlier.is_some_and(|ids| ids.iter().any(|i| i == k))
                || revoked.contains(k)
        })
    })?;
    let prev_v = prev_state.and_then(|d| match &d.outcome {
        DelegationOutcome::Verified(v) => Some(v.doc.signed.version),
        _ => None,
    });
    check_rollback(&role.name, trusted_version(prev_v, memory, &role.name), doc.doc.signed.version)?;
    check_expiry(&doc.doc, now)?;
    Ok((keys, DelegationOutcome::Verified(Box::new(doc))))
}
