//! Telemetry: metrics (OpenTelemetry instruments exported in Prometheus text format), logs
//! (`tracing` to stderr as text or JSON), the admin HTTP server (`/metrics`, `/healthz`,
//! `/readyz`) and optional OTLP trace export.
//!
//! Metric names and label sets are a contract with `dashboards/` and the alert rules; a test
//! (`tests/telemetry_exported.rs`) checks that every name they use is exported. Labels are
//! bounded: policy, trust root, verdict, role class, outcome, controller, namespace, and a
//! capped number of repositories. Never pod or image names: those belong in events, status
//! and reports.

mod admin;
mod metrics;
mod otlp;

pub use admin::{admin_router, serve_admin, serve_admin_on};
pub use metrics::{
    DURATION_BUCKETS, MAX_REPOSITORY_SERIES, Metrics, NOTARY_OUTCOMES, ROLE_CLASSES, notary_outcome,
    repository_seconds_left, role_class,
};
pub use otlp::{OtelBridge, init_tracing_export, init_tracing_export_to};

/// The exported metric names (the Prometheus names, suffixes included).
pub mod names {
    /// gauge {policy, verdict}
    pub const CONTAINERS: &str = "trustwatch_containers";
    /// gauge {policy, namespace}
    pub const QUARANTINED_PODS: &str = "trustwatch_quarantined_pods";
    /// counter {trust_root, verdict}
    pub const VERIFICATIONS_TOTAL: &str = "trustwatch_verifications_total";
    /// histogram {trust_root}
    pub const VERIFICATION_DURATION_SECONDS: &str = "trustwatch_verification_duration_seconds";
    /// gauge {trust_root, role}
    pub const TRUST_EXPIRY_SECONDS: &str = "trustwatch_trust_expiry_seconds";
    /// gauge {trust_root, repository}
    pub const REPOSITORY_EXPIRY_SECONDS: &str = "trustwatch_repository_expiry_seconds";
    /// gauge {trust_root}
    pub const EXPIRY_WARNING_SECONDS: &str = "trustwatch_expiry_warning_seconds";
    /// counter {trust_root, outcome}
    pub const NOTARY_REQUESTS_TOTAL: &str = "trustwatch_notary_requests_total";
    /// histogram {trust_root}
    pub const NOTARY_REQUEST_DURATION_SECONDS: &str = "trustwatch_notary_request_duration_seconds";
    /// counter {trust_root, result}
    pub const TRUST_REFRESHES_TOTAL: &str = "trustwatch_trust_refreshes_total";
    /// gauge {trust_root}
    pub const TRUST_REFRESH_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
        "trustwatch_trust_refresh_last_success_timestamp_seconds";
    /// gauge {policy}
    pub const SCAN_LAST_COMPLETED_TIMESTAMP_SECONDS: &str = "trustwatch_scan_last_completed_timestamp_seconds";
    /// gauge {policy}
    pub const SCAN_INTERVAL_SECONDS: &str = "trustwatch_scan_interval_seconds";
    /// counter {controller, result}
    pub const RECONCILE_TOTAL: &str = "trustwatch_reconcile_total";
    /// histogram {controller}
    pub const RECONCILE_DURATION_SECONDS: &str = "trustwatch_reconcile_duration_seconds";
    /// gauge {version}
    pub const BUILD_INFO: &str = "trustwatch_build_info";
    /// gauge {identity}
    pub const LEADER: &str = "trustwatch_leader";
    /// gauge {policy, format}
    pub const CONTAINERS_BY_FORMAT: &str = "trustwatch_containers_by_format";
    /// gauge {policy, state}
    pub const MIGRATION_CONTAINERS: &str = "trustwatch_migration_containers";
    /// gauge {policy, trust_root}
    pub const NOTARY_ONLY_CONTAINERS: &str = "trustwatch_notary_only_containers";
    /// gauge {trust_root, endpoint}
    pub const ENDPOINT_RETIREMENT_TIMESTAMP_SECONDS: &str = "trustwatch_endpoint_retirement_timestamp_seconds";
    /// gauge {trust_root}
    pub const RETIREMENT_WARNING_SECONDS: &str = "trustwatch_retirement_warning_seconds";
    /// gauge {policy, trust_root, kind}
    pub const SIGNATURE_EXPIRY_SECONDS: &str = "trustwatch_signature_expiry_seconds";
    /// counter {kind, effect}: admission reviews answered (effect: allowed, warned, denied)
    pub const ADMISSION_REQUESTS_TOTAL: &str = "trustwatch_admission_requests_total";
    /// counter {policy, effect, verdict, reason}: images decided at admission
    pub const ADMISSION_DECISIONS_TOTAL: &str = "trustwatch_admission_decisions_total";
    /// histogram {kind}
    pub const ADMISSION_DURATION_SECONDS: &str = "trustwatch_admission_duration_seconds";

    /// Every exported name.
    pub const ALL: [&str; 26] = [
        CONTAINERS,
        QUARANTINED_PODS,
        VERIFICATIONS_TOTAL,
        VERIFICATION_DURATION_SECONDS,
        TRUST_EXPIRY_SECONDS,
        REPOSITORY_EXPIRY_SECONDS,
        EXPIRY_WARNING_SECONDS,
        NOTARY_REQUESTS_TOTAL,
        NOTARY_REQUEST_DURATION_SECONDS,
        TRUST_REFRESHES_TOTAL,
        TRUST_REFRESH_LAST_SUCCESS_TIMESTAMP_SECONDS,
        SCAN_LAST_COMPLETED_TIMESTAMP_SECONDS,
        SCAN_INTERVAL_SECONDS,
        RECONCILE_TOTAL,
        RECONCILE_DURATION_SECONDS,
        BUILD_INFO,
        LEADER,
        CONTAINERS_BY_FORMAT,
        MIGRATION_CONTAINERS,
        NOTARY_ONLY_CONTAINERS,
        ENDPOINT_RETIREMENT_TIMESTAMP_SECONDS,
        RETIREMENT_WARNING_SECONDS,
        SIGNATURE_EXPIRY_SECONDS,
        ADMISSION_REQUESTS_TOTAL,
        ADMISSION_DECISIONS_TOTAL,
        ADMISSION_DURATION_SECONDS,
    ];
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`--log-format json`), for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?} (use text or json)")),
        }
    }
}

/// Installs the global `tracing` subscriber: logs to stderr in `format`, filtered by
/// `filter` (env-filter syntax, e.g. `info,trustwatch=debug`; an invalid filter falls back
/// to `info` and says so). When [`init_tracing_export`] installed an exporter before, spans
/// are also exported over OTLP. A second call is a no-op.
pub fn init_logging(format: LogFormat, filter: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (env_filter, bad_filter) = match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (tracing_subscriber::EnvFilter::new("info"), Some(e.to_string())),
    };
    let registry = tracing_subscriber::registry().with(env_filter).with(otlp::installed_bridge());
    let installed = match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr))
            .try_init(),
    };
    if let (Ok(()), Some(e)) = (installed, bad_filter) {
        tracing::warn!(filter, error = %e, "invalid log filter; using info");
    }
}

#[cfg(test)]
mod tests;
