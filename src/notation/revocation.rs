//! Revocation of the signing chain: which OCSP responders and CRLs to ask, and what their
//! answers say. The core never fetches: the shell POSTs the OCSP requests and GETs the CRL URLs
//! of [`requests`] and passes the bytes (or the failure) back in [`RevocationData`].

use super::x509::{Cert, PublicKey, verify_x509_signature};
use der::asn1::{GeneralizedTime, ObjectIdentifier};
use der::{Decode, Encode};
use jiff::Timestamp;
use std::collections::BTreeMap;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

/// Largest CRL accepted.
pub const MAX_CRL_BYTES: usize = 16 * 1024 * 1024;
/// How far in the future of `now` a CRL's thisUpdate or an OCSP response's thisUpdate may lie:
/// `now` is taken before the shell fetches, and clocks differ by a little. nextUpdate gets no
/// such grace.
pub const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

const ID_CE_CRL_REASONS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const ID_CE_INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
const ID_CE_DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
const ID_CE_ISSUING_DISTRIBUTION_POINT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");
const ID_CE_FRESHEST_CRL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");
const ID_CE_CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const ID_CE_AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");

/// What to fetch for one certificate of the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevocationRequest {
    /// Index in the chain (0 = leaf).
    pub index: usize,
    pub subject: String,
    /// CRL distribution points (HTTP), in the order to try them.
    pub crl_urls: Vec<String>,
    /// OCSP responders, in order: POST [`RevocationRequest::ocsp_request`] to each
    /// (`Content-Type: application/ocsp-request`) until one answers 2xx.
    pub ocsp_urls: Vec<String>,
    /// The DER OCSPRequest for this certificate (`None` when it names no responder).
    #[serde(skip)]
    pub ocsp_request: Option<Vec<u8>>,
}

/// The result of fetching one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Bytes(Vec<u8>),
    /// Network error, timeout, non-2xx status, oversized body: revocation unavailable.
    Failed(String),
}

/// What the shell fetched: CRLs by URL, OCSP responses by (chain index, responder URL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationData {
    pub crls: BTreeMap<String, Fetched>,
    pub ocsp: BTreeMap<(usize, String), Fetched>,
}

impl RevocationData {
    pub fn with_crl(mut self, url: impl Into<String>, fetched: Fetched) -> RevocationData {
        self.crls.insert(url.into(), fetched);
        self
    }
    pub fn with_ocsp(mut self, index: usize, url: impl Into<String>, fetched: Fetched) -> RevocationData {
        self.ocsp.insert((index, url.into()), fetched);
        self
    }
}

/// The status of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The certificate names no revocation source: "considered valid (not revoked)".
    NoRevocationInfo,
    Good,
    Revoked {
        serial: String,
        revoked_at: Timestamp,
    },
    Unknown(String),
}

/// Spec, "Certificate Revocation Evaluation": "Starting from Root to leaf certificate, for
/// each certificate in the certificate chain, perform the following steps".
pub fn requests(chain: &[Cert]) -> Vec<RevocationRequest> {
    chain
        .iter()
        .enumerate()
        .rev()
        .map(|(index, c)| {
            let ocsp_urls = c.ocsp_urls();
            let issuer = chain.get(index + 1).unwrap_or(c);
            let ocsp_request = if ocsp_urls.is_empty() { None } else { super::ocsp::request(c, issuer).ok() };
            RevocationRequest {
                index,
                subject: c.subject().to_string(),
                crl_urls: c.crl_urls(),
                ocsp_urls,
                ocsp_request,
            }
        })
        .collect()
}

/// Evaluates every certificate of `chain`, root to leaf. `authentic_time` is the
/// timestamped (or signing-authority) signing time, used against CRL invalidity dates.
pub fn check_chain(
    chain: &[Cert],
    data: &RevocationData,
    now: Timestamp,
    authentic_time: Option<Timestamp>,
) -> Vec<(usize, Status)> {
    (0..chain.len())
        .rev()
        .map(|i| {
            let issuer = chain.get(i + 1).unwrap_or(&chain[i]);
            (i, check_one(i, &chain[i], issuer, data, now, authentic_time))
        })
        .collect()
}

/// Spec: "If the certificate being validated doesn't include information OCSP or CRLs then no
/// revocation check is performed and the certificate is considered valid(not revoked)." / "If
/// both OCSP URLs and CDP URLs are present, then OCSP is preferred over CRLs. If revocation
/// status cannot be determined using OCSP because of any reason such as unavailability then
/// fallback to using CRLs for revocation check." / "If the certificate contains multiple OCSP
/// URLs, then each URL is invoked in sequential order, until a 2xx response is received" /
/// "If the certificate contains multiple CDP locations then each location download is
/// attempted in sequential order, until a 2xx response is received for any of the location."
/// / "If the CRL cannot be downloaded within the timeout threshold the revocation result will
/// be 'revocation unavailable'."
fn check_one(
    index: usize,
    cert: &Cert,
    issuer: &Cert,
    data: &RevocationData,
    now: Timestamp,
    authentic_time: Option<Timestamp>,
) -> Status {
    let crl_urls = cert.crl_urls();
    let ocsp_urls = cert.ocsp_urls();
    if crl_urls.is_empty() && ocsp_urls.is_empty() {
        return Status::NoRevocationInfo;
    }
    let mut failures = vec![];
    for url in &ocsp_urls {
        match data.ocsp.get(&(index, url.clone())) {
            None => failures.push(format!("OCSP {url}: not fetched")),
            Some(Fetched::Failed(e)) => failures.push(format!("OCSP {url}: {e}")),
            Some(Fetched::Bytes(b)) => {
                match super::ocsp::evaluate(b, cert, issuer, now) {
                    Status::Unknown(e) => failures.push(format!("{url}: {e}")),
                    determined => return determined,
                }
                break;
            }
        }
    }
    if crl_urls.is_empty() {
        return Status::Unknown(format!("no OCSP answer and no CRL: {}", failures.join("; ")));
    }
    for url in &crl_urls {
        match data.crls.get(url) {
            None => failures.push(format!("{url}: not fetched")),
            Some(Fetched::Failed(e)) => failures.push(format!("{url}: {e}")),
            Some(Fetched::Bytes(b)) => return evaluate_crl(b, cert, issuer, now, authentic_time),
        }
    }
    Status::Unknown(format!("no CRL could be fetched: {}", failures.join("; ")))
}

fn parse_crl(bytes: &[u8]) -> Result<CertificateList, String> {
    if bytes.len() > MAX_CRL_BYTES {
        return Err(format!("CRL is {} bytes, over the {MAX_CRL_BYTES}-byte limit", bytes.len()));
    }
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.contains("-----BEGIN X509 CRL-----")
    {
        use der::DecodePem;
        return CertificateList::from_pem(text.trim().as_bytes()).map_err(|e| format!("CRL PEM: {e}"));
    }
    CertificateList::from_der(bytes).map_err(|e| format!("CRL DER: {e}"))
}

/// A CRL's `nextUpdate`, for the shell's cache: how long the bytes may be reused. `None`
/// when the CRL does not parse or has no nextUpdate (then it is not cached). Nothing is
/// verified here: [`evaluate_crl`] verifies the CRL every time it is used.
pub fn crl_next_update(bytes: &[u8]) -> Option<Timestamp> {
    parse_crl(bytes).ok()?.tbs_cert_list.next_update.map(time_of)
}

fn time_of(t: x509_cert::time::Time) -> Timestamp {
    Timestamp::from_second(i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

/// Spec, "Revocation Checking with CRL": "1. Verify the CRL signature. 2. Verify that the CRL
/// is valid (not expired). A CRL is considered expired if the current date is after the
/// `NextUpdate` field in the CRL. 3. Look up the certificate's serial number in the CRL. If
/// the certificate's serial number is listed in the CRL, look for `InvalidityDate`. If CRL has
/// an invalidity date and artifact signature is timestamped then compare the invalidity date
/// with the timestamping date. If the invalidity date is before the timestamping date, the
/// certificate is considered revoked. If the invalidity date is not present in CRL, the
/// certificate is considered revoked. If the CRL is expired and the certificate is listed in
/// the CRL for any reason other than `certificate hold`, the certificate is considered
/// revoked." Base CRLs are signed by the issuing CA; indirect and delta CRLs are not
/// supported here (unknown status).
pub fn evaluate_crl(
    bytes: &[u8],
    cert: &Cert,
    issuer: &Cert,
    now: Timestamp,
    authentic_time: Option<Timestamp>,
) -> Status {
    let crl = match parse_crl(bytes) {
        Ok(c) => c,
        Err(e) => return Status::Unknown(e),
    };
    let tbs = &crl.tbs_cert_list;
    // "BaseCRLs are signed by the certificate issuing CAs."
    if tbs.issuer != *cert.issuer_name() || issuer.subject_name() != cert.issuer_name() {
        return Status::Unknown(format!(
            "CRL issuer {} is not the certificate's issuer {} (indirect CRLs are not supported)",
            tbs.issuer,
            cert.issuer()
        ));
    }
    if let Ok(Some((_, ku))) = issuer.certificate().tbs_certificate().get_extension::<KeyUsage>()
        && !ku.0.contains(KeyUsages::CRLSign)
    {
        return Status::Unknown(format!("CRL issuer {} may not sign CRLs (keyUsage lacks cRLSign)", issuer.subject()));
    }
    let key = match PublicKey::from_spki(issuer.spki()) {
        Ok(k) => k,
        Err(e) => return Status::Unknown(format!("CRL issuer key: {e}")),
    };
    let tbs_der = match tbs.to_der() {
        Ok(d) => d,
        Err(e) => return Status::Unknown(e.to_string()),
    };
    let Some(sig) = crl.signature.as_bytes() else {
        return Status::Unknown("CRL signature has unused bits".into());
    };
    if let Err(e) = verify_x509_signature(&key, &crl.signature_algorithm, &tbs_der, sig, None) {
        return Status::Unknown(format!("CRL signature does not verify: {e}"));
    }
    for ext in tbs.crl_extensions.iter().flatten() {
        match ext.extn_id {
            o if o == ID_CE_DELTA_CRL_INDICATOR => return Status::Unknown("delta CRLs are not supported".into()),
            o if o == ID_CE_FRESHEST_CRL => {
                return Status::Unknown("the CRL has a delta CRL (freshest CRL), which is not supported".into());
            }
            o if o == ID_CE_ISSUING_DISTRIBUTION_POINT => {
                match IssuingDistributionPoint::from_der(ext.extn_value.as_bytes()) {
                    Ok(idp)
                        if idp.indirect_crl || idp.only_some_reasons.is_some() || idp.only_contains_attribute_certs =>
                    {
                        return Status::Unknown("partitioned or indirect CRLs are not supported".into());
                    }
                    Ok(_) => {}
                    Err(e) => return Status::Unknown(format!("issuing distribution point: {e}")),
                }
            }
            o if o == ID_CE_CRL_NUMBER || o == ID_CE_AUTHORITY_KEY_IDENTIFIER => {}
            o if ext.critical => return Status::Unknown(format!("unknown critical CRL extension {o}")),
            _ => {}
        }
    }
    let this_update = time_of(tbs.this_update);
    if this_update > now + CLOCK_SKEW {
        return Status::Unknown(format!("CRL is not valid before {this_update}"));
    }
    let next_update = tbs.next_update.map(time_of);
    let expired = match next_update {
        Some(n) => now > n,
        None => true,
    };
    let serial = cert.certificate().tbs_certificate().serial_number();
    if let Some(entry) = tbs.revoked_certificates.iter().flatten().find(|r| &r.serial_number == serial) {
        let mut reason: Option<u8> = None;
        let mut invalidity: Option<Timestamp> = None;
        for ext in entry.crl_entry_extensions.iter().flatten() {
            if ext.extn_id == ID_CE_CRL_REASONS {
                // CRLReason ::= ENUMERATED: tag 0x0a, length 1, value.
                let v = ext.extn_value.as_bytes();
                if v.len() == 3 && v[0] == 0x0a && v[1] == 1 {
                    reason = Some(v[2]);
                }
            } else if ext.extn_id == ID_CE_INVALIDITY_DATE
                && let Ok(g) = GeneralizedTime::from_der(ext.extn_value.as_bytes())
            {
                invalidity =
                    Timestamp::from_second(i64::try_from(g.to_unix_duration().as_secs()).unwrap_or(i64::MAX)).ok();
            }
        }
        // removeFromCRL (8) only appears in delta CRLs: the certificate is no longer revoked.
        if reason == Some(8) {
            return if expired { Status::Unknown("CRL is expired".into()) } else { Status::Good };
        }
        const CERTIFICATE_HOLD: u8 = 6;
        if expired && reason == Some(CERTIFICATE_HOLD) {
            return Status::Unknown("certificate is on hold in an expired CRL".into());
        }
        if let (Some(inv), Some(at)) = (invalidity, authentic_time)
            && inv >= at
        {
            // Invalid only from after the authentic signing time: the signature predates it.
            return if expired { Status::Unknown("CRL is expired".into()) } else { Status::Good };
        }
        return Status::Revoked { serial: cert.serial_hex(), revoked_at: time_of(entry.revocation_date) };
    }
    if expired {
        return Status::Unknown(match next_update {
            Some(n) => format!("CRL expired at {n} (nextUpdate)"),
            None => "CRL has no nextUpdate".into(),
        });
    }
    Status::Good
}
