//! The whole metrics path with real peers: a real notary-server with tags signed by the real
//! notary CLI, real verifications through the trust engine recording into `Metrics` (Notary
//! requests through the fetch hook), `serve_admin` on loopback, and a real `prometheus`
//! scraping it with the alert rules loaded. Every dashboard expression and every alert
//! expression then goes through Prometheus' query API: each must be accepted, and the ones
//! that describe what happened here must return data.

mod support;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::*;
use trustwatch::crd::MigrationState;
use trustwatch::engine::{ResolveOptions, TrustEngine};
use trustwatch::fetch::{NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::telemetry::{self, Metrics};
use trustwatch::tuf::{Anchors, PinnedKey};
use trustwatch::verdict::Verdict;
use trustwatch::verifier::SignatureFormat;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real `prometheus` process, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr, rule_file: &Path) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: trustwatch\n    static_configs:\n      - targets: ['{target}']\n",
                rule_file.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus ({e}): `make deps` installs it (Debian package `prometheus`)")
            });
        Prometheus { child, url: format!("http://127.0.0.1:{port}"), log, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/api/v1/query` at the current time: `(status, data or error)`.
    async fn query(&self, http: &reqwest::Client, expr: &str) -> Value {
        let resp = http
            .get(query_url(&self.url, expr))
            .send()
            .await
            .unwrap_or_else(|e| panic!("query {expr}: {e}\n{}", self.log()));
        resp.json().await.unwrap()
    }

    async fn get(&self, http: &reqwest::Client, path: &str) -> Value {
        http.get(format!("{}{path}", self.url)).send().await.unwrap().json().await.unwrap()
    }

    /// Polls `check` every 250 ms until it returns `Some`, at most `limit`.
    async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> F,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}) while waiting for {what}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/api/v1/query?query=EXPR` (evaluated at the current time).
fn query_url(base: &str, expr: &str) -> reqwest::Url {
    reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", expr)]).unwrap()
}

/// Panel target and templating expressions of every dashboard, as PromQL: Grafana's
/// variables replaced (`$__rate_interval` by `1m`, multi-value variables by `.*`) and
/// `label_values(m, l)` turned into `group by (l) (m)`.
fn dashboard_exprs() -> Vec<(String, String)> {
    fn walk(file: &str, panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("{file}: {} {}", p["title"], t["refId"]), e.to_string()));
                }
            }
            walk(file, p["panels"].as_array().map(Vec::as_slice).unwrap_or_default(), out);
        }
    }
    let mut out = vec![];
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        walk(&file, d["panels"].as_array().unwrap(), &mut out);
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let q = v["query"]["query"].as_str().unwrap_or_default();
            if let Some(args) = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
                let (metric, label) = args.rsplit_once(',').expect("label_values(metric, label)");
                out.push((
                    format!("{file}: variable {}", v["name"]),
                    format!("group by ({}) ({metric})", label.trim()),
                ));
            }
        }
    }
    out.into_iter().map(|(w, e)| (w, grafana_to_promql(&e))).collect()
}

fn grafana_to_promql(expr: &str) -> String {
    let e = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h");
    let e = e.replace("${policy}", ".*").replace("$policy", ".*");
    let e = e.replace("${trust_root}", ".*").replace("$trust_root", ".*");
    assert!(!e.contains('$'), "a Grafana variable left in {e}");
    e
}

fn alert_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("dashboards/alerts/trustwatch.rules.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    let mut out = vec![];
    for g in doc["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            out.push((r["alert"].as_str().unwrap().to_string(), r["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

fn unix_now() -> f64 {
    Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// Verifies `images` against the engine, recording each verification; returns the verdicts.
async fn verify_all(
    engine: &TrustEngine<NotaryHttp>,
    metrics: &Metrics,
    trust_root: &str,
    images: &[String],
    opts: &ResolveOptions,
) -> Vec<Verdict> {
    let mut out = vec![];
    for image in images {
        let started = Instant::now();
        let r = engine.verify(&ImageRef::parse(image).unwrap(), opts, Instant::now()).await;
        metrics.record_verification(trust_root, r.verdict, started.elapsed().as_secs_f64());
        out.push(r.verdict);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_and_alerts_query_real_metrics_in_a_real_prometheus() {
    let started = Instant::now();
    // ---- real Notary data: one good tag, one image running a digest nobody signed ----
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/team/app";
    client.init(gun);
    let v1 = sha_hex("app-v1");
    client.add_hash(gun, "v1", 1234, &v1, &[]);
    client.add_hash(gun, "v2", 1234, &sha_hex("app-v2"), &[]);

    let metrics = Arc::new(Metrics::new());
    let engine_for = |url: &str, trust_root: &str| {
        let mut cfg = ServerConfig::new(url);
        cfg.ca_pem = Some(server.ca_pem());
        cfg.timeout = Duration::from_secs(3);
        cfg.connect_timeout = Duration::from_secs(1);
        cfg.metrics = Some((metrics.clone(), trust_root.to_string()));
        let pinned = vec![PinnedKey::from_pem("root", &client.root_cert_pem(gun)).unwrap()];
        TrustEngine::new(NotaryHttp::new(cfg).unwrap(), Anchors { pinned, revoked: BTreeSet::new() })
    };
    let corp = engine_for(&server.url(), "corp");
    // A trust root whose server is down: real connection errors, a failed refresh.
    let offline = engine_for(&format!("https://127.0.0.1:{}", free_port()), "offline");
    let opts =
        ResolveOptions { signers: vec![], now: Timestamp::now(), expiry_warning: SignedDuration::from_hours(24 * 7) };

    let images = [format!("{gun}:v1"), format!("{gun}:v2"), format!("{gun}:v1@sha256:{}", sha_hex("rebuilt"))];
    let verdicts = verify_all(&corp, &metrics, "corp", &images, &opts).await;
    assert_eq!(verdicts, vec![Verdict::Verified, Verdict::Verified, Verdict::DigestDrift]);
    let offline_verdicts = verify_all(&offline, &metrics, "offline", &[format!("{gun}:v1")], &opts).await;
    assert_eq!(offline_verdicts, vec![Verdict::TrustDataUnavailable]);

    // What a policy scan and the trust root controller would record.
    let mut counts = BTreeMap::new();
    for v in verdicts.iter().chain(&offline_verdicts) {
        *counts.entry(*v).or_insert(0u64) += 1;
    }
    let quarantined = BTreeMap::from([("team-a".to_string(), 1u64)]);
    metrics.set_policy("prod", &counts, &quarantined, 60.0, unix_now());
    let now = Timestamp::now();
    let view = corp.repository(gun, now, Instant::now()).await;
    let repo = view.result.expect("the signed repository verifies");
    metrics.record_refresh("corp", true, unix_now());
    let expiries = repo.expiries();
    metrics.set_trust_expiries("corp", &expiries, now);
    let left = telemetry::repository_seconds_left(&expiries, now).expect("roles people hold expire");
    metrics.set_repository_expiry("corp", gun, left);
    // A window wide enough to cover the targets role (3 years), so the warning expression
    // has something to find.
    metrics.set_warning_window("corp", 5.0 * 365.0 * 86_400.0);
    let failed = offline.repository(gun, now, Instant::now()).await;
    assert!(failed.result.is_err());
    metrics.record_refresh("offline", false, unix_now());
    metrics.set_warning_window("offline", 7.0 * 86_400.0);
    metrics.record_reconcile("policy", true, 0.02);
    metrics.record_reconcile("trustroot", false, 0.3);
    metrics.set_leader("trustwatch-0", true);
    metrics.set_leader("trustwatch-1", false);
    // The migration view a policy scan records (the scanner's own tests and the cluster test
    // derive it from real signatures; here it feeds the dashboards and alerts). The three
    // containers above depend on "corp" alone, as if its server were announced to retire in
    // 10 days (inside the 30-day warning); a Notary trust root "legacy" retired yesterday
    // with one container still on it; a Notation trust root "nv" verifies two containers, one
    // with a signature expiring in 3 days (inside its 7-day window), and fails for one.
    let endpoint = server.url().trim_start_matches("https://").to_string();
    metrics.set_retirement("corp", Some((&endpoint, unix_now() + 10.0 * 86_400.0)), 30.0 * 86_400.0);
    metrics.set_retirement("legacy", Some(("notary.legacy.example", unix_now() - 86_400.0)), 30.0 * 86_400.0);
    metrics.set_warning_window("legacy", 7.0 * 86_400.0);
    metrics.set_retirement("nv", None, 30.0 * 86_400.0);
    metrics.set_warning_window("nv", 7.0 * 86_400.0);
    let by_format = BTreeMap::from([(SignatureFormat::NotaryV1, 4), (SignatureFormat::Notation, 2)]);
    let migration = BTreeMap::from([
        (MigrationState::NotaryV1Only, 4),
        (MigrationState::SuccessorVerified, 2),
        (MigrationState::SuccessorFailing, 1),
    ]);
    let notary_only = BTreeMap::from([("corp".to_string(), 3), ("legacy".to_string(), 1)]);
    let signature_expiry = BTreeMap::from([
        (("nv".to_string(), "signature".to_string()), 3.0 * 86_400.0),
        (("nv".to_string(), "certificate".to_string()), 300.0 * 86_400.0),
    ]);
    metrics.set_migration("prod", &by_format, &migration, &notary_only, &signature_expiry);
    // The admission webhook refused a Deployment and admitted a Pod.
    use trustwatch::admission::decide::{Decision, Effect, ImageOutcome};
    let refused = Decision {
        denial: Some("trustwatch: image ... is Unsigned".into()),
        warnings: vec![],
        outcomes: vec![ImageOutcome {
            policy: "prod".into(),
            image: "registry.example.com/team/app:v2".into(),
            verdict: Verdict::Unsigned,
            reason: "NoSignedTarget".into(),
            effect: Effect::Denied,
        }],
    };
    metrics.record_admission("Deployment", &refused, 0.03);
    metrics.record_admission("Pod", &Decision::default(), 0.002);

    let text = metrics.render();
    for line in [
        r#"trustwatch_containers{policy="prod",verdict="DigestDrift"} 1"#,
        r#"trustwatch_containers{policy="prod",verdict="Verified"} 2"#,
        r#"trustwatch_verifications_total{trust_root="corp",verdict="Verified"} 2"#,
        r#"trustwatch_trust_refreshes_total{result="failure",trust_root="offline"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    // The fetch hook counted real requests: successes against the real server, connection
    // errors against the one that is down.
    assert!(text.contains(r#"trustwatch_notary_requests_total{outcome="2xx",trust_root="corp"}"#), "{text}");
    assert!(text.contains(r#"trustwatch_notary_requests_total{outcome="error",trust_root="offline"}"#), "{text}");
    for role in ["root", "targets", "snapshot", "timestamp", "certificate"] {
        assert!(
            text.contains(&format!(r#"trustwatch_trust_expiry_seconds{{role="{role}",trust_root="corp"}}"#)),
            "{text}"
        );
    }

    // ---- the admin server ----
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let ready = Arc::new(AtomicBool::new(false));
    let server_task = tokio::spawn(telemetry::serve_admin_on(listener, metrics.clone(), ready.clone()));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let get = |path: &str| http.get(format!("http://{admin}{path}")).send();
    let r = get("/healthz").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
    ready.store(true, Ordering::Release);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let r = get("/metrics").await.unwrap();
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(r.text().await.unwrap().contains("trustwatch_build_info{"));

    // ---- a real Prometheus scraping it, with the alert rules loaded ----
    let rules = root().join("dashboards/alerts/trustwatch.rules.yaml");
    let mut prom = Prometheus::start(admin, &rules);
    let url = prom.url.clone();
    prom.wait_for("prometheus to be ready", Duration::from_secs(30), || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http.get(format!("{url}/-/ready")).send().await.ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await;
    // Three scrapes at least, so rate() has points to work with.
    let deadline = Duration::from_secs(20);
    let http2 = http.clone();
    let url2 = prom.url.clone();
    prom.wait_for("two successful scrapes of trustwatch", deadline, || {
        let http = http2.clone();
        let url = url2.clone();
        async move {
            let v: Value = http
                .get(query_url(&url, "count_over_time(trustwatch_build_info[1m])"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let n: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
            (n >= 3.0).then_some(())
        }
    })
    .await;
    let v = prom.query(&http, r#"up{job="trustwatch"}"#).await;
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");

    // ---- every expression parses, and the ones about what happened here return data ----
    let mut failures = vec![];
    for (place, expr) in dashboard_exprs() {
        let v = prom.query(&http, &expr).await;
        if v["status"] != "success" {
            failures.push(format!("{place}: {expr}\n  {}", v["error"]));
        } else if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            // Everything a dashboard shows was recorded above: an empty panel is a bug.
            failures.push(format!("{place}: no data for {expr}"));
        }
    }
    let must_fire = BTreeSet::from([
        "TrustwatchVerificationFailures",
        "TrustwatchDigestDrift",
        "TrustwatchTrustDataExpiringSoon",
        "TrustwatchQuarantineActive",
        "TrustwatchNotaryEndpointRetiring",
        "TrustwatchNotaryEndpointRetired",
        "TrustwatchSignatureExpiringSoon",
        "TrustwatchSuccessorSignatureFailing",
    ]);
    for (alert, expr) in alert_exprs() {
        let v = prom.query(&http, &expr).await;
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        if v["status"] != "success" {
            failures.push(format!("{alert}: {expr}\n  {}", v["error"]));
        } else if must_fire.contains(alert.as_str()) && result.is_empty() {
            failures.push(format!("{alert}: no data for {expr}"));
        } else if !must_fire.contains(alert.as_str()) && !result.is_empty() {
            failures.push(format!("{alert}: unexpected data {result:?} for {expr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The retirement alerts name the right trust root and endpoint each, and the dashboard's
    // join of dependents and retirement dates puts both on one row per trust root.
    let labels_of = |v: &Value| -> BTreeSet<(String, String)> {
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let m = &s["metric"];
                (m["trust_root"].as_str().unwrap_or("").to_string(), m["endpoint"].as_str().unwrap_or("").to_string())
            })
            .collect()
    };
    let alert_expr = |name: &str| alert_exprs().into_iter().find(|(a, _)| a == name).unwrap().1;
    let v = prom.query(&http, &alert_expr("TrustwatchNotaryEndpointRetiring")).await;
    assert_eq!(labels_of(&v), BTreeSet::from([("corp".to_string(), endpoint.clone())]), "{v}");
    let v = prom.query(&http, &alert_expr("TrustwatchNotaryEndpointRetired")).await;
    assert_eq!(labels_of(&v), BTreeSet::from([("legacy".to_string(), "notary.legacy.example".to_string())]), "{v}");
    let join: Vec<(String, String)> = dashboard_exprs()
        .into_iter()
        .filter(|(place, _)| place.contains("Notary v1 trust roots depended on alone"))
        .collect();
    assert_eq!(join.len(), 3, "{join:?}");
    let dependents = prom.query(&http, &join[0].1).await;
    let days = prom.query(&http, &join[1].1).await;
    let warning = prom.query(&http, &join[2].1).await;
    let rows = labels_of(&dependents);
    assert!(rows.contains(&("corp".to_string(), endpoint.clone())), "{dependents}");
    assert!(rows.contains(&("legacy".to_string(), "notary.legacy.example".to_string())), "{dependents}");
    assert!(labels_of(&days).is_subset(&rows), "every retirement row joins a dependents row: {days} {dependents}");
    assert_eq!(labels_of(&warning), labels_of(&days), "each retirement row has its warning window: {warning}");
    let value_of = |v: &Value, root: &str| -> f64 {
        let s = v["data"]["result"].as_array().unwrap().iter().find(|s| s["metric"]["trust_root"] == root).unwrap();
        s["value"][1].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(value_of(&dependents, "corp"), 3.0, "{dependents}");
    let corp_days = value_of(&days, "corp");
    assert!((9.9..=10.0).contains(&corp_days), "days until corp retires: {corp_days}");
    assert_eq!(value_of(&warning, "corp"), 30.0, "{warning}");

    // The failing-containers expression names the drifted verdict, and so do the rules as
    // Prometheus evaluates them: pending (their `for` has not passed) or firing.
    let v = prom.query(&http, &alert_exprs()[0].1).await;
    let labels: Vec<&Value> = v["data"]["result"].as_array().unwrap().iter().map(|s| &s["metric"]).collect();
    assert!(labels.iter().any(|m| m["verdict"] == "DigestDrift" && m["policy"] == "prod"), "{v}");
    let url3 = prom.url.clone();
    let http3 = http.clone();
    let rule_groups = prom
        .wait_for("the rules to be evaluated with the scraped data", deadline, || {
            let http = http3.clone();
            let url = url3.clone();
            async move {
                let v: Value = http.get(format!("{url}/api/v1/rules")).send().await.ok()?.json().await.ok()?;
                let groups = v["data"]["groups"].as_array()?.clone();
                let drift_active =
                    groups.iter().flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default()).any(|r| {
                        r["name"] == "TrustwatchDigestDrift" && r["alerts"].as_array().is_some_and(|a| !a.is_empty())
                    });
                drift_active.then_some(groups)
            }
        })
        .await;
    let mut evaluated = BTreeSet::new();
    for g in &rule_groups {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "rule {} evaluates with an error: {}", r["name"], r["lastError"]);
            evaluated.insert(r["name"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(evaluated.len(), alert_exprs().len(), "Prometheus loaded every rule: {evaluated:?}");
    let alerts = prom.get(&http, "/api/v1/alerts").await;
    let active: BTreeSet<&str> =
        alerts["data"]["alerts"].as_array().unwrap().iter().filter_map(|a| a["labels"]["alertname"].as_str()).collect();
    assert!(active.contains("TrustwatchDigestDrift") && active.contains("TrustwatchVerificationFailures"), "{alerts}");

    server_task.abort();
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
}
