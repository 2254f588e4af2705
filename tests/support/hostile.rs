//! A hostile plain-HTTP proxy in front of a real notary-server, and a tiny registry token
//! endpoint. Raw tokio TCP, one request per connection (`Connection: close`). Async: needs a
//! tokio runtime; the servers stop when dropped (the accept task and its connections are
//! aborted).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::notary::{NotaryServer, Upstream};

/// What the proxy does for a request whose path matches a rule.
#[derive(Clone, Debug)]
pub enum Rule {
    /// Forward to the upstream server and relay status + body (502 if no/failed upstream).
    Pass,
    /// Answer these exact bytes (replayed old file, malformed JSON, HTML page...).
    Serve {
        status: u16,
        body: Vec<u8>,
    },
    /// Upstream body with the lowest bit of byte `byte_index` flipped (index wraps modulo len).
    FlipBit {
        byte_index: usize,
    },
    /// 200 with a Content-Length of exactly `bytes`: `{"signed":` + spaces + `{}}` (valid JSON).
    Oversized {
        bytes: usize,
    },
    /// 200, chunked, `{"signed":"` then 1 KiB of spaces every 20 ms forever (~50 KB/s).
    Endless,
    /// Like Endless with a chosen chunk size and interval.
    Trickle {
        chunk: usize,
        interval_ms: u64,
    },
    /// Sleep this long before answering, then behave like Pass.
    Delay {
        secs: u64,
    },
    DelayMs {
        ms: u64,
    },
    /// This status with a small JSON error body.
    Status(u16),
    /// 401 with `WWW-Authenticate: Bearer realm="<realm_url>",service="notary",scope="repository:<gun>:pull"`.
    Unauthorized {
        realm_url: String,
    },
    /// Close the connection without answering.
    Close,
    /// Forward to the upstream server with the first `from` in the path replaced by `to`
    /// (serve one repository's genuine metadata for another GUN).
    Rewrite {
        from: String,
        to: String,
    },
    /// `302 Found` to `<location><path>` (the requested path, query included).
    Redirect {
        location: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Path with query string, as requested.
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    rules: Vec<(String, Rule)>,
    /// (realm_url, token)
    auth: Option<(String, String)>,
    log: Vec<LoggedRequest>,
}

struct Upstream2 {
    url: String,
    client: reqwest::Client,
}

pub struct HostileServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    scheme: &'static str,
}

struct Request {
    path: String,
    authorization: Option<String>,
}

/// A connection: plain TCP or TLS.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

async fn read_request<S: Conn>(stream: &mut S) -> Option<Request> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let _method = parts.next()?;
    let path = parts.next()?.to_string();
    let mut authorization = None;
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
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    Some(Request { path, authorization })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

async fn respond<S: Conn>(stream: &mut S, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let mut head =
        format!("HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Length: {}\r\n", reason(status), body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.flush().await;
}

/// GUN from "/v2/<gun>/_trust/..." (None for "/v2/" etc).
fn gun_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    let idx = rest.find("/_trust/")?;
    Some(&rest[..idx])
}

fn challenge(realm: &str, path: &str) -> String {
    match gun_of(path) {
        Some(gun) => format!("Bearer realm=\"{realm}\",service=\"notary\",scope=\"repository:{gun}:pull\""),
        None => format!("Bearer realm=\"{realm}\",service=\"notary\""),
    }
}

async fn fetch_upstream(up: &Option<Upstream2>, path: &str) -> Result<(u16, String, Vec<u8>), String> {
    let up = up.as_ref().ok_or("no upstream configured")?;
    let resp = up.client.get(format!("{}{}", up.url, path)).send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("text/plain").to_string();
    let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
    Ok((status, ct, body))
}

async fn pass<S: Conn>(stream: &mut S, up: &Option<Upstream2>, path: &str, flip: Option<usize>) {
    match fetch_upstream(up, path).await {
        Ok((status, ct, mut body)) => {
            if let Some(i) = flip {
                if !body.is_empty() {
                    let i = i % body.len();
                    body[i] ^= 0x01;
                }
            }
            respond(stream, status, &[("Content-Type", ct)], &body).await;
        }
        Err(e) => respond(stream, 502, &[], format!("upstream error: {e}").as_bytes()).await,
    }
}

async fn stream_forever<S: Conn>(stream: &mut S, chunk: usize, interval: Duration) {
    let head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let first = b"{\"signed\":\"";
    let spaces = vec![b' '; chunk.max(1)];
    let mut data: &[u8] = first;
    loop {
        let mut msg = format!("{:x}\r\n", data.len()).into_bytes();
        msg.extend_from_slice(data);
        msg.extend_from_slice(b"\r\n");
        if stream.write_all(&msg).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        data = &spaces;
        tokio::time::sleep(interval).await;
    }
}

async fn oversized<S: Conn>(stream: &mut S, bytes: usize) {
    let head =
        format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {bytes}\r\n\r\n");
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (start, end): (&[u8], &[u8]) = (b"{\"signed\":", b"{}}");
    if bytes < start.len() + end.len() {
        let _ = stream.write_all(&vec![b' '; bytes]).await;
        return;
    }
    if stream.write_all(start).await.is_err() {
        return;
    }
    let mut left = bytes - start.len() - end.len();
    let block = vec![b' '; 64 * 1024];
    while left > 0 {
        let n = left.min(block.len());
        if stream.write_all(&block[..n]).await.is_err() {
            return;
        }
        left -= n;
    }
    let _ = stream.write_all(end).await;
    let _ = stream.flush().await;
}

async fn handle<S: Conn>(mut stream: S, state: Arc<Mutex<State>>, up: Arc<Option<Upstream2>>) {
    let Some(req) = read_request(&mut stream).await else { return };
    let bare = req.path.split('?').next().unwrap_or("").to_string();
    let (rule, auth) = {
        let mut st = state.lock().unwrap();
        st.log.push(LoggedRequest { path: req.path.clone(), authorization: req.authorization.clone() });
        let rule = st
            .rules
            .iter()
            .rev()
            .find(|(suffix, _)| bare.ends_with(suffix.as_str()))
            .map(|(_, r)| r.clone())
            .unwrap_or(Rule::Pass);
        (rule, st.auth.clone())
    };
    if let Some((realm, token)) = auth {
        if req.authorization.as_deref() != Some(&format!("Bearer {token}")) {
            let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            let h = [("WWW-Authenticate", challenge(&realm, &bare)), ("Content-Type", "application/json".into())];
            respond(&mut stream, 401, &h, body).await;
            return;
        }
    }
    match rule {
        Rule::Pass => pass(&mut stream, &up, &req.path, None).await,
        Rule::FlipBit { byte_index } => pass(&mut stream, &up, &req.path, Some(byte_index)).await,
        Rule::Serve { status, body } => {
            respond(&mut stream, status, &[("Content-Type", "text/plain".into())], &body).await
        }
        Rule::Oversized { bytes } => oversized(&mut stream, bytes).await,
        Rule::Endless => stream_forever(&mut stream, 1024, Duration::from_millis(20)).await,
        Rule::Trickle { chunk, interval_ms } => {
            stream_forever(&mut stream, chunk, Duration::from_millis(interval_ms)).await
        }
        Rule::Delay { secs } => {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            pass(&mut stream, &up, &req.path, None).await
        }
        Rule::DelayMs { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            pass(&mut stream, &up, &req.path, None).await
        }
        Rule::Status(status) => {
            let body = format!("{{\"errors\":[{{\"code\":\"HOSTILE\",\"message\":\"status {status}\"}}]}}");
            respond(&mut stream, status, &[("Content-Type", "application/json".into())], body.as_bytes()).await
        }
        Rule::Unauthorized { realm_url } => {
            let h = [("WWW-Authenticate", challenge(&realm_url, &bare))];
            respond(&mut stream, 401, &h, br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#).await
        }
        Rule::Close => {}
        Rule::Rewrite { from, to } => pass(&mut stream, &up, &req.path.replacen(&from, &to, 1), None).await,
        Rule::Redirect { location } => {
            let h = [("Location", format!("{location}{}", req.path))];
            respond(&mut stream, 302, &h, b"").await
        }
    }
}

impl HostileServer {
    /// Start on 127.0.0.1:<free port>. With `None`, Pass-like rules answer 502.
    pub async fn start(upstream: Option<Upstream>) -> HostileServer {
        Self::start_with(upstream, None, "127.0.0.1:0").await
    }

    /// The same proxy over TLS with this certificate chain and key (PEM), e.g. where only an
    /// https:// server is accepted (TrustRoot). `url()` is then `https://127.0.0.1:PORT`.
    pub async fn start_tls(upstream: Option<Upstream>, cert_pem: &str, key_pem: &str) -> HostileServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().expect("cert PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_with(upstream, Some(acceptor), "127.0.0.1:0").await
    }

    /// Listening on `bind` (e.g. "0.0.0.0:0" to be reachable on a non-loopback address).
    pub async fn start_on(upstream: Option<Upstream>, bind: &str) -> HostileServer {
        Self::start_with(upstream, None, bind).await
    }

    async fn start_with(
        upstream: Option<Upstream>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        bind: &str,
    ) -> HostileServer {
        let up = upstream.map(|u| {
            let cert = reqwest::Certificate::from_pem(u.ca_pem.as_bytes()).expect("CA PEM");
            let client = reqwest::Client::builder()
                .tls_certs_only([cert])
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client");
            Upstream2 { url: u.url.trim_end_matches('/').to_string(), client }
        });
        let up = Arc::new(up);
        let listener = TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((sock, _)) = listener.accept().await else { continue };
                let (st, up) = (st.clone(), up.clone());
                match &tls {
                    None => {
                        conns.spawn(handle(sock, st, up));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        conns.spawn(async move {
                            if let Ok(stream) = acceptor.accept(sock).await {
                                handle(stream, st, up).await
                            }
                        });
                    }
                }
            }
        });
        HostileServer { addr, state, task, scheme }
    }

    /// Proxy in front of a running real server.
    pub async fn proxy(server: &NotaryServer) -> HostileServer {
        Self::start(Some(server.upstream())).await
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Rule for paths (query stripped) ending with `path_suffix`; the latest set wins;
    /// "" matches everything. Replaces an existing rule with the same suffix.
    pub fn set_rule(&self, path_suffix: &str, rule: Rule) {
        let mut st = self.state.lock().unwrap();
        st.rules.retain(|(s, _)| s != path_suffix);
        st.rules.push((path_suffix.to_string(), rule));
    }
    pub fn clear_rule(&self, path_suffix: &str) {
        self.state.lock().unwrap().rules.retain(|(s, _)| s != path_suffix);
    }
    pub fn clear_rules(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// From now on every request needs `Authorization: Bearer <token>`; otherwise 401 with
    /// `WWW-Authenticate: Bearer realm="<realm_url>",service="notary",scope="repository:<gun>:pull"`.
    pub fn require_bearer(&self, realm_url: &str, token: &str) {
        self.state.lock().unwrap().auth = Some((realm_url.to_string(), token.to_string()));
    }
    pub fn no_auth(&self) {
        self.state.lock().unwrap().auth = None;
    }

    /// Requested paths (with query), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.iter().map(|r| r.path.clone()).collect()
    }
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.state.lock().unwrap().log.clone()
    }
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registry token endpoint: GET /token?service=..&scope=.. -> 200 {"<field>":"<token>"}.
pub struct TokenServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<LoggedRequest>>>,
    task: JoinHandle<()>,
}

impl TokenServer {
    pub async fn start(token: &str) -> TokenServer {
        Self::start_with_field("token", token).await
    }

    /// `field` is the JSON key of the token, e.g. "token" or "access_token".
    pub async fn start_with_field(field: &str, token: &str) -> TokenServer {
        Self::start_on("127.0.0.1:0", field, token).await
    }

    /// Listening on `bind`, e.g. "0.0.0.0:0" to be reached on a non-loopback address
    /// (`realm_at(host)`).
    pub async fn start_on(bind: &str, field: &str, token: &str) -> TokenServer {
        let listener = TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lg = log.clone();
        let body = serde_json::json!({ field: token, "expires_in": 300 }).to_string();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((mut sock, _)) = listener.accept().await else { continue };
                let (lg, body) = (lg.clone(), body.clone());
                conns.spawn(async move {
                    let Some(req) = read_request(&mut sock).await else { return };
                    lg.lock()
                        .unwrap()
                        .push(LoggedRequest { path: req.path.clone(), authorization: req.authorization.clone() });
                    if req.path.split('?').next() == Some("/token") {
                        let h = [("Content-Type", "application/json".to_string())];
                        respond(&mut sock, 200, &h, body.as_bytes()).await;
                    } else {
                        respond(&mut sock, 404, &[], b"not found").await;
                    }
                });
            }
        });
        TokenServer { addr, log, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The realm as reached through `host` (an address of this machine).
    pub fn realm_at(&self, host: &str) -> String {
        format!("http://{host}:{}/token", self.addr.port())
    }
    /// The realm to put in a challenge: "http://127.0.0.1:PORT/token".
    pub fn realm(&self) -> String {
        format!("{}/token", self.url())
    }
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.lock().unwrap().clone()
    }
    pub fn basic_auth_seen(&self) -> bool {
        self.requests().iter().any(|r| r.authorization.as_deref().is_some_and(|a| a.starts_with("Basic ")))
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
