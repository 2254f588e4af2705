//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`.

use super::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// The admin routes: `GET /metrics` (Prometheus text format 0.0.4), `GET /healthz` (200
/// `ok` while the process serves), `GET /readyz` (200 once `ready` is set, 503 before).
pub fn admin_router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(AdminState { metrics, ready })
}

/// Binds `addr` and serves [`admin_router`] until the task is dropped or the listener fails.
pub async fn serve_admin(addr: SocketAddr, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_admin_on(listener, metrics, ready).await
}

/// Serves [`admin_router`] on a listener already bound (e.g. to port 0 in tests).
pub async fn serve_admin_on(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin server listening");
    }
    axum::serve(listener, admin_router(metrics, ready)).await
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    // Rendering gathers under a few short locks; cheap enough to run inline.
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
