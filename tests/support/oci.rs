//! OCI peers for the registry client and the cosign verifier: the Go-built tools (oras,
//! olareg, cosign), an olareg registry (with the referrers API), htpasswd and token-auth
//! configurations for Debian's docker-registry with a small JWT token realm, and a faulty
//! proxy in front of a real registry for faults a registry will not produce on demand (429,
//! 5xx, flipped bytes, oversized bodies).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A Go-built peer (`oras`, `olareg`, `cosign`, `notation`): `$TRUSTWATCH_GO_TOOLS_BIN/<name>`
/// or the directory `hack/go-tools.sh bin` prints. Panics, saying how to build it, when it is
/// missing.
pub fn go_tool(name: &str) -> PathBuf {
    let dir = match std::env::var("TRUSTWATCH_GO_TOOLS_BIN") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/go-tools.sh");
            let out = Command::new("bash").arg(&script).arg("bin").output().expect("bash hack/go-tools.sh bin");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{name} is missing at {}: run `bash hack/go-tools.sh build` (needs Go), or set TRUSTWATCH_GO_TOOLS_BIN",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_code(url: &str) -> String {
    let out = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url]).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// olareg (a registry implementing the OCI referrers API) on loopback, storing in a temp dir.
pub struct Olareg {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Olareg {
    pub fn start() -> Olareg {
        Olareg::start_with(&[])
    }

    /// olareg with extra `serve` flags, e.g. `--api-delete` (manifest deletes).
    pub fn start_with(flags: &[&str]) -> Olareg {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("olareg.log")).unwrap();
        let child = Command::new(go_tool("olareg"))
            .args(["serve", "--addr", "127.0.0.1", "--port", &port.to_string(), "--dir"])
            .arg(dir.path().join("data"))
            .args(flags)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start olareg");
        let r = Olareg { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while http_code(&format!("{}/v2/", r.url())) != "200" {
            assert!(Instant::now() < deadline, "olareg did not start: {}", r.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The olareg process (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("olareg.log")).unwrap_or_default()
    }
}

impl Drop for Olareg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The oras CLI with its own config directory, over plain HTTP to loopback registries.
pub struct Oras {
    bin: PathBuf,
    dir: tempfile::TempDir,
    credentials: Option<(String, String)>,
}

impl Default for Oras {
    fn default() -> Self {
        Self::new()
    }
}

impl Oras {
    pub fn new() -> Oras {
        Oras { bin: go_tool("oras"), dir: tempfile::tempdir().unwrap(), credentials: None }
    }

    pub fn with_credentials(user: &str, pass: &str) -> Oras {
        Oras { credentials: Some((user.into(), pass.into())), ..Oras::new() }
    }

    /// Runs `oras <args> --plain-http [-u -p]` in its directory; panics on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).arg("--plain-http").current_dir(self.dir.path()).env("HOME", self.dir.path());
        if let Some((u, p)) = &self.credentials {
            cmd.args(["-u", u, "-p", p]);
        }
        let out = cmd.output().expect("run oras");
        assert!(
            out.status.success(),
            "oras {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn file(&self, name: &str, content: &str) -> String {
        std::fs::write(self.dir.path().join(name), content).unwrap();
        name.to_string()
    }

    /// Pushes a one-file artifact to `reference` (`host/repo:tag`); returns its digest.
    pub fn push(&self, reference: &str, content: &str) -> String {
        let f = self.file("content.txt", content);
        self.run(&["push", reference, &f, "--format", "go-template", "--template", "{{.digest}}"])
    }

    /// `oras attach --artifact-type <t> <subject> <file>` with an optional
    /// `--distribution-spec` (`v1.1-referrers-api` or `v1.1-referrers-tag`); returns the
    /// referrer manifest's digest.
    pub fn attach(&self, subject: &str, artifact_type: &str, content: &str, spec: Option<&str>) -> String {
        let f = self.file("attached.txt", content);
        let mut args = vec!["attach", "--artifact-type", artifact_type, subject, &f];
        if let Some(s) = spec {
            args.extend(["--distribution-spec", s]);
        }
        args.extend(["--format", "go-template", "--template", "{{.digest}}"]);
        self.run(&args)
    }
}

/// An htpasswd line (bcrypt) for docker-registry's `auth.htpasswd`.
pub fn htpasswd_line(user: &str, pass: &str) -> String {
    format!("{user}:{}", bcrypt::hash(pass, 5).expect("bcrypt"))
}

/// The `auth:` section of a docker-registry with basic auth for one user.
pub fn htpasswd_auth(dir: &Path, user: &str, pass: &str) -> String {
    let file = dir.join("htpasswd");
    std::fs::write(&file, htpasswd_line(user, pass) + "\n").unwrap();
    format!("auth:\n  htpasswd:\n    realm: trustwatch-test\n    path: {}\n", file.display())
}

/// A JWT token realm for docker-registry's `auth.token`: a P-256 key and self-signed
/// certificate made with openssl (the registry's `rootcertbundle`), and tokens signed with
/// that key (ES256, certificate in `x5c`) for whoever presents the right basic credentials.
pub struct TokenRealm {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<RealmRequest>>>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmRequest {
    pub query: String,
    /// Whether the request carried the right basic credentials.
    pub authenticated: bool,
    pub authorization: Option<String>,
}

pub const TOKEN_SERVICE: &str = "trustwatch-registry";
pub const TOKEN_ISSUER: &str = "trustwatch-test-realm";

impl TokenRealm {
    pub async fn start(user: &str, pass: &str) -> TokenRealm {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("realm.key");
        let cert = dir.path().join("realm.crt");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=trustwatch token realm", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        // PKCS#8 for the Rust side.
        let pkcs8 = Command::new("openssl").args(["pkcs8", "-topk8", "-nocrypt", "-in"]).arg(&key).output().unwrap();
        let signing = {
            use p256::pkcs8::DecodePrivateKey;
            p256::ecdsa::SigningKey::from_pkcs8_pem(&String::from_utf8_lossy(&pkcs8.stdout)).expect("P-256 key")
        };
        let cert_pem = std::fs::read_to_string(&cert).unwrap();
        let cert_der: String = cert_pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let lg = log.clone();
        let expected = format!("Basic {}", B64.encode(format!("{user}:{pass}")));
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((mut sock, _)) = listener.accept().await else { continue };
                let (lg, expected, signing, x5c) = (lg.clone(), expected.clone(), signing.clone(), cert_der.clone());
                conns.spawn(async move {
                    let Some(req) = read_head(&mut sock).await else { return };
                    let query = req.target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
                    let authorization = req.headers.get("authorization").cloned();
                    let authenticated = authorization.as_deref() == Some(expected.as_str());
                    lg.lock().unwrap().push(RealmRequest { query: query.clone(), authenticated, authorization });
                    if !authenticated {
                        respond(&mut sock, 401, &[], b"{\"details\":\"bad credentials\"}").await;
                        return;
                    }
                    let jwt = issue_jwt(&signing, &x5c, &query);
                    let body = serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 300}).to_string();
                    respond(&mut sock, 200, &[("Content-Type", "application/json".into())], body.as_bytes()).await;
                });
            }
        });
        TokenRealm { addr, dir, log, task }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("realm.crt")
    }

    /// The `auth:` section of a docker-registry that trusts this realm.
    pub fn registry_auth(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            self.realm(),
            self.cert_path().display()
        )
    }

    pub fn requests(&self) -> Vec<RealmRequest> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TokenRealm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A token granting every requested scope (`repository:<name>:<actions>`).
fn issue_jwt(key: &p256::ecdsa::SigningKey, x5c: &str, query: &str) -> String {
    use p256::ecdsa::signature::Signer;
    let mut access = vec![];
    for (k, v) in url_pairs(query) {
        if k == "scope" {
            let parts: Vec<&str> = v.splitn(3, ':').collect();
            if parts.len() == 3 {
                let actions: Vec<&str> = parts[2].split(',').collect();
                access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}));
            }
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": "trustwatch", "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
    let sig: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(sig.to_bytes()))
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (percent_decode(k), percent_decode(v))).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Head {
    method: String,
    target: String,
    headers: HashMap<String, String>,
}

async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await.ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    // Bodies (uploads) are read and forwarded by the proxy when it sees Content-Length.
    Some(Head { method, target, headers })
}

async fn respond(stream: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    respond_head(stream, status, headers, body.len()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.flush().await;
}

async fn respond_head(stream: &mut TcpStream, status: u16, headers: &[(&str, String)], len: usize) {
    let mut head = format!("HTTP/1.1 {status} Status\r\nConnection: close\r\nContent-Length: {len}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
}

/// What the faulty proxy does with a request whose path contains a rule's pattern.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward to the registry and relay the answer.
    Pass,
    /// Answer 429 (with `Retry-After` when given) to the next `times` matching requests,
    /// then pass.
    TooManyRequests { times: u32, retry_after: Option<String> },
    /// Answer this status (with a small JSON error body).
    Status(u16),
    /// Relay the registry's answer with byte `index` (modulo the length) flipped.
    FlipByte { index: usize },
    /// 200 with `bytes` of body, announced by Content-Length.
    Oversized { bytes: usize },
    /// Close the connection without answering.
    Close,
    /// Never answer (until the client gives up).
    Hang,
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<(String, Fault)>,
    log: Vec<ProxyRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    pub method: String,
    /// Path with query.
    pub target: String,
    pub authorization: Option<String>,
}

/// A plain-HTTP proxy in front of a real registry that forwards method, path, query,
/// `Accept`, `Authorization` and bodies, and relays status and headers, unless a fault rule
/// matches.
pub struct FaultyProxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    task: JoinHandle<()>,
}

const RELAYED: [&str; 9] = [
    "content-type",
    "docker-content-digest",
    "link",
    "www-authenticate",
    "retry-after",
    "location",
    "oci-filters-applied",
    "docker-upload-uuid",
    "range",
];

impl FaultyProxy {
    pub async fn start(upstream: &str) -> FaultyProxy {
        let upstream = upstream.trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((sock, _)) = listener.accept().await else { continue };
                conns.spawn(proxy_one(sock, st.clone(), client.clone(), upstream.clone()));
            }
        });
        FaultyProxy { addr, state, task }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The rule for paths containing `pattern` (latest set wins; "" matches all).
    pub fn set(&self, pattern: &str, fault: Fault) {
        let mut st = self.state.lock().unwrap();
        st.rules.retain(|(p, _)| p != pattern);
        st.rules.push((pattern.to_string(), fault));
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_one(mut sock: TcpStream, state: Arc<Mutex<ProxyState>>, client: reqwest::Client, upstream: String) {
    let Some(head) = read_head(&mut sock).await else { return };
    let path = head.target.split('?').next().unwrap_or("").to_string();
    let fault = {
        let mut st = state.lock().unwrap();
        st.log.push(ProxyRequest {
            method: head.method.clone(),
            target: head.target.clone(),
            authorization: head.headers.get("authorization").cloned(),
        });
        let idx = st.rules.iter().rposition(|(p, _)| path.contains(p.as_str()));
        match idx {
            Some(i) => {
                let fault = st.rules[i].1.clone();
                if let Fault::TooManyRequests { times, retry_after } = &fault {
                    if *times == 0 {
                        Fault::Pass
                    } else {
                        st.rules[i].1 = Fault::TooManyRequests { times: times - 1, retry_after: retry_after.clone() };
                        fault
                    }
                } else {
                    fault
                }
            }
            None => Fault::Pass,
        }
    };
    let json = [("Content-Type", "application/json".to_string())];
    match fault {
        Fault::TooManyRequests { retry_after, .. } => {
            let mut h = json.to_vec();
            if let Some(r) = retry_after {
                h.push(("Retry-After", r));
            }
            respond(&mut sock, 429, &h, br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#).await;
        }
        Fault::Status(s) => {
            respond(&mut sock, s, &json, format!(r#"{{"errors":[{{"code":"FAULT","message":"{s}"}}]}}"#).as_bytes())
                .await
        }
        Fault::Oversized { bytes } => {
            respond_head(
                &mut sock,
                200,
                &[("Content-Type", "application/vnd.oci.image.manifest.v1+json".into())],
                bytes,
            )
            .await;
            let block = vec![b' '; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(block.len());
                if sock.write_all(&block[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        }
        Fault::Close => {}
        Fault::Hang => tokio::time::sleep(Duration::from_secs(120)).await,
        Fault::Pass | Fault::FlipByte { .. } => {
            let flip = if let Fault::FlipByte { index } = fault { Some(index) } else { None };
            // Request body (uploads through the proxy).
            let mut body = vec![];
            if let Some(len) = head.headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) {
                body.resize(len, 0);
                if sock.read_exact(&mut body).await.is_err() {
                    return;
                }
            }
            let method = reqwest::Method::from_bytes(head.method.as_bytes()).unwrap_or(reqwest::Method::GET);
            let mut req = client.request(method.clone(), format!("{upstream}{}", head.target));
            for h in ["accept", "authorization", "content-type"] {
                if let Some(v) = head.headers.get(h) {
                    req = req.header(h, v);
                }
            }
            if !body.is_empty() {
                req = req.body(body);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    respond(&mut sock, 502, &[], format!("upstream: {e}").as_bytes()).await;
                    return;
                }
            };
            let status = resp.status().as_u16();
            let mut headers = vec![];
            for h in RELAYED {
                for v in resp.headers().get_all(h) {
                    if let Ok(v) = v.to_str() {
                        headers.push((h, v.to_string()));
                    }
                }
            }
            let upstream_len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_string);
            let mut bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            if let (Some(i), false) = (flip, bytes.is_empty()) {
                let i = i % bytes.len();
                bytes[i] ^= 0x01;
            }
            if method == reqwest::Method::HEAD {
                // HEAD: the registry's Content-Length, no body.
                let len = upstream_len.and_then(|l| l.parse().ok()).unwrap_or(0);
                respond_head(&mut sock, status, &headers, len).await;
                let _ = sock.flush().await;
            } else {
                respond(&mut sock, status, &headers, &bytes).await;
            }
        }
    }
}

/// GET `base_url + path` with an Accept header (curl): (status, body).
pub fn http_get(base_url: &str, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-H", &format!("Accept: {accept}"), "-w", "\n%{http_code}", &format!("{base_url}{path}")])
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&body[nl + 1..]).trim().parse().unwrap_or(0);
    body.truncate(nl);
    (status, body)
}

/// Uploads a blob (POST + monolithic PUT); returns its digest.
pub fn http_push_blob(base_url: &str, repo: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST", &format!("{base_url}/v2/{repo}/blobs/uploads/")])
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&out.stdout).into_owned();
    let location = headers
        .lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no upload location: {headers}"));
    let location = if location.starts_with("http") { location } else { format!("{base_url}{location}") };
    let sep = if location.contains('?') { '&' } else { '?' };
    let code = curl_put(&format!("{location}{sep}digest={digest}"), "application/octet-stream", bytes);
    assert_eq!(code, "201", "blob upload of {digest}");
    digest
}

/// PUTs a manifest at `reference` (tag or digest); returns its digest.
pub fn http_put_manifest(base_url: &str, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let code = curl_put(&format!("{base_url}/v2/{repo}/manifests/{reference}"), media_type, bytes);
    assert_eq!(code, "201", "manifest push of {repo}:{reference}");
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn curl_put(url: &str, content_type: &str, bytes: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {content_type}"),
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.path().display()))
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cosign CLI with its own HOME, key passwords from `COSIGN_PASSWORD`, offline
/// (`--tlog-upload=false`), over plain HTTP to loopback registries.
pub struct Cosign {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

pub const COSIGN_PASSWORD: &str = "trustwatch-test";

/// The output of a CLI run.
#[derive(Debug, Clone)]
pub struct Run {
    pub ok: bool,
    pub output: String,
}

impl Default for Cosign {
    fn default() -> Self {
        Self::new()
    }
}

impl Cosign {
    pub fn new() -> Cosign {
        let c = Cosign { bin: go_tool("cosign"), dir: tempfile::tempdir().unwrap() };
        // An empty trusted root: what `cosign verify --new-bundle-format` needs offline.
        let r = c.run(&["trusted-root", "create", "--out", "trusted_root.json"], &[]);
        assert!(r.ok, "{}", r.output);
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("COSIGN_PASSWORD", COSIGN_PASSWORD)
            .env("TUF_ROOT", self.dir.path().join("tuf"))
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run cosign");
        Run {
            ok: out.status.success(),
            output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// `cosign generate-key-pair --output-key-prefix <name>`: (`<name>.key`, PEM of `<name>.pub`).
    pub fn generate_key_pair(&self, name: &str) -> (PathBuf, String) {
        let r = self.run(&["generate-key-pair", "--output-key-prefix", name], &[]);
        assert!(r.ok, "{}", r.output);
        (
            self.dir.path().join(format!("{name}.key")),
            std::fs::read_to_string(self.dir.path().join(format!("{name}.pub"))).unwrap(),
        )
    }

    /// `cosign import-key-pair` of a PEM private key made by openssl.
    pub fn import_key_pair(&self, name: &str, private_pem_path: &Path) -> (PathBuf, String) {
        let r = self.run(
            &["import-key-pair", "--key", &private_pem_path.display().to_string(), "--output-key-prefix", name, "-y"],
            &[],
        );
        assert!(r.ok, "{}", r.output);
        (
            self.dir.path().join(format!("{name}.key")),
            std::fs::read_to_string(self.dir.path().join(format!("{name}.pub"))).unwrap(),
        )
    }

    /// `cosign sign --key <key> --tlog-upload=false -y [extra] <image>`; panics on failure.
    pub fn sign(&self, image: &str, key: &Path, extra: &[&str], env: &[(&str, &str)]) {
        let key = key.display().to_string();
        let mut args = vec![
            "sign",
            "--key",
            &key,
            "--tlog-upload=false",
            "--allow-http-registry",
            "--allow-insecure-registry",
            "-y",
        ];
        args.extend(extra);
        args.push(image);
        let r = self.run(&args, env);
        assert!(r.ok, "cosign {args:?}: {}", r.output);
    }

    /// `cosign verify --key <pub> --insecure-ignore-tlog=true [extra] <image>`.
    pub fn verify(&self, image: &str, public_pem: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let pub_path = self.dir.path().join(format!("verify-{}.pub", std::process::id()));
        std::fs::write(&pub_path, public_pem).unwrap();
        let p = pub_path.display().to_string();
        let mut args = vec![
            "verify",
            "--key",
            &p,
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            "--allow-insecure-registry",
        ];
        args.extend(extra);
        args.push(image);
        self.run(&args, env)
    }

    /// `verify` for Sigstore bundles: `--new-bundle-format --trusted-root <empty root>`.
    pub fn verify_bundle(&self, image: &str, public_pem: &str, extra: &[&str]) -> Run {
        let root = self.dir.path().join("trusted_root.json").display().to_string();
        let mut args = vec!["--new-bundle-format", "--trusted-root", root.as_str()];
        args.extend(extra);
        self.verify(image, public_pem, &args, &[])
    }
}
