//! Real metadata re-signed with the real keys of a notary trust dir, and published to the real
//! server through its HTTP API. For faults the notary CLI will not make on purpose (a short-lived
//! root, a snapshot that drops a role, a key listed twice) but a key holder can: the server
//! validates these uploads like any other, so what it then serves is what a thief of those keys
//! could make it serve. All blocking.
//!
//! ```text
//! client.signing_key(role, gun) -> SigningKey    // trust_dir/private/*.key, decrypted with openssl
//! Metadata::fetch(&server, gun, "snapshot")      // current document (by name)
//!   .signed (serde_json::Value, editable)   .resign(&[(&key, &keys_map, &keyids)]) -> Vec<u8>
//! key_id_of(&keys_map, &keyids, &SigningKey) -> String   // the listed ID of that key
//! upload(&server, gun, &[("root", bytes), ...])          // POST /v2/<gun>/_trust/tuf/
//! listed_name(&server, gun, role) -> String               // "<role>.<sha256 hex>.json"
//! ```

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use serde_json::Value;

use super::notary::{NotaryClient, NotaryServer, TEST_PASSPHRASE, fetch_raw, metadata_path};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl NotaryClient {
    /// The private key the CLI holds for `role` (of `gun`, for repository keys; root keys are
    /// shared by every GUN of the trust dir). Notary writes `ENCRYPTED PRIVATE KEY` PEM with
    /// `role:`/`gun:` headers that openssl does not read: they are stripped first.
    pub fn signing_key(&self, role: &str, gun: Option<&str>) -> SigningKey {
        let dir = self.trust_dir().join("private");
        let mut found = vec![];
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let text = fs::read_to_string(&path).unwrap();
            let header = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}: ")).map(str::to_string));
            if header("role").as_deref() == Some(role) && (gun.is_none() || header("gun").as_deref() == gun) {
                found.push((path, text));
            }
        }
        assert_eq!(found.len(), 1, "expected one {role} key for {gun:?} in {}: {found:?}", dir.display());
        let (path, text) = found.remove(0);
        let body: String = text.lines().filter(|l| !l.contains(": ")).map(|l| format!("{l}\n")).collect();
        let out =
            run_stdin(Command::new("openssl").args(["pkcs8", "-passin", &format!("pass:{TEST_PASSPHRASE}")]), &body);
        let pem = String::from_utf8(out).unwrap();
        SigningKey::from_pkcs8_pem(&pem).unwrap_or_else(|e| panic!("{}: not a P-256 key: {e}", path.display()))
    }
}

fn run_stdin(cmd: &mut Command, input: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The key ID under which `keys` (a `keys` map of root or of a delegation) lists the public
/// half of `sk`, among `keyids`.
pub fn key_id_of(keys: &Value, keyids: &[String], sk: &SigningKey) -> String {
    use p256::pkcs8::EncodePublicKey;
    let want = sk.verifying_key().to_public_key_der().unwrap().as_bytes().to_vec();
    for id in keyids {
        let doc: trustwatch::tuf::keys::KeyDoc = serde_json::from_value(keys[id].clone()).unwrap();
        if let Ok(k) = trustwatch::tuf::keys::PublicKey::from_doc(id, &doc) {
            if k.spki_der == want {
                return id.clone();
            }
        }
    }
    panic!("no key among {keyids:?} is the public half of this signing key")
}

/// A current document of one repository, to edit and re-sign.
pub struct Metadata {
    pub signed: Value,
}

impl Metadata {
    pub fn fetch(server: &NotaryServer, gun: &str, role: &str) -> Metadata {
        let (status, body) = fetch_raw(server, &metadata_path(gun, role));
        assert_eq!(status, 200, "{role}: {}", String::from_utf8_lossy(&body));
        Metadata::parse(&body)
    }

    pub fn parse(bytes: &[u8]) -> Metadata {
        let v: Value = serde_json::from_slice(bytes).unwrap();
        Metadata { signed: v["signed"].clone() }
    }

    /// The envelope, signed over the canonical JSON of `signed` by each `(key ID, key)`.
    pub fn resign(&self, signers: &[(&str, &SigningKey)]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let canonical = trustwatch::tuf::cjson::to_canonical(&self.signed).unwrap();
        let signatures: Vec<Value> = signers
            .iter()
            .map(|(id, sk)| {
                let sig: p256::ecdsa::Signature = sk.sign(&canonical);
                serde_json::json!({"keyid": id, "method": "ecdsa", "sig": B64.encode(sig.to_bytes())})
            })
            .collect();
        // Byte for byte what notary-server itself writes (Go: the canonical `signed`, then the
        // signatures): the server lists its own re-serialization in the timestamp, and a
        // document stored in another form could not be found by that checksum.
        let mut out = b"{\"signed\":".to_vec();
        out.extend_from_slice(&canonical);
        out.extend_from_slice(b",\"signatures\":");
        out.extend_from_slice(&serde_json::to_vec(&signatures).unwrap());
        out.push(b'}');
        out
    }
}

/// Publishes documents as the notary client does: `POST /v2/<gun>/_trust/tuf/`, one multipart
/// field `files` per document, named by role. Panics with the server's answer when it refuses.
pub fn upload(server: &NotaryServer, gun: &str, files: &[(&str, Vec<u8>)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "-X", "POST", "--cacert"]).arg(server.ca_path());
    for (i, (role, bytes)) in files.iter().enumerate() {
        let p = dir.path().join(format!("{i}.json"));
        fs::write(&p, bytes).unwrap();
        cmd.arg("-F").arg(format!("files=@{};filename={role}", s(&p)));
    }
    let out = cmd.arg(format!("{}/v2/{gun}/_trust/tuf/", server.url())).output().expect("spawn curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.lines().last().unwrap_or_default().trim().to_string();
    assert_eq!(status, "200", "the server refused the upload: {text}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The name a verifier fetches `role` by: `<role>.<sha256 hex>.json`, from the current
/// snapshot (or timestamp, for the snapshot).
pub fn listed_name(server: &NotaryServer, gun: &str, role: &str) -> String {
    let ts = Metadata::fetch(server, gun, "timestamp");
    let meta = if role == "snapshot" {
        ts.signed["meta"]["snapshot"].clone()
    } else {
        let snap = Metadata::fetch(server, gun, "snapshot");
        snap.signed["meta"][role].clone()
    };
    let b64 = meta["hashes"]["sha256"].as_str().unwrap_or_else(|| panic!("{role} is not listed: {meta}"));
    format!("{role}.{}.json", hex::encode(B64.decode(b64).unwrap()))
}

impl super::notary::DelegationKey {
    /// The delegation's private key (openssl writes SEC1 `EC PRIVATE KEY`; read as PKCS#8).
    pub fn signing_key(&self) -> SigningKey {
        let out = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(&self.key_path)
            .output()
            .expect("spawn openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        SigningKey::from_pkcs8_pem(&String::from_utf8(out.stdout).unwrap()).expect("a P-256 delegation key")
    }
}

/// `{"hashes":{"sha256":..,"sha512":..},"length":..}` of these bytes, as snapshots list them.
pub fn file_meta(bytes: &[u8]) -> Value {
    use sha2::Digest as _;
    serde_json::json!({
        "hashes": {"sha256": B64.encode(sha2::Sha256::digest(bytes)), "sha512": B64.encode(sha2::Sha512::digest(bytes))},
        "length": bytes.len(),
    })
}
