//! X.509 for Notation: certificates, public keys, signature algorithms and the certificate
//! requirements of the signature specification ("Certificate Requirements").
//!
//! Parsing is x509-cert's; chain building is ours because the specification's rules (a
//! complete chain in the envelope, leaf first, ending at a self-signed root; only basic
//! constraints, key usage and extended key usage honoured; no validity nesting) are not a web
//! PKI's, and each failure must stay distinguishable (expired vs untrusted vs malformed).

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use jiff::Timestamp;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

pub(crate) mod oid {
    use der::asn1::ObjectIdentifier as O;
    pub const RSA_ENCRYPTION: O = O::new_unwrap("1.2.840.113549.1.1.1");
    pub const RSASSA_PSS: O = O::new_unwrap("1.2.840.113549.1.1.10");
    pub const SHA256_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.11");
    pub const SHA384_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.12");
    pub const SHA512_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.13");
    pub const SHA1_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.5");
    pub const EC_PUBLIC_KEY: O = O::new_unwrap("1.2.840.10045.2.1");
    pub const ECDSA_SHA1: O = O::new_unwrap("1.2.840.10045.4.1");
    pub const ECDSA_SHA256: O = O::new_unwrap("1.2.840.10045.4.3.2");
    pub const ECDSA_SHA384: O = O::new_unwrap("1.2.840.10045.4.3.3");
    pub const ECDSA_SHA512: O = O::new_unwrap("1.2.840.10045.4.3.4");
    pub const P256: O = O::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: O = O::new_unwrap("1.3.132.0.34");
    pub const P521: O = O::new_unwrap("1.3.132.0.35");
    pub const SHA256: O = O::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: O = O::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: O = O::new_unwrap("2.16.840.1.101.3.4.2.3");
    pub const MGF1: O = O::new_unwrap("1.2.840.113549.1.1.8");
    pub const KP_SERVER_AUTH: O = O::new_unwrap("1.3.6.1.5.5.7.3.1");
    pub const KP_CLIENT_AUTH: O = O::new_unwrap("1.3.6.1.5.5.7.3.2");
    pub const KP_CODE_SIGNING: O = O::new_unwrap("1.3.6.1.5.5.7.3.3");
    pub const KP_EMAIL_PROTECTION: O = O::new_unwrap("1.3.6.1.5.5.7.3.4");
    pub const KP_TIME_STAMPING: O = O::new_unwrap("1.3.6.1.5.5.7.3.8");
    pub const ANY_EKU: O = O::new_unwrap("2.5.29.37.0");
    pub const AD_OCSP: O = O::new_unwrap("1.3.6.1.5.5.7.48.1");
}

/// Most certificates one chain (signing or TSA) may hold.
pub const MAX_CHAIN_LENGTH: usize = 10;
/// Largest certificate accepted, DER bytes.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// A parsed certificate with the facts the verifier reads from it.
#[derive(Debug, Clone)]
pub struct Cert {
    der: Vec<u8>,
    inner: Certificate,
    subject: String,
    issuer: String,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl PartialEq for Cert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for Cert {}

fn time_of(t: x509_cert::time::Time) -> Timestamp {
    let secs = t.to_unix_duration().as_secs();
    Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Cert, String> {
        if der.len() > MAX_CERTIFICATE_BYTES {
            return Err(format!("{} bytes, over the {MAX_CERTIFICATE_BYTES}-byte limit", der.len()));
        }
        let inner = Certificate::from_der(der).map_err(|e| format!("not a DER X.509 certificate: {e}"))?;
        let tbs = inner.tbs_certificate();
        Ok(Cert {
            der: der.to_vec(),
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            not_before: time_of(tbs.validity().not_before),
            not_after: time_of(tbs.validity().not_after),
            inner,
        })
    }

    /// One or more certificates from PEM (`CERTIFICATE` blocks) or a single DER certificate.
    pub fn parse_many(bytes: &[u8]) -> Result<Vec<Cert>, String> {
        let text = std::str::from_utf8(bytes).ok().filter(|t| t.contains("-----BEGIN"));
        let Some(text) = text else {
            return Ok(vec![Cert::from_der(bytes)?]);
        };
        let mut certs = vec![];
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start..];
            let label_end = after[11..].find("-----").ok_or("unterminated PEM header")? + 11;
            let label = &after[11..label_end];
            let end_marker = format!("-----END {label}-----");
            let end = after.find(&end_marker).ok_or_else(|| format!("no {end_marker}"))?;
            let block = &after[..end + end_marker.len()];
            if label == "CERTIFICATE" {
                let (_, der) = pem_decode(block)?;
                certs.push(Cert::from_der(&der)?);
            }
            rest = &after[end + end_marker.len()..];
        }
        if certs.is_empty() {
            return Err("no CERTIFICATE block in PEM".into());
        }
        Ok(certs)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }
    pub fn certificate(&self) -> &Certificate {
        &self.inner
    }
    /// RFC 4514 form, most significant RDN last as certificates print it: `CN=x,O=y,ST=z,C=US`.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn not_before(&self) -> Timestamp {
        self.not_before
    }
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }
    pub fn serial_hex(&self) -> String {
        hex::encode(self.inner.tbs_certificate().serial_number().as_bytes())
    }
    pub fn sha256_fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.der))
    }
    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        self.inner.tbs_certificate().subject_public_key_info()
    }
    pub fn subject_name(&self) -> &x509_cert::name::Name {
        self.inner.tbs_certificate().subject()
    }
    pub fn issuer_name(&self) -> &x509_cert::name::Name {
        self.inner.tbs_certificate().issuer()
    }
    pub fn is_self_issued(&self) -> bool {
        self.subject_name() == self.issuer_name()
    }
    pub fn is_valid_at(&self, t: Timestamp) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    /// The DER of the to-be-signed part and the signature over it.
    fn tbs_der(&self) -> Result<Vec<u8>, String> {
        self.inner.tbs_certificate().to_der().map_err(|e| e.to_string())
    }

    /// Whether `issuer`'s key made this certificate's signature.
    pub fn verify_signed_by(&self, issuer: &Cert) -> Result<(), String> {
        let key = PublicKey::from_spki(issuer.spki())?;
        let sig = self.inner.signature().as_bytes().ok_or("signature has unused bits")?;
        verify_x509_signature(&key, self.inner.signature_algorithm(), &self.tbs_der()?, sig, None)
    }

    fn basic_constraints(&self) -> Result<Option<(bool, BasicConstraints)>, String> {
        self.inner.tbs_certificate().get_extension::<BasicConstraints>().map_err(|e| format!("basicConstraints: {e}"))
    }
    fn key_usage(&self) -> Result<Option<(bool, KeyUsage)>, String> {
        self.inner.tbs_certificate().get_extension::<KeyUsage>().map_err(|e| format!("keyUsage: {e}"))
    }
    pub(crate) fn extended_key_usage(&self) -> Result<Option<(bool, ExtendedKeyUsage)>, String> {
        self.inner.tbs_certificate().get_extension::<ExtendedKeyUsage>().map_err(|e| format!("extendedKeyUsage: {e}"))
    }

    /// HTTP(S) URLs of the CRL distribution points, in order.
    pub fn crl_urls(&self) -> Vec<String> {
        let Ok(Some((_, points))) = self.inner.tbs_certificate().get_extension::<CrlDistributionPoints>() else {
            return vec![];
        };
        let mut urls = vec![];
        for point in points.0 {
            if let Some(DistributionPointName::FullName(names)) = point.distribution_point {
                for name in names {
                    if let GeneralName::UniformResourceIdentifier(uri) = name {
                        let uri = uri.as_str().to_string();
                        if uri.starts_with("http://") || uri.starts_with("https://") {
                            urls.push(uri);
                        }
                    }
                }
            }
        }
        urls
    }

    /// OCSP responder URLs from the authority information access extension.
    pub fn ocsp_urls(&self) -> Vec<String> {
        let Ok(Some((_, aia))) = self.inner.tbs_certificate().get_extension::<AuthorityInfoAccessSyntax>() else {
            return vec![];
        };
        aia.0
            .into_iter()
            .filter(|d| d.access_method == oid::AD_OCSP)
            .filter_map(|d| match d.access_location {
                GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_string()),
                _ => None,
            })
            .collect()
    }
}

fn pem_decode(block: &str) -> Result<(String, Vec<u8>), String> {
    use base64::Engine as _;
    let mut lines = block.lines().map(str::trim).filter(|l| !l.is_empty());
    let header = lines.next().ok_or("empty PEM")?;
    let label = header.trim_start_matches("-----BEGIN ").trim_end_matches("-----").to_string();
    let body: String = lines.take_while(|l| !l.starts_with("-----END")).filter(|l| !l.contains(':')).collect();
    let der =
        base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|e| format!("PEM body: {e}"))?;
    Ok((label, der))
}

/// A verifying key of a supported type.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// `pkcs1`: the RSAPublicKey DER the certificate holds, which ring verifies with.
    Rsa {
        key: Box<rsa::RsaPublicKey>,
        bits: u32,
        pkcs1: Box<[u8]>,
    },
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl PublicKey {
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, String> {
        let alg = spki.algorithm.oid;
        let bits = spki.subject_public_key.as_bytes().ok_or("public key has unused bits")?;
        if alg == oid::RSA_ENCRYPTION {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPublicKey::from_pkcs1_der(bits).map_err(|e| format!("RSA public key: {e}"))?;
            let n_bits = key.n().bits();
            return Ok(PublicKey::Rsa { key: Box::new(key), bits: n_bits, pkcs1: bits.into() });
        }
        if alg == oid::EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or("EC key without curve parameters")?
                .decode_as()
                .map_err(|e| format!("EC curve parameter: {e}"))?;
            fn bad(e: impl std::fmt::Display) -> String {
                format!("EC public key: {e}")
            }
            return match curve {
                c if c == oid::P256 => {
                    Ok(PublicKey::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(bits).map_err(bad)?))
                }
                c if c == oid::P384 => {
                    Ok(PublicKey::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(bits).map_err(bad)?))
                }
                c if c == oid::P521 => {
                    Ok(PublicKey::P521(p521::ecdsa::VerifyingKey::from_sec1_bytes(bits).map_err(bad)?))
                }
                c => Err(format!("EC curve {c} is not supported (P-256, P-384, P-521)")),
            };
        }
        Err(format!("public key algorithm {alg} is not supported (RSA, EC)"))
    }

    /// `RSA 2048`, `EC P-256`.
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { bits, .. } => format!("RSA {bits}"),
            PublicKey::P256(_) => "EC P-256".into(),
            PublicKey::P384(_) => "EC P-384".into(),
            PublicKey::P521(_) => "EC P-521".into(),
        }
    }
}

/// The envelope signature algorithms of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl SignatureAlgorithm {
    pub fn jws_name(self) -> &'static str {
        match self {
            SignatureAlgorithm::Ps256 => "PS256",
            SignatureAlgorithm::Ps384 => "PS384",
            SignatureAlgorithm::Ps512 => "PS512",
            SignatureAlgorithm::Es256 => "ES256",
            SignatureAlgorithm::Es384 => "ES384",
            SignatureAlgorithm::Es512 => "ES512",
        }
    }

    pub fn from_jws(name: &str) -> Option<SignatureAlgorithm> {
        [
            SignatureAlgorithm::Ps256,
            SignatureAlgorithm::Ps384,
            SignatureAlgorithm::Ps512,
            SignatureAlgorithm::Es256,
            SignatureAlgorithm::Es384,
            SignatureAlgorithm::Es512,
        ]
        .into_iter()
        .find(|a| a.jws_name() == name)
    }

    /// COSE algorithm identifiers (IANA): PS256 -37, PS384 -38, PS512 -39, ES256 -7, ES384 -35,
    /// ES512 -36.
    pub fn from_cose(id: i64) -> Option<SignatureAlgorithm> {
        match id {
            -37 => Some(SignatureAlgorithm::Ps256),
            -38 => Some(SignatureAlgorithm::Ps384),
            -39 => Some(SignatureAlgorithm::Ps512),
            -7 => Some(SignatureAlgorithm::Es256),
            -35 => Some(SignatureAlgorithm::Es384),
            -36 => Some(SignatureAlgorithm::Es512),
            _ => None,
        }
    }

    /// The hash of the algorithm, also the hash of a timestamp request over the signature.
    pub fn hash(self) -> HashAlg {
        match self {
            SignatureAlgorithm::Ps256 | SignatureAlgorithm::Es256 => HashAlg::Sha256,
            SignatureAlgorithm::Ps384 | SignatureAlgorithm::Es384 => HashAlg::Sha384,
            SignatureAlgorithm::Ps512 | SignatureAlgorithm::Es512 => HashAlg::Sha512,
        }
    }

    /// Spec, "Algorithm Selection": "The signing certificate's public key algorithm and size
    /// MUST be used to determine the signature algorithm." RSA 2048/3072/4096 -> RSASSA-PSS
    /// with SHA-256/384/512; EC 256/384/521 -> ECDSA with SHA-256/384/512.
    pub fn for_key(key: &PublicKey) -> Result<SignatureAlgorithm, String> {
        match key {
            PublicKey::Rsa { bits: 2048, .. } => Ok(SignatureAlgorithm::Ps256),
            PublicKey::Rsa { bits: 3072, .. } => Ok(SignatureAlgorithm::Ps384),
            PublicKey::Rsa { bits: 4096, .. } => Ok(SignatureAlgorithm::Ps512),
            PublicKey::Rsa { bits, .. } => {
                Err(format!("RSA key size {bits} has no signature algorithm (2048, 3072, 4096)"))
            }
            PublicKey::P256(_) => Ok(SignatureAlgorithm::Es256),
            PublicKey::P384(_) => Ok(SignatureAlgorithm::Es384),
            PublicKey::P521(_) => Ok(SignatureAlgorithm::Es512),
        }
    }

    /// Verifies an envelope signature (RSASSA-PSS with salt = hash length, or ECDSA r||s).
    pub fn verify(self, key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        use p256::ecdsa::signature::Verifier as _;
        let fail = |e: rsa::signature::Error| format!("{}: {e}", self.jws_name());
        match (self, key) {
            (
                SignatureAlgorithm::Ps256 | SignatureAlgorithm::Ps384 | SignatureAlgorithm::Ps512,
                PublicKey::Rsa { .. },
            ) => {
                let h = self.hash();
                verify_rsa(key, RsaScheme::Pss(h, h.output_len()), msg, sig)
            }
            (SignatureAlgorithm::Es256, PublicKey::P256(k)) => {
                let s = p256::ecdsa::Signature::from_slice(sig).map_err(fail)?;
                k.verify(msg, &s).map_err(fail)
            }
            (SignatureAlgorithm::Es384, PublicKey::P384(k)) => {
                let s = p384::ecdsa::Signature::from_slice(sig).map_err(fail)?;
                k.verify(msg, &s).map_err(fail)
            }
            (SignatureAlgorithm::Es512, PublicKey::P521(k)) => {
                let s = p521::ecdsa::Signature::from_slice(sig).map_err(fail)?;
                k.verify(msg, &s).map_err(fail)
            }
            (alg, key) => Err(format!("{} cannot be used with a {} key", alg.jws_name(), key.describe())),
        }
    }
}

/// An RSA signature scheme with its hash: PKCS#1 v1.5, or RSASSA-PSS (MGF1 with the same hash)
/// with its salt length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RsaScheme {
    Pkcs1(HashAlg),
    Pss(HashAlg, usize),
}

/// Verifies an RSA signature (RFC 8017, RSASSA-PSS-VERIFY and RSASSA-PKCS1-V1_5-VERIFY).
///
/// ring does the arithmetic where it implements the scheme: moduli of 2048 to 8192 bits, and
/// for PSS a salt as long as the hash. JWS PS256/384/512 (RFC 7518, 3.5: "The size of the salt
/// value is the same size as the hash function output") and COSE (RFC 8230) always use that.
/// ring is about 5x faster here than the `rsa` crate (`examples/bench.rs`: 2048-bit PSS). Every
/// other case goes to the `rsa` crate, such as a certificate signed with RSASSA-PSS and the
/// default 20-byte salt of RFC 4055. A unit test holds both to the same answers.
fn verify_rsa(key: &PublicKey, scheme: RsaScheme, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    let PublicKey::Rsa { key, bits, pkcs1 } = key else {
        return Err(format!("an RSA signature with a {} key", key.describe()));
    };
    match ring_rsa(*bits, scheme) {
        Some(params) => {
            ring::signature::UnparsedPublicKey::new(params, pkcs1).verify(msg, sig).map_err(|_| match scheme {
                RsaScheme::Pkcs1(_) => "RSA PKCS#1 v1.5: signature error".to_string(),
                RsaScheme::Pss(..) => "RSASSA-PSS: signature error".to_string(),
            })
        }
        None => verify_rsa_crate(key, scheme, msg, sig),
    }
}

/// ring's parameters for `scheme` with a modulus of `bits`, where ring implements it.
fn ring_rsa(bits: u32, scheme: RsaScheme) -> Option<&'static ring::signature::RsaParameters> {
    use ring::signature as rs;
    match scheme {
        _ if !(2048..=8192).contains(&bits) => None,
        RsaScheme::Pkcs1(HashAlg::Sha256) => Some(&rs::RSA_PKCS1_2048_8192_SHA256),
        RsaScheme::Pkcs1(HashAlg::Sha384) => Some(&rs::RSA_PKCS1_2048_8192_SHA384),
        RsaScheme::Pkcs1(HashAlg::Sha512) => Some(&rs::RSA_PKCS1_2048_8192_SHA512),
        RsaScheme::Pss(h, salt) if salt != h.output_len() => None,
        RsaScheme::Pss(HashAlg::Sha256, _) => Some(&rs::RSA_PSS_2048_8192_SHA256),
        RsaScheme::Pss(HashAlg::Sha384, _) => Some(&rs::RSA_PSS_2048_8192_SHA384),
        RsaScheme::Pss(HashAlg::Sha512, _) => Some(&rs::RSA_PSS_2048_8192_SHA512),
    }
}

/// The `rsa` crate's verification, for what ring does not implement.
fn verify_rsa_crate(key: &rsa::RsaPublicKey, scheme: RsaScheme, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    use rsa::signature::Verifier as _;
    let k = key.clone();
    match scheme {
        RsaScheme::Pkcs1(h) => {
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
            let r = match h {
                HashAlg::Sha256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k).verify(msg, &s),
                HashAlg::Sha384 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(k).verify(msg, &s),
                HashAlg::Sha512 => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(k).verify(msg, &s),
            };
            r.map_err(|e| format!("RSA PKCS#1 v1.5: {e}"))
        }
        RsaScheme::Pss(h, salt) => {
            let s = rsa::pss::Signature::try_from(sig).map_err(|e| format!("RSASSA-PSS signature: {e}"))?;
            let r = match h {
                HashAlg::Sha256 => rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(k, salt).verify(msg, &s),
                HashAlg::Sha384 => rsa::pss::VerifyingKey::<Sha384>::new_with_salt_len(k, salt).verify(msg, &s),
                HashAlg::Sha512 => rsa::pss::VerifyingKey::<Sha512>::new_with_salt_len(k, salt).verify(msg, &s),
            };
            r.map_err(|e| format!("RSASSA-PSS: {e}"))
        }
    }
}

/// SHA-2 hashes the verifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn from_oid(o: ObjectIdentifier) -> Option<HashAlg> {
        match o {
            o if o == oid::SHA256 => Some(HashAlg::Sha256),
            o if o == oid::SHA384 => Some(HashAlg::Sha384),
            o if o == oid::SHA512 => Some(HashAlg::Sha512),
            _ => None,
        }
    }
    /// The output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
    pub fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => Sha256::digest(bytes).to_vec(),
            HashAlg::Sha384 => Sha384::digest(bytes).to_vec(),
            HashAlg::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }
}

/// Verifies an X.509-style signature (certificates, CRLs, CMS signer infos). `cms_digest` is
/// the SignerInfo digest algorithm, used when the signature algorithm is bare
/// `rsaEncryption`.
///
/// Spec: "Any certificate in the certificate chain MUST NOT use SHA1WithRSA and
/// ECDSAWithSHA1 signatures."
pub fn verify_x509_signature(
    key: &PublicKey,
    alg: &AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: &[u8],
    cms_digest: Option<HashAlg>,
) -> Result<(), String> {
    let o = alg.oid;
    if o == oid::SHA1_WITH_RSA || o == oid::ECDSA_SHA1 {
        return Err("SHA-1 signatures are not allowed".into());
    }
    let rsa = |scheme: RsaScheme| -> Result<(), String> {
        match key {
            PublicKey::Rsa { .. } => verify_rsa(key, scheme, msg, sig),
            other => Err(format!("RSA signature algorithm {o} with a {} key", other.describe())),
        }
    };
    let pkcs1 = |h: HashAlg| rsa(RsaScheme::Pkcs1(h));
    let ecdsa = |h: HashAlg| -> Result<(), String> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let prehash = h.digest(msg);
        let fail = |e: p256::ecdsa::Error| format!("ECDSA: {e}");
        match key {
            PublicKey::P256(k) => {
                let s = p256::ecdsa::Signature::from_der(sig).map_err(fail)?;
                k.verify_prehash(&prehash, &s).map_err(fail)
            }
            PublicKey::P384(k) => {
                let s = p384::ecdsa::Signature::from_der(sig).map_err(fail)?;
                k.verify_prehash(&prehash, &s).map_err(fail)
            }
            PublicKey::P521(k) => {
                let s = p521::ecdsa::Signature::from_der(sig).map_err(fail)?;
                k.verify_prehash(&prehash, &s).map_err(fail)
            }
            other => Err(format!("ECDSA signature with a {} key", other.describe())),
        }
    };
    match o {
        o if o == oid::SHA256_WITH_RSA => pkcs1(HashAlg::Sha256),
        o if o == oid::SHA384_WITH_RSA => pkcs1(HashAlg::Sha384),
        o if o == oid::SHA512_WITH_RSA => pkcs1(HashAlg::Sha512),
        o if o == oid::RSA_ENCRYPTION => pkcs1(cms_digest.ok_or("rsaEncryption without a digest algorithm")?),
        o if o == oid::ECDSA_SHA256 => ecdsa(HashAlg::Sha256),
        o if o == oid::ECDSA_SHA384 => ecdsa(HashAlg::Sha384),
        o if o == oid::ECDSA_SHA512 => ecdsa(HashAlg::Sha512),
        o if o == oid::RSASSA_PSS => {
            let (h, salt) = pss_params(alg)?;
            rsa(RsaScheme::Pss(h, salt))
        }
        o => Err(format!("signature algorithm {o} is not supported")),
    }
}

/// RSASSA-PSS-params (RFC 4055): the hash, MGF1 with the same hash, and the salt length.
fn pss_params(alg: &AlgorithmIdentifierOwned) -> Result<(HashAlg, usize), String> {
    #[derive(der::Sequence)]
    struct Params {
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        hash: Option<AlgorithmIdentifierOwned>,
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
        mgf: Option<AlgorithmIdentifierOwned>,
        #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
        salt: Option<u32>,
        #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
        trailer: Option<u32>,
    }
    let p: Params = alg
        .parameters
        .as_ref()
        .ok_or("RSASSA-PSS without parameters")?
        .decode_as()
        .map_err(|e| format!("RSASSA-PSS parameters: {e}"))?;
    let h = p.hash.as_ref().and_then(|a| HashAlg::from_oid(a.oid)).ok_or("RSASSA-PSS hash must be SHA-256/384/512")?;
    if let Some(mgf) = &p.mgf {
        let inner: Option<AlgorithmIdentifierOwned> = mgf.parameters.as_ref().and_then(|a| a.decode_as().ok());
        if mgf.oid != oid::MGF1 || inner.and_then(|a| HashAlg::from_oid(a.oid)) != Some(h) {
            return Err("RSASSA-PSS MGF must be MGF1 with the signature hash".into());
        }
    }
    Ok((h, p.salt.unwrap_or(20) as usize))
}

/// What a chain is for: the leaf requirements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    CodeSigning,
    Timestamping,
}

/// A failed certificate requirement: the index in the chain and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFault {
    pub index: usize,
    pub subject: String,
    pub detail: String,
}

fn fault(chain: &[Cert], index: usize, detail: impl Into<String>) -> ChainFault {
    ChainFault { index, subject: chain[index].subject().to_string(), detail: detail.into() }
}

/// Validates a certificate chain, leaf first, against the specification's certificate
/// requirements and checks every signature along it. Time is not checked here: validity is
/// the authentic timestamp check's.
///
/// Spec, "Other requirements": "Valid certificate chain MUST contain a root certificate. If
/// the certificate chain contains only a root certificate then the root certificate MUST meet
/// Leaf Certificates requirements and ignore Root and Intermediate CA Certificates
/// requirements." / "the certificate containing the public key used to digitally sign the
/// payload must be the first certificate, followed by the intermediate and root certificates
/// in the correct order ... MUST NOT chain to multiple parents/roots ... MUST NOT contain a
/// certificate that is unrelated to the certificate chain."
///
/// With `root_required == false` (a TSA chain built up to a certificate of the tsa store) the
/// last certificate need not be self-signed.
pub fn validate_chain(chain: &[Cert], purpose: Purpose, root_required: bool) -> Result<(), ChainFault> {
    if chain.is_empty() {
        return Err(ChainFault { index: 0, subject: String::new(), detail: "the certificate chain is empty".into() });
    }
    if chain.len() > MAX_CHAIN_LENGTH {
        return Err(fault(chain, 0, format!("{} certificates, over the limit of {MAX_CHAIN_LENGTH}", chain.len())));
    }
    for i in 0..chain.len() - 1 {
        if chain[i].issuer_name() != chain[i + 1].subject_name() {
            return Err(fault(
                chain,
                i,
                format!(
                    "issuer {} is not the next certificate's subject {}",
                    chain[i].issuer(),
                    chain[i + 1].subject()
                ),
            ));
        }
        chain[i]
            .verify_signed_by(&chain[i + 1])
            .map_err(|e| fault(chain, i, format!("signature by {} does not verify: {e}", chain[i + 1].subject())))?;
    }
    let last = chain.len() - 1;
    if root_required {
        if !chain[last].is_self_issued() {
            return Err(fault(chain, last, "the chain does not end with a root certificate (not self-issued)"));
        }
        chain[last]
            .verify_signed_by(&chain[last])
            .map_err(|e| fault(chain, last, format!("root self-signature does not verify: {e}")))?;
    }
    validate_leaf(&chain[0], purpose).map_err(|d| fault(chain, 0, d))?;
    for i in 1..chain.len() {
        validate_ca(&chain[i], i - 1).map_err(|d| fault(chain, i, d))?;
    }
    Ok(())
}

/// Spec, "Root and Intermediate CA Certificates": "The basicConstraints extension MUST be
/// present and MUST be marked as critical. The cA field MUST be set true. The
/// pathLenConstraint field is OPTIONAL. If present, it MUST be verified against the depth of
/// the chain below that CA certificate." / "The keyUsage extension MUST be present and MUST
/// be marked critical. Bit positions for keyCertSign MUST be set."
fn validate_ca(cert: &Cert, cas_below: usize) -> Result<(), String> {
    match cert.basic_constraints()? {
        Some((true, bc)) if bc.ca => {
            if let Some(n) = bc.path_len_constraint
                && cas_below > usize::from(n)
            {
                return Err(format!("pathLenConstraint {n} but {cas_below} CA certificate(s) below it"));
            }
        }
        Some((false, _)) => return Err("basicConstraints of a CA certificate must be critical".into()),
        Some(_) => return Err("basicConstraints cA is false on a CA certificate".into()),
        None => return Err("a CA certificate must have basicConstraints".into()),
    }
    match cert.key_usage()? {
        Some((true, ku)) if ku.0.contains(KeyUsages::KeyCertSign) => Ok(()),
        Some((true, _)) => Err("keyUsage of a CA certificate must include keyCertSign".into()),
        Some((false, _)) => Err("keyUsage of a CA certificate must be critical".into()),
        None => Err("a CA certificate must have keyUsage".into()),
    }
}

/// Spec, "Leaf Certificates": basicConstraints OPTIONAL, "If present, the cA field MUST be
/// set to false." keyUsage "MUST be present and MUST be marked critical. Bit positions for
/// digitalSignature MUST be set. The Bit positions for keyEncipherment, dataEncipherment,
/// keyAgreement, keyCertSign, encipherOnly, decipherOnly and cRLSign MUST NOT be set."
/// extendedKeyUsage: "For signing certificate: If present, the value MAY contain
/// id-kp-codeSigning and MUST NOT contain anyExtendedKeyUsage, serverAuth, clientAuth,
/// emailProtection and timeStamping. For timestamping certificate: If present, the value MUST
/// contain id-kp-timeStamping and MUST NOT contain anyExtendedKeyUsage, serverAuth, clientAuth,
/// emailProtection and codeSigning." Key length: "RSA ... 2048 bits or higher ... ECDSA ...
/// 256 bits or higher."
fn validate_leaf(cert: &Cert, purpose: Purpose) -> Result<(), String> {
    if let Some((_, bc)) = cert.basic_constraints()?
        && bc.ca
    {
        return Err("basicConstraints cA is true on the leaf certificate".into());
    }
    match cert.key_usage()? {
        Some((true, ku)) => {
            if !ku.0.contains(KeyUsages::DigitalSignature) {
                return Err("keyUsage of the leaf must include digitalSignature".into());
            }
            let forbidden = [
                (KeyUsages::KeyEncipherment, "keyEncipherment"),
                (KeyUsages::DataEncipherment, "dataEncipherment"),
                (KeyUsages::KeyAgreement, "keyAgreement"),
                (KeyUsages::KeyCertSign, "keyCertSign"),
                (KeyUsages::EncipherOnly, "encipherOnly"),
                (KeyUsages::DecipherOnly, "decipherOnly"),
                (KeyUsages::CRLSign, "cRLSign"),
            ];
            if let Some((_, name)) = forbidden.iter().find(|(bit, _)| ku.0.contains(*bit)) {
                return Err(format!("keyUsage of the leaf must not include {name}"));
            }
        }
        Some((false, _)) => return Err("keyUsage of the leaf must be critical".into()),
        None => return Err("the leaf certificate must have keyUsage".into()),
    }
    if let Some((_, eku)) = cert.extended_key_usage()? {
        let has = |o: ObjectIdentifier| eku.0.contains(&o);
        let (required, excluded): (Option<ObjectIdentifier>, [(ObjectIdentifier, &str); 5]) = match purpose {
            Purpose::CodeSigning => (
                None,
                [
                    (oid::ANY_EKU, "anyExtendedKeyUsage"),
                    (oid::KP_SERVER_AUTH, "serverAuth"),
                    (oid::KP_CLIENT_AUTH, "clientAuth"),
                    (oid::KP_EMAIL_PROTECTION, "emailProtection"),
                    (oid::KP_TIME_STAMPING, "timeStamping"),
                ],
            ),
            Purpose::Timestamping => (
                Some(oid::KP_TIME_STAMPING),
                [
                    (oid::ANY_EKU, "anyExtendedKeyUsage"),
                    (oid::KP_SERVER_AUTH, "serverAuth"),
                    (oid::KP_CLIENT_AUTH, "clientAuth"),
                    (oid::KP_EMAIL_PROTECTION, "emailProtection"),
                    (oid::KP_CODE_SIGNING, "codeSigning"),
                ],
            ),
        };
        if let Some((_, name)) = excluded.iter().find(|(o, _)| has(*o)) {
            return Err(format!("extendedKeyUsage of the leaf must not include {name}"));
        }
        if let Some(r) = required
            && !has(r)
        {
            return Err("extendedKeyUsage of a timestamping certificate must include timeStamping".into());
        }
    } else if purpose == Purpose::Timestamping {
        // RFC 3161 2.3: "The corresponding certificate MUST contain only one instance of the
        // extended key usage field extension ... with KeyPurposeID having value
        // id-kp-timeStamping. This extension MUST be critical."
        return Err("a timestamping certificate must have extendedKeyUsage timeStamping".into());
    }
    match PublicKey::from_spki(cert.spki())? {
        PublicKey::Rsa { bits, .. } if bits < 2048 => Err(format!("RSA key of {bits} bits is shorter than 2048")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jws_and_cose_algorithm_names_map_to_the_same_algorithms() {
        assert_eq!(SignatureAlgorithm::from_jws("PS384"), SignatureAlgorithm::from_cose(-38));
        assert_eq!(SignatureAlgorithm::from_jws("ES512"), SignatureAlgorithm::from_cose(-36));
        assert_eq!(SignatureAlgorithm::from_jws("none"), None);
        assert_eq!(SignatureAlgorithm::from_jws("HS256"), None);
        assert_eq!(SignatureAlgorithm::from_cose(-8), None, "EdDSA is not a Notation algorithm");
    }

    /// ring and the `rsa` crate give the same answer on every fixture signature and on its
    /// tampered variants (`tests/fixtures/rsa`, made with OpenSSL).
    #[test]
    fn ring_agrees_with_the_rsa_crate_on_rsa_signatures() {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::traits::PublicKeyParts;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa");
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        let key = |f: &str| {
            let der = read(f);
            let k = rsa::RsaPublicKey::from_pkcs1_der(&der).unwrap();
            let bits = k.n().bits();
            PublicKey::Rsa { key: Box::new(k), bits, pkcs1: der.into() }
        };
        let msg = read("msg");
        let (k2048, k3072) = (key("rsa2048.pub.der"), key("rsa3072.pub.der"));
        let cases: [(&PublicKey, &str, RsaScheme, bool); 5] = [
            (&k2048, "rsa2048.pss-sha256.sig", RsaScheme::Pss(HashAlg::Sha256, 32), true),
            (&k2048, "rsa2048.pss-sha256-salt20.sig", RsaScheme::Pss(HashAlg::Sha256, 20), false),
            (&k2048, "rsa2048.pkcs1-sha256.sig", RsaScheme::Pkcs1(HashAlg::Sha256), true),
            (&k3072, "rsa3072.pss-sha384.sig", RsaScheme::Pss(HashAlg::Sha384, 48), true),
            (&k3072, "rsa3072.pkcs1-sha512.sig", RsaScheme::Pkcs1(HashAlg::Sha512), true),
        ];
        for (k, file, scheme, ring_does_it) in cases {
            let PublicKey::Rsa { key: crate_key, bits, .. } = k else { unreachable!() };
            assert_eq!(ring_rsa(*bits, scheme).is_some(), ring_does_it, "{file}");
            let sig = read(file);
            let mut flipped_msg = msg.clone();
            flipped_msg[3] ^= 1;
            let mut flipped_sig = sig.clone();
            flipped_sig[100] ^= 0x40;
            let other_scheme = match scheme {
                RsaScheme::Pkcs1(HashAlg::Sha256) => RsaScheme::Pkcs1(HashAlg::Sha384),
                RsaScheme::Pkcs1(_) => RsaScheme::Pkcs1(HashAlg::Sha256),
                RsaScheme::Pss(h, _) => RsaScheme::Pkcs1(h),
            };
            let variants = [
                ("genuine", scheme, msg.clone(), sig.clone(), true),
                ("message changed", scheme, flipped_msg.clone(), sig.clone(), false),
                ("signature changed", scheme, msg.clone(), flipped_sig, false),
                ("signature cut short", scheme, msg.clone(), sig[..sig.len() - 1].to_vec(), false),
                ("signature with a leading zero", scheme, msg.clone(), [&[0u8][..], &sig].concat(), false),
                ("empty signature", scheme, msg.clone(), vec![], false),
                ("other scheme", other_scheme, msg.clone(), sig.clone(), false),
            ];
            for (what, s, m, g, valid) in variants {
                let ours = verify_rsa(k, s, &m, &g);
                let theirs = verify_rsa_crate(crate_key, s, &m, &g);
                assert_eq!(ours.is_ok(), valid, "{file}, {what}: {ours:?}");
                assert_eq!(theirs.is_ok(), valid, "{file}, {what} (rsa crate): {theirs:?}");
            }
        }
        let p256 = PublicKey::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&p256_point()).unwrap());
        assert!(verify_rsa(&p256, RsaScheme::Pkcs1(HashAlg::Sha256), &msg, &[0; 256]).is_err());
    }

    /// The P-256 generator point, uncompressed: a valid EC public key.
    fn p256_point() -> Vec<u8> {
        hex::decode(concat!(
            "04",
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
        ))
        .unwrap()
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(Cert::from_der(b"\x30\x03\x02\x01\x01").is_err());
        assert!(Cert::parse_many(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(Cert::parse_many(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }
}
