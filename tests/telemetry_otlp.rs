//! OTLP trace export: off when no endpoint is configured; when pointed at a collector, spans
//! made with `tracing` (through the bridge layer) arrive as OTLP/HTTP protobuf on /v1/traces.

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt as _;
use trustwatch::telemetry::{OtelBridge, init_tracing_export, init_tracing_export_to};

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported_and_nothing_fails() {
    let configured = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()));
    if configured {
        // The environment asks for export; then a provider must come back.
        assert!(init_tracing_export().is_some());
    } else {
        assert!(init_tracing_export().is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tracing_spans_reach_an_otlp_http_collector() {
    type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                s.lock().unwrap().push((ctype, body.to_vec()));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = tokio::spawn(async move { axum::serve(listener, app).await });

    let provider = init_tracing_export_to(&format!("http://{addr}")).expect("exporter builds");
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "trustwatch-test");
    let subscriber = tracing_subscriber::registry().with(OtelBridge::new(tracer));
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("reconcile", policy = "prod");
        let _o = outer.enter();
        let inner = tracing::info_span!("verify_image", trust_root = "corp");
        let _i = inner.enter();
        tracing::info!(verdict = "DigestDrift", "verification failed");
    });
    provider.force_flush().expect("flush");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen.lock().unwrap().clone();
        let all: Vec<u8> = got.iter().flat_map(|(_, b)| b.clone()).collect();
        let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
        if has(b"reconcile") && has(b"verify_image") {
            assert!(got.iter().all(|(c, _)| c == "application/x-protobuf"), "content types: {got:?}");
            assert!(has(b"verification failed") && has(b"DigestDrift"), "the event and its fields are exported");
            assert!(has(b"trustwatch"), "the service name is exported");
            break;
        }
        assert!(Instant::now() < deadline, "no spans arrived; {} requests", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    provider.shutdown().expect("shutdown");
    collector.abort();
}
