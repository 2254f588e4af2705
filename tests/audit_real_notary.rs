//! `trustwatch audit` end to end: the manifests users apply, pods as kubectl prints them, and
//! a real notary-server holding verified, drifted, revoked and expiring trust data.

mod support;

use serde_json::{Value, json};
use std::process::Command;
use support::*;

const GUN: &str = "registry.example.com/shop/web";
const SECURE: &str = "registry.example.com/shop/payments";

fn pod(ns: &str, name: &str, deployment: &str, image: &str, running: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
            "labels": {"pod-template-hash": "abc12"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-abc12"),
                "uid": format!("rs-{deployment}"), "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": image,
            "imageID": format!("{}@sha256:{running}", image.split(':').next().unwrap()), "ready": true, "restartCount": 0}]}
    })
}

fn indent(pem: &str) -> String {
    pem.trim().lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")
}

#[test]
fn audit_reports_each_workload_with_the_exact_verdict_of_each_container() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    client.init(GUN);
    let (good, old) = (sha_hex("web-v1"), sha_hex("web-v1-old"));
    client.add_hash(GUN, "v1", 10, &good, &[]);
    client.init(SECURE);
    client.add_delegation_signer(SECURE, "targets/releases", "alice", KeyKind::Ecdsa);
    let pay = sha_hex("pay-v1");
    client.add_hash(SECURE, "v1", 10, &pay, &["targets/releases"]);
    let ids = client.delegation_key_ids(SECURE, "targets/releases");
    client.delegation_remove_key(SECURE, "targets/releases", &ids[0]);
    // `init` reuses the root key for every GUN in the trust dir, each with its own certificate
    // (CN = GUN): pinning compares public keys, so one pinned certificate covers both.
    let root_pem = client.root_cert_pem(GUN);
    assert_ne!(root_pem, client.root_cert_pem(SECURE));

    let dir = client.dir().to_path_buf();
    let manifests = format!(
        r#"apiVersion: trustwatch.dev/v1alpha1
kind: TrustRoot
metadata:
  name: corp
spec:
  server: {url}
  caBundle: |
{ca}
  rootKeys:
    - name: corp-root
      publicKey: |
{root}
  expiryWarning: 1100d
---
apiVersion: trustwatch.dev/v1alpha1
kind: ImageTrustPolicy
metadata:
  name: shop
spec:
  images:
    - pattern: registry.example.com/shop/*
      trustRoot: corp
    - pattern: registry.example.com/shop/payments
      trustRoot: corp
      signers: [releases]
    - pattern: registry.example.com/shop/unsigned
      trustRoot: corp
"#,
        url = server.url(),
        ca = indent(&server.ca_pem()),
        root = indent(&root_pem)
    );
    let manifest_path = dir.join("manifests.yaml");
    std::fs::write(&manifest_path, manifests).unwrap();
    let pods = json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("shop", "web-1", "web", &format!("{GUN}:v1"), &good),
        pod("shop", "web-2", "web", &format!("{GUN}:v1"), &old),
        pod("shop", "pay-1", "payments", &format!("{SECURE}:v1"), &pay),
        pod("shop", "cart-1", "cart", "registry.example.com/shop/unsigned:v1", &sha_hex("cart")),
        pod("shop", "redis-1", "redis", "docker.io/library/redis:7", &sha_hex("redis")),
        pod("kube-system", "dns-1", "coredns", &format!("{GUN}:v1"), &old),
    ]});
    let pods_path = dir.join("pods.json");
    std::fs::write(&pods_path, pods.to_string()).unwrap();

    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_trustwatch"))
            .args(["audit", "-f", manifest_path.to_str().unwrap(), "--pods", pods_path.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["-o", "json"]);
    assert_eq!(code, 1, "not everything is verified; stderr: {stderr}");
    let list: Value = serde_json::from_str(&stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    let by_name = |n: &str| {
        items.iter().find(|i| i["metadata"]["name"] == n).unwrap_or_else(|| panic!("no report {n}: {stdout}"))
    };

    let web = by_name("deployment-web-shop");
    assert_eq!(web["kind"], "ImageTrustReport");
    assert_eq!(web["metadata"]["namespace"], "shop");
    assert_eq!(web["status"]["workload"], json!({"kind": "Deployment", "name": "web"}));
    assert_eq!(web["status"]["verdict"], "DigestDrift");
    let verdicts: Vec<(&str, &str)> = web["status"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["pod"].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    // Within the 1100-day warning window the 3-year targets role makes a trusted image ExpiringSoon.
    assert_eq!(verdicts, vec![("web-1", "ExpiringSoon"), ("web-2", "DigestDrift")]);
    let drifted = &web["status"]["containers"][1];
    assert_eq!(drifted["runningDigest"], format!("sha256:{old}"));
    assert_eq!(drifted["signedDigest"], format!("sha256:{good}"));
    assert_eq!(drifted["trustRoot"], "corp");
    assert_eq!(drifted["gun"], GUN);

    assert_eq!(by_name("deployment-payments-shop")["status"]["containers"][0]["verdict"], "SignerRevoked");
    assert_eq!(by_name("deployment-cart-shop")["status"]["containers"][0]["reason"], "NoTrustData");
    assert_eq!(by_name("deployment-redis-shop")["status"]["containers"][0]["verdict"], "NotCovered");
    assert!(
        items.iter().all(|i| i["metadata"]["namespace"] != "kube-system"),
        "kube-system is not selected by default"
    );

    let (code, table, _) = run(&[]);
    assert_eq!(code, 1);
    assert!(table.contains("deployment-web-shop") && table.contains("shop/web-2 app: DigestDrift"), "{table}");
    let (_, yaml, _) = run(&["-o", "yaml"]);
    assert!(yaml.contains("kind: ImageTrustReport"), "{yaml}");

    // A spec error is a usage error with the field path, not a verdict.
    std::fs::write(&manifest_path, std::fs::read_to_string(&manifest_path).unwrap().replace("1100d", "soon")).unwrap();
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("TrustRoot corp: spec.expiryWarning"), "{stderr}");
}
