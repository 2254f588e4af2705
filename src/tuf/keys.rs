//! Notary public keys: parsing, key IDs and signature verification.
//!
//! Key types: `ecdsa`, `ecdsa-x509`, `rsa`, `rsa-x509`, `ed25519`. `keyval.public` is base64
//! of SPKI DER (`ecdsa`, `rsa`), base64 of a PEM certificate (`*-x509`) or the raw 32 bytes
//! (`ed25519`). Signature methods: `ecdsa` (raw r||s, P-256, SHA-256), `eddsa` (Ed25519),
//! `rsapss` (RSASSA-PSS, SHA-256, MGF1-SHA256, salt 32) and `rsapkcs1v15`.

use super::cjson::to_canonical;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spki::{DecodePublicKey, EncodePublicKey};

/// A key as it appears in metadata (`keys` of root, `delegations.keys` of targets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDoc {
    pub keytype: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    pub public: String,
    #[serde(default)]
    pub private: Option<String>,
}

/// The verifying half of a key.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// The uncompressed SEC1 point of a P-256 key (checked on the curve when parsed).
    EcdsaP256(Vec<u8>),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(Box<rsa::RsaPublicKey>),
}

/// A parsed, usable public key with its two Notary key IDs.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// sha256 of the canonical key JSON, as listed in metadata (over the certificate for x509).
    pub id: String,
    /// The ID over the bare public key (`ecdsa`/`rsa` form), used by the notary CLI.
    pub canonical_id: String,
    pub keytype: String,
    pub verifier: Verifier,
    /// SPKI DER of the public key, used to compare with pinned keys.
    pub spki_der: Vec<u8>,
    /// `notAfter` of the certificate, for x509 key types.
    pub cert_not_after: Option<Timestamp>,
    /// `notBefore` of the certificate, for x509 key types.
    pub cert_not_before: Option<Timestamp>,
    /// The subject common name of the certificate, for x509 key types (a root certificate
    /// names the GUN it anchors).
    pub cert_common_name: Option<String>,
}

/// Key ID as Notary computes it: sha256 hex of the canonical JSON of
/// `{"keytype":..,"keyval":{"private":null,"public":..}}`.
pub fn key_id(keytype: &str, public_b64: &str) -> String {
    let doc = KeyDoc { keytype: keytype.to_string(), keyval: KeyVal { public: public_b64.to_string(), private: None } };
    let bytes = to_canonical(&doc).expect("key documents contain no floats");
    hex::encode(Sha256::digest(&bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl PublicKey {
    /// Parses a metadata key; `listed_id` is the ID it was listed under and must match the
    /// ID we compute (key IDs are computed, never trusted from the file).
    pub fn from_doc(listed_id: &str, doc: &KeyDoc) -> Result<PublicKey, String> {
        let id = key_id(&doc.keytype, &doc.keyval.public);
        if id != listed_id {
            return Err(format!("listed as {listed_id} but its content hashes to {id}"));
        }
        let raw = B64.decode(doc.keyval.public.as_bytes()).map_err(|e| format!("public key is not base64: {e}"))?;
        let (verifier, spki_der, cert, bare_type) = match doc.keytype.as_str() {
            "ecdsa" => {
                let (v, der) = ecdsa_from_spki(&raw)?;
                (v, der, None, "ecdsa")
            }
            "rsa" => {
                let (v, der) = rsa_from_spki(&raw)?;
                (v, der, None, "rsa")
            }
            "ed25519" => {
                let bytes: [u8; 32] = raw
                    .as_slice()
                    .try_into()
                    .map_err(|_| format!("ed25519 key is {} bytes, expected 32", raw.len()))?;
                let vk =
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| format!("invalid ed25519 key: {e}"))?;
                (Verifier::Ed25519(vk), raw.clone(), None, "ed25519")
            }
            "ecdsa-x509" | "rsa-x509" => {
                let pem = std::str::from_utf8(&raw).map_err(|_| "certificate is not PEM text".to_string())?;
                let cert = cert_info(pem)?;
                let (v, der) =
                    if doc.keytype == "ecdsa-x509" { ecdsa_from_spki(&cert.spki)? } else { rsa_from_spki(&cert.spki)? };
                (v, der, Some(cert), if doc.keytype == "ecdsa-x509" { "ecdsa" } else { "rsa" })
            }
            other => return Err(format!("unsupported key type {other:?}")),
        };
        let canonical_id = if bare_type == "ed25519" { id.clone() } else { key_id(bare_type, &B64.encode(&spki_der)) };
        Ok(PublicKey {
            id,
            canonical_id,
            keytype: doc.keytype.clone(),
            verifier,
            spki_der,
            cert_not_after: cert.as_ref().map(|c| c.not_after),
            cert_not_before: cert.as_ref().map(|c| c.not_before),
            cert_common_name: cert.and_then(|c| c.common_name),
        })
    }

    /// Why the certificate of this key does not make it usable at `now` (bare keys always are).
    pub fn unusable_at(&self, now: Timestamp) -> Option<CertValidity> {
        match (self.cert_not_before, self.cert_not_after) {
            (Some(nb), _) if now < nb => Some(CertValidity::NotYetValid(nb)),
            (_, Some(na)) if na <= now => Some(CertValidity::Expired(na)),
            _ => None,
        }
    }

    /// Verifies `sig` over `msg` with `method`. A method that does not fit the key type fails.
    pub fn verify(&self, method: &str, sig: &[u8], msg: &[u8]) -> bool {
        match (&self.verifier, method) {
            // Notary's `ecdsa` method: raw r||s (64 bytes) over SHA-256 of the message, as
            // ring's ECDSA_P256_SHA256_FIXED verifies it. ring rather than RustCrypto's p256:
            // 4x faster per verification, more in a cold process (BENCHMARKS.md, "p256 or a
            // faster ECDSA"); p256 still parses and checks the key.
            (Verifier::EcdsaP256(point), "ecdsa") => {
                ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            (Verifier::Ed25519(vk), "eddsa" | "ed25519") => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(s) => vk.verify_strict(msg, &s).is_ok(),
                Err(_) => false,
            },
            (Verifier::Rsa(pk), "rsapss") => {
                use rsa::signature::Verifier as _;
                let vk = rsa::pss::VerifyingKey::<Sha256>::new((**pk).clone());
                match rsa::pss::Signature::try_from(sig) {
                    Ok(s) => vk.verify(msg, &s).is_ok(),
                    Err(_) => false,
                }
            }
            (Verifier::Rsa(pk), "rsapkcs1v15") => {
                use rsa::signature::Verifier as _;
                let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new((**pk).clone());
                match rsa::pkcs1v15::Signature::try_from(sig) {
                    Ok(s) => vk.verify(msg, &s).is_ok(),
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }
}

fn ecdsa_from_spki(der: &[u8]) -> Result<(Verifier, Vec<u8>), String> {
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| format!("not a P-256 public key: {e}"))?;
    let der = vk.to_public_key_der().map_err(|e| e.to_string())?.as_bytes().to_vec();
    Ok((Verifier::EcdsaP256(vk.to_sec1_point(false).as_bytes().to_vec()), der))
}

fn rsa_from_spki(der: &[u8]) -> Result<(Verifier, Vec<u8>), String> {
    let pk = rsa::RsaPublicKey::from_public_key_der(der).map_err(|e| format!("not an RSA public key: {e}"))?;
    let der = pk.to_public_key_der().map_err(|e| e.to_string())?.as_bytes().to_vec();
    Ok((Verifier::Rsa(Box::new(pk)), der))
}

/// Why a certificate is not valid at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertValidity {
    NotYetValid(Timestamp),
    Expired(Timestamp),
}

/// What trust decisions read from a key's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// SPKI DER of the certified key.
    pub spki: Vec<u8>,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// Subject CN, when the subject has one.
    pub common_name: Option<String>,
}

/// Key, validity and subject CN of a PEM certificate.
pub fn cert_info(pem: &str) -> Result<CertInfo, String> {
    use x509_cert::der::{DecodePem, Encode};
    let cert =
        x509_cert::Certificate::from_pem(pem.trim().as_bytes()).map_err(|e| format!("invalid certificate: {e}"))?;
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info().to_der().map_err(|e| e.to_string())?;
    let time = |t: &x509_cert::time::Time| {
        Timestamp::from_second(t.to_unix_duration().as_secs() as i64).map_err(|e| e.to_string())
    };
    let common_name =
        tbs.subject().common_name().map_err(|e| format!("certificate subject is not readable: {e}"))?.map(String::from);
    Ok(CertInfo {
        spki,
        not_before: time(&tbs.validity().not_before)?,
        not_after: time(&tbs.validity().not_after)?,
        common_name,
    })
}

/// SPKI DER and `notAfter` of a PEM certificate.
pub fn cert_spki(pem: &str) -> Result<(Vec<u8>, Timestamp), String> {
    cert_info(pem).map(|c| (c.spki, c.not_after))
}

/// Notary's `MatchCNToGun` (trustpinning/certs.go): "checks that the common name in a cert is
/// valid for the given gun. This allows wildcards as suffixes, e.g. `namespace/*`".
pub fn common_name_matches_gun(common_name: &str, gun: &str) -> bool {
    match common_name.strip_suffix('*') {
        Some(prefix) => gun.starts_with(prefix.trim_end_matches('*')),
        None => common_name == gun,
    }
}

/// A root key pinned by the operator: a PEM public key or a PEM certificate, compared with
/// metadata keys by public key (SPKI DER), so either form pins the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedKey {
    pub name: String,
    pub spki_der: Vec<u8>,
    /// The canonical (bare public key) ID, for display and status.
    pub canonical_id: String,
}

impl PinnedKey {
    pub fn from_pem(name: &str, pem: &str) -> Result<PinnedKey, String> {
        let text = pem.trim();
        let spki_der = if text.contains("-----BEGIN CERTIFICATE-----") {
            cert_spki(text)?.0
        } else if text.contains("-----BEGIN PUBLIC KEY-----") {
            let body: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
            B64.decode(body.as_bytes()).map_err(|e| format!("public key PEM is not base64: {e}"))?
        } else {
            return Err(format!(
                "root key {name:?} is neither a PEM public key nor a PEM certificate (expected a \
                 '-----BEGIN PUBLIC KEY-----' or '-----BEGIN CERTIFICATE-----' block)"
            ));
        };
        // Normalize through the key parser so that equal keys compare equal.
        let (bare, der) = if let Ok((_, der)) = ecdsa_from_spki(&spki_der) {
            ("ecdsa", der)
        } else if let Ok((_, der)) = rsa_from_spki(&spki_der) {
            ("rsa", der)
        } else {
            return Err(format!("root key {name:?} is not a P-256 ECDSA or RSA public key"));
        };
        let canonical_id = key_id(bare, &B64.encode(&der));
        Ok(PinnedKey { name: name.to_string(), spki_der: der, canonical_id })
    }

    pub fn matches(&self, key: &PublicKey) -> bool {
        self.spki_der == key.spki_der
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A P-256 key and certificate generated with openssl for these tests.
    const SPKI_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAExzuFnMXxBfk5nhG6mzVU22LUIXDA
MCX9jbQJOjveVn/eW72oAvuhgxcEKy5kRmxKs38HQFxAc/xrReqi8A70mA==
-----END PUBLIC KEY-----";

    #[test]
    fn ecdsa_verification_by_ring_agrees_with_rustcrypto_p256_on_every_case() {
        use p256::ecdsa::signature::{Signer as _, Verifier as _};
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let vk = *sk.verifying_key();
        let public = B64.encode(vk.to_public_key_der().unwrap().as_bytes());
        let doc = KeyDoc { keytype: "ecdsa".into(), keyval: KeyVal { public: public.clone(), private: None } };
        let key = PublicKey::from_doc(&key_id("ecdsa", &public), &doc).unwrap();
        let msg = br#"{"_type":"Targets","version":2}"#;
        let sig: p256::ecdsa::Signature = sk.sign(msg);
        // The same signature with s and n - s: ECDSA accepts both, as Go's crypto/ecdsa does.
        let flipped_s = p256::ecdsa::Signature::from_scalars(*sig.r(), -*sig.s()).unwrap();
        let mut zero_r = sig.to_bytes().to_vec();
        zero_r[..32].fill(0);
        let mut other_msg = msg.to_vec();
        other_msg[3] ^= 1;
        let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
            ("valid", sig.to_bytes().to_vec(), msg),
            ("s replaced by n - s", flipped_s.to_bytes().to_vec(), msg),
            ("one bit of the message flipped", sig.to_bytes().to_vec(), &other_msg),
            ("r = 0", zero_r, msg),
            ("63 bytes", sig.to_bytes()[..63].to_vec(), msg),
            ("DER instead of raw r||s", sig.to_der().as_bytes().to_vec(), msg),
        ];
        for (what, bytes, m) in cases {
            let oracle = p256::ecdsa::Signature::from_slice(&bytes).is_ok_and(|s| vk.verify(m, &s).is_ok());
            assert_eq!(key.verify("ecdsa", &bytes, m), oracle, "{what}");
            assert_eq!(oracle, what == "valid" || what == "s replaced by n - s", "{what}");
        }
        assert!(!key.verify("eddsa", &sig.to_bytes(), msg), "a method that does not fit the key fails");
    }

    #[test]
    fn key_id_is_sha256_of_canonical_key_json() {
        let id = key_id("ed25519", "AAAA");
        let expected = sha256_hex(br#"{"keytype":"ed25519","keyval":{"private":null,"public":"AAAA"}}"#);
        assert_eq!(id, expected);
    }

    #[test]
    fn a_listed_key_id_that_does_not_match_the_content_is_refused() {
        let doc = KeyDoc { keytype: "ed25519".into(), keyval: KeyVal { public: B64.encode([7u8; 32]), private: None } };
        let err = PublicKey::from_doc("deadbeef", &doc).unwrap_err();
        assert!(err.contains("hashes to"), "{err}");
    }

    #[test]
    fn pinned_public_key_pem_matches_the_same_ecdsa_metadata_key() {
        let pinned = PinnedKey::from_pem("k", SPKI_PEM).unwrap();
        let public = B64.encode(&pinned.spki_der);
        let doc = KeyDoc { keytype: "ecdsa".into(), keyval: KeyVal { public: public.clone(), private: None } };
        let key = PublicKey::from_doc(&key_id("ecdsa", &public), &doc).unwrap();
        assert!(pinned.matches(&key));
        assert_eq!(key.canonical_id, key.id);
        assert_eq!(pinned.canonical_id, key.id);
    }

    #[test]
    fn a_root_certificate_names_its_gun_exactly_or_by_a_trailing_wildcard() {
        let gun = "registry.example.com/team/app";
        assert!(common_name_matches_gun(gun, gun));
        assert!(!common_name_matches_gun("registry.example.com/team/other", gun));
        assert!(!common_name_matches_gun("registry.example.com/team/app/sub", gun));
        assert!(common_name_matches_gun("registry.example.com/team/*", gun));
        assert!(common_name_matches_gun("*", gun));
        assert!(!common_name_matches_gun("registry.example.com/other/*", gun));
        assert!(!common_name_matches_gun("", gun));
    }

    #[test]
    fn garbage_pinned_keys_are_refused_with_a_clear_message() {
        let err = PinnedKey::from_pem("bad", "hello").unwrap_err();
        assert!(err.contains("PEM"), "{err}");
    }

    #[test]
    fn wrong_method_for_key_type_never_verifies() {
        let pinned = PinnedKey::from_pem("k", SPKI_PEM).unwrap();
        let public = B64.encode(&pinned.spki_der);
        let doc = KeyDoc { keytype: "ecdsa".into(), keyval: KeyVal { public: public.clone(), private: None } };
        let key = PublicKey::from_doc(&key_id("ecdsa", &public), &doc).unwrap();
        assert!(!key.verify("rsapss", &[0u8; 64], b"msg"));
        assert!(!key.verify("ecdsa", &[0u8; 64], b"msg"));
    }
}
