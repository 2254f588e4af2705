//! The TUF client workflow (TUF specification 1.0, "Detailed client workflow", section 5),
//! adapted to Notary v1: the trust anchor is a set of pinned root keys rather than a shipped
//! root file, and documents are fetched by checksum when their parent lists a hash.
//!
//! Pure checks live in [`super::metadata`]; this module only sequences them around a
//! [`Fetch`] implementation, so the same code serves the operator, the CLI, tests and fuzzing.

use super::error::{FetchError, TufError};
use super::keys::{self, CertValidity, PinnedKey, PublicKey};
use super::metadata::{
    self, FileMeta, Parsed, Role, Root, SignatureMemo, Snapshot, Targets, check_expiry, check_file_meta,
    check_rollback, check_threshold, count_signatures, limits, load_keys,
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

/// What an update found: new trust data, or none since the previous state, which still holds.
#[derive(Debug)]
pub enum Refreshed {
    /// Nothing was published since the previous state and every check of it still passes at
    /// `now`: the caller keeps the state it has (see [`refresh_within`]).
    Unchanged,
    New(Box<TrustedRepo>),
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
    match refresh_within(f, gun, prev, memory, anchors, now, limits::REPOSITORY_BUDGET).await? {
        Refreshed::New(repo) => Ok(*repo),
        Refreshed::Unchanged => Ok(prev.expect("only a previous state can be unchanged").clone()),
    }
}

/// What one update reads, besides the documents.
struct Ctx<'a, F> {
    f: &'a F,
    gun: &'a str,
    prev: Option<&'a TrustedRepo>,
    memory: &'a TrustMemory,
    anchors: &'a Anchors,
    now: Timestamp,
    /// Signatures the previous state found valid, and those this update uses.
    memo: SignatureMemo,
}

impl<F> Ctx<'_, F> {
    /// Trust data of this repository was verified before (in this process or, through the
    /// persisted memory, in an earlier one).
    fn seen_before(&self) -> bool {
        self.prev.is_some() || !self.memory.versions.is_empty()
    }

    /// The highest version of `role` trusted so far, wherever it is remembered.
    fn trusted_version(&self, role: &str) -> Option<u64> {
        let from_prev = self.prev.and_then(|p| {
            let live = match role {
                "root" => Some(p.root.doc.signed.version),
                "timestamp" => Some(p.timestamp.doc.signed.version),
                "snapshot" => Some(p.snapshot.doc.signed.version),
                "targets" => Some(p.targets.doc.signed.version),
                _ => match p.delegations.get(role).map(|d| &d.outcome) {
                    Some(DelegationOutcome::Verified(v)) => Some(v.doc.signed.version),
                    _ => None,
                },
            };
            live.max(p.remembered.get(role).copied())
        });
        from_prev.max(self.memory.versions.get(role).copied())
    }

    /// The error for a document the server answers 404 for.
    fn missing(&self, role: &str) -> TufError {
        if self.seen_before() {
            TufError::Vanished { role: role.into() }
        } else {
            TufError::NotFound { role: role.into() }
        }
    }
}

/// TUF bounds every download ("up to X number of bytes"); the budget bounds all documents of
/// one repository together, so that 256 delegations listed at 32 MiB each cannot make the
/// verifier hold 8 GiB for one repository.
struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    fn new(limit: u64) -> Budget {
        Budget { limit, used: 0 }
    }

    /// Accounts for `bytes` of `role`, refusing what would go over the budget.
    fn take(&mut self, role: &str, bytes: u64) -> Result<(), TufError> {
        let needed = self.used.saturating_add(bytes);
        if needed > self.limit {
            return Err(TufError::RepositoryTooLarge { role: role.into(), limit: self.limit, needed });
        }
        self.used = needed;
        Ok(())
    }

    /// Downloads a document whose length no parent lists, reading at most `limit` bytes or what
    /// is left of the budget, and accounts for it.
    async fn fetch_unlisted<F: Fetch>(
        &mut self,
        f: &F,
        name: &str,
        role: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TufError> {
        let left = self.limit.saturating_sub(self.used);
        let bytes = match f.fetch(name, limit.min(left)).await {
            Err(FetchError::TooLarge { .. }) if left < limit => {
                return Err(TufError::RepositoryTooLarge {
                    role: role.into(),
                    limit: self.limit,
                    needed: self.used.saturating_add(left).saturating_add(1),
                });
            }
            other => other?,
        };
        if let Some(b) = &bytes {
            self.take(role, b.len() as u64)?;
        }
        Ok(bytes)
    }
}

/// [`update`] with another memory budget for the repository (all documents together). It
/// answers [`Refreshed::Unchanged`] instead of a copy of `prev` when the server published
/// nothing since `prev` and `prev` still passes every check at `now`: a long-running caller
/// keeps what it has and neither rebuilds nor copies the state.
pub async fn refresh_within<F: Fetch>(
    f: &F,
    gun: &str,
    prev: Option<&TrustedRepo>,
    memory: &TrustMemory,
    anchors: &Anchors,
    now: Timestamp,
    budget: u64,
) -> Result<Refreshed, TufError> {
    let memo = SignatureMemo::new(prev.map(|p| p.signatures.clone()).unwrap_or_default());
    let ctx = Ctx { f, gun, prev, memory, anchors, now, memo };
    // 5.2: "Load the trusted root metadata file. [...] Note that the expiration of the trusted
    // root metadata file does not matter, because we will attempt to update it in the next
    // step." 5.3.1: "the client MUST download intermediate root metadata files, until the
    // latest available one is reached." Every update, before anything is judged: an expired
    // trusted root with a successor on the server recovers without a restart.
    let mut root: std::borrow::Cow<'_, Verified<Root>> = match prev {
        Some(p) => match walk_root(&ctx, &p.root).await? {
            Some(newer) => std::borrow::Cow::Owned(newer),
            None => std::borrow::Cow::Borrowed(&p.root),
        },
        None => std::borrow::Cow::Owned(bootstrap_root(&ctx, budget).await?),
    };
    let mut retried = false;
    loop {
        match refresh_from_root(&ctx, &root, &mut Budget::new(budget)).await {
            Ok(refreshed) => return Ok(refreshed),
            Err(Attempt::RootChanged(e))
            | Err(Attempt::Failed(e @ (TufError::SignatureThreshold { .. } | TufError::SignedByRevokedKeys { .. })))
                if !retried =>
            {
                // A root published while this update ran (rotated timestamp, snapshot or
                // targets keys) is found through `<N+1>.root.json`; with no newer root, the
                // original failure stands.
                let Some(next) = walk_root(&ctx, &root).await? else {
                    return Err(e);
                };
                root = std::borrow::Cow::Owned(next);
                retried = true;
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

/// The root keys that may sign a root of `gun`. Notary binds a root to its repository through
/// the certificate: `validRootLeafCerts` (trustpinning/certs.go) keeps only the root keys
/// whose certificate passes `MatchCNToGun` ("Validate that this leaf certificate has a CN
/// that matches the gun"), and `ValidateRoot` refuses a root with none ("unable to retrieve
/// valid leaf certificates"). Without it, one repository's genuine metadata, served for
/// another GUN, would verify whenever both share a root key, which `notary init` does for
/// every GUN of a trust dir.
fn gun_root_keys(root: &Parsed<Root>, gun: &str) -> Result<(BTreeMap<String, PublicKey>, u64), TufError> {
    let (keys, threshold) = top_role_keys(&root.signed, "root")?;
    let mut names: Vec<String> = keys.values().filter_map(|k| k.cert_common_name.clone()).collect();
    names.dedup();
    let valid: BTreeMap<String, PublicKey> = keys
        .into_iter()
        .filter(|(_, k)| k.cert_common_name.as_deref().is_some_and(|cn| keys::common_name_matches_gun(cn, gun)))
        .collect();
    if valid.is_empty() {
        return Err(TufError::GunMismatch { version: root.signed.version, gun: gun.into(), names });
    }
    Ok((valid, threshold))
}

/// Counts signatures of `role` and checks the threshold. With `now`, keys whose x509
/// certificate is not valid at `now` (expired, or before its `notBefore`) do not count.
fn check_signed<T>(
    doc: &Parsed<T>,
    keys: &BTreeMap<String, PublicKey>,
    threshold: u64,
    revoked: &BTreeSet<String>,
    now: Option<Timestamp>,
    memo: &SignatureMemo,
) -> Result<(), TufError> {
    let mut count = count_signatures(&doc.canonical, &doc.signatures, keys, revoked, Some(memo));
    let with_all = count.distinct_keys();
    let mut unusable = None;
    if let Some(now) = now {
        for id in count.valid.clone() {
            if let Some(why) = keys.get(&id).and_then(|k| k.unusable_at(now)) {
                count.discount(&id);
                unusable.get_or_insert((id, why));
            }
        }
    }
    match (check_threshold(&doc.role, &count, threshold), unusable) {
        (Err(_), Some((keyid, why))) if with_all >= threshold => Err(match why {
            CertValidity::Expired(t) => {
                TufError::CertificateExpired { role: doc.role.clone(), keyid, expires: t.to_string() }
            }
            CertValidity::NotYetValid(t) => {
                TufError::CertificateNotYetValid { role: doc.role.clone(), keyid, not_before: t.to_string() }
            }
        }),
        (other, _) => other,
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
    memo: &SignatureMemo,
) -> Result<(), TufError> {
    let (keys, threshold) = top_role_keys(root, role)?;
    check_signed(doc, &keys, threshold, revoked, Some(now), memo)
        .map_err(|e| with_revocation_evidence(e, false, |k| revoked.contains(k) || root.keys.contains_key(k)))
}

/// True when the root is signed by the pinned keys: at least one pinned key is among its
/// root keys for `gun` and signed it, and its own root threshold is met.
fn check_anchored(doc: &Parsed<Root>, anchors: &Anchors, gun: &str, memo: &SignatureMemo) -> Result<(), TufError> {
    let version = doc.signed.version;
    let (keys, threshold) = gun_root_keys(doc, gun)?;
    let pinned: Vec<&PublicKey> = keys.values().filter(|k| anchors.pinned.iter().any(|p| p.matches(k))).collect();
    if pinned.is_empty() {
        let listed: Vec<&str> = keys.values().map(|k| k.canonical_id.as_str()).collect();
        let want: Vec<&str> = anchors.pinned.iter().map(|p| p.canonical_id.as_str()).collect();
        return Err(TufError::UntrustedRoot {
            version,
            detail: format!("its root keys {listed:?} do not include a pinned key {want:?}"),
        });
    }
    let count = count_signatures(&doc.canonical, &doc.signatures, &keys, &anchors.revoked, Some(memo));
    if !pinned.iter().any(|k| count.valid.contains(&k.id)) {
        return Err(TufError::UntrustedRoot { version, detail: "no valid signature from a pinned key".into() });
    }
    check_threshold("root", &count, threshold)
}

/// Finds the first root the pinned keys sign and walks forward from it to the newest root.
async fn bootstrap_root<F: Fetch>(ctx: &Ctx<'_, F>, budget: u64) -> Result<Verified<Root>, TufError> {
    let (f, anchors, gun) = (ctx.f, ctx.anchors, ctx.gun);
    let bytes = Budget::new(budget)
        .fetch_unlisted(f, "root.json", "root", limits::ROOT)
        .await?
        .ok_or_else(|| ctx.missing("root"))?;
    let latest = parse_root(&bytes)?;
    let latest_version = latest.signed.version;
    check_rollback("root", ctx.memory.versions.get("root").copied(), latest_version)?;
    let anchor = match check_anchored(&latest, anchors, gun, &ctx.memo) {
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
                if check_anchored(&doc, anchors, gun, &ctx.memo).is_ok() {
                    found = Some(Verified { doc, meta: file_meta(&b) });
                    break;
                }
            }
            found.ok_or(first_err)?
        }
    };
    let root = match walk_root(ctx, &anchor).await? {
        Some(newer) => newer,
        None => anchor,
    };
    if root.doc.signed.version < latest_version {
        return Err(TufError::UntrustedRoot {
            version: latest_version,
            detail: format!("no chain of signed root versions leads from version {} to it", root.doc.signed.version),
        });
    }
    Ok(root)
}

/// 5.3: Update the root metadata file. The newest root reached from `trusted`, or `None` when
/// the server has no successor to it.
async fn walk_root<F: Fetch>(ctx: &Ctx<'_, F>, trusted: &Verified<Root>) -> Result<Option<Verified<Root>>, TufError> {
    let mut newer: Option<Verified<Root>> = None;
    for _ in 0..limits::MAX_ROOT_ROTATIONS {
        let cur = newer.as_ref().unwrap_or(trusted);
        // 5.3.3: "Try downloading version N+1 of the root metadata file [...] If this file
        // is not available [...] then go to step 5.3.10."
        let next = cur.doc.signed.version + 1;
        let Some(bytes) = ctx.f.fetch(&format!("{next}.root.json"), limits::ROOT).await? else {
            return Ok(newer);
        };
        let doc = parse_root(&bytes)?;
        // 5.3.5: "Check for a rollback attack. [...] Effectively, this means checking that
        // the version number signed in the new root metadata file is indeed N+1."
        if doc.signed.version != next {
            return Err(TufError::RootVersionMismatch { expected: next, found: doc.signed.version });
        }
        // 5.3.4: "Version N+1 of the root metadata file MUST have been signed by: (1) a
        // threshold of keys specified in the trusted root metadata file (version N), and (2) a
        // threshold of keys specified in the new root metadata file being validated (version
        // N+1)." Both sets are the root keys certified for this GUN, as notary's
        // `ValidateRoot` takes them (expiry is judged later, at 5.3.10, for the final root).
        let (old_keys, old_threshold) = gun_root_keys(&cur.doc, ctx.gun)?;
        check_signed(&doc, &old_keys, old_threshold, &ctx.anchors.revoked, None, &ctx.memo)?;
        let (new_keys, new_threshold) = gun_root_keys(&doc, ctx.gun)?;
        check_signed(&doc, &new_keys, new_threshold, &ctx.anchors.revoked, None, &ctx.memo)?;
        // 5.3.6: "Note that the expiration of the new (intermediate) root metadata file does
        // not matter yet, because we will check for it in step 5.3.10."
        newer = Some(Verified { doc, meta: file_meta(&bytes) });
    }
    Ok(newer)
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

async fn refresh_from_root<F: Fetch>(
    ctx: &Ctx<'_, F>,
    root: &Verified<Root>,
    budget: &mut Budget,
) -> Result<Refreshed, Attempt> {
    let (f, prev, now) = (ctx.f, ctx.prev, ctx.now);
    let revoked = &ctx.anchors.revoked;
    // 5.3.10: "Check for a freeze attack. The expiration timestamp in the trusted root
    // metadata file MUST be higher than the fixed update start time."
    check_expiry(&root.doc, now)?;
    let (root_keys, root_threshold) = gun_root_keys(&root.doc, ctx.gun)?;
    // A root certificate not valid now makes the root unusable (as the notary client does).
    check_signed(&root.doc, &root_keys, root_threshold, revoked, Some(now), &ctx.memo)?;
    budget.take("root", root.meta.length)?;

    // 5.4.1: "Download the timestamp metadata file, up to X number of bytes."
    let ts_bytes = budget
        .fetch_unlisted(f, "timestamp.json", "timestamp", limits::TIMESTAMP)
        .await?
        .ok_or_else(|| ctx.missing("timestamp"))?;
    let ts_meta = file_meta(&ts_bytes);
    if let Some(p) = prev
        && still_holds(p, root, &ts_meta, ctx.memory, revoked, now)
    {
        return Ok(Refreshed::Unchanged);
    }
    let ts = metadata::parse::<Snapshot>("timestamp", &ts_bytes, limits::TIMESTAMP, "Timestamp")?;
    // 5.4.2: "Check signatures. The new timestamp metadata file must have been signed by a
    // threshold of keys specified in the trusted root metadata file."
    check_top_role(&ts, &root.doc.signed, "timestamp", revoked, now, &ctx.memo)?;
    // 5.4.3.1: "The version number of the trusted timestamp metadata file, if any, MUST be
    // less than or equal to the version number of the new timestamp metadata file."
    check_rollback("timestamp", ctx.trusted_version("timestamp"), ts.signed.version)?;
    // 5.4.4: "Check for a freeze attack. The expiration timestamp in the new timestamp
    // metadata file MUST be higher than the fixed update start time."
    check_expiry(&ts, now)?;
    let timestamp = Verified { meta: ts_meta, doc: ts };

    // 5.5.1: "Download snapshot metadata file, up to either the number of bytes specified in
    // the timestamp metadata file, or some Y number of bytes." Unchanged: reuse it.
    let snap_meta = timestamp
        .doc
        .signed
        .meta
        .get("snapshot")
        .ok_or(TufError::NotListed { role: "snapshot".into(), listed_in: "timestamp".into() })?;
    budget.take("snapshot", snap_meta.length)?;
    let snapshot: Verified<Snapshot> = match prev.filter(|p| p.snapshot.same_as(snap_meta)) {
        Some(p) => p.snapshot.clone(),
        None => {
            // 5.5.2: "The hashes of the new snapshot metadata file MUST match the hashes, if
            // any, listed in the trusted timestamp metadata."
            let s: Verified<Snapshot> = fetch_listed(f, "snapshot", "timestamp", snap_meta).await?;
            // 5.5.5: rollback: never accept an older snapshot than the one trusted.
            check_rollback("snapshot", ctx.trusted_version("snapshot"), s.doc.signed.version)?;
            s
        }
    };
    // 5.5.3: "The new snapshot metadata file MUST have been signed by a threshold of keys
    // specified in the trusted root metadata file." Checked on reuse too: the root may have
    // rotated the snapshot key.
    check_top_role(&snapshot.doc, &root.doc.signed, "snapshot", revoked, now, &ctx.memo)?;
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
    budget.take("targets", targets_meta.length)?;
    let targets: Verified<Targets> = match prev.filter(|p| p.targets.same_as(targets_meta)) {
        Some(p) => p.targets.clone(),
        None => {
            // 5.6.2: "The hashes of the new targets metadata file MUST match the hashes, if
            // any, listed in the trusted snapshot metadata."
            let t: Verified<Targets> = fetch_listed(f, "targets", "snapshot", targets_meta).await?;
            // 5.6.4: rollback.
            check_rollback("targets", ctx.trusted_version("targets"), t.doc.signed.version)?;
            t
        }
    };
    // 5.6.3: "The new targets metadata file MUST have been signed by a threshold of keys
    // specified in the trusted root metadata file." Checked on reuse too.
    check_top_role(&targets.doc, &root.doc.signed, "targets", revoked, now, &ctx.memo)?;
    // 5.6.5: "Check for a freeze attack."
    check_expiry(&targets.doc, now)?;

    let delegations = walk_delegations(ctx, &targets, &snapshot, budget).await;

    // Roles trusted before and no longer delegated are remembered as removed signers, with
    // what they had signed, so a running image signed only by them reads `SignerRevoked`.
    // Roles whose parent could not be verified are in `delegations` (failed, not walked), so
    // an outage never lands here.
    let memory = ctx.memory;
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

    // Versions trusted before, kept for roles that did not verify this time (a failing or
    // unreachable delegation keeps its rollback protection through the outage).
    let mut remembered = memory.versions.clone();
    if let Some(p) = prev {
        for (role, v) in p.memory().versions {
            let e = remembered.entry(role).or_insert(v);
            *e = (*e).max(v);
        }
    }

    let mut all_keys = BTreeMap::new();
    for role in root.doc.signed.roles.keys() {
        all_keys.extend(top_role_keys(&root.doc.signed, role)?.0);
    }
    Ok(Refreshed::New(Box::new(TrustedRepo {
        gun: ctx.gun.to_string(),
        root: root.clone(),
        timestamp,
        snapshot,
        targets,
        root_keys: all_keys,
        delegations,
        removed,
        remembered,
        signatures: ctx.memo.used(),
    })))
}

/// True when an update from `prev` would rebuild `prev` itself, so it may be kept as it is.
///
/// TUF 5.4-5.6 check each document's signatures, version and expiry. With the trusted root
/// unchanged (5.3: no `<N+1>.root.json`) and the timestamp byte for byte the trusted one
/// (5.4.1), every document below it is the trusted one too: the timestamp lists the
/// snapshot by hash (5.5.2), the snapshot the targets and delegations (5.6.2). Checks of the
/// same bytes against the same keys give the same answers, except those that depend on the
/// clock or the operator, which are judged again here, at `now`:
/// - 5.3.10, 5.4.4, 5.5.6, 5.6.5 "Check for a freeze attack. The expiration timestamp [...]
///   MUST be higher than the fixed update start time": root, timestamp, snapshot, targets and
///   every verified delegation;
/// - every key's certificate is valid at `now` (a key whose certificate is not does not
///   count, and the full checks then decide);
/// - no key is revoked by the operator;
/// - no delegation failed last time (the full walk tries it again), and the remembered
///   versions and signers are the state's own.
///
/// Anything else, and the full update decides.
fn still_holds(
    prev: &TrustedRepo,
    root: &Verified<Root>,
    ts_meta: &FileMeta,
    memory: &TrustMemory,
    revoked: &BTreeSet<String>,
    now: Timestamp,
) -> bool {
    let unchanged = std::ptr::eq(root, &prev.root) && prev.timestamp.meta == *ts_meta;
    if !unchanged {
        return false;
    }
    let mut expires =
        vec![prev.root.doc.expires, prev.timestamp.doc.expires, prev.snapshot.doc.expires, prev.targets.doc.expires];
    let mut signing_keys: Vec<&PublicKey> = prev.root_keys.values().collect();
    for d in prev.delegations.values() {
        match &d.outcome {
            DelegationOutcome::Verified(v) => expires.push(v.doc.expires),
            DelegationOutcome::Unpublished => {}
            DelegationOutcome::Failed(_) => return false,
        }
        signing_keys.extend(d.keys.values());
    }
    let usable = |k: &&PublicKey| k.unusable_at(now).is_none() && !metadata::is_revoked(k, revoked);
    expires.iter().all(|e| now < *e) && signing_keys.iter().all(usable) && *memory == prev.memory()
}

/// 5.6.7: delegations, walked only from the verified `targets.json` (a role it no longer
/// lists is never fetched, even though the server still serves its stale file). Each role is
/// checked on its own: a failing delegation does not fail the repository, it signs nothing.
async fn walk_delegations<F: Fetch>(
    ctx: &Ctx<'_, F>,
    targets: &Verified<Targets>,
    snapshot: &Verified<Snapshot>,
    budget: &mut Budget,
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
            state.outcome = match check_delegation(ctx, role, &parent, &delegations, snapshot, budget).await {
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
    carry_unreached(&mut out, &targets.doc.signed, ctx.prev, ctx.memory);
    out
}

/// The role that delegates `role` when only its name is known: notary names a delegation
/// below the role that delegates it (`targets/releases/qa` is delegated by `targets/releases`).
fn parent_of(role: &str) -> &str {
    role.rsplit_once('/').map_or("targets", |(p, _)| p)
}

/// Roles trusted before (in the previous state, or by name in the persisted memory) that the
/// walk did not reach. A parent that fails to load (timeout, 5xx, expired, invalid) is not a
/// removal: a role is removed only when its verified parent stops listing it (or the parent
/// itself is removed). The children of a failing parent keep their previous state, failed
/// with the parent's error, so they are neither trusted nor reported as revoked.
fn carry_unreached(
    out: &mut BTreeMap<String, DelegationState>,
    targets: &Targets,
    prev: Option<&TrustedRepo>,
    memory: &TrustMemory,
) {
    let mut known: BTreeMap<String, DelegationState> = memory
        .signers
        .iter()
        .map(|(name, keyids)| {
            let state = DelegationState {
                name: name.clone(),
                parent: parent_of(name).to_string(),
                keyids: keyids.iter().cloned().collect(),
                threshold: 1,
                // What it may sign is not remembered: it could have signed anything.
                paths: Some(vec![String::new()]),
                path_hash_prefixes: None,
                keys: BTreeMap::new(),
                outcome: DelegationOutcome::Unpublished,
            };
            (name.clone(), state)
        })
        .collect();
    if let Some(p) = prev {
        known.extend(p.delegations.iter().map(|(n, d)| (n.clone(), d.clone())));
    }
    let mut unreached: Vec<DelegationState> = known.into_values().filter(|d| !out.contains_key(&d.name)).collect();
    // Parents before children: a parent carried over decides for its children.
    unreached.sort_by_key(|d| d.name.matches('/').count());
    for mut d in unreached {
        let lists =
            |ds: &Option<metadata::Delegations>| ds.as_ref().is_some_and(|x| x.roles.iter().any(|r| r.name == d.name));
        let cause = match d.parent.as_str() {
            "targets" => lists(&targets.delegations).then(|| too_many(&d.name)),
            parent => match out.get(parent).map(|p| &p.outcome) {
                Some(DelegationOutcome::Verified(v)) => lists(&v.doc.signed.delegations).then(|| too_many(&d.name)),
                Some(DelegationOutcome::Failed(TufError::DelegatorFailed { cause, .. })) => Some((**cause).clone()),
                Some(DelegationOutcome::Failed(e)) => Some(e.clone()),
                // Still delegated, with no file, while a role below it was trusted.
                Some(DelegationOutcome::Unpublished) => {
                    Some(TufError::NotListed { role: parent.to_string(), listed_in: "snapshot".into() })
                }
                // The parent is gone (removed, or never delegated): so are its children.
                None => None,
            },
        };
        if let Some(cause) = cause {
            d.outcome = DelegationOutcome::Failed(TufError::DelegatorFailed {
                role: d.name.clone(),
                parent: d.parent.clone(),
                cause: Box::new(cause),
            });
            out.insert(d.name.clone(), d);
        }
    }
}

fn too_many(role: &str) -> TufError {
    TufError::InvalidMetadata {
        role: role.into(),
        detail: format!("not walked: the repository delegates more than {} roles", limits::MAX_DELEGATIONS),
    }
}

async fn check_delegation<F: Fetch>(
    ctx: &Ctx<'_, F>,
    role: &metadata::DelegatedRole,
    parent: &str,
    delegations: &metadata::Delegations,
    snapshot: &Verified<Snapshot>,
    budget: &mut Budget,
) -> Result<(BTreeMap<String, PublicKey>, DelegationOutcome), TufError> {
    let (revoked, now) = (&ctx.anchors.revoked, ctx.now);
    // Notary requires a delegated role to be named below the role that delegates it.
    if !role.name.starts_with(&format!("{parent}/")) {
        return Err(TufError::InvalidMetadata {
            role: role.name.clone(),
            detail: format!("delegated by {parent} but not named below it"),
        });
    }
    let keys = load_keys(&role.name, &delegations.keys, &role.keyids)?;
    let trusted = ctx.trusted_version(&role.name);
    let Some(listed) = snapshot.doc.signed.meta.get(&role.name) else {
        // 5.5.5: "any targets metadata filename that was listed in the trusted snapshot
        // metadata file, if any, MUST continue to be listed in the new snapshot metadata
        // file." Notary drops a role from the snapshot when it removes its delegation; a role
        // still delegated that vanishes once trusted is a rollback by whoever signs the
        // snapshot (its key is on the publisher's machine), not a role that signed nothing.
        return match trusted {
            Some(version) => Err(TufError::RoleVanished { role: role.name.clone(), version }),
            None => Ok((keys, DelegationOutcome::Unpublished)),
        };
    };
    budget.take(&role.name, listed.length)?;
    let prev_state = ctx.prev.and_then(|p| p.delegations.get(&role.name));
    let reusable = prev_state.and_then(|d| match &d.outcome {
        DelegationOutcome::Verified(v) if v.same_as(listed) => Some((**v).clone()),
        _ => None,
    });
    let doc = match reusable {
        Some(v) => v,
        None => fetch_listed::<F, Targets>(ctx.f, &role.name, "snapshot", listed).await?,
    };
    // 5.6.7.2.2: the delegated role's metadata must be signed by a threshold of the keys the
    // delegating role lists for it; revoked keys and certificates not valid now never count.
    let remembered = ctx.memory.signers.get(&role.name);
    let earlier = prev_state.map(|d| &d.keyids);
    let emptied = (role.keyids.len() as u64) < role.threshold;
    check_signed(&doc.doc, &keys, role.threshold, revoked, Some(now), &ctx.memo).map_err(|e| {
        with_revocation_evidence(e, emptied, |k| {
            delegations.keys.contains_key(k)
                || remembered.is_some_and(|s| s.contains(k))
                || earlier.is_some_and(|ids| ids.iter().any(|i| i == k))
                || revoked.contains(k)
        })
    })?;
    check_rollback(&role.name, trusted, doc.doc.signed.version)?;
    check_expiry(&doc.doc, now)?;
    Ok((keys, DelegationOutcome::Verified(Box::new(doc))))
}
