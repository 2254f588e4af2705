//! Integration-test harness: a REAL notary-server (Debian `notary` 0.7) on loopback, driven by
//! the REAL `notary` CLI, plus a hostile plain-HTTP proxy for lying/slow-server scenarios.
//!
//! Use from a test file with `mod support;` (each test binary uses a subset, hence
//! `allow(dead_code)`). Everything in `notary` is blocking (std::process::Command): call it
//! directly from `#[test]`, or from `#[tokio::test]` directly / via `spawn_blocking`. Only
//! the hostile proxy and token server are async (they need a tokio runtime).
//!
//! ```text
//! // ---- real stack (support::notary, re-exported here) ----
//! NotaryServer::start(Variant::Local | Variant::WithSigner) -> NotaryServer   // killed on Drop
//! NotaryServer::start_with_cert(variant, ServerCert::CaSigned | SelfSignedCa { san } | ExpiredLeaf)
//!                                  // SelfSignedCa: `openssl req -x509` (CA:TRUE), ca_pem() is itself
//!   .url() -> String ("https://127.0.0.1:PORT")   .ca_path() -> &Path   .ca_pem() -> String
//!   .dir() -> &Path   .server_log() -> String   .signer_log() -> String   .variant() -> Variant
//!   .upstream() -> Upstream (url + CA, for HostileServer)
//! NotaryClient::new(&NotaryServer) -> NotaryClient      // own tempdir trust dir + config + passphrases
//! NotaryClient::with_remote(url: &str, ca_pem: &str) -> NotaryClient
//!   .trust_dir() -> PathBuf   .config_path() -> PathBuf   .dir() -> &Path
//!   .run(&[&str]) -> CmdOutput            // panics with cmdline/stdout/stderr on non-zero exit
//!   .run_stdin(&[&str], stdin: &str) -> CmdOutput
//!   .try_run(&[&str], stdin: Option<&str>) -> CmdOutput   // never panics on exit code
//!   .last_stderr() -> String              // stderr of the most recent command (warnings!)
//!   .last_stdout() -> String              // stdout of it ("* fatal: ..." errors go here!)
//!   .last_output() -> Option<CmdOutput>
//!   .refresh(gun)                         // `notary list GUN`, ignoring the result: updates cache
//!   .init(gun)                            // `init GUN -p`; snapshot key stays client-side
//!   .init_with_server_snapshot(gun)       // init, then `key rotate GUN snapshot -r`
//!   .add_hash(gun, tag, size: u64, sha256_hex: &str, roles: &[&str])  // -p; [] = targets
//!   .remove_target(gun, tag, roles: &[&str])                          // -p
//!   .gen_delegation_key(name, KeyKind::Ecdsa | KeyKind::Rsa) -> DelegationKey
//!   .import_key(&DelegationKey, role)
//!   .delegation_add(gun, role, &DelegationKey, paths: Option<&[&str]>)  // None = --all-paths; -p
//!   .add_delegation_signer(gun, role, name, KeyKind) -> DelegationKey  // gen + import + add(all paths)
//!   .delegation_key_ids(gun, role) -> Vec<String>   // canonical IDs as printed by `delegation list`
//!   .delegation_remove_key(gun, role, keyid)       // -y -p
//!   .delegation_remove_role(gun, role)             // -y -p
//!   .rotate_key(gun, "targets" | "snapshot", server_managed: bool)  // targets can't be server-managed
//!   .rotate_root(gun)                              // feeds "yes\n" on stdin, then refresh(gun)
//!   .list(gun) -> Result<Vec<ListedTarget>, String>  // Err(stdout+stderr) when notary exits
//!                                                    // non-zero (e.g. unknown GUN); warnings of a
//!                                                    // successful list: last_stderr()
//!   .lookup(gun, tag) -> Option<ListedTarget>        // None on non-zero exit; role is "" (CLI
//!                                                    // does not print it); reason: last_stdout()
//!   .root_cert_pem(gun) -> String      // PEM cert of the current root key, from the cached root.json
//!   .root_json_bytes(gun) -> Vec<u8>   // cached trust_dir/tuf/<gun>/metadata/root.json
//!   .cached_metadata(gun, role) -> Vec<u8>   // cached trust_dir/tuf/<gun>/metadata/<role>.json
//! ListedTarget { name, digest_hex, size: u64, role }
//! DelegationKey { name, kind, key_path, cert_path, cert_pem }
//! CmdOutput { cmdline, status: Option<i32>, stdout, stderr }  .success() -> bool
//! sha_hex(seed) -> String                          // sha256 hex of seed: fake digests
//! fetch_raw(&NotaryServer, path) -> (u16, Vec<u8>) // blocking GET with the server CA (curl)
//! fetch_raw_url(url, ca_path: Option<&Path>) -> (u16, Vec<u8>)   // status 0 = connection failed
//! metadata_path(gun, role) -> String               // "/v2/<gun>/_trust/tuf/<role>.json"
//!
//! // ---- hostile proxy (support::hostile, re-exported here; async, tokio) ----
//! HostileServer::start(upstream: Option<Upstream>).await -> HostileServer  // plain HTTP, 127.0.0.1
//! HostileServer::proxy(&NotaryServer).await -> HostileServer
//!   .url() -> String ("http://127.0.0.1:PORT")   .addr() -> SocketAddr
//!   .set_rule(path_suffix, Rule)   // matched against the path without query, latest set wins;
//!                                  // "" matches every path
//!   .clear_rule(path_suffix)  .clear_rules()
//!   .require_bearer(realm_url, token)   // every request needs `Authorization: Bearer <token>`,
//!   .no_auth()                          // else 401 + WWW-Authenticate challenge
//!   .requests() -> Vec<String>           // paths (with query) in arrival order
//!   .request_log() -> Vec<LoggedRequest { path, authorization: Option<String> }>
//!   .clear_requests()
//! HostileServer::start_tls(upstream, cert_pem, key_pem).await   // https://127.0.0.1:PORT
//! HostileServer::start_on(upstream, "0.0.0.0:0").await          // reachable off loopback
//! Rule::Pass | Serve{status, body} | FlipBit{byte_index} | Oversized{bytes} | Endless
//!     | Trickle{chunk, interval_ms} | Delay{secs} | DelayMs{ms} | Status(u16)
//!     | Unauthorized{realm_url} | Close
//!     | Rewrite{from, to}      // forward with the path rewritten (A's documents for GUN B)
//!     | Redirect{location}     // 302 to <location><path>
//! TokenServer::start(token).await -> TokenServer   // GET /token?service=..&scope=.. -> {"token":..}
//! TokenServer::start_with_field(field, token).await // e.g. "access_token"
//!   .url() (base)  .realm() ("http://127.0.0.1:PORT/token")  .requests() -> Vec<LoggedRequest>
//!   .basic_auth_seen() -> bool
//! TokenServer::start_on(bind, field, token).await   .realm_at(host)
//!
//! // ---- real keys, real uploads (support::resign, re-exported here; blocking) ----
//! client.signing_key(role, Some(gun) | None) -> p256 SigningKey   // from the trust dir
//! delegation_key.signing_key() -> SigningKey
//! Metadata::fetch(&server, gun, role) / Metadata::parse(bytes)  .signed (edit)  .resign(&[(keyid, &key)])
//! key_id_of(&keys_map, &keyids, &key) -> String   // the ID a role lists that key under
//! upload(&server, gun, &[(role, bytes)])          // POST, validated by the server like any publish
//! listed_name(&server, gun, role) -> "<role>.<sha256 hex>.json"   file_meta(bytes) -> snapshot entry
//! ```
//!
//! Notation: `support::notation` (not re-exported; `use support::notation::*`) has the notation
//! CLI (`Signer`, `Verifier`), an openssl PKI (`Pki`), a TSA (`Tsa`), an HTTP peer for CRLs,
//! OCSP and the TSA (`HttpPeer`) and signature reads/writes in a registry; see its docs.
//!
//! Pitfall: blocking helpers that talk to a HostileServer/TokenServer (e.g. `fetch_raw_url` on
//! the proxy, or the notary CLI pointed at it) deadlock on a current-thread runtime; use
//! `#[tokio::test(flavor = "multi_thread")]` or `spawn_blocking` for those.

#![allow(dead_code)]

pub mod host;
pub mod hostile;
pub mod notary;
pub mod notation;
pub mod oci;
pub mod registry;
pub mod resign;

#[allow(unused_imports)]
pub use hostile::*;
#[allow(unused_imports)]
pub use notary::*;
#[allow(unused_imports)]
pub use registry::*;
#[allow(unused_imports)]
pub use resign::*;
