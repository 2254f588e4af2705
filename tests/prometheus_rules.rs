//! The alert rules against the real `promtool`: they load, their unit tests pass (every alert
//! fires for its problem and stays silent on healthy series), and the Prometheus Operator
//! manifests in `config/prometheus/` wrap exactly the same groups and select the right Service.
//!
//! `TRUSTWATCH_UPDATE_PROMETHEUSRULE=1 cargo test --test prometheus_rules` rewrites
//! `config/prometheus/prometheusrule.yaml` from `dashboards/alerts/trustwatch.rules.yaml`.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const RULES: &str = "dashboards/alerts/trustwatch.rules.yaml";
const RULE_TESTS: &str = "dashboards/alerts/tests.yaml";
const PROMETHEUS_RULE: &str = "config/prometheus/prometheusrule.yaml";

/// The alerts the README and the on-call runbooks refer to.
const ALERTS: [&str; 16] = [
    "TrustwatchVerificationFailures",
    "TrustwatchDigestDrift",
    "TrustwatchSignerRevoked",
    "TrustwatchTrustDataExpiringSoon",
    "TrustwatchTrustDataExpired",
    "TrustwatchSignatureExpiringSoon",
    "TrustwatchSignatureExpired",
    "TrustwatchNotaryUnreachable",
    "TrustwatchNotaryEndpointRetiring",
    "TrustwatchNotaryEndpointRetired",
    "TrustwatchSuccessorSignatureFailing",
    "TrustwatchScanStale",
    "TrustwatchQuarantineActive",
    "TrustwatchNoLeader",
    "TrustwatchAdmissionRefusals",
    "TrustwatchAdmissionUnverified",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str::<Value>(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Runs `promtool ARGS` in the crate root. A missing promtool fails the test: it is a real
/// peer of this suite, not an optional one.
fn promtool(args: &[&str]) -> (bool, String) {
    let out =
        Command::new("promtool").args(args).current_dir(root()).output().unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): `make deps` installs it (Debian package `prometheus`)")
        });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn alert_rules_pass_promtool_check() {
    let (ok, out) = promtool(&["check", "rules", RULES]);
    assert!(ok, "promtool check rules {RULES} failed:\n{out}");
    assert!(out.contains(&format!("{} rules found", ALERTS.len())), "{out}");
}

#[test]
fn alert_rule_unit_tests_pass_in_promtool() {
    let (ok, out) = promtool(&["test", "rules", RULE_TESTS]);
    assert!(ok, "promtool test rules {RULE_TESTS} failed:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_rejects_a_broken_rule_so_the_checks_above_mean_something() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.rules.yaml");
    std::fs::write(
        &bad,
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum by (policy (trustwatch_containers)\n",
    )
    .unwrap();
    let (ok, out) = promtool(&["check", "rules", bad.to_str().unwrap()]);
    assert!(!ok, "promtool accepted a rule that does not parse:\n{out}");
}

fn rules() -> Vec<Value> {
    let doc = yaml(RULES);
    let groups = doc["groups"].as_array().expect("groups");
    groups.iter().flat_map(|g| g["rules"].as_array().expect("rules").clone()).collect()
}

#[test]
fn every_alert_has_a_hold_time_a_severity_and_says_what_to_do() {
    let rules = rules();
    let names: BTreeSet<&str> = rules.iter().map(|r| r["alert"].as_str().expect("alert name")).collect();
    assert_eq!(names, ALERTS.into_iter().collect(), "the contracted alerts");
    for r in &rules {
        let name = r["alert"].as_str().unwrap();
        assert!(r["for"].as_str().is_some_and(|f| !f.is_empty()), "{name}: no `for`");
        let sev = r["labels"]["severity"].as_str().unwrap_or_default();
        assert!(["critical", "warning", "info"].contains(&sev), "{name}: severity {sev:?}");
        let summary = r["annotations"]["summary"].as_str().unwrap_or_default();
        let description = r["annotations"]["description"].as_str().unwrap_or_default();
        assert!(!summary.is_empty(), "{name}: no summary");
        assert!(description.contains("kubectl "), "{name}: the description must tell the on-call what to run");
        let expr = r["expr"].as_str().unwrap();
        for forbidden in ["pod=", "pod_name", "image="] {
            assert!(!expr.contains(forbidden), "{name}: unbounded label {forbidden} in {expr}");
        }
    }
}

#[test]
fn the_promtool_tests_make_every_alert_fire_and_check_a_healthy_cluster_stays_silent() {
    let doc = yaml(RULE_TESTS);
    let mut fired = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for t in doc["tests"].as_array().expect("tests") {
        for a in t["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = a["alertname"].as_str().unwrap().to_string();
            match a["exp_alerts"].as_array().map(Vec::len) {
                Some(0) | None => silent.insert(name),
                Some(_) => fired.insert(name),
            };
        }
    }
    for a in ALERTS {
        assert!(fired.contains(a), "{RULE_TESTS}: no test makes {a} fire");
        assert!(silent.contains(a), "{RULE_TESTS}: no test checks {a} stays silent");
    }
}

/// `config/prometheus/prometheusrule.yaml`: the rules file's groups under a PrometheusRule.
fn prometheus_rule() -> String {
    let rules = read(RULES);
    let groups = &rules[rules.find("\ngroups:").expect("the rules file has `groups:`") + 1..];
    let mut out = String::from(
        "# Generated from dashboards/alerts/trustwatch.rules.yaml; do not edit. Regenerate with\n\
         # `TRUSTWATCH_UPDATE_PROMETHEUSRULE=1 cargo test --test prometheus_rules`.\n\
         # If your Prometheus selects rules by label (kube-prometheus-stack: `release: <helm release>`),\n\
         # add that label below.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: trustwatch\n  namespace: trustwatch-system\n  labels:\n    app.kubernetes.io/name: trustwatch\n\
         spec:\n",
    );
    for line in groups.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

#[test]
fn the_prometheus_rule_wraps_exactly_the_groups_of_the_rules_file() {
    let path: PathBuf = root().join(PROMETHEUS_RULE);
    let want = prometheus_rule();
    if std::env::var_os("TRUSTWATCH_UPDATE_PROMETHEUSRULE").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let rule = yaml(PROMETHEUS_RULE);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "trustwatch-system");
    assert_eq!(
        rule["spec"]["groups"],
        yaml(RULES)["groups"],
        "{PROMETHEUS_RULE} drifted from {RULES}: run TRUSTWATCH_UPDATE_PROMETHEUSRULE=1 cargo test --test prometheus_rules"
    );
    assert_eq!(
        read(PROMETHEUS_RULE),
        want,
        "{PROMETHEUS_RULE} is not the generated text: run TRUSTWATCH_UPDATE_PROMETHEUSRULE=1 cargo test --test prometheus_rules"
    );
}

#[test]
fn the_service_monitor_scrapes_the_metrics_port_of_the_operator_pods() {
    let svc = yaml("config/prometheus/service.yaml");
    let sm = yaml("config/prometheus/servicemonitor.yaml");
    let manager: Vec<Value> = serde_saphyr::from_multiple(&read("config/manager/manager.yaml")).unwrap();
    let deploy = manager.iter().find(|d| d["kind"] == "Deployment").expect("the manager Deployment");

    assert_eq!(svc["metadata"]["name"], "trustwatch-metrics");
    assert_eq!(svc["metadata"]["namespace"], "trustwatch-system");
    let port = &svc["spec"]["ports"][0];
    assert_eq!((port["name"].as_str(), port["port"].as_u64()), (Some("metrics"), Some(9090)));
    assert_eq!(svc["spec"]["selector"]["app.kubernetes.io/name"], "trustwatch");
    // The Service selects the operator pods, and its target port is a named port of them.
    let pod_labels = deploy["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k}={v} does not match the pods");
    }
    let container_ports: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(container_ports.contains(&port["targetPort"].as_str().unwrap()), "{container_ports:?}");

    assert_eq!(sm["kind"], "ServiceMonitor");
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], "trustwatch-system");
    let svc_labels = svc["metadata"]["labels"].as_object().unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(svc_labels.get(k), Some(v), "ServiceMonitor selector {k}={v} does not match the Service");
    }
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");

    let kustomization = yaml("config/prometheus/kustomization.yaml");
    let listed: BTreeSet<&str> =
        kustomization["resources"].as_array().unwrap().iter().filter_map(|r| r.as_str()).collect();
    assert_eq!(listed, BTreeSet::from(["service.yaml", "servicemonitor.yaml", "prometheusrule.yaml"]));
}
