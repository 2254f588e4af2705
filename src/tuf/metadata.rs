//! Notary v1 metadata documents and the pure checks applied to them.

use super::cjson::to_canonical;
use super::error::TufError;
use super::keys::{KeyDoc, PublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use std::collections::{BTreeMap, BTreeSet};

/// Size limits for documents whose length is not listed by a parent role.
pub mod limits {
    pub const ROOT: u64 = 512 * 1024;
    pub const TIMESTAMP: u64 = 64 * 1024;
    /// Upper bound on any listed length: a parent may not make us read more than this.
    pub const MAX_LISTED: u64 = 32 * 1024 * 1024;
    pub const MAX_ROOT_ROTATIONS: u64 = 256;
    pub const MAX_DELEGATIONS: usize = 256;
    pub const MAX_DELEGATION_DEPTH: usize = 8;
    /// What all documents of one repository together may hold (root, timestamp, snapshot,
    /// targets and every delegation): 256 delegations of a few KiB are a large repository;
    /// 256 of 32 MiB would be an attack on the verifier's memory.
    pub const REPOSITORY_BUDGET: u64 = 64 * 1024 * 1024;
}

/// Go's `encoding/json` writes nil slices and maps as `null` (notary does so after a
/// delegation or its last key is removed): read `null` as empty.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub signed: serde_json::Value,
    #[serde(default, deserialize_with = "null_as_default")]
    pub signatures: Vec<SignatureDoc>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SignatureDoc {
    pub keyid: String,
    pub method: String,
    pub sig: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct RoleKeys {
    #[serde(default, deserialize_with = "null_as_default")]
    pub keyids: Vec<String>,
    pub threshold: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub typ: String,
    pub version: u64,
    pub expires: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub keys: BTreeMap<String, KeyDoc>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: BTreeMap<String, RoleKeys>,
    #[serde(default)]
    pub consistent_snapshot: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct FileMeta {
    pub hashes: BTreeMap<String, String>,
    pub length: u64,
}

/// Snapshot and timestamp documents (a timestamp's `meta` lists only `snapshot`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub typ: String,
    pub version: u64,
    pub expires: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub meta: BTreeMap<String, FileMeta>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct DelegatedRole {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub keyids: Vec<String>,
    pub threshold: u64,
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub path_hash_prefixes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Delegations {
    #[serde(default, deserialize_with = "null_as_default")]
    pub keys: BTreeMap<String, KeyDoc>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<DelegatedRole>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub typ: String,
    pub version: u64,
    pub expires: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub targets: BTreeMap<String, FileMeta>,
    #[serde(default)]
    pub delegations: Option<Delegations>,
}

/// Common accessors of signed role documents.
pub trait Role: DeserializeOwned {
    const TYPE: &'static str;
    fn typ(&self) -> &str;
    fn version(&self) -> u64;
    fn expires(&self) -> &str;
}

macro_rules! role {
    ($t:ty, $name:literal) => {
        impl Role for $t {
            const TYPE: &'static str = $name;
            fn typ(&self) -> &str {
                &self.typ
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> &str {
                &self.expires
            }
        }
    };
}
role!(Root, "Root");
role!(Targets, "Targets");
role!(Snapshot, "Snapshot");

/// A parsed document together with the bytes its signatures cover.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    pub role: String,
    pub signed: T,
    pub canonical: Vec<u8>,
    pub signatures: Vec<SignatureDoc>,
    pub expires: Timestamp,
}

/// Parses a downloaded document of role `role`, refusing bodies over `limit` bytes.
pub fn parse<T: Role>(role: &str, bytes: &[u8], limit: u64, expected_type: &str) -> Result<Parsed<T>, TufError> {
    if bytes.len() as u64 > limit {
        return Err(TufError::TooLarge { role: role.into(), size: bytes.len() as u64, limit });
    }
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| TufError::Malformed { role: role.into(), detail: e.to_string() })?;
    let typ = env.signed.get("_type").and_then(|t| t.as_str()).unwrap_or_default().to_string();
    if typ != expected_type {
        return Err(TufError::WrongType { role: role.into(), expected: expected_type.into(), found: typ });
    }
    let canonical = to_canonical(&env.signed).map_err(|detail| TufError::Malformed { role: role.into(), detail })?;
    let signed: T = serde_json::from_value(env.signed)
        .map_err(|e| TufError::Malformed { role: role.into(), detail: e.to_string() })?;
    let expires = parse_time(signed.expires()).map_err(|detail| TufError::Malformed { role: role.into(), detail })?;
    Ok(Parsed { role: role.into(), signed, canonical, signatures: env.signatures, expires })
}

pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|e| format!("invalid expires {s:?}: {e}"))
}

/// The outcome of counting signatures against a role's authorized keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCount {
    /// Distinct authorized key IDs with a valid signature.
    pub valid: BTreeSet<String>,
    /// Authorized keys whose signature did not verify.
    pub invalid: BTreeSet<String>,
    /// Key IDs that signed but are not (or no longer) authorized for the role, or are revoked.
    pub unauthorized: BTreeSet<String>,
    /// The public key (SPKI DER) behind each ID in `valid`: one key may be listed under
    /// several IDs (its certificate form and its bare form).
    pub public_keys: BTreeMap<String, Vec<u8>>,
}

impl SignatureCount {
    /// TUF 5.3.4: "When computing the THRESHOLD each KEY MUST only contribute one SIGNATURE."
    /// A key ID only names a key, and one key listed under its x509 ID and its bare-key ID
    /// would otherwise sign once under each name: count distinct public keys.
    pub fn distinct_keys(&self) -> u64 {
        let keys: BTreeSet<&[u8]> =
            self.valid.iter().map(|id| self.public_keys.get(id).map(Vec::as_slice).unwrap_or(id.as_bytes())).collect();
        keys.len() as u64
    }

    /// Drops a key ID from the valid signatures (a key not usable now).
    pub fn discount(&mut self, id: &str) {
        self.valid.remove(id);
        self.public_keys.remove(id);
    }
}

/// Signature verifications (public-key operations) done by this process, all repositories
/// together: what benchmarks read to tell signature work from cache hits. A counter, not
/// state: nothing reads it to decide anything.
static SIGNATURE_VERIFICATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many signatures this process has verified so far (see [`count_signatures`]).
pub fn signature_verifications() -> u64 {
    SIGNATURE_VERIFICATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Signatures already found valid, each recorded as the SHA-256 of (key ID, key type, public
/// key, method, signature, SHA-256 of the signed canonical bytes).
///
/// TUF 4.2 (file formats): "SIGNATURE is a signature of the canonical JSON form of ROLE", by
/// the key "KEYID [...] signing the ROLE dictionary": whether one signature is valid is a
/// function of the key, the signature and the canonical bytes alone, so an entry stands for
/// the public-key operation it records. A document that changed in any byte of its signed part
/// has other canonical bytes and so another entry: it is verified again. The digest of the
/// canonical bytes is SHA-256, the hash every supported signature scheme already signs, so the
/// memo adds no collision it does not already rely on. Everything else the threshold rules
/// depend on (5.4.2, 5.5.3, 5.6.3: "signed by a threshold of keys specified in the trusted
/// root metadata file"; which keys are authorized now, revoked key IDs, certificate validity
/// at `now`, 5.3.4's one signature per key, the threshold itself) is judged afresh by every
/// check. Only valid signatures are recorded; an invalid one is verified (and fails) each time.
/// An update starts from the previous state's entries and keeps only those it used or added,
/// so the set stays as small as the signatures of the documents trusted now. It lives in
/// memory only (never persisted), so it is not an input an attacker could write.
#[derive(Debug, Default)]
pub struct SignatureMemo {
    known: BTreeSet<[u8; 32]>,
    used: std::sync::Mutex<BTreeSet<[u8; 32]>>,
}

impl SignatureMemo {
    pub fn new(known: BTreeSet<[u8; 32]>) -> SignatureMemo {
        SignatureMemo { known, used: Default::default() }
    }

    /// The entries this update used or added (for the state it returns).
    pub fn used(&self) -> BTreeSet<[u8; 32]> {
        self.used.lock().expect("signature memo poisoned").clone()
    }

    fn entry(key: &PublicKey, method: &str, sig: &[u8], message_digest: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        let parts = [
            key.id.as_bytes(),
            key.keytype.as_bytes(),
            key.spki_der.as_slice(),
            method.as_bytes(),
            sig,
            message_digest,
        ];
        for part in parts {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// Verifies `sig` over `message` with `key`, or finds that this exact signature was valid.
    fn verify(&self, key: &PublicKey, method: &str, sig: &[u8], message: &[u8], message_digest: &[u8]) -> bool {
        let entry = Self::entry(key, method, sig, message_digest);
        let mut used = self.used.lock().expect("signature memo poisoned");
        if self.known.contains(&entry) || used.contains(&entry) {
            used.insert(entry);
            return true;
        }
        drop(used);
        SIGNATURE_VERIFICATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = key.verify(method, sig, message);
        if ok {
            self.used.lock().expect("signature memo poisoned").insert(entry);
        }
        ok
    }
}

/// Whether the operator revoked `key` by either of its IDs: the one listed in metadata (over the
/// certificate for x509 keys) or the one over the bare public key, which the notary CLI shows.
pub fn is_revoked(key: &PublicKey, revoked: &BTreeSet<String>) -> bool {
    revoked.contains(&key.id) || revoked.contains(&key.canonical_id)
}

/// Counts signatures over `canonical` from `authorized` keys; `revoked` key IDs never count.
/// With a memo, a signature it records as valid is not verified again.
pub fn count_signatures(
    canonical: &[u8],
    signatures: &[SignatureDoc],
    authorized: &BTreeMap<String, PublicKey>,
    revoked: &BTreeSet<String>,
    memo: Option<&SignatureMemo>,
) -> SignatureCount {
    let digest = memo.map(|_| Sha256::digest(canonical));
    let mut out = SignatureCount {
        valid: BTreeSet::new(),
        invalid: BTreeSet::new(),
        unauthorized: BTreeSet::new(),
        public_keys: BTreeMap::new(),
    };
    for sig in signatures {
        let Some(key) = authorized.get(&sig.keyid) else {
            out.unauthorized.insert(sig.keyid.clone());
            continue;
        };
        if is_revoked(key, revoked) {
            out.unauthorized.insert(sig.keyid.clone());
            continue;
        }
        let ok = B64
            .decode(sig.sig.as_bytes())
            .map(|raw| match (memo, &digest) {
                (Some(m), Some(d)) => m.verify(key, &sig.method, &raw, canonical, d),
                _ => {
                    SIGNATURE_VERIFICATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    key.verify(&sig.method, &raw, canonical)
                }
            })
            .unwrap_or(false);
        if ok {
            out.valid.insert(key.id.clone());
            out.public_keys.insert(key.id.clone(), key.spki_der.clone());
        } else {
            out.invalid.insert(key.id.clone());
        }
    }
    out.invalid.retain(|k| !out.valid.contains(k));
    out
}

/// Checks a role's signature threshold. A role that falls short only because its signers
/// are no longer authorized (no authorized key produced a bad signature) is reported as
/// signed by revoked keys, so callers can tell revocation from forgery.
pub fn check_threshold(role: &str, count: &SignatureCount, threshold: u64) -> Result<(), TufError> {
    if threshold == 0 {
        return Err(TufError::InvalidMetadata { role: role.into(), detail: "threshold is 0".into() });
    }
    let valid = count.distinct_keys();
    if valid >= threshold {
        return Ok(());
    }
    if valid == 0 && count.invalid.is_empty() && !count.unauthorized.is_empty() {
        return Err(TufError::SignedByRevokedKeys {
            role: role.into(),
            keyids: count.unauthorized.iter().cloned().collect(),
        });
    }
    Err(TufError::SignatureThreshold {
        role: role.into(),
        threshold,
        valid,
        unauthorized_keyids: count.unauthorized.iter().cloned().collect(),
    })
}

/// Parses the keys a role lists; keys that fail to parse are reported, keys not listed are
/// ignored.
pub fn load_keys(
    role: &str,
    keys: &BTreeMap<String, KeyDoc>,
    keyids: &[String],
) -> Result<BTreeMap<String, PublicKey>, TufError> {
    let mut out = BTreeMap::new();
    for id in keyids {
        let Some(doc) = keys.get(id) else {
            // A key ID with no key cannot sign; it only lowers what is achievable.
            continue;
        };
        let key = parsed_key(id, doc)
            .map_err(|detail| TufError::InvalidKey { keyid: id.clone(), detail: format!("{role}: {detail}") })?;
        out.insert(id.clone(), key);
    }
    Ok(out)
}

/// Keys parsed before, by the exact listed ID, key type and public value they were parsed
/// from: [`PublicKey::from_doc`] is a function of those alone (certificate parsing, the
/// computed key ID checked against the listed one), and every update of every repository
/// parses the same root keys again. At most this many; cleared when full.
const MAX_PARSED_KEYS: usize = 4096;

type ParsedKeys = std::collections::HashMap<(String, String, String), PublicKey>;

static PARSED_KEYS: std::sync::LazyLock<std::sync::Mutex<ParsedKeys>> = std::sync::LazyLock::new(Default::default);

fn parsed_key(id: &str, doc: &KeyDoc) -> Result<PublicKey, String> {
    let memo_key = (id.to_string(), doc.keytype.clone(), doc.keyval.public.clone());
    if let Some(k) = PARSED_KEYS.lock().expect("key memo poisoned").get(&memo_key) {
        return Ok(k.clone());
    }
    let key = PublicKey::from_doc(id, doc)?;
    let mut memo = PARSED_KEYS.lock().expect("key memo poisoned");
    if memo.len() >= MAX_PARSED_KEYS {
        memo.clear();
    }
    memo.insert(memo_key, key.clone());
    Ok(key)
}

/// Checks the raw bytes against the length and hashes a parent lists for them.
/// Every listed hash we know (sha256, sha512) must match; at least one must be known.
pub fn check_file_meta(role: &str, listed_in: &str, bytes: &[u8], meta: &FileMeta) -> Result<(), TufError> {
    if bytes.len() as u64 != meta.length {
        return Err(TufError::LengthMismatch {
            role: role.into(),
            listed_in: listed_in.into(),
            expected: meta.length,
            found: bytes.len() as u64,
        });
    }
    let mut known = 0;
    for (alg, expected) in &meta.hashes {
        let found = match alg.as_str() {
            "sha256" => B64.encode(Sha256::digest(bytes)),
            "sha512" => B64.encode(Sha512::digest(bytes)),
            _ => continue,
        };
        known += 1;
        if &found != expected {
            return Err(TufError::HashMismatch {
                role: role.into(),
                listed_in: listed_in.into(),
                algorithm: alg.clone(),
                expected: expected.clone(),
                found,
            });
        }
    }
    if known == 0 {
        return Err(TufError::NoHash { role: role.into(), listed_in: listed_in.into() });
    }
    Ok(())
}

pub fn check_expiry<T>(doc: &Parsed<T>, now: Timestamp) -> Result<(), TufError> {
    if doc.expires <= now {
        return Err(TufError::Expired { role: doc.role.clone(), expires: doc.expires.to_string() });
    }
    Ok(())
}

pub fn check_rollback(role: &str, trusted: Option<u64>, new: u64) -> Result<(), TufError> {
    match trusted {
        Some(t) if new < t => Err(TufError::Rollback { role: role.into(), trusted: t, new }),
        _ => Ok(()),
    }
}

/// The sha256 of a target, hex encoded (`sha256:<hex>` is the image digest form).
pub fn target_sha256_hex(meta: &FileMeta) -> Option<String> {
    let b = B64.decode(meta.hashes.get("sha256")?.as_bytes()).ok()?;
    (b.len() == 32).then(|| hex::encode(b))
}

/// TUF delegation path matching as Notary does it: `paths` entries are prefixes of the target
/// name (`""` matches everything); `path_hash_prefixes` are prefixes of the hex sha256 of the
/// target name. A role with neither matches nothing.
pub fn delegation_matches(role: &DelegatedRole, target: &str) -> bool {
    if let Some(paths) = &role.paths {
        if paths.iter().any(|p| target.starts_with(p.as_str())) {
            return true;
        }
    }
    if let Some(prefixes) = &role.path_hash_prefixes {
        let h = hex::encode(Sha256::digest(target.as_bytes()));
        if prefixes.iter().any(|p| h.starts_with(p.as_str())) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_for(bytes: &[u8]) -> FileMeta {
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".into(), B64.encode(Sha256::digest(bytes)));
        hashes.insert("sha512".into(), B64.encode(Sha512::digest(bytes)));
        FileMeta { hashes, length: bytes.len() as u64 }
    }

    #[test]
    fn file_meta_accepts_matching_bytes_and_flags_one_flipped_bit() {
        let body = b"{\"signed\":{}}".to_vec();
        let meta = meta_for(&body);
        check_file_meta("snapshot", "timestamp", &body, &meta).unwrap();
        let mut flipped = body.clone();
        flipped[3] ^= 1;
        let err = check_file_meta("snapshot", "timestamp", &flipped, &meta).unwrap_err();
        assert!(matches!(err, TufError::HashMismatch { .. }), "{err:?}");
        let err = check_file_meta("snapshot", "timestamp", b"x", &meta).unwrap_err();
        assert!(matches!(err, TufError::LengthMismatch { expected: 13, found: 1, .. }), "{err:?}");
    }

    #[test]
    fn file_meta_without_a_known_hash_is_refused() {
        let meta = FileMeta { hashes: BTreeMap::from([("md5".into(), "x".into())]), length: 1 };
        assert!(matches!(check_file_meta("t", "s", b"x", &meta), Err(TufError::NoHash { .. })));
    }

    #[test]
    fn oversized_and_malformed_documents_are_refused_before_use() {
        let err = parse::<Targets>("targets", &[b' '; 100], 10, "Targets").unwrap_err();
        assert!(matches!(err, TufError::TooLarge { size: 100, limit: 10, .. }));
        let err = parse::<Targets>("targets", b"{not json", 100, "Targets").unwrap_err();
        assert!(matches!(err, TufError::Malformed { .. }));
        let err =
            parse::<Targets>("targets", br#"{"signed":{"_type":"Root"},"signatures":[]}"#, 100, "Targets").unwrap_err();
        assert!(matches!(err, TufError::WrongType { .. }), "{err:?}");
    }

    #[test]
    fn go_nil_slices_written_as_null_read_as_empty() {
        let body = br#"{"signed":{"_type":"Targets","version":3,"expires":"2030-01-01T00:00:00Z","targets":null,
            "delegations":{"keys":null,"roles":[{"name":"targets/releases","keyids":null,"threshold":1,"paths":[""]}]}},
            "signatures":null}"#;
        let t = parse::<Targets>("targets", body, 10_000, "Targets").unwrap();
        assert!(t.signed.targets.is_empty() && t.signatures.is_empty());
        assert!(t.signed.delegations.unwrap().roles[0].keyids.is_empty());
    }

    #[test]
    fn rollback_is_refused_and_equal_versions_pass() {
        assert!(check_rollback("snapshot", Some(5), 5).is_ok());
        assert!(check_rollback("snapshot", None, 1).is_ok());
        assert_eq!(
            check_rollback("snapshot", Some(5), 4),
            Err(TufError::Rollback { role: "snapshot".into(), trusted: 5, new: 4 })
        );
    }

    #[test]
    fn threshold_distinguishes_revoked_signers_from_forgery() {
        let mut c = SignatureCount {
            valid: BTreeSet::new(),
            invalid: BTreeSet::new(),
            unauthorized: BTreeSet::from(["k1".to_string()]),
            public_keys: BTreeMap::new(),
        };
        assert!(matches!(check_threshold("targets/releases", &c, 1), Err(TufError::SignedByRevokedKeys { .. })));
        c.invalid.insert("k2".into());
        assert!(matches!(
            check_threshold("targets/releases", &c, 1),
            Err(TufError::SignatureThreshold { valid: 0, .. })
        ));
        c.valid.insert("k3".into());
        assert!(check_threshold("targets/releases", &c, 1).is_ok());
        assert!(check_threshold("targets/releases", &c, 2).is_err());
    }

    #[test]
    fn one_public_key_under_two_key_ids_counts_once() {
        let c = SignatureCount {
            valid: BTreeSet::from(["x509-id".to_string(), "bare-id".to_string(), "other".to_string()]),
            invalid: BTreeSet::new(),
            unauthorized: BTreeSet::new(),
            public_keys: BTreeMap::from([
                ("x509-id".to_string(), b"alice".to_vec()),
                ("bare-id".to_string(), b"alice".to_vec()),
                ("other".to_string(), b"bob".to_vec()),
            ]),
        };
        assert_eq!(c.distinct_keys(), 2);
        assert!(check_threshold("targets/releases", &c, 2).is_ok());
        assert!(matches!(
            check_threshold("targets/releases", &c, 3),
            Err(TufError::SignatureThreshold { valid: 2, threshold: 3, .. })
        ));
    }

    #[test]
    fn delegation_paths_are_prefixes_and_empty_string_matches_all() {
        let mut r = DelegatedRole {
            name: "targets/a".into(),
            keyids: vec![],
            threshold: 1,
            paths: Some(vec!["".into()]),
            path_hash_prefixes: None,
        };
        assert!(delegation_matches(&r, "v1"));
        r.paths = Some(vec!["release-".into()]);
        assert!(delegation_matches(&r, "release-1"));
        assert!(!delegation_matches(&r, "v1"));
        r.paths = None;
        assert!(!delegation_matches(&r, "v1"));
    }

    fn ed25519(seed: u8) -> (ed25519_dalek::SigningKey, PublicKey) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let public = B64.encode(sk.verifying_key().to_bytes());
        let doc = KeyDoc {
            keytype: "ed25519".into(),
            keyval: super::super::keys::KeyVal { public: public.clone(), private: None },
        };
        let key = PublicKey::from_doc(&super::super::keys::key_id("ed25519", &public), &doc).unwrap();
        (sk, key)
    }

    fn sign(sk: &ed25519_dalek::SigningKey, key: &PublicKey, msg: &[u8]) -> SignatureDoc {
        use ed25519_dalek::Signer as _;
        SignatureDoc { keyid: key.id.clone(), method: "eddsa".into(), sig: B64.encode(sk.sign(msg).to_bytes()) }
    }

    #[test]
    fn the_signature_memo_answers_only_for_the_exact_key_signature_and_canonical_bytes() {
        let (sk, key) = ed25519(7);
        let (_, other) = ed25519(8);
        let doc = br#"{"_type":"Timestamp","version":1}"#.to_vec();
        let authorized = BTreeMap::from([(key.id.clone(), key.clone()), (other.id.clone(), other.clone())]);
        let none = BTreeSet::new();

        // A valid signature verified once is recorded; an invalid one never is.
        let good = sign(&sk, &key, &doc);
        let bad = SignatureDoc { sig: B64.encode([0u8; 64]), ..good.clone() };
        let memo = SignatureMemo::default();
        let count = count_signatures(&doc, &[good.clone(), bad.clone()], &authorized, &none, Some(&memo));
        assert_eq!(count.valid, BTreeSet::from([key.id.clone()]));
        let recorded = memo.used();
        assert_eq!(
            recorded,
            BTreeSet::from([SignatureMemo::entry(
                &key,
                "eddsa",
                &B64.decode(&good.sig).unwrap(),
                &Sha256::digest(&doc)
            )])
        );

        // What the memo holds is taken without a public-key operation: an entry planted for
        // the all-zero signature makes it count (this is what proves the memo is consulted).
        let zero = B64.decode(&bad.sig).unwrap();
        let planted = BTreeSet::from([SignatureMemo::entry(&key, "eddsa", &zero, &Sha256::digest(&doc))]);
        let memo = SignatureMemo::new(planted.clone());
        let count = count_signatures(&doc, std::slice::from_ref(&bad), &authorized, &none, Some(&memo));
        assert_eq!(count.valid, BTreeSet::from([key.id.clone()]));

        // One changed byte of the signed document: another entry, so verified again (and the
        // planted signature, which is not a signature of anything, fails).
        let mut changed = doc.clone();
        let last = changed.len() - 2;
        changed[last] = b'2';
        let memo = SignatureMemo::new(planted.clone());
        let count = count_signatures(&changed, std::slice::from_ref(&bad), &authorized, &none, Some(&memo));
        assert!(count.valid.is_empty() && count.invalid.contains(&key.id), "{count:?}");
        // The genuine signature of the old document does not carry over to the new one either.
        let memo = SignatureMemo::new(recorded.clone());
        let count = count_signatures(&changed, std::slice::from_ref(&good), &authorized, &none, Some(&memo));
        assert!(count.valid.is_empty(), "{count:?}");

        // The same signature bytes presented under another key ID are that key's to verify.
        let as_other = SignatureDoc { keyid: other.id.clone(), ..bad.clone() };
        let memo = SignatureMemo::new(planted.clone());
        let count = count_signatures(&doc, &[as_other], &authorized, &none, Some(&memo));
        assert!(count.valid.is_empty() && count.invalid.contains(&other.id), "{count:?}");

        // A revoked key never counts, whatever the memo holds; nor a key the role no longer
        // authorizes.
        let memo = SignatureMemo::new(recorded.clone());
        let revoked = BTreeSet::from([key.id.clone()]);
        let count = count_signatures(&doc, std::slice::from_ref(&good), &authorized, &revoked, Some(&memo));
        assert!(count.valid.is_empty() && count.unauthorized.contains(&key.id), "{count:?}");
        let only_other = BTreeMap::from([(other.id.clone(), other.clone())]);
        let count = count_signatures(&doc, std::slice::from_ref(&good), &only_other, &none, Some(&memo));
        assert!(count.valid.is_empty() && count.unauthorized.contains(&key.id), "{count:?}");

        // An update keeps only the entries it used: a memo seeded with more returns less.
        let memo = SignatureMemo::new(recorded.iter().cloned().chain(planted.iter().cloned()).collect());
        count_signatures(&doc, std::slice::from_ref(&good), &authorized, &none, Some(&memo));
        assert_eq!(memo.used(), recorded);
    }
}
