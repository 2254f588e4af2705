//! HTTPS for the webhooks: `POST /validate` and `POST /mutate` on `--webhook-addr`, in the operator's process, on
//! every replica (leader election does not gate it). The certificate is resolved per
//! handshake, so a rotation takes effect for new connections without dropping open ones.

use super::certs::{self, CertConfig, TlsMaterial};
use crate::controller::Context;
use axum::extract::State;
use axum::{Json, Router, routing::post};
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How `trustwatch run` serves the webhook (its `--webhook-*` flags).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub addr: SocketAddr,
    /// The budget of one review's verifications.
    pub budget: Duration,
    pub certs: CertConfig,
    /// How often the Secret (or the files of `cert_dir`) is read again.
    pub check_every: Duration,
    /// `--webhook-cert-dir`: serve `tls.crt` and `tls.key` from this directory (a Secret that
    /// cert-manager keeps, mounted), reloaded when they change. The operator then writes no
    /// Secret and patches no caBundle: cert-manager's CA injector does.
    pub cert_dir: Option<std::path::PathBuf>,
}

/// The certificate new handshakes get; swapped on rotation.
#[derive(Debug)]
pub struct Reloadable {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloadable {
    pub fn new(m: &TlsMaterial) -> Result<Reloadable, String> {
        Reloadable::from_pem(&m.cert, &m.key)
    }

    /// From a PEM certificate chain and key.
    pub fn from_pem(cert: &str, key: &str) -> Result<Reloadable, String> {
        Ok(Reloadable { current: RwLock::new(Arc::new(certified_key(cert, key)?)) })
    }

    pub fn replace(&self, m: &TlsMaterial) -> Result<(), String> {
        self.replace_pem(&m.cert, &m.key)
    }

    pub fn replace_pem(&self, cert: &str, key: &str) -> Result<(), String> {
        let key = Arc::new(certified_key(cert, key)?);
        *self.current.write().expect("certificate lock poisoned") = key;
        Ok(())
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock poisoned").clone())
    }
}

fn certified_key(cert: &str, key: &str) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("serving certificate: {e}"))?;
    if chain.is_empty() {
        return Err("serving certificate: no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("serving key: {e}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("serving key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    // A certificate and a key of different pairs (files caught mid-rotation) never load.
    certified.keys_match().map_err(|e| format!("serving certificate and key: {e}"))?;
    Ok(certified)
}

/// The rustls server configuration over a reloadable certificate (ring, as every TLS
/// connection trustwatch makes; HTTP/2 and HTTP/1.1).
pub fn server_config(certs: Arc<Reloadable>) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(crate::fetch::tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[derive(Clone)]
struct AppState {
    ctx: Arc<Context>,
    budget: Duration,
}

async fn validate(
    State(state): State<AppState>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(match super::request_of(review) {
        Some(request) => super::answer(&state.ctx, state.budget, request).await,
        None => super::invalid(),
    })
}

async fn mutate(
    State(state): State<AppState>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(match super::request_of(review) {
        Some(request) => super::mutate(&state.ctx, state.budget, request).await,
        None => super::invalid(),
    })
}

/// The webhooks' routes: the validating one, and the mutating one (`spec.admission.pinDigest`).
pub fn router(ctx: Arc<Context>, budget: Duration) -> Router {
    Router::new().route("/validate", post(validate)).route("/mutate", post(mutate)).with_state(AppState { ctx, budget })
}

/// Serves the webhook until the process stops: the certificate from the shared Secret (made
/// if absent), the caBundle patched, the Secret checked again every `check_every`. Answers
/// only once the caches synced (before, connections are refused and the API server applies
/// the webhook's failurePolicy).
pub async fn run(ctx: Arc<Context>, config: WebhookConfig, ready: Arc<AtomicBool>) {
    if let Some(dir) = config.cert_dir.clone() {
        return run_with_files(ctx, config, dir, ready).await;
    }
    let material = loop {
        match certs::ensure(&ctx.client, &config.certs, jiff::Timestamp::now()).await {
            Ok(m) => break m,
            Err(e) => {
                tracing::error!(reason = e.reason(), error = %e, "no webhook serving certificate yet; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let reloadable = match Reloadable::new(&material) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!(error = %e, "the webhook serving certificate is unusable; the webhook is off");
            return;
        }
    };
    publish_bundle(&ctx, &config, &material).await;
    tokio::spawn(keep_fresh(ctx.clone(), config.clone(), material, reloadable.clone()));
    serve_when_synced(ctx, &config, reloadable, ready).await;
}

/// Serves once the caches synced (before, connections are refused and the API server applies
/// the webhook's failurePolicy), and only then says the replica is `ready` (`/readyz`): a
/// replica that cannot answer admission is not sent any.
async fn serve_when_synced(ctx: Arc<Context>, config: &WebhookConfig, certs: Arc<Reloadable>, ready: Arc<AtomicBool>) {
    while !ctx.synced.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls = match server_config(certs) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "the webhook is off; the replica stays unready");
            return;
        }
    };
    let listener = loop {
        match tokio::net::TcpListener::bind(config.addr).await {
            Ok(l) => break l,
            Err(e) => {
                tracing::error!(addr = %config.addr, error = %e,
                    "the webhook cannot listen (is the address in use, or not this host's?); not ready; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    ready.store(true, Ordering::SeqCst);
    tracing::info!("webhook listening; ready");
    serve_on(listener, router(ctx, config.budget), tls).await;
    ready.store(false, Ordering::SeqCst);
    tracing::error!(addr = %config.addr, "the webhook stopped");
}

/// `--webhook-cert-dir`: the certificate and key from files another tool keeps (cert-manager,
/// through a mounted Secret), read again every `check_every`. No Secret is written and no
/// caBundle patched.
async fn run_with_files(ctx: Arc<Context>, config: WebhookConfig, dir: std::path::PathBuf, ready: Arc<AtomicBool>) {
    let (pem, reloadable) = loop {
        match read_cert_dir(&dir).and_then(|p| Ok((Reloadable::from_pem(&p.0, &p.1)?, p))) {
            Ok((r, p)) => break (p, Arc::new(r)),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "no webhook serving certificate in the directory yet; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    tokio::spawn(watch_cert_dir(dir, config.check_every, pem, reloadable.clone()));
    serve_when_synced(ctx, &config, reloadable, ready).await;
}

/// `tls.crt` and `tls.key` of `dir` (the keys of a kubernetes.io/tls Secret).
pub fn read_cert_dir(dir: &std::path::Path) -> Result<(String, String), String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
    Ok((read("tls.crt")?, read("tls.key")?))
}

/// Reads `dir` every `every` and serves what changed to new handshakes (open connections keep
/// theirs). A Secret volume is updated by the kubelet in one atomic symlink swap, so the two
/// files are read consistent; a pair that does not load (half-written by another tool) is
/// logged and retried, and the previous certificate kept.
pub async fn watch_cert_dir(
    dir: std::path::PathBuf,
    every: Duration,
    mut serving: (String, String),
    certs: Arc<Reloadable>,
) {
    loop {
        tokio::time::sleep(every).await;
        match read_cert_dir(&dir) {
            Ok(pem) if pem != serving => match certs.replace_pem(&pem.0, &pem.1) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "serving the new webhook certificate from the directory");
                    serving = pem;
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "the new webhook certificate is unusable; keeping the old one")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the webhook certificate; keeping the old one"),
        }
    }
}

/// Patches the caBundle, logging (not failing) when it cannot: the API server then refuses
/// the webhook's TLS and applies its failurePolicy, which the log explains.
async fn publish_bundle(ctx: &Context, config: &WebhookConfig, m: &TlsMaterial) {
    if let Err(e) = certs::patch_ca_bundle(&ctx.client, &config.certs.configuration, &m.ca_bundle).await {
        tracing::warn!(reason = e.reason(), error = %e, "cannot patch the webhook caBundle; retrying at the next check");
    }
}

/// Reads the Secret every `check_every`, rotates when due, and switches to material another
/// replica wrote: the bundle is patched first, and the new certificate served a few seconds
/// later, once the API server has read the new bundle.
async fn keep_fresh(ctx: Arc<Context>, config: WebhookConfig, mut serving: TlsMaterial, certs: Arc<Reloadable>) {
    loop {
        tokio::time::sleep(config.check_every).await;
        let m = match certs::ensure(&ctx.client, &config.certs, jiff::Timestamp::now()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(reason = e.reason(), error = %e, "cannot check the webhook certificate");
                continue;
            }
        };
        publish_bundle(&ctx, &config, &m).await;
        if m != serving {
            tokio::time::sleep(BUNDLE_GRACE).await;
            match certs.replace(&m) {
                Ok(()) => {
                    tracing::info!(not_after = %m.not_after, "serving the new webhook certificate");
                    serving = m;
                }
                Err(e) => tracing::error!(error = %e, "the new webhook certificate is unusable; keeping the old one"),
            }
        }
    }
}

/// How long a replica waits between patching a new caBundle and serving the certificate it
/// vouches for (the API server reads webhook configurations through an informer).
const BUNDLE_GRACE: Duration = Duration::from_secs(3);

/// Accepts TLS connections on a bound listener and serves `router` on each (HTTP/1.1 or
/// HTTP/2), until the process stops.
pub async fn serve_on(listener: tokio::net::TcpListener, router: Router, tls: Arc<rustls::ServerConfig>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "admission webhook serving");
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "webhook accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(router);
            if let Err(e) = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::certs::{DEFAULT_VALIDITY, generate};
    use rustls::pki_types::ServerName;

    fn write_pair(dir: &std::path::Path, m: &TlsMaterial) {
        std::fs::write(dir.join("tls.key"), &m.key).unwrap();
        std::fs::write(dir.join("tls.crt"), &m.cert).unwrap();
    }

    /// The leaf certificate a new TLS handshake with `addr` gets (trusting `cas`).
    async fn served_leaf(addr: SocketAddr, cas: &[&TlsMaterial]) -> Result<Vec<u8>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for m in cas {
            for c in CertificateDer::pem_slice_iter(m.ca_bundle.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(crate::fetch::tls_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).ok_or("no certificate")?;
        Ok(leaf.to_vec())
    }

    fn leaf_der(m: &TlsMaterial) -> Vec<u8> {
        CertificateDer::from_pem_slice(m.cert.as_bytes()).unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_cert_dir_is_served_and_new_handshakes_get_the_replaced_files() {
        let names = vec!["127.0.0.1".to_string()];
        let now = jiff::Timestamp::now();
        let (first, second) = (
            generate(&names, DEFAULT_VALIDITY, now, None).unwrap(),
            generate(&names, DEFAULT_VALIDITY, now, None).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), &first);
        let pem = read_cert_dir(dir.path()).unwrap();
        let certs = Arc::new(Reloadable::from_pem(&pem.0, &pem.1).unwrap());
        tokio::spawn(watch_cert_dir(dir.path().to_path_buf(), Duration::from_millis(50), pem, certs.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve_on(listener, router, Arc::new(server_config(certs).unwrap())));
        let both = [&first, &second];
        let mut leaf = Err("not yet".to_string());
        for _ in 0..100 {
            leaf = served_leaf(addr, &both).await;
            if leaf.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(leaf.unwrap(), leaf_der(&first));

        // A certificate and a key of different pairs (a rotation caught half-way) are not
        // served: the old pair stays.
        std::fs::write(dir.path().join("tls.crt"), &second.cert).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(served_leaf(addr, &both).await.unwrap(), leaf_der(&first), "a mismatched pair was served");

        // The whole new pair: new handshakes get it.
        write_pair(dir.path(), &second);
        let mut served = vec![];
        for _ in 0..100 {
            served = served_leaf(addr, &both).await.unwrap();
            if served == leaf_der(&second) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(served, leaf_der(&second), "the replaced files were never served");
        // Only the new CA vouches for it now.
        assert!(served_leaf(addr, &[&first]).await.is_err());
        assert!(served_leaf(addr, &[&second]).await.is_ok());
    }
}
