//! Notation test harness: the REAL `notation` CLI (v1.3.x, `bash hack/go-tools.sh bin`), an
//! openssl PKI (root, intermediate, code-signing leaves; `openssl ca -revoke` + `-gencrl`), an
//! RFC 3161 TSA (`openssl ts -reply`) and CRLs served over plain HTTP on loopback, and reads of
//! signature manifests and envelopes from a real registry (through trustwatch's OCI client:
//! referrers API and tag schema), writes with curl.
//!
//! ```text
//! go_tool("notation") -> PathBuf                    // panics with how to build it when missing
//! Signer::new() -> Signer                           // own XDG_CONFIG_HOME for signing keys
//!   .generate_test(name)                            // `notation cert generate-test --default name`
//!   .test_cert_pem(name) -> String
//!   .use_key(name, key: &Path, chain: &Path)        // signingkeys.json: openssl key + chain file
//!   .sign(reference, format "jws"|"cose", extra: &[&str]) -> CmdOutput  // panics on failure
//! Verifier::new(policy_json) -> Verifier            // XDG dir with trustpolicy.json + truststore
//!   .add_cert(store_type, name, pem)                // truststore/x509/<type>/<name>/<n>.pem
//!   .notation_verify(reference) -> CmdOutput        // `notation verify --insecure-registry`
//!   .policy_document() / .trust_store()             // the same files, through the core's loaders
//! Pki::new(LeafKey, crl_url: Option<String>) -> Pki  // root + intermediate (openssl ca) + leaf
//!   .issue_leaf(name, LeafKey, days: Validity) -> Leaf { key, chain, cert_pem }
//!   .root_pem()  .revoke(&Leaf)  .crl_der() -> Vec<u8>
//! Tsa::new() -> Tsa                                  // TSA root + TSA cert + openssl ts config
//!   .root_path() .root_pem()
//! HttpPeer::start(Option<Tsa>) -> HttpPeer          // POST /tsa -> openssl ts -reply; GET files
//!   .url(path) .put(path, bytes) .remove(path) .requests()
//!   .serve_ocsp(Some(pki.dir()) | None)             // POST /ocsp -> openssl ocsp; None = 503
//! post_ocsp(url, request) -> Result<Vec<u8>, String>
//! fetch_signatures(&Registry, repo, digest) -> Vec<SignatureBlob>   // OCI client: referrers
//! attach_envelope(&Registry, repo, subject: &Pushed, media_type, bytes)  // replaces the index
//! fetch_url(url) -> Result<Vec<u8>, String>
//! ```

use super::notary::CmdOutput;
use super::registry::{Pushed, Registry};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The directory of the Go-built peers (`TRUSTWATCH_GO_TOOLS_BIN` overrides).
pub fn go_tools_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("TRUSTWATCH_GO_TOOLS_BIN") {
        return PathBuf::from(dir);
    }
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/go-tools.sh"))
        .arg("bin")
        .output()
        .expect("bash hack/go-tools.sh bin");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub fn go_tool(name: &str) -> PathBuf {
    let p = go_tools_bin().join(name);
    assert!(
        p.is_file(),
        "{name} is missing at {}: build the Go peers with `bash hack/go-tools.sh build` (needs Go; see hack/versions.env)",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) -> CmdOutput {
    let cmdline = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    CmdOutput {
        cmdline,
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_ok(cmd: &mut Command) -> CmdOutput {
    let out = run(cmd);
    assert!(
        out.success(),
        "{} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.cmdline,
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

fn openssl(dir: &Path, args: &[&str]) -> CmdOutput {
    run_ok(Command::new("openssl").current_dir(dir).args(args))
}

// ---------------------------------------------------------------------------------------------
// notation: signing and verifying
// ---------------------------------------------------------------------------------------------

/// A notation configuration for signing (keys), in its own XDG_CONFIG_HOME.
pub struct Signer {
    dir: tempfile::TempDir,
}

impl Default for Signer {
    fn default() -> Self {
        Signer::new()
    }
}

impl Signer {
    pub fn new() -> Signer {
        go_tool("notation");
        Signer { dir: tempfile::tempdir().unwrap() }
    }

    fn notation(&self) -> Command {
        let mut c = Command::new(go_tool("notation"));
        c.env("XDG_CONFIG_HOME", self.dir.path()).env("XDG_CACHE_HOME", self.dir.path().join("cache"));
        c
    }

    /// `notation cert generate-test --default <name>`: an RSA-2048 self-signed code-signing
    /// certificate and key, made the default signing key.
    pub fn generate_test(&self, name: &str) {
        run_ok(self.notation().args(["cert", "generate-test", "--default", name]));
    }

    pub fn test_cert_pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("notation/localkeys/{name}.crt"))).unwrap()
    }

    /// Makes an openssl key + chain file (leaf first, root last) the default signing key.
    pub fn use_key(&self, name: &str, key: &Path, chain: &Path) {
        let dir = self.dir.path().join("notation");
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!({
            "default": name,
            "keys": [{"name": name, "keyPath": key, "certPath": chain}],
        });
        std::fs::write(dir.join("signingkeys.json"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    }

    /// `notation sign --insecure-registry --signature-format <format> <extra> <reference>`.
    pub fn sign(&self, reference: &str, format: &str, extra: &[&str]) -> CmdOutput {
        run_ok(
            self.notation()
                .args(["sign", "--insecure-registry", "--signature-format", format])
                .args(extra)
                .arg(reference),
        )
    }
}

/// A notation configuration for verifying: `trustpolicy.json` and a trust store, read both by
/// `notation verify` and by the core's loaders.
pub struct Verifier {
    dir: tempfile::TempDir,
    n: std::cell::Cell<usize>,
}

impl Verifier {
    pub fn new(policy_json: &str) -> Verifier {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("notation/truststore/x509")).unwrap();
        std::fs::write(dir.path().join("notation/trustpolicy.json"), policy_json).unwrap();
        Verifier { dir, n: std::cell::Cell::new(0) }
    }

    pub fn set_policy(&self, policy_json: &str) {
        std::fs::write(self.dir.path().join("notation/trustpolicy.json"), policy_json).unwrap();
        // notation caches CRLs; a new policy run starts without them.
        let _ = std::fs::remove_dir_all(self.dir.path().join("cache"));
    }

    pub fn add_cert(&self, store_type: &str, name: &str, pem: &str) {
        let d = self.dir.path().join(format!("notation/truststore/x509/{store_type}/{name}"));
        std::fs::create_dir_all(&d).unwrap();
        self.n.set(self.n.get() + 1);
        std::fs::write(d.join(format!("cert{}.pem", self.n.get())), pem).unwrap();
    }

    /// `$XDG_CONFIG_HOME/notation` as notation reads it.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("notation")
    }

    pub fn truststore_dir(&self) -> PathBuf {
        self.dir.path().join("notation/truststore")
    }

    pub fn policy_bytes(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("notation/trustpolicy.json")).unwrap()
    }

    /// `notation verify --insecure-registry <reference>` (never panics on the exit code).
    pub fn notation_verify(&self, reference: &str) -> CmdOutput {
        run(Command::new(go_tool("notation"))
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .args(["verify", "--insecure-registry", "-v", reference]))
    }
}

// ---------------------------------------------------------------------------------------------
// openssl PKI
// ---------------------------------------------------------------------------------------------

const CA_CNF: &str = r#"
[ ca ]
default_ca = ica
[ ica ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
crlnumber = ./crlnumber
default_md = sha256
default_crl_days = 7
policy = any
unique_subject = no
copy_extensions = none
[ any ]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
[ req ]
distinguished_name = dn
[ dn ]
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_int ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_tsa ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
"#;

/// The leaf key type.
#[derive(Debug, Clone, Copy)]
pub enum LeafKey {
    Rsa(u32),
    Ec(&'static str),
}

/// A leaf's validity: days from now, or explicit openssl dates (`YYYYMMDDHHMMSSZ`).
#[derive(Debug, Clone)]
pub enum Validity {
    Days(u32),
    Dates { start: String, end: String },
}

/// An issued code-signing leaf.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub key: PathBuf,
    /// Leaf, intermediate, root (PEM): what notation's signing key names.
    pub chain: PathBuf,
    pub cert_pem: String,
}

/// Root CA, intermediate CA (an `openssl ca` database, for revocation and CRLs) and leaves.
pub struct Pki {
    dir: tempfile::TempDir,
    crl_url: Option<String>,
    ocsp_url: Option<String>,
    subject_o: String,
}

fn gen_key(dir: &Path, name: &str, kind: LeafKey) {
    match kind {
        LeafKey::Rsa(bits) => {
            openssl(
                dir,
                &["genpkey", "-algorithm", "RSA", "-pkeyopt", &format!("rsa_keygen_bits:{bits}"), "-out", name],
            );
        }
        LeafKey::Ec(curve) => {
            openssl(
                dir,
                &["genpkey", "-algorithm", "EC", "-pkeyopt", &format!("ec_paramgen_curve:{curve}"), "-out", name],
            );
        }
    }
}

impl Pki {
    /// `org` names the subjects' O (`C=US, ST=WA, O=<org>`), so that two PKIs differ.
    pub fn new(org: &str, crl_url: Option<String>) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ca.cnf"), CA_CNF).unwrap();
        std::fs::create_dir_all(d.join("newcerts")).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(d.join("crlnumber"), "01\n").unwrap();
        gen_key(d, "root.key", LeafKey::Rsa(3072));
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "root.key",
                "-out",
                "root.crt",
                "-subj",
                &format!("/C=US/ST=WA/O={org}/CN={org} Root"),
                "-days",
                "3650",
                "-config",
                "ca.cnf",
                "-extensions",
                "v3_root",
            ],
        );
        gen_key(d, "int.key", LeafKey::Ec("P-384"));
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "int.key",
                "-out",
                "int.csr",
                "-subj",
                &format!("/C=US/ST=WA/O={org}/CN={org} Intermediate"),
                "-config",
                "ca.cnf",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "int.csr",
                "-CA",
                "root.crt",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-out",
                "int.crt",
                "-days",
                "3650",
                "-extfile",
                "ca.cnf",
                "-extensions",
                "v3_int",
            ],
        );
        let pki = Pki { dir, crl_url, ocsp_url: None, subject_o: org.to_string() };
        pki.gencrl();
        pki
    }

    pub fn root_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("root.crt")).unwrap()
    }

    /// Leaves issued from now on name this OCSP responder (authorityInfoAccess).
    pub fn set_ocsp_url(&mut self, url: String) {
        self.ocsp_url = Some(url);
    }

    /// The `openssl ca` directory (database, intermediate key): what an OCSP responder reads.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a leaf with `keyUsage=critical,digitalSignature`, `extendedKeyUsage=codeSigning`
    /// and, when the PKI has a CRL URL, `crlDistributionPoints`.
    pub fn issue_leaf(&self, name: &str, kind: LeafKey, validity: Validity) -> Leaf {
        let d = self.dir.path();
        let mut ext = String::from(
            "[ leaf ]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = codeSigning\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
        );
        if let Some(url) = &self.crl_url {
            ext.push_str(&format!("crlDistributionPoints = URI:{url}\n"));
        }
        if let Some(url) = &self.ocsp_url {
            ext.push_str(&format!("authorityInfoAccess = OCSP;URI:{url}\n"));
        }
        let ext_file = format!("{name}.ext");
        std::fs::write(d.join(&ext_file), ext).unwrap();
        gen_key(d, &format!("{name}.key"), kind);
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/C=US/ST=WA/L=Seattle/O={}/OU=Builds/CN={name}", self.subject_o),
                "-config",
                "ca.cnf",
            ],
        );
        let mut args: Vec<String> =
            ["ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "int.crt", "-keyfile", "int.key", "-in"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend([
            format!("{name}.csr"),
            "-out".into(),
            format!("{name}.crt"),
            "-extfile".into(),
            ext_file,
            "-extensions".into(),
            "leaf".into(),
        ]);
        match validity {
            Validity::Days(n) => args.extend(["-days".into(), n.to_string()]),
            Validity::Dates { start, end } => args.extend(["-startdate".into(), start, "-enddate".into(), end]),
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(d, &argv);
        let cert_pem = std::fs::read_to_string(d.join(format!("{name}.crt"))).unwrap();
        let chain = d.join(format!("{name}.chain.pem"));
        let int = std::fs::read_to_string(d.join("int.crt")).unwrap();
        std::fs::write(&chain, format!("{cert_pem}{int}{}", self.root_pem())).unwrap();
        Leaf { key: d.join(format!("{name}.key")), chain, cert_pem }
    }

    /// `openssl ca -revoke` (reason keyCompromise), then a new CRL.
    pub fn revoke(&self, leaf: &Leaf) {
        let cert = leaf.key.with_extension("crt");
        openssl(
            self.dir.path(),
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-cert",
                "int.crt",
                "-keyfile",
                "int.key",
                "-revoke",
                cert.to_str().unwrap(),
                "-crl_reason",
                "keyCompromise",
            ],
        );
        self.gencrl();
    }

    fn gencrl(&self) {
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-cert", "int.crt", "-keyfile", "int.key", "-gencrl", "-out", "int.crl.pem"],
        );
        openssl(self.dir.path(), &["crl", "-in", "int.crl.pem", "-outform", "DER", "-out", "int.crl"]);
    }

    /// The intermediate's current CRL (DER).
    pub fn crl_der(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("int.crl")).unwrap()
    }
}

/// A timestamp authority: root, TSA certificate (EKU timeStamping, critical) and an
/// `openssl ts` configuration.
pub struct Tsa {
    dir: tempfile::TempDir,
}

impl Default for Tsa {
    fn default() -> Self {
        Tsa::new()
    }
}

impl Tsa {
    pub fn new() -> Tsa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ca.cnf"), CA_CNF).unwrap();
        gen_key(d, "tsaroot.key", LeafKey::Rsa(2048));
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "tsaroot.key",
                "-out",
                "tsaroot.crt",
                "-subj",
                "/C=US/ST=WA/O=Stamps/CN=Stamps Root",
                "-days",
                "3650",
                "-config",
                "ca.cnf",
                "-extensions",
                "v3_root",
            ],
        );
        gen_key(d, "tsa.key", LeafKey::Rsa(2048));
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "tsa.key",
                "-out",
                "tsa.csr",
                "-subj",
                "/C=US/ST=WA/O=Stamps/CN=Stamps TSA",
                "-config",
                "ca.cnf",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "tsaroot.crt",
                "-CAkey",
                "tsaroot.key",
                "-CAcreateserial",
                "-out",
                "tsa.crt",
                "-days",
                "3650",
                "-extfile",
                "ca.cnf",
                "-extensions",
                "v3_tsa",
            ],
        );
        std::fs::write(d.join("tsaserial"), "01\n").unwrap();
        std::fs::write(
            d.join("tsa.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {dir}\nserial = {dir}/tsaserial\ncrypto_device = builtin\nsigner_cert = {dir}/tsa.crt\nsigner_key = {dir}/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\naccuracy = secs:1\nordering = yes\ntsa_name = no\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
                dir = d.display()
            ),
        )
        .unwrap();
        Tsa { dir }
    }

    pub fn root_path(&self) -> PathBuf {
        self.dir.path().join("tsaroot.crt")
    }

    pub fn root_pem(&self) -> String {
        std::fs::read_to_string(self.root_path()).unwrap()
    }

    /// `openssl ts -reply` for one request.
    fn reply(&self, request: &[u8]) -> Vec<u8> {
        let q = self.dir.path().join(format!("q{}.tsq", std::process::id()));
        std::fs::write(&q, request).unwrap();
        let out = Command::new("openssl")
            .args(["ts", "-reply", "-config"])
            .arg(self.dir.path().join("tsa.cnf"))
            .arg("-queryfile")
            .arg(&q)
            .args(["-out", "/dev/stdout"])
            .output()
            .expect("openssl ts");
        out.stdout
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP peer: files (CRLs) by path, and the TSA at POST /tsa
// ---------------------------------------------------------------------------------------------

pub struct HttpPeer {
    port: u16,
    ocsp: Arc<Mutex<Option<PathBuf>>>,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpPeer {
    pub fn start(tsa: Option<Tsa>) -> HttpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let ocsp: Arc<Mutex<Option<PathBuf>>> = Arc::default();
        let (f, l, s, o) = (files.clone(), log.clone(), stop.clone(), ocsp.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let ocsp_dir = o.lock().unwrap().clone();
                        let _ = serve(&mut conn, &f, &l, tsa.as_ref(), ocsp_dir.as_deref());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HttpPeer { port, ocsp, files, log, stop, thread: Some(thread) }
    }

    /// `POST /ocsp` answers with `openssl ocsp` over this `openssl ca` directory (the
    /// intermediate signs the responses); `None` makes the responder fail (HTTP 503).
    pub fn serve_ocsp(&self, ca_dir: Option<&Path>) {
        *self.ocsp.lock().unwrap() = ca_dir.map(Path::to_path_buf);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), bytes);
    }
    pub fn remove(&self, path: &str) {
        self.files.lock().unwrap().remove(path);
    }
    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    conn: &mut std::net::TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    log: &Mutex<Vec<String>>,
    tsa: Option<&Tsa>,
    ocsp_dir: Option<&Path>,
) -> std::io::Result<()> {
    let mut buf = vec![];
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let len: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    log.lock().unwrap().push(format!("{method} {path}"));
    let (status, ctype, payload) = match (method.as_str(), tsa) {
        ("POST", Some(tsa)) if path.starts_with("/tsa") => ("200 OK", "application/timestamp-reply", tsa.reply(&body)),
        // RFC 6960 A.1: POST the DER, or GET {url}/{url-encoded base64 of the DER} (what Go's
        // OCSP client, and so notation, sends for small requests).
        (m @ ("POST" | "GET"), _) if path.starts_with("/ocsp") => match ocsp_dir {
            Some(dir) => {
                let request = if m == "POST" { body } else { decode_ocsp_get(&path["/ocsp".len()..]) };
                ("200 OK", "application/ocsp-response", ocsp_reply(dir, &request))
            }
            None => ("503 Service Unavailable", "text/plain", b"responder down".to_vec()),
        },
        ("GET", _) => match files.lock().unwrap().get(&path) {
            Some(b) => ("200 OK", "application/pkix-crl", b.clone()),
            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
        },
        _ => ("405 Method Not Allowed", "text/plain", vec![]),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    conn.write_all(&payload)?;
    conn.flush()
}

fn decode_ocsp_get(rest: &str) -> Vec<u8> {
    use base64::Engine as _;
    let encoded = rest.trim_start_matches('/');
    let mut unescaped = String::new();
    let mut it = encoded.chars();
    while let Some(c) = it.next() {
        if c == '%' {
            let hex: String = it.by_ref().take(2).collect();
            unescaped.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?') as char);
        } else {
            unescaped.push(c);
        }
    }
    base64::engine::general_purpose::STANDARD.decode(unescaped.as_bytes()).unwrap_or_default()
}

/// `openssl ocsp` as a responder for one request, over an `openssl ca` database.
fn ocsp_reply(dir: &Path, request: &[u8]) -> Vec<u8> {
    let q = dir.join("ocsp.req");
    std::fs::write(&q, request).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-CA",
            "int.crt",
            "-rsigner",
            "int.crt",
            "-rkey",
            "int.key",
            "-ndays",
            "1",
            "-resp_no_certs",
            "-reqin",
            "ocsp.req",
            "-respout",
            "ocsp.resp",
        ])
        .output()
        .expect("openssl ocsp");
    assert!(out.status.success(), "openssl ocsp: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(dir.join("ocsp.resp")).unwrap()
}

/// A blocking POST of an OCSP request: the body on 2xx, else why not.
pub fn post_ocsp(url: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), request).unwrap();
    let out = Command::new("curl")
        .args([
            "-s",
            "-f",
            "--max-time",
            "5",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
        ])
        .arg(format!("@{}", f.path().display()))
        .arg(url)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() { Ok(out.stdout) } else { Err(format!("curl exit {:?}", out.status.code())) }
}

/// A blocking GET (what the shell would do for a CRL URL): the body on 2xx, else why not.
pub fn fetch_url(url: &str) -> Result<Vec<u8>, String> {
    let out = Command::new("curl").args(["-s", "-f", "--max-time", "5", url]).output().map_err(|e| e.to_string())?;
    if out.status.success() { Ok(out.stdout) } else { Err(format!("curl exit {:?}", out.status.code())) }
}

// ---------------------------------------------------------------------------------------------
// Signatures in the registry
// ---------------------------------------------------------------------------------------------

/// One Notation signature as found in the registry.
#[derive(Debug, Clone)]
pub struct SignatureBlob {
    pub manifest_digest: String,
    /// The signature manifest as served.
    pub manifest: Vec<u8>,
    /// The envelope's media type (the signature manifest's layer).
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Notation signatures of `repo@digest` as trustwatch's OCI client finds them: the referrers
/// API and the referrers tag schema `sha256-<hex>` (their union; notation writes the tag schema
/// to registries without the API), each signature manifest and its envelope verified against
/// their digests. Blocking (a thread of its own runs the client), so it serves sync and async
/// tests alike.
pub fn fetch_signatures(registry: &Registry, repo: &str, digest: &str) -> Vec<SignatureBlob> {
    use trustwatch::oci::{RegistryClient, RegistryConfig, Repository};
    let (host, repo, digest) = (registry.host(), repo.to_string(), digest.to_string());
    let read = async move {
        let client = RegistryClient::new(RegistryConfig { plain_http: true, ..Default::default() }).unwrap();
        let r = Repository::new(&host, &repo);
        let listed = client
            .referrers(&r, &digest, &[trustwatch::notation::SIGNATURE_ARTIFACT_TYPE])
            .await
            .unwrap_or_else(|e| panic!("referrers of {repo}@{digest}: {e}"));
        let mut out = vec![];
        for d in listed.descriptors {
            let m = client.get_manifest(&r, &d.digest).await.unwrap().expect("a listed signature manifest is served");
            let layer = m.image().expect("a signature manifest is an image manifest").layers[0].clone();
            let limit = trustwatch::notation::envelope::MAX_ENVELOPE_BYTES as u64;
            let bytes = client.get_blob(&r, &layer, limit).await.unwrap().expect("the envelope is served");
            out.push(SignatureBlob {
                manifest_digest: d.digest,
                manifest: m.bytes.to_vec(),
                media_type: layer.media_type,
                bytes: bytes.to_vec(),
            });
        }
        out
    };
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(read)
    })
    .join()
    .expect("reading signatures")
}

fn put(url: &str, bytes: &[u8], content_type: &str) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", f.path().display()))
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn push_blob(registry: &Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    // Monolithic upload: POST ?digest= is not supported everywhere; POST then PUT.
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST"])
        .arg(format!("{}/v2/{repo}/blobs/uploads/", registry.url()))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).into_owned();
    let location = headers
        .lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no upload location: {headers}"));
    let location = if location.starts_with("http") { location } else { format!("{}{location}", registry.url()) };
    let sep = if location.contains('?') { '&' } else { '?' };
    assert_eq!(put(&format!("{location}{sep}digest={digest}"), bytes, "application/octet-stream"), "201");
    digest
}

/// Pushes `envelope` as the only Notation signature of `subject`: blob, signature manifest
/// (with `subject`) and a referrers tag index `sha256-<hex>` listing just it. The registry
/// then serves exactly this envelope to `notation verify`.
pub fn attach_envelope(registry: &Registry, repo: &str, subject: &Pushed, media_type: &str, envelope: &[u8]) -> String {
    let layer = push_blob(registry, repo, envelope);
    let config = push_blob(registry, repo, b"{}");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.cncf.notary.signature", "digest": config, "size": 2},
        "layers": [{"mediaType": media_type, "digest": layer, "size": envelope.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.digest, "size": subject.size},
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[]"},
    });
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = format!("sha256:{}", hex::encode(Sha256::digest(&mbytes)));
    assert_eq!(
        put(
            &format!("{}/v2/{repo}/manifests/{md}", registry.url()),
            &mbytes,
            "application/vnd.oci.image.manifest.v1+json"
        ),
        "201"
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mbytes.len(), "artifactType": "application/vnd.cncf.notary.signature"}],
    });
    let tag = subject.digest.replace(':', "-");
    assert_eq!(
        put(
            &format!("{}/v2/{repo}/manifests/{tag}", registry.url()),
            &serde_json::to_vec(&index).unwrap(),
            "application/vnd.oci.image.index.v1+json"
        ),
        "201"
    );
    md
}

// ---------------------------------------------------------------------------------------------
// Hand-made envelopes (what the notation CLI cannot make without a plugin)
// ---------------------------------------------------------------------------------------------

/// A JWS envelope signed with openssl by an EC P-256 `leaf` (ES256), with the given protected
/// header, payload and the leaf's chain in `x5c`: for signing schemes and critical attributes
/// that only plugins produce.
pub fn openssl_jws(leaf: &Leaf, protected: &serde_json::Value, payload: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(protected).unwrap());
    let pl = URL_SAFE_NO_PAD.encode(payload);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input"), format!("{p}.{pl}")).unwrap();
    run_ok(
        Command::new("openssl")
            .current_dir(dir.path())
            .args(["dgst", "-sha256", "-sign"])
            .arg(&leaf.key)
            .args(["-out", "sig.der", "input"]),
    );
    let der = std::fs::read(dir.path().join("sig.der")).unwrap();
    let raw = p256::ecdsa::Signature::from_der(&der).expect("an ECDSA P-256 key").to_bytes();
    let chain_pem = std::fs::read(&leaf.chain).unwrap();
    let x5c: Vec<String> =
        trustwatch::notation::Cert::parse_many(&chain_pem).unwrap().iter().map(|c| STANDARD.encode(c.der())).collect();
    serde_json::to_vec(&serde_json::json!({
        "payload": pl,
        "protected": p,
        "header": {"x5c": x5c, "io.cncf.notary.signingAgent": "trustwatch-tests"},
        "signature": URL_SAFE_NO_PAD.encode(raw),
    }))
    .unwrap()
}
