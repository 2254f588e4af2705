//! The trusted state of one Notary repository (one GUN on one server), and what survives a
//! restart of the process (versions and known signers, for rollback and revocation checks).

use super::error::TufError;
use super::keys::PublicKey;
use super::metadata::{FileMeta, Parsed, Root, Snapshot, Targets};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A verified document and the hash and length of the exact bytes it was parsed from, so an
/// unchanged listing in a parent role lets us reuse it without downloading it again.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    pub doc: Parsed<T>,
    pub meta: FileMeta,
}

impl<T> Verified<T> {
    pub fn same_as(&self, listed: &FileMeta) -> bool {
        self.meta.length == listed.length
            && listed.hashes.get("sha256").is_some_and(|h| self.meta.hashes.get("sha256") == Some(h))
    }
}

/// A delegated targets role reachable from the verified `targets.json`.
#[derive(Debug, Clone)]
pub struct DelegationState {
    pub name: String,
    /// The role that delegates to it (`targets` or a parent delegation).
    pub parent: String,
    pub keyids: Vec<String>,
    pub threshold: u64,
    pub paths: Option<Vec<String>>,
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Keys listed for the role (parsed); expiry of x509 certificates is tracked from them.
    pub keys: BTreeMap<String, PublicKey>,
    pub outcome: DelegationOutcome,
}

#[derive(Debug, Clone)]
pub enum DelegationOutcome {
    Verified(Box<Verified<Targets>>),
    /// Listed in targets but no file is listed in the snapshot: it has signed nothing.
    Unpublished,
    /// The role's file failed a check, or (`TufError::DelegatorFailed`) the role that
    /// delegates it did: the role counts as not having signed anything, and is not removed.
    Failed(TufError),
}

/// A role we trusted earlier that is no longer delegated: the basis of `SignerRevoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedSigner {
    pub role: String,
    pub keyids: Vec<String>,
    /// Target name -> sha256 hex the role had signed when last verified (empty after a
    /// restart, when only the role name was remembered).
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
}

/// What must survive a restart: the highest trusted version of each role (rollback
/// protection) and the signers seen (revocation detection).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustMemory {
    #[serde(default)]
    pub versions: BTreeMap<String, u64>,
    /// Delegation role -> key IDs authorized when last verified.
    #[serde(default)]
    pub signers: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    pub removed: BTreeMap<String, RemovedSigner>,
}

/// The verified trust data of one repository.
#[derive(Debug, Clone)]
pub struct TrustedRepo {
    pub gun: String,
    pub root: Verified<Root>,
    pub timestamp: Verified<Snapshot>,
    pub snapshot: Verified<Snapshot>,
    pub targets: Verified<Targets>,
    /// Keys of the top-level roles, parsed from the trusted root.
    pub root_keys: BTreeMap<String, PublicKey>,
    pub delegations: BTreeMap<String, DelegationState>,
    /// Delegation roles trusted earlier and no longer delegated.
    pub removed: BTreeMap<String, RemovedSigner>,
    /// Versions trusted before this state (persisted memory and the previous state), so a role
    /// that fails or cannot be reached this time keeps its rollback protection.
    pub remembered: BTreeMap<String, u64>,
    /// Signatures found valid for this state's documents ([`super::metadata::SignatureMemo`]):
    /// the next update of unchanged documents checks them without a public-key operation.
    pub signatures: std::collections::BTreeSet<[u8; 32]>,
}

/// An expiry of something the chain depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expiry {
    /// `root`, `targets`, `snapshot`, `timestamp`, `targets/<name>`, or `<role> certificate`.
    pub role: String,
    pub expires: Timestamp,
    /// The server re-signs it (timestamp, snapshot): only an actual expiry matters.
    pub server_managed: bool,
}

impl TrustedRepo {
    /// Versions to persist, for rollback protection across restarts.
    pub fn memory(&self) -> TrustMemory {
        let mut versions = BTreeMap::from([
            ("root".to_string(), self.root.doc.signed.version),
            ("timestamp".to_string(), self.timestamp.doc.signed.version),
            ("snapshot".to_string(), self.snapshot.doc.signed.version),
            ("targets".to_string(), self.targets.doc.signed.version),
        ]);
        let mut signers = BTreeMap::new();
        for (name, d) in &self.delegations {
            if let DelegationOutcome::Verified(v) = &d.outcome {
                versions.insert(name.clone(), v.doc.signed.version);
            }
            signers.insert(name.clone(), d.keyids.iter().cloned().collect());
        }
        // A role still delegated (verified or not this time) keeps the highest version ever
        // trusted; a removed role is forgotten, so that it may be delegated afresh.
        for (role, v) in &self.remembered {
            let top = matches!(role.as_str(), "root" | "timestamp" | "snapshot" | "targets");
            if top || self.delegations.contains_key(role) {
                let e = versions.entry(role.clone()).or_insert(*v);
                *e = (*e).max(*v);
            }
        }
        TrustMemory { versions, signers, removed: self.removed.clone() }
    }

    /// Every expiry in the chain: metadata of each role and the certificates of the keys
    /// that sign root, targets and the delegations.
    pub fn expiries(&self) -> Vec<Expiry> {
        let mut out = vec![
            Expiry { role: "root".into(), expires: self.root.doc.expires, server_managed: false },
            Expiry { role: "targets".into(), expires: self.targets.doc.expires, server_managed: false },
            Expiry { role: "snapshot".into(), expires: self.snapshot.doc.expires, server_managed: true },
            Expiry { role: "timestamp".into(), expires: self.timestamp.doc.expires, server_managed: true },
        ];
        for role in ["root", "targets"] {
            if let Some(rk) = self.root.doc.signed.roles.get(role) {
                for id in &rk.keyids {
                    if let Some(t) = self.root_keys.get(id).and_then(|k| k.cert_not_after) {
                        out.push(Expiry { role: format!("{role} certificate"), expires: t, server_managed: false });
                    }
                }
            }
        }
        for (name, d) in &self.delegations {
            if let DelegationOutcome::Verified(v) = &d.outcome {
                out.push(Expiry { role: name.clone(), expires: v.doc.expires, server_managed: false });
            }
            for k in d.keys.values() {
                if let Some(t) = k.cert_not_after {
                    out.push(Expiry { role: format!("{name} certificate"), expires: t, server_managed: false });
                }
            }
        }
        out
    }
}
