//! `trustwatch audit --migration`: the migration view off Docker Content Trust, offline, from
//! `kubectl get pods -A -o json`, with images in a real docker-registry signed by the real
//! notary CLI and the real cosign.

mod support;

use serde_json::json;
use std::process::Command;
use support::oci::Cosign;
use support::*;

fn pod(name: &str, image: &str, image_id: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": image, "imageID": image_id, "ready": true, "restartCount": 0}]}})
}

#[test]
fn the_migration_view_tells_what_still_depends_on_notary_v1_alone() {
    let registry = Registry::start();
    let server = NotaryServer::start(Variant::Local);
    let notary = NotaryClient::new(&server);
    let cosign = Cosign::new();
    let (key, public) = cosign.generate_key_pair("release");
    let host = registry.host();
    let mut pods = vec![];
    let mut root_cert = String::new();
    for app in ["legacy", "migrated"] {
        let pushed = registry.push_image(&format!("shop/{app}"), "v1", &format!("{app} v1"));
        let gun = format!("{host}/shop/{app}");
        notary.init(&gun);
        notary.add_hash(&gun, "v1", pushed.size, pushed.hex(), &[]);
        root_cert = notary.root_cert_pem(&gun);
        pods.push(pod(app, &format!("{gun}:v1"), &format!("{gun}@{}", pushed.digest)));
    }
    let migrated = registry.resolve("shop/migrated", "v1").unwrap();
    cosign.sign(&format!("{host}/shop/migrated@{}", migrated.digest), &key, &[], &[]);

    let dir = tempfile::tempdir().unwrap();
    let manifests = json!([
        {"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "dct"},
         "spec": {"server": server.url(), "caBundle": server.ca_pem(), "rootKeys": [{"name": "root", "publicKey": root_cert}]}},
        {"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "sigstore"},
         "spec": {"cosign": {"keys": [{"name": "release", "publicKey": public}]}, "registry": {"plainHTTP": true}}},
        {"apiVersion": "trustwatch.dev/v1alpha1", "kind": "ImageTrustPolicy", "metadata": {"name": "shop"},
         "spec": {"images": [{"pattern": format!("{host}/**"), "trustRoots": ["dct", "sigstore"]}]}}
    ]);
    let files: Vec<String> = manifests
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = dir.path().join(format!("m{i}.json"));
            std::fs::write(&p, m.to_string()).unwrap();
            p.display().to_string()
        })
        .collect();
    let pods_file = dir.path().join("pods.json");
    std::fs::write(&pods_file, json!({"apiVersion": "v1", "kind": "List", "items": pods}).to_string()).unwrap();
    let run = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustwatch"));
        cmd.arg("audit").arg("--migration").arg("--pods").arg(&pods_file);
        for f in &files {
            cmd.arg("-f").arg(f);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, table, stderr) = run();
    assert_eq!(code, Some(1), "legacy still depends on Notary v1 alone: {table}{stderr}");
    let line =
        |workload: &str| table.lines().find(|l| l.contains(workload)).unwrap_or_else(|| panic!("{workload}: {table}"));
    assert!(
        line("Pod/legacy").contains("NotaryV1Only") && line("Pod/legacy").contains("DCT: Verified, cosign: Unsigned"),
        "{table}"
    );
    assert!(
        line("Pod/migrated").contains("SuccessorVerified") && line("Pod/migrated").contains("cosign: Verified"),
        "{table}"
    );
    assert!(
        table.contains("1 depend on Notary v1 alone, 1 have a Notation or cosign signature that verifies"),
        "{table}"
    );

    // The last workload gets its cosign signature: the migration is complete.
    let legacy = registry.resolve("shop/legacy", "v1").unwrap();
    cosign.sign(&format!("{host}/shop/legacy@{}", legacy.digest), &key, &[], &[]);
    let (code, table, _) = run();
    assert_eq!(code, Some(0), "{table}");
    assert!(
        table.contains("0 depend on Notary v1 alone, 2 have a Notation or cosign signature that verifies"),
        "{table}"
    );
}
