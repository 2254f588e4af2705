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
    // One entry per container, image and running digest, worst first, with the pods that run it.
    let verdicts: Vec<(&str, &str)> = web["status"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["samplePods"][0].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    // Within the 1100-day warning window the 3-year targets role makes a trusted image ExpiringSoon.
    assert_eq!(verdicts, vec![("web-2", "DigestDrift"), ("web-1", "ExpiringSoon")]);
    let drifted = &web["status"]["containers"][0];
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

/// The same outage semantics as the operator: a role that cannot be read is TrustDataUnavailable
/// (never a drift against an older signature, never a missing signer), and a repository the
/// TrustRoot status remembers (what the operator wrote) that answers 404 has vanished, it is not
/// unsigned.
#[tokio::test(flavor = "multi_thread")]
async fn audit_reads_outages_as_the_operator_does() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let (web, pay) = ("registry.example.com/outage/web", "registry.example.com/outage/payments");
    client.init(web);
    let (older, current) = (sha_hex("web-old"), sha_hex("web-current"));
    client.add_hash(web, "v1", 10, &older, &[]);
    client.add_delegation_signer(web, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(web, "v1", 10, &current, &["targets/releases"]);
    client.init(pay);
    client.add_delegation_signer(pay, "targets/releases", "carol", KeyKind::Ecdsa);
    client.add_hash(pay, "rel", 10, &sha_hex("rel"), &["targets/releases"]);
    let bob = client.gen_delegation_key("bob", KeyKind::Ecdsa);
    client.import_key(&bob, "targets/releases/qa");
    client.delegation_add(pay, "targets/releases/qa", &bob, None);
    let paid = sha_hex("pay-v1");
    client.add_hash(pay, "v1", 10, &paid, &["targets/releases/qa"]);

    // TrustRoot wants https: the hostile proxy serves the notary-server's own certificate.
    let read = |f: &str| std::fs::read_to_string(server.dir().join(f)).unwrap();
    let proxy = HostileServer::start_tls(Some(server.upstream()), &read("server.crt"), &read("server.key")).await;
    let dir = client.dir().to_path_buf();
    let trust_root = |status: Value| {
        json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "corp"},
            "spec": {"server": proxy.url(), "caBundle": server.ca_pem(),
                "rootKeys": [{"name": "corp-root", "publicKey": client.root_cert_pem(web)}]},
            "status": status})
    };
    let policy = json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy", "metadata": {"name": "shop"},
        "spec": {"images": [{"pattern": web, "trustRoot": "corp"},
                            {"pattern": pay, "trustRoot": "corp", "signers": ["releases/qa"]}]}});
    let pods = json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("shop", "web-1", "web", &format!("{web}:v1"), &current),
        pod("shop", "pay-1", "payments", &format!("{pay}:v1"), &paid),
    ]});
    std::fs::write(dir.join("policy.json"), policy.to_string()).unwrap();
    std::fs::write(dir.join("pods.json"), pods.to_string()).unwrap();
    let audit = |status: Value| {
        std::fs::write(dir.join("root.json"), trust_root(status).to_string()).unwrap();
        let dir = dir.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
                let out = Command::new(env!("CARGO_BIN_EXE_trustwatch"))
                    .args(["audit", "-f", &p("root.json"), "-f", &p("policy.json"), "--pods", &p("pods.json")])
                    .args(["-o", "json"])
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let list: Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
                let verdict = |report: &str| {
                    let items = list["items"].as_array().unwrap();
                    let r = items.iter().find(|i| i["metadata"]["name"] == report).unwrap_or_else(|| panic!("{list}"));
                    let c = &r["status"]["containers"][0];
                    (c["verdict"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap().to_string())
                };
                (verdict("deployment-web-shop"), verdict("deployment-payments-shop"))
            })
            .await
            .unwrap()
        }
    };
    let verified = ("Verified".to_string(), "Verified".to_string());
    assert_eq!(audit(Value::Null).await, (verified.clone(), verified.clone()));

    for gun in [web, pay] {
        proxy.set_rule(&listed_name(&server, gun, "targets/releases"), Rule::Status(503));
    }
    let unavailable = ("TrustDataUnavailable".to_string(), "RoleUnavailable".to_string());
    assert_eq!(audit(Value::Null).await, (unavailable.clone(), unavailable));

    // What the operator remembers in TrustRoot status, read back by the audit as by the operator.
    proxy.clear_rules();
    let mut cfg = trustwatch::fetch::ServerConfig::new(&server.url());
    cfg.ca_pem = Some(server.ca_pem());
    let pinned = vec![trustwatch::tuf::PinnedKey::from_pem("root", &client.root_cert_pem(web)).unwrap()];
    let engine = trustwatch::engine::TrustEngine::new(
        trustwatch::fetch::NotaryHttp::new(cfg).unwrap(),
        trustwatch::tuf::Anchors { pinned, revoked: Default::default() },
    );
    let memory = engine.repository(web, jiff::Timestamp::now(), std::time::Instant::now()).await.memory;
    let status = json!({"repositories": [{"gun": web, "versions": memory.versions,
        "signers": memory.signers.iter().map(|(n, ids)| json!({"name": n, "keyIds": ids})).collect::<Vec<_>>()}]});
    proxy.set_rule(&format!("/v2/{web}/_trust/tuf/timestamp.json"), Rule::Status(404));
    let (web_verdict, _) = audit(Value::Null).await;
    assert_eq!(web_verdict, ("Unsigned".to_string(), "NoTrustData".to_string()), "never seen: not signed");
    let (web_verdict, pay_verdict) = audit(status).await;
    assert_eq!(web_verdict, ("TrustDataUnavailable".to_string(), "TrustDataVanished".to_string()));
    assert_eq!(pay_verdict, verified);
}
