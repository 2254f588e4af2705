//! Real notary-server / notary-signer processes and the real `notary` CLI. All blocking.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

/// Passphrase for every key the CLI creates or imports.
pub const TEST_PASSPHRASE: &str = "trustwatch-test-passphrase";
/// How long to wait for a server to become healthy.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `trust_service: local` (timestamp key ed25519).
    Local,
    /// notary-signer over gRPC + mutual TLS (timestamp key ecdsa).
    WithSigner,
}

/// Where a proxy should forward to.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub url: String,
    pub ca_pem: String,
}

/// A running notary-server (and notary-signer for `WithSigner`). Children are killed on Drop.
pub struct NotaryServer {
    dir: tempfile::TempDir,
    variant: Variant,
    port: u16,
    ca_path: PathBuf,
    server: Child,
    signer: Option<Child>,
}

fn run_checked(cmd: &mut Command) -> std::process::Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "command failed ({}): {cmd:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Generate a P-256 CA plus a leaf for localhost/127.0.0.1 (serverAuth+clientAuth) in `dir`.
fn gen_tls(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run_checked(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args(["-keyout", s(&dir.join("ca.key")), "-out", s(&dir.join("ca.crt"))])
            .args(["-days", "30", "-subj", "/CN=trustwatch-test-ca"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    run_checked(
        Command::new("openssl")
            .args(["req", "-new"])
            .args(ec)
            .args(["-keyout", s(&dir.join("server.key")), "-out", s(&dir.join("server.csr"))])
            .args(["-subj", "/CN=localhost"]),
    );
    fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    run_checked(
        Command::new("openssl")
            .args(["x509", "-req", "-in", s(&dir.join("server.csr"))])
            .args(["-CA", s(&dir.join("ca.crt")), "-CAkey", s(&dir.join("ca.key"))])
            .args(["-CAcreateserial", "-out", s(&dir.join("server.crt")), "-days", "30"])
            .args(["-extfile", s(&dir.join("leaf.ext"))]),
    );
}

fn spawn_logged(bin: &str, config: &Path, log: &Path) -> Child {
    let f = fs::File::create(log).unwrap();
    Command::new(bin)
        .arg("-config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"))
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn read_lossy(p: &Path) -> String {
    fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

enum Wait {
    Ready,
    Exited,
    TimedOut,
}

/// Poll `ready` until true, the child exits, or the deadline passes.
fn wait_for(child: &mut Child, deadline: Instant, mut ready: impl FnMut() -> bool) -> Wait {
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Wait::Exited;
        }
        if ready() {
            return Wait::Ready;
        }
        if Instant::now() > deadline {
            return Wait::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}

/// The TLS certificate the server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCert {
    /// A leaf for localhost/127.0.0.1 issued by a test CA; `ca_pem()` is the CA.
    CaSigned,
    /// What `openssl req -x509` makes by default: a self-signed certificate with
    /// `basicConstraints=critical,CA:TRUE`, for this subjectAltName (e.g. "IP:127.0.0.1").
    /// `ca_pem()` is that same certificate.
    SelfSignedCa { san: &'static str },
    /// A CA-signed leaf for localhost/127.0.0.1 that expired in 2020 (`openssl ca -enddate`).
    ExpiredLeaf,
}

/// A self-signed CA:TRUE certificate (the openssl default for `req -x509`), also used as CA.
fn gen_self_signed(dir: &Path, san: &str) {
    run_checked(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-keyout", s(&dir.join("server.key")), "-out", s(&dir.join("server.crt"))])
            .args(["-days", "30", "-subj", "/CN=notary-self-signed"])
            .args(["-addext", &format!("subjectAltName={san}")]),
    );
    fs::copy(dir.join("server.crt"), dir.join("ca.crt")).unwrap();
}

/// Replaces the leaf with one issued by the same CA but valid only in January 2020.
fn gen_expired_leaf(dir: &Path) {
    let ca = dir.join("openssl-ca");
    fs::create_dir_all(&ca).unwrap();
    fs::write(ca.join("index.txt"), "").unwrap();
    fs::write(ca.join("serial"), "01\n").unwrap();
    fs::write(
        ca.join("ca.cnf"),
        "[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\n\
         default_md = sha256\npolicy = p\nunique_subject = no\n[ p ]\ncommonName = supplied\n[ ext ]\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    run_checked(
        Command::new("openssl")
            .current_dir(&ca)
            .args(["ca", "-batch", "-config", "ca.cnf", "-extensions", "ext"])
            .args(["-cert", s(&dir.join("ca.crt")), "-keyfile", s(&dir.join("ca.key"))])
            .args(["-in", s(&dir.join("server.csr")), "-out", s(&dir.join("server.crt"))])
            .args(["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"]),
    );
}

impl NotaryServer {
    /// Start a fresh server (own tempdir, CA, ports, memory storage). Panics with logs on failure.
    pub fn start(variant: Variant) -> NotaryServer {
        Self::start_with_cert(variant, ServerCert::CaSigned)
    }

    /// Start a fresh server presenting this kind of TLS certificate.
    pub fn start_with_cert(variant: Variant, cert: ServerCert) -> NotaryServer {
        let dir = tempfile::Builder::new().prefix("notary-srv-").tempdir().unwrap();
        let d = dir.path().to_path_buf();
        match cert {
            ServerCert::CaSigned => gen_tls(&d),
            ServerCert::SelfSignedCa { san } => gen_self_signed(&d, san),
            ServerCert::ExpiredLeaf => {
                gen_tls(&d);
                gen_expired_leaf(&d);
            }
        }
        // A certificate made to fail verification is probed without verifying it.
        let verified_probe = matches!(cert, ServerCert::CaSigned);
        let ca_path = d.join("ca.crt");
        let (key, crt) = (d.join("server.key"), d.join("server.crt"));
        let server_log = d.join("server.log");
        let signer_log = d.join("signer.log");
        let deadline = Instant::now() + START_TIMEOUT;

        for attempt in 0..5 {
            // ---- signer ----
            let mut signer = None;
            let mut signer_port = 0;
            if variant == Variant::WithSigner {
                signer_port = free_port();
                let cfg = serde_json::json!({
                    "server": {"grpc_addr": format!("127.0.0.1:{signer_port}"),
                               "tls_cert_file": s(&crt), "tls_key_file": s(&key),
                               "client_ca_file": s(&ca_path)},
                    "logging": {"level": "info"},
                    "storage": {"backend": "memory"}
                });
                let p = d.join("signer.json");
                fs::write(&p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
                let mut child = spawn_logged("notary-signer", &p, &signer_log);
                let addr = format!("127.0.0.1:{signer_port}");
                match wait_for(&mut child, deadline, || TcpStream::connect(&addr).is_ok()) {
                    Wait::Ready => signer = Some(child),
                    w => {
                        kill(&mut child);
                        let log = read_lossy(&signer_log);
                        if matches!(w, Wait::Exited) && attempt < 4 && log.contains("in use") {
                            continue;
                        }
                        panic!("notary-signer did not start (attempt {attempt}); log:\n{log}");
                    }
                }
            }
            // ---- server ----
            let port = free_port();
            let trust_service = match variant {
                Variant::Local => serde_json::json!({"type": "local"}),
                Variant::WithSigner => serde_json::json!({
                    "type": "remote", "hostname": "127.0.0.1", "port": signer_port.to_string(),
                    "key_algorithm": "ecdsa", "tls_ca_file": s(&ca_path),
                    "tls_client_cert": s(&crt), "tls_client_key": s(&key)
                }),
            };
            let cfg = serde_json::json!({
                "server": {"http_addr": format!("127.0.0.1:{port}"),
                           "tls_key_file": s(&key), "tls_cert_file": s(&crt)},
                "trust_service": trust_service,
                "storage": {"backend": "memory"},
                "logging": {"level": "info"}
            });
            let p = d.join("server.json");
            fs::write(&p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
            let mut child = spawn_logged("notary-server", &p, &server_log);
            let health = format!("https://127.0.0.1:{port}/_notary_server/health");
            let ready = || {
                if verified_probe {
                    fetch_raw_url(&health, Some(&ca_path)).0 == 200
                } else {
                    fetch_insecure(&health) == 200
                }
            };
            match wait_for(&mut child, deadline, ready) {
                Wait::Ready => {
                    // a signer whose port was stolen may have answered the TCP probe and died
                    let signer_died = signer.as_mut().is_some_and(|sg| !matches!(sg.try_wait(), Ok(None)));
                    if !signer_died {
                        return NotaryServer { dir, variant, port, ca_path, server: child, signer };
                    }
                    kill(&mut child);
                    if attempt < 4 {
                        continue;
                    }
                    panic!("notary-signer died; log:\n{}", read_lossy(&signer_log));
                }
                w => {
                    kill(&mut child);
                    if let Some(mut sg) = signer {
                        kill(&mut sg);
                    }
                    let log = read_lossy(&server_log);
                    if matches!(w, Wait::Exited) && attempt < 4 && log.contains("in use") {
                        continue;
                    }
                    panic!(
                        "notary-server did not become healthy (attempt {attempt}); server log:\n{log}\nsigner log:\n{}",
                        read_lossy(&signer_log)
                    );
                }
            }
        }
        unreachable!()
    }

    /// The notary-server process and, when it runs one, its notary-signer (benchmarks read
    /// their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.server.id()).chain(self.signer.as_ref().map(Child::id)).collect()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn variant(&self) -> Variant {
        self.variant
    }
    /// The notary-server process (to stop it with SIGSTOP and resume it, keeping its data).
    pub fn server_pid(&self) -> u32 {
        self.server.id()
    }
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }
    pub fn ca_pem(&self) -> String {
        fs::read_to_string(&self.ca_path).unwrap()
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn server_log(&self) -> String {
        read_lossy(&self.dir.path().join("server.log"))
    }
    pub fn signer_log(&self) -> String {
        read_lossy(&self.dir.path().join("signer.log"))
    }
    pub fn upstream(&self) -> Upstream {
        Upstream { url: self.url(), ca_pem: self.ca_pem() }
    }
}

impl Drop for NotaryServer {
    fn drop(&mut self) {
        kill(&mut self.server);
        if let Some(sg) = self.signer.as_mut() {
            kill(sg);
        }
    }
}

/// Status of a GET that does not verify the server certificate (readiness probes only).
fn fetch_insecure(url: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", url])
        .stdin(Stdio::null())
        .output()
        .expect("spawn curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Blocking GET with curl. Returns (status, body); status 0 means no HTTP answer at all.
pub fn fetch_raw_url(url: &str, ca_path: Option<&Path>) -> (u16, Vec<u8>) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-o"]).arg(body.path());
    cmd.args(["-w", "%{http_code}"]);
    if let Some(ca) = ca_path {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.arg(url).stdin(Stdio::null()).output().expect("spawn curl");
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (status, fs::read(body.path()).unwrap_or_default())
}

/// Blocking GET of `path` (e.g. "/v2/GUN/_trust/tuf/timestamp.json") against the real server.
pub fn fetch_raw(server: &NotaryServer, path: &str) -> (u16, Vec<u8>) {
    fetch_raw_url(&format!("{}{}", server.url(), path), Some(server.ca_path()))
}

/// "/v2/<gun>/_trust/tuf/<role>.json"
pub fn metadata_path(gun: &str, role: &str) -> String {
    format!("/v2/{gun}/_trust/tuf/{role}.json")
}

/// sha256 hex of `seed`: deterministic fake digests for `add_hash`.
pub fn sha_hex(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ecdsa,
    Rsa,
}

#[derive(Clone, Debug)]
pub struct DelegationKey {
    pub name: String,
    pub kind: KeyKind,
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
    pub cert_pem: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTarget {
    pub name: String,
    pub digest_hex: String,
    pub size: u64,
    /// "targets", "targets/releases", ... ("" from `lookup`, which does not print it)
    pub role: String,
}

#[derive(Clone, Debug)]
pub struct CmdOutput {
    pub cmdline: String,
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

static CLIENT_SEQ: AtomicUsize = AtomicUsize::new(0);

/// The real `notary` CLI with its own trust dir (own tempdir) and passphrases in the env.
pub struct NotaryClient {
    dir: tempfile::TempDir,
    last: Mutex<Option<CmdOutput>>,
}

impl NotaryClient {
    pub fn new(server: &NotaryServer) -> NotaryClient {
        Self::with_remote(&server.url(), &server.ca_pem())
    }

    pub fn with_remote(url: &str, ca_pem: &str) -> NotaryClient {
        let n = CLIENT_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new().prefix(&format!("notary-cli-{n}-")).tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("ca.crt"), ca_pem).unwrap();
        fs::create_dir_all(d.join("trust")).unwrap();
        let cfg = serde_json::json!({
            "trust_dir": s(&d.join("trust")),
            "remote_server": {"url": url, "root_ca": s(&d.join("ca.crt"))}
        });
        fs::write(d.join("config.json"), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        NotaryClient { dir, last: Mutex::new(None) }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.path().join("trust")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }
    /// stderr of the most recent command run by this client: logrus warnings such as
    /// `level=warning msg="... valid signatures did not meet threshold for targets/releases"`.
    pub fn last_stderr(&self) -> String {
        self.last_output().map(|o| o.stderr).unwrap_or_default()
    }
    /// stdout of the most recent command: note that `* fatal: ...` errors go to STDOUT.
    pub fn last_stdout(&self) -> String {
        self.last_output().map(|o| o.stdout).unwrap_or_default()
    }
    pub fn last_output(&self) -> Option<CmdOutput> {
        self.last.lock().unwrap().clone()
    }

    /// Run `notary -c CONFIG <args>`; never panics on a non-zero exit.
    pub fn try_run(&self, args: &[&str], stdin: Option<&str>) -> CmdOutput {
        let mut cmd = Command::new("notary");
        cmd.arg("-c").arg(self.config_path()).args(args);
        cmd.current_dir(self.dir.path()).env("HOME", self.dir.path());
        for v in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
            cmd.env(format!("NOTARY_{v}_PASSPHRASE"), TEST_PASSPHRASE);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("spawn notary");
        if let Some(input) = stdin {
            let mut si = child.stdin.take().unwrap();
            let _ = si.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().expect("wait notary");
        let res = CmdOutput {
            cmdline: format!("notary -c {} {}", s(&self.config_path()), args.join(" ")),
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        *self.last.lock().unwrap() = Some(res.clone());
        res
    }

    /// Run and panic (with command line, stdout, stderr) on a non-zero exit.
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        self.check(self.try_run(args, None))
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> CmdOutput {
        self.check(self.try_run(args, Some(stdin)))
    }

    fn check(&self, o: CmdOutput) -> CmdOutput {
        if !o.success() {
            panic!(
                "notary command failed (exit {:?}): {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                o.status, o.cmdline, o.stdout, o.stderr
            );
        }
        o
    }

    /// `notary init GUN -p` (root key reused from this trust dir if one exists; snapshot local).
    pub fn init(&self, gun: &str) {
        self.run(&["init", gun, "-p"]);
    }

    /// init + publish, then hand the snapshot key to the server (`key rotate GUN snapshot -r`).
    pub fn init_with_server_snapshot(&self, gun: &str) {
        self.init(gun);
        self.rotate_key(gun, "snapshot", true);
    }

    /// `notary addhash GUN TAG SIZE --sha256 HEX [--roles R]... -p`; empty roles = targets.
    pub fn add_hash(&self, gun: &str, tag: &str, size: u64, sha256_hex: &str, roles: &[&str]) {
        let size = size.to_string();
        let mut args = vec!["addhash", gun, tag, &size, "--sha256", sha256_hex];
        for r in roles {
            args.extend(["--roles", r]);
        }
        args.push("-p");
        self.run(&args);
    }

    /// `notary remove GUN TAG [--roles R]... -p`
    pub fn remove_target(&self, gun: &str, tag: &str, roles: &[&str]) {
        let mut args = vec!["remove", gun, tag];
        for r in roles {
            args.extend(["--roles", r]);
        }
        args.push("-p");
        self.run(&args);
    }

    /// Private key + self-signed cert (CN=name, 365 days) with openssl, in this client's dir.
    /// Ecdsa: P-256 "EC PRIVATE KEY"; Rsa: 2048-bit PKCS#8.
    pub fn gen_delegation_key(&self, name: &str, kind: KeyKind) -> DelegationKey {
        let n = CLIENT_SEQ.fetch_add(1, Ordering::Relaxed);
        let base = self.dir.path().join(format!("deleg-{name}-{n}"));
        let key_path = base.with_extension("key");
        let cert_path = base.with_extension("crt");
        match kind {
            KeyKind::Ecdsa => run_checked(
                Command::new("openssl")
                    .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"])
                    .arg(&key_path),
            ),
            KeyKind::Rsa => run_checked(Command::new("openssl").args(["genrsa", "-out"]).arg(&key_path).arg("2048")),
        };
        run_checked(
            Command::new("openssl")
                .args(["req", "-new", "-x509", "-sha256", "-days", "365", "-key"])
                .arg(&key_path)
                .arg("-out")
                .arg(&cert_path)
                .args(["-subj", &format!("/CN={name}")]),
        );
        let cert_pem = fs::read_to_string(&cert_path).unwrap();
        DelegationKey { name: name.to_string(), kind, key_path, cert_path, cert_pem }
    }

    /// `notary key import KEYFILE --role ROLE`
    pub fn import_key(&self, key: &DelegationKey, role: &str) {
        self.run(&["key", "import", s(&key.key_path), "--role", role]);
    }

    /// `notary delegation add GUN ROLE CERT (--all-paths | --paths P...) -p`
    pub fn delegation_add(&self, gun: &str, role: &str, key: &DelegationKey, paths: Option<&[&str]>) {
        let mut args = vec!["delegation", "add", gun, role, s(&key.cert_path)];
        match paths {
            None => args.push("--all-paths"),
            Some(ps) => {
                for p in ps {
                    args.extend(["--paths", p]);
                }
            }
        }
        args.push("-p");
        self.run(&args);
    }

    /// gen_delegation_key + import_key + delegation_add(all paths).
    pub fn add_delegation_signer(&self, gun: &str, role: &str, name: &str, kind: KeyKind) -> DelegationKey {
        let k = self.gen_delegation_key(name, kind);
        self.import_key(&k, role);
        self.delegation_add(gun, role, &k, None);
        k
    }

    /// Key IDs of `role` as printed by `notary delegation list GUN` (the CLI's canonical IDs,
    /// over the bare public key; not the TUF key IDs of the x509 form).
    pub fn delegation_key_ids(&self, gun: &str, role: &str) -> Vec<String> {
        let out = self.run(&["delegation", "list", gun]);
        parse_delegation_list(&out.stdout).into_iter().filter(|(r, _)| r == role).flat_map(|(_, ids)| ids).collect()
    }

    /// `notary delegation remove GUN ROLE KEYID -y -p`
    pub fn delegation_remove_key(&self, gun: &str, role: &str, keyid: &str) {
        self.run(&["delegation", "remove", gun, role, keyid, "-y", "-p"]);
    }

    /// `notary delegation remove GUN ROLE -y -p`
    pub fn delegation_remove_role(&self, gun: &str, role: &str) {
        self.run(&["delegation", "remove", gun, role, "-y", "-p"]);
    }

    /// `notary key rotate GUN ROLE [-r]` (publishes immediately). The CLI refuses a
    /// server-managed targets key.
    pub fn rotate_key(&self, gun: &str, role: &str, server_managed: bool) {
        let mut args = vec!["key", "rotate", gun, role];
        if server_managed {
            args.push("-r");
        }
        self.run(&args);
    }

    /// `echo yes | notary key rotate GUN root`, then `notary list GUN` so that the cached
    /// root.json (root_cert_pem) is the new one: the rotation alone does not update the cache.
    pub fn rotate_root(&self, gun: &str) {
        self.run_stdin(&["key", "rotate", gun, "root"], "yes\n");
        self.refresh(gun);
    }

    /// `notary list GUN` (result ignored): pull the current metadata into the trust dir cache.
    pub fn refresh(&self, gun: &str) {
        let _ = self.try_run(&["list", gun], None);
    }

    /// `notary list GUN`. Err(stdout + stderr) on a non-zero exit (e.g. unknown GUN:
    /// "* fatal: 127.0.0.1:PORT does not have trust data for GUN", printed on stdout). Warnings (e.g. "valid signatures did not meet threshold for
    /// targets/releases") are in `last_stderr()` on success.
    pub fn list(&self, gun: &str) -> Result<Vec<ListedTarget>, String> {
        let o = self.try_run(&["list", gun], None);
        if !o.success() {
            return Err(format!("{}{}", o.stdout, o.stderr));
        }
        Ok(parse_list(&o.stdout))
    }

    /// `notary lookup GUN TAG` -> `TAG sha256:HEX SIZE`. None on non-zero exit
    /// ("* fatal: No valid trust data for TAG", unknown GUN); the reason is in `last_stdout()`.
    pub fn lookup(&self, gun: &str, tag: &str) -> Option<ListedTarget> {
        let o = self.try_run(&["lookup", gun, tag], None);
        if !o.success() {
            return None;
        }
        let line = o.stdout.lines().find(|l| !l.trim().is_empty())?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            panic!("unexpected lookup output: {:?}", o.stdout);
        }
        Some(ListedTarget {
            name: f[0].to_string(),
            digest_hex: f[1].trim_start_matches("sha256:").to_string(),
            size: f[2].parse().unwrap(),
            role: String::new(),
        })
    }

    /// Cached metadata as of the last online command (call `refresh` first to be current): trust_dir/tuf/<gun>/metadata/<role>.json
    pub fn cached_metadata(&self, gun: &str, role: &str) -> Vec<u8> {
        let p = self.trust_dir().join("tuf").join(gun).join("metadata").join(format!("{role}.json"));
        fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    pub fn root_json_bytes(&self, gun: &str) -> Vec<u8> {
        self.cached_metadata(gun, "root")
    }

    /// PEM certificate of the current root key (first of signed.roles.root.keyids).
    pub fn root_cert_pem(&self, gun: &str) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.root_json_bytes(gun)).unwrap();
        let id = v["signed"]["roles"]["root"]["keyids"][0].as_str().expect("root keyid");
        let b64 = v["signed"]["keys"][id]["keyval"]["public"].as_str().expect("root key public");
        let pem = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
        String::from_utf8(pem).expect("PEM")
    }
}

/// Parse `notary list` stdout:
/// ```text
/// NAME    DIGEST        SIZE (BYTES)    ROLE
/// ----    ------        ------------    ----
/// v1      2d7116...     1234            targets
/// ```
/// or "No targets present in this repository." (-> empty).
pub fn parse_list(stdout: &str) -> Vec<ListedTarget> {
    let mut out = Vec::new();
    let mut in_body = false;
    for line in stdout.lines() {
        if line.starts_with("----") {
            in_body = true;
            continue;
        }
        if !in_body || line.trim().is_empty() {
            continue;
        }
        // The last three columns never hold spaces; a name may (any Unicode whitespace).
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 4, "unexpected `notary list` line: {line:?}");
        let n = f.len();
        out.push(ListedTarget {
            name: f[..n - 3].join(" "),
            digest_hex: f[n - 3].to_string(),
            size: f[n - 2].parse().unwrap_or_else(|_| panic!("size in {line:?}")),
            role: f[n - 1].to_string(),
        });
    }
    out
}

/// Parse `notary delegation list` stdout into (role, key ids). Format:
/// ```text
/// ROLE                PATHS             KEY IDS        THRESHOLD
/// ----                -----             -------        ---------
/// targets/releases    "" <all paths>    95fe...3e50    1
///                                       1ffd...f239
/// ```
/// A role line starts at column 0; continuation lines (more keys / paths) are indented.
/// PATHS may contain spaces, so key IDs are recognised as 64-hex tokens.
pub fn parse_delegation_list(stdout: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_body = false;
    for line in stdout.lines() {
        if line.starts_with("----") {
            in_body = true;
            continue;
        }
        if !in_body || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let role = line.split_whitespace().next().unwrap().to_string();
            out.push((role, Vec::new()));
        }
        let Some(cur) = out.last_mut() else { continue };
        for tok in line.split_whitespace() {
            if tok.len() == 64 && tok.bytes().all(|b| b.is_ascii_hexdigit()) {
                cur.1.push(tok.to_string());
            }
        }
    }
    out
}
