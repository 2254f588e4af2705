//! TLS to the Notary server and where credentials go, against real notary-servers presenting
//! real certificates (openssl), with the hostile proxy and token service where a fault is needed.

mod support;

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::*;
use trustwatch::engine::{Resolution, ResolveOptions, TrustEngine};
use trustwatch::fetch::{Credentials, NotaryHttp, ServerConfig};
use trustwatch::image::ImageRef;
use trustwatch::tuf::{Anchors, PinnedKey};
use trustwatch::verdict::Verdict;

type Engine = TrustEngine<NotaryHttp>;

fn engine_with(url: &str, ca_pem: Option<String>, root_pem: &str, credentials: Option<Credentials>) -> Engine {
    let mut cfg = ServerConfig::new(url);
    cfg.ca_pem = ca_pem;
    cfg.timeout = Duration::from_secs(3);
    cfg.credentials = credentials;
    let pinned = vec![PinnedKey::from_pem("root", root_pem).unwrap()];
    TrustEngine::new(NotaryHttp::new(cfg).unwrap(), Anchors { pinned, revoked: BTreeSet::new() })
}

fn opts() -> ResolveOptions {
    ResolveOptions { signers: vec![], now: Timestamp::now(), expiry_warning: SignedDuration::from_hours(1) }
}

async fn check(e: &Engine, image: &str) -> Resolution {
    e.verify(&ImageRef::parse(image).unwrap(), &opts(), Instant::now()).await
}

fn assert_verdict(r: &Resolution, verdict: Verdict, reason: &str) {
    assert_eq!((r.verdict, r.reason.as_str()), (verdict, reason), "unexpected resolution: {r:#?}");
}

fn creds() -> Option<Credentials> {
    Some(Credentials { username: "ci".into(), password: "s3cret-password".into() })
}

/// Some root certificate to pin: the verdicts below are decided before any root is read.
fn any_root_pem() -> String {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    client.init("registry.example.com/tls/any");
    client.root_cert_pem("registry.example.com/tls/any")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_ca_certificate_given_as_the_ca_bundle_is_accepted_like_the_notary_client_does() {
    // What `openssl req -x509` makes by default: basicConstraints=critical,CA:TRUE.
    let server = NotaryServer::start_with_cert(Variant::Local, ServerCert::SelfSignedCa { san: "IP:127.0.0.1" });
    assert!(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(server.ca_path())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("CA:TRUE"))
            .unwrap(),
        "the server certificate is a CA certificate"
    );
    // The reference client, given that certificate as its CA, publishes through it.
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/tls/self-signed";
    client.init(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    assert_eq!(client.list(gun).unwrap().len(), 1);

    let e = engine_with(&server.url(), Some(server.ca_pem()), &client.root_cert_pem(gun), None);
    assert_verdict(&check(&e, &format!("{gun}:v1")).await, Verdict::Verified, "Verified");

    // Accepted because it is that exact certificate: the name is still checked.
    let wrong_name =
        NotaryServer::start_with_cert(Variant::Local, ServerCert::SelfSignedCa { san: "DNS:notary.example.com" });
    let e = engine_with(&wrong_name.url(), Some(wrong_name.ca_pem()), &client.root_cert_pem(gun), None);
    let r = check(&e, &format!("{gun}:v1")).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "TlsError");
    assert!(
        r.message.contains("not valid for 127.0.0.1") && r.message.contains("notary.example.com"),
        "the message names the host asked for and the names the certificate holds: {}",
        r.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tls_failure_says_in_plain_words_what_to_fix() {
    let root = any_root_pem();
    let image = "registry.example.com/tls/app:v1";
    let server = NotaryServer::start(Variant::Local);
    let other = NotaryServer::start(Variant::Local);

    let r = check(&engine_with(&server.url(), Some(other.ca_pem()), &root, None), image).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "TlsError");
    assert!(r.message.contains("not signed by the CA bundle (caBundle / --ca-file)"), "unknown CA: {}", r.message);

    // A self-signed CA certificate that is not the one configured.
    let self_signed = NotaryServer::start_with_cert(Variant::Local, ServerCert::SelfSignedCa { san: "IP:127.0.0.1" });
    let r = check(&engine_with(&self_signed.url(), Some(server.ca_pem()), &root, None), image).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "TlsError");
    assert!(
        r.message.contains("presents a CA certificate (CA:TRUE) as its own, and it is not in the CA bundle")
            && r.message.contains("put that exact certificate in the CA bundle"),
        "{}",
        r.message
    );

    let expired = NotaryServer::start_with_cert(Variant::Local, ServerCert::ExpiredLeaf);
    let r = check(&engine_with(&expired.url(), Some(expired.ca_pem()), &root, None), image).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "TlsError");
    assert!(r.message.contains("certificate expired") && r.message.contains("2020-02-01"), "{}", r.message);

    // `localhost` is one of the certificate's names too: no TLS failure there.
    let url = server.url().replace("127.0.0.1", "localhost");
    let r = check(&engine_with(&url, Some(server.ca_pem()), &root, None), image).await;
    assert_ne!(r.reason, "TlsError", "localhost is a name of the certificate: {r:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_never_sent_to_a_plain_http_token_realm_off_this_machine() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/tls/private";
    client.init(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    let root = client.root_cert_pem(gun);
    let tokens = TokenServer::start_on("0.0.0.0:0", "token", "t0ken").await;
    let proxy = HostileServer::proxy(&server).await;
    // The server names a realm that anyone on the network path could read.
    proxy.require_bearer(&tokens.realm_at(&support::host::non_loopback_ip()), "t0ken");
    let r = check(&engine_with(&proxy.url(), None, &root, creds()), &format!("{gun}:v1")).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "AuthenticationFailed");
    assert!(r.message.contains("https"), "{}", r.message);
    assert!(!tokens.basic_auth_seen(), "credentials went over plain http: {:?}", tokens.requests());

    // Over loopback (a port-forward, a sidecar) plain http is allowed.
    proxy.require_bearer(&tokens.realm_at("127.0.0.1"), "t0ken");
    let r = check(&engine_with(&proxy.url(), None, &root, creds()), &format!("{gun}:v1")).await;
    assert_verdict(&r, Verdict::Verified, "Verified");
    assert!(tokens.basic_auth_seen());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_host_never_carries_credentials() {
    let server = NotaryServer::start(Variant::Local);
    let client = NotaryClient::new(&server);
    let gun = "registry.example.com/tls/redirected";
    client.init(gun);
    client.add_hash(gun, "v1", 10, &sha_hex("v1"), &[]);
    let root = client.root_cert_pem(gun);
    let tokens = TokenServer::start("t0ken").await;

    // The configured server wants a token, then sends the timestamp request elsewhere.
    let configured = HostileServer::proxy(&server).await;
    let elsewhere = HostileServer::proxy(&server).await;
    configured.require_bearer(&tokens.realm(), "t0ken");
    configured.set_rule("/timestamp.json", Rule::Redirect { location: elsewhere.url() });
    let r = check(&engine_with(&configured.url(), None, &root, creds()), &format!("{gun}:v1")).await;
    assert_verdict(&r, Verdict::Verified, "Verified");
    let seen = elsewhere.request_log();
    assert!(seen.iter().any(|q| q.path.ends_with("/timestamp.json")), "the redirect was followed: {seen:?}");
    assert!(seen.iter().all(|q| q.authorization.is_none()), "credentials followed the redirect: {seen:?}");

    // The other host asks for credentials itself: its challenge is not ours to answer.
    let tokens_elsewhere = TokenServer::start("other-token").await;
    elsewhere.set_rule("", Rule::Unauthorized { realm_url: tokens_elsewhere.realm() });
    let r = check(&engine_with(&configured.url(), None, &root, creds()), &format!("{gun}:v1")).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "AuthenticationFailed");
    assert!(r.message.contains(&elsewhere.url()) || r.message.contains("another host"), "{}", r.message);
    assert!(tokens_elsewhere.requests().is_empty(), "credentials went to a realm another host named");

    // The same when the redirect answers the request we just made with a fresh token: the
    // first request of a new engine (root.json) is challenged, then sent elsewhere.
    configured.clear_rules();
    configured.set_rule("/root.json", Rule::Redirect { location: elsewhere.url() });
    let r = check(&engine_with(&configured.url(), None, &root, creds()), &format!("{gun}:v1")).await;
    assert_verdict(&r, Verdict::TrustDataUnavailable, "AuthenticationFailed");
    assert!(r.message.contains(&elsewhere.url()) || r.message.contains("another host"), "{}", r.message);
    assert!(tokens_elsewhere.requests().is_empty(), "credentials went to a realm another host named");
}
