//! Self-test of the integration harness against the real notary stack.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])))
}

fn find<'a>(list: &'a [ListedTarget], name: &str) -> Option<&'a ListedTarget> {
    list.iter().find(|t| t.name == name)
}

#[test]
fn local_server_targets_and_delegations() {
    let server = NotaryServer::start(Variant::Local);
    assert!(server.url().starts_with("https://127.0.0.1:"));
    assert!(server.ca_pem().contains("BEGIN CERTIFICATE"));
    let c = NotaryClient::new(&server);
    let gun = "registry.example.com/team/app";

    // unknown GUN
    let err = c.list(gun).expect_err("unknown GUN must fail");
    assert!(err.contains("does not have trust data"), "{err}");
    assert_eq!(c.lookup(gun, "v1"), None);

    c.init(gun);
    assert_eq!(c.list(gun).unwrap(), vec![]);
    let d1 = sha_hex("v1");
    c.add_hash(gun, "v1", 1234, &d1, &[]);
    let l = c.list(gun).unwrap();
    assert_eq!(l, vec![ListedTarget { name: "v1".into(), digest_hex: d1.clone(), size: 1234, role: "targets".into() }]);
    let lk = c.lookup(gun, "v1").expect("lookup v1");
    assert_eq!((lk.digest_hex.as_str(), lk.size), (d1.as_str(), 1234));
    assert_eq!(c.lookup(gun, "nope"), None);
    assert!(c.last_stdout().contains("No valid trust data"), "{}", c.last_stdout());

    // two delegations: ECDSA signer on targets/releases, RSA signer on targets/qa
    let alice = c.add_delegation_signer(gun, "targets/releases", "alice", KeyKind::Ecdsa);
    assert!(alice.cert_pem.contains("BEGIN CERTIFICATE"));
    let bob = c.gen_delegation_key("bob", KeyKind::Rsa);
    c.import_key(&bob, "targets/qa");
    c.delegation_add(gun, "targets/qa", &bob, Some(&["qa-"]));
    let (d2, d3) = (sha_hex("v2"), sha_hex("qa-v3"));
    c.add_hash(gun, "v2", 2345, &d2, &["targets/releases"]);
    c.add_hash(gun, "qa-v3", 3456, &d3, &["targets/qa"]);
    let l = c.list(gun).unwrap();
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(find(&l, "v2").unwrap().role, "targets/releases");
    assert_eq!(find(&l, "v2").unwrap().digest_hex, d2);
    assert_eq!(find(&l, "qa-v3").unwrap().role, "targets/qa");
    assert_eq!(find(&l, "qa-v3").unwrap().size, 3456);

    let rel_ids = c.delegation_key_ids(gun, "targets/releases");
    let qa_ids = c.delegation_key_ids(gun, "targets/qa");
    assert_eq!(rel_ids.len(), 1, "{rel_ids:?}");
    assert_eq!(qa_ids.len(), 1, "{qa_ids:?}");
    assert_ne!(rel_ids, qa_ids);

    // the delegation shows in the served targets.json
    let (st, body) = fetch_raw(&server, &metadata_path(gun, "targets"));
    assert_eq!(st, 200);
    let roles = json(&body)["signed"]["delegations"]["roles"].clone();
    assert_eq!(roles.as_array().unwrap().len(), 2, "{roles}");

    // revoke alice: v2 disappears silently from stdout, stderr warns
    c.delegation_remove_key(gun, "targets/releases", &rel_ids[0]);
    assert!(c.delegation_key_ids(gun, "targets/releases").is_empty());
    let l = c.list(gun).unwrap();
    assert!(find(&l, "v2").is_none(), "{l:?}");
    assert!(find(&l, "v1").is_some() && find(&l, "qa-v3").is_some(), "{l:?}");
    let warn = c.last_stderr();
    assert!(warn.contains("valid signatures did not meet threshold for targets/releases"), "{warn}");
    assert_eq!(c.lookup(gun, "v2"), None);

    // remove whole qa role, and the v1 target
    c.delegation_remove_role(gun, "targets/qa");
    c.remove_target(gun, "v1", &[]);
    assert!(c.list(gun).unwrap().is_empty());
    assert!(server.server_log().contains("Starting"), "server log: {}", server.server_log());
}

#[test]
fn signer_server_rotations_and_raw_fetch() {
    let server = NotaryServer::start(Variant::WithSigner);
    let c = NotaryClient::new(&server);
    let gun = "registry.example.com/team/rot";
    c.init_with_server_snapshot(gun);
    c.add_hash(gun, "v1", 10, &sha_hex("a"), &[]);

    let (st, body) = fetch_raw(&server, &metadata_path(gun, "timestamp"));
    assert_eq!(st, 200);
    let ts = json(&body);
    assert_eq!(ts["signed"]["_type"], "Timestamp");
    assert_eq!(ts["signatures"][0]["method"], "ecdsa", "signer timestamp key is ecdsa");
    let (st, _) = fetch_raw(&server, &metadata_path("no/such/gun", "timestamp"));
    assert_eq!(st, 404);

    let root1 = c.root_cert_pem(gun);
    assert!(root1.starts_with("-----BEGIN CERTIFICATE-----"), "{root1}");
    assert_eq!(json(&c.root_json_bytes(gun))["signed"]["_type"], "Root");

    c.rotate_key(gun, "targets", false);
    c.rotate_key(gun, "snapshot", false);
    c.rotate_key(gun, "snapshot", true);
    c.rotate_root(gun);
    let root2 = c.root_cert_pem(gun);
    assert_ne!(root1, root2, "root rotation must change the root cert");
    let (st, _) = fetch_raw(&server, &format!("/v2/{gun}/_trust/tuf/2.root.json"));
    assert_eq!(st, 200);

    c.add_hash(gun, "v2", 20, &sha_hex("b"), &[]);
    let l = c.list(gun).unwrap();
    assert_eq!(l.len(), 2, "{l:?}");

    // a fresh client trusting on first use sees the same
    let c2 = NotaryClient::new(&server);
    assert_eq!(c2.list(gun).unwrap(), l);
    assert_eq!(c2.root_cert_pem(gun), root2);
}

async fn get(url: &str, auth: Option<&str>) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let client = reqwest::Client::new();
    let mut rq = client.get(url).timeout(Duration::from_secs(20));
    if let Some(a) = auth {
        rq = rq.header("Authorization", a);
    }
    let resp = rq.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.bytes().await.expect("body").to_vec(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_proxy_behaviours() {
    let gun = "registry.example.com/team/hostile";
    let server = tokio::task::spawn_blocking(move || {
        let server = NotaryServer::start(Variant::Local);
        let c = NotaryClient::new(&server);
        c.init(gun);
        c.add_hash(gun, "v1", 1, &sha_hex("h"), &[]);
        server
    })
    .await
    .unwrap();
    let tpath = metadata_path(gun, "targets");
    let (st, direct) = fetch_raw(&server, &tpath);
    assert_eq!(st, 200);

    let proxy = HostileServer::proxy(&server).await;
    assert!(proxy.url().starts_with("http://127.0.0.1:"));
    let url = format!("{}{}", proxy.url(), tpath);

    // Pass
    let (st, body, _) = get(&url, None).await;
    assert_eq!((st, &body), (200, &direct));
    // blocking helper against the proxy works too (multi-thread runtime)
    assert_eq!(fetch_raw_url(&url, None), (200, direct.clone()));

    // FlipBit
    proxy.set_rule("targets.json", Rule::FlipBit { byte_index: 10 });
    let (st, body, _) = get(&url, None).await;
    assert_eq!(st, 200);
    assert_eq!(body.len(), direct.len());
    let diff: u32 = body.iter().zip(&direct).map(|(a, b)| (a ^ b).count_ones()).sum();
    assert_eq!(diff, 1);
    // other paths unaffected
    let (st, _, _) = get(&format!("{}{}", proxy.url(), metadata_path(gun, "root")), None).await;
    assert_eq!(st, 200);

    // Delay
    proxy.set_rule("targets.json", Rule::Delay { secs: 1 });
    let t = Instant::now();
    let (st, body, _) = get(&url, None).await;
    assert!(t.elapsed() >= Duration::from_millis(950), "{:?}", t.elapsed());
    assert_eq!((st, &body), (200, &direct));

    // Endless: keeps streaming
    proxy.set_rule("targets.json", Rule::Endless);
    let mut resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut got = 0usize;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1000) {
        match tokio::time::timeout(Duration::from_millis(500), resp.chunk()).await {
            Ok(Ok(Some(c))) => got += c.len(),
            other => panic!("endless stream ended: {other:?}"),
        }
    }
    drop(resp);
    assert!(got > 8 * 1024, "only {got} bytes in 1s");

    // Oversized
    proxy.set_rule("targets.json", Rule::Oversized { bytes: 3 << 20 });
    let (st, body, _) = get(&url, None).await;
    assert_eq!((st, body.len()), (200, 3 << 20));
    assert!(json(&body)["signed"].is_object());

    // Serve / Status / Close
    proxy.set_rule("targets.json", Rule::Serve { status: 200, body: b"<html>hi</html>".to_vec() });
    assert_eq!(get(&url, None).await.1, b"<html>hi</html>");
    proxy.set_rule("", Rule::Status(503)); // matches every path, and wins (set last)
    assert_eq!(get(&url, None).await.0, 503);
    proxy.set_rule("targets.json", Rule::Close); // now the latest for targets.json
    assert!(reqwest::get(&url).await.is_err());
    proxy.clear_rules();

    // Unauthorized rule
    proxy.set_rule("timestamp.json", Rule::Unauthorized { realm_url: "http://realm.invalid/t".into() });
    let (st, _, h) = get(&format!("{}{}", proxy.url(), metadata_path(gun, "timestamp")), None).await;
    assert_eq!(st, 401);
    let chal = h["www-authenticate"].to_str().unwrap();
    assert!(chal.contains(&format!("scope=\"repository:{gun}:pull\"")), "{chal}");
    proxy.clear_rules();

    // token flow
    let tokens = TokenServer::start("abc").await;
    proxy.require_bearer(&tokens.realm(), "abc");
    let (st, _, h) = get(&url, None).await;
    assert_eq!(st, 401);
    let chal = h["www-authenticate"].to_str().unwrap().to_string();
    assert!(chal.starts_with(&format!("Bearer realm=\"{}\"", tokens.realm())), "{chal}");
    let (st, tok, _) =
        get(&format!("{}?service=notary&scope=repository:{gun}:pull", tokens.realm()), Some("Basic dXNlcjpwYXNz"))
            .await;
    assert_eq!(st, 200);
    assert_eq!(json(&tok)["token"], "abc");
    assert!(tokens.basic_auth_seen());
    let (st, body, _) = get(&url, Some("Bearer abc")).await;
    assert_eq!((st, &body), (200, &direct));
    assert_eq!(get(&url, Some("Bearer wrong")).await.0, 401);

    let reqs = proxy.requests();
    assert!(reqs.iter().all(|p| p.starts_with("/v2/")), "{reqs:?}");
    assert!(reqs.iter().filter(|p| **p == tpath).count() >= 10, "{reqs:?}");
    assert!(proxy.request_log().iter().any(|r| r.authorization.as_deref() == Some("Bearer abc")));
}
