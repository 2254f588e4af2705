//! A real `docker-registry` (distribution, Debian package) on loopback, and pushes of small
//! OCI images over the Registry HTTP API (no Docker engine needed).

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    /// Basic credentials the registry wants (pushes and lookups present them).
    credentials: Option<(String, String)>,
}

/// What the registry reports for a pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `sha256:<hex>` from the `Docker-Content-Digest` header.
    pub digest: String,
    /// Manifest size in bytes (what `notary addhash` signs with the digest).
    pub size: u64,
}

impl Pushed {
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with(|_| String::new())
    }

    /// A registry whose config.yml ends with the YAML `extra` returns (given the registry's
    /// own directory, for files such as an htpasswd or a token root bundle), e.g. an `auth:`
    /// section. `/v2/` may then answer 401: the registry counts as started once it answers.
    pub fn start_with(extra: impl FnOnce(&Path) -> String) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.path().join("config.yml");
        let extra = extra(dir.path());
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("docker-registry is installed (make deps)");
        let r = Registry { child, port, _dir: dir, credentials: None };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !["200", "401"]
            .contains(&curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("{}/v2/", r.url())]).0.as_str())
        {
            assert!(Instant::now() < deadline, "docker-registry did not start: {}", r.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// A registry that wants these basic credentials (htpasswd); this handle presents them.
    pub fn with_basic_auth(user: &str, password: &str) -> Registry {
        let mut r = Self::start_with(|dir| super::oci::htpasswd_auth(dir, user, password));
        r.credentials = Some((user.to_string(), password.to_string()));
        r
    }

    /// A docker `config.json` holding this registry's credentials (empty without).
    pub fn docker_config(&self) -> String {
        use base64::Engine as _;
        let auths = match &self.credentials {
            Some((u, p)) => serde_json::json!({ self.host(): {
                "auth": base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            }}),
            None => serde_json::json!({}),
        };
        serde_json::json!({ "auths": auths }).to_string()
    }

    fn auth_args(&self) -> Vec<String> {
        match &self.credentials {
            Some((u, p)) => vec!["-u".into(), format!("{u}:{p}")],
            None => vec![],
        }
    }

    /// `127.0.0.1:<port>`: the registry host as it appears in image references and GUNs.
    /// The registry process (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }

    fn push_blob(&self, repo: &str, bytes: &[u8]) -> (String, u64) {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let (headers, _) = self.curl(&[
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &format!("{}/v2/{repo}/blobs/uploads/", self.url()),
        ]);
        let location = headers
            .lines()
            .find_map(|l| l.strip_prefix("Location: ").or_else(|| l.strip_prefix("location: ")))
            .unwrap_or_else(|| panic!("no upload location: {headers}"))
            .trim()
            .to_string();
        let location = if location.starts_with("http") { location } else { format!("{}{location}", self.url()) };
        let sep = if location.contains('?') { '&' } else { '?' };
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let (code, _) = self.curl_upload(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            file.path(),
            "application/octet-stream",
        );
        assert_eq!(code, "201", "blob upload of {digest}");
        (digest, bytes.len() as u64)
    }

    /// Pushes a one-layer OCI image whose layer holds `content`, tagged `tag`.
    pub fn push_image(&self, repo: &str, tag: &str, content: &str) -> Pushed {
        let (layer, layer_size) = self.push_blob(repo, content.as_bytes());
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#);
        let (cfg, cfg_size) = self.push_blob(repo, config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg}","size":{cfg_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &manifest).unwrap();
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.url());
        let (code, _) = self.curl_upload("PUT", &url, file.path(), "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(code, "201", "manifest push of {repo}:{tag}: {}", self.log());
        self.resolve(repo, tag).expect("the tag resolves after the push")
    }

    /// The digest the registry serves for `repo:tag` now (what a pull would run).
    pub fn resolve(&self, repo: &str, tag: &str) -> Option<Pushed> {
        let (headers, _) = self.curl(&[
            "-s",
            "-I",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("{}/v2/{repo}/manifests/{tag}", self.url()),
        ]);
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        Some(Pushed { digest: header("Docker-Content-Digest")?, size: header("Content-Length")?.parse().ok()? })
    }

    /// The config digest of `repo:tag` (what a runtime reports as the image ID, `sha256:..`).
    pub fn config_digest(&self, repo: &str, tag: &str) -> String {
        let (_, body) = self.curl(&[
            "-s",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("{}/v2/{repo}/manifests/{tag}", self.url()),
        ]);
        let manifest: serde_json::Value = serde_json::from_slice(&body).expect("manifest JSON");
        manifest["config"]["digest"].as_str().expect("config digest").to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl").args(args).output().expect("curl");
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.stdout)
}

impl Registry {
    fn curl(&self, args: &[&str]) -> (String, Vec<u8>) {
        let mut all: Vec<String> = self.auth_args();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        curl(&all)
    }

    fn curl_upload(&self, method: &str, url: &str, file: &Path, content_type: &str) -> (String, String) {
        curl_upload(&self.auth_args(), method, url, file, content_type)
    }
}

fn curl_upload(auth: &[String], method: &str, url: &str, file: &Path, content_type: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(auth)
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(url)
        .output()
        .expect("curl");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
