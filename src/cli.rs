//! The `trustwatch` command line.

use crate::engine::{Resolution, ResolveOptions, TrustEngine, human_duration, parse_duration};
use crate::fetch::{Credentials, NotaryHttp, ServerConfig};
use crate::image::ImageRef;
use crate::tuf::{Anchors, PinnedKey, TrustMemory};
use crate::verdict::Verdict;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "trustwatch", version, about = "Continuous image-trust validation against Notary v1 trust data")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator against the current kubeconfig (or in-cluster configuration).
    Run(Box<RunArgs>),
    /// Verify images against a Notary server under pinned root keys (one shot).
    Verify(Box<VerifyArgs>),
    /// Run the operator's decide code offline: TrustRoot and ImageTrustPolicy manifests plus
    /// `kubectl get pods -A -o json` in, ImageTrustReports out.
    Audit(Box<AuditArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Address serving /metrics (Prometheus text format), /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: std::net::SocketAddr,
    /// Address serving /healthz and /readyz (ready once the caches synced).
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: std::net::SocketAddr,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: crate::telemetry::LogFormat,
    /// Log filter (env-filter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// The operator's namespace: never quarantined and not selected by default; holds the
    /// leader Lease and, by default, the only Secrets the operator reads.
    #[arg(long, env = "POD_NAMESPACE", default_value = "trustwatch-system")]
    pub namespace: String,
    /// This replica's identity: the Lease holder and the events' reporting instance.
    #[arg(long, env = "POD_NAME", default_value = "trustwatch")]
    pub identity: String,
    /// Reconcile only TrustRoots and ImageTrustPolicies matching this label selector (e.g.
    /// `team=payments`), to run several instances side by side.
    #[arg(long, value_name = "SELECTOR")]
    pub policy_selector: Option<String>,
    /// Name of the coordination.k8s.io Lease used for leader election, in --namespace.
    #[arg(long, default_value = "trustwatch-leader", value_name = "NAME")]
    pub leader_election_id: String,
    /// How long a leader holds the Lease without renewing it (e.g. 15s).
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub lease_duration: String,
    /// Run without leader election (one replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    /// At most one scan per policy per this period, however often pods change (e.g. 5s).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub scan_throttle: String,
    /// The most pods kept quarantined in the whole cluster, all policies together.
    #[arg(long, default_value_t = crate::controller::DEFAULT_MAX_QUARANTINED, value_name = "N")]
    pub max_quarantined: u32,
    /// A namespace besides --namespace whose Secrets TrustRoots may reference (repeatable).
    /// Grant the operator a Role to get Secrets there as well.
    #[arg(long = "secret-namespace", value_name = "NAMESPACE")]
    pub secret_namespaces: Vec<String>,
}

/// Runs the operator until it is told to stop.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    use crate::controller::{LeaderElection, RunConfig};
    use crate::telemetry::{Metrics, init_logging, init_tracing_export, serve_admin};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let _tracer = init_tracing_export();
    init_logging(args.log_format, &args.log_filter);
    exit_with_parent();
    let lease_duration = parse_duration(&args.lease_duration).map_err(|e| usage(format!("--lease-duration: {e}")))?;
    let scan_throttle = parse_duration(&args.scan_throttle).map_err(|e| usage(format!("--scan-throttle: {e}")))?;
    let mut config = RunConfig::new(&args.namespace);
    config.identity = args.identity.clone();
    config.policy_selector = args.policy_selector.clone();
    config.scan_throttle = Duration::from_millis(scan_throttle.as_millis().max(100) as u64);
    config.max_quarantined = args.max_quarantined;
    config.secret_namespaces = args.secret_namespaces.clone();
    config.leader_election = (!args.no_leader_election).then(|| LeaderElection {
        lease: args.leader_election_id.clone(),
        duration_seconds: lease_duration.as_secs().max(2) as u64,
    });
    let client = kube::Client::try_default().await.map_err(|e| {
        usage(format!("no Kubernetes API to talk to ({e}); set KUBECONFIG or run in a cluster with a service account"))
    })?;
    preflight(&client, args.policy_selector.as_deref()).await?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let admin = tokio::spawn(serve_admin(args.metrics_addr, metrics.clone(), ready.clone()));
    if args.health_addr != args.metrics_addr {
        tokio::spawn(serve_admin(args.health_addr, metrics.clone(), ready.clone()));
    }
    tracing::info!(metrics = %args.metrics_addr, health = %args.health_addr, namespace = %args.namespace, identity = %args.identity, "trustwatch starting");
    crate::controller::run(client, metrics, ready, config).await?;
    admin.abort();
    tracing::info!("trustwatch stopped");
    Ok(0)
}

/// Fails early, with what to do, when the CRDs are missing, the selector does not parse or
/// the operator may not list its own resources.
async fn preflight(client: &kube::Client, selector: Option<&str>) -> anyhow::Result<()> {
    use kube::api::{Api, ListParams};
    let api: Api<crate::crd::ImageTrustPolicy> = Api::all(client.clone());
    let mut lp = ListParams::default().limit(1);
    if let Some(sel) = selector {
        lp = lp.labels(sel);
    }
    match api.list_metadata(&lp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(usage(
            "the trustwatch CRDs are not installed: kubectl apply -k config/crd (or trustwatch crds | kubectl apply -f -)",
        )),
        Err(kube::Error::Api(e)) if e.code == 400 => Err(usage(format!(
            "--policy-selector {:?} is not a valid label selector: {}",
            selector.unwrap_or(""),
            e.message
        ))),
        Err(kube::Error::Api(e)) if e.code == 401 || e.code == 403 => Err(usage(format!(
            "the API server refused to list imagetrustpolicies ({}): apply config/rbac and run as the trustwatch ServiceAccount",
            e.message
        ))),
        Err(e) => Err(anyhow::anyhow!("cannot reach the Kubernetes API: {e}")),
    }
}

/// With `TRUSTWATCH_EXIT_WITH_PARENT=1` (test harnesses), the process exits when the process
/// that started it is gone, so that a test binary that crashes leaves no operator running.
fn exit_with_parent() {
    if std::env::var("TRUSTWATCH_EXIT_WITH_PARENT").as_deref() != Ok("1") {
        return;
    }
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if std::os::unix::process::parent_id() != parent {
                tracing::warn!("the parent process is gone; exiting (TRUSTWATCH_EXIT_WITH_PARENT)");
                std::process::exit(0);
            }
        }
    });
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportOutput {
    Table,
    Json,
    Yaml,
}

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// TrustRoot and ImageTrustPolicy manifests (YAML or JSON, multi-document; repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Pods as `kubectl get pods -A -o json` prints them (`-` for standard input). Add
    /// replicasets, jobs and namespaces to the same list for exact owners and namespace labels.
    #[arg(long, value_name = "FILE|-")]
    pub pods: String,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: ReportOutput,
    /// Evaluate expiry at this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// The operator's namespace (never quarantined, not selected by default).
    #[arg(long, default_value = "trustwatch-system", env = "POD_NAMESPACE")]
    pub operator_namespace: String,
    /// Credentials for TrustRoots with an authSecretRef (Secrets are not read offline).
    #[arg(long, env = "TRUSTWATCH_NOTARY_USERNAME")]
    pub username: Option<String>,
    #[arg(long, env = "TRUSTWATCH_NOTARY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Runs `trustwatch audit`; returns the exit code (0 when every covered container is verified).
pub async fn audit(args: AuditArgs) -> anyhow::Result<i32> {
    use crate::audit::{AuditInput, build_roots, parse_documents, run_audit};
    let now = parse_now(&args.now)?;
    let mut input = AuditInput::default();
    for f in &args.files {
        let text = read(f, "manifest")?;
        let docs = parse_documents(&text).map_err(|e| usage(format!("{}: {e}", f.display())))?;
        input.add(&f.display().to_string(), docs).map_err(usage)?;
    }
    let pods_text = if args.pods == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| usage(format!("cannot read pods from stdin: {e}")))?
    } else {
        read(&PathBuf::from(&args.pods), "pod list")?
    };
    let docs = parse_documents(&pods_text).map_err(|e| usage(format!("{}: {e}", args.pods)))?;
    input.add(&args.pods, docs).map_err(usage)?;
    if input.policies.is_empty() {
        return Err(usage("no ImageTrustPolicy in the -f manifests"));
    }
    let credentials = match (&args.username, &args.password) {
        (Some(u), Some(p)) => Some(Credentials { username: u.clone(), password: p.clone() }),
        _ => None,
    };
    let roots = build_roots(&input, credentials).map_err(|es| usage(es.join("\n")))?;
    let result = run_audit(&input, &roots, &args.operator_namespace, now).await;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": result.reports});
    match args.output {
        ReportOutput::Json => println!("{}", serde_json::to_string_pretty(&list)?),
        ReportOutput::Yaml => print!("{}", serde_saphyr::to_string(&list)?),
        ReportOutput::Table => print!("{}", crate::audit::table(&result)),
    }
    Ok(if result.compliant() { 0 } else { 1 })
}

fn parse_now(now: &Option<String>) -> anyhow::Result<Timestamp> {
    match now {
        Some(s) => s.parse::<Timestamp>().map_err(|e| usage(format!("--now {s:?} is not RFC 3339: {e}"))),
        None => Ok(Timestamp::now()),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Notary server (https://host:port).
    #[arg(long, env = "TRUSTWATCH_NOTARY_SERVER")]
    pub server: String,
    /// Pinned root public key or certificate, PEM (repeatable).
    #[arg(long = "root-key", value_name = "FILE", required = true)]
    pub root_keys: Vec<PathBuf>,
    /// CA bundle for the server's TLS certificate.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Required signer, e.g. `releases` or `targets/ci` (repeatable); all must sign the same digest.
    #[arg(long = "signer", value_name = "NAME")]
    pub signers: Vec<String>,
    /// Key ID never to trust, whatever the metadata says (repeatable).
    #[arg(long = "revoked-key", value_name = "KEYID")]
    pub revoked_keys: Vec<String>,
    #[arg(long, env = "TRUSTWATCH_NOTARY_USERNAME")]
    pub username: Option<String>,
    #[arg(long, env = "TRUSTWATCH_NOTARY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Evaluate expiry at this instant (RFC 3339), e.g. for audits: "was it valid then, will it be".
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Warning window for ExpiringSoon (e.g. 7d, 12h).
    #[arg(long = "expiry-warning", default_value = "7d", value_name = "DURATION")]
    pub expiry_warning: String,
    /// Per-request timeout (e.g. 10s).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
    /// File keeping trusted versions and signers between runs (rollback protection and
    /// revocation history); created when missing.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Images: host[:port]/path[:tag][@sha256:...].
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// A configuration or usage error: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))
}

/// Runs `trustwatch verify`; returns the exit code (0 all verified, 1 otherwise).
pub async fn verify(args: VerifyArgs) -> anyhow::Result<i32> {
    let now = parse_now(&args.now)?;
    let expiry_warning = parse_duration(&args.expiry_warning).map_err(|e| usage(format!("--expiry-warning: {e}")))?;
    let timeout = parse_duration(&args.timeout).map_err(|e| usage(format!("--timeout: {e}")))?;
    let mut pinned = vec![];
    for path in &args.root_keys {
        let pem = read(path, "root key")?;
        pinned.push(PinnedKey::from_pem(&path.display().to_string(), &pem).map_err(usage)?);
    }
    let images = args.images.iter().map(|i| ImageRef::parse(i).map_err(usage)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut config = ServerConfig::new(&args.server);
    config.timeout = Duration::from_secs(timeout.as_secs().max(1) as u64);
    if let Some(ca) = &args.ca_file {
        config.ca_pem = Some(read(ca, "CA file")?);
    }
    config.credentials = match (&args.username, &args.password) {
        (Some(u), Some(p)) => Some(Credentials { username: u.clone(), password: p.clone() }),
        (None, None) => None,
        _ => return Err(usage("--username and --password go together")),
    };
    let http = NotaryHttp::new(config).map_err(usage)?;
    let anchors = Anchors { pinned, revoked: args.revoked_keys.iter().cloned().collect() };
    let engine = TrustEngine::new(http, anchors);

    let mut state: BTreeMap<String, TrustMemory> = match &args.state {
        Some(p) if p.exists() => serde_json::from_str(&read(p, "state file")?)
            .map_err(|e| usage(format!("state file {} is not valid: {e}", p.display())))?,
        _ => BTreeMap::new(),
    };
    for (gun, memory) in &state {
        engine.remember(gun, memory.clone()).await;
    }
    let opts = ResolveOptions { signers: args.signers.clone(), now, expiry_warning };
    let started = Instant::now();
    // Repositories are verified side by side (images of one repository share its refresh).
    let results: Vec<Resolution> = futures::stream::iter(&images)
        .map(|image| engine.verify(image, &opts, started))
        .buffered(crate::controller::roots::VERIFY_CONCURRENCY)
        .collect()
        .await;
    for image in &images {
        let view = engine.repository(&image.gun(), now, started).await;
        state.insert(image.gun(), view.memory);
    }
    if let Some(p) = &args.state {
        std::fs::write(p, serde_json::to_string_pretty(&state)?)
            .map_err(|e| anyhow::anyhow!("cannot write state file {}: {e}", p.display()))?;
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        Output::Table => print!("{}", table(&results, now)),
    }
    Ok(if results.iter().all(|r| r.verdict.is_trusted()) { 0 } else { 1 })
}

/// A table for people.
pub fn table(results: &[Resolution], now: Timestamp) -> String {
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            let digest =
                r.digest.as_deref().map(|d| d.chars().take(19).collect::<String>()).unwrap_or_else(|| "-".into());
            let expires = match (&r.expires, &r.expires_role) {
                (Some(t), Some(role)) => format!("{role} in {}", human_duration(t.duration_since(now))),
                _ => "-".into(),
            };
            let signers = if r.signers.is_empty() { "-".into() } else { r.signers.join(",") };
            [r.image.clone(), r.verdict.to_string(), digest, signers, expires]
        })
        .collect();
    let headers = ["IMAGE", "VERDICT", "DIGEST", "SIGNERS", "NEXT EXPIRY"];
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        for (i, c) in cells.iter().enumerate() {
            out.push_str(&format!("{c:<w$}  ", w = widths[i]));
        }
        out.push_str("MESSAGE\n");
    };
    line(headers.to_vec(), &mut out);
    out.truncate(out.len() - "MESSAGE\n".len());
    out.push_str("MESSAGE\n");
    for (row, r) in rows.iter().zip(results) {
        for (i, c) in row.iter().enumerate() {
            out.push_str(&format!("{c:<w$}  ", w = widths[i]));
        }
        out.push_str(&r.message);
        out.push('\n');
    }
    let failing = results.iter().filter(|r| !r.verdict.is_trusted()).count();
    if failing > 0 {
        let worst = Verdict::worst(results.iter().map(|r| r.verdict)).unwrap_or(Verdict::Verified);
        out.push_str(&format!("\n{failing} of {} image(s) not verified (worst: {worst})\n", results.len()));
    }
    out
}
