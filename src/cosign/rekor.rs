//! Rekor transparency log entries, verified offline: the signed entry timestamp (SET, the
//! log's "inclusion promise") with a pinned log key, and the entry body matched against the
//! signature it is for.

use super::keys::{CosignKey, LogKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A log entry with its promise, from either layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The canonicalized entry body, base64 as Rekor returns it (and signs it).
    pub body_b64: String,
    pub integrated_time: i64,
    pub log_index: i64,
    /// Hex SHA-256 of the log's public key.
    pub log_id: String,
    pub signed_entry_timestamp: Vec<u8>,
}

fn int(v: Option<&Value>, what: &str) -> Result<i64, String> {
    // The bundle's protobuf JSON writes int64 as strings; cosign's annotation as numbers.
    match v {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("{what} is not an integer")),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("{what} is not an integer")),
        _ => Err(format!("no {what}")),
    }
}

fn b64(v: Option<&Value>, what: &str) -> Result<Vec<u8>, String> {
    let s = v.and_then(Value::as_str).ok_or_else(|| format!("no {what}"))?;
    B64.decode(s.trim()).map_err(|_| format!("{what} is not base64"))
}

/// cosign's classic `dev.sigstore.cosign/bundle` annotation: `{"SignedEntryTimestamp": b64,
/// "Payload": {"body", "integratedTime", "logIndex", "logID"}}`.
pub fn parse_classic_bundle(text: &str) -> Result<LogEntry, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("the bundle annotation is not JSON: {e}"))?;
    let p = v.get("Payload").ok_or("the bundle annotation has no Payload")?;
    let body_b64 = p.get("body").and_then(Value::as_str).ok_or("no Payload.body")?.to_string();
    Ok(LogEntry {
        body_b64,
        integrated_time: int(p.get("integratedTime"), "Payload.integratedTime")?,
        log_index: int(p.get("logIndex"), "Payload.logIndex")?,
        log_id: p.get("logID").and_then(Value::as_str).ok_or("no Payload.logID")?.to_ascii_lowercase(),
        signed_entry_timestamp: b64(v.get("SignedEntryTimestamp"), "SignedEntryTimestamp")?,
    })
}

/// An inclusion proof of a bundle's log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    /// "sorted in order from leaf to root".
    pub hashes: Vec<Vec<u8>>,
    /// The signed note of the tree head.
    pub checkpoint: String,
}

/// A Sigstore bundle `TransparencyLogEntry` (protobuf JSON form): the entry (its
/// `signed_entry_timestamp` empty when the bundle has no inclusion promise, as Rekor v2
/// entries have none) and its inclusion proof, when present.
pub fn parse_bundle_entry(v: &Value) -> Result<(LogEntry, Option<InclusionProof>), String> {
    let body = b64(v.get("canonicalizedBody"), "canonicalizedBody")?;
    let log_id = b64(v.get("logId").and_then(|l| l.get("keyId")), "logId.keyId")?;
    // Protobuf JSON may write an absent message as `null` (sigstore-js bundles of 2023 do).
    let present = |k: &str| v.get(k).filter(|p| !p.is_null());
    let set = match present("inclusionPromise") {
        Some(p) => b64(p.get("signedEntryTimestamp"), "inclusionPromise.signedEntryTimestamp")?,
        None => vec![],
    };
    let proof = match present("inclusionProof") {
        Some(p) => {
            let index = int(p.get("logIndex"), "inclusionProof.logIndex")?;
            let size = int(p.get("treeSize"), "inclusionProof.treeSize")?;
            let mut hashes = vec![];
            for h in p.get("hashes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
                hashes.push(b64(Some(h), "inclusionProof.hashes[]")?);
            }
            let checkpoint = p
                .get("checkpoint")
                .and_then(|c| c.get("envelope"))
                .and_then(Value::as_str)
                .ok_or("no inclusionProof.checkpoint.envelope")?
                .to_string();
            Some(InclusionProof {
                log_index: u64::try_from(index).map_err(|_| "negative inclusionProof.logIndex")?,
                tree_size: u64::try_from(size).map_err(|_| "negative inclusionProof.treeSize")?,
                root_hash: b64(p.get("rootHash"), "inclusionProof.rootHash")?,
                hashes,
                checkpoint,
            })
        }
        None => None,
    };
    let entry = LogEntry {
        body_b64: B64.encode(body),
        integrated_time: v.get("integratedTime").map(|t| int(Some(t), "integratedTime")).transpose()?.unwrap_or(0),
        log_index: int(v.get("logIndex"), "logIndex")?,
        log_id: hex::encode(log_id),
        signed_entry_timestamp: set,
    };
    Ok((entry, proof))
}

fn node(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// RFC 6962 leaf hash: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2, "Verifying an Inclusion Proof"):
/// "1. Compare leaf_index from the inclusion_proof_v2 structure against tree_size. If
/// leaf_index is greater than or equal to tree_size, then fail the proof verification.
/// 2. Set fn to leaf_index and sn to tree_size - 1. 3. Set r to hash. 4. For each value p in
/// the inclusion_path array: a. If sn is 0, then stop the iteration and fail the proof
/// verification. b. If LSB(fn) is set, or if fn is equal to sn, then: i. Set r to HASH(0x01 ||
/// p || r). ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
/// LSB(fn) is set or fn is 0. Otherwise: i. Set r to HASH(0x01 || r || p). c. Finally,
/// right-shift both fn and sn one time. 5. Compare sn to 0. Compare r against the root_hash.
/// If sn is equal to 0 and r and the root_hash are equal, then the log has proven the
/// inclusion of hash. Otherwise, fail the proof verification."
pub fn verify_inclusion(leaf: [u8; 32], index: u64, tree_size: u64, path: &[Vec<u8>], root: &[u8]) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut f, mut s) = (index, tree_size - 1);
    let mut r = leaf;
    for p in path {
        if s == 0 || p.len() != 32 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r[..] == root[..]
}

/// Verifies a bundle entry's inclusion proof: the entry's leaf is in the tree whose head the
/// checkpoint states, and the checkpoint is signed by the entry's (pinned) log.
///
/// The checkpoint is a signed note (transparency-dev formats, `log/README.md`): the body
/// lines "origin", "tree size" (decimal), "root hash" (base64), optional further lines, then
/// a blank line and signature lines `— <name> <base64(4-byte key hint || signature)>`; the
/// signature is over the body including its final newline.
pub fn verify_inclusion_proof(e: &LogEntry, p: &InclusionProof, logs: &[LogKey]) -> Result<(), String> {
    let log = logs
        .iter()
        .find(|l| l.log_id == e.log_id)
        .ok_or_else(|| format!("the entry is from log {}, which is not a pinned log", e.log_id))?;
    // The proof's index is the entry's position in the tree the checkpoint heads (Rekor v1
    // counts it within the log shard, so it may differ from the global `logIndex`).
    let body = B64.decode(&e.body_b64).map_err(|_| "the entry body is not base64".to_string())?;
    if !verify_inclusion(leaf_hash(&body), p.log_index, p.tree_size, &p.hashes, &p.root_hash) {
        return Err("the inclusion proof does not lead to its root hash".into());
    }
    let (text, sigs) = p.checkpoint.split_once("\n\n").ok_or("the checkpoint has no signature block")?;
    let text = format!("{text}\n");
    let mut lines = text.lines();
    let (_origin, size, root) = (lines.next(), lines.next(), lines.next());
    if size != Some(p.tree_size.to_string().as_str()) || root != Some(B64.encode(&p.root_hash).as_str()) {
        return Err("the checkpoint states another tree head than the proof".into());
    }
    let hint = &log.key.key_id()[..4];
    let signed = sigs.lines().any(|l| {
        let Some(rest) = l.strip_prefix("\u{2014} ") else { return false };
        let Some((_, sig)) = rest.rsplit_once(' ') else { return false };
        match B64.decode(sig) {
            Ok(raw) if raw.len() > 4 && &raw[..4] == hint => log.key.verify(text.as_bytes(), &raw[4..]),
            _ => false,
        }
    });
    if !signed {
        return Err(format!("the checkpoint is not signed by log key {:?}", log.key.name));
    }
    Ok(())
}

/// The bytes the SET signs.
///
/// protobuf-specs `InclusionPromise`: "calculated as a signature over a canonical JSON
/// serialization of the persisted entry, the log ID, log index and the integration
/// timestamp", i.e. of `{"body", "integratedTime", "logID", "logIndex"}` (keys sorted, no
/// whitespace; the values are base64, hex and integers, which need no escaping).
pub fn set_payload(e: &LogEntry) -> Vec<u8> {
    let s = |v: &str| serde_json::to_string(v).expect("a string serializes");
    format!(
        r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
        s(&e.body_b64),
        e.integrated_time,
        s(&e.log_id),
        e.log_index
    )
    .into_bytes()
}

/// Verifies the promise with the pinned log whose ID the entry names, and that the entry
/// was integrated no later than `now` (a minute of clock skew allowed).
pub fn verify_set<'a>(e: &LogEntry, logs: &'a [LogKey], now: Timestamp) -> Result<&'a LogKey, String> {
    let log = logs
        .iter()
        .find(|l| l.log_id == e.log_id)
        .ok_or_else(|| format!("the entry is from log {}, which is not a pinned log", e.log_id))?;
    if !log.key.verify(&set_payload(e), &e.signed_entry_timestamp) {
        return Err(format!("the signed entry timestamp does not verify with log key {:?}", log.key.name));
    }
    if e.integrated_time > now.as_second() + 60 {
        return Err(format!("the entry claims integration at {}, in the future", e.integrated_time));
    }
    Ok(log)
}

/// What an entry body says was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `hashedrekord` v0.0.1: a signature over content with this SHA-256, and the key.
    HashedRekord { sha256_hex: String, signature: Vec<u8>, public_key_pem: Option<String> },
    /// `dsse` v0.0.1: the payload hash and the envelope's signatures.
    Dsse { payload_sha256_hex: String, signatures: Vec<Vec<u8>> },
}

pub fn parse_body(body_b64: &str) -> Result<Body, String> {
    let raw = B64.decode(body_b64).map_err(|_| "the entry body is not base64".to_string())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| format!("the entry body is not JSON: {e}"))?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let spec = v.get("spec").ok_or("the entry body has no spec")?;
    match (kind, version) {
        ("hashedrekord", "0.0.1") => {
            let hash = spec.get("data").and_then(|d| d.get("hash")).ok_or("no spec.data.hash")?;
            if hash.get("algorithm").and_then(Value::as_str) != Some("sha256") {
                return Err("spec.data.hash is not sha256".into());
            }
            let sha256_hex =
                hash.get("value").and_then(Value::as_str).ok_or("no spec.data.hash.value")?.to_ascii_lowercase();
            let sig = spec.get("signature").ok_or("no spec.signature")?;
            let signature = b64(sig.get("content"), "spec.signature.content")?;
            let public_key_pem = match sig.get("publicKey").and_then(|k| k.get("content")) {
                Some(k) => Some(
                    String::from_utf8(b64(Some(k), "spec.signature.publicKey.content")?)
                        .map_err(|_| "public key is not PEM text")?,
                ),
                None => None,
            };
            Ok(Body::HashedRekord { sha256_hex, signature, public_key_pem })
        }
        ("dsse", "0.0.1") => {
            let ph = spec.get("payloadHash").ok_or("no spec.payloadHash")?;
            if ph.get("algorithm").and_then(Value::as_str) != Some("sha256") {
                return Err("spec.payloadHash is not sha256".into());
            }
            let payload_sha256_hex =
                ph.get("value").and_then(Value::as_str).ok_or("no spec.payloadHash.value")?.to_ascii_lowercase();
            let mut signatures = vec![];
            for s in spec.get("signatures").and_then(Value::as_array).ok_or("no spec.signatures")? {
                signatures.push(b64(s.get("signature"), "spec.signatures[].signature")?);
            }
            Ok(Body::Dsse { payload_sha256_hex, signatures })
        }
        _ => Err(format!("entries of kind {kind:?} version {version:?} are not supported")),
    }
}

/// Whether a PEM key in an entry body is `key`.
pub fn same_key(pem: &str, key: &CosignKey) -> bool {
    CosignKey::from_pem("log entry key", pem).is_ok_and(|k| k.spki_der == key.spki_der)
}
