//! TLS to the Notary server when a CA bundle is configured: the bundle is the only trust
//! anchor, a server certificate that is byte for byte a certificate of the bundle is accepted
//! as the server's own (the self-signed `CA:TRUE` certificates `openssl req -x509` makes), and
//! every TLS failure is told in plain words, with what to fix.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The crypto provider of every TLS connection trustwatch makes: ring. Measured against
/// aws-lc-rs in BENCHMARKS.md ("TLS crypto provider"): aws-lc-rs seeds its entropy source on
/// the first handshake of a process, about 60 ms of CPU that a one-shot `trustwatch verify`
/// pays in full; ring reads the operating system's generator.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process-wide default, for the clients that do not take one
/// explicitly (reqwest without a CA bundle, the Kubernetes client). Call it before building
/// any; later calls do nothing.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A rustls client configuration trusting only the certificates of `ca_pem`.
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig, String> {
    let bundle: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CA bundle is not valid PEM: {e}"))?;
    if bundle.is_empty() {
        return Err("CA bundle contains no certificate".into());
    }
    let mut roots = RootCertStore::empty();
    for cert in &bundle {
        roots.add(cert.clone()).map_err(|e| format!("CA bundle holds a certificate that is not usable: {e}"))?;
    }
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot use the CA bundle: {e}"))?;
    let verifier = BundleVerifier { inner, bundle, provider: provider.clone() };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // What reqwest itself offers without HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The webpki verifier, plus the certificates of the bundle accepted as end entities.
#[derive(Debug)]
struct BundleVerifier {
    inner: Arc<WebPkiServerVerifier>,
    bundle: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for BundleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // Go's crypto/x509 (which the notary client and Connaisseur use) trusts a certificate
        // found in the roots pool as a chain of its own: `if opts.Roots.contains(c) {
        // candidateChains = [][]*Certificate{{c}} }`, after its validity period and host name
        // were checked. webpki refuses a CA certificate as end entity (CaUsedAsEndEntity), so
        // a Notary server with the self-signed certificate `openssl req -x509` makes, however
        // exactly configured, would be unreachable. That certificate is a trust anchor the
        // operator configured: accepting it as the server's own gives nobody more than the
        // anchor already gives. The handshake signature is still checked against its key
        // (verify_tls1x_signature), as are its names, validity and extended key usage here.
        if self.bundle.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            check_validity_and_usage(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The validity period, and an extended key usage (when the certificate has one) that allows
/// server authentication, as Go checks them for a certificate of the roots pool.
fn check_validity_and_usage(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let tbs = cert.tbs_certificate();
    let secs = |t: &x509_cert::time::Time| UnixTime::since_unix_epoch(t.to_unix_duration());
    let (not_before, not_after) = (secs(&tbs.validity().not_before), secs(&tbs.validity().not_after));
    if now.as_secs() < not_before.as_secs() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYetContext { time: now, not_before }));
    }
    if now.as_secs() > not_after.as_secs() {
        return Err(Error::InvalidCertificate(CertificateError::ExpiredContext { time: now, not_after }));
    }
    match tbs.get_extension::<x509_cert::ext::pkix::ExtendedKeyUsage>() {
        Ok(None) => Ok(()),
        Ok(Some((_, eku))) => {
            let allowed = eku.0.iter().any(|oid| {
                let oid = oid.to_string();
                oid == "1.3.6.1.5.5.7.3.1" || oid == "2.5.29.37.0"
            });
            if allowed { Ok(()) } else { Err(Error::InvalidCertificate(CertificateError::InvalidPurpose)) }
        }
        Err(_) => Err(Error::InvalidCertificate(CertificateError::BadEncoding)),
    }
}

/// What to tell the operator about a TLS failure found anywhere in `err`'s chain of causes.
/// `host` is the host asked for; `bundle` whether a CA bundle is configured.
pub fn explain(err: &(dyn std::error::Error + 'static), host: &str, bundle: bool) -> Option<String> {
    let tls = find_rustls_error(err)?;
    let roots = if bundle {
        "the CA bundle (caBundle / --ca-file)"
    } else {
        "a CA this machine trusts (set caBundle / --ca-file to the CA that issued it)"
    };
    let message = match tls {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                format!("the server's certificate is not signed by {roots}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let names = match c {
                    CertificateError::NotValidForNameContext { presented, .. } => presented.join(", "),
                    _ => "other names".into(),
                };
                format!(
                    "the server's certificate is not valid for {host} (it names {names}): use one of those names \
                     in the server URL, or reissue the certificate with {host} in its subjectAltName"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                let when = match c {
                    CertificateError::ExpiredContext { not_after, .. } => format!(" at {}", unix(*not_after)),
                    _ => String::new(),
                };
                format!("the server's certificate expired{when}: renew it")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                let when = match c {
                    CertificateError::NotValidYetContext { not_before, .. } => format!(" before {}", unix(*not_before)),
                    _ => String::new(),
                };
                format!("the server's certificate is not valid yet (not{when}): check the clocks of both machines")
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "the server's certificate is not for TLS servers (its extended key usage lacks serverAuth)".into()
            }
            CertificateError::Other(o)
                if matches!(o.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)) =>
            {
                format!(
                    "the server presents a CA certificate (CA:TRUE) as its own, and it is not in {roots}: put that exact \
                 certificate in the CA bundle, or give the server a leaf certificate"
                )
            }
            other => format!("the server's certificate is refused: {other:?}"),
        },
        other => format!("the TLS handshake failed: {other}"),
    };
    Some(message)
}

fn unix(t: UnixTime) -> String {
    jiff::Timestamp::from_second(t.as_secs() as i64).map(|t| t.to_string()).unwrap_or_else(|_| t.as_secs().to_string())
}

/// The rustls error behind a reqwest/hyper/io error. `std::io::Error::source` skips the error
/// it wraps, so wrapped errors are looked at through `get_ref`.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(found) = find_rustls_error(inner) {
                    return Some(found);
                }
            }
        }
        cur = e.source();
    }
    None
}
