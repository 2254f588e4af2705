//! Faults a real API server will not produce on demand, against a `tower-test` mock API
//! server (everything else runs on the real control plane: tests/cluster). The mock answers
//! every call plausibly and records it, except the one write a test makes fail (a 500 or a
//! 409); trust data comes from a real notary-server. Every call must be one `config/rbac`
//! grants.

mod support;

use http::{Request, Response};
use kube::client::Body;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use support::*;
use trustwatch::controller::roots::build_trust_root;
use trustwatch::controller::{API_CALLS, Context, policy};
use trustwatch::crd::{ImageTrustPolicy, TrustRoot};
use trustwatch::scanner::pods::CachedPod;
use trustwatch::telemetry::Metrics;

const GUN: &str = "registry.example.com/shop/web";

#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Call {
    /// (API group, resource, verb) of the request, as RBAC sees it.
    fn rbac(&self) -> (String, String, String) {
        let segs: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        let (group, rest) = match segs[0] {
            "api" => (String::new(), &segs[2..]),
            _ => (segs[1].to_string(), &segs[3..]),
        };
        let rest: Vec<&str> =
            if rest.first() == Some(&"namespaces") && rest.len() > 2 { rest[2..].to_vec() } else { rest.to_vec() };
        let resource = match rest.len() {
            3 => format!("{}/{}", rest[0], rest[2]),
            _ => rest[0].to_string(),
        };
        let verb = match (self.method.as_str(), rest.len()) {
            ("GET", 1) if self.query.contains("watch=true") => "watch",
            ("GET", 1) => "list",
            ("GET", _) => "get",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("PUT", _) => "update",
            ("DELETE", _) => "delete",
            (m, _) => panic!("unexpected method {m}"),
        };
        (group, resource, verb.to_string())
    }

    fn is(&self, method: &str, path_suffix: &str) -> bool {
        self.method == method && self.path.ends_with(path_suffix)
    }
}

/// Answers every request plausibly and records it. `lists` gives the items of list calls
/// by resource.
struct ApiServer {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl ApiServer {
    fn start(
        mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
        lists: Vec<(&'static str, Vec<Value>)>,
        policy: Value,
        faults: Vec<(&'static str, &'static str, u16)>,
    ) -> ApiServer {
        let calls = Arc::new(Mutex::new(vec![]));
        let rec = calls.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let call = Call {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    body: body.clone(),
                };
                rec.lock().unwrap().push(call.clone());
                if let Some((_, _, code)) = faults.iter().find(|(m, p, _)| call.is(m, p)) {
                    let status = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
                        "reason": if *code == 409 { "Conflict" } else { "InternalError" },
                        "message": format!("injected fault {code} on {}", call.path)});
                    let resp = Response::builder()
                        .status(*code)
                        .body(Body::from(serde_json::to_vec(&status).unwrap()))
                        .unwrap();
                    send.send_response(resp);
                    continue;
                }
                let segs: Vec<&str> = call.path.split('/').collect();
                let reply = match call.method.as_str() {
                    "GET" => {
                        let items = lists
                            .iter()
                            .find(|(r, _)| call.path.ends_with(r))
                            .map(|(_, i)| i.clone())
                            .unwrap_or_default();
                        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})
                    }
                    "DELETE" => {
                        json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200, "metadata": {}})
                    }
                    _ if call.path.contains("/imagetrustpolicies/") => {
                        let mut p = policy.clone();
                        p["status"] = body["status"].clone();
                        p
                    }
                    _ => {
                        let mut obj = without_nulls(body.clone());
                        let name =
                            if call.path.ends_with("/status") { segs[segs.len() - 2] } else { segs[segs.len() - 1] };
                        obj["metadata"]["name"] = json!(name);
                        if obj.get("spec").is_none() && call.path.contains("trustwatch.dev") {
                            obj["spec"] = json!({});
                        }
                        if call.path.contains("/trustroots/") {
                            obj["spec"] = json!({"server": "https://x", "rootKeys": []});
                        }
                        obj
                    }
                };
                let resp =
                    Response::builder().status(200).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap();
                send.send_response(resp);
            }
        });
        ApiServer { calls }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// A merge patch's `null`s delete keys; the object the server returns has none.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect())
        }
        other => other,
    }
}

/// Every call the reconcilers made is one the operator declares, and so one RBAC grants.
fn assert_declared(calls: &[Call]) {
    for c in calls {
        let (g, r, v) = c.rbac();
        assert!(
            API_CALLS.iter().any(|(ag, ar, av)| *ag == g && *ar == r && *av == v),
            "call {} {} = ({g:?}, {r:?}, {v:?}) is not in API_CALLS (and so maybe not in config/rbac)",
            c.method,
            c.path
        );
    }
}

fn mk_pod(name: &str, running_hex: &str, quarantined: bool) -> CachedPod {
    let mut labels = json!({"pod-template-hash": "abc12"});
    let mut annotations = json!({});
    if quarantined {
        labels["trustwatch.dev/quarantined"] = json!("true");
        annotations["trustwatch.dev/quarantine-reason"] = json!("prod: DigestDrift: app: drift");
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "labels": labels, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc12", "uid": "rs-uid", "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": format!("{GUN}:v1")}]},
        "status": {"containerStatuses": [{"name": "app", "image": "x", "imageID": format!("{GUN}@sha256:{running_hex}"), "ready": true, "restartCount": 0}]}
    }))
    .unwrap()
}

fn mk_bare_pod(name: &str, running_hex: &str) -> CachedPod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "app", "image": format!("{GUN}:v1")}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": "x", "imageID": format!("{GUN}@sha256:{running_hex}"), "ready": true, "restartCount": 0}]}
    }))
    .unwrap()
}

fn mk_policy(action: &str) -> Value {
    json!({
        "apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy",
        "metadata": {"name": "prod", "uid": "policy-uid", "generation": 1, "resourceVersion": "7", "finalizers": ["trustwatch.dev/release"]},
        "spec": {"action": action, "images": [{"pattern": "registry.example.com/shop/**", "trustRoot": "corp"}]}
    })
}

struct Fixture {
    ctx: Arc<Context>,
    api: ApiServer,
    _server: NotaryServer,
}

/// A real notary-server with `v1` signed, a TrustRoot for it, and the context with `pods` in
/// its cache.
async fn fixture(
    pods: impl FnOnce(&str) -> Vec<CachedPod>,
    lists: Vec<(&'static str, Vec<Value>)>,
    policy: Value,
    faults: Vec<(&'static str, &'static str, u16)>,
) -> Fixture {
    let server = NotaryServer::start(Variant::Local);
    let client_cli = NotaryClient::new(&server);
    client_cli.init(GUN);
    let signed_hex = sha_hex("web-v1");
    client_cli.add_hash(GUN, "v1", 10, &signed_hex, &[]);
    let trust_root: TrustRoot = serde_json::from_value(json!({
        "apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "corp", "generation": 1},
        "spec": {"server": server.url(), "caBundle": server.ca_pem(),
                 "rootKeys": [{"name": "root", "publicKey": client_cli.root_cert_pem(GUN)}]}
    }))
    .unwrap();

    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    // The operator's report cache holds what the API server would list, and has listed.
    let (reports, mut reports_w) = reflector::store::<trustwatch::crd::ImageTrustReport>();
    reports_w.apply_watcher_event(&watcher::Event::Init);
    for (_, items) in lists.iter().filter(|(r, _)| r.ends_with("imagetrustreports")) {
        for item in items {
            reports_w.apply_watcher_event(&watcher::Event::InitApply(serde_json::from_value(item.clone()).unwrap()));
        }
    }
    reports_w.apply_watcher_event(&watcher::Event::InitDone);
    let api = ApiServer::start(handle, lists, policy, faults);
    let (pod_store, mut pod_w) = reflector::store::<CachedPod>();
    for p in pods(&signed_hex) {
        pod_w.apply_watcher_event(&watcher::Event::Apply(p));
    }
    let (namespaces, mut ns_w) = reflector::store();
    let ns: PartialObjectMeta<k8s_openapi::api::core::v1::Namespace> =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})).unwrap();
    ns_w.apply_watcher_event(&watcher::Event::Apply(ns));
    let (replicasets, mut rs_w) = reflector::store();
    let rs: PartialObjectMeta<k8s_openapi::api::apps::v1::ReplicaSet> = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc12", "namespace": "shop", "uid": "rs-uid",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "deploy-uid", "controller": true}]}
    }))
    .unwrap();
    rs_w.apply_watcher_event(&watcher::Event::Apply(rs));
    let (jobs, _) = reflector::store();
    let (rescan, _rx) = futures::channel::mpsc::unbounded();
    let rt = build_trust_root("corp", &trust_root.spec, Default::default(), |_| {}).unwrap();
    let ctx = Arc::new(Context {
        client: client.clone(),
        roots: tokio::sync::RwLock::new([("corp".to_string(), Arc::new(rt))].into_iter().collect()),
        pods: pod_store,
        namespaces,
        replicasets,
        jobs,
        recorder: Recorder::new(client, Reporter { controller: "trustwatch".into(), instance: None }),
        metrics: Arc::new(Metrics::new()),
        trust_roots: reflector::store().0,
        policies: reflector::store().0,
        network_policies: reflector::store().0,
        reports,
        config: trustwatch::controller::RunConfig::new("trustwatch-system"),
        verdicts: Default::default(),
        quarantine: Default::default(),
        synced: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        pull_configs: Default::default(),
        rechecks: Default::default(),
        rescan,
        policy_reports: Default::default(),
    });
    Fixture { ctx, api, _server: server }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_on_one_report_write_does_not_stop_the_scan_of_the_others() {
    let policy_json = mk_policy("Quarantine");
    let fault = vec![("PATCH", "/namespaces/shop/imagetrustreports/deployment-web-prod/status", 500)];
    let f = fixture(
        |signed| vec![mk_pod("web-1", &sha_hex("not-signed"), false), mk_bare_pod("tool", signed)],
        vec![],
        policy_json.clone(),
        fault,
    )
    .await;
    let policy: ImageTrustPolicy = serde_json::from_value(policy_json).unwrap();
    let action = policy::reconcile(Arc::new(policy), f.ctx.clone()).await.expect("the scan completes");
    assert!(format!("{action:?}").contains("30s"), "a failed write is retried soon: {action:?}");
    let calls = f.api.calls();
    assert_declared(&calls);
    // The reports come from the report cache, not from a LIST per scan.
    assert!(!calls.iter().any(|c| c.method == "GET" && c.path.ends_with("/imagetrustreports")), "{calls:#?}");
    // The other report, the quarantine and the policy status are written all the same.
    assert!(calls.iter().any(|c| c.is("PATCH", "/namespaces/shop/imagetrustreports/pod-tool-prod/status")));
    assert!(calls.iter().any(|c| c.is("PATCH", "/namespaces/shop/pods/web-1")), "the drifted pod is quarantined");
    let pstatus = calls.iter().rfind(|c| c.is("PATCH", "/imagetrustpolicies/prod/status")).expect("policy status");
    let ready = pstatus.body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some("ReportWriteFailed")));
    assert!(ready["message"].as_str().unwrap().contains("deployment-web-prod"), "{ready}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_adding_the_finalizer_is_an_error_to_retry_with_nothing_written() {
    let mut policy_json = mk_policy("Quarantine");
    policy_json["metadata"]["finalizers"] = json!([]);
    let fault = vec![("PATCH", "/imagetrustpolicies/prod", 409)];
    let f = fixture(|_| vec![mk_pod("web-1", &sha_hex("not-signed"), false)], vec![], policy_json.clone(), fault).await;
    let policy: ImageTrustPolicy = serde_json::from_value(policy_json).unwrap();
    let err = policy::reconcile(Arc::new(policy.clone()), f.ctx.clone()).await.expect_err("a conflict fails the pass");
    assert_eq!(err.reason(), "KubeApiError");
    let action = policy::error_policy(Arc::new(policy), &err, f.ctx.clone());
    assert!(format!("{action:?}").contains("30s"), "{action:?}");
    let calls = f.api.calls();
    assert_declared(&calls);
    assert!(!calls.iter().any(|c| c.path.contains("/pods/") || c.path.contains("imagetrustreports")), "{calls:#?}");
}

/// Every call the operator declares is granted by config/rbac: cluster-wide by the ClusterRole,
/// or in the operator's namespace by its Role; and Secrets are never readable cluster-wide.
#[test]
fn rbac_grants_every_api_call_the_operator_makes_and_secrets_only_in_its_namespace() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rbac/role.yaml")).unwrap();
    let docs = trustwatch::audit::parse_documents(&text).unwrap();
    let rules = |kind: &str| -> Vec<Value> {
        docs.iter()
            .filter(|d| d["kind"] == kind)
            .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let (cluster, namespaced) = (rules("ClusterRole"), rules("Role"));
    let has = |field: &Value, want: &str| field.as_array().is_some_and(|a| a.iter().any(|v| v == want || v == "*"));
    let grants = |rules: &[Value], group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb))
    };
    for (group, resource, verb) in API_CALLS {
        assert!(
            grants(&cluster, group, resource, verb) || grants(&namespaced, group, resource, verb),
            "config/rbac/role.yaml does not grant {verb} on {resource} in group {group:?}"
        );
    }
    for verb in ["get", "list", "watch"] {
        assert!(!grants(&cluster, "", "secrets", verb), "the ClusterRole must not grant {verb} on secrets");
    }
    assert!(grants(&namespaced, "", "secrets", "get") && !grants(&namespaced, "", "secrets", "list"));
}
