//! `trustwatch verify` as users and scripts call it: exit codes, JSON fields and the state
//! file, against a real notary-server.

mod support;

use std::process::Command;
use support::*;

fn trustwatch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trustwatch")).args(args).output().expect("run trustwatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verify_prints_the_json_contract_and_exits_by_verdict() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/cli/app";
    client.init(gun);
    let v1 = sha_hex("v1");
    client.add_hash(gun, "v1", 10, &v1, &[]);
    let root = client.dir().join("root.crt");
    std::fs::write(&root, client.root_cert_pem(gun)).unwrap();
    let state = client.dir().join("state.json");
    let url = server.url();
    let base = [
        "verify",
        "--server",
        &url,
        "--ca-file",
        server.ca_path().to_str().unwrap(),
        "--root-key",
        root.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ];

    let image = format!("{gun}:v1");
    let (code, stdout, stderr) = trustwatch(&[&base[..], &["-o", "json", &image]].concat());
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let r = &out[0];
    for field in ["image", "gun", "tag", "digest", "verdict", "reason", "message", "signers", "expires"] {
        assert!(r.get(field).is_some(), "field {field} missing in {r}");
    }
    assert_eq!(r["verdict"], "Verified");
    assert_eq!(r["gun"], gun);
    assert_eq!(r["digest"], format!("sha256:{v1}"));
    assert!(r["expires"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok());

    // The state file keeps trusted versions for rollback protection across runs.
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(saved[gun]["versions"]["timestamp"].as_u64().unwrap() >= 1, "{saved}");

    // Any image not verified: exit 1, and the table says which and why.
    let drifted = format!("{gun}:v1@sha256:{}", sha_hex("other"));
    let (code, stdout, _) = trustwatch(&[&base[..], &[&image, &drifted]].concat());
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("DigestDrift") && stdout.contains("Verified"), "{stdout}");

    // Usage and configuration errors: exit 2 with a message that says what to fix.
    let (code, _, stderr) = trustwatch(&["verify", "--server", &url, "--root-key", "/nonexistent.pem", &image]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent.pem"), "{stderr}");
    let (code, _, stderr) = trustwatch(&[&base[..], &["--now", "yesterday", &image]].concat());
    assert_eq!(code, 2);
    assert!(stderr.contains("--now"), "{stderr}");
    let (code, _, stderr) = trustwatch(&[&base[..], &["Not/An/Image"]].concat());
    assert_eq!(code, 2, "{stderr}");
    let (code, _, _) = trustwatch(&["verify", "--server", &url, &image]);
    assert_eq!(code, 2, "--root-key is required");
}

/// `trustwatch verify --state`, run again and again through a proxy that fails one document:
/// an outage is TrustDataUnavailable, never a revocation, a drift or "unsigned".
#[tokio::test(flavor = "multi_thread")]
async fn verify_with_state_reads_outages_as_unavailable_never_revoked_drifted_or_unsigned() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/cli/outage";
    client.init(gun);
    // targets still signs an older v1; targets/releases/qa (below targets/releases) the current one.
    let (older, current) = (sha_hex("v1-old"), sha_hex("v1-current"));
    client.add_hash(gun, "v1", 10, &older, &[]);
    client.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    client.add_hash(gun, "rel", 10, &sha_hex("rel"), &["targets/releases"]);
    let bob = client.gen_delegation_key("bob", KeyKind::Ecdsa);
    client.import_key(&bob, "targets/releases/qa");
    client.delegation_add(gun, "targets/releases/qa", &bob, None);
    client.add_hash(gun, "v1", 10, &current, &["targets/releases/qa"]);
    let root = client.dir().join("root.crt");
    std::fs::write(&root, client.root_cert_pem(gun)).unwrap();
    let state = client.dir().join("state.json");
    let proxy = HostileServer::proxy(&server).await;
    let image = format!("{gun}:v1@sha256:{current}");
    let args: Vec<String> = ["verify", "--server", &proxy.url(), "--root-key", root.to_str().unwrap()]
        .into_iter()
        .chain(["--state", state.to_str().unwrap(), "--timeout", "3s", "-o", "json"])
        .map(str::to_string)
        .collect();
    let run = |extra: &[&str]| {
        let mut a = args.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = a.iter().map(String::as_str).collect();
                let (code, stdout, stderr) = trustwatch(&refs);
                let v: serde_json::Value =
                    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
                (code, v[0].clone())
            })
            .await
            .unwrap()
        }
    };
    let (code, r) = run(&["--signer", "releases/qa", &image]).await;
    assert_eq!((code, r["verdict"].as_str()), (0, Some("Verified")), "{r}");

    // targets/releases changes and cannot be loaded; the next run starts from the state file.
    client.add_hash(gun, "rel2", 10, &sha_hex("rel2"), &["targets/releases"]);
    proxy.set_rule(&listed_name(&server, gun, "targets/releases"), Rule::Status(503));
    let (code, r) = run(&["--signer", "releases/qa", &image]).await;
    assert_eq!(
        (code, r["verdict"].as_str(), r["reason"].as_str()),
        (1, Some("TrustDataUnavailable"), Some("RoleUnavailable")),
        "{r}"
    );
    let (_, r) = run(&[&image]).await;
    assert_eq!(r["verdict"], "TrustDataUnavailable", "not a drift against targets' older v1: {r}");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(saved[gun]["signers"]["targets/releases/qa"].is_array(), "the child is still remembered: {saved}");
    assert!(saved[gun]["versions"]["targets/releases/qa"].is_u64(), "with its version: {saved}");

    // The server answers 404 for everything of a repository verified before.
    proxy.set_rule("/timestamp.json", Rule::Status(404));
    proxy.set_rule("/root.json", Rule::Status(404));
    let (code, r) = run(&[&image]).await;
    assert_eq!(
        (code, r["verdict"].as_str(), r["reason"].as_str()),
        (1, Some("TrustDataUnavailable"), Some("TrustDataVanished")),
        "{r}"
    );

    proxy.clear_rules();
    let (code, r) = run(&["--signer", "releases/qa", &image]).await;
    assert_eq!((code, r["verdict"].as_str()), (0, Some("Verified")), "{r}");
}
