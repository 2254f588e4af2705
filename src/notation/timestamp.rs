//! RFC 3161 timestamp countersignatures (`io.cncf.notary.timestampSignature`): a CMS
//! SignedData over a TSTInfo whose message imprint is the hash of the envelope signature.
//!
//! CMS structures are RustCrypto `cms`'s; TSTInfo (RFC 3161 2.4.2) is derived here with `der`
//! (`x509-tsp` is not yet released for der 0.8).

use super::error::NotationError;
use super::x509::{self, Cert, HashAlg, PublicKey, Purpose};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence, Tagged as _};
use jiff::{SignedDuration, Timestamp};
use x509_cert::spki::AlgorithmIdentifierOwned;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// RFC 3628 baseline time-stamp policy.
const BASELINE_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

/// `MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }`
#[derive(Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// `Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL,
/// micros [1] INTEGER (1..999) OPTIONAL }`
#[derive(Sequence)]
struct Accuracy {
    seconds: Option<u32>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    millis: Option<u16>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    micros: Option<u16>,
}

/// RFC 3161 2.4.2 `TSTInfo`.
#[derive(Sequence)]
struct TstInfo {
    version: u8,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    /// GeneralizedTime, possibly with fractional seconds (which `der` rejects): parsed here.
    gen_time: Any,
    accuracy: Option<Accuracy>,
    ordering: Option<bool>,
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<Any>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm
/// id-sha256}, certHash OCTET STRING, issuerSerial IssuerSerial OPTIONAL }`
#[derive(Sequence)]
struct EssCertIdV2 {
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    issuer_serial: Option<Any>,
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies ... OPTIONAL }`
#[derive(Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    policies: Option<Any>,
}

/// A verified timestamp.
#[derive(Debug, Clone)]
pub struct VerifiedTimestamp {
    pub gen_time: Timestamp,
    pub accuracy: SignedDuration,
    /// `genTime - accuracy` and `genTime + accuracy` (RFC 3161 2.4.2).
    pub lower: Timestamp,
    pub upper: Timestamp,
    /// The TSA chain, signer first, up to the tsa store certificate.
    pub tsa_chain: Vec<Cert>,
}

fn invalid(detail: impl Into<String>) -> NotationError {
    NotationError::InvalidTimestamp { detail: detail.into() }
}

/// `YYYYMMDDHHMMSS[.f+]Z`
fn parse_generalized_time(any: &Any) -> Result<Timestamp, String> {
    if any.tag() != der::Tag::GeneralizedTime {
        return Err("genTime is not a GeneralizedTime".into());
    }
    let s = std::str::from_utf8(any.value()).map_err(|_| "genTime is not ASCII")?;
    let body = s.strip_suffix('Z').ok_or("genTime must be UTC (end with Z)")?;
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("genTime {s:?} is malformed"));
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<i16>().unwrap_or(0);
    let dt = jiff::civil::date(n(0..4), n(4..6) as i8, n(6..8) as i8).at(
        n(8..10) as i8,
        n(10..12) as i8,
        n(12..14) as i8,
        0,
    );
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse().unwrap_or(0)
    };
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| format!("genTime {s:?}: {e}"))?.timestamp();
    ts.checked_add(SignedDuration::from_nanos(nanos)).map_err(|e| e.to_string())
}

fn attr(attrs: &x509_cert::attr::Attributes, o: ObjectIdentifier) -> Option<&x509_cert::attr::Attribute> {
    attrs.iter().find(|a| a.oid == o)
}

fn single_value(a: &x509_cert::attr::Attribute) -> Result<&Any, NotationError> {
    let mut it = a.values.iter();
    match (it.next(), it.next()) {
        (Some(v), None) => Ok(v),
        _ => Err(invalid(format!("attribute {} must have exactly one value", a.oid))),
    }
}

/// Verifies a TimeStampToken over `signature` against the `tsa` trust store certificates.
///
/// Spec, "Validate Trusted Timestamp" (`notary.x509`): "Validate that the timestamp hash in
/// `TSTInfo.messageImprint` matches the hash of the signature to which the timestamp was
/// applied." / "Validate that the timestamp signing certificate satisfies certificate
/// requirements." / "Validate that the timestamp signing algorithm satisfies algorithm
/// requirements." / "Validate the `signing-certificate` or `signing-certificate-v2` attribute
/// of timestamp CMS." / "Validate that timestamp certificate and certificate chain leads to a
/// trusted TSA certificate as per value configured in `trustStore`." / "Retrieve the
/// timestamp's time from `TSTInfo.genTime`." / "If the accuracy is explicitly specified in
/// `TSTInfo.accuracy`, use that value. If the accuracy is not explicitly specified and
/// `TSTInfo.policy` is the baseline time-stamp policy (RFC-3628), use accuracy of 1 second.
/// Otherwise, use an accuracy of 0."
pub fn verify(token: &[u8], signature: &[u8], tsa_roots: &[Cert]) -> Result<VerifiedTimestamp, NotationError> {
    let ci = ContentInfo::from_der(token).map_err(|e| invalid(format!("not a CMS ContentInfo: {e}")))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(invalid(format!("content type {} is not signedData", ci.content_type)));
    }
    let sd: SignedData = ci.content.decode_as().map_err(|e| invalid(format!("SignedData: {e}")))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(invalid("encapsulated content is not a TSTInfo"));
    }
    let econtent = sd.encap_content_info.econtent.as_ref().ok_or_else(|| invalid("no encapsulated TSTInfo"))?;
    let tst_der: OctetString = econtent.decode_as().map_err(|e| invalid(format!("eContent: {e}")))?;
    let tst = TstInfo::from_der(tst_der.as_bytes()).map_err(|e| invalid(format!("TSTInfo: {e}")))?;
    if tst.version != 1 {
        return Err(invalid(format!("TSTInfo version {} is not 1", tst.version)));
    }

    // messageImprint over the signature bytes.
    let imprint_alg = HashAlg::from_oid(tst.message_imprint.hash_algorithm.oid).ok_or_else(|| {
        invalid(format!("message imprint hash {} is not SHA-256/384/512", tst.message_imprint.hash_algorithm.oid))
    })?;
    if imprint_alg.digest(signature) != tst.message_imprint.hashed_message.as_bytes() {
        return Err(invalid("message imprint is not the hash of the envelope signature"));
    }

    // One signer.
    let mut signers = sd.signer_infos.0.iter();
    let si = match (signers.next(), signers.next()) {
        (Some(s), None) => s,
        _ => return Err(invalid("the token must have exactly one signer")),
    };
    let certs: Vec<Cert> = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => c.to_der().ok(),
                    _ => None,
                })
                .map(|der| Cert::from_der(&der))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| invalid(format!("token certificate: {e}")))?
        .unwrap_or_default();
    let signer = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => certs.iter().find(|c| {
            c.issuer_name() == &isn.issuer && c.certificate().tbs_certificate().serial_number() == &isn.serial_number
        }),
        SignerIdentifier::SubjectKeyIdentifier(skid) => certs.iter().find(|c| {
            c.certificate()
                .tbs_certificate()
                .extensions()
                .into_iter()
                .flatten()
                .find(|e| e.extn_id == ID_SUBJECT_KEY_IDENTIFIER)
                .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
                .is_some_and(|v| v.as_bytes() == skid.0.as_bytes())
        }),
    }
    .ok_or_else(|| invalid("the token does not include its signing certificate"))?
    .clone();

    // Signed attributes: content type, message digest, signing certificate (v2).
    let digest_alg = HashAlg::from_oid(si.digest_alg.oid)
        .ok_or_else(|| invalid(format!("signer digest algorithm {} is not SHA-256/384/512", si.digest_alg.oid)))?;
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| invalid("the signer has no signed attributes"))?;
    let ct: ObjectIdentifier =
        single_value(attr(attrs, ID_CONTENT_TYPE).ok_or_else(|| invalid("no content-type attribute"))?)?
            .decode_as()
            .map_err(|e| invalid(format!("content-type attribute: {e}")))?;
    if ct != ID_CT_TST_INFO {
        return Err(invalid("content-type attribute is not TSTInfo"));
    }
    let md: OctetString =
        single_value(attr(attrs, ID_MESSAGE_DIGEST).ok_or_else(|| invalid("no message-digest attribute"))?)?
            .decode_as()
            .map_err(|e| invalid(format!("message-digest attribute: {e}")))?;
    if md.as_bytes() != digest_alg.digest(tst_der.as_bytes()).as_slice() {
        return Err(invalid("message-digest attribute does not match the TSTInfo"));
    }
    match (attr(attrs, ID_SIGNING_CERTIFICATE_V2), attr(attrs, ID_SIGNING_CERTIFICATE)) {
        (Some(a), _) => {
            let sc: SigningCertificateV2 =
                single_value(a)?.decode_as().map_err(|e| invalid(format!("signing-certificate-v2: {e}")))?;
            let first = sc.certs.first().ok_or_else(|| invalid("signing-certificate-v2 lists no certificate"))?;
            let h = match &first.hash_algorithm {
                None => HashAlg::Sha256,
                Some(a) => {
                    HashAlg::from_oid(a.oid).ok_or_else(|| invalid("signing-certificate-v2 hash is not SHA-2"))?
                }
            };
            if h.digest(signer.der()) != first.cert_hash.as_bytes() {
                return Err(invalid("signing-certificate-v2 does not name the signing certificate"));
            }
        }
        (None, Some(_)) => return Err(invalid("signing-certificate (ESSCertID, SHA-1) is not supported; use v2")),
        (None, None) => return Err(invalid("no signing-certificate or signing-certificate-v2 attribute")),
    }
    let signed_attrs_der = attrs.to_der().map_err(|e| invalid(format!("signed attributes: {e}")))?;
    let key = PublicKey::from_spki(signer.spki()).map_err(|e| invalid(format!("TSA key: {e}")))?;
    x509::verify_x509_signature(
        &key,
        &si.signature_algorithm,
        &signed_attrs_der,
        si.signature.as_bytes(),
        Some(digest_alg),
    )
    .map_err(|e| invalid(format!("token signature does not verify: {e}")))?;

    // genTime and accuracy.
    let gen_time = parse_generalized_time(&tst.gen_time).map_err(invalid)?;
    let accuracy = match &tst.accuracy {
        Some(a) => {
            SignedDuration::from_secs(i64::from(a.seconds.unwrap_or(0)))
                + SignedDuration::from_millis(i64::from(a.millis.unwrap_or(0)))
                + SignedDuration::from_micros(i64::from(a.micros.unwrap_or(0)))
        }
        None if tst.policy == BASELINE_POLICY => SignedDuration::from_secs(1),
        None => SignedDuration::ZERO,
    };
    let _ = (&tst.serial_number, &tst.ordering, &tst.nonce, &tst.tsa, &tst.extensions);
    let lower = gen_time.checked_sub(accuracy).map_err(|e| invalid(e.to_string()))?;
    let upper = gen_time.checked_add(accuracy).map_err(|e| invalid(e.to_string()))?;

    // The TSA chain: from the signer through the token's certificates to a tsa store one.
    if tsa_roots.is_empty() {
        return Err(NotationError::UntrustedTimestamp { detail: "the trust policy has no tsa trust store".into() });
    }
    let mut chain = vec![signer];
    loop {
        let cur = chain.last().expect("non-empty");
        if tsa_roots.contains(cur) {
            break;
        }
        if chain.len() > x509::MAX_CHAIN_LENGTH {
            return Err(invalid("TSA certificate chain is too long"));
        }
        let issuer = tsa_roots
            .iter()
            .chain(certs.iter())
            .find(|c| c.subject_name() == cur.issuer_name() && cur.verify_signed_by(c).is_ok() && *c != cur)
            .cloned();
        match issuer {
            Some(i) => chain.push(i),
            None => {
                return Err(NotationError::UntrustedTimestamp {
                    detail: format!(
                        "TSA certificate {} does not chain to a tsa trust store certificate",
                        cur.subject()
                    ),
                });
            }
        }
    }
    x509::validate_chain(&chain, Purpose::Timestamping, false)
        .map_err(|f| invalid(format!("TSA certificate {} ({}): {}", f.index, f.subject, f.detail)))?;
    for c in &chain {
        if !c.is_valid_at(gen_time) {
            return Err(invalid(format!(
                "TSA certificate {} is not valid at genTime {gen_time} ({} to {})",
                c.subject(),
                c.not_before(),
                c.not_after()
            )));
        }
    }
    Ok(VerifiedTimestamp { gen_time, accuracy, lower, upper, tsa_chain: chain })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_with_and_without_fractions() {
        let any = |s: &str| Any::new(der::Tag::GeneralizedTime, s.as_bytes()).unwrap();
        assert_eq!(parse_generalized_time(&any("20260102030405Z")).unwrap(), "2026-01-02T03:04:05Z".parse().unwrap());
        assert_eq!(
            parse_generalized_time(&any("20260102030405.25Z")).unwrap(),
            "2026-01-02T03:04:05.25Z".parse().unwrap()
        );
        assert!(parse_generalized_time(&any("20260102030405+0100")).is_err());
        assert!(parse_generalized_time(&any("2026010203040Z")).is_err());
    }

    #[test]
    fn garbage_tokens_are_invalid_timestamps() {
        for t in [&b""[..], b"\x30\x00", b"\x30\x03\x06\x01\x00"] {
            assert_eq!(verify(t, b"sig", &[]).unwrap_err().reason(), "InvalidTimestamp");
        }
    }
}
