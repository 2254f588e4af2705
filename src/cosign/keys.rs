//! Public keys of cosign signers and transparency logs, and the signature schemes they use.
//!
//! cosign's signature specification: "No information about the signature scheme is included
//! in the object. Clients must determine the signature scheme out-of-band during the
//! verification process." The scheme comes with the key: ECDSA P-256 with SHA-256 (cosign's
//! default, ASN.1 DER signatures), RSA with SHA-256 and PKCS#1 v1.5 (what cosign signs with
//! RSA key files) or PSS (configured), and Ed25519 (pure, over the message).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use spki::{DecodePublicKey, EncodePublicKey};

/// How signatures of a key are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyScheme {
    EcdsaP256Sha256,
    RsaPkcs1v15Sha256,
    RsaPssSha256,
    Ed25519,
}

impl KeyScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScheme::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            KeyScheme::RsaPkcs1v15Sha256 => "rsa-pkcs1v15-sha256",
            KeyScheme::RsaPssSha256 => "rsa-pss-sha256",
            KeyScheme::Ed25519 => "ed25519",
        }
    }
}

#[derive(Debug, Clone)]
enum Inner {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(Box<rsa::RsaPublicKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A named public key (`cosign.pub`, a PEM SPKI `PUBLIC KEY` block).
#[derive(Debug, Clone)]
pub struct CosignKey {
    /// The name the policy gives the key: the signer reported when it verifies.
    pub name: String,
    pub scheme: KeyScheme,
    /// SPKI DER, normalized.
    pub spki_der: Vec<u8>,
    inner: Inner,
}

impl CosignKey {
    /// Parses a PEM public key; RSA keys use PKCS#1 v1.5 (see [`CosignKey::with_rsa_pss`]).
    pub fn from_pem(name: &str, pem: &str) -> Result<CosignKey, String> {
        let text = pem.trim();
        if !text.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(format!(
                "key {name:?} is not a PEM public key (expected a '-----BEGIN PUBLIC KEY-----' block)"
            ));
        }
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .map(str::trim)
            .collect();
        let der = B64.decode(body.as_bytes()).map_err(|e| format!("key {name:?}: PEM body is not base64: {e}"))?;
        Self::from_spki_der(name, &der)
    }

    pub fn from_spki_der(name: &str, der: &[u8]) -> Result<CosignKey, String> {
        let (inner, scheme, spki_der) = if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            let d = k.to_public_key_der().map_err(|e| e.to_string())?.as_bytes().to_vec();
            (Inner::P256(k), KeyScheme::EcdsaP256Sha256, d)
        } else if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            let d = k.to_public_key_der().map_err(|e| e.to_string())?.as_bytes().to_vec();
            (Inner::Rsa(Box::new(k)), KeyScheme::RsaPkcs1v15Sha256, d)
        } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            // An Ed25519 SPKI has one encoding: the input is already normal.
            (Inner::Ed25519(k), KeyScheme::Ed25519, der.to_vec())
        } else {
            return Err(format!("key {name:?} is not an ECDSA P-256, RSA or Ed25519 public key"));
        };
        Ok(CosignKey { name: name.to_string(), scheme, spki_der, inner })
    }

    /// The same RSA key, verifying RSASSA-PSS (SHA-256, MGF1-SHA-256) signatures instead.
    pub fn with_rsa_pss(mut self) -> Result<CosignKey, String> {
        match self.inner {
            Inner::Rsa(_) => {
                self.scheme = KeyScheme::RsaPssSha256;
                Ok(self)
            }
            _ => Err(format!("key {:?} is not an RSA key", self.name)),
        }
    }

    /// SHA-256 of the SPKI DER: the Rekor log ID of a log key, and the key hint cosign puts
    /// in Sigstore bundles (base64 of the same bytes).
    pub fn key_id(&self) -> [u8; 32] {
        Sha256::digest(&self.spki_der).into()
    }

    /// Verifies `sig` over `msg` with the key's scheme.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        match (&self.inner, self.scheme) {
            (Inner::P256(k), _) => match p256::ecdsa::Signature::from_der(sig) {
                // Go's crypto/ecdsa accepts high-S signatures; so do we.
                Ok(s) => k.verify(msg, &s.normalize_s()).is_ok() || k.verify(msg, &s).is_ok(),
                Err(_) => false,
            },
            (Inner::Rsa(k), KeyScheme::RsaPssSha256) => {
                let vk = rsa::pss::VerifyingKey::<Sha256>::new((**k).clone());
                rsa::pss::Signature::try_from(sig).is_ok_and(|s| vk.verify(msg, &s).is_ok())
            }
            (Inner::Rsa(k), _) => {
                let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new((**k).clone());
                rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| vk.verify(msg, &s).is_ok())
            }
            (Inner::Ed25519(k), _) => {
                ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify_strict(msg, &s).is_ok())
            }
        }
    }
}

/// A transparency log (Rekor) public key, and its log ID.
#[derive(Debug, Clone)]
pub struct LogKey {
    pub key: CosignKey,
    /// Hex SHA-256 of the key's SPKI DER, as Rekor names its log.
    pub log_id: String,
}

impl LogKey {
    pub fn from_pem(name: &str, pem: &str) -> Result<LogKey, String> {
        let key = CosignKey::from_pem(name, pem)?;
        let log_id = hex::encode(key.key_id());
        Ok(LogKey { key, log_id })
    }
}
