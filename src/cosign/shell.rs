//! The cosign verifier's I/O shell: finds the signatures of the digest a pod runs with the
//! OCI client (the `sha256-<hex>.sig` tag and the referrers), verifies them with the pure
//! core, and answers a [`Resolution`].
//!
//! Cost: signature manifests are content-addressed, so the outcome of verifying one (for one
//! running digest) is cached by its digest, and the answer for a digest is computed once per
//! refresh however many pods run it. The first verification of a digest GETs its `.sig` tag;
//! an unchanged classic signature then costs one HEAD of the `.sig` tag plus the referrers
//! lookups per refresh, and no blob or crypto work.

use super::error::CosignError;
use super::payload::COSIGN_SIGN_PREDICATE;
use super::verify::{
    ArtifactKind, BUNDLE_MEDIA_TYPES, COSIGN_SIGNATURE_ARTIFACT_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, SignatureArtifact,
    TrustConfig, VerifiedSignature, resolution, select, verify_artifact,
};
use crate::image::ImageRef;
use crate::oci::Problem;
use crate::oci::{RegistryClient, Repository, referrers_tag};
use crate::verdict::Verdict;
use crate::verifier::{Resolution, SignatureFormat, Verifier, VerifyRequest};
use futures::future::BoxFuture;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The largest signature payload or bundle read.
pub const MAX_SIGNATURE_BLOB: u64 = 256 << 10;
/// The largest number of signature manifests examined per image.
const MAX_SIGNATURE_MANIFESTS: usize = 32;
/// The largest number of signature layers read per signature manifest (cosign appends one
/// layer per signature to the `.sig` manifest).
const MAX_SIGNATURE_LAYERS: usize = 64;
const MAX_CACHED_OUTCOMES: usize = 65_536;
const MAX_CACHED_DIGESTS: usize = 65_536;

type Outcomes = Vec<Result<VerifiedSignature, CosignError>>;
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Resolution)>>>;

/// One cosign trust root: its keys, required annotations and log keys, over a registry client.
pub struct CosignVerifier {
    client: Arc<RegistryClient>,
    trust: TrustConfig,
    /// `<running digest>|<signature manifest digest>` -> per-layer outcomes.
    outcomes: Mutex<HashMap<String, Arc<Outcomes>>>,
    /// `<repository>@<running digest>` -> the latest answer.
    answers: Mutex<HashMap<String, Slot>>,
}

impl CosignVerifier {
    pub fn new(client: Arc<RegistryClient>, trust: TrustConfig) -> CosignVerifier {
        CosignVerifier { client, trust, outcomes: Mutex::new(HashMap::new()), answers: Mutex::new(HashMap::new()) }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    pub fn trust(&self) -> &TrustConfig {
        &self.trust
    }

    /// Verifies `image` (its digest, or the digest its tag names now). Answers computed after
    /// `fresh_since` for the same repository and digest are reused.
    pub async fn verify_image(&self, image: &ImageRef, now: Timestamp, fresh_since: Instant) -> Resolution {
        let repo = Repository::from_image(image);
        let digest = match &image.digest {
            Some(d) => d.clone(),
            None => {
                let tag = image.tag.as_deref().unwrap_or("latest");
                match self.client.head_manifest(&repo, tag).await {
                    Ok(Some(d)) => d.digest,
                    Ok(None) => {
                        return Resolution::new(
                            SignatureFormat::Cosign,
                            image,
                            Verdict::Unsigned,
                            "NoSuchImage",
                            format!("{repo}:{tag} does not exist in the registry"),
                        );
                    }
                    Err(e) => {
                        return Resolution::new(SignatureFormat::Cosign, image, e.verdict(), e.reason(), e.to_string());
                    }
                }
            }
        };
        let slot = self.slot(&format!("{repo}@{digest}"));
        let mut guard = slot.lock().await;
        if let Some((at, r)) = guard.as_ref() {
            if *at >= fresh_since {
                return for_image(r.clone(), image);
            }
        }
        let first = guard.is_none();
        let r = self.verify_digest(image, &repo, &digest, now, first).await;
        *guard = Some((Instant::now(), r.clone()));
        r
    }

    fn slot(&self, key: &str) -> Slot {
        let mut answers = self.answers.lock().expect("answers poisoned");
        if answers.len() >= MAX_CACHED_DIGESTS && !answers.contains_key(key) {
            answers.retain(|_, s| Arc::strong_count(s) > 1);
            if answers.len() >= MAX_CACHED_DIGESTS {
                answers.clear();
            }
        }
        answers.entry(key.to_string()).or_default().clone()
    }

    /// `first`: this digest has no earlier answer, so its signature manifest cannot be known
    /// yet and the `.sig` tag is fetched whole (GET) rather than HEADed and then fetched by
    /// digest: one request and one round trip fewer on a cold digest. Later refreshes HEAD it,
    /// and an unchanged digest needs nothing more.
    async fn verify_digest(
        &self,
        image: &ImageRef,
        repo: &Repository,
        digest: &str,
        now: Timestamp,
        first: bool,
    ) -> Resolution {
        let mut outcomes: Outcomes = vec![];
        let mut problems: Vec<Problem> = vec![];
        let mut manifests: Vec<String> = vec![];

        // Classic layout. Spec, tag-based discovery: "the digest of the object ... is
        // encoded into a tag name": replace ':' with '-' and "Append the `.sig` suffix".
        let sig_tag = format!("{}.sig", referrers_tag(digest));
        // Referrers: Sigstore bundles (newer cosign) and classic signatures stored as
        // referrers (`--registry-referrers-mode=oci-1-1`). Both layouts are asked at once.
        let mut types: Vec<&str> = BUNDLE_MEDIA_TYPES.to_vec();
        types.push(COSIGN_SIGNATURE_ARTIFACT_TYPE);
        let tagged = async {
            if first {
                // The body is hashed and cached by its digest: `manifest_outcomes` reads it
                // from there.
                self.client.get_manifest(repo, &sig_tag).await.map(|m| m.map(|m| m.descriptor))
            } else {
                self.client.head_manifest(repo, &sig_tag).await
            }
        };
        let (tagged, referrers) = futures::join!(tagged, self.client.referrers(repo, digest, &types));
        match tagged {
            Ok(Some(d)) => manifests.push(d.digest),
            Ok(None) => {}
            Err(e) => problems.push(Problem::from_oci(&format!("{repo}:{sig_tag}"), &e)),
        }
        match referrers {
            Ok(r) => {
                for d in r.descriptors {
                    // Attestations are bundles too; only image signatures count here.
                    let predicate = d.annotations.get("dev.sigstore.bundle.predicateType");
                    if predicate.is_some_and(|p| p != COSIGN_SIGN_PREDICATE) {
                        continue;
                    }
                    if !manifests.contains(&d.digest) {
                        manifests.push(d.digest);
                    }
                }
            }
            Err(e) => problems.push(Problem::from_oci(&format!("referrers of {repo}@{digest}"), &e)),
        }
        for m in manifests.iter().take(MAX_SIGNATURE_MANIFESTS) {
            match self.manifest_outcomes(repo, m, digest, now).await {
                Ok(o) => outcomes.extend(o.iter().cloned()),
                Err(p) => problems.push(p),
            }
        }
        let result = select(outcomes, digest);
        decide(image, digest, result, problems)
    }

    /// Verifies the signature layers of one signature manifest (cached by its digest).
    async fn manifest_outcomes(
        &self,
        repo: &Repository,
        manifest_digest: &str,
        running: &str,
        now: Timestamp,
    ) -> Result<Arc<Outcomes>, Problem> {
        let key = format!("{running}|{manifest_digest}");
        if let Some(o) = self.outcomes.lock().expect("outcomes poisoned").get(&key) {
            return Ok(o.clone());
        }
        let what = format!("{repo}@{manifest_digest}");
        let manifest = match self.client.get_manifest(repo, manifest_digest).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Err(Problem {
                    verdict: Verdict::TrustDataUnavailable,
                    reason: "SignatureManifestMissing",
                    message: format!("{what} is listed but not served"),
                });
            }
            Err(e) => return Err(Problem::from_oci(&what, &e)),
        };
        let mut outcomes = vec![];
        if let Some(img) = manifest.image() {
            for (i, layer) in img.layers.iter().enumerate().take(MAX_SIGNATURE_LAYERS) {
                let kind = if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE {
                    ArtifactKind::SimpleSigning
                } else if BUNDLE_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
                    ArtifactKind::SigstoreBundle
                } else {
                    continue;
                };
                let source = format!("{what} layer {i}");
                let bytes = match self.client.get_blob(repo, layer, MAX_SIGNATURE_BLOB).await {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        return Err(Problem {
                            verdict: Verdict::TrustDataUnavailable,
                            reason: "SignaturePayloadMissing",
                            message: format!("{source}: blob {} is not served", layer.digest),
                        });
                    }
                    Err(e) => return Err(Problem::from_oci(&source, &e)),
                };
                let annotations =
                    if kind == ArtifactKind::SimpleSigning { layer.annotations.clone() } else { Default::default() };
                let artifact = SignatureArtifact { kind, bytes, annotations, source };
                outcomes.push(verify_artifact(&artifact, &self.trust, running, now));
            }
        }
        let outcomes = Arc::new(outcomes);
        // Outcomes depend only on content-addressed bytes and the trust configuration, except
        // a log entry integrated "in the future", which time may fix: not cached.
        if outcomes.iter().any(|o| matches!(o, Err(CosignError::TlogEntryInvalid { .. }))) {
            return Ok(outcomes);
        }
        let mut cache = self.outcomes.lock().expect("outcomes poisoned");
        if cache.len() >= MAX_CACHED_OUTCOMES {
            cache.clear();
        }
        cache.insert(key, outcomes.clone());
        Ok(outcomes)
    }
}

/// The answer from what verified and what could not be read. A verified signature wins. An
/// outage never becomes Unsigned or SignerMissing (the signature we could not read may be
/// the valid one): then only evidence of tampering or invalid signatures outranks it.
fn decide(
    image: &ImageRef,
    digest: &str,
    result: Result<super::verify::Verified, CosignError>,
    problems: Vec<Problem>,
) -> Resolution {
    match result {
        Ok(v) => {
            let mut r = resolution(image, digest, &Ok(v));
            r.warnings.extend(problems.into_iter().map(|p| p.message));
            r
        }
        Err(e) => {
            let outage = problems.iter().any(|p| p.verdict == Verdict::TrustDataUnavailable);
            let counts = match &e {
                CosignError::NoSignature { .. } => problems.is_empty(),
                _ if outage => matches!(e.verdict(), Verdict::Tampered | Verdict::SignatureInvalid),
                _ => true,
            };
            let mut best: Option<Resolution> = counts.then(|| resolution(image, digest, &Err(e)));
            for p in problems {
                if best.as_ref().is_none_or(|b| p.verdict.severity() > b.verdict.severity()) {
                    let mut r = Resolution::new(SignatureFormat::Cosign, image, p.verdict, p.reason, p.message);
                    r.digest = Some(digest.to_string());
                    best = Some(r);
                }
            }
            best.expect("either the core error counts or there is a problem")
        }
    }
}

/// A cached answer for another pod's reference to the same digest.
fn for_image(mut r: Resolution, image: &ImageRef) -> Resolution {
    r.image = image.to_string();
    r.gun = image.gun();
    r.tag = image.tag.clone();
    r
}

impl Verifier for CosignVerifier {
    fn format(&self) -> SignatureFormat {
        SignatureFormat::Cosign
    }

    fn verify<'a>(&'a self, request: VerifyRequest<'a>) -> BoxFuture<'a, Resolution> {
        Box::pin(async move { self.verify_image(request.image, request.now, request.fresh_since).await })
    }
}
