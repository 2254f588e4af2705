//! A test's world: a real notary-server and a real docker-registry on loopback, images pushed
//! to the registry and signed with the real notary CLI, and the TrustRoot, policies and
//! namespaces of one test on the shared control plane, with its operator and kubelet.

#![allow(dead_code)]

use crate::harness::*;
use crate::support::{KeyKind, NotaryClient, NotaryServer, Pushed, Registry, Variant};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use trustwatch::crd::{ImageTrustPolicy, ImageTrustReport, TrustRoot};

/// How long the operator may take to act on a change.
pub const REACT: Duration = Duration::from_secs(90);

pub struct World {
    pub name: String,
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub notary: NotaryServer,
    pub signer: NotaryClient,
    pub registry: Arc<Registry>,
    pub namespaces: Vec<String>,
    kubelet: Option<Kubelet>,
    root_cert: Option<String>,
}

impl World {
    /// A world named `name` (a short DNS label, unique per test): its namespace is `name`.
    pub async fn new(name: &str) -> World {
        let cp = ControlPlane::shared();
        let client = cp.admin().await;
        let notary = NotaryServer::start(Variant::Local);
        let signer = NotaryClient::new(&notary);
        let registry = Arc::new(Registry::start());
        create_namespace(&client, name, &[(INSTANCE_LABEL, name)]).await;
        World {
            name: name.into(),
            cp,
            client,
            notary,
            signer,
            registry,
            namespaces: vec![name.into()],
            kubelet: None,
            root_cert: None,
        }
    }

    /// Another namespace of this world, selected by its policies.
    pub async fn add_namespace(&mut self, ns: &str) {
        create_namespace(&self.client, ns, &[(INSTANCE_LABEL, &self.name)]).await;
        self.namespaces.push(ns.into());
    }

    /// `127.0.0.1:<port>/<repo>`: an image repository in the world's registry (also its GUN).
    pub fn repo(&self, repo: &str) -> String {
        format!("{}/{repo}", self.registry.host())
    }

    /// Pushes `repo:tag` (content makes the digest) to the registry.
    pub fn push(&self, repo: &str, tag: &str, content: &str) -> Pushed {
        self.registry.push_image(repo, tag, content)
    }

    /// Initializes the repository's trust data (root key reused across repositories, as
    /// `notary init` does), remembering the root certificate to pin.
    pub fn init(&mut self, repo: &str) {
        let gun = self.repo(repo);
        self.signer.init(&gun);
        if self.root_cert.is_none() {
            self.root_cert = Some(self.signer.root_cert_pem(&gun));
        }
    }

    /// Signs `repo:tag` as what the registry serves now, in `roles` (`[]` = targets).
    pub fn sign(&self, repo: &str, tag: &str, roles: &[&str]) -> Pushed {
        let pushed = self.registry.resolve(repo, tag).expect("pushed before signing");
        self.signer.add_hash(&self.repo(repo), tag, pushed.size, pushed.hex(), roles);
        pushed
    }

    /// Push and sign in one go.
    pub fn push_signed(&mut self, repo: &str, tag: &str, content: &str) -> Pushed {
        self.push(repo, tag, content);
        if self.root_cert.is_none() || self.signer.list(&self.repo(repo)).is_err() {
            self.init(repo);
        }
        self.sign(repo, tag, &[])
    }

    pub fn add_signer(&self, repo: &str, role: &str, name: &str) {
        self.signer.add_delegation_signer(&self.repo(repo), role, name, KeyKind::Ecdsa);
    }

    pub fn revoke_signer(&self, repo: &str, role: &str) {
        let gun = self.repo(repo);
        for k in self.signer.delegation_key_ids(&gun, role) {
            self.signer.delegation_remove_key(&gun, role, &k);
        }
    }

    pub fn root_cert(&self) -> String {
        self.root_cert.clone().expect("a repository was initialized")
    }

    /// The TrustRoot of this world's notary-server, named `<world>`.
    pub fn trust_root(&self, extra: Value) -> Value {
        let mut spec = json!({
            "server": self.notary.url(),
            "caBundle": self.notary.ca_pem(),
            "rootKeys": [{"name": "root", "publicKey": self.root_cert()}],
            "refreshInterval": "10s",
            "expiryWarning": "7d",
        });
        merge(&mut spec, extra);
        json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
               "metadata": {"name": self.name, "labels": {INSTANCE_LABEL: self.name}}, "spec": spec})
    }

    /// A policy named `name` over every image of the world's registry, selecting the world's
    /// namespaces.
    /// Policies are cluster-scoped and the tests share one control plane, so a name two tests
    /// use would let one test's apply or cleanup act on the other's policy: that panics here.
    pub fn policy(&self, name: &str, extra: Value) -> Value {
        static NAMES: std::sync::Mutex<BTreeMap<String, String>> = std::sync::Mutex::new(BTreeMap::new());
        let owner = NAMES.lock().unwrap().entry(name.to_string()).or_insert_with(|| self.name.clone()).clone();
        assert_eq!(
            owner, self.name,
            "policy name {name:?} is used by two tests ({owner} and {}): pick another",
            self.name
        );
        let mut spec = json!({
            "namespaceSelector": {"matchLabels": {INSTANCE_LABEL: self.name}},
            "images": [{"pattern": format!("{}/**", self.registry.host()), "trustRoot": self.name}],
            "interval": "10s",
        });
        merge(&mut spec, extra);
        json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy",
               "metadata": {"name": name, "labels": {INSTANCE_LABEL: self.name}}, "spec": spec})
    }

    pub fn apply(&self, object: &Value) {
        self.cp.apply(object).unwrap_or_else(|e| panic!("apply {}: {e}", object["metadata"]["name"]));
    }

    /// Starts the kubelet for the world's namespaces: images of the world's registry run
    /// the digest the registry serves at pull time; others do not pull.
    pub fn start_kubelet(&mut self) {
        let registry = self.registry.clone();
        let host = registry.host();
        let resolver: Resolver = Arc::new(move |image: &str| {
            let rest = image.strip_prefix(&format!("{host}/"))?;
            let (repo, tag) = rest.split_once(':').unwrap_or((rest, "latest"));
            let tag = tag.split('@').next().unwrap_or(tag);
            let pushed = registry.resolve(repo, tag)?;
            Some(format!("{host}/{repo}@{}", pushed.digest))
        });
        self.kubelet = Some(Kubelet::start(self.client.clone(), self.namespaces.clone(), resolver));
    }

    /// Restarts the containers of the pods matching `selector` (they pull again).
    pub async fn restart_pods(&self, ns: &str, selector: &str) {
        let k = self.kubelet.as_ref().expect("the kubelet runs");
        for p in self.pods(ns, selector).await {
            k.restart(ns, p.metadata.name.as_deref().unwrap_or_default());
        }
    }

    pub fn operator(&self) -> Operator {
        Operator::start(self.cp, &OperatorConfig::new(&self.name))
    }

    pub fn operator_with(&self, extra_args: &[&str]) -> Operator {
        let mut c = OperatorConfig::new(&self.name);
        c.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        Operator::start(self.cp, &c)
    }

    /// One key of the webhook's Secret `trustwatch-webhook-tls` (`ca.crt`, `tls.crt`, `tls.key`),
    /// base64 as stored; empty when it cannot be read.
    pub fn webhook_secret(&self, key: &str) -> String {
        let path = format!("jsonpath={{.data.{}}}", key.replace('.', "\\."));
        self.cp
            .kubectl(&["get", "secret", "-n", "trustwatch-system", "trustwatch-webhook-tls", "-o", &path])
            .unwrap_or_default()
    }

    pub async fn policy_status(&self, name: &str) -> Option<Value> {
        let api: Api<ImageTrustPolicy> = Api::all(self.client.clone());
        let p = api.get_opt(name).await.ok()??;
        serde_json::to_value(p.status?).ok()
    }

    pub async fn trust_root_status(&self) -> Option<Value> {
        let api: Api<TrustRoot> = Api::all(self.client.clone());
        let t = api.get_opt(&self.name).await.ok()??;
        serde_json::to_value(t.status?).ok()
    }

    /// The reports in a namespace, by name.
    pub async fn reports(&self, ns: &str) -> BTreeMap<String, ImageTrustReport> {
        let api: Api<ImageTrustReport> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items.into_iter().map(|r| (r.metadata.name.clone().unwrap_or_default(), r)).collect())
            .unwrap_or_default()
    }

    /// Waits for the report `name` in `ns` to say `verdict`; returns it.
    pub async fn report_verdict(&self, ns: &str, name: &str, verdict: &str) -> ImageTrustReport {
        eventually(&format!("report {ns}/{name} says {verdict}"), REACT, || async {
            let reports = self.reports(ns).await;
            let r = reports.get(name).ok_or_else(|| format!("no report; reports: {:?}", reports.keys()))?;
            let v = r.status.as_ref().and_then(|s| s.verdict).map(|v| v.to_string()).unwrap_or_default();
            if v == verdict { Ok(r.clone()) } else { Err(format!("verdict {v}: {:?}", r.status)) }
        })
        .await
    }

    pub async fn pods(&self, ns: &str, selector: &str) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default().labels(selector)).await.map(|l| l.items).unwrap_or_default()
    }

    /// Events about an object (events.k8s.io/v1 `regarding`), as (reason, note).
    pub async fn events_about(&self, ns: &str, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), ns);
        let mut out: Vec<(String, String, String)> = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                let at = e.event_time.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
                (at, e.reason.unwrap_or_default(), e.note.unwrap_or_default())
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, r, n)| (r, n)).collect()
    }

    /// Deletes the world's cluster-scoped objects (namespaces go with their content).
    pub async fn cleanup(&self) {
        let _ = self.cp.kubectl(&[
            "delete",
            "imagetrustpolicies",
            "-l",
            &format!("{INSTANCE_LABEL}={}", self.name),
            "--wait=false",
        ]);
        let _ = self.cp.kubectl(&[
            "delete",
            "trustroots",
            "-l",
            &format!("{INSTANCE_LABEL}={}", self.name),
            "--wait=false",
        ]);
        for ns in &self.namespaces {
            let _ = self.cp.kubectl(&["delete", "namespace", ns, "--wait=false"]);
        }
    }
}

/// A Deployment of `replicas` pods running `image` (container `app`).
pub fn deployment(ns: &str, name: &str, image: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

pub fn statefulset(ns: &str, name: &str, image: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

pub fn daemonset(ns: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

pub fn job(ns: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": name}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": image}]}}}})
}

pub fn cronjob(ns: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"backoffLimit": 0,
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": image}]}}}}}})
}

pub fn bare_pod(ns: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": image}]}})
}

fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// The condition of a type in a status object, as (status, reason).
pub fn condition(status: &Value, type_: &str) -> Option<(String, String)> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == type_).map(|c| {
        (c["status"].as_str().unwrap_or_default().to_string(), c["reason"].as_str().unwrap_or_default().to_string())
    })
}

impl World {
    /// A delegation signer whose certificate expires in `days` days (ECDSA P-256).
    pub fn add_expiring_signer(&self, repo: &str, role: &str, name: &str, days: u32) {
        use crate::support::DelegationKey;
        let dir = tempfile::Builder::new().prefix("expiring-").tempdir().unwrap().keep();
        let key_path = dir.join(format!("{name}.key"));
        let cert_path = dir.join(format!("{name}.crt"));
        let ok = std::process::Command::new("openssl")
            .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"])
            .arg(&key_path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl ecparam");
        let ok = std::process::Command::new("openssl")
            .args(["req", "-new", "-x509", "-sha256", "-days", &days.to_string(), "-key"])
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .args(["-subj", &format!("/CN={name}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl req");
        let key = DelegationKey {
            name: name.into(),
            kind: KeyKind::Ecdsa,
            cert_pem: std::fs::read_to_string(&cert_path).unwrap(),
            key_path,
            cert_path,
        };
        self.signer.import_key(&key, role);
        self.signer.delegation_add(&self.repo(repo), role, &key, None);
    }
}
