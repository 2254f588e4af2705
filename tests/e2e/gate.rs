//! Whether the cluster tests run.
//!
//! They run only when `TRUSTWATCH_E2E=1` is set, a kubeconfig is found (`KUBECONFIG`, else
//! `~/.kube/config`), the tools are on PATH and `kubectl version` reaches the API server.
//! Otherwise each cluster test writes why it skipped and how to run it to stderr, and passes.
//! `TRUSTWATCH_E2E_REQUIRED=1` (set by hack/e2e-kind.sh and the e2e workflow) turns a skip
//! into a failure, so a broken CI cluster cannot pass as "skipped".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Opt-in switch for the cluster tests.
pub const ENABLE_VAR: &str = "TRUSTWATCH_E2E";
/// Makes a skip a failure.
pub const REQUIRED_VAR: &str = "TRUSTWATCH_E2E_REQUIRED";
/// The operator image to run instead of the one in config/manager (must be pullable by the
/// cluster, e.g. loaded with `kind load docker-image`).
pub const IMAGE_VAR: &str = "TRUSTWATCH_IMAGE";
/// Leave everything the suite created in place (for debugging a failure).
pub const KEEP_VAR: &str = "TRUSTWATCH_E2E_KEEP";
/// Where kubectl looks for its configuration first.
pub const KUBECONFIG_VAR: &str = "KUBECONFIG";
/// Tools the cluster tests drive.
pub const TOOLS: &[&str] = &["kubectl", "notary", "openssl", "curl"];

/// What the gate looked at, gathered once per process.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `TRUSTWATCH_E2E`.
    pub enabled: Option<String>,
    /// `KUBECONFIG`: one or more paths separated by the platform's path separator.
    pub kubeconfig: Option<String>,
    /// `~/.kube/config`, when a home directory is known.
    pub default_kubeconfig: Option<PathBuf>,
    /// Kubeconfig files that exist among the above (KUBECONFIG wins when set, as for kubectl).
    pub found_kubeconfigs: Vec<PathBuf>,
    /// Tools of [`TOOLS`] not on PATH.
    pub missing_tools: Vec<&'static str>,
}

impl Facts {
    pub fn from_env() -> Facts {
        let kubeconfig = std::env::var(KUBECONFIG_VAR).ok().filter(|v| !v.trim().is_empty());
        let default_kubeconfig = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"));
        let candidates: Vec<PathBuf> = match &kubeconfig {
            Some(list) => std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()).collect(),
            None => default_kubeconfig.iter().cloned().collect(),
        };
        Facts {
            enabled: std::env::var(ENABLE_VAR).ok(),
            kubeconfig,
            default_kubeconfig,
            found_kubeconfigs: candidates.into_iter().filter(|p| p.is_file()).collect(),
            missing_tools: TOOLS.iter().copied().filter(|t| !on_path(t)).collect(),
        }
    }

    /// Whether the user opted in.
    pub fn is_enabled(&self) -> bool {
        matches!(self.enabled.as_deref().map(str::trim), Some("1" | "true" | "yes"))
    }
}

/// The cluster to run against, as `kubectl version` and `kubectl config current-context` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The kubeconfig context every kubectl call of the suite pins (`--context`).
    pub context: String,
    pub server_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run(Target),
    Skip { reason: String },
}

/// Decides from the facts; `reach` (which runs kubectl against the cluster) is called only
/// when everything else allows a run, so nothing touches a cluster unless asked to.
pub fn decide(facts: &Facts, reach: impl FnOnce() -> Result<Target, String>) -> Decision {
    if !facts.is_enabled() {
        let now = match &facts.enabled {
            Some(v) => format!("{ENABLE_VAR}={v:?}"),
            None => format!("{ENABLE_VAR} is not set"),
        };
        return Decision::Skip { reason: format!("the cluster tests are opt-in ({now})") };
    }
    if !facts.missing_tools.is_empty() {
        return Decision::Skip { reason: format!("not on PATH: {}", facts.missing_tools.join(", ")) };
    }
    if facts.found_kubeconfigs.is_empty() {
        return Decision::Skip { reason: "no kubeconfig file found".into() };
    }
    match reach() {
        Ok(target) => Decision::Run(target),
        Err(e) => Decision::Skip { reason: format!("the cluster does not answer: {e}") },
    }
}

/// The skip message: what was looked for and how to run the suite.
pub fn skip_message(test: &str, reason: &str, facts: &Facts) -> String {
    let kubeconfig = match &facts.kubeconfig {
        Some(v) => format!("KUBECONFIG={v}"),
        None => "KUBECONFIG (not set)".to_string(),
    };
    let default = match &facts.default_kubeconfig {
        Some(p) if facts.kubeconfig.is_none() => {
            format!(", then {} ({})", p.display(), if p.is_file() { "found" } else { "missing" })
        }
        Some(p) => format!(" (so {} is not used)", p.display()),
        None => ", then ~/.kube/config (HOME not set)".to_string(),
    };
    let enabled = match &facts.enabled {
        Some(v) => format!("{ENABLE_VAR}={v}"),
        None => format!("{ENABLE_VAR} (not set)"),
    };
    format!(
        "SKIPPED {test}: {reason}.\n\
         \x20 looked for: {enabled}; {kubeconfig}{default}; `kubectl version` reaching the API server; \
         {tools} on PATH\n\
         \x20 run it on a throwaway kind cluster (needs docker and kind): hack/e2e-kind.sh\n\
         \x20 or against the current kubeconfig context (it creates namespaces trustwatch-e2e and \
         trustwatch-e2e-apps, a TrustRoot and an ImageTrustPolicy, and installs config/default when \
         trustwatch is not installed; it removes what it created):\n\
         \x20   {ENABLE_VAR}=1 {IMAGE_VAR}=<operator image the cluster can pull> \
         cargo test --test e2e -- --nocapture --test-threads=1\n",
        tools = TOOLS.join(", "),
    )
}

struct Gate {
    facts: Facts,
    decision: Decision,
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let facts = Facts::from_env();
        let decision = decide(&facts, probe_cluster);
        Gate { facts, decision }
    })
}

/// The cluster to run against, or `None` after writing the skip message to stderr (directly,
/// so that it shows even though the test harness captures the output of passing tests).
/// With `TRUSTWATCH_E2E_REQUIRED=1` a skip panics instead.
pub fn cluster_or_skip(test: &str) -> Option<Target> {
    let gate = gate();
    match &gate.decision {
        Decision::Run(target) => Some(target.clone()),
        Decision::Skip { reason } => {
            let msg = skip_message(test, reason.trim_end_matches('.'), &gate.facts);
            if std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "1") {
                panic!("{REQUIRED_VAR}=1 but the suite cannot run:\n{msg}");
            }
            let _ = std::io::stderr().write_all(msg.as_bytes());
            None
        }
    }
}

/// `kubectl config current-context` and `kubectl version`, bounded by a request timeout.
fn probe_cluster() -> Result<Target, String> {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("kubectl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!("`kubectl {}` failed: {}", args.join(" "), err.trim()))
        }
    };
    let context = run(&["config", "current-context"])?;
    let version = run(&["--context", &context, "version", "--request-timeout=10s", "-o", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&version).map_err(|e| format!("kubectl version: {e}"))?;
    let server_version = v
        .pointer("/serverVersion/gitVersion")
        .and_then(|s| s.as_str())
        .ok_or_else(|| format!("kubectl version printed no server version: {version}"))?
        .to_string();
    Ok(Target { context, server_version })
}

/// Whether an executable of that name is on PATH.
pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(bin))))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
