use super::*;
use crate::verdict::Verdict;
use std::collections::BTreeMap;

fn recorded() -> Metrics {
    let m = Metrics::new();
    m.record_verification("corp", Verdict::DigestDrift, 0.02);
    m.record_notary_request("corp", "2xx", 0.004);
    m.record_refresh("corp", true, 1_700_000_000.0);
    m.record_refresh("corp", false, 1_700_000_060.0);
    m.set_trust_expiry("corp", "targets", 86_400.0);
    m.set_repository_expiry("corp", "registry.example.com/team/app", 3_600.0);
    m.set_warning_window("corp", 604_800.0);
    let counts = BTreeMap::from([(Verdict::Verified, 3), (Verdict::DigestDrift, 1)]);
    let quarantined = BTreeMap::from([("team-a".to_string(), 2)]);
    m.set_policy("prod", &counts, &quarantined, 300.0, 1_700_000_100.0);
    m.record_reconcile("policy", false, 0.5);
    m.set_leader("trustwatch-0", true);
    let formats = BTreeMap::from([(crate::verifier::SignatureFormat::Cosign, 2)]);
    let migration = BTreeMap::from([(crate::crd::MigrationState::NotaryV1Only, 3)]);
    let only = BTreeMap::from([("dct".to_string(), 3)]);
    let sig = BTreeMap::from([(("nv".to_string(), "certificate".to_string()), 7200.0)]);
    m.set_migration("prod", &formats, &migration, &only, &sig);
    m.set_retirement("dct", Some(("notary.docker.io", 1_796_688_000.0)), 2_592_000.0);
    use crate::admission::decide::{Decision, Effect, ImageOutcome};
    let outcome = ImageOutcome {
        policy: "prod".into(),
        image: "registry.example.com/team/app:v1".into(),
        verdict: Verdict::Unsigned,
        reason: "NoSignature".into(),
        effect: Effect::Denied,
    };
    let refused = Decision { denial: Some("refused".into()), warnings: vec![], outcomes: vec![outcome] };
    m.record_admission("Deployment", &refused, 0.02);
    m.record_admission("ConfigMap", &Decision::default(), 0.001);
    m
}

#[test]
fn every_metric_is_exported_with_its_exact_name_and_labels() {
    let text = recorded().render();
    for line in [
        r#"trustwatch_containers{policy="prod",verdict="DigestDrift"} 1"#,
        r#"trustwatch_containers{policy="prod",verdict="Verified"} 3"#,
        r#"trustwatch_containers{policy="prod",verdict="SignerRevoked"} 0"#,
        r#"trustwatch_quarantined_pods{namespace="team-a",policy="prod"} 2"#,
        r#"trustwatch_verifications_total{trust_root="corp",verdict="DigestDrift"} 1"#,
        r#"trustwatch_verification_duration_seconds_bucket{trust_root="corp",le="0.025"} 1"#,
        r#"trustwatch_verification_duration_seconds_bucket{trust_root="corp",le="0.01"} 0"#,
        r#"trustwatch_verification_duration_seconds_count{trust_root="corp"} 1"#,
        r#"trustwatch_trust_expiry_seconds{role="targets",trust_root="corp"} 86400"#,
        r#"trustwatch_repository_expiry_seconds{repository="registry.example.com/team/app",trust_root="corp"} 3600"#,
        r#"trustwatch_expiry_warning_seconds{trust_root="corp"} 604800"#,
        r#"trustwatch_notary_requests_total{outcome="2xx",trust_root="corp"} 1"#,
        r#"trustwatch_notary_request_duration_seconds_bucket{trust_root="corp",le="0.005"} 1"#,
        r#"trustwatch_trust_refreshes_total{result="success",trust_root="corp"} 1"#,
        r#"trustwatch_trust_refreshes_total{result="failure",trust_root="corp"} 1"#,
        r#"trustwatch_trust_refresh_last_success_timestamp_seconds{trust_root="corp"} 1700000000"#,
        r#"trustwatch_scan_last_completed_timestamp_seconds{policy="prod"} 1700000100"#,
        r#"trustwatch_scan_interval_seconds{policy="prod"} 300"#,
        r#"trustwatch_reconcile_total{controller="policy",result="error"} 1"#,
        r#"trustwatch_reconcile_duration_seconds_count{controller="policy"} 1"#,
        &format!(r#"trustwatch_build_info{{version="{}"}} 1"#, env!("CARGO_PKG_VERSION")),
        r#"trustwatch_leader{identity="trustwatch-0"} 1"#,
        r#"trustwatch_containers_by_format{format="Cosign",policy="prod"} 2"#,
        r#"trustwatch_containers_by_format{format="Notation",policy="prod"} 0"#,
        r#"trustwatch_migration_containers{policy="prod",state="NotaryV1Only"} 3"#,
        r#"trustwatch_migration_containers{policy="prod",state="SuccessorVerified"} 0"#,
        r#"trustwatch_notary_only_containers{policy="prod",trust_root="dct"} 3"#,
        r#"trustwatch_endpoint_retirement_timestamp_seconds{endpoint="notary.docker.io",trust_root="dct"} 1796688000"#,
        r#"trustwatch_retirement_warning_seconds{trust_root="dct"} 2592000"#,
        r#"trustwatch_signature_expiry_seconds{kind="certificate",policy="prod",trust_root="nv"} 7200"#,
        r#"trustwatch_admission_requests_total{effect="denied",kind="Deployment"} 1"#,
        r#"trustwatch_admission_requests_total{effect="allowed",kind="other"} 1"#,
        r#"trustwatch_admission_decisions_total{effect="denied",policy="prod",reason="NoSignature",verdict="Unsigned"} 1"#,
        r#"trustwatch_admission_duration_seconds_bucket{kind="Deployment",le="0.025"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    for name in names::ALL {
        assert!(text.contains(&format!("# TYPE {name} ")), "no TYPE line for {name}:\n{text}");
    }
    for extra in ["otel_scope", "target_info", "service_name", "_total_total", "_seconds_seconds"] {
        assert!(!text.contains(extra), "{extra} leaked into:\n{text}");
    }
}

#[test]
fn types_match_the_contract() {
    let text = recorded().render();
    for (name, kind) in [
        (names::CONTAINERS, "gauge"),
        (names::VERIFICATIONS_TOTAL, "counter"),
        (names::VERIFICATION_DURATION_SECONDS, "histogram"),
        (names::NOTARY_REQUEST_DURATION_SECONDS, "histogram"),
        (names::RECONCILE_DURATION_SECONDS, "histogram"),
        (names::TRUST_REFRESHES_TOTAL, "counter"),
        (names::BUILD_INFO, "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} is not a {kind}:\n{text}");
    }
}

#[test]
fn every_verdict_series_exists_so_alerts_can_test_for_zero() {
    let m = Metrics::new();
    m.set_policy("empty", &BTreeMap::new(), &BTreeMap::new(), 60.0, 1.0);
    let text = m.render();
    for v in Verdict::ALL {
        let line = format!(r#"trustwatch_containers{{policy="empty",verdict="{}"}} 0"#, v.as_str());
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
}

#[test]
fn a_namespace_without_quarantined_pods_reads_zero_and_deleted_policies_vanish() {
    let m = Metrics::new();
    let q = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]);
    m.set_policy("p", &BTreeMap::new(), &q, 60.0, 1.0);
    m.set_policy("p", &BTreeMap::new(), &BTreeMap::from([("b".to_string(), 3)]), 60.0, 2.0);
    let text = m.render();
    assert!(text.contains(r#"trustwatch_quarantined_pods{namespace="a",policy="p"} 0"#), "{text}");
    assert!(text.contains(r#"trustwatch_quarantined_pods{namespace="b",policy="p"} 3"#), "{text}");
    m.forget_policy("p");
    let text = m.render();
    assert!(!text.contains(r#"policy="p""#), "{text}");
}

#[test]
fn repository_series_are_capped() {
    let m = Metrics::new();
    for i in 0..(MAX_REPOSITORY_SERIES + 50) {
        m.set_repository_expiry("corp", &format!("r.example.com/repo{i}"), 10.0);
    }
    // An already tracked repository still updates.
    m.set_repository_expiry("corp", "r.example.com/repo0", 5.0);
    let text = m.render();
    let n = text.lines().filter(|l| l.starts_with("trustwatch_repository_expiry_seconds{")).count();
    assert_eq!(n, MAX_REPOSITORY_SERIES);
    assert!(
        text.contains(r#"trustwatch_repository_expiry_seconds{repository="r.example.com/repo0",trust_root="corp"} 5"#)
    );
    m.forget_trust_root("corp");
    assert!(!m.render().contains("trustwatch_repository_expiry_seconds{"));
}

#[test]
fn roles_are_folded_into_bounded_classes_and_the_earliest_expiry_wins() {
    use crate::tuf::Expiry;
    let now: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let at = |h: i64| now + jiff::SignedDuration::from_hours(h);
    let e = |role: &str, h: i64, server_managed: bool| Expiry { role: role.into(), expires: at(h), server_managed };
    let expiries = vec![
        e("root", 24 * 365, false),
        e("targets", 24 * 30, false),
        e("snapshot", 24 * 3, true),
        e("timestamp", 24, true),
        e("targets/releases", 48, false),
        e("targets/qa", 72, false),
        e("targets/releases certificate", 10, false),
        e("root certificate", 24 * 3650, false),
    ];
    let m = Metrics::new();
    m.set_trust_expiry("corp", "targets/stale", 1.0);
    m.set_trust_expiries("corp", &expiries, now);
    let text = m.render();
    for (role, secs) in [
        ("root", 24 * 365 * 3600),
        ("targets", 24 * 30 * 3600),
        ("snapshot", 24 * 3 * 3600),
        ("timestamp", 24 * 3600),
        ("delegation", 48 * 3600),
        ("certificate", 10 * 3600),
    ] {
        let line = format!(r#"trustwatch_trust_expiry_seconds{{role="{role}",trust_root="corp"}} {secs}"#);
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    assert_eq!(repository_seconds_left(&expiries, now), Some(10.0 * 3600.0));
    assert_eq!(role_class("targets/releases certificate"), "certificate");
    assert_eq!(role_class("targets/a/b"), "delegation");
}

#[test]
fn notary_outcomes_are_classified_and_unknown_ones_are_errors() {
    use crate::tuf::FetchError;
    type Fetched = Result<Option<Vec<u8>>, FetchError>;
    let cases: Vec<(Fetched, &str)> = vec![
        (Ok(Some(vec![])), "2xx"),
        (Ok(None), "4xx"),
        (Err(FetchError::Timeout { path: "/x".into(), secs: 1 }), "timeout"),
        (Err(FetchError::Status { path: "/x".into(), status: 503 }), "5xx"),
        (Err(FetchError::Status { path: "/x".into(), status: 302 }), "3xx"),
        (Err(FetchError::Auth { path: "/x".into(), status: 401, detail: String::new() }), "4xx"),
        (Err(FetchError::Connect { detail: String::new() }), "error"),
        (Err(FetchError::TooLarge { path: "/x".into(), limit: 1 }), "error"),
    ];
    for (r, want) in cases {
        assert_eq!(notary_outcome(&r), want, "{r:?}");
    }
    let m = Metrics::new();
    m.record_notary_request("corp", "418 teapot", 0.1);
    assert!(m.render().contains(r#"trustwatch_notary_requests_total{outcome="error",trust_root="corp"} 1"#));
}

#[test]
fn two_facades_do_not_share_series() {
    let a = Metrics::new();
    let b = Metrics::new();
    a.record_reconcile("policy", true, 0.1);
    assert!(a.render().contains("trustwatch_reconcile_total{"));
    assert!(!b.render().contains("trustwatch_reconcile_total{"));
}

#[test]
fn log_formats_parse() {
    assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
    assert_eq!("Text".parse::<LogFormat>().unwrap(), LogFormat::Text);
    assert!("xml".parse::<LogFormat>().is_err());
}
