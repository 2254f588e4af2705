//! The pure cosign verifier core: signature artifacts (bytes and annotations), the trust
//! configuration, the running digest and `now` in; the verified signatures or a typed error
//! out. No network, no clock.

use super::error::CosignError;
use super::keys::{CosignKey, LogKey};
use super::payload::{COSIGN_SIGN_PREDICATE, IN_TOTO_PAYLOAD_TYPE, pae, parse_simple_signing, parse_statement};
use super::rekor::{self, Body};
use crate::image::ImageRef;
use crate::verdict::Verdict;
use crate::verifier::{Resolution, SignatureFormat};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The layer media type of a classic cosign signature.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature over the payload bytes.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding the Rekor bundle (SET) of a classic signature.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The artifact type (and layer media type) of a Sigstore bundle stored as a referrer.
pub const SIGSTORE_BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The artifact type of a classic cosign signature stored as a referrer
/// (`cosign sign --registry-referrers-mode=oci-1-1`).
pub const COSIGN_SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Sigstore bundle media types accepted (protobuf-specs: v0.1, v0.2 and v0.3).
pub const BUNDLE_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    SIGSTORE_BUNDLE_V03,
];

/// Which layout a signature came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// A simple-signing payload with its layer annotations (the `.sig` tag, or a cosign
    /// signature referrer).
    SimpleSigning,
    /// A Sigstore bundle (JSON) stored as a referrer.
    SigstoreBundle,
}

/// One signature as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureArtifact {
    pub kind: ArtifactKind,
    /// The payload blob (simple signing) or the bundle blob.
    pub bytes: Arc<[u8]>,
    /// The layer's annotations (simple signing); empty for bundles.
    pub annotations: BTreeMap<String, String>,
    /// Where it came from, for messages: `<repo>@<signature manifest digest>`.
    pub source: String,
}

/// What a cosign trust root trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// Signer keys; a signature verified by any of them counts, and the key's name is the
    /// signer reported.
    pub keys: Vec<CosignKey>,
    /// Annotations (`cosign sign -a k=v`, the payload's `optional`) a signature must carry.
    pub required_annotations: BTreeMap<String, String>,
    /// Pinned Rekor log keys: when set, every signature needs a log entry that verifies with
    /// one of them. Empty: the transparency log is not checked (`--insecure-ignore-tlog`).
    pub log_keys: Vec<LogKey>,
}

/// A signature that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The name of the key that verified it.
    pub key: String,
    pub kind: ArtifactKind,
    pub source: String,
    /// When the log integrated it (only when a pinned log's promise verified).
    pub integrated_time: Option<Timestamp>,
    /// The payload's `critical.identity.docker-reference` (not enforced).
    pub docker_reference: Option<String>,
}

/// Every signature of an image that verified (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub signatures: Vec<VerifiedSignature>,
}

impl Verified {
    /// The key names that verified, sorted and deduplicated.
    pub fn signers(&self) -> Vec<String> {
        let mut s: Vec<String> = self.signatures.iter().map(|v| v.key.clone()).collect();
        s.sort();
        s.dedup();
        s
    }
}

/// Verifies the signatures of `running_digest`. The image is verified when at least one
/// signature passes every check (cosign: "returns 0 if at least one cosign formatted
/// signature for the image is found matching the public key"); otherwise the failure that
/// says most (see [`select`]).
pub fn verify(
    artifacts: &[SignatureArtifact],
    trust: &TrustConfig,
    running_digest: &str,
    now: Timestamp,
) -> Result<Verified, CosignError> {
    select(artifacts.iter().map(|a| verify_artifact(a, trust, running_digest, now)), running_digest)
}

/// Combines per-signature outcomes: the verified ones, or the worst failure (by verdict
/// severity, then by how far its checks got), or `NoSignature` when there were none.
pub fn select(
    outcomes: impl IntoIterator<Item = Result<VerifiedSignature, CosignError>>,
    running_digest: &str,
) -> Result<Verified, CosignError> {
    let mut ok = vec![];
    let mut worst: Option<CosignError> = None;
    for o in outcomes {
        match o {
            Ok(v) => ok.push(v),
            Err(e) => {
                let better = match &worst {
                    None => true,
                    Some(w) => (e.verdict().severity(), e.progress()) > (w.verdict().severity(), w.progress()),
                };
                if better {
                    worst = Some(e);
                }
            }
        }
    }
    if !ok.is_empty() {
        return Ok(Verified { signatures: ok });
    }
    Err(worst.unwrap_or_else(|| CosignError::NoSignature { digest: running_digest.to_string() }))
}

/// Verifies one signature artifact.
pub fn verify_artifact(
    a: &SignatureArtifact,
    trust: &TrustConfig,
    running_digest: &str,
    now: Timestamp,
) -> Result<VerifiedSignature, CosignError> {
    match a.kind {
        ArtifactKind::SimpleSigning => verify_simple(a, trust, running_digest, now),
        ArtifactKind::SigstoreBundle => verify_bundle(a, trust, running_digest, now),
    }
}

fn key_names(trust: &TrustConfig) -> String {
    if trust.keys.is_empty() {
        return "none configured".into();
    }
    trust.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn check_annotations(
    artifact: &str,
    trust: &TrustConfig,
    annotations: &BTreeMap<String, String>,
) -> Result<(), CosignError> {
    for (key, expected) in &trust.required_annotations {
        match annotations.get(key) {
            None => return Err(CosignError::AnnotationMissing { artifact: artifact.into(), key: key.clone() }),
            Some(found) if found != expected => {
                return Err(CosignError::AnnotationMismatch {
                    artifact: artifact.into(),
                    key: key.clone(),
                    expected: expected.clone(),
                    found: found.clone(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn verify_simple(
    a: &SignatureArtifact,
    trust: &TrustConfig,
    running: &str,
    now: Timestamp,
) -> Result<VerifiedSignature, CosignError> {
    let artifact = a.source.as_str();
    // Spec: "The `signature` is base64-encoded and stored as an `annotation` on the layer ...
    // The `annotation` key is `dev.cosignproject.cosign/signature`."
    let sig_b64 = a.annotations.get(SIGNATURE_ANNOTATION).ok_or_else(|| CosignError::SignatureInvalid {
        artifact: artifact.into(),
        detail: format!("the layer has no {SIGNATURE_ANNOTATION} annotation"),
    })?;
    let sig = B64.decode(sig_b64.trim()).map_err(|_| CosignError::SignatureInvalid {
        artifact: artifact.into(),
        detail: "the signature annotation is not base64".into(),
    })?;
    // Spec: the signature is over the payload bytes, hashed with the registry's algorithm
    // (SHA-256): `Sign(sha256(SimpleSigningPayload(sha256(Image Manifest))))`.
    let key = trust.keys.iter().find(|k| k.verify(&a.bytes, &sig)).ok_or_else(|| {
        let mut keys = key_names(trust);
        if a.annotations.contains_key(CERTIFICATE_ANNOTATION) {
            keys.push_str("; keyless (Fulcio certificate) signatures are not supported");
        }
        CosignError::KeyMismatch { artifact: artifact.into(), keys }
    })?;
    let payload = parse_simple_signing(&a.bytes)
        .map_err(|detail| CosignError::MalformedPayload { artifact: artifact.into(), detail })?;
    // Spec: "the payload MUST contain the digest of the image it references".
    if payload.digest != running {
        return Err(CosignError::DigestMismatch {
            artifact: artifact.into(),
            signed: payload.digest,
            running: running.into(),
        });
    }
    check_annotations(artifact, trust, &payload.annotations)?;
    let integrated_time = if trust.log_keys.is_empty() {
        None
    } else {
        let text = a
            .annotations
            .get(BUNDLE_ANNOTATION)
            .ok_or_else(|| CosignError::TlogEntryMissing { artifact: artifact.into() })?;
        let entry = rekor::parse_classic_bundle(text)
            .map_err(|detail| CosignError::TlogEntryInvalid { artifact: artifact.into(), detail })?;
        rekor::verify_set(&entry, &trust.log_keys, now)
            .map_err(|detail| CosignError::TlogEntryInvalid { artifact: artifact.into(), detail })?;
        // The promise covers the body; the body must be this signature over this payload
        // by this key.
        let mismatch = |detail: String| CosignError::TlogBodyMismatch { artifact: artifact.into(), detail };
        // An entry body we cannot read (malformed, or a kind we do not support, such as
        // Rekor v2's 0.0.2 entries) is unverified log evidence, not proof of other content.
        let body = rekor::parse_body(&entry.body_b64)
            .map_err(|detail| CosignError::TlogEntryInvalid { artifact: artifact.into(), detail })?;
        match body {
            Body::HashedRekord { sha256_hex, signature, public_key_pem } => {
                let payload_hash = hex::encode(Sha256::digest(&a.bytes));
                if sha256_hex != payload_hash {
                    return Err(mismatch(format!("it logs content {sha256_hex}, the payload is {payload_hash}")));
                }
                if signature != sig {
                    return Err(mismatch("it logs another signature".into()));
                }
                if let Some(pem) = public_key_pem {
                    if !rekor::same_key(&pem, key) {
                        return Err(mismatch(format!("it logs another key than {:?}", key.name)));
                    }
                }
            }
            Body::Dsse { .. } => return Err(mismatch("a dsse entry for a simple-signing signature".into())),
        }
        Some(Timestamp::from_second(entry.integrated_time).map_err(|e| CosignError::TlogEntryInvalid {
            artifact: artifact.into(),
            detail: format!("integratedTime: {e}"),
        })?)
    };
    Ok(VerifiedSignature {
        key: key.name.clone(),
        kind: ArtifactKind::SimpleSigning,
        source: a.source.clone(),
        integrated_time,
        docker_reference: payload.docker_reference,
    })
}

fn verify_bundle(
    a: &SignatureArtifact,
    trust: &TrustConfig,
    running: &str,
    now: Timestamp,
) -> Result<VerifiedSignature, CosignError> {
    let artifact = a.source.as_str();
    let malformed = |detail: String| CosignError::MalformedBundle { artifact: artifact.into(), detail };
    let v: Value = serde_json::from_slice(&a.bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
    // bundle.proto: the media type "MUST be" one of the versioned bundle types.
    let media_type = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    if !BUNDLE_MEDIA_TYPES.contains(&media_type) {
        return Err(malformed(format!("unsupported bundle media type {media_type:?}")));
    }
    let Some(env) = v.get("dsseEnvelope") else {
        return Err(malformed("no DSSE envelope (cosign signs container images with DSSE)".into()));
    };
    // bundle.proto: "Verifiers must verify that the payload type is a supported and expected
    // type."
    let payload_type = env.get("payloadType").and_then(Value::as_str).unwrap_or("");
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(malformed(format!("DSSE payload type {payload_type:?} is not {IN_TOTO_PAYLOAD_TYPE:?}")));
    }
    let payload = env
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| B64.decode(p).ok())
        .ok_or_else(|| malformed("the DSSE payload is missing or not base64".into()))?;
    let mut sigs = vec![];
    for s in env.get("signatures").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let sig = s.get("sig").and_then(Value::as_str).and_then(|x| B64.decode(x).ok());
        sigs.push(sig.ok_or_else(|| malformed("a DSSE signature is not base64".into()))?);
    }
    if sigs.is_empty() {
        return Err(malformed("the DSSE envelope has no signature".into()));
    }
    // DSSE: signatures are over PAE(payloadType, payload), not the payload itself.
    let message = pae(payload_type, &payload);
    let verified = trust.keys.iter().find_map(|k| sigs.iter().find(|s| k.verify(&message, s)).map(|s| (k, s.clone())));
    let (key, sig) = match verified {
        Some(v) => v,
        None => {
            // The bundle names its key (cosign: base64 SHA-256 of the SPKI DER): when that
            // is a trusted key, the signature failing is not "another signer".
            let hint = v
                .get("verificationMaterial")
                .and_then(|m| m.get("publicKey"))
                .and_then(|p| p.get("hint"))
                .and_then(Value::as_str)
                .and_then(|h| B64.decode(h).ok());
            if let Some(k) = hint.and_then(|h| trust.keys.iter().find(|k| k.key_id()[..] == h[..])) {
                return Err(CosignError::SignatureInvalid {
                    artifact: artifact.into(),
                    detail: format!("the bundle names key {:?}, whose signature does not verify", k.name),
                });
            }
            return Err(CosignError::KeyMismatch { artifact: artifact.into(), keys: key_names(trust) });
        }
    };
    let statement = parse_statement(&payload)
        .map_err(|detail| CosignError::MalformedPayload { artifact: artifact.into(), detail })?;
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(CosignError::MalformedPayload {
            artifact: artifact.into(),
            detail: format!(
                "predicate type {:?} is not an image signature ({COSIGN_SIGN_PREDICATE})",
                statement.predicate_type
            ),
        });
    }
    if !statement.subject_digests.iter().any(|d| d == running) {
        return Err(CosignError::DigestMismatch {
            artifact: artifact.into(),
            signed: statement.subject_digests.first().cloned().unwrap_or_else(|| "no subject".into()),
            running: running.into(),
        });
    }
    // cosign 2.6 writes no `-a` annotations into the statement of a bundle: there is nothing
    // to satisfy a required annotation with.
    check_annotations(artifact, trust, &BTreeMap::new())?;
    let integrated_time = if trust.log_keys.is_empty() {
        None
    } else {
        let entries = v
            .get("verificationMaterial")
            .and_then(|m| m.get("tlogEntries"))
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| CosignError::TlogEntryMissing { artifact: artifact.into() })?;
        let payload_hash = hex::encode(Sha256::digest(&payload));
        let mut last_err = None;
        let mut time: Option<Option<i64>> = None;
        for e in entries {
            let checked = rekor::parse_bundle_entry(e)
                .and_then(|(entry, proof)| {
                    // rekor.proto: the inclusion promise is "Optional for >= v0.2 bundles, and
                    // SHOULD be verified when present"; the inclusion proof is required. We
                    // verify whichever is present and need at least one; only a verified
                    // promise authenticates the integration time.
                    let promised = !entry.signed_entry_timestamp.is_empty();
                    if promised {
                        rekor::verify_set(&entry, &trust.log_keys, now)?;
                    }
                    match &proof {
                        Some(p) => rekor::verify_inclusion_proof(&entry, p, &trust.log_keys)?,
                        None if !promised => {
                            return Err("the entry has neither an inclusion promise nor a proof".into());
                        }
                        None => {}
                    }
                    Ok((entry, promised))
                })
                .map_err(|detail| CosignError::TlogEntryInvalid { artifact: artifact.into(), detail })
                .and_then(|(entry, promised)| {
                    let mismatch = |detail: String| CosignError::TlogBodyMismatch { artifact: artifact.into(), detail };
                    let body = rekor::parse_body(&entry.body_b64)
                        .map_err(|detail| CosignError::TlogEntryInvalid { artifact: artifact.into(), detail })?;
                    match body {
                        Body::Dsse { payload_sha256_hex, signatures } => {
                            if payload_sha256_hex != payload_hash {
                                return Err(mismatch(format!(
                                    "it logs payload {payload_sha256_hex}, the envelope's is {payload_hash}"
                                )));
                            }
                            if !signatures.contains(&sig) {
                                return Err(mismatch("it logs other signatures".into()));
                            }
                            Ok(promised.then_some(entry.integrated_time))
                        }
                        Body::HashedRekord { .. } => Err(mismatch("a hashedrekord entry for a DSSE envelope".into())),
                    }
                });
            match checked {
                Ok(t) => {
                    time = Some(t);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        match time {
            Some(Some(t)) => Some(Timestamp::from_second(t).map_err(|e| CosignError::TlogEntryInvalid {
                artifact: artifact.into(),
                detail: format!("integratedTime: {e}"),
            })?),
            Some(None) => None,
            None => return Err(last_err.expect("at least one entry was checked")),
        }
    };
    Ok(VerifiedSignature {
        key: key.name.clone(),
        kind: ArtifactKind::SigstoreBundle,
        source: a.source.clone(),
        integrated_time,
        docker_reference: None,
    })
}

/// The format-agnostic answer for `image` running `running_digest`: format Cosign, signers
/// the key names that verified, the log's integration time as the signing time.
pub fn resolution(image: &ImageRef, running_digest: &str, result: &Result<Verified, CosignError>) -> Resolution {
    match result {
        Ok(v) => {
            let signers = v.signers();
            let mut r = Resolution::new(
                SignatureFormat::Cosign,
                image,
                Verdict::Verified,
                "Verified",
                format!("{running_digest} is signed by {}", signers.join(", ")),
            );
            r.digest = Some(running_digest.to_string());
            r.signers = signers;
            r.signing_time = v.signatures.iter().filter_map(|s| s.integrated_time).min();
            if r.signing_time.is_some() {
                r.timestamped = Some(true);
            }
            // cosign: "The `critical.identity.docker-reference` field is ignored." We say so
            // when it names another repository, without failing.
            let repo = image.gun();
            for s in &v.signatures {
                if let Some(d) = &s.docker_reference {
                    let named = ImageRef::parse(d).map(|i| i.gun()).unwrap_or_else(|_| d.clone());
                    if named != repo {
                        r.warnings.push(format!(
                            "the signature from {} names {d:?} as its docker-reference, not {repo} (ignored, as the cosign specification says)",
                            s.source
                        ));
                    }
                }
            }
            r
        }
        Err(e) => {
            let mut r = Resolution::new(SignatureFormat::Cosign, image, e.verdict(), e.reason(), e.to_string());
            r.digest = Some(running_digest.to_string());
            r
        }
    }
}
