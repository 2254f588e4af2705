//! The metrics facade: OpenTelemetry instruments read by a Prometheus registry.
//!
//! Counters and histograms are synchronous OTel instruments. Gauges are observable gauges
//! fed from a small table of current values: an observable gauge only exports what its
//! callback reports at scrape time, so a deleted policy or trust root can be forgotten
//! (`forget_policy`, `forget_trust_root`) instead of leaving a stale series that keeps an
//! alert firing forever.

use super::names;
use crate::tuf::{Expiry, FetchError};
use crate::verdict::Verdict;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _, ObservableGauge};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// At most this many distinct `(trust_root, repository)` series for
/// `trustwatch_repository_expiry_seconds`; later repositories are ignored (logged once).
pub const MAX_REPOSITORY_SERIES: usize = 200;

/// Histogram buckets (seconds) for work that takes from about a millisecond to ten seconds.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The role classes of `trustwatch_trust_expiry_seconds{role}`: a bounded set.
pub const ROLE_CLASSES: [&str; 6] = ["root", "targets", "snapshot", "timestamp", "delegation", "certificate"];

/// The outcomes of `trustwatch_notary_requests_total{outcome}`.
pub const NOTARY_OUTCOMES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "timeout", "error"];

/// Maps a role as [`Expiry::role`] names it (`root`, `targets/releases`,
/// `targets/releases certificate`, ...) to its bounded class.
pub fn role_class(role: &str) -> &'static str {
    if role.ends_with(" certificate") || role == "certificate" {
        return "certificate";
    }
    match role {
        "root" => "root",
        "targets" => "targets",
        "snapshot" => "snapshot",
        "timestamp" => "timestamp",
        _ => "delegation",
    }
}

/// The `outcome` label of one Notary request, from what `Source::fetch` returned.
/// A 404 is `Ok(None)` (`4xx`); a body over the size limit or a broken connection is `error`.
pub fn notary_outcome(result: &Result<Option<Vec<u8>>, FetchError>) -> &'static str {
    match result {
        Ok(Some(_)) => "2xx",
        Ok(None) => "4xx",
        Err(FetchError::Timeout { .. }) => "timeout",
        Err(FetchError::Auth { status, .. } | FetchError::Status { status, .. }) => status_class(*status),
        Err(FetchError::Connect { .. } | FetchError::Tls { .. } | FetchError::TooLarge { .. }) => "error",
        Err(FetchError::Body { .. }) => "error",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

/// Seconds from `now` until the earliest expiry of the roles people hold (not the
/// server-managed timestamp and snapshot, which the server re-signs), for
/// [`Metrics::set_repository_expiry`]. `None` when there is none.
pub fn repository_seconds_left<'a>(
    expiries: impl IntoIterator<Item = &'a Expiry>,
    now: jiff::Timestamp,
) -> Option<f64> {
    expiries
        .into_iter()
        .filter(|e| !e.server_managed)
        .map(|e| e.expires.duration_since(now).as_secs_f64())
        .min_by(f64::total_cmp)
}

/// One gauge family: label names and the current value of each series.
struct GaugeFamily {
    labels: &'static [&'static str],
    series: BTreeMap<Vec<String>, f64>,
}

/// The current values behind the observable gauges, keyed by metric name.
type GaugeTable = Arc<Mutex<BTreeMap<&'static str, GaugeFamily>>>;

/// The OTel instruments of trustwatch, exported through their own Prometheus registry.
pub struct Metrics {
    registry: prometheus::Registry,
    /// Owns the pipeline; dropping the facade shuts it down.
    _provider: SdkMeterProvider,
    gauges: GaugeTable,
    /// Kept so the callbacks live as long as the facade.
    _observers: Vec<ObservableGauge<f64>>,
    verifications: Counter<u64>,
    verification_duration: Histogram<f64>,
    notary_requests: Counter<u64>,
    notary_request_duration: Histogram<f64>,
    refreshes: Counter<u64>,
    reconciles: Counter<u64>,
    reconcile_duration: Histogram<f64>,
    admission_requests: Counter<u64>,
    admission_decisions: Counter<u64>,
    admission_duration: Histogram<f64>,
    /// The repository series limit is logged once, not on every refresh.
    repository_limit_logged: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Builds a private Prometheus registry and meter provider (not the global ones, so a
    /// process or a test can hold several).
    pub fn new() -> Metrics {
        let registry = prometheus::Registry::new();
        // Exported names are the contract of dashboards and alerts: no unit or `_total`
        // suffixes added by the exporter (the names below carry them), no `otel_scope_*`
        // labels, no `target_info` series.
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .without_target_info()
            .scope_info_enabled(false)
            .with_resource_selector(opentelemetry_prometheus::ResourceSelector::None)
            .build()
            .expect("a fresh registry accepts the exporter's collector");
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("trustwatch");
        let gauges: GaugeTable = Arc::default();

        let observers = GAUGES.iter().map(|g| observable(&meter, &gauges, g)).collect();
        let counter = |name: &'static str, help: &'static str| meter.u64_counter(name).with_description(help).build();
        let histogram = |name: &'static str, help: &'static str| {
            meter.f64_histogram(name).with_description(help).with_boundaries(DURATION_BUCKETS.to_vec()).build()
        };
        let m = Metrics {
            verifications: counter(names::VERIFICATIONS_TOTAL, "Image verifications by trust root and verdict."),
            verification_duration: histogram(
                names::VERIFICATION_DURATION_SECONDS,
                "Time to verify one image (trust data refresh included), in seconds.",
            ),
            notary_requests: counter(
                names::NOTARY_REQUESTS_TOTAL,
                "Requests to the Notary server by outcome (2xx, 3xx, 4xx, 5xx, timeout, error).",
            ),
            notary_request_duration: histogram(
                names::NOTARY_REQUEST_DURATION_SECONDS,
                "Duration of one Notary metadata request (token exchange included), in seconds.",
            ),
            refreshes: counter(names::TRUST_REFRESHES_TOTAL, "Trust data refreshes by result (success, failure)."),
            reconciles: counter(names::RECONCILE_TOTAL, "Reconcile passes by controller and result (success, error)."),
            reconcile_duration: histogram(names::RECONCILE_DURATION_SECONDS, "Duration of one reconcile, in seconds."),
            admission_requests: counter(
                names::ADMISSION_REQUESTS_TOTAL,
                "Admission reviews answered by object kind and effect (allowed, warned, denied; pinned, unchanged by the mutating webhook).",
            ),
            admission_decisions: counter(
                names::ADMISSION_DECISIONS_TOTAL,
                "Images decided at admission by policy, effect, verdict and reason.",
            ),
            admission_duration: histogram(
                names::ADMISSION_DURATION_SECONDS,
                "Time to answer one admission review (verification included), in seconds.",
            ),
            registry,
            _provider: provider,
            gauges,
            _observers: observers,
            repository_limit_logged: AtomicBool::new(false),
        };
        m.set(names::BUILD_INFO, &[env!("CARGO_PKG_VERSION")], 1.0);
        m
    }

    /// The registry in Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        use prometheus::Encoder as _;
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// One image verified against `trust_root`, with the verdict and how long it took.
    pub fn record_verification(&self, trust_root: &str, verdict: Verdict, seconds: f64) {
        let root = KeyValue::new("trust_root", trust_root.to_string());
        self.verifications.add(1, &[root.clone(), KeyValue::new("verdict", verdict.as_str())]);
        self.verification_duration.record(seconds, &[root]);
    }

    /// One admission review answered: the object's kind (one the webhook is registered for,
    /// else `other`), what each image came to, and how long the answer took.
    pub fn record_admission(&self, kind: &str, decision: &crate::admission::decide::Decision, seconds: f64) {
        self.record_review(kind, decision.effect().as_str(), seconds);
        for o in &decision.outcomes {
            let labels = [
                KeyValue::new("policy", o.policy.clone()),
                KeyValue::new("effect", o.effect.as_str()),
                KeyValue::new("verdict", o.verdict.as_str()),
                KeyValue::new("reason", o.reason.clone()),
            ];
            self.admission_decisions.add(1, &labels);
        }
    }

    /// One review of the mutating webhook: `pinned` when it pinned an image, else
    /// `unchanged` (its verdicts are counted once, by the validating webhook).
    pub fn record_pinning(&self, kind: &str, pins: &[crate::admission::pin::Pin], seconds: f64) {
        let effect = if pins.is_empty() { "unchanged" } else { "pinned" };
        self.record_review(kind, effect, seconds);
    }

    fn record_review(&self, kind: &str, effect: &'static str, seconds: f64) {
        const KINDS: [&str; 7] = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"];
        let kind = KINDS.into_iter().find(|k| *k == kind).unwrap_or("other");
        let kind = KeyValue::new("kind", kind);
        self.admission_requests.add(1, &[kind.clone(), KeyValue::new("effect", effect)]);
        self.admission_duration.record(seconds, &[kind]);
    }

    /// One request to the Notary server of `trust_root`. An `outcome` outside
    /// [`NOTARY_OUTCOMES`] is counted as `error`.
    pub fn record_notary_request(&self, trust_root: &str, outcome: &str, seconds: f64) {
        let outcome = NOTARY_OUTCOMES.into_iter().find(|o| *o == outcome).unwrap_or("error");
        let root = KeyValue::new("trust_root", trust_root.to_string());
        self.notary_requests.add(1, &[root.clone(), KeyValue::new("outcome", outcome)]);
        self.notary_request_duration.record(seconds, &[root]);
    }

    /// One refresh of the trust data of `trust_root`; a success also moves the
    /// last-success timestamp to `at_unix_secs`.
    pub fn record_refresh(&self, trust_root: &str, ok: bool, at_unix_secs: f64) {
        let result = if ok { "success" } else { "failure" };
        self.refreshes.add(1, &[KeyValue::new("trust_root", trust_root.to_string()), KeyValue::new("result", result)]);
        if ok {
            self.set(names::TRUST_REFRESH_LAST_SUCCESS_TIMESTAMP_SECONDS, &[trust_root], at_unix_secs);
        }
    }

    /// Seconds until the earliest expiry of `role` in `trust_root` (negative once expired).
    /// `role` is a class of [`ROLE_CLASSES`]; any other name is mapped with [`role_class`].
    pub fn set_trust_expiry(&self, trust_root: &str, role: &str, seconds_left: f64) {
        self.set(names::TRUST_EXPIRY_SECONDS, &[trust_root, role_class(role)], seconds_left);
    }

    /// Replaces every role series of `trust_root` with the earliest expiry of each role
    /// class found in `expiries` (those of all its repositories), judged at `now`.
    pub fn set_trust_expiries<'a>(
        &self,
        trust_root: &str,
        expiries: impl IntoIterator<Item = &'a Expiry>,
        now: jiff::Timestamp,
    ) {
        let mut earliest: BTreeMap<&'static str, f64> = BTreeMap::new();
        for e in expiries {
            let left = e.expires.duration_since(now).as_secs_f64();
            let slot = earliest.entry(role_class(&e.role)).or_insert(left);
            *slot = slot.min(left);
        }
        let mut table = self.gauges.lock().expect("gauge table poisoned");
        if let Some(family) = table.get_mut(names::TRUST_EXPIRY_SECONDS) {
            family.series.retain(|k, _| k[0] != trust_root);
            for (role, left) in earliest {
                family.series.insert(vec![trust_root.to_string(), role.to_string()], left);
            }
        }
    }

    /// Seconds until the earliest expiry of a role people hold in one repository (see
    /// [`repository_seconds_left`]). At most [`MAX_REPOSITORY_SERIES`] repositories are
    /// tracked; further ones are ignored.
    pub fn set_repository_expiry(&self, trust_root: &str, repository: &str, seconds_left: f64) {
        let mut table = self.gauges.lock().expect("gauge table poisoned");
        let Some(family) = table.get_mut(names::REPOSITORY_EXPIRY_SECONDS) else { return };
        let key = vec![trust_root.to_string(), repository.to_string()];
        if !family.series.contains_key(&key) && family.series.len() >= MAX_REPOSITORY_SERIES {
            if !self.repository_limit_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limit = MAX_REPOSITORY_SERIES,
                    repository,
                    "repository expiry series limit reached; further repositories are not exported"
                );
            }
            return;
        }
        family.series.insert(key, seconds_left);
    }

    /// The expiry warning window of `trust_root`, in seconds.
    pub fn set_warning_window(&self, trust_root: &str, seconds: f64) {
        self.set(names::EXPIRY_WARNING_SECONDS, &[trust_root], seconds);
    }

    /// The outcome of one scan of `policy`: containers by verdict (every verdict gets a
    /// series, 0 when absent, so alerts can compare with `== 0`), quarantined pods by
    /// namespace (a namespace that no longer has any reads 0), the scan interval and the
    /// time the scan completed.
    pub fn set_policy(
        &self,
        policy: &str,
        counts: &BTreeMap<Verdict, u64>,
        quarantined_by_namespace: &BTreeMap<String, u64>,
        interval_secs: f64,
        last_scan_unix_secs: f64,
    ) {
        let mut table = self.gauges.lock().expect("gauge table poisoned");
        let mut put = |name: &'static str, labels: Vec<String>, value: f64| {
            if let Some(family) = table.get_mut(name) {
                family.series.insert(labels, value);
            }
        };
        for v in Verdict::ALL {
            let n = counts.get(&v).copied().unwrap_or(0);
            put(names::CONTAINERS, vec![policy.to_string(), v.as_str().to_string()], n as f64);
        }
        put(names::SCAN_INTERVAL_SECONDS, vec![policy.to_string()], interval_secs);
        put(names::SCAN_LAST_COMPLETED_TIMESTAMP_SECONDS, vec![policy.to_string()], last_scan_unix_secs);
        if let Some(family) = table.get_mut(names::QUARANTINED_PODS) {
            let before: BTreeSet<String> =
                family.series.keys().filter(|k| k[0] == policy).map(|k| k[1].clone()).collect();
            for ns in before {
                family.series.insert(vec![policy.to_string(), ns], 0.0);
            }
            for (ns, n) in quarantined_by_namespace {
                family.series.insert(vec![policy.to_string(), ns.clone()], *n as f64);
            }
        }
    }

    /// The migration view of one scan of `policy`: containers by format and by migration state
    /// (every value gets a series), containers that depend on a Notary v1 trust root alone, and
    /// the earliest Notation/cosign signature and certificate expiries in seconds.
    pub fn set_migration(
        &self,
        policy: &str,
        by_format: &BTreeMap<crate::verifier::SignatureFormat, u64>,
        migration: &BTreeMap<crate::crd::MigrationState, u64>,
        notary_only_by_root: &BTreeMap<String, u64>,
        signature_expiry: &BTreeMap<(String, String), f64>,
    ) {
        let mut table = self.gauges.lock().expect("gauge table poisoned");
        let p = policy.to_string();
        if let Some(f) = table.get_mut(names::CONTAINERS_BY_FORMAT) {
            for fmt in crate::verifier::SignatureFormat::ALL {
                let n = by_format.get(&fmt).copied().unwrap_or(0);
                f.series.insert(vec![p.clone(), fmt.as_str().to_string()], n as f64);
            }
        }
        if let Some(f) = table.get_mut(names::MIGRATION_CONTAINERS) {
            for st in crate::crd::MigrationState::ALL {
                let n = migration.get(&st).copied().unwrap_or(0);
                f.series.insert(vec![p.clone(), st.as_str().to_string()], n as f64);
            }
        }
        if let Some(f) = table.get_mut(names::NOTARY_ONLY_CONTAINERS) {
            for v in f.series.iter_mut().filter(|(k, _)| k[0] == p).map(|(_, v)| v) {
                *v = 0.0;
            }
            for (root, n) in notary_only_by_root {
                f.series.insert(vec![p.clone(), root.clone()], *n as f64);
            }
        }
        if let Some(f) = table.get_mut(names::SIGNATURE_EXPIRY_SECONDS) {
            f.series.retain(|k, _| k[0] != p);
            for ((root, kind), secs) in signature_expiry {
                f.series.insert(vec![p.clone(), root.clone(), kind.clone()], *secs);
            }
        }
    }

    /// A trust root's Notary server retires at `at_unix_secs` (or no known retirement).
    pub fn set_retirement(&self, trust_root: &str, retirement: Option<(&str, f64)>, warning_secs: f64) {
        let mut table = self.gauges.lock().expect("gauge table poisoned");
        if let Some(f) = table.get_mut(names::ENDPOINT_RETIREMENT_TIMESTAMP_SECONDS) {
            f.series.retain(|k, _| k[0] != trust_root);
            if let Some((endpoint, at)) = retirement {
                f.series.insert(vec![trust_root.to_string(), endpoint.to_string()], at);
            }
        }
        if let Some(f) = table.get_mut(names::RETIREMENT_WARNING_SECONDS) {
            f.series.insert(vec![trust_root.to_string()], warning_secs);
        }
    }

    /// One reconcile of `controller` (e.g. `policy`, `trustroot`).
    pub fn record_reconcile(&self, controller: &str, ok: bool, seconds: f64) {
        let c = KeyValue::new("controller", controller.to_string());
        let result = if ok { "success" } else { "error" };
        self.reconciles.add(1, &[c.clone(), KeyValue::new("result", result)]);
        self.reconcile_duration.record(seconds, &[c]);
    }

    /// Whether this replica (`identity`, its pod name) leads.
    pub fn set_leader(&self, identity: &str, leading: bool) {
        self.set(names::LEADER, &[identity], if leading { 1.0 } else { 0.0 });
    }

    /// Drops the gauge series of a deleted policy.
    pub fn forget_policy(&self, policy: &str) {
        self.forget(
            &[
                names::CONTAINERS,
                names::QUARANTINED_PODS,
                names::SCAN_INTERVAL_SECONDS,
                names::SCAN_LAST_COMPLETED_TIMESTAMP_SECONDS,
                names::CONTAINERS_BY_FORMAT,
                names::MIGRATION_CONTAINERS,
                names::NOTARY_ONLY_CONTAINERS,
                names::SIGNATURE_EXPIRY_SECONDS,
            ],
            policy,
        );
    }

    /// Drops the gauge series of a deleted trust root.
    pub fn forget_trust_root(&self, trust_root: &str) {
        self.forget(
            &[
                names::TRUST_EXPIRY_SECONDS,
                names::REPOSITORY_EXPIRY_SECONDS,
                names::EXPIRY_WARNING_SECONDS,
                names::TRUST_REFRESH_LAST_SUCCESS_TIMESTAMP_SECONDS,
                names::ENDPOINT_RETIREMENT_TIMESTAMP_SECONDS,
                names::RETIREMENT_WARNING_SECONDS,
            ],
            trust_root,
        );
    }

    fn forget(&self, metric_names: &[&'static str], first_label: &str) {
        let mut table = self.gauges.lock().expect("gauge table poisoned");
        for name in metric_names {
            if let Some(family) = table.get_mut(name) {
                family.series.retain(|k, _| k[0] != first_label);
            }
        }
    }

    fn set(&self, name: &'static str, labels: &[&str], value: f64) {
        let mut table = self.gauges.lock().expect("gauge table poisoned");
        if let Some(family) = table.get_mut(name) {
            debug_assert_eq!(family.labels.len(), labels.len(), "labels of {name}");
            family.series.insert(labels.iter().map(|l| l.to_string()).collect(), value);
        }
    }
}

struct GaugeDef {
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
}

const GAUGES: &[GaugeDef] = &[
    GaugeDef {
        name: names::CONTAINERS,
        labels: &["policy", "verdict"],
        help: "Running containers covered by a policy, by verdict (every verdict has a series).",
    },
    GaugeDef {
        name: names::QUARANTINED_PODS,
        labels: &["policy", "namespace"],
        help: "Pods labelled as quarantined by a policy, by namespace.",
    },
    GaugeDef {
        name: names::TRUST_EXPIRY_SECONDS,
        labels: &["trust_root", "role"],
        help: "Seconds until the earliest expiry of a role (root, targets, snapshot, timestamp, delegation, certificate); negative once expired.",
    },
    GaugeDef {
        name: names::REPOSITORY_EXPIRY_SECONDS,
        labels: &["trust_root", "repository"],
        help: "Seconds until the earliest expiry of a role people hold in one repository (bounded number of repositories).",
    },
    GaugeDef {
        name: names::EXPIRY_WARNING_SECONDS,
        labels: &["trust_root"],
        help: "The expiry warning window of a trust root, in seconds.",
    },
    GaugeDef {
        name: names::TRUST_REFRESH_LAST_SUCCESS_TIMESTAMP_SECONDS,
        labels: &["trust_root"],
        help: "Unix time of the last successful trust data refresh.",
    },
    GaugeDef {
        name: names::SCAN_LAST_COMPLETED_TIMESTAMP_SECONDS,
        labels: &["policy"],
        help: "Unix time the last scan of a policy completed.",
    },
    GaugeDef {
        name: names::SCAN_INTERVAL_SECONDS,
        labels: &["policy"],
        help: "The scan interval of a policy, in seconds.",
    },
    GaugeDef { name: names::BUILD_INFO, labels: &["version"], help: "Always 1; the version label names the build." },
    GaugeDef {
        name: names::CONTAINERS_BY_FORMAT,
        labels: &["policy", "format"],
        help: "Covered containers by the signature format that decided their verdict (NotaryV1, Notation, Cosign).",
    },
    GaugeDef {
        name: names::MIGRATION_CONTAINERS,
        labels: &["policy", "state"],
        help: "Containers by migration state off Docker Content Trust (NotaryV1Only, SuccessorVerified, SuccessorFailing).",
    },
    GaugeDef {
        name: names::NOTARY_ONLY_CONTAINERS,
        labels: &["policy", "trust_root"],
        help: "Containers whose running digest depends on a Notary v1 trust root alone.",
    },
    GaugeDef {
        name: names::ENDPOINT_RETIREMENT_TIMESTAMP_SECONDS,
        labels: &["trust_root", "endpoint"],
        help: "Unix time a trust root's Notary server is announced to stop serving (notary.docker.io: 2026-12-08).",
    },
    GaugeDef {
        name: names::RETIREMENT_WARNING_SECONDS,
        labels: &["trust_root"],
        help: "How long before a retirement the EndpointRetiring alert fires (spec.retirementWarning), in seconds.",
    },
    GaugeDef {
        name: names::SIGNATURE_EXPIRY_SECONDS,
        labels: &["policy", "trust_root", "kind"],
        help: "Seconds until the earliest expiry of a Notation or cosign signature (kind signature) or of its certificates (kind certificate) among running containers.",
    },
    GaugeDef {
        name: names::LEADER,
        labels: &["identity"],
        help: "1 while this replica holds the leader Lease (and writes), 0 while it stands by.",
    },
];

fn observable(meter: &Meter, table: &GaugeTable, def: &GaugeDef) -> ObservableGauge<f64> {
    table
        .lock()
        .expect("gauge table poisoned")
        .insert(def.name, GaugeFamily { labels: def.labels, series: BTreeMap::new() });
    let table = table.clone();
    let name = def.name;
    meter
        .f64_observable_gauge(def.name)
        .with_description(def.help)
        .with_callback(move |observer| {
            let table = table.lock().expect("gauge table poisoned");
            if let Some(family) = table.get(name) {
                for (values, v) in &family.series {
                    let attrs: Vec<KeyValue> =
                        family.labels.iter().zip(values).map(|(k, v)| KeyValue::new(*k, v.clone())).collect();
                    observer.observe(*v, &attrs);
                }
            }
        })
        .build()
}
