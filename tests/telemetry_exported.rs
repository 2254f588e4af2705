//! Every metric that a dashboard or an alert uses is one that trustwatch exports, and every
//! exported metric is shown somewhere. Names are read out of the PromQL with a plain
//! identifier scan; histogram series (`_bucket`, `_sum`, `_count`) map to their family.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use trustwatch::admission::decide::{Decision, Effect, ImageOutcome};
use trustwatch::crd::MigrationState;
use trustwatch::telemetry::{Metrics, names};
use trustwatch::verdict::Verdict;
use trustwatch::verifier::SignatureFormat;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every dashboard under `dashboards/`.
fn dashboards() -> Vec<(String, Value)> {
    let mut out = vec![];
    for entry in std::fs::read_dir(root().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "dashboards/ holds the overview and the trust expiry dashboards");
    out
}

/// `(where, expr)` of every panel target (rows included) and every templating query.
fn dashboard_exprs() -> Vec<(String, String)> {
    fn walk(file: &str, panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("{file}: {}", p["title"]), e.to_string()));
                }
            }
            walk(file, p["panels"].as_array().map(Vec::as_slice).unwrap_or_default(), out);
        }
    }
    let mut out = vec![];
    for (file, d) in dashboards() {
        walk(&file, d["panels"].as_array().unwrap(), &mut out);
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str()).unwrap_or_default();
            if q.contains("trustwatch_") {
                out.push((format!("{file}: variable {}", v["name"]), q.to_string()));
            }
        }
    }
    out
}

/// `(alert, expr)` of every rule of the rules file and of the PrometheusRule.
fn rule_exprs() -> Vec<(String, String)> {
    let mut out = vec![];
    for (file, groups) in [
        ("dashboards/alerts/trustwatch.rules.yaml", "/groups"),
        ("config/prometheus/prometheusrule.yaml", "/spec/groups"),
    ] {
        let doc: Value = serde_saphyr::from_str(&read(file)).unwrap();
        for g in doc.pointer(groups).and_then(Value::as_array).unwrap() {
            for r in g["rules"].as_array().unwrap() {
                out.push((format!("{file}: {}", r["alert"]), r["expr"].as_str().unwrap().to_string()));
            }
        }
    }
    out
}

/// `trustwatch_[a-z_]+` identifiers in `expr`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("trustwatch_") {
        let start = i + pos;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start + "trustwatch_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// One label matcher of a selector: `(label, op, value)`, the value unquoted.
type Matcher = (String, String, String);

/// `(metric, matchers)` of every `trustwatch_*{...}` selector in `expr` (a bare name has none).
fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut out = vec![];
    let bytes = expr.as_bytes();
    for name in metric_names(expr) {
        let mut from = 0;
        while let Some(pos) = expr[from..].find(&name) {
            let start = from + pos;
            let end = start + name.len();
            from = end;
            let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let whole = end >= bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
            if !boundary || !whole {
                continue;
            }
            let mut matchers = vec![];
            if bytes.get(end) == Some(&b'{') {
                let mut rest = &expr[end + 1..];
                loop {
                    rest = rest.trim_start_matches([' ', ',', '\n']);
                    if rest.starts_with('}') {
                        break;
                    }
                    let label_len = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or_else(|| panic!("unterminated selector in {expr}"));
                    let label = &rest[..label_len];
                    rest = rest[label_len..].trim_start();
                    let op_len = rest.find('"').unwrap_or_else(|| panic!("unquoted matcher value in {expr}"));
                    let op = rest[..op_len].trim();
                    rest = &rest[op_len + 1..];
                    let close = rest.find('"').unwrap_or_else(|| panic!("unterminated matcher value in {expr}"));
                    matchers.push((label.to_string(), op.to_string(), rest[..close].to_string()));
                    rest = &rest[close + 1..];
                }
            }
            out.push((name.clone(), matchers));
        }
    }
    out
}

/// The label names and values of every exported series, by series name.
fn exported_labels(text: &str) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.rsplit_once('}').unwrap().0),
            None => (line.split_once(' ').unwrap().0, ""),
        };
        let entry = out.entry(name.to_string()).or_default();
        for (_, m) in selectors(&format!("{name}{{{labels}}}")).into_iter().filter(|(n, _)| n == name) {
            for (label, _, value) in m {
                entry.entry(label).or_default().insert(value);
            }
        }
    }
    out
}

/// A facade with one sample of everything recorded.
fn one_of_each() -> Arc<Metrics> {
    let m = Arc::new(Metrics::new());
    m.record_verification("corp", Verdict::Verified, 0.01);
    m.record_notary_request("corp", "2xx", 0.005);
    m.record_refresh("corp", true, 1.7e9);
    m.set_trust_expiry("corp", "targets", 86_400.0);
    m.set_repository_expiry("corp", "registry.example.com/team/app", 86_400.0);
    m.set_warning_window("corp", 604_800.0);
    m.set_policy("prod", &BTreeMap::from([(Verdict::Verified, 1)]), &BTreeMap::from([("ns".into(), 0)]), 60.0, 1.7e9);
    m.record_reconcile("policy", true, 0.01);
    // The other outcome of each counter, so selectors on either value can be checked.
    m.record_refresh("corp", false, 1.7e9);
    m.record_reconcile("trustroot", false, 0.01);
    m.set_leader("trustwatch-0", true);
    m.set_leader("trustwatch-1", false);
    let formats = BTreeMap::from([(SignatureFormat::NotaryV1, 2), (SignatureFormat::Notation, 1)]);
    let migration = BTreeMap::from([(MigrationState::NotaryV1Only, 2), (MigrationState::SuccessorVerified, 1)]);
    let notary_only = BTreeMap::from([("corp".to_string(), 2)]);
    let signature_expiry = BTreeMap::from([
        (("nv".to_string(), "signature".to_string()), 86_400.0),
        (("nv".to_string(), "certificate".to_string()), 864_000.0),
    ]);
    m.set_migration("prod", &formats, &migration, &notary_only, &signature_expiry);
    m.set_retirement("corp", Some(("notary.docker.io", 1_796_688_000.0)), 2_592_000.0);
    // One refused image, and one admitted with a warning because it could not be verified.
    let decided = |verdict: Verdict, reason: &str, effect: Effect| {
        let line = format!("trustwatch: image ... is {verdict}");
        let outcome = ImageOutcome {
            policy: "prod".into(),
            image: "registry.example.com/team/app:v1".into(),
            verdict,
            reason: reason.into(),
            effect,
        };
        let (denial, warnings) = if effect == Effect::Denied { (Some(line), vec![]) } else { (None, vec![line]) };
        Decision { denial, warnings, outcomes: vec![outcome] }
    };
    m.record_admission("Deployment", &decided(Verdict::Unsigned, "NoSignature", Effect::Denied), 0.02);
    m.record_admission("Pod", &decided(Verdict::TrustDataUnavailable, "AdmissionBudgetExceeded", Effect::Warned), 5.0);
    m.record_admission("Pod", &Decision::default(), 0.001);
    m
}

/// Exported series names: families from `# TYPE` lines, histograms with their three series.
fn exported(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut families = BTreeSet::new();
    let mut series = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').unwrap();
        families.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                series.insert(format!("{name}{suffix}"));
            }
        } else {
            series.insert(name.to_string());
        }
    }
    (families, series)
}

fn family_of(name: &str, families: &BTreeSet<String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families.contains(base) {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

#[test]
fn the_identifier_scan_finds_names_and_only_names() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le) (rate(trustwatch_notary_request_duration_seconds_bucket{trust_root=~"$trust_root"}[5m]))) / my_trustwatch_x"#,
    );
    assert_eq!(names, BTreeSet::from(["trustwatch_notary_request_duration_seconds_bucket".to_string()]));
}

#[test]
fn the_selector_scan_reads_label_matchers() {
    let found = selectors(
        r#"sum(trustwatch_migration_containers{policy=~"$policy", state="SuccessorFailing"}) / trustwatch_leader and trustwatch_migration_containers_x"#,
    );
    let m = |l: &str, op: &str, v: &str| (l.to_string(), op.to_string(), v.to_string());
    assert_eq!(
        found,
        vec![
            ("trustwatch_leader".to_string(), vec![]),
            (
                "trustwatch_migration_containers".to_string(),
                vec![m("policy", "=~", "$policy"), m("state", "=", "SuccessorFailing")]
            ),
            ("trustwatch_migration_containers_x".to_string(), vec![]),
        ]
    );
}

/// A selector on a label the metric does not have, or on a value it never takes, matches
/// nothing: the panel stays empty and the alert silent without any error.
#[test]
fn every_selector_uses_labels_and_values_the_metric_exports() {
    let text = one_of_each().render();
    let labels = exported_labels(&text);
    let mut wrong = vec![];
    for (place, expr) in dashboard_exprs().into_iter().chain(rule_exprs()) {
        for (metric, matchers) in selectors(&expr) {
            let Some(have) = labels.get(&metric) else { continue }; // reported by the test above
            for (label, op, value) in matchers {
                match have.get(&label) {
                    None => wrong.push(format!("{place}: {metric} has no label {label} (it has {:?})", have.keys())),
                    Some(values) if op == "=" && !value.contains('$') && !values.contains(&value) => {
                        wrong.push(format!("{place}: {metric}{{{label}=\"{value}\"}} is never exported ({values:?})"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}\n\nexported:\n{text}", wrong.join("\n"));
}

#[test]
fn every_metric_used_by_a_dashboard_or_an_alert_is_exported() {
    let text = one_of_each().render();
    let (families, series) = exported(&text);
    let used: Vec<(String, String)> = dashboard_exprs().into_iter().chain(rule_exprs()).collect();
    assert!(used.len() > 30, "expressions found: {used:#?}");
    let mut missing = vec![];
    for (place, expr) in &used {
        let found = metric_names(expr);
        assert!(!found.is_empty(), "{place}: no trustwatch metric in {expr}");
        for name in found {
            if !series.contains(&name) {
                missing.push(format!("{place}: {name} (in {expr})"));
            }
        }
    }
    assert!(missing.is_empty(), "used but not exported:\n{}\n\nexported:\n{text}", missing.join("\n"));
    // The contract list and the exporter agree.
    assert_eq!(families, names::ALL.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(), "{text}");
}

#[test]
fn every_exported_metric_is_shown_on_a_dashboard() {
    let text = one_of_each().render();
    let (families, _) = exported(&text);
    let shown: BTreeSet<String> =
        dashboard_exprs().iter().flat_map(|(_, e)| metric_names(e)).map(|n| family_of(&n, &families)).collect();
    let unshown: Vec<&String> = families.iter().filter(|f| !shown.contains(*f)).collect();
    assert!(unshown.is_empty(), "exported but on no dashboard: {unshown:?}");
}

#[test]
fn dashboards_are_importable_with_a_prometheus_datasource_variable() {
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(!uid.is_empty() && uid.len() <= 40, "{file}: uid {uid:?}");
        assert!(uids.insert(uid.to_string()), "{file}: duplicate uid {uid}");
        assert!(d["schemaVersion"].as_u64().is_some_and(|v| (36..=41).contains(&v)), "{file}: schemaVersion");
        assert!(d["id"].is_null(), "{file}: an importable dashboard has no id");
        let input = &d["__inputs"][0];
        assert_eq!((input["type"].as_str(), input["pluginId"].as_str()), (Some("datasource"), Some("prometheus")));
        let vars = d["templating"]["list"].as_array().unwrap();
        let ds = vars.iter().find(|v| v["name"] == "datasource").unwrap_or_else(|| panic!("{file}: no datasource var"));
        assert_eq!((ds["type"].as_str(), ds["query"].as_str()), (Some("datasource"), Some("prometheus")), "{file}");
        let mut ids = BTreeSet::new();
        let panels = d["panels"].as_array().unwrap();
        for p in panels {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{file}: a panel without a title");
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{file}: duplicate panel id in {title}");
            let g = &p["gridPos"];
            assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "{file}: {title} overflows the grid");
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{file}: {title} datasource");
            let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{file}: {title} has no targets"));
            assert!(!targets.is_empty(), "{file}: {title} has no targets");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{file}: {title} target datasource");
                assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{file}: {title} empty expr");
            }
        }
    }
}

#[test]
fn no_expression_groups_or_filters_by_an_unbounded_label() {
    for (place, expr) in dashboard_exprs().into_iter().chain(rule_exprs()) {
        for label in ["pod", "image", "container", "digest"] {
            for pattern in [format!("{label}="), format!("{label}!"), format!("by ({label}"), format!(", {label})")] {
                assert!(!expr.contains(&pattern), "{place}: uses label {label}: {expr}");
            }
        }
    }
}
