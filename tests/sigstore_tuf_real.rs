//! Sigstore's trusted root through TUF, against real repositories: made and changed by
//! python-tuf, the TUF reference implementation (`hack/sigstore-tuf-repo.py`, installed by
//! `hack/python-tools.sh`), served by Python's HTTP server on loopback, and read by
//! `trustwatch::cosign::sigstore_tuf` (tough over trustwatch's HTTP client). The target is the
//! public-good `trusted_root.json` (tests/fixtures/sigstore-public-good).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use trustwatch::cosign::sigstore_tuf::{Fetched, TufMirror, TufMirrorError, fetch_trusted_root, http_client};
use trustwatch::verdict::Verdict;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The python with python-tuf, installed when missing; a failure fails the test.
fn tuf_python() -> String {
    let out = Command::new("bash").arg(repo_root().join("hack/python-tools.sh")).arg("tuf-python").output().unwrap();
    assert!(out.status.success(), "hack/python-tools.sh: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string()
}

/// A TUF repository on disk, its keys beside it, and an HTTP server for it.
struct Repo {
    dir: tempfile::TempDir,
    python: String,
    server: Option<Child>,
    url: String,
}

impl Repo {
    fn new(trusted_root: &Path) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Repo { dir, python: tuf_python(), server: None, url: String::new() };
        r.tool(&["init", &r.path("repo"), &r.path("keys"), trusted_root.to_str().unwrap()]);
        r.serve();
        r
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Runs `hack/sigstore-tuf-repo.py CMD repo ARGS`.
    fn tool(&self, args: &[&str]) {
        let out =
            Command::new(&self.python).arg(repo_root().join("hack/sigstore-tuf-repo.py")).args(args).output().unwrap();
        assert!(out.status.success(), "sigstore-tuf-repo.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn run(&self, cmd: &str, extra: &[&str]) {
        let mut args = vec![cmd.to_string(), self.path("repo")];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.tool(&args);
    }

    fn serve(&mut self) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&self.python)
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory", &self.path("repo")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(child);
        self.url = format!("http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "python -m http.server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A client of this repository, pinned to its first root, with its own datastore.
    fn mirror(&self, datastore: &str) -> TufMirror {
        TufMirror {
            url: self.url.parse().unwrap(),
            root_json: std::fs::read(self.dir.path().join("repo/1.root.json")).unwrap(),
            datastore: self.dir.path().join(datastore),
        }
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        self.stop();
    }
}

fn public_good() -> PathBuf {
    repo_root().join("tests/fixtures/sigstore-public-good/trusted_root.json")
}

async fn fetch(m: &TufMirror) -> Result<Fetched, TufMirrorError> {
    fetch_trusted_root(m, http_client().unwrap()).await
}

#[tokio::test]
async fn the_trusted_root_is_read_through_tuf_and_follows_a_root_rotation_and_a_new_target() {
    let repo = Repo::new(&public_good());
    let client = repo.mirror("client");
    let first = fetch(&client).await.unwrap();
    assert_eq!((first.root_version, first.targets_version), (1, 1));
    assert_eq!(first.trusted_root.certificate_authorities.len(), 2);
    assert_eq!(first.bytes, std::fs::read(public_good()).unwrap(), "the target's bytes, as hashed");
    assert!(first.expires > jiff::Timestamp::now());

    // The owner rotates the root key and publishes a trusted root that drops a CA: the client,
    // still pinned to version 1, follows version 2 (signed by the old key and the new one).
    repo.run("rotate-root", &[&repo.path("keys")]);
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(public_good()).unwrap()).unwrap();
    json["certificateAuthorities"].as_array_mut().unwrap().remove(0);
    let dropped = repo.dir.path().join("dropped.json");
    std::fs::write(&dropped, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    repo.run("publish", &[&repo.path("keys"), dropped.to_str().unwrap()]);
    let second = fetch(&client).await.unwrap();
    assert_eq!((second.root_version, second.targets_version), (2, 2));
    assert_eq!(second.trusted_root.certificate_authorities.len(), 1, "the rotated trusted root is the one in use");
    // A new client pinned to version 1 gets there as well.
    let fresh = fetch(&repo.mirror("fresh")).await.unwrap();
    assert_eq!(fresh.root_version, 2);
}

#[tokio::test]
async fn a_replayed_older_timestamp_is_a_rollback() {
    let repo = Repo::new(&public_good());
    repo.run("save", &["v1"]);
    repo.run("publish", &[&repo.path("keys"), public_good().to_str().unwrap()]);
    let client = repo.mirror("client");
    assert_eq!(fetch(&client).await.unwrap().targets_version, 2);
    // The mirror serves the older (validly signed, unexpired) timestamp again.
    repo.run("restore", &["v1"]);
    let e = fetch(&client).await.unwrap_err();
    assert!(matches!(e, TufMirrorError::Rollback(_)), "{e}");
    assert_eq!((e.reason(), e.verdict()), ("TufRollback", Verdict::Tampered));
}

#[tokio::test]
async fn expired_metadata_is_refused_as_expired_not_as_an_outage() {
    let repo = Repo::new(&public_good());
    repo.run("expire", &[&repo.path("keys")]);
    let e = fetch(&repo.mirror("client")).await.unwrap_err();
    assert!(matches!(e, TufMirrorError::Expired { .. }), "{e}");
    assert_eq!((e.reason(), e.verdict()), ("TufMetadataExpired", Verdict::TrustDataExpired));
    assert!(e.to_string().contains("timestamp"), "{e}");
}

#[tokio::test]
async fn a_target_that_does_not_match_its_hashes_is_never_used() {
    let repo = Repo::new(&public_good());
    repo.run("tamper-target", &[]);
    let e = fetch(&repo.mirror("client")).await.unwrap_err();
    assert!(matches!(e, TufMirrorError::Invalid(_)), "{e}");
    assert_eq!(e.verdict(), Verdict::Tampered);
}

#[tokio::test]
async fn another_repositorys_root_is_not_trusted_and_a_mirror_that_is_down_is_an_outage() {
    let repo = Repo::new(&public_good());
    let other = Repo::new(&public_good());
    // Pinned to another repository's root: its keys sign nothing here.
    let mut m = repo.mirror("client");
    m.root_json = std::fs::read(other.dir.path().join("repo/1.root.json")).unwrap();
    let e = fetch(&m).await.unwrap_err();
    assert_eq!(e.verdict(), Verdict::Tampered, "{e}");
    // Down: an outage, never a verdict against an image.
    let mut down = repo;
    down.stop();
    let e = fetch(&down.mirror("client2")).await.unwrap_err();
    assert!(matches!(e, TufMirrorError::Unreachable(_)), "{e}");
    assert_eq!(e.verdict(), Verdict::TrustDataUnavailable);
}
