//! What the fuzz targets share: real notary metadata (fuzz/fixtures/, made by
//! `TRUSTWATCH_UPDATE_FUZZ_SEEDS=1 cargo test --test fuzz_fixtures`) served from memory to the
//! pure TUF core, and the trusted state it verifies to.
#![forbid(unsafe_code)]

use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use trustwatch::tuf::metadata::{self, Root, Snapshot, Targets, limits};
use trustwatch::tuf::{Anchors, Fetch, FetchError, PinnedKey, TrustMemory, TrustedRepo, update};

/// The real repository the fuzzers start from.
pub struct Fixtures {
    pub gun: String,
    /// The instant the fixtures were made: every document is valid then.
    pub now: Timestamp,
    pub anchors: Anchors,
    /// Documents by the name the verifier fetches them by, in a fixed order.
    pub files: Vec<(String, Vec<u8>)>,
    /// The canonical `signed` bytes of every real document, by role: nothing else may ever be
    /// trusted, whatever bytes the fuzzer serves.
    pub genuine: BTreeMap<String, BTreeSet<Vec<u8>>>,
    /// The state the real documents verify to (for incremental updates).
    pub trusted: TrustedRepo,
}

/// The role a document name belongs to: `3.root.json` -> root, `targets/releases.<hex>.json`
/// -> targets/releases.
pub fn role_of(name: &str) -> String {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let stem = stem.rsplit_once('.').map_or(stem, |(head, tail)| {
        if tail.len() == 64 && tail.bytes().all(|b| b.is_ascii_hexdigit()) { head } else { stem }
    });
    match stem.split_once('.') {
        Some((v, "root")) if v.bytes().all(|b| b.is_ascii_digit()) => "root".into(),
        _ => stem.to_string(),
    }
}

/// The canonical bytes of `bytes` parsed as `role`, when they parse.
pub fn canonical(role: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let limit = limits::MAX_LISTED;
    match role {
        "root" => metadata::parse::<Root>(role, bytes, limit, "Root").ok().map(|d| d.canonical),
        "timestamp" => metadata::parse::<Snapshot>(role, bytes, limit, "Timestamp").ok().map(|d| d.canonical),
        "snapshot" => metadata::parse::<Snapshot>(role, bytes, limit, "Snapshot").ok().map(|d| d.canonical),
        _ => metadata::parse::<Targets>(role, bytes, limit, "Targets").ok().map(|d| d.canonical),
    }
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("fuzz/fixtures/index.json")).unwrap();
        let files: Vec<(String, Vec<u8>)> = index["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let n = n.as_str().unwrap().to_string();
                let bytes = std::fs::read(dir.join(n.replace('/', "%2F"))).unwrap();
                (n, bytes)
            })
            .collect();
        let mut genuine: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
        for (name, bytes) in &files {
            let role = role_of(name);
            let c = canonical(&role, bytes).unwrap_or_else(|| panic!("fixture {name} does not parse"));
            genuine.entry(role).or_default().insert(c);
        }
        let gun = index["gun"].as_str().unwrap().to_string();
        let now: Timestamp = index["now"].as_str().unwrap().parse().unwrap();
        let pinned = vec![PinnedKey::from_pem("root", index["rootPem"].as_str().unwrap()).unwrap()];
        let anchors = Anchors { pinned, revoked: BTreeSet::new() };
        let served = Served::new(&files, None);
        let trusted = futures::executor::block_on(update(&served, &gun, None, &TrustMemory::default(), &anchors, now))
            .expect("the fixtures verify");
        Fixtures { gun, now, anchors, files, genuine, trusted }
    })
}

/// Serves the real documents from memory, one of them (or a name absent from the fixtures)
/// replaced by the fuzzer's bytes.
pub struct Served<'a> {
    files: &'a [(String, Vec<u8>)],
    replace: Option<(&'a str, &'a [u8])>,
    /// Whether the replaced document was asked for at all.
    pub read_replaced: Mutex<bool>,
}

impl<'a> Served<'a> {
    pub fn new(files: &'a [(String, Vec<u8>)], replace: Option<(&'a str, &'a [u8])>) -> Self {
        Served { files, replace, read_replaced: Mutex::new(false) }
    }
}

impl Fetch for Served<'_> {
    async fn fetch(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let body = match self.replace {
            Some((n, b)) if n == name => {
                *self.read_replaced.lock().unwrap() = true;
                Some(b.to_vec())
            }
            _ => self.files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()),
        };
        match body {
            // What the HTTP client does: never more than `limit` bytes.
            Some(b) if b.len() as u64 > limit => Err(FetchError::TooLarge { path: name.into(), limit }),
            other => Ok(other),
        }
    }
}
