//! A real notary-server inside the cluster (Docker Hub's official `notary:server-0.7.0`,
//! memory storage, local trust service), reachable by the operator as
//! `https://notary.trustwatch-e2e.svc:4443` and by the test runner's notary CLI through
//! `kubectl port-forward`. Its TLS certificate, from a CA made here with openssl, names both.

use crate::cluster::{Cluster, PortForward, eventually, step};
use crate::support::{NotaryClient, fetch_raw_url};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const NAMESPACE: &str = "trustwatch-e2e";
pub const IMAGE: &str = "notary:server-0.7.0";
pub const PORT: u16 = 4443;
/// The URL the operator uses (cluster DNS).
pub const IN_CLUSTER_URL: &str = "https://notary.trustwatch-e2e.svc:4443";
/// Names the server certificate is valid for.
pub const SUBJECT_ALT_NAMES: &str = "DNS:notary.trustwatch-e2e.svc,DNS:notary.trustwatch-e2e.svc.cluster.local,\
                                     DNS:notary,DNS:localhost,IP:127.0.0.1";

/// The deployed server, forwarded to a local port while this lives.
pub struct InClusterNotary {
    dir: tempfile::TempDir,
    forward: PortForward,
}

impl InClusterNotary {
    /// Deploys the server and waits until it answers through a port-forward.
    pub fn deploy(cluster: &Cluster) -> InClusterNotary {
        let dir = tempfile::Builder::new().prefix("trustwatch-e2e-tls-").tempdir().expect("tempdir");
        generate_tls(dir.path());
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("generated TLS file");
        step(&format!("deploying {IMAGE} as {IN_CLUSTER_URL}"));
        cluster.apply(&manifests(&read("server.crt"), &read("server.key")));
        cluster.wait_for_rollout(NAMESPACE, "notary", Duration::from_secs(240));
        let forward = cluster.port_forward(NAMESPACE, "service/notary", PORT);
        let server = InClusterNotary { dir, forward };
        let health = format!("{}/_notary_server/health", server.local_url());
        eventually(
            "notary-server to answer through the port-forward",
            Duration::from_secs(60),
            || match fetch_raw_url(&health, Some(&server.ca_path())) {
                (200, _) => Ok(()),
                (status, body) => Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
            },
        );
        step(&format!("notary-server answers on {} (port-forward)", server.local_url()));
        server
    }

    /// The forwarded URL for the test runner.
    pub fn local_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.forward.local_port())
    }

    pub fn ca_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The CA that signed the server certificate (the TrustRoot's caBundle).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_path()).expect("CA certificate")
    }

    /// A notary CLI with its own trust directory, talking to the server through the forward.
    pub fn client(&self) -> NotaryClient {
        NotaryClient::with_remote(&self.local_url(), &self.ca_pem())
    }
}

/// Namespace, TLS Secret, server.json ConfigMap, Deployment and Service.
pub fn manifests(cert_pem: &str, key_pem: &str) -> Value {
    let labels = json!({"app.kubernetes.io/name": "notary-server", "app.kubernetes.io/part-of": "trustwatch-e2e"});
    let config = json!({
        "server": {"http_addr": format!(":{PORT}"), "tls_cert_file": "/tls/tls.crt", "tls_key_file": "/tls/tls.key"},
        "trust_service": {"type": "local"},
        "storage": {"backend": "memory"},
        "logging": {"level": "info"}
    });
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "notary-tls", "namespace": NAMESPACE, "labels": labels},
         "stringData": {"tls.crt": cert_pem, "tls.key": key_pem}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "notary-server", "namespace": NAMESPACE, "labels": labels},
         "data": {"server.json": serde_json::to_string_pretty(&config).expect("config serializes")}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "notary", "namespace": NAMESPACE, "labels": labels},
         "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "automountServiceAccountToken": false,
                "containers": [{
                    "name": "notary-server",
                    "image": IMAGE,
                    // The image's entrypoint.sh runs its arguments.
                    "args": ["notary-server", "-config=/etc/notary-e2e/server.json"],
                    "ports": [{"name": "https", "containerPort": PORT}],
                    "readinessProbe": {
                        "httpGet": {"scheme": "HTTPS", "path": "/_notary_server/health", "port": PORT},
                        "periodSeconds": 2
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/notary-e2e", "readOnly": true},
                        {"name": "tls", "mountPath": "/tls", "readOnly": true}
                    ]
                }],
                "volumes": [
                    {"name": "config", "configMap": {"name": "notary-server"}},
                    {"name": "tls", "secret": {"secretName": "notary-tls", "defaultMode": 0o444}}
                ]
            }}
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "notary", "namespace": NAMESPACE, "labels": labels},
         "spec": {"selector": labels, "ports": [{"name": "https", "port": PORT, "targetPort": PORT}]}}
    ]})
}

/// A P-256 CA and a server certificate for [`SUBJECT_ALT_NAMES`] (as the harness makes for
/// its loopback servers, with the in-cluster names added): ca.crt, server.crt, server.key.
pub fn generate_tls(dir: &Path) {
    const EC: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let p = |f: &str| dir.join(f).to_str().expect("utf-8 path").to_string();
    let (ca_key, ca_crt, key, csr, crt, ext) =
        (p("ca.key"), p("ca.crt"), p("server.key"), p("server.csr"), p("server.crt"), p("server.ext"));
    let ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
    let ca_args = ["-keyout", &ca_key, "-out", &ca_crt, "-days", "7", "-subj", "/CN=trustwatch-e2e-ca"];
    openssl(&[&["req", "-x509"][..], &EC, &ca_args, &ca_ext].concat());
    let csr_args = ["-keyout", &key, "-out", &csr, "-subj", "/CN=notary.trustwatch-e2e.svc"];
    openssl(&[&["req", "-new"][..], &EC, &csr_args].concat());
    std::fs::write(
        &ext,
        format!(
            "subjectAltName={SUBJECT_ALT_NAMES}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n"
        ),
    )
    .expect("write server.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "7",
        "-extfile",
        &ext,
    ]);
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(out.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}
