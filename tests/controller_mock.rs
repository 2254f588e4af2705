//! Reconcile I/O against a `tower-test` mock API server (the only stand-in: no Kubernetes
//! API server can run here) with trust data from a real notary-server. The mock answers
//! every call and records it; each test asserts the calls a reconcile made, and every call
//! must be one `config/rbac` grants.

mod support;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::client::Body;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use support::*;
use trustwatch::controller::roots::build_trust_root;
use trustwatch::controller::{API_CALLS, Context, policy, trust_root};
use trustwatch::crd::{ImageTrustPolicy, TrustRoot};
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

fn mk_pod(name: &str, running_hex: &str, quarantined: bool) -> Pod {
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

fn mk_policy(action: &str) -> Value {
    json!({
        "apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy",
        "metadata": {"name": "prod", "uid": "policy-uid", "generation": 1},
        "spec": {"action": action, "images": [{"pattern": "registry.example.com/shop/**", "trustRoot": "corp"}]}
    })
}

struct Fixture {
    ctx: Arc<Context>,
    api: ApiServer,
    _server: NotaryServer,
    signed_hex: String,
    trust_root: TrustRoot,
}

/// A real notary-server with `v1` signed, a TrustRoot for it, and the context with `pods` in
/// its cache.
async fn fixture(
    pods: impl FnOnce(&str) -> Vec<Pod>,
    lists: Vec<(&'static str, Vec<Value>)>,
    policy: Value,
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
    let api = ApiServer::start(handle, lists, policy);
    let (pod_store, mut pod_w) = reflector::store::<Pod>();
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
    let rt = build_trust_root("corp", &trust_root.spec, None, |_| {}).unwrap();
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
        config: trustwatch::controller::RunConfig::new("trustwatch-system"),
        rechecks: Default::default(),
        rescan,
    });
    Fixture { ctx, api, _server: server, signed_hex, trust_root }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drifted_pod_gets_a_report_a_quarantine_label_a_network_policy_and_events() {
    let policy_json = mk_policy("Quarantine");
    let f = fixture(|_| vec![mk_pod("web-1", &sha_hex("not-signed"), false)], vec![], policy_json.clone()).await;
    let policy: ImageTrustPolicy = serde_json::from_value(policy_json).unwrap();
    let action = policy::reconcile(Arc::new(policy), f.ctx.clone()).await.expect("reconcile succeeds");
    assert!(format!("{action:?}").contains("requeue_after"), "{action:?}");
    let calls = f.api.calls();
    assert_declared(&calls);

    let report = calls
        .iter()
        .find(|c| c.is("PATCH", "/namespaces/shop/imagetrustreports/deployment-web-prod"))
        .expect("report applied");
    assert!(report.query.contains("fieldManager=trustwatch"), "{}", report.query);
    assert_eq!(report.body["metadata"]["labels"]["trustwatch.dev/policy"], "prod");
    // Owned by the Deployment (found through the ReplicaSet cache): collected with it.
    assert_eq!(report.body["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(report.body["metadata"]["ownerReferences"][0]["uid"], "deploy-uid");
    let status = calls
        .iter()
        .find(|c| c.is("PATCH", "/imagetrustreports/deployment-web-prod/status"))
        .expect("report status written");
    let container = &status.body["status"]["containers"][0];
    assert_eq!(container["verdict"], "DigestDrift");
    assert_eq!(container["signedDigest"], format!("sha256:{}", f.signed_hex));

    let label = calls.iter().find(|c| c.is("PATCH", "/namespaces/shop/pods/web-1")).expect("pod labelled");
    assert_eq!(label.body["metadata"]["labels"]["trustwatch.dev/quarantined"], "true");
    assert!(
        label.body["metadata"]["annotations"]["trustwatch.dev/quarantine-reason"]
            .as_str()
            .unwrap()
            .starts_with("prod: DigestDrift")
    );

    let np = calls
        .iter()
        .find(|c| c.is("PATCH", "/namespaces/shop/networkpolicies/trustwatch-quarantine"))
        .expect("network policy");
    assert_eq!(np.body["spec"]["podSelector"]["matchLabels"]["trustwatch.dev/quarantined"], "true");
    assert_eq!(np.body["spec"]["policyTypes"], json!(["Ingress", "Egress"]));

    let reasons: Vec<String> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.contains("/events"))
        .map(|c| c.body["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, vec!["VerificationFailed", "Quarantined", "VerificationFailed"], "pod, pod, policy");

    let pstatus = calls.iter().find(|c| c.is("PATCH", "/imagetrustpolicies/prod/status")).expect("policy status");
    let conds = pstatus.body["status"]["conditions"].as_array().unwrap();
    let compliant = conds.iter().find(|c| c["type"] == "Compliant").unwrap();
    assert_eq!((compliant["status"].as_str(), compliant["reason"].as_str()), (Some("False"), Some("DigestDrift")));
    assert_eq!(pstatus.body["status"]["summary"]["quarantined"], 1);

    // The trust root now reports the repository the scan used, with its trusted versions.
    let tr_action = trust_root::reconcile(Arc::new(f.trust_root.clone()), f.ctx.clone()).await.unwrap();
    assert!(format!("{tr_action:?}").contains("requeue_after"));
    let calls = f.api.calls();
    assert_declared(&calls);
    let tr_status = calls.iter().find(|c| c.is("PATCH", "/trustroots/corp/status")).expect("trust root status");
    let repo = &tr_status.body["status"]["repositories"][0];
    assert_eq!(repo["gun"], GUN);
    assert!(repo["versions"]["timestamp"].as_i64().unwrap() >= 1, "{repo}");
    assert_eq!(tr_status.body["status"]["conditions"][0]["status"], "True");

    // Unchanged trust data: no second write.
    let mut tr = f.trust_root.clone();
    tr.status = Some(serde_json::from_value(tr_status.body["status"].clone()).unwrap());
    let before = f.api.calls().len();
    trust_root::reconcile(Arc::new(tr), f.ctx.clone()).await.unwrap();
    assert_eq!(f.api.calls().len(), before, "no status patch when nothing changed: {:?}", &f.api.calls()[before..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_verifies_again_is_released_and_the_network_policy_removed() {
    let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "trustwatch-quarantine", "namespace": "shop", "labels": {"app.kubernetes.io/managed-by": "trustwatch"}},
        "spec": {"podSelector": {}}});
    let policy_json = mk_policy("Quarantine");
    let f = fixture(
        |signed| vec![mk_pod("web-1", signed, true)],
        vec![("/networkpolicies", vec![np])],
        policy_json.clone(),
    )
    .await;
    let policy: ImageTrustPolicy = serde_json::from_value(policy_json).unwrap();
    policy::reconcile(Arc::new(policy), f.ctx.clone()).await.expect("reconcile succeeds");
    let calls = f.api.calls();
    assert_declared(&calls);
    let release = calls.iter().find(|c| c.is("PATCH", "/namespaces/shop/pods/web-1")).expect("pod released");
    assert_eq!(release.body["metadata"]["labels"]["trustwatch.dev/quarantined"], Value::Null);
    assert!(calls.iter().any(|c| c.is("DELETE", "/namespaces/shop/networkpolicies/trustwatch-quarantine")));
    let reasons: Vec<&str> =
        calls.iter().filter(|c| c.method == "POST").filter_map(|c| c.body["reason"].as_str()).collect();
    assert_eq!(reasons, vec!["Released"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_policy_never_touches_pods_and_an_invalid_policy_only_gets_a_condition() {
    let policy_json = mk_policy("Audit");
    let f = fixture(|_| vec![mk_pod("web-1", &sha_hex("not-signed"), false)], vec![], policy_json.clone()).await;
    let policy: ImageTrustPolicy = serde_json::from_value(policy_json).unwrap();
    policy::reconcile(Arc::new(policy), f.ctx.clone()).await.unwrap();
    let calls = f.api.calls();
    assert!(!calls.iter().any(|c| c.path.contains("/pods/") || c.path.contains("networkpolicies")), "{calls:#?}");

    let mut bad = mk_policy("Audit");
    bad["spec"]["interval"] = json!("1s");
    let bad: ImageTrustPolicy = serde_json::from_value(bad).unwrap();
    let before = f.api.calls().len();
    policy::reconcile(Arc::new(bad), f.ctx.clone()).await.unwrap();
    let new_calls = f.api.calls()[before..].to_vec();
    assert_eq!(new_calls.len(), 1, "{new_calls:#?}");
    let ready = &new_calls[0].body["status"]["conditions"][0];
    assert_eq!(
        (ready["type"].as_str(), ready["status"].as_str(), ready["reason"].as_str()),
        (Some("Ready"), Some("False"), Some("InvalidSpec"))
    );
    assert!(ready["message"].as_str().unwrap().contains("spec.interval"), "{ready}");
}

/// Every call the operator declares is granted by the ClusterRole in config/rbac.
#[test]
fn rbac_grants_every_api_call_the_operator_makes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rbac/role.yaml")).unwrap();
    let docs = trustwatch::audit::parse_documents(&text).unwrap();
    let rules: Vec<Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let has = |field: &Value, want: &str| field.as_array().is_some_and(|a| a.iter().any(|v| v == want || v == "*"));
    for (group, resource, verb) in API_CALLS {
        assert!(
            rules
                .iter()
                .any(|r| has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb)),
            "config/rbac/role.yaml does not grant {verb} on {resource} in group {group:?}"
        );
    }
}
