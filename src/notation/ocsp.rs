//! OCSP (RFC 6960) for the signing chain: the request the shell POSTs to a responder named in
//! a certificate's authority information access, and the evaluation of the response.
//!
//! CertIDs use SHA-256 (RFC 6960 allows any hash; SHA-1 is not carried by this crate set).
//! Structures are derived with `der` (`x509-ocsp` is not yet released for der 0.8).

use super::revocation::Status;
use super::x509::{Cert, HashAlg, PublicKey, oid, verify_x509_signature};
use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Any, Choice, Decode, Encode, Enumerated, Sequence};
use jiff::Timestamp;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

/// Largest OCSP response accepted.
pub const MAX_OCSP_RESPONSE_BYTES: usize = 256 * 1024;

const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// `CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber }`
#[derive(Clone, Debug, Sequence)]
struct CertId {
    hash_algorithm: AlgorithmIdentifierOwned,
    issuer_name_hash: OctetString,
    issuer_key_hash: OctetString,
    serial_number: SerialNumber,
}

#[derive(Sequence)]
struct Request {
    req_cert: CertId,
}

#[derive(Sequence)]
struct TbsRequest {
    request_list: Vec<Request>,
}

#[derive(Sequence)]
struct OcspRequest {
    tbs_request: TbsRequest,
}

#[derive(Clone, Copy, Debug, Enumerated, PartialEq, Eq)]
#[repr(u32)]
enum ResponseStatus {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

#[derive(Sequence)]
struct ResponseBytes {
    response_type: ObjectIdentifier,
    response: OctetString,
}

#[derive(Sequence)]
struct OcspResponse {
    response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

#[derive(Sequence)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    revocation_reason: Option<Any>,
}

#[derive(Choice)]
enum CertStatus {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

#[derive(Sequence)]
struct SingleResponse {
    cert_id: CertId,
    cert_status: CertStatus,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<x509_cert::ext::Extensions>,
}

#[derive(Sequence)]
struct ResponseData {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    /// `ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }`: not needed, the
    /// signature is tried with the issuer's key and the included certificates.
    responder_id: Any,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<x509_cert::ext::Extensions>,
}

#[derive(Sequence)]
struct BasicOcspResponse {
    tbs_response_data: Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<x509_cert::Certificate>>,
}

fn sha256_id() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: oid::SHA256, parameters: Some(Any::from(Null)) }
}

fn cert_id(cert: &Cert, issuer: &Cert, h: HashAlg, alg: AlgorithmIdentifierOwned) -> Result<CertId, String> {
    let name = issuer.subject_name().to_der().map_err(|e| e.to_string())?;
    let key = issuer.spki().subject_public_key.raw_bytes();
    Ok(CertId {
        hash_algorithm: alg,
        issuer_name_hash: OctetString::new(h.digest(&name)).map_err(|e| e.to_string())?,
        issuer_key_hash: OctetString::new(h.digest(key)).map_err(|e| e.to_string())?,
        serial_number: cert.certificate().tbs_certificate().serial_number().clone(),
    })
}

/// The DER `OCSPRequest` for `cert` issued by `issuer`: POST it to the responder with
/// `Content-Type: application/ocsp-request`.
pub fn request(cert: &Cert, issuer: &Cert) -> Result<Vec<u8>, String> {
    let id = cert_id(cert, issuer, HashAlg::Sha256, sha256_id())?;
    OcspRequest { tbs_request: TbsRequest { request_list: vec![Request { req_cert: id }] } }
        .to_der()
        .map_err(|e| e.to_string())
}

fn ts(g: GeneralizedTime) -> Timestamp {
    Timestamp::from_second(i64::try_from(g.to_unix_duration().as_secs()).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

/// The earliest `nextUpdate` of the single responses in an OCSP response, for the shell's
/// cache. `None` when the response does not parse or a single response has no nextUpdate
/// (then the shell caches it for a short TTL only). Nothing is verified here: [`evaluate`]
/// verifies the response every time it is used.
pub fn response_next_update(bytes: &[u8]) -> Option<Timestamp> {
    if bytes.len() > MAX_OCSP_RESPONSE_BYTES {
        return None;
    }
    let resp = OcspResponse::from_der(bytes).ok()?;
    let rb = resp.response_bytes?;
    let basic = BasicOcspResponse::from_der(rb.response.as_bytes()).ok()?;
    let data = ResponseData::from_der(&basic.tbs_response_data.to_der().ok()?).ok()?;
    let mut earliest: Option<Timestamp> = None;
    for s in &data.responses {
        let n = ts(s.next_update?);
        earliest = Some(earliest.map_or(n, |e| e.min(n)));
    }
    earliest
}

/// Spec, "Revocation Checking with OCSP": "Verify the signature of the OCSP response. This step
/// also includes verifying the OSCP response signing certificate is valid and trusted. The OCSP
/// signing certificate must be issued by the same CA as the certificate being verified or the
/// OCSP response must be signed by the issuing CA." / "Verify that the OCSP response is valid
/// (not expired). Response is considered expired if the current date is after the `NextUpdate`
/// field in the response." / "Verify that the OCSP response indicates that the certificate is
/// not revoked i.e `CertStatus` is `good`. If the certificate is revoked ... If the invalidity
/// date is not present in OCSP response, the certificate is considered revoked. If the
/// certificate status is `unknown`, the revocation status is considered `revocation
/// unavailable`." / "If `id-pkix-ocsp-nocheck` extension is not present on the OCSP signing
/// certificate then revocation checking must be performed using CRLs for the OCSP signing
/// certificate" (not done here: such a delegated responder yields an unknown status).
pub fn evaluate(bytes: &[u8], cert: &Cert, issuer: &Cert, now: Timestamp) -> Status {
    match evaluate_inner(bytes, cert, issuer, now) {
        Ok(s) => s,
        Err(e) => Status::Unknown(format!("OCSP: {e}")),
    }
}

fn evaluate_inner(bytes: &[u8], cert: &Cert, issuer: &Cert, now: Timestamp) -> Result<Status, String> {
    if bytes.len() > MAX_OCSP_RESPONSE_BYTES {
        return Err(format!("response is {} bytes, over the {MAX_OCSP_RESPONSE_BYTES}-byte limit", bytes.len()));
    }
    let resp = OcspResponse::from_der(bytes).map_err(|e| format!("not an OCSPResponse: {e}"))?;
    if resp.response_status != ResponseStatus::Successful {
        return Err(format!("responder status {:?}", resp.response_status));
    }
    let rb = resp.response_bytes.ok_or("no responseBytes")?;
    if rb.response_type != ID_PKIX_OCSP_BASIC {
        return Err(format!("response type {} is not id-pkix-ocsp-basic", rb.response_type));
    }
    let basic = BasicOcspResponse::from_der(rb.response.as_bytes()).map_err(|e| format!("BasicOCSPResponse: {e}"))?;
    let tbs_der = basic.tbs_response_data.to_der().map_err(|e| e.to_string())?;
    let data = ResponseData::from_der(&tbs_der).map_err(|e| format!("ResponseData: {e}"))?;
    let sig = basic.signature.as_bytes().ok_or("signature has unused bits")?;

    // Signed by the issuing CA, or by a responder certificate the issuing CA delegated to.
    let issuer_key = PublicKey::from_spki(issuer.spki())?;
    if verify_x509_signature(&issuer_key, &basic.signature_algorithm, &tbs_der, sig, None).is_err() {
        let responders: Vec<Cert> = basic
            .certs
            .iter()
            .flatten()
            .filter_map(|c| c.to_der().ok())
            .filter_map(|d| Cert::from_der(&d).ok())
            .collect();
        let delegated = responders
            .iter()
            .find(|r| {
                PublicKey::from_spki(r.spki())
                    .and_then(|k| verify_x509_signature(&k, &basic.signature_algorithm, &tbs_der, sig, None))
                    .is_ok()
            })
            .ok_or("the response is signed neither by the issuing CA nor by a certificate it includes")?;
        if delegated.issuer_name() != issuer.subject_name() || delegated.verify_signed_by(issuer).is_err() {
            return Err(format!("responder {} is not issued by {}", delegated.subject(), issuer.subject()));
        }
        let eku =
            delegated.certificate().tbs_certificate().get_extension::<ExtendedKeyUsage>().map_err(|e| e.to_string())?;
        if !eku.is_some_and(|(_, e)| e.0.contains(&ID_KP_OCSP_SIGNING)) {
            return Err(format!("responder {} lacks extendedKeyUsage OCSPSigning", delegated.subject()));
        }
        if !delegated.is_valid_at(now) {
            return Err(format!("responder certificate {} is not valid now", delegated.subject()));
        }
        let nocheck = delegated
            .certificate()
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .any(|e| e.extn_id == ID_PKIX_OCSP_NOCHECK);
        if !nocheck {
            return Err(format!(
                "responder {} has no id-pkix-ocsp-nocheck and its own revocation is not checked",
                delegated.subject()
            ));
        }
    }
    let _ = (&data.version, &data.responder_id, &data.produced_at, &data.response_extensions);

    let single = data
        .responses
        .iter()
        .find(|s| {
            let Some(h) = HashAlg::from_oid(s.cert_id.hash_algorithm.oid) else { return false };
            cert_id(cert, issuer, h, s.cert_id.hash_algorithm.clone()).is_ok_and(|want| {
                want.issuer_name_hash == s.cert_id.issuer_name_hash
                    && want.issuer_key_hash == s.cert_id.issuer_key_hash
                    && want.serial_number == s.cert_id.serial_number
            })
        })
        .ok_or("no response for this certificate (SHA-256/384/512 CertID)")?;
    let _ = &single.single_extensions;
    let this_update = ts(single.this_update);
    if this_update > now + super::revocation::CLOCK_SKEW {
        return Err(format!("response is not valid before {this_update}"));
    }
    if let Some(n) = single.next_update.map(ts)
        && now > n
    {
        return Err(format!("response expired at {n} (nextUpdate)"));
    }
    Ok(match &single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Revoked(info) => {
            let _ = &info.revocation_reason;
            Status::Revoked { serial: cert.serial_hex(), revoked_at: ts(info.revocation_time) }
        }
        CertStatus::Unknown(_) => return Err("the responder does not know the certificate".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_unsuccessful_responses_are_unknown() {
        // A self-signed certificate is enough to exercise the parser's refusals.
        let r = OcspResponse { response_status: ResponseStatus::TryLater, response_bytes: None }.to_der().unwrap();
        assert_eq!(r, vec![0x30, 0x03, 0x0a, 0x01, 0x03]);
        assert!(OcspResponse::from_der(&r).is_ok());
        assert!(OcspResponse::from_der(b"\x30\x00").is_err());
    }
}
