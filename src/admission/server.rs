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
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How `trustwatch run` serves the webhook (its `--webhook-*` flags).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub addr: SocketAddr,
    /// The budget of one review's verifications.
    pub budget: Duration,
    pub certs: CertConfig,
    /// How often the Secret is read again (rotation by another replica, or due here).
    pub check_every: Duration,
}

/// The certificate new handshakes get; swapped on rotation.
#[derive(Debug)]
pub struct Reloadable {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloadable {
    pub fn new(m: &TlsMaterial) -> Result<Reloadable, String> {
        Ok(Reloadable { current: RwLock::new(Arc::new(certified_key(m)?)) })
    }

    pub fn replace(&self, m: &TlsMaterial) -> Result<(), String> {
        let key = Arc::new(certified_key(m)?);
        *self.current.write().expect("certificate lock poisoned") = key;
        Ok(())
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock poisoned").clone())
    }
}

fn certified_key(m: &TlsMaterial) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(m.cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("serving certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(m.key.as_bytes()).map_err(|e| format!("serving key: {e}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("serving key: {e}"))?;
    Ok(CertifiedKey::new(chain, signing))
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
pub async fn run(ctx: Arc<Context>, config: WebhookConfig) {
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
    while !ctx.synced.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls = match server_config(reloadable) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "the webhook is off");
            return;
        }
    };
    if let Err(e) = serve(config.addr, router(ctx, config.budget), tls).await {
        tracing::error!(addr = %config.addr, error = %e, "the webhook stopped");
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

/// Accepts TLS connections and serves `router` on each (HTTP/1.1 or HTTP/2).
pub async fn serve(addr: SocketAddr, router: Router, tls: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %addr, "admission webhook serving");
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
