//! Optional OTLP trace export (HTTP/protobuf), on only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, plus a small bridge that turns
//! `tracing` spans into OpenTelemetry spans.
//!
//! The bridge is deliberately minimal: span name, fields as attributes, parent/child
//! nesting, events inside a span as span events. (`tracing-opentelemetry` does more, but
//! is not a dependency here.)

use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The tracer installed by [`init_tracing_export`], picked up by `init_logging`.
static INSTALLED: OnceLock<SdkTracer> = OnceLock::new();

/// Starts OTLP trace export when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; `None` (and nothing started) otherwise, or
/// when the exporter cannot be built (logged to stderr, never fatal).
///
/// Call it inside the tokio runtime and before [`super::init_logging`], which then also
/// sends `tracing` spans to the exporter. Keep the provider and call `shutdown()` on it at
/// exit to flush the last batch.
pub fn init_tracing_export() -> Option<SdkTracerProvider> {
    let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return None;
    }
    match build_provider(None) {
        Ok(provider) => {
            let _ = INSTALLED.set(provider.tracer("trustwatch"));
            opentelemetry::global::set_tracer_provider(provider.clone());
            Some(provider)
        }
        Err(e) => {
            // Logging is not up yet: this is the one place that writes to stderr directly.
            eprintln!("trustwatch: OTLP trace export disabled: {e}");
            None
        }
    }
}

/// A provider exporting to `base_url` (`http://host:4318`; `/v1/traces` is appended), for
/// tests and explicit configuration. Needs a tokio runtime. Nothing global is touched.
pub fn init_tracing_export_to(base_url: &str) -> Result<SdkTracerProvider, String> {
    build_provider(Some(format!("{}/v1/traces", base_url.trim_end_matches('/'))))
}

fn build_provider(endpoint: Option<String>) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(e);
    }
    let exporter = builder.build().map_err(|e| e.to_string())?;
    // The async client needs the tokio runtime: batch on it, not on a plain thread.
    tokio::runtime::Handle::try_current().map_err(|_| "OTLP export needs a tokio runtime".to_string())?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("trustwatch")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build())
}

/// The bridge layer when [`init_tracing_export`] installed an exporter.
pub(super) fn installed_bridge() -> Option<OtelBridge> {
    INSTALLED.get().cloned().map(OtelBridge::new)
}

/// A `tracing` layer that mirrors spans to an OpenTelemetry tracer.
pub struct OtelBridge {
    tracer: SdkTracer,
}

impl OtelBridge {
    pub fn new(tracer: SdkTracer) -> Self {
        OtelBridge { tracer }
    }
}

/// The OTel context of one `tracing` span, kept in its extensions.
struct OtelSpan(Context);

#[derive(Default)]
struct Fields(Vec<KeyValue>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(KeyValue::new(field.name(), value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push(KeyValue::new(field.name(), value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push(KeyValue::new(field.name(), i64::try_from(value).unwrap_or(i64::MAX)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push(KeyValue::new(field.name(), value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push(KeyValue::new(field.name(), value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push(KeyValue::new(field.name(), format!("{value:?}")));
    }
}

impl<S> Layer<S> for OtelBridge
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent =
            span.parent().and_then(|p| p.extensions().get::<OtelSpan>().map(|s| s.0.clone())).unwrap_or_default();
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let meta = attrs.metadata();
        fields.0.push(KeyValue::new("code.namespace", meta.target().to_string()));
        let otel =
            self.tracer.span_builder(meta.name()).with_attributes(fields.0).start_with_context(&self.tracer, &parent);
        span.extensions_mut().insert(OtelSpan(parent.with_span(otel)));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(s) = span.extensions().get::<OtelSpan>() {
            s.0.span().set_attributes(fields.0);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.event_span(event) else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name = fields
            .0
            .iter()
            .position(|kv| kv.key.as_str() == "message")
            .map(|i| fields.0.remove(i).value.to_string())
            .unwrap_or_else(|| event.metadata().name().to_string());
        fields.0.push(KeyValue::new("level", event.metadata().level().as_str()));
        if let Some(s) = span.extensions().get::<OtelSpan>() {
            s.0.span().add_event(name, fields.0);
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(s) = span.extensions_mut().remove::<OtelSpan>() {
            s.0.span().end();
        }
    }
}
