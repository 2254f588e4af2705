//! The `trustwatch` command line.

use crate::engine::{Resolution, ResolveOptions, TrustEngine, human_duration, parse_duration};
use crate::fetch::{Credentials, NotaryHttp, ServerConfig};
use crate::image::ImageRef;
use crate::tuf::{Anchors, PinnedKey, TrustMemory};
use crate::verdict::Verdict;
use crate::verifier::SignatureFormat;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// Verify images (one shot): against a Notary server under pinned root keys (Notary v1),
    /// or their Notation or cosign signatures in the registry.
    Verify(Box<VerifyArgs>),
    /// Run the operator's decide code offline: TrustRoot and ImageTrustPolicy manifests plus
    /// `kubectl get pods -A -o json` in, ImageTrustReports out.
    Audit(Box<AuditArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Turn a notation or Connaisseur configuration into TrustRoots and an ImageTrustPolicy
    /// (YAML on stdout; what could not be mapped on stderr).
    Import(Box<ImportArgs>),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Address serving /metrics (Prometheus text format), /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: std::net::SocketAddr,
    /// Address serving /healthz and /readyz (ready once the caches synced and, with
    /// --webhook-addr, the admission webhook listens with its certificate).
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
    /// Also write each policy's verdicts as PolicyReports, one per namespace and policy
    /// (`trustwatch-<policy>`), for Policy Reporter and other tools that read them:
    /// `wgpolicyk8s.io` (PolicyReport, v1alpha2) or `openreports.io` (Report, v1alpha1, its
    /// successor). The group's CRD must be installed.
    #[arg(long, value_enum, value_name = "GROUP")]
    pub policy_reports: Option<crate::scanner::policy_report::PolicyReportGroup>,
    /// Serve the validating admission webhook (HTTPS `POST /validate`) on this address, e.g.
    /// `0.0.0.0:9443`. Off when unset.
    #[arg(long, value_name = "ADDR")]
    pub webhook_addr: Option<std::net::SocketAddr>,
    /// The budget of a cold verification at admission (over it, the image's trust data counts
    /// as unavailable and spec.onUnavailable decides); below the webhook's timeoutSeconds.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub webhook_timeout: String,
    /// The webhook's Service in --namespace: its DNS names go into the serving certificate.
    #[arg(long, default_value = "trustwatch-webhook", value_name = "NAME")]
    pub webhook_service: String,
    /// Another host name or IP address for the serving certificate (repeatable).
    #[arg(long = "webhook-host", value_name = "HOST")]
    pub webhook_hosts: Vec<String>,
    /// The ValidatingWebhookConfiguration whose caBundle the operator keeps.
    #[arg(long, default_value = "trustwatch", value_name = "NAME")]
    pub webhook_configuration: String,
    /// The Secret in --namespace that holds the webhook's CA bundle, certificate and key.
    #[arg(long, default_value = crate::admission::certs::DEFAULT_SECRET, value_name = "NAME")]
    pub webhook_secret: String,
    /// How long a serving certificate is valid; it is rotated when a third is left.
    #[arg(long, default_value = "365d", value_name = "DURATION")]
    pub webhook_cert_validity: String,
    /// Serve the certificate and key in this directory (`tls.crt`, `tls.key`: a mounted Secret
    /// that cert-manager keeps), reloaded when they change, instead of the operator's own CA:
    /// no Secret is written and no caBundle patched (cert-manager's CA injector does that).
    #[arg(long, value_name = "DIR")]
    pub webhook_cert_dir: Option<std::path::PathBuf>,
}

/// Runs the operator until it is told to stop.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    use crate::controller::{LeaderElection, RunConfig};
    use crate::telemetry::{Metrics, init_logging, init_tracing_export, serve_admin};
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
    config.policy_reports = args.policy_reports;
    config.webhook = webhook_config(&args)?;
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

/// The webhook's configuration from the `--webhook-*` flags (`None` without --webhook-addr).
fn webhook_config(args: &RunArgs) -> anyhow::Result<Option<crate::admission::server::WebhookConfig>> {
    use crate::admission::{certs, server::WebhookConfig};
    let Some(addr) = args.webhook_addr else { return Ok(None) };
    let budget = parse_duration(&args.webhook_timeout).map_err(|e| usage(format!("--webhook-timeout: {e}")))?;
    let validity =
        parse_duration(&args.webhook_cert_validity).map_err(|e| usage(format!("--webhook-cert-validity: {e}")))?;
    let validity = Duration::from_secs(validity.as_secs().max(30) as u64);
    Ok(Some(WebhookConfig {
        addr,
        budget: Duration::from_millis(budget.as_millis().max(100) as u64),
        certs: certs::CertConfig {
            namespace: args.namespace.clone(),
            secret: args.webhook_secret.clone(),
            names: certs::serving_names(&args.webhook_service, &args.namespace, &args.webhook_hosts),
            validity,
            configuration: args.webhook_configuration.clone(),
        },
        // Files another tool rotates are read every 10 s (cheap, local).
        check_every: match args.webhook_cert_dir {
            Some(_) => Duration::from_secs(10),
            None => (validity / 10).min(Duration::from_secs(300)),
        },
        cert_dir: args.webhook_cert_dir.clone(),
    }))
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
    /// Print the migration view off Docker Content Trust instead: per workload and container,
    /// whether the running digest depends on Notary v1 alone, or has a Notation or cosign
    /// signature that verifies or fails. Exit 0 when every covered container has a successor
    /// signature that verifies, 1 otherwise.
    #[arg(long)]
    pub migration: bool,
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
        ReportOutput::Table if args.migration => print!("{}", crate::audit::migration_table(&result, &roots, now)),
        ReportOutput::Table => print!("{}", crate::audit::table(&result)),
    }
    if args.migration {
        return Ok(if result.migrated() { 0 } else { 1 });
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
#[command(after_help = VERIFY_HELP)]
pub struct VerifyArgs {
    /// Notary server (https://host:port).
    #[arg(long, env = "TRUSTWATCH_NOTARY_SERVER")]
    pub server: Option<String>,
    /// Pinned root public key or certificate, PEM (repeatable).
    #[arg(long = "root-key", value_name = "FILE")]
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

    /// notation's trust policy file, `trustpolicy.json` (or `trustpolicy.oci.json`).
    #[arg(long = "trust-policy", value_name = "FILE", help_heading = "Notation")]
    pub trust_policy: Option<PathBuf>,
    /// notation's trust store: the directory holding `x509/{ca,signingAuthority,tsa}/<name>/`.
    #[arg(long = "trust-store", value_name = "DIR", help_heading = "Notation")]
    pub trust_store: Option<PathBuf>,
    /// A notation configuration directory (`$XDG_CONFIG_HOME/notation`): its trust policy and
    /// `truststore/`, instead of --trust-policy and --trust-store.
    #[arg(long = "notation-config", value_name = "DIR", help_heading = "Notation")]
    pub notation_config: Option<PathBuf>,

    /// cosign public key, PEM (`cosign.pub`; repeatable: any of them may sign).
    #[arg(long = "key", value_name = "FILE", help_heading = "cosign")]
    pub keys: Vec<PathBuf>,
    /// An annotation the signature must carry (`cosign sign -a KEY=VALUE`; repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE", help_heading = "cosign")]
    pub annotations: Vec<String>,
    /// Rekor public key, PEM (repeatable): every signature then needs a transparency log entry
    /// that verifies offline with it. Without it the log is not checked (as
    /// `cosign verify --insecure-ignore-tlog`).
    #[arg(long = "rekor-key", value_name = "FILE", help_heading = "cosign")]
    pub rekor_keys: Vec<PathBuf>,

    /// CA bundle (PEM) for the registries' TLS certificates; the system roots otherwise.
    #[arg(long = "registry-ca", value_name = "FILE", help_heading = "Registry (Notation and cosign)")]
    pub registry_ca: Option<PathBuf>,
    /// Registry credentials: a docker `config.json` (`auths`).
    #[arg(long = "registry-config", value_name = "FILE", help_heading = "Registry (Notation and cosign)")]
    pub registry_config: Option<PathBuf>,
    /// Talk plain HTTP to the registries (a local registry only; https, e.g. a token service,
    /// then trusts only --registry-ca).
    #[arg(long = "plain-http", help_heading = "Registry (Notation and cosign)")]
    pub plain_http: bool,
}

const VERIFY_HELP: &str = "\
The flags given choose the signature format (one per run):
  Notary v1  trustwatch verify --server URL --root-key root.pem [--signer NAME]... IMAGE...
  Notation   trustwatch verify --trust-policy trustpolicy.json --trust-store DIR IMAGE...
             trustwatch verify --notation-config ~/.config/notation IMAGE...
  cosign     trustwatch verify --key cosign.pub [--annotation KEY=VALUE]... IMAGE...
Notation and cosign verify a digest: IMAGE names one (@sha256:...) or a tag, which the
registry resolves first; the output says which digest was verified.
Exit codes: 0 every image trusted, 1 some image not trusted, 2 usage or configuration error.";

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
    match verify_format(&args)? {
        SignatureFormat::NotaryV1 => verify_notary_v1(args).await,
        format => verify_in_registry(args, format).await,
    }
}

/// Which format the flags ask for; flags of two formats together are a usage error.
fn verify_format(args: &VerifyArgs) -> anyhow::Result<SignatureFormat> {
    // Flags that also come from the environment count only when given on the command line.
    let from_cli =
        |value: Option<&str>, env: &str| value.is_some_and(|v| std::env::var(env).ok().as_deref() != Some(v));
    let given = |pairs: &[(bool, &'static str)]| pairs.iter().filter(|(g, _)| *g).map(|(_, f)| *f).collect::<Vec<_>>();
    let notary = given(&[
        (from_cli(args.server.as_deref(), "TRUSTWATCH_NOTARY_SERVER"), "--server"),
        (!args.root_keys.is_empty(), "--root-key"),
        (args.ca_file.is_some(), "--ca-file"),
        (!args.signers.is_empty(), "--signer"),
        (!args.revoked_keys.is_empty(), "--revoked-key"),
        (args.state.is_some(), "--state"),
        (from_cli(args.username.as_deref(), "TRUSTWATCH_NOTARY_USERNAME"), "--username"),
        (from_cli(args.password.as_deref(), "TRUSTWATCH_NOTARY_PASSWORD"), "--password"),
    ]);
    let notation = given(&[
        (args.trust_policy.is_some(), "--trust-policy"),
        (args.trust_store.is_some(), "--trust-store"),
        (args.notation_config.is_some(), "--notation-config"),
    ]);
    let cosign = given(&[
        (!args.keys.is_empty(), "--key"),
        (!args.annotations.is_empty(), "--annotation"),
        (!args.rekor_keys.is_empty(), "--rekor-key"),
    ]);
    let registry = given(&[
        (args.registry_ca.is_some(), "--registry-ca"),
        (args.registry_config.is_some(), "--registry-config"),
        (args.plain_http, "--plain-http"),
    ]);
    let chosen: Vec<(SignatureFormat, &Vec<&str>)> = [
        (SignatureFormat::NotaryV1, &notary),
        (SignatureFormat::Notation, &notation),
        (SignatureFormat::Cosign, &cosign),
    ]
    .into_iter()
    .filter(|(_, flags)| !flags.is_empty())
    .collect();
    let format = match chosen.as_slice() {
        [] if args.server.is_some() => SignatureFormat::NotaryV1,
        [] => {
            return Err(usage(
                "say what to verify against: --server and --root-key (Notary v1), --trust-policy and --trust-store or \
                 --notation-config (Notation), or --key (cosign)",
            ));
        }
        [(format, _)] => *format,
        several => {
            let list: Vec<String> =
                several.iter().map(|(f, flags)| format!("{} ({})", flags.join(", "), f.display_name())).collect();
            return Err(usage(format!(
                "flags of different signature formats cannot be mixed: {}; verify one format per run",
                list.join(" and ")
            )));
        }
    };
    if format == SignatureFormat::NotaryV1 && !registry.is_empty() {
        return Err(usage(format!(
            "{} only apply to Notation and cosign; for a Notary server use --ca-file, --username and --password",
            registry.join(", ")
        )));
    }
    Ok(format)
}

/// Notary v1: the trust data of a Notary server under pinned root keys.
async fn verify_notary_v1(args: VerifyArgs) -> anyhow::Result<i32> {
    let Some(server) = args.server.clone() else {
        return Err(usage("--server URL (or TRUSTWATCH_NOTARY_SERVER) is required with --root-key"));
    };
    if args.root_keys.is_empty() {
        return Err(usage("--root-key FILE is required: the pinned root key(s) of the Notary repositories"));
    }
    let now = parse_now(&args.now)?;
    let expiry_warning = parse_duration(&args.expiry_warning).map_err(|e| usage(format!("--expiry-warning: {e}")))?;
    let timeout = parse_duration(&args.timeout).map_err(|e| usage(format!("--timeout: {e}")))?;
    let mut pinned = vec![];
    for path in &args.root_keys {
        let pem = read(path, "root key")?;
        pinned.push(PinnedKey::from_pem(&path.display().to_string(), &pem).map_err(usage)?);
    }
    let images = args.images.iter().map(|i| ImageRef::parse(i).map_err(usage)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut config = ServerConfig::new(&server);
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
        state.insert(image.gun(), Arc::unwrap_or_clone(view.memory));
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

/// Notation and cosign: the signatures in the registry, verified for the digest of each image.
async fn verify_in_registry(args: VerifyArgs, format: SignatureFormat) -> anyhow::Result<i32> {
    use crate::notation::{NotationError, NotationTrustSource, NotationVerifier, ShellOptions, TrustConfig};
    use crate::oci::{DockerConfig, RegistryClient, RegistryConfig};
    use std::sync::Arc;
    let now = parse_now(&args.now)?;
    let expiry_warning = parse_duration(&args.expiry_warning).map_err(|e| usage(format!("--expiry-warning: {e}")))?;
    let timeout = parse_duration(&args.timeout).map_err(|e| usage(format!("--timeout: {e}")))?;
    let images = args.images.iter().map(|i| registry_image(i)).collect::<anyhow::Result<Vec<_>>>()?;

    // A plain-http registry needs no TLS roots: the system's are not loaded then (they are
    // most of a one-shot run); a CA bundle given is still used for https.
    let system_roots = !args.plain_http;
    let mut config = RegistryConfig { plain_http: args.plain_http, system_roots, ..Default::default() };
    config.timeout = Duration::from_millis(timeout.as_millis().max(1000) as u64);
    config.connect_timeout = config.timeout.min(config.connect_timeout);
    if let Some(ca) = &args.registry_ca {
        config.ca_pem = Some(read(ca, "registry CA file (--registry-ca)")?);
    }
    if let Some(path) = &args.registry_config {
        let bytes =
            std::fs::read(path).map_err(|e| usage(format!("cannot read --registry-config {}: {e}", path.display())))?;
        config.credentials =
            DockerConfig::parse(&bytes).map_err(|e| usage(format!("--registry-config {}: {e}", path.display())))?;
    }
    let client = RegistryClient::new(config).map_err(|e| match &args.registry_ca {
        Some(ca) => usage(format!("--registry-ca {}: {e}", ca.display())),
        None => usage(e.to_string()),
    })?;
    let client = Arc::new(client);

    enum Shell {
        Notation(Box<NotationVerifier>),
        Cosign(Box<crate::cosign::CosignVerifier>),
    }
    let shell = if format == SignatureFormat::Notation {
        let source = match (&args.notation_config, &args.trust_policy, &args.trust_store) {
            (Some(dir), None, None) => NotationTrustSource::from_config_dir(dir)
                .map_err(|e| usage(format!("--notation-config {}: {e}", dir.display())))?,
            (None, Some(policy), Some(store)) => {
                if !store.join("x509").is_dir() {
                    return Err(usage(format!(
                        "--trust-store {}: no x509/ directory (notation's layout: x509/{{ca,signingAuthority,tsa}}/<name>/)",
                        store.display()
                    )));
                }
                NotationTrustSource::from_files(policy, store).map_err(|e| match e {
                    NotationError::InvalidTrustStore { .. } => usage(format!("--trust-store {}: {e}", store.display())),
                    _ => usage(format!("--trust-policy {}: {e}", policy.display())),
                })?
            }
            (None, Some(_), None) => return Err(usage("--trust-policy needs --trust-store DIR")),
            (None, None, Some(_)) => return Err(usage("--trust-store needs --trust-policy FILE")),
            _ => {
                return Err(usage(
                    "--notation-config replaces --trust-policy and --trust-store: give one or the other",
                ));
            }
        };
        // A policy that names a store the trust store lacks is a configuration error, found
        // before anything is fetched (images no policy covers are NotCovered answers).
        if let NotationTrustSource::Notation { policy, store } = &source {
            for image in &images {
                if let Ok(p) = policy.policy_for(&image.gun()) {
                    TrustConfig::from_policy(p, store).map_err(|e| {
                        let flag = match &args.notation_config {
                            Some(dir) => format!("--notation-config {}", dir.display()),
                            None => format!(
                                "--trust-store {}",
                                args.trust_store.as_deref().unwrap_or(Path::new("")).display()
                            ),
                        };
                        usage(format!("{flag}: {e}"))
                    })?;
                }
            }
        }
        Shell::Notation(Box::new(NotationVerifier::new(client.clone(), source, ShellOptions::default())))
    } else {
        use crate::cosign::{CosignKey, CosignVerifier, LogKey, TrustConfig};
        let mut keys = vec![];
        for path in &args.keys {
            let pem = read(path, "cosign public key (--key)")?;
            keys.push(
                CosignKey::from_pem(&key_name(path), &pem)
                    .map_err(|e| usage(format!("--key {}: {e}", path.display())))?,
            );
        }
        let mut required_annotations = BTreeMap::new();
        for a in &args.annotations {
            let (k, v) = a
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| usage(format!("--annotation {a:?} is not KEY=VALUE")))?;
            required_annotations.insert(k.to_string(), v.to_string());
        }
        let mut log_keys = vec![];
        for path in &args.rekor_keys {
            let pem = read(path, "Rekor public key (--rekor-key)")?;
            log_keys.push(
                LogKey::from_pem(&key_name(path), &pem)
                    .map_err(|e| usage(format!("--rekor-key {}: {e}", path.display())))?,
            );
        }
        Shell::Cosign(Box::new(CosignVerifier::new(
            client.clone(),
            TrustConfig { keys, required_annotations, log_keys },
        )))
    };

    let started = Instant::now();
    // Images are verified side by side, as the operator does (results in the given order).
    // Each is its own task, so a batch's parsing and signature checks spread over every core
    // rather than sharing the one task that polls them all (BENCHMARKS.md: 1.12x to 1.27x on
    // olareg). Notary v1 repositories above stay in one task: spread over the cores, they cost
    // more instructions (176 M instead of 139 M for 20 repositories) for no steady gain.
    let shell = std::sync::Arc::new(shell);
    let results: Vec<Resolution> = futures::stream::iter(images.iter().cloned())
        .map(|image| {
            let (shell, client) = (shell.clone(), client.clone());
            tokio::spawn(async move {
                match shell.as_ref() {
                    Shell::Notation(v) => v.verify_image(&image, now, expiry_warning, started).await,
                    Shell::Cosign(v) => {
                        let mut r = v.verify_image(&image, now, started).await;
                        // As the Notation shell does: where the tag points now, when not at the digest.
                        if let (Some(tag), Some(digest)) = (&image.tag, &image.digest)
                            && let Ok(Some(d)) =
                                client.head_manifest(&crate::oci::Repository::from_image(&image), tag).await
                            && &d.digest != digest
                        {
                            r.tag_digest = Some(d.digest);
                        }
                        r
                    }
                }
            })
        })
        .buffered(crate::controller::roots::VERIFY_CONCURRENCY)
        .map(|joined| joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
        .collect()
        .await;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        Output::Table => print!("{}", table(&results, now)),
    }
    Ok(if results.iter().all(|r| r.verdict.is_trusted()) { 0 } else { 1 })
}

/// An image for Notation or cosign: it names a digest or a tag (as `notation verify` asks).
fn registry_image(input: &str) -> anyhow::Result<ImageRef> {
    let image = ImageRef::parse(input).map_err(usage)?;
    let name = input.trim().split('@').next().unwrap_or("");
    let names_tag = name.rsplit('/').next().is_some_and(|last| last.contains(':'));
    if image.digest.is_none() && !names_tag {
        return Err(usage(format!("{input:?} names neither a digest (@sha256:...) nor a tag (:v1)")));
    }
    Ok(image)
}

/// The name a key is reported by: its file name.
fn key_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
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
        if let Some(d) = &r.tag_digest {
            out.push_str(&format!(" (the tag now points to {d})"));
        }
        for w in &r.warnings {
            out.push_str(&format!("; warning: {w}"));
        }
        out.push('\n');
    }
    let failing = results.iter().filter(|r| !r.verdict.is_trusted()).count();
    if failing > 0 {
        let worst = Verdict::worst(results.iter().map(|r| r.verdict)).unwrap_or(Verdict::Verified);
        out.push_str(&format!("\n{failing} of {} image(s) not verified (worst: {worst})\n", results.len()));
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

#[derive(Subcommand, Debug)]
pub enum ImportSource {
    /// A notation trust policy and trust store: one Notation TrustRoot per trust policy
    /// statement, one image rule per registry scope.
    Notation(ImportNotationArgs),
    /// Connaisseur Helm values (2.x or 3.x): TrustRoots per validator trust root, image rules
    /// from the image policy.
    Connaisseur(ImportConnaisseurArgs),
}

#[derive(clap::Args, Debug)]
pub struct ImportNotationArgs {
    /// notation's trust policy (`trustpolicy.json`, or notation 2's `trustpolicy.oci.json`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "trust_store",
        conflicts_with = "notation_config",
        required_unless_present = "notation_config"
    )]
    pub trust_policy: Option<PathBuf>,
    /// notation's trust store directory (holding `x509/ca/<name>/...`).
    #[arg(long, value_name = "DIR", requires = "trust_policy")]
    pub trust_store: Option<PathBuf>,
    /// A notation configuration directory (`$XDG_CONFIG_HOME/notation`): its trust policy and
    /// `truststore/`.
    #[arg(long, value_name = "DIR")]
    pub notation_config: Option<PathBuf>,
    /// Prefix of every generated name.
    #[arg(long, value_name = "P", default_value = "")]
    pub name_prefix: String,
    /// Registry credentials of every TrustRoot: a kubernetes.io/dockerconfigjson Secret.
    #[arg(long, value_name = "NS/NAME")]
    pub registry_secret: Option<String>,
    /// Read the registries over plain HTTP (a local or lab registry only).
    #[arg(long)]
    pub plain_http: bool,
}

#[derive(clap::Args, Debug)]
pub struct ImportConnaisseurArgs {
    /// Connaisseur's Helm values (`values.yaml`).
    #[arg(value_name = "VALUES")]
    pub values: PathBuf,
    /// Prefix of every generated name.
    #[arg(long, value_name = "P", default_value = "")]
    pub name_prefix: String,
    /// Namespace of the Secrets the TrustRoots refer to (the operator's).
    #[arg(long, value_name = "NS", default_value = crate::import::DEFAULT_SECRET_NAMESPACE)]
    pub secret_namespace: String,
}

/// Runs `trustwatch import`: the objects on stdout, what could not be mapped on stderr. Exit
/// code 0 when something was produced, 1 when nothing could be mapped, 2 for unreadable input.
pub fn import(args: ImportArgs) -> anyhow::Result<i32> {
    use crate::import::{connaisseur, notation};
    let (imported, header) = match args.source {
        ImportSource::Notation(a) => {
            let input = match (&a.notation_config, &a.trust_policy, &a.trust_store) {
                (Some(dir), _, _) => notation::load_config_dir(dir),
                (None, Some(p), Some(s)) => notation::load_files(p, s),
                _ => return Err(usage("give --notation-config DIR, or --trust-policy FILE and --trust-store DIR")),
            }
            .map_err(|e| usage(e.to_string()))?;
            let registry_secret = match &a.registry_secret {
                Some(s) => match s.split_once('/') {
                    Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                        Some(crate::crd::SecretRef { name: name.into(), namespace: ns.into() })
                    }
                    _ => return Err(usage(format!("--registry-secret {s:?} is not NAMESPACE/NAME"))),
                },
                None => None,
            };
            let opts =
                notation::NotationOptions { name_prefix: a.name_prefix, registry_secret, plain_http: a.plain_http };
            let imported =
                notation::import(&input.policy_json, &input.store, &opts).map_err(|e| usage(e.to_string()))?;
            (imported, format!("trustwatch import notation: {}", input.policy_path))
        }
        ImportSource::Connaisseur(a) => {
            let text = read(&a.values, "Connaisseur values")?;
            let source = a.values.display().to_string();
            let opts =
                connaisseur::ConnaisseurOptions { name_prefix: a.name_prefix, secret_namespace: a.secret_namespace };
            let imported = connaisseur::import(&text, &source, &opts).map_err(|e| usage(e.to_string()))?;
            (imported, format!("trustwatch import connaisseur: {source}"))
        }
    };
    for line in imported.report_lines() {
        eprintln!("{line}");
    }
    if imported.is_empty() {
        eprintln!("error: nothing could be imported");
        return Ok(1);
    }
    print!("{}", imported.to_yaml(&header));
    Ok(0)
}
