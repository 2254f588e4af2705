//! Keyless (Fulcio) certificates: the pure checks that make a short-lived signing certificate
//! trusted at the time it signed, and the identity it names matched against the policy.
//!
//! Input: the leaf certificate (DER), the trusted root, the signing time (already
//! established from a verified log entry or timestamp: the caller's duty) and the identity
//! policies. Output: the certificate's identity, or a [`KeylessError`] with a stable reason.
//! No network, no clock.
//!
//! Not in this slice (issue 20): the embedded SCT, the Rekor entry of a keyless signature and
//! RFC 3161 timestamps are not yet checked here, so nothing outside the unit tests builds a
//! keyless verdict from this module yet.

use crate::cosign::trusted_root::{CertificateAuthority, TrustedRoot};
use crate::notation::x509::{self, Cert, Purpose};
use crate::verdict::Verdict;
use der::Decode;
use der::asn1::{ObjectIdentifier, Utf8StringRef};
use jiff::Timestamp;
use thiserror::Error;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// Fulcio's certificate extensions (sigstore/fulcio `docs/oid-info.md`).
pub mod oid {
    use der::asn1::ObjectIdentifier as O;
    /// "1.3.6.1.4.1.57264.1.1 | Issuer (deprecated)": the raw issuer string, not DER-encoded.
    pub const ISSUER_V1: O = O::new_unwrap("1.3.6.1.4.1.57264.1.1");
    /// "1.3.6.1.4.1.57264.1.8 | Issuer (V2)": a DER-encoded UTF8String.
    pub const ISSUER_V2: O = O::new_unwrap("1.3.6.1.4.1.57264.1.8");
}

/// Most identities one TrustRoot may list (a bound for the CRD and for the work per signature).
pub const MAX_IDENTITIES: usize = 64;

/// Typed failures of the keyless certificate checks.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum KeylessError {
    #[error("the signing certificate is malformed: {0}")]
    MalformedCertificate(String),
    #[error("the signing certificate does not chain to a certificate authority of the trusted root: {0}")]
    UntrustedCertificate(String),
    #[error("the signing certificate chains to {ca}, which the trusted root does not trust at the signing time {at}")]
    CaNotValidAtSigningTime { ca: String, at: Timestamp },
    #[error("the signing certificate was not valid at the signing time {at} (valid {not_before} to {not_after})")]
    CertificateNotValidAtSigningTime { at: Timestamp, not_before: Timestamp, not_after: Timestamp },
    #[error("the signing certificate has no code-signing extended key usage")]
    NotCodeSigning,
    #[error("the certificate identity {subject:?} issued by {issuer:?} matches no identity of the policy")]
    IdentityMismatch { issuer: String, subject: String },
}

impl KeylessError {
    /// Stable PascalCase reason, for conditions, events, metric labels and JSON output.
    pub fn reason(&self) -> &'static str {
        match self {
            KeylessError::MalformedCertificate(_) => "MalformedCertificate",
            KeylessError::UntrustedCertificate(_) => "UntrustedCertificate",
            KeylessError::CaNotValidAtSigningTime { .. } => "CaNotValidAtSigningTime",
            KeylessError::CertificateNotValidAtSigningTime { .. } => "CertificateNotValidAtSigningTime",
            KeylessError::NotCodeSigning => "NotCodeSigning",
            KeylessError::IdentityMismatch { .. } => "IdentityMismatch",
        }
    }

    /// The shared verdict: a certificate no trusted CA issued, or an identity the policy does
    /// not name, is a signer that did not sign (`SignerMissing`); a CA the trusted root has
    /// retired (its `validFor` ended before the signing time) is `SignerRevoked`; a certificate
    /// used outside its life or for another purpose is a signature that does not hold.
    pub fn verdict(&self) -> Verdict {
        match self {
            KeylessError::MalformedCertificate(_) => Verdict::Tampered,
            KeylessError::UntrustedCertificate(_) | KeylessError::IdentityMismatch { .. } => Verdict::SignerMissing,
            KeylessError::CaNotValidAtSigningTime { .. } => Verdict::SignerRevoked,
            KeylessError::CertificateNotValidAtSigningTime { .. } | KeylessError::NotCodeSigning => {
                Verdict::SignatureInvalid
            }
        }
    }
}

/// One side of an identity: an exact value or an anchored regular expression.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    /// cosign `--certificate-identity-regexp` is Go's `regexp.MatchString`, which is NOT
    /// anchored; policy-controller and trustwatch anchor it: the whole value must match, so
    /// `https://github.com/acme/.*` cannot be satisfied by `https://evil.example/https://github.com/acme/x`.
    pub fn regex(pattern: &str) -> Result<Matcher, String> {
        regex::Regex::new(&format!("^(?:{pattern})$")).map(Matcher::Regex).map_err(|e| format!("{pattern:?}: {e}"))
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }

    fn one_of(what: &str, exact: Option<&str>, pattern: Option<&str>) -> Result<Matcher, String> {
        match (exact, pattern) {
            (Some(e), None) => Ok(Matcher::Exact(e.to_string())),
            (None, Some(p)) => Matcher::regex(p).map_err(|e| format!("{what}RegExp {e}")),
            (Some(_), Some(_)) => Err(format!("set {what} or {what}RegExp, not both")),
            (None, None) => Err(format!("set {what} or {what}RegExp")),
        }
    }
}

/// A keyless identity the policy trusts: cosign's `--certificate-oidc-issuer(-regexp)` and
/// `--certificate-identity(-regexp)`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: Matcher,
    pub subject: Matcher,
}

impl Identity {
    pub fn new(
        issuer: Option<&str>,
        issuer_regexp: Option<&str>,
        subject: Option<&str>,
        subject_regexp: Option<&str>,
    ) -> Result<Identity, String> {
        Ok(Identity {
            issuer: Matcher::one_of("issuer", issuer, issuer_regexp)?,
            subject: Matcher::one_of("subject", subject, subject_regexp)?,
        })
    }
}

/// What a Fulcio certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The OIDC issuer (extension .1.8, else .1.1).
    pub issuer: String,
    /// The subject alternative names: URIs, emails and DNS names.
    pub sans: Vec<String>,
}

/// Fulcio `docs/certificate-specification.md`: "The subject alternative name ... MUST be set
/// to the identity of the subject (an email address or a URI)"; the issuer is "1.3.6.1.4.1.57264.1.8
/// ... DER-encoded UTF8String", the deprecated .1.1 holds the raw string.
pub fn cert_identity(cert: &Cert) -> Result<CertIdentity, KeylessError> {
    let tbs = cert.certificate().tbs_certificate();
    let ext_value = |o: ObjectIdentifier| {
        tbs.extensions().into_iter().flatten().find(|e| e.extn_id == o).map(|e| e.extn_value.as_bytes().to_vec())
    };
    let issuer = if let Some(v2) = ext_value(oid::ISSUER_V2) {
        Utf8StringRef::from_der(&v2)
            .map(|s| s.as_str().to_string())
            .map_err(|e| KeylessError::MalformedCertificate(format!("issuer extension (1.3.6.1.4.1.57264.1.8): {e}")))?
    } else if let Some(v1) = ext_value(oid::ISSUER_V1) {
        String::from_utf8(v1).map_err(|_| {
            KeylessError::MalformedCertificate("issuer extension (1.3.6.1.4.1.57264.1.1) is not UTF-8".into())
        })?
    } else {
        return Err(KeylessError::MalformedCertificate(
            "no OIDC issuer extension (1.3.6.1.4.1.57264.1.8 or .1.1)".into(),
        ));
    };
    let sans = match tbs.get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .into_iter()
            .filter_map(|n| match n {
                GeneralName::UniformResourceIdentifier(u) => Some(u.as_str().to_string()),
                GeneralName::Rfc822Name(m) => Some(m.as_str().to_string()),
                GeneralName::DnsName(d) => Some(d.as_str().to_string()),
                _ => None,
            })
            .collect(),
        Ok(None) => vec![],
        Err(e) => return Err(KeylessError::MalformedCertificate(format!("subjectAltName: {e}"))),
    };
    if sans.is_empty() {
        return Err(KeylessError::MalformedCertificate("no subject alternative name (URI or email)".into()));
    }
    Ok(CertIdentity { issuer, sans })
}

/// sigstore-go `VerifyLeafCertificate`: the leaf must chain to a certificate authority of the
/// trusted root whose `validFor` contains the signing time, with every certificate of the
/// chain valid at that time ("the certificate is checked against the trusted root at the
/// observer timestamp"), and carry the code-signing extended key usage (Fulcio certificate
/// specification: "Extended Key Usage ... MUST be id-kp-codeSigning").
pub fn verify_leaf<'a>(
    leaf: &Cert,
    root: &'a TrustedRoot,
    at: Timestamp,
) -> Result<&'a CertificateAuthority, KeylessError> {
    let mut retired = None;
    let mut last_fault = String::from("the trusted root lists no certificate authority");
    for ca in &root.certificate_authorities {
        let mut chain = Vec::with_capacity(ca.chain.len() + 1);
        chain.push(leaf.clone());
        chain.extend(ca.chain.iter().cloned());
        match x509::validate_chain(&chain, Purpose::CodeSigning, true) {
            Ok(()) if ca.valid_for.contains(at) => {
                if let Some(c) = chain[1..].iter().find(|c| !c.is_valid_at(at)) {
                    last_fault = format!("{} was not valid at {at}", c.subject());
                    continue;
                }
                check_leaf(leaf, at)?;
                return Ok(ca);
            }
            Ok(()) => retired = Some(ca),
            Err(f) => last_fault = format!("{}: {}", f.subject, f.detail),
        }
    }
    match retired {
        Some(ca) => Err(KeylessError::CaNotValidAtSigningTime { ca: ca.chain[0].subject().to_string(), at }),
        None => Err(KeylessError::UntrustedCertificate(last_fault)),
    }
}

fn check_leaf(leaf: &Cert, at: Timestamp) -> Result<(), KeylessError> {
    // Fulcio: "Extended Key Usage ... MUST be id-kp-codeSigning".
    match leaf.extended_key_usage() {
        Ok(Some((_, eku))) if eku.0.contains(&x509::oid::KP_CODE_SIGNING) => {}
        Ok(_) => return Err(KeylessError::NotCodeSigning),
        Err(e) => return Err(KeylessError::MalformedCertificate(e)),
    }
    // Sigstore client spec, "Certificate": "the signing certificate MUST have been valid at
    // the time of signing" (the time from the log entry or the timestamp, never `now`: the
    // certificate lives minutes, the signature years).
    if !leaf.is_valid_at(at) {
        return Err(KeylessError::CertificateNotValidAtSigningTime {
            at,
            not_before: leaf.not_before(),
            not_after: leaf.not_after(),
        });
    }
    Ok(())
}

/// The first policy identity the certificate satisfies: the issuer must match, and one of the
/// subject alternative names must match the subject.
pub fn match_identity(id: &CertIdentity, policy: &[Identity]) -> Result<usize, KeylessError> {
    policy
        .iter()
        .position(|p| p.issuer.matches(&id.issuer) && id.sans.iter().any(|s| p.subject.matches(s)))
        .ok_or_else(|| KeylessError::IdentityMismatch { issuer: id.issuer.clone(), subject: id.sans.join(",") })
}

/// All certificate checks of a keyless signature at the established signing time: chain,
/// purpose, validity, identity. Returns the identity the certificate holds.
pub fn verify_certificate(
    leaf_der: &[u8],
    root: &TrustedRoot,
    at: Timestamp,
    policy: &[Identity],
) -> Result<CertIdentity, KeylessError> {
    let leaf = Cert::from_der(leaf_der).map_err(KeylessError::MalformedCertificate)?;
    verify_leaf(&leaf, root, at)?;
    let id = cert_identity(&leaf)?;
    match_identity(&id, policy)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
        Issuer, KeyPair, KeyUsagePurpose, SanType,
    };

    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    const SUBJECT: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";

    fn time(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn odt(s: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(time(s).as_second()).unwrap()
    }

    struct Ca {
        key: KeyPair,
        params: CertificateParams,
        der: Vec<u8>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = odt("2026-01-01T00:00:00Z");
        params.not_after = odt("2036-01-01T00:00:00Z");
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Ca { key, params, der }
    }

    struct LeafOpts<'a> {
        issuer: &'a str,
        san: &'a str,
        code_signing: bool,
    }
    const GOOD: LeafOpts<'static> = LeafOpts { issuer: ISSUER, san: SUBJECT, code_signing: true };

    /// A Fulcio-shaped leaf: ten minutes of validity, SAN URI, issuer extension (V2), EKU.
    fn leaf(ca: &Ca, o: &LeafOpts) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(o.san.try_into().unwrap())];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if o.code_signing { vec![ExtendedKeyUsagePurpose::CodeSigning] } else { vec![] };
        let mut issuer_der = vec![0x0c, o.issuer.len() as u8];
        issuer_der.extend_from_slice(o.issuer.as_bytes());
        params.custom_extensions =
            vec![CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 8], issuer_der)];
        params.not_before = odt("2026-06-01T12:00:00Z");
        params.not_after = odt("2026-06-01T12:10:00Z");
        let issuer = Issuer::new(ca.params.clone(), &ca.key);
        params.signed_by(&key, &issuer).unwrap().der().to_vec()
    }

    fn root_json(cas: &[(&Ca, &str, Option<&str>)]) -> Vec<u8> {
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let cas: Vec<_> = cas
            .iter()
            .map(|(c, start, end)| {
                let mut vf = serde_json::json!({"start": start});
                if let Some(e) = end {
                    vf["end"] = serde_json::json!(e);
                }
                serde_json::json!({"uri": "https://fulcio.test", "certChain": {"certificates": [{"rawBytes": b64(&c.der)}]}, "validFor": vf})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "certificateAuthorities": cas,
            "tlogs": [{"baseUrl": "https://rekor.test", "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(b"not-checked-here"), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2026-01-01T00:00:00Z"}}, "logId": {"keyId": ""}}],
        }))
        .unwrap()
    }

    const SIGNED_AT: &str = "2026-06-01T12:05:00Z";

    fn policy(issuer_re: Option<&str>, subject_re: Option<&str>) -> Vec<Identity> {
        let i = if issuer_re.is_some() { None } else { Some(ISSUER) };
        let s = if subject_re.is_some() { None } else { Some(SUBJECT) };
        vec![Identity::new(i, issuer_re, s, subject_re).unwrap()]
    }

    fn check(leaf_der: &[u8], root: &[u8], at: &str, p: &[Identity]) -> Result<CertIdentity, KeylessError> {
        verify_certificate(leaf_der, &TrustedRoot::parse(root).unwrap(), time(at), p)
    }

    #[test]
    fn a_fulcio_leaf_of_a_trusted_ca_with_the_policy_identity_verifies() {
        let ca = ca("fulcio");
        let root = root_json(&[(&ca, "2026-01-01T00:00:00Z", None)]);
        let id = check(&leaf(&ca, &GOOD), &root, SIGNED_AT, &policy(None, None)).unwrap();
        assert_eq!(id.issuer, ISSUER);
        assert_eq!(id.sans, vec![SUBJECT.to_string()]);
        let by_re =
            policy(Some(r"https://token\.actions\.githubusercontent\.com"), Some(r"https://github\.com/acme/.*"));
        assert!(check(&leaf(&ca, &GOOD), &root, SIGNED_AT, &by_re).is_ok());
    }

    #[test]
    fn another_identity_is_signer_missing() {
        let ca = ca("fulcio");
        let root = root_json(&[(&ca, "2026-01-01T00:00:00Z", None)]);
        let other = LeafOpts { san: "https://github.com/mallory/app/.github/workflows/x.yml@refs/heads/main", ..GOOD };
        let e = check(&leaf(&ca, &other), &root, SIGNED_AT, &policy(None, None)).unwrap_err();
        assert_eq!((e.reason(), e.verdict()), ("IdentityMismatch", Verdict::SignerMissing));
        let other_issuer = LeafOpts { issuer: "https://accounts.google.com", ..GOOD };
        let e = check(&leaf(&ca, &other_issuer), &root, SIGNED_AT, &policy(None, None)).unwrap_err();
        assert_eq!(e.reason(), "IdentityMismatch");
    }

    /// Fails without the `^(?:...)$` wrapping in `Matcher::regex` (tried: both regexps then
    /// match and the result is Ok).
    #[test]
    fn regexps_are_anchored() {
        let ca = ca("fulcio");
        let root = root_json(&[(&ca, "2026-01-01T00:00:00Z", None)]);
        let evil = LeafOpts {
            issuer: "https://evil.example/https://token.actions.githubusercontent.com",
            san: "https://evil.example/https://github.com/acme/app",
            ..GOOD
        };
        let issuer_only_unanchored = policy(Some(r"https://token\.actions\.githubusercontent\.com"), None);
        let e = check(&leaf(&ca, &LeafOpts { issuer: evil.issuer, ..GOOD }), &root, SIGNED_AT, &issuer_only_unanchored)
            .unwrap_err();
        assert_eq!(e.reason(), "IdentityMismatch");
        let subject_only_unanchored = policy(None, Some(r"https://github\.com/acme/app"));
        let e = check(&leaf(&ca, &LeafOpts { san: evil.san, ..GOOD }), &root, SIGNED_AT, &subject_only_unanchored)
            .unwrap_err();
        assert_eq!(e.reason(), "IdentityMismatch");
    }

    /// Fails without the `is_valid_at` check of `check_leaf` (tried).
    #[test]
    fn a_certificate_outside_its_validity_at_the_signing_time_is_signature_invalid() {
        let ca = ca("fulcio");
        let root = root_json(&[(&ca, "2026-01-01T00:00:00Z", None)]);
        for at in ["2026-06-01T12:10:01Z", "2026-06-01T11:59:59Z"] {
            let e = check(&leaf(&ca, &GOOD), &root, at, &policy(None, None)).unwrap_err();
            assert_eq!((e.reason(), e.verdict()), ("CertificateNotValidAtSigningTime", Verdict::SignatureInvalid));
        }
    }

    #[test]
    fn a_leaf_of_a_foreign_ca_is_untrusted() {
        let (ours, theirs) = (ca("fulcio"), ca("fulcio"));
        let root = root_json(&[(&ours, "2026-01-01T00:00:00Z", None)]);
        let e = check(&leaf(&theirs, &GOOD), &root, SIGNED_AT, &policy(None, None)).unwrap_err();
        assert_eq!((e.reason(), e.verdict()), ("UntrustedCertificate", Verdict::SignerMissing));
    }

    /// A trusted root rotated to retire the CA (its validFor ends before the signing time).
    #[test]
    fn a_retired_ca_is_signer_revoked() {
        let (old, new) = (ca("fulcio-old"), ca("fulcio-new"));
        let root = root_json(&[
            (&old, "2026-01-01T00:00:00Z", Some("2026-05-01T00:00:00Z")),
            (&new, "2026-05-01T00:00:00Z", None),
        ]);
        let e = check(&leaf(&old, &GOOD), &root, SIGNED_AT, &policy(None, None)).unwrap_err();
        assert_eq!((e.reason(), e.verdict()), ("CaNotValidAtSigningTime", Verdict::SignerRevoked));
        assert!(check(&leaf(&new, &GOOD), &root, SIGNED_AT, &policy(None, None)).is_ok());
    }

    #[test]
    fn a_leaf_without_code_signing_is_signature_invalid() {
        let ca = ca("fulcio");
        let root = root_json(&[(&ca, "2026-01-01T00:00:00Z", None)]);
        let e = check(&leaf(&ca, &LeafOpts { code_signing: false, ..GOOD }), &root, SIGNED_AT, &policy(None, None))
            .unwrap_err();
        assert_eq!((e.reason(), e.verdict()), ("NotCodeSigning", Verdict::SignatureInvalid));
    }

    #[test]
    fn identity_policies_need_exactly_one_of_each_pair() {
        assert!(Identity::new(Some("a"), Some("b"), Some("s"), None).is_err());
        assert!(Identity::new(None, None, Some("s"), None).is_err());
        assert!(Identity::new(Some("a"), None, None, Some("(")).is_err());
    }

    #[test]
    fn trusted_roots_are_rejected_whole_with_clear_errors() {
        let ca = ca("fulcio");
        let good = root_json(&[(&ca, "2026-01-01T00:00:00Z", None)]);
        let r = TrustedRoot::parse(&good).unwrap();
        assert_eq!((r.certificate_authorities.len(), r.tlogs.len()), (1, 1));
        assert_eq!(r.tlogs[0].log_id, <[u8; 32]>::from(sha2::Sha256::digest(b"not-checked-here")));
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        v["certificateAuthorities"][0]["validFor"] = serde_json::json!({});
        let e = TrustedRoot::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.contains("certificateAuthorities[0]: validFor.start is missing"), "{e}");
        v["certificateAuthorities"] = serde_json::json!([]);
        assert!(TrustedRoot::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err().contains("no certificate authority"));
        assert!(TrustedRoot::parse(b"{\"mediaType\":\"application/json\"}").is_err());
    }
    use sha2::Digest as _;
}
