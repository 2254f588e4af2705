//! The signed certificate timestamp (SCT) embedded in a Fulcio certificate, verified with a
//! certificate transparency log key of the trusted root: a pure core (the certificate's DER,
//! its issuer's key and the trusted logs in; the log that vouched for it, or a typed reason,
//! out).
//!
//! Sigstore client specification, "Certificate": "the client MUST verify the SCT ... embedded
//! in the certificate" against a CT log of the trusted root. RFC 6962:
//! - §3.3: the SCTs of a precertificate are embedded in the final certificate in the X.509v3
//!   extension 1.3.6.1.4.1.11129.2.4.2, whose value is an OCTET STRING holding a
//!   `SignedCertificateTimestampList` (`opaque SerializedSCT<1..2^16-1>` entries in a
//!   `<1..2^16-1>` list);
//! - §3.2: `digitally-signed struct { Version sct_version; SignatureType signature_type =
//!   certificate_timestamp; uint64 timestamp; LogEntryType entry_type; select(entry_type) {
//!   case precert_entry: PreCert signed_entry; }; CtExtensions extensions; }`, where `PreCert`
//!   is `opaque issuer_key_hash[32]` (the SHA-256 of the issuer's SubjectPublicKeyInfo) and
//!   `TBSCertificate tbs_certificate<1..2^24-1>`, "the DER encoding of the TBS component of the
//!   Precertificate", which is the final certificate's TBS without the SCT list extension;
//! - §3.2: `log_id` is the SHA-256 of the log's public key.

use super::keys::CosignKey;
use super::trusted_root::LogInstance;
use der::asn1::AnyRef;
use der::{Decode, Encode, Header, Length, Reader, SliceReader, Tag, TagNumber, Tagged};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_cert::Certificate;

/// The X.509v3 extension that embeds SCTs (RFC 6962 §3.3).
pub const SCT_LIST_OID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// Typed failures, with stable reasons.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SctError {
    #[error("the signing certificate embeds no signed certificate timestamp (RFC 6962 §3.3)")]
    Missing,
    #[error("the embedded signed certificate timestamps cannot be read: {0}")]
    Malformed(String),
    #[error("no embedded SCT verifies with a CT log of the trusted root ({0})")]
    Untrusted(String),
}

impl SctError {
    pub fn reason(&self) -> &'static str {
        match self {
            SctError::Missing => "SctMissing",
            SctError::Malformed(_) => "SctMalformed",
            SctError::Untrusted(_) => "SctUntrusted",
        }
    }
}

/// One SCT, as the log signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    pub log_id: [u8; 32],
    /// Milliseconds since the epoch.
    pub timestamp_ms: u64,
    pub extensions: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A TLS-style reader over a byte slice (RFC 5246 §4 vectors, big-endian lengths).
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SctError> {
        if self.0.len() < n {
            return Err(SctError::Malformed("truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn uint(&mut self, n: usize) -> Result<u64, SctError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
    fn vec16(&mut self) -> Result<&'a [u8], SctError> {
        let n = self.uint(2)? as usize;
        self.take(n)
    }
}

/// The SCTs of the SCT list extension's value (the OCTET STRING's content).
pub fn parse_sct_list(list: &[u8]) -> Result<Vec<Sct>, SctError> {
    let mut outer = Tls(list);
    let mut entries = Tls(outer.vec16()?);
    if !outer.0.is_empty() {
        return Err(SctError::Malformed("bytes after the SCT list".into()));
    }
    let mut out = vec![];
    while !entries.0.is_empty() {
        let mut sct = Tls(entries.vec16()?);
        // RFC 6962 §3.2: `Version sct_version` is v1(0); other versions are not understood.
        if sct.uint(1)? != 0 {
            continue;
        }
        let log_id: [u8; 32] = sct.take(32)?.try_into().expect("32 bytes");
        let timestamp_ms = sct.uint(8)?;
        let extensions = sct.vec16()?.to_vec();
        // `digitally-signed`: SignatureAndHashAlgorithm (2 bytes), then `opaque signature<0..2^16-1>`.
        sct.take(2)?;
        let signature = sct.vec16()?.to_vec();
        out.push(Sct { log_id, timestamp_ms, extensions, signature });
    }
    Ok(out)
}

fn der_err(e: der::Error) -> SctError {
    SctError::Malformed(e.to_string())
}

/// The precertificate's TBS: the certificate's TBS, DER-encoded, without the SCT list
/// extension (every other element byte for byte as it was).
fn precert_tbs(cert: &Certificate) -> Result<Vec<u8>, SctError> {
    let tbs = cert.tbs_certificate().to_der().map_err(der_err)?;
    let mut reader = SliceReader::new(&tbs).map_err(der_err)?;
    let outer = Header::decode(&mut reader).map_err(der_err)?;
    if outer.tag() != Tag::Sequence {
        return Err(SctError::Malformed("the TBS certificate is not a SEQUENCE".into()));
    }
    let extensions_tag = Tag::ContextSpecific { constructed: true, number: TagNumber(3) };
    let mut body = vec![];
    while !reader.is_finished() {
        let element = AnyRef::decode(&mut reader).map_err(der_err)?;
        if element.tag() != extensions_tag {
            element.encode_to_vec(&mut body).map_err(der_err)?;
            continue;
        }
        let kept: Vec<x509_cert::ext::Extension> = cert
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .filter(|e| e.extn_id != SCT_LIST_OID)
            .cloned()
            .collect();
        let list = kept.to_der().map_err(der_err)?;
        let len = Length::try_from(list.len()).map_err(der_err)?;
        Header::new(extensions_tag, len).encode_to_vec(&mut body).map_err(der_err)?;
        body.extend_from_slice(&list);
    }
    let mut out = vec![];
    Header::new(Tag::Sequence, Length::try_from(body.len()).map_err(der_err)?)
        .encode_to_vec(&mut out)
        .map_err(der_err)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The bytes an embedded SCT's log signed (RFC 6962 §3.2, `precert_entry`).
pub fn signed_data(sct: &Sct, issuer_key_hash: &[u8; 32], precert_tbs: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(precert_tbs.len() + 64);
    m.push(0); // sct_version v1
    m.push(0); // signature_type certificate_timestamp
    m.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    m.extend_from_slice(issuer_key_hash);
    let n = precert_tbs.len();
    m.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]); // opaque <1..2^24-1>
    m.extend_from_slice(precert_tbs);
    m.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
    m.extend_from_slice(&sct.extensions);
    m
}

/// Verifies the certificate's embedded SCTs: one must be signed by a CT log of the trusted
/// root whose `validFor` contains the SCT's time. `issuer_spki_der` is the SubjectPublicKeyInfo
/// of the CA certificate that issued `leaf_der`. Returns the log and the SCT's time.
pub fn verify_embedded_sct<'a>(
    leaf_der: &[u8],
    issuer_spki_der: &[u8],
    ctlogs: &'a [LogInstance],
) -> Result<(&'a LogInstance, Timestamp), SctError> {
    let cert = Certificate::from_der(leaf_der).map_err(der_err)?;
    let ext = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == SCT_LIST_OID)
        .ok_or(SctError::Missing)?;
    // RFC 6962 §3.3: the extension's value is an OCTET STRING wrapping the TLS-encoded list.
    let inner = der::asn1::OctetString::from_der(ext.extn_value.as_bytes()).map_err(der_err)?;
    let scts = parse_sct_list(inner.as_bytes())?;
    if scts.is_empty() {
        return Err(SctError::Missing);
    }
    let tbs = precert_tbs(&cert)?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(issuer_spki_der).into();
    let mut faults = vec![];
    for sct in &scts {
        let Some(log) = ctlogs.iter().find(|l| l.log_id == sct.log_id) else {
            faults.push(format!("log {} is not in the trusted root", hex::encode(sct.log_id)));
            continue;
        };
        let at =
            Timestamp::from_millisecond(sct.timestamp_ms as i64).map_err(|e| SctError::Malformed(e.to_string()))?;
        if !log.valid_for.contains(at) {
            faults.push(format!("log {} was not trusted at {at}", log.base_url));
            continue;
        }
        let key = CosignKey::from_spki_der(&log.base_url, &log.spki_der).map_err(SctError::Malformed)?;
        if key.verify(&signed_data(sct, &issuer_key_hash, &tbs), &sct.signature) {
            return Ok((log, at));
        }
        faults.push(format!("the SCT of log {} does not verify", log.base_url));
    }
    Err(SctError::Untrusted(faults.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_read_and_truncation_or_trailing_bytes_refused() {
        let mut sct = vec![0u8];
        sct.extend([7u8; 32]);
        sct.extend(1_700_000_000_000u64.to_be_bytes());
        sct.extend([0, 0]); // no extensions
        sct.extend([4, 3]); // SHA-256, ECDSA
        sct.extend([0, 2, 0xAA, 0xBB]);
        let mut entry = (sct.len() as u16).to_be_bytes().to_vec();
        entry.extend(&sct);
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend(&entry);
        let parsed = parse_sct_list(&list).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!((parsed[0].log_id, parsed[0].timestamp_ms), ([7u8; 32], 1_700_000_000_000));
        assert_eq!(parsed[0].signature, vec![0xAA, 0xBB]);
        assert!(parse_sct_list(&list[..list.len() - 1]).is_err());
        let mut trailing = list.clone();
        trailing.push(0);
        assert!(parse_sct_list(&trailing).is_err());
    }
}
