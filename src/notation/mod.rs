//! The Notation (Notary Project) signature verifier core: pure, like [`crate::tuf`].
//!
//! Bytes, trust configuration and `now` in; a [`Verified`] with its evidence, or a typed
//! [`NotationError`], out. No network, no clock, no kube. The I/O shell
//! ([`NotationVerifier`], in [`shell`]) does:
//!
//! ```text
//! // once per configuration
//! let doc    = TrustPolicyDocument::from_json(&policy_json)?;      // notation's trustpolicy(.oci).json
//! let store  = TrustStore::load_dir(truststore_dir)?;               // or TrustStore::new() + add_pem(..)
//! // (both at once from $XDG_CONFIG_HOME/notation: load_notation_config(dir))
//! // per image
//! let policy = doc.policy_for("registry.example.com/team/app")?;    // NoApplicablePolicy -> NotCovered
//! let config = TrustConfig::from_policy(policy, &store)?;           // or TrustConfig { .. } from a CRD
//! if config.is_skip() { /* level skip: do not even fetch signatures */ }
//! // per signature manifest (config.mediaType application/vnd.cncf.notary.signature)
//! let sig = parse_signature_manifest(&manifest_bytes)?;               // one layer, subject
//! /* fetch the blob sig.envelope (bounded by sig.envelope.size) */ sig.check_envelope(&blob)?;
//! let checked = verify_signature(&config, &target, &sig.envelope.media_type, &blob, now);
//! let checked = checked?;                                            // integrity .. timestamp done
//! for req in checked.revocation_requests() { /* POST req.ocsp_request to req.ocsp_urls (2 s),
//!     GET req.crl_urls (5 s), in order, bounded; failures as Fetched::Failed */ }
//! let outcome = checked.finish(&revocation_data, now);               // Result<Verified, NotationError>
//! // over all signatures of the digest
//! let outcome = best_outcome(outcomes)?;                              // None = Unsigned (shell's call)
//! let resolution = to_resolution(&image, &outcome, now, expiry_warning);
//! ```
//!
//! Specifications: notaryproject/specifications `signature-specification.md`,
//! `signature-envelope-jws.md`, `signature-envelope-cose.md`, `trust-store-trust-policy.md`.

pub mod envelope;
pub mod error;
pub mod manifest;
pub mod ocsp;
pub mod policy;
pub mod revocation;
pub mod shell;
pub mod store;
pub mod timestamp;
pub mod x509;

pub use envelope::{Descriptor, EnvelopeFormat, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS, SigningScheme};
pub use error::{Check, NotationError};
pub use manifest::{SignatureManifest, parse_signature_manifest};
pub use policy::{
    Action, Actions, Level, StoreRef, StoreType, TrustPolicy, TrustPolicyDocument, TrustedIdentities, VerifyTimestamp,
};
pub use revocation::{Fetched, RevocationData, RevocationRequest};
pub use shell::{NotationCounts, NotationTrustSource, NotationVerifier, ShellOptions};
pub use store::{TrustStore, load_notation_config};
pub use x509::Cert;

use crate::image::ImageRef;
use crate::verdict::Verdict;
use crate::verifier::{CertificateEvidence, Resolution, SignatureFormat};
use jiff::{SignedDuration, Timestamp};

/// The signature manifest's config media type (`config.mediaType` or `artifactType`).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";

/// Everything one trust policy statement needs, resolved: the shell builds it from notation's
/// files ([`TrustConfig::from_policy`]) or from a CRD (certificates as PEM lists).
#[derive(Debug, Clone)]
pub struct TrustConfig {
    pub policy_name: String,
    pub actions: Actions,
    pub verify_timestamp: VerifyTimestamp,
    /// Roots for `notary.x509` signatures (`ca:` stores).
    pub ca: Vec<Cert>,
    /// Roots for `notary.x509.signingAuthority` signatures (`signingAuthority:` stores).
    pub signing_authority: Vec<Cert>,
    /// Roots of timestamp authorities (`tsa:` stores).
    pub tsa: Vec<Cert>,
    pub trusted_identities: TrustedIdentities,
}

impl TrustConfig {
    /// Resolves a policy's named stores against a trust store.
    pub fn from_policy(policy: &TrustPolicy, store: &TrustStore) -> Result<TrustConfig, NotationError> {
        let mut config = TrustConfig {
            policy_name: policy.name.clone(),
            actions: policy.actions.clone(),
            verify_timestamp: policy.verify_timestamp,
            ca: vec![],
            signing_authority: vec![],
            tsa: vec![],
            trusted_identities: policy.trusted_identities.clone(),
        };
        for r in &policy.trust_stores {
            let certs = store.get(r).ok_or_else(|| NotationError::InvalidTrustStore {
                detail: format!(
                    "trust policy {:?} names {}:{}, which does not exist",
                    policy.name,
                    r.store_type.as_str(),
                    r.name
                ),
            })?;
            let slot = match r.store_type {
                StoreType::Ca => &mut config.ca,
                StoreType::SigningAuthority => &mut config.signing_authority,
                StoreType::Tsa => &mut config.tsa,
            };
            for c in certs {
                if !slot.contains(c) {
                    slot.push(c.clone());
                }
            }
        }
        Ok(config)
    }

    /// Level `skip`: "does not fetch signatures for artifacts and does not perform any
    /// signature verification".
    pub fn is_skip(&self) -> bool {
        self.actions.level == Level::Skip
    }
}

/// A validation failure that the policy only logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub check: Check,
    pub reason: &'static str,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, logged by policy): {}", self.reason, self.check, self.message)
    }
}

/// Something the verdict rests on and when it stops holding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expiry {
    /// `signature`, `leaf certificate`, `intermediate certificate`, `root certificate`,
    /// `tsa certificate`.
    pub what: String,
    pub subject: Option<String>,
    pub at: Timestamp,
}

/// A signature that passed every enforced validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub policy_name: String,
    /// Level `skip`: nothing was verified, by the policy's choice.
    pub skipped: bool,
    pub format: Option<EnvelopeFormat>,
    pub signing_scheme: Option<SigningScheme>,
    /// The signing time the signature claims (`notary.x509`), or its authentic one.
    pub signing_time: Option<Timestamp>,
    /// The time a trusted TSA or the signing authority vouches for.
    pub authentic_signing_time: Option<Timestamp>,
    /// A trusted TSA countersignature was verified.
    pub timestamped: bool,
    pub leaf_subject: String,
    pub leaf_issuer: String,
    /// SHA-256 fingerprints of the chain, leaf first.
    pub chain_fingerprints: Vec<String>,
    /// The signature's `expiry` signed attribute.
    pub expiry: Option<Timestamp>,
    /// Every future expiry the verdict rests on, earliest first.
    pub expiries: Vec<Expiry>,
    pub warnings: Vec<Warning>,
}

/// The answer for one signature: verified with evidence, or why not.
pub type Outcome = Result<Verified, NotationError>;

/// A signature whose integrity, authenticity, expiry and authentic timestamp validations are
/// done; revocation remains ([`Checked::revocation_requests`], [`Checked::finish`]).
#[derive(Debug, Clone)]
pub struct Checked {
    verified: Verified,
    chain: Vec<Cert>,
    requests: Vec<RevocationRequest>,
    revocation: Action,
}

impl Checked {
    /// What the shell should fetch, per certificate, root to leaf. Empty when revocation is
    /// skipped (by override or level) or no certificate names a source.
    pub fn revocation_requests(&self) -> &[RevocationRequest] {
        &self.requests
    }

    /// Whether the outcome depends on revocation data at all.
    pub fn needs_revocation(&self) -> bool {
        self.revocation != Action::Skip
            && self.requests.iter().any(|r| !r.crl_urls.is_empty() || !r.ocsp_urls.is_empty())
    }

    /// The verification before revocation, for callers that skip it.
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// Validate Revocation Status, then the final outcome.
    ///
    /// Spec: "If the revocation status of any of the certificates is revoked or cannot be
    /// determined (revocation unavailable), fail this step. This will fail the overall
    /// signature verification or log the error, depending on if revocations status check is
    /// `enforced` or `logged`".
    pub fn finish(self, data: &RevocationData, now: Timestamp) -> Outcome {
        let Checked { mut verified, chain, revocation, .. } = self;
        if revocation == Action::Skip || verified.skipped {
            return Ok(verified);
        }
        let statuses = revocation::check_chain(&chain, data, now, verified.authentic_signing_time);
        let revoked = statuses.iter().find_map(|(i, s)| match s {
            revocation::Status::Revoked { serial, revoked_at } => Some(NotationError::CertificateRevoked {
                index: *i,
                subject: chain[*i].subject().to_string(),
                serial: serial.clone(),
                revoked_at: revoked_at.to_string(),
            }),
            _ => None,
        });
        let unknown = || {
            statuses.iter().find_map(|(i, s)| match s {
                revocation::Status::Unknown(detail) => Some(NotationError::RevocationUnknown {
                    index: *i,
                    subject: chain[*i].subject().to_string(),
                    detail: detail.clone(),
                }),
                _ => None,
            })
        };
        if let Some(err) = revoked.or_else(unknown) {
            apply(revocation, err, &mut verified.warnings)?;
        }
        Ok(verified)
    }
}

/// Enforced: the failure ends verification. Logged: it becomes a warning.
fn apply(action: Action, err: NotationError, warnings: &mut Vec<Warning>) -> Result<(), NotationError> {
    match action {
        Action::Enforce => Err(err),
        Action::Log => {
            warnings.push(Warning { check: err.check(), reason: err.reason(), message: err.to_string() });
            Ok(())
        }
        Action::Skip => Ok(()),
    }
}

fn role_of(index: usize, len: usize) -> &'static str {
    if index == 0 {
        "leaf"
    } else if index + 1 == len {
        "root"
    } else {
        "intermediate"
    }
}

/// Every certificate of `chain` valid over `[lower, upper]`; the first that is not, as an
/// error. Spec: "Validate that the time range from `timeStampLowerLimit` to
/// `timeStampUpperLimit` timestamp is entirely within the signing certificate and certificate
/// chain's validity period."
fn chain_valid_over(chain: &[Cert], lower: Timestamp, upper: Timestamp) -> Result<(), NotationError> {
    for (i, c) in chain.iter().enumerate() {
        if lower < c.not_before() {
            return Err(NotationError::CertificateNotYetValid {
                role: role_of(i, chain.len()).into(),
                subject: c.subject().into(),
                not_before: c.not_before().to_string(),
                at: lower.to_string(),
            });
        }
        if upper > c.not_after() {
            return Err(NotationError::CertificateExpired {
                role: role_of(i, chain.len()).into(),
                subject: c.subject().into(),
                not_after: c.not_after().to_string(),
                at: upper.to_string(),
            });
        }
    }
    Ok(())
}

/// Verifies one signature envelope of the artifact `target` (the descriptor of the manifest
/// being verified: media type, digest and size as the registry serves it) under `config`, up
/// to and excluding revocation.
///
/// `media_type` is the signature manifest's layer media type (`application/jose+json` or
/// `application/cose`), `envelope_bytes` the layer blob.
pub fn verify_signature(
    config: &TrustConfig,
    target: &Descriptor,
    media_type: &str,
    envelope_bytes: &[u8],
    now: Timestamp,
) -> Result<Checked, NotationError> {
    let actions = &config.actions;
    let mut verified = Verified {
        policy_name: config.policy_name.clone(),
        skipped: false,
        format: None,
        signing_scheme: None,
        signing_time: None,
        authentic_signing_time: None,
        timestamped: false,
        leaf_subject: String::new(),
        leaf_issuer: String::new(),
        chain_fingerprints: vec![],
        expiry: None,
        expiries: vec![],
        warnings: vec![],
    };
    // Spec, step 2: "If `signatureVerification` level is set to `skip` in the trust policy,
    // return success."
    if config.is_skip() {
        verified.skipped = true;
        return Ok(Checked { verified, chain: vec![], requests: vec![], revocation: Action::Skip });
    }

    // ---- Validate Integrity (always enforced) ----
    // "Validate that signature envelope can be parsed sucessfully based on the signature
    // envelope type" / "Validate that the content type indicated by the `content type` signed
    // attribute in the signature envelope is supported."
    let env = envelope::parse(media_type, envelope_bytes)?;
    let chain: Vec<Cert> = env
        .certificate_chain
        .iter()
        .enumerate()
        .map(|(i, der)| Cert::from_der(der).map_err(|detail| NotationError::MalformedCertificate { index: i, detail }))
        .collect::<Result<_, _>>()?;
    let leaf = &chain[0];
    // "Determine the signing algorithm(hash+encryption) from the signing certificate and
    // validate that the signing algorithm satisfies algorithm requirements" / JWS, COSE:
    // "verifier of the signature MUST match `alg` with signature algorithm of the signing key
    // to mitigate algorithm substitution attacks."
    let key =
        x509::PublicKey::from_spki(leaf.spki()).map_err(|detail| NotationError::UnsupportedAlgorithm { detail })?;
    let key_alg =
        x509::SignatureAlgorithm::for_key(&key).map_err(|detail| NotationError::UnsupportedAlgorithm { detail })?;
    if key_alg != env.algorithm {
        return Err(NotationError::AlgorithmMismatch {
            header: env.algorithm.jws_name().into(),
            key: format!("{} requires {}", key.describe(), key_alg.jws_name()),
        });
    }
    // "Using the public key of the signing certificate and signing algorithm identified in
    // the previous step, validate the integrity of the signature envelope."
    env.algorithm
        .verify(&key, &env.signing_input, &env.signature)
        .map_err(|detail| NotationError::SignatureMismatch { detail })?;
    // Certificate requirements: "These requirements are validated both at signature
    // generation time and signature verification time, and are applied to the certificate
    // chain in the signature envelope. These validations are independent of certificate chain
    // validation against a trust store." notation checks them with the envelope, before any
    // trust decision, whatever the level: so do we.
    x509::validate_chain(&chain, x509::Purpose::CodeSigning, true)
        .map_err(|f| NotationError::InvalidCertificateChain { index: f.index, subject: f.subject, detail: f.detail })?;
    // Payload: "the payload is only parsed and processed once the signature has been verified
    // and trust is established." The signed descriptor must be the artifact's.
    let signed = envelope::parse_payload(&env.payload)?;
    if signed.digest != target.digest {
        return Err(NotationError::TargetDigestMismatch { expected: target.digest.clone(), found: signed.digest });
    }
    if signed.size != target.size {
        return Err(NotationError::TargetDescriptorMismatch {
            field: "size",
            expected: target.size.to_string(),
            found: signed.size.to_string(),
        });
    }
    if signed.media_type != target.media_type {
        return Err(NotationError::TargetDescriptorMismatch {
            field: "mediaType",
            expected: target.media_type.clone(),
            found: signed.media_type,
        });
    }
    verified.format = Some(env.format);
    verified.signing_scheme = Some(env.signing_scheme);
    verified.signing_time = env.signing_time.or(env.authentic_signing_time);
    verified.leaf_subject = leaf.subject().to_string();
    verified.leaf_issuer = leaf.issuer().to_string();
    verified.chain_fingerprints = chain.iter().map(Cert::sha256_fingerprint).collect();
    verified.expiry = env.expiry;

    // ---- Validate Authenticity ----
    // "Validate that certificate and certificate-chain lead to a trusted certificate present
    // in the named store." The store type follows the signing scheme: `ca` for notary.x509,
    // `signingAuthority` for notary.x509.signingAuthority.
    let (store_type, roots) = match env.signing_scheme {
        SigningScheme::X509 => ("ca", &config.ca),
        SigningScheme::X509SigningAuthority => ("signingAuthority", &config.signing_authority),
    };
    if !chain.iter().any(|c| roots.contains(c)) {
        apply(
            actions.authenticity,
            NotationError::UntrustedCertificateChain { store_type, subject: leaf.subject().to_string() },
            &mut verified.warnings,
        )?;
    } else {
        // "If `trustedIdentities` is `*`, any signing certificate issued by a CA in
        // `trustStore` is allowed ... Else validate if the X.509 subject (`x509.subject`) in the
        // `trustedIdentities` list matches with the value of corresponding attributes in the
        // signing certificate's subject".
        let trusted = match policy::subject_rdns(leaf.subject_name()) {
            Ok(subject) => config.trusted_identities.trusts(&subject),
            Err(_) => matches!(config.trusted_identities, TrustedIdentities::Any),
        };
        if !trusted {
            apply(
                actions.authenticity,
                NotationError::IdentityNotTrusted { subject: leaf.subject().to_string() },
                &mut verified.warnings,
            )?;
        }
    }

    // ---- Validate Expiry ----
    // "If an `expiry time` signed attribute is present in the signature envelope, check if
    // the local machine's current time(in UTC) is greater than `expiry time`. If yes, fail this
    // step." / "The artifact is considered expired when the current time is greater than or
    // equal to expiry time".
    if let Some(exp) = env.expiry
        && now >= exp
    {
        apply(actions.expiry, NotationError::SignatureExpired { expiry: exp.to_string() }, &mut verified.warnings)?;
    }

    // ---- Validate Trusted Timestamp ----
    let mut tsa_chain: Vec<Cert> = vec![];
    let timestamp_result: Result<(), NotationError> = match env.signing_scheme {
        SigningScheme::X509 => {
            let valid_now = chain.iter().all(|c| c.is_valid_at(now));
            if config.verify_timestamp == VerifyTimestamp::AfterCertExpiry && valid_now {
                // `afterCertExpiry`: the timestamp is only verified once a certificate of the
                // chain has expired; until then the chain is valid at `now`.
                Ok(())
            } else if let Some(token) = &env.timestamp_token {
                match timestamp::verify(token, &env.signature, &config.tsa) {
                    Ok(ts) => {
                        let r = chain_valid_over(&chain, ts.lower, ts.upper);
                        if r.is_ok() {
                            verified.timestamped = true;
                            verified.authentic_signing_time = Some(ts.gen_time);
                            tsa_chain = ts.tsa_chain;
                        }
                        r
                    }
                    Err(e) => Err(e),
                }
            } else {
                // "Otherwise, store the local machine's current time(in UTC) in variables
                // `timeStampLowerLimit` and `timeStampUpperLimit`".
                chain_valid_over(&chain, now, now)
            }
        }
        SigningScheme::X509SigningAuthority => match env.authentic_signing_time {
            // "Store the `Authentic Signing Time` in variables `timeStampLowerLimit` and
            // `timeStampUpperLimit`."
            Some(t) => {
                let r = chain_valid_over(&chain, t, t);
                if r.is_ok() {
                    verified.authentic_signing_time = Some(t);
                }
                r
            }
            None => Err(NotationError::MissingAuthenticSigningTime),
        },
    };
    if let Err(e) = timestamp_result {
        apply(actions.authentic_timestamp, e, &mut verified.warnings)?;
    }
    if let Some(t) = verified.authentic_signing_time {
        verified.signing_time = Some(t);
    }

    // ---- Evidence: what expires, and when ----
    let mut expiries: Vec<Expiry> = vec![];
    if let Some(exp) = env.expiry {
        expiries.push(Expiry { what: "signature".into(), subject: None, at: exp });
    }
    for (i, c) in chain.iter().enumerate() {
        expiries.push(Expiry {
            what: format!("{} certificate", role_of(i, chain.len())),
            subject: Some(c.subject().into()),
            at: c.not_after(),
        });
    }
    for c in &tsa_chain {
        expiries.push(Expiry { what: "tsa certificate".into(), subject: Some(c.subject().into()), at: c.not_after() });
    }
    // Only what still lies ahead: a certificate that expired after a trusted timestamp (or a
    // logged expiry) no longer decides anything.
    expiries.retain(|e| e.at > now);
    expiries.sort_by_key(|e| e.at);
    verified.expiries = expiries;

    let revocation = actions.revocation;
    let requests = if revocation == Action::Skip { vec![] } else { revocation::requests(&chain) };
    Ok(Checked { verified, chain, requests, revocation })
}

/// Spec, FAQ: "Signature verification workflow succeeds if verification succeeds for at least
/// one signature." Prefers a verified signature (the one whose earliest expiry is latest);
/// otherwise the failure that got furthest (least severe verdict first, so that a merely
/// expired signature is reported rather than an unrelated broken one). `None` when there were
/// no signatures: the shell's `Unsigned`.
pub fn best_outcome(outcomes: impl IntoIterator<Item = Outcome>) -> Option<Outcome> {
    let mut ok: Option<Verified> = None;
    let mut err: Option<NotationError> = None;
    for o in outcomes {
        match o {
            Ok(v) => {
                let key =
                    |v: &Verified| (v.warnings.is_empty(), v.expiries.first().map(|e| e.at).unwrap_or(Timestamp::MAX));
                if ok.as_ref().is_none_or(|best| key(&v) > key(best)) {
                    ok = Some(v);
                }
            }
            Err(e) => {
                if err.as_ref().is_none_or(|best| e.verdict().severity() < best.verdict().severity()) {
                    err = Some(e);
                }
            }
        }
    }
    match (ok, err) {
        (Some(v), _) => Some(Ok(v)),
        (None, Some(e)) => Some(Err(e)),
        (None, None) => None,
    }
}

/// Maps an outcome to the format-agnostic answer. `ExpiringSoon` when the earliest expiry
/// (signature `expiry`, a certificate's notAfter) is within `expiry_warning` of `now`.
pub fn to_resolution(
    image: &ImageRef,
    outcome: &Outcome,
    now: Timestamp,
    expiry_warning: SignedDuration,
) -> Resolution {
    let f = SignatureFormat::Notation;
    let mut r = match outcome {
        Err(e) => Resolution::new(f, image, e.verdict(), e.reason(), e.to_string()),
        Ok(v) if v.skipped => {
            let mut r = Resolution::new(
                f,
                image,
                Verdict::Verified,
                "VerificationSkipped",
                format!("trust policy {:?} has level skip: signatures are not verified", v.policy_name),
            );
            r.warnings.push(format!("trust policy {:?} skips Notation signature verification", v.policy_name));
            r
        }
        Ok(v) => {
            let mut r = Resolution::new(
                f,
                image,
                Verdict::Verified,
                "Verified",
                format!(
                    "Notation signature by {} verified under trust policy {:?}{}",
                    v.leaf_subject,
                    v.policy_name,
                    if v.timestamped { " (timestamped)" } else { "" }
                ),
            );
            r.signers = vec![v.leaf_subject.clone()];
            r.certificate =
                Some(CertificateEvidence { subject: v.leaf_subject.clone(), issuer: v.leaf_issuer.clone() });
            r.signing_time = v.signing_time;
            r.timestamped = Some(v.timestamped);
            r.warnings = v.warnings.iter().map(Warning::to_string).collect();
            if let Some(first) = v.expiries.first() {
                r.expires = Some(first.at);
                r.expires_role = Some(first.what.clone());
                let horizon = now.checked_add(expiry_warning).unwrap_or(Timestamp::MAX);
                if first.at <= horizon {
                    let reason = if first.what == "signature" { "SignatureExpiring" } else { "CertificateExpiring" };
                    let msg = format!(
                        "{}; {} expires at {} (in {})",
                        r.message,
                        first.what,
                        first.at,
                        crate::engine::human_duration(first.at.duration_since(now))
                    );
                    r = r.with(Verdict::ExpiringSoon, reason, msg);
                }
            }
            r
        }
    };
    r.digest = image.digest.clone();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(expiries: Vec<Expiry>, warnings: Vec<Warning>) -> Verified {
        Verified {
            policy_name: "p".into(),
            skipped: false,
            format: Some(EnvelopeFormat::Jws),
            signing_scheme: Some(SigningScheme::X509),
            signing_time: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            authentic_signing_time: None,
            timestamped: false,
            leaf_subject: "CN=build,O=Acme,ST=WA,C=US".into(),
            leaf_issuer: "CN=Acme CA,O=Acme,ST=WA,C=US".into(),
            chain_fingerprints: vec![],
            expiry: None,
            expiries,
            warnings,
        }
    }

    #[test]
    fn resolution_carries_evidence_and_warns_of_near_expiry() {
        let image =
            ImageRef::parse("r.io/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000")
                .unwrap();
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let soon =
            Expiry { what: "leaf certificate".into(), subject: None, at: "2026-06-05T00:00:00Z".parse().unwrap() };
        let w = Warning { check: Check::Revocation, reason: "RevocationUnknown", message: "crl down".into() };
        let out: Outcome = Ok(verified(vec![soon.clone()], vec![w]));
        let r = to_resolution(&image, &out, now, SignedDuration::from_hours(24 * 30));
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::ExpiringSoon, "CertificateExpiring"));
        assert_eq!((r.expires, r.expires_role.as_deref()), (Some(soon.at), Some("leaf certificate")));
        assert_eq!(r.format, SignatureFormat::Notation);
        assert_eq!(r.certificate.as_ref().unwrap().issuer, "CN=Acme CA,O=Acme,ST=WA,C=US");
        assert_eq!(r.warnings.len(), 1);
        let r = to_resolution(&image, &out, now, SignedDuration::from_hours(24));
        assert_eq!(r.verdict, Verdict::Verified);
        let e: Outcome = Err(NotationError::TargetDigestMismatch { expected: "a".into(), found: "b".into() });
        let r = to_resolution(&image, &e, now, SignedDuration::ZERO);
        assert_eq!((r.verdict, r.reason.as_str()), (Verdict::Tampered, "TargetDigestMismatch"));
    }

    #[test]
    fn one_verified_signature_is_enough_and_the_mildest_failure_is_reported() {
        let expired = NotationError::SignatureExpired { expiry: "x".into() };
        let bad = NotationError::SignatureMismatch { detail: "x".into() };
        assert!(best_outcome([Err(bad.clone()), Ok(verified(vec![], vec![]))]).unwrap().is_ok());
        assert_eq!(best_outcome([Err(bad.clone()), Err(expired.clone())]).unwrap().unwrap_err(), expired);
        assert!(best_outcome(std::iter::empty()).is_none());
    }
}
