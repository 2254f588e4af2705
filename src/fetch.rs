//! The HTTP side of the engine: a Notary server client with a custom CA bundle, timeouts,
//! bounded reads, basic auth and the registry token flow.
//!
//! Credentials go only to the configured server and to the token realm it names, and only
//! over https or to this machine (loopback, where plain http never leaves the host: a
//! port-forward, a sidecar, the tests). Redirects are followed, but reqwest drops the
//! `Authorization` header whenever a redirect changes scheme, host or port, and a 401 that
//! comes from another host than the configured server is never answered with credentials.

mod tls;

pub use tls::{install_default_provider, provider as tls_provider};

use crate::engine::Source;
use crate::tuf::FetchError;
use futures::StreamExt;
use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Mutex;
use std::time::Duration;

/// Credentials for the Notary server (or the token service in front of it).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `https://host:port` (plain `http://` is accepted for tests and local proxies).
    pub server: String,
    /// PEM CA bundle; when set, only these roots are trusted for the server.
    pub ca_pem: Option<String>,
    pub credentials: Option<Credentials>,
    /// Whole-request timeout, body included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Where to record each request's outcome and duration, and the trust root label.
    pub metrics: Option<(std::sync::Arc<crate::telemetry::Metrics>, String)>,
}

impl ServerConfig {
    pub fn new(server: &str) -> Self {
        ServerConfig {
            server: server.trim_end_matches('/').to_string(),
            ca_pem: None,
            credentials: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            metrics: None,
        }
    }
}

/// A Notary server client. Cheap to share; tokens are cached per repository.
#[derive(Debug)]
pub struct NotaryHttp {
    client: reqwest::Client,
    config: ServerConfig,
    tokens: Mutex<HashMap<String, String>>,
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, params: Vec<(String, String)> },
}

/// Parses `Bearer realm="..",service="..",scope=".."` or `Basic realm=".."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut params = vec![];
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, rest) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        if key == "realm" {
            realm = Some(value);
        } else {
            params.push((key, value));
        }
        s = rest.trim_start_matches([',', ' ']);
    }
    Some(Challenge::Bearer { realm: realm?, params })
}

impl NotaryHttp {
    pub fn new(config: ServerConfig) -> Result<Self, String> {
        if !(config.server.starts_with("https://") || config.server.starts_with("http://")) {
            return Err(format!("server {:?} must be an https:// URL", config.server));
        }
        install_default_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("trustwatch/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            builder = builder.tls_backend_preconfigured(tls::client_config(pem)?);
        }
        let client = builder.build().map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(NotaryHttp { client, config, tokens: Mutex::new(HashMap::new()) })
    }

    pub fn server(&self) -> &str {
        &self.config.server
    }

    fn map_err(&self, path: &str, e: reqwest::Error) -> FetchError {
        let mut detail = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            detail = format!("{detail}: {s}");
            src = s.source();
        }
        let lower = detail.to_ascii_lowercase();
        let host = e.url().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| self.config.server.clone());
        if let Some(plain) = tls::explain(&e, &host, self.config.ca_pem.is_some()) {
            FetchError::Tls { detail: format!("{plain} ({detail})") }
        } else if e.is_timeout() || lower.contains("timed out") {
            FetchError::Timeout { path: path.into(), secs: self.config.timeout.as_secs() }
        } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            FetchError::Tls { detail }
        } else if e.is_connect() {
            FetchError::Connect { detail }
        } else {
            FetchError::Body { path: path.into(), detail }
        }
    }

    async fn send(&self, url: &str, path: &str, auth: Auth<'_>) -> Result<reqwest::Response, FetchError> {
        let mut req = self.client.get(url);
        req = match auth {
            Auth::None => req,
            Auth::Basic(c) => req.basic_auth(&c.username, Some(&c.password)),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        req.send().await.map_err(|e| self.map_err(path, e))
    }

    /// The registry token flow: GET realm?service=..&scope=.. (with basic auth when we
    /// have credentials) and read `token` or `access_token`.
    async fn token(
        &self,
        path: &str,
        realm: &str,
        params: &[(String, String)],
        gun: &str,
    ) -> Result<String, FetchError> {
        let mut query: Vec<(String, String)> = params.to_vec();
        if !query.iter().any(|(k, _)| k == "scope") {
            query.push(("scope".into(), format!("repository:{gun}:pull")));
        }
        let url = reqwest::Url::parse_with_params(realm, &query).map_err(|e| FetchError::Auth {
            path: path.into(),
            status: 401,
            detail: format!("token realm {realm:?} is not a URL: {e}"),
        })?;
        let mut req = self.client.get(url.clone());
        if let Some(c) = &self.config.credentials {
            if !may_carry_credentials(&url) {
                return Err(FetchError::Auth {
                    path: path.into(),
                    status: 401,
                    detail: format!(
                        "the server names the token realm {realm}, which is plain http off this machine: credentials \
                         are only sent over https (or to a loopback address)"
                    ),
                });
            }
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req.send().await.map_err(|e| self.map_err(path, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(FetchError::Auth {
                path: path.into(),
                status,
                detail: format!("token service {realm} answered HTTP {status}"),
            });
        }
        let body = read_bounded(resp, path, 64 * 1024).await.map_err(|e| match e {
            Ok(e) => e,
            Err(e) => self.map_err(path, e),
        })?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| FetchError::Auth {
            path: path.into(),
            status,
            detail: format!("token service reply is not JSON: {e}"),
        })?;
        v.get("token").or_else(|| v.get("access_token")).and_then(|t| t.as_str()).map(str::to_string).ok_or_else(|| {
            FetchError::Auth { path: path.into(), status, detail: "token service reply has no token".into() }
        })
    }
}

/// Whether credentials may be sent to `url`: over https, or over plain http to a loopback
/// address, where they never leave this machine.
pub fn may_carry_credentials(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    match url.scheme() {
        "https" => true,
        "http" => {
            host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

enum Auth<'a> {
    None,
    Basic(&'a Credentials),
    Bearer(&'a str),
}

/// Reads at most `limit` bytes of the body; a longer body is an error, not a truncation.
async fn read_bounded(
    resp: reqwest::Response,
    path: &str,
    limit: u64,
) -> Result<Vec<u8>, Result<FetchError, reqwest::Error>> {
    if let Some(len) = resp.content_length() {
        if len > limit {
            return Err(Ok(FetchError::TooLarge { path: path.into(), limit }));
        }
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Err)?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(Ok(FetchError::TooLarge { path: path.into(), limit }));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl Source for NotaryHttp {
    async fn fetch(&self, gun: &str, name: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let started = std::time::Instant::now();
        let result = self.fetch_uninstrumented(gun, name, limit).await;
        if let Some((metrics, trust_root)) = &self.config.metrics {
            let outcome = crate::telemetry::notary_outcome(&result);
            metrics.record_notary_request(trust_root, outcome, started.elapsed().as_secs_f64());
        }
        result
    }
}

impl NotaryHttp {
    async fn fetch_uninstrumented(&self, gun: &str, name: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let path = format!("/v2/{gun}/_trust/tuf/{name}");
        let url = format!("{}{path}", self.config.server);
        let cached = self.tokens.lock().expect("token cache poisoned").get(gun).cloned();
        let mut resp = match (&cached, &self.config.credentials) {
            (Some(t), _) => self.send(&url, &path, Auth::Bearer(t)).await?,
            (None, _) => self.send(&url, &path, Auth::None).await?,
        };
        // A redirect may have led elsewhere: only the configured server's own challenge is
        // answered, or any host it redirects to could collect the credentials.
        let foreign_challenge = |resp: &reqwest::Response| {
            let configured = reqwest::Url::parse(&url).ok().map(|u| u.origin());
            (resp.status().as_u16() == 401 && configured.as_ref() != Some(&resp.url().origin())).then(|| {
                FetchError::Auth {
                    path: path.clone(),
                    status: 401,
                    detail: format!(
                        "{} asks for credentials after a redirect from the configured server; they are only sent to \
                         the configured server ({})",
                        resp.url().origin().ascii_serialization(),
                        self.config.server
                    ),
                }
            })
        };
        if resp.status().as_u16() == 401 {
            if let Some(e) = foreign_challenge(&resp) {
                return Err(e);
            }
            let challenge = resp
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .and_then(parse_challenge);
            resp = match challenge {
                Some(Challenge::Bearer { realm, params }) => {
                    let token = self.token(&path, &realm, &params, gun).await?;
                    self.tokens.lock().expect("token cache poisoned").insert(gun.to_string(), token.clone());
                    self.send(&url, &path, Auth::Bearer(&token)).await?
                }
                Some(Challenge::Basic) => match &self.config.credentials {
                    Some(_) if !reqwest::Url::parse(&url).is_ok_and(|u| may_carry_credentials(&u)) => {
                        return Err(FetchError::Auth {
                            path,
                            status: 401,
                            detail: "the server asks for a password over plain http off this machine: credentials \
                                     are only sent over https (or to a loopback address)"
                                .into(),
                        });
                    }
                    Some(c) => self.send(&url, &path, Auth::Basic(c)).await?,
                    None => {
                        return Err(FetchError::Auth {
                            path,
                            status: 401,
                            detail: "the server requires a username and password; none were configured".into(),
                        });
                    }
                },
                None => {
                    return Err(FetchError::Auth {
                        path,
                        status: 401,
                        detail: "no usable WWW-Authenticate challenge".into(),
                    });
                }
            };
            // The answer to our credentials may itself have been redirected elsewhere.
            if let Some(e) = foreign_challenge(&resp) {
                return Err(e);
            }
        }
        let status = resp.status().as_u16();
        match status {
            200 => {}
            404 => return Ok(None),
            401 | 403 => {
                self.tokens.lock().expect("token cache poisoned").remove(gun);
                return Err(FetchError::Auth { path, status, detail: "access denied".into() });
            }
            _ => return Err(FetchError::Status { path, status }),
        }
        read_bounded(resp, &path, limit).await.map(Some).map_err(|e| match e {
            Ok(e) => e,
            Err(e) => self.map_err(&path, e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed_with_quoted_and_bare_values() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="notary",scope="repository:a/b:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                params: vec![("service".into(), "notary".into()), ("scope".into(), "repository:a/b:pull".into())]
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "a bearer challenge needs a realm");
    }

    #[test]
    fn credentials_go_over_https_or_stay_on_this_machine() {
        let ok =
            ["https://auth.example.com/token", "http://127.0.0.1:5001/token", "http://localhost/t", "http://[::1]:80/"];
        for u in ok {
            assert!(may_carry_credentials(&reqwest::Url::parse(u).unwrap()), "{u}");
        }
        for u in ["http://auth.example.com/token", "http://192.0.2.2:5001/token", "http://[2001:db8::1]/", "ftp://x/"] {
            assert!(!may_carry_credentials(&reqwest::Url::parse(u).unwrap()), "{u}");
        }
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = Credentials { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn non_http_servers_and_bad_ca_bundles_are_refused() {
        assert!(NotaryHttp::new(ServerConfig::new("ftp://x")).is_err());
        let mut c = ServerConfig::new("https://x");
        c.ca_pem = Some("not pem".into());
        assert!(NotaryHttp::new(c).unwrap_err().contains("CA bundle"));
    }
}
