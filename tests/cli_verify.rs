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
