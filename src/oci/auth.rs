//! Registry credentials from a docker `config.json` / `.dockerconfigjson`, and the bearer
//! tokens obtained with them.
//!
//! Host matching follows the docker CLI and the kubelet: keys are normalized to a host
//! (`https://index.docker.io/v1/` and `index.docker.io` are Docker Hub, a scheme and path
//! are dropped), ports must match, `*.example.com` matches one label, and a key with a path
//! (`registry.example.com/team`) only matches repositories under that path.

use crate::fetch::Credentials;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The registry host every Docker Hub alias maps to in credentials.
const DOCKER_HUB_KEY: &str = "docker.io";

/// Parsed `auths` of a docker config file. `Debug` shows hosts only, never secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    /// (normalized host, path prefix) -> credentials.
    entries: Vec<(String, String, Credentials)>,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<String> =
            self.entries.iter().map(|(h, p, _)| if p.is_empty() { h.clone() } else { format!("{h}/{p}") }).collect();
        f.debug_struct("DockerConfig").field("hosts", &hosts).finish()
    }
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl DockerConfig {
    /// Parses `config.json` / `.dockerconfigjson` (`{"auths": {...}}`) or the legacy
    /// `.dockercfg` (the `auths` map itself). Entries without usable credentials (a
    /// `credsStore` placeholder, an `identitytoken` only) are skipped.
    pub fn parse(bytes: &[u8]) -> Result<DockerConfig, String> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("docker config is not JSON: {e}"))?;
        let auths = match v.get("auths") {
            Some(a) => a.clone(),
            None if v.get("credsStore").is_some() || v.get("credHelpers").is_some() => serde_json::json!({}),
            None => v,
        };
        let auths: BTreeMap<String, AuthEntry> =
            serde_json::from_value(auths).map_err(|e| format!("docker config `auths` is malformed: {e}"))?;
        let mut entries = vec![];
        for (key, entry) in auths {
            let creds = match (&entry.auth, &entry.username, &entry.password) {
                (Some(a), _, _) if !a.is_empty() => {
                    let raw = B64
                        .decode(a.trim().as_bytes())
                        .map_err(|_| format!("docker config entry {key:?}: `auth` is not base64"))?;
                    let text = String::from_utf8(raw)
                        .map_err(|_| format!("docker config entry {key:?}: `auth` is not UTF-8"))?;
                    let (u, p) = text
                        .split_once(':')
                        .ok_or_else(|| format!("docker config entry {key:?}: `auth` is not user:password"))?;
                    Credentials { username: u.to_string(), password: p.to_string() }
                }
                (_, Some(u), Some(p)) if !u.is_empty() => Credentials { username: u.clone(), password: p.clone() },
                _ => continue,
            };
            let (host, path) = normalize_key(&key);
            entries.push((host, path, creds));
        }
        Ok(DockerConfig { entries })
    }

    /// Adds credentials for a host (or `host/path`), e.g. from flags.
    pub fn insert(&mut self, key: &str, credentials: Credentials) {
        let (host, path) = normalize_key(key);
        self.entries.retain(|(h, p, _)| !(h == &host && p == &path));
        self.entries.push((host, path, credentials));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds every entry of `other`, which wins where both name the same registry and path.
    pub fn merge(&mut self, other: DockerConfig) {
        for (host, path, credentials) in other.entries {
            self.entries.retain(|(h, p, _)| !(h == &host && p == &path));
            self.entries.push((host, path, credentials));
        }
    }

    /// Credentials for a registry host (`ghcr.io`, `localhost:5000`, `docker.io`), from
    /// keys without a path. An exact key beats a wildcard.
    pub fn credentials_for(&self, host: &str) -> Option<&Credentials> {
        let host = normalize_host(host);
        self.best(&host, None)
    }

    /// Credentials for a repository: keys with a path match repositories under it, and
    /// the longest matching path wins.
    pub fn credentials_for_repository(&self, host: &str, repository: &str) -> Option<&Credentials> {
        let host = normalize_host(host);
        self.best(&host, Some(repository))
    }

    fn best(&self, host: &str, repository: Option<&str>) -> Option<&Credentials> {
        self.entries
            .iter()
            .filter_map(|(h, p, c)| {
                let host_score = if h == host {
                    2
                } else if host_matches_wildcard(h, host) {
                    1
                } else {
                    return None;
                };
                let path_score = match (p.is_empty(), repository) {
                    (true, _) => 0,
                    (false, None) => return None,
                    (false, Some(r)) if r == p || r.starts_with(&format!("{p}/")) => p.len() + 1,
                    (false, Some(_)) => return None,
                };
                Some(((path_score, host_score), c))
            })
            .max_by_key(|(score, _)| *score)
            .map(|(_, c)| c)
    }
}

/// `https://index.docker.io/v1/` -> (`docker.io`, ``); `reg.example.com/team` -> (host, `team`).
fn normalize_key(key: &str) -> (String, String) {
    let k = key.trim();
    let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
    let (host, path) = k.split_once('/').unwrap_or((k, ""));
    let path = path.trim_matches('/');
    let host = normalize_host(host);
    // The docker CLI's Docker Hub key carries an API version path, not a repository.
    let path = if host == DOCKER_HUB_KEY && (path == "v1" || path == "v2") { "" } else { path };
    let path = if path == "v1" || path == "v2" { "" } else { path };
    (host, path.to_string())
}

fn normalize_host(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB_KEY.to_string()
        }
        _ => h,
    }
}

/// `*.example.com` matches `a.example.com` (one label, same port), as the kubelet does.
fn host_matches_wildcard(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix("*.") else { return false };
    match host.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == suffix,
        None => false,
    }
}

/// Bearer tokens per (realm, service, scope), until they expire.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let mut t = self.tokens.lock().expect("token cache poisoned");
        match t.get(key) {
            Some((token, until)) if Instant::now() < *until => Some(token.clone()),
            Some(_) => {
                t.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, key: String, token: String, lifetime: Duration) {
        let mut t = self.tokens.lock().expect("token cache poisoned");
        // Bounded: registries hand out one token per repository scope.
        if t.len() >= 4096 {
            let now = Instant::now();
            t.retain(|_, (_, until)| *until > now);
            if t.len() >= 4096 {
                t.clear();
            }
        }
        t.insert(key, (token, Instant::now() + lifetime));
    }

    pub(crate) fn remove(&self, key: &str) {
        self.tokens.lock().expect("token cache poisoned").remove(key);
    }
}

/// The lifetime to cache a token for. Docker's token specification: `expires_in` is "the
/// duration in seconds since the token was issued that it will remain valid. When omitted,
/// this defaults to 60 seconds." We keep it for 90% of that, so that it is not used at the
/// edge of its validity.
pub(crate) fn token_lifetime(expires_in: Option<u64>) -> Duration {
    let secs = expires_in.unwrap_or(60).clamp(1, 24 * 3600);
    Duration::from_millis(secs * 900)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    #[test]
    fn docker_hub_aliases_and_auth_fields_are_read() {
        let cfg = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"ghcr.io":{{"username":"bot","password":"tok"}},"localhost:5000":{{"auth":"{}"}},"https://quay.io":{{}}}}}}"#,
            b64("hubuser:hubpass"),
            b64("l:p:with:colons")
        );
        let c = DockerConfig::parse(cfg.as_bytes()).unwrap();
        assert_eq!(c.credentials_for("docker.io").unwrap().username, "hubuser");
        assert_eq!(c.credentials_for("registry-1.docker.io").unwrap().password, "hubpass");
        assert_eq!(c.credentials_for("index.docker.io").unwrap().username, "hubuser");
        assert_eq!(c.credentials_for("GHCR.io").unwrap().password, "tok");
        assert_eq!(c.credentials_for("localhost:5000").unwrap().password, "p:with:colons");
        assert!(c.credentials_for("localhost:5001").is_none(), "ports must match");
        assert!(c.credentials_for("localhost").is_none());
        assert!(c.credentials_for("quay.io").is_none(), "an empty entry is no credential");
        assert!(c.credentials_for("evil.ghcr.io").is_none());
    }

    #[test]
    fn wildcards_match_one_label_and_paths_match_repositories_under_them() {
        let cfg = format!(
            r#"{{"auths":{{"*.example.com":{{"auth":"{}"}},"reg.example.com/team":{{"auth":"{}"}},"reg.example.com":{{"auth":"{}"}}}}}}"#,
            b64("wild:1"),
            b64("team:2"),
            b64("exact:3")
        );
        let c = DockerConfig::parse(cfg.as_bytes()).unwrap();
        assert_eq!(c.credentials_for("a.example.com").unwrap().username, "wild");
        assert!(c.credentials_for("a.b.example.com").is_none());
        assert!(c.credentials_for("example.com").is_none());
        assert_eq!(c.credentials_for("reg.example.com").unwrap().username, "exact");
        assert_eq!(c.credentials_for_repository("reg.example.com", "team/app").unwrap().username, "team");
        assert_eq!(c.credentials_for_repository("reg.example.com", "teamster/app").unwrap().username, "exact");
        assert_eq!(c.credentials_for_repository("reg.example.com", "other").unwrap().username, "exact");
    }

    #[test]
    fn legacy_dockercfg_and_broken_files() {
        let cfg = format!(r#"{{"registry.example.com":{{"auth":"{}"}}}}"#, b64("u:p"));
        assert_eq!(
            DockerConfig::parse(cfg.as_bytes()).unwrap().credentials_for("registry.example.com").unwrap().username,
            "u"
        );
        assert!(DockerConfig::parse(b"{\"credsStore\":\"desktop\"}").unwrap().is_empty());
        assert!(DockerConfig::parse(b"not json").is_err());
        assert!(DockerConfig::parse(br#"{"auths":{"x":{"auth":"%%%"}}}"#).unwrap_err().contains("base64"));
        assert!(
            DockerConfig::parse(format!(r#"{{"auths":{{"x":{{"auth":"{}"}}}}}}"#, b64("nocolon")).as_bytes()).is_err()
        );
    }

    #[test]
    fn debug_output_names_hosts_and_never_secrets() {
        let cfg = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#, b64("someone:hunter2"));
        let c = DockerConfig::parse(cfg.as_bytes()).unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("ghcr.io") && !d.contains("hunter2") && !d.contains("someone"), "{d}");
    }

    #[test]
    fn tokens_expire_and_default_to_sixty_seconds() {
        assert_eq!(token_lifetime(None), Duration::from_secs(54));
        let cache = TokenCache::default();
        cache.put("k".into(), "t".into(), Duration::from_secs(60));
        assert_eq!(cache.get("k").as_deref(), Some("t"));
        cache.put("k".into(), "t".into(), Duration::ZERO);
        assert_eq!(cache.get("k"), None);
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn a_merged_pod_configuration_holds_the_pods_registry() {
        let pod = br#"{"auths":{"127.0.0.1:32879":{"auth":"Y2k6cHVsbC1zZWNyZXQtcGFzc3dvcmQ="}}}"#;
        let mut c = DockerConfig::default();
        c.merge(DockerConfig::parse(pod).unwrap());
        let got = c.credentials_for_repository("127.0.0.1:32879", "shop/private").expect("credentials");
        assert_eq!((got.username.as_str(), got.password.as_str()), ("ci", "pull-secret-password"));
    }
}
