//! The operator: a TrustRoot controller that keeps trust data fresh and an ImageTrustPolicy
//! controller that re-verifies every running pod. Each reconcile gathers (caches, verified
//! trust data), decides (pure functions in [`crate::scanner`] and [`status`]) and acts
//! (server-side apply of only what changed).

pub mod leader;
pub mod policy;
pub mod pull;
pub mod roots;
pub mod status;
pub mod triggers;
pub mod trust_root;

use crate::scanner::pods::CachedPod;
use crate::telemetry::Metrics;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use roots::TrustRootRuntime;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Every Kubernetes API call the operator makes: (API group, resource, verb). A test checks
/// that `config/rbac` grants each of them, and the mock API server checks that the code makes
/// no other.
pub const API_CALLS: &[(&str, &str, &str)] = &[
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods", "patch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    ("", "secrets", "get"),
    ("", "configmaps", "get"),
    ("apps", "replicasets", "list"),
    ("apps", "replicasets", "watch"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("trustwatch.dev", "trustroots", "list"),
    ("trustwatch.dev", "trustroots", "watch"),
    ("trustwatch.dev", "trustroots/status", "patch"),
    ("trustwatch.dev", "imagetrustpolicies", "list"),
    ("trustwatch.dev", "imagetrustpolicies", "watch"),
    ("trustwatch.dev", "imagetrustpolicies", "patch"),
    ("trustwatch.dev", "imagetrustpolicies/status", "patch"),
    ("trustwatch.dev", "imagetrustreports", "list"),
    ("trustwatch.dev", "imagetrustreports", "watch"),
    ("trustwatch.dev", "imagetrustreports", "patch"),
    ("trustwatch.dev", "imagetrustreports", "delete"),
    ("trustwatch.dev", "imagetrustreports/status", "patch"),
    ("networking.k8s.io", "networkpolicies", "list"),
    ("networking.k8s.io", "networkpolicies", "watch"),
    ("networking.k8s.io", "networkpolicies", "patch"),
    ("networking.k8s.io", "networkpolicies", "delete"),
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
    // --policy-reports, in the group it names.
    ("wgpolicyk8s.io", "policyreports", "list"),
    ("wgpolicyk8s.io", "policyreports", "patch"),
    ("wgpolicyk8s.io", "policyreports", "delete"),
    ("openreports.io", "reports", "list"),
    ("openreports.io", "reports", "patch"),
    ("openreports.io", "reports", "delete"),
    // The admission webhook's serving certificate (src/admission/certs.rs): its Secret in the
    // operator's namespace and the caBundle of its webhook configurations.
    ("", "secrets", "create"),
    ("", "secrets", "update"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "get"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"),
];

/// The calls `registry.usePodPullSecrets` adds, in any namespace: granted only by the kustomize
/// component `config/components/pod-pull-secrets`, which a user adds knowingly.
pub const POD_PULL_SECRET_API_CALLS: &[(&str, &str, &str)] = &[("", "secrets", "get"), ("", "serviceaccounts", "get")];

/// Name of the deny-all NetworkPolicy that isolates quarantined pods in a namespace.
pub const QUARANTINE_NETWORK_POLICY: &str = "trustwatch-quarantine";
/// Label on objects the operator manages (NetworkPolicies).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "trustwatch");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serialize {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("leader election failed: {0}")]
    Leader(String),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::Serialize(_) => "SerializationError",
            Error::Leader(_) => "LeaderElectionFailed",
        }
    }
}

/// How `trustwatch run` is configured (its command-line flags).
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The operator's namespace: never quarantined, not selected by default, home of the
    /// leader Lease and, by default, of the Secrets it may read.
    pub operator_namespace: String,
    /// Who this replica is (its pod name): the Lease holder identity and the events' instance.
    pub identity: String,
    /// Only TrustRoots and ImageTrustPolicies with these labels are reconciled (a label
    /// selector), so that several instances can share a cluster.
    pub policy_selector: Option<String>,
    /// Leader election: the Lease name and its duration. `None` runs without election (one
    /// replica only).
    pub leader_election: Option<LeaderElection>,
    /// At most one scan per policy per this period, however fast pods change.
    pub scan_throttle: Duration,
    /// The most pods trustwatch keeps quarantined in the cluster, all policies together.
    pub max_quarantined: u32,
    /// Namespaces besides the operator's own where TrustRoots may reference Secrets.
    pub secret_namespaces: Vec<String>,
    /// Also write each policy's verdicts as PolicyReports of this group (`--policy-reports`).
    pub policy_reports: Option<crate::scanner::policy_report::PolicyReportGroup>,
    /// The admission webhook, served on every replica; `None` serves none.
    pub webhook: Option<crate::admission::server::WebhookConfig>,
}

#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub lease: String,
    pub duration_seconds: u64,
}

impl RunConfig {
    pub fn new(operator_namespace: &str) -> RunConfig {
        RunConfig {
            operator_namespace: operator_namespace.to_string(),
            identity: "trustwatch".into(),
            policy_selector: None,
            leader_election: None,
            scan_throttle: DEFAULT_SCAN_THROTTLE,
            max_quarantined: DEFAULT_MAX_QUARANTINED,
            secret_namespaces: vec![],
            policy_reports: None,
            webhook: None,
        }
    }
}

/// Default of `--scan-throttle`.
pub const DEFAULT_SCAN_THROTTLE: Duration = Duration::from_secs(5);
/// Default of `--max-quarantined`.
pub const DEFAULT_MAX_QUARANTINED: u32 = 100;

/// The verdict of every (namespace, pod, container) of one policy's last scan.
pub type PodVerdicts = HashMap<(String, String, String), crate::verdict::Verdict>;

/// What the reconcilers share.
pub struct Context {
    pub client: kube::Client,
    pub roots: tokio::sync::RwLock<HashMap<String, Arc<TrustRootRuntime>>>,
    /// The TrustRoots this instance reconciles: a policy waits for each of them to be loaded
    /// before its first scan, so that a restart never reads as an outage.
    pub trust_roots: Store<crate::crd::TrustRoot>,
    /// The ImageTrustPolicies this instance reconciles (the admission webhook decides by them).
    pub policies: Store<crate::crd::ImageTrustPolicy>,
    pub pods: Store<CachedPod>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub replicasets: Store<PartialObjectMeta<ReplicaSet>>,
    pub jobs: Store<PartialObjectMeta<Job>>,
    /// Every NetworkPolicy: where trustwatch's deny-all exists, and which others let a
    /// quarantined pod's traffic through.
    pub network_policies: Store<NetworkPolicy>,
    /// The reports of every policy (labelled with [`crate::crd::POLICY_LABEL`]), stripped of
    /// managed fields and annotations: what each scan compares its reports with, without a
    /// LIST per scan.
    pub reports: Store<crate::crd::ImageTrustReport>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub config: RunConfig,
    /// Policy -> the `trustwatch.dev/recheck` value already honoured.
    pub rechecks: std::sync::Mutex<HashMap<String, String>>,
    /// Policy -> its last full scan: the verdict of every (namespace, pod, container) then, for
    /// events on transitions (after a restart, the stored reports stand in), and what lets a
    /// scan with the same inputs reuse its decision.
    pub verdicts: std::sync::Mutex<HashMap<String, Arc<policy::LastScan>>>,
    /// Asks every policy to scan again (trust data changed).
    pub rescan: futures::channel::mpsc::UnboundedSender<()>,
    /// Pods' registry credentials read recently (`registry.usePodPullSecrets`).
    pub pull_configs: tokio::sync::Mutex<pull::PullCache>,
    /// True once every cache has listed: no scan runs on a partial view of the cluster (it
    /// would delete the reports of the workloads it has not seen yet).
    pub synced: Arc<std::sync::atomic::AtomicBool>,
    /// Quarantine decisions are taken one policy at a time, against the pods labelled now:
    /// the cache, corrected by the labels this process wrote that the cache has not seen yet.
    pub quarantine: tokio::sync::Mutex<QuarantineLedger>,
    /// Policy -> namespace -> a fingerprint of the PolicyReport this process last wrote there
    /// (`--policy-reports`), so that an unchanged report is not written again.
    pub policy_reports: std::sync::Mutex<HashMap<String, HashMap<String, u64>>>,
}

/// The quarantine labels this process set or removed recently: (namespace, pod) -> labelled.
#[derive(Debug, Default)]
pub struct QuarantineLedger {
    pub recent: HashMap<(String, String), bool>,
}

impl QuarantineLedger {
    /// Pods labelled quarantined in the cluster: the cache, corrected by recent writes (which
    /// are forgotten once the cache agrees).
    pub fn count(&mut self, pods: &Store<CachedPod>) -> u32 {
        use kube::ResourceExt;
        let mut labelled: std::collections::HashSet<(String, String)> = pods
            .state()
            .iter()
            .filter(|p| p.labels().get(crate::crd::QUARANTINED_LABEL).is_some_and(|v| v == "true"))
            .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
            .collect();
        self.recent.retain(|k, on| labelled.contains(k) != *on);
        for (k, on) in &self.recent {
            if *on {
                labelled.insert(k.clone());
            } else {
                labelled.remove(k);
            }
        }
        labelled.len() as u32
    }
}

impl Context {
    pub fn operator_namespace(&self) -> &str {
        &self.config.operator_namespace
    }

    /// A namespace's labels, as the cache has them (none when it is not cached).
    pub fn namespace_labels(&self, namespace: &str) -> std::collections::BTreeMap<String, String> {
        use kube::ResourceExt;
        let ns = self.namespaces.state().into_iter().find(|n| n.name_any() == namespace);
        ns.map(|n| n.labels().clone()).unwrap_or_default()
    }
}

/// Runs both controllers until SIGTERM/ctrl-c. `ready` turns true once the caches synced
/// and, with `config.webhook`, the webhook listens.
/// With leader election, every replica keeps its caches warm and serves health and metrics,
/// but only the leader runs the controllers (and so writes).
pub async fn run(
    client: kube::Client,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    config: RunConfig,
) -> Result<(), Error> {
    use crate::crd::{ImageTrustPolicy, TrustRoot};
    use futures::{StreamExt, future};
    use kube::ResourceExt;
    use kube::api::Api;
    use kube::runtime::controller::{Config as ControllerConfig, Controller};
    use kube::runtime::events::Reporter;
    use kube::runtime::reflector;
    use kube::runtime::utils::WatchStreamExt;
    use kube::runtime::watcher;

    let wc = watcher::Config::default();
    // Pods enter the cache stripped to names, owners, images and image IDs. Finished pods
    // (Succeeded, Failed) run nothing and are left out by the server.
    let pod_wc = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let (pods, pods_w) = reflector::store();
    let mut fingerprints = triggers::PodFingerprints::default();
    let pod_events = watcher(Api::<CachedPod>::all(client.clone()), pod_wc)
        .default_backoff()
        .modify(crate::scanner::pods::strip_pod)
        .reflect(pods_w)
        .filter_map(move |e| future::ready(fingerprints.relevant(e)));
    let (namespaces, ns_w) = reflector::store();
    let mut ns_labels = triggers::NamespaceLabels::default();
    let ns_events = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), wc.clone())
        .default_backoff()
        .modify(|m| m.metadata.managed_fields = None)
        .reflect(ns_w)
        .filter_map(move |e| future::ready(ns_labels.relevant(e)));
    let replicasets = owner_cache::<ReplicaSet>(&client, &wc);
    let jobs = owner_cache::<Job>(&client, &wc);
    let network_policies = {
        let (store, writer) = reflector::store();
        let events = watcher(Api::<NetworkPolicy>::all(client.clone()), wc.clone())
            .default_backoff()
            .modify(|np| np.metadata.managed_fields = None)
            .reflect(writer)
            .touched_objects();
        tokio::spawn(events.for_each(|_| future::ready(())));
        store
    };

    let reports = {
        let (store, writer) = reflector::store();
        let by_policy = wc.clone().labels(crate::crd::POLICY_LABEL);
        let events = watcher(Api::<crate::crd::ImageTrustReport>::all(client.clone()), by_policy)
            .default_backoff()
            .modify(|r| {
                r.metadata.managed_fields = None;
                r.metadata.annotations = None;
            })
            .reflect(writer)
            .touched_objects();
        // A refused or failing watch is logged; scans LIST the reports until it has listed.
        tokio::spawn(events.for_each(|e| {
            if let Err(e) = e {
                tracing::warn!(cache = "imagetrustreports", error = %e, "report watch failed; scans list reports instead");
            }
            future::ready(())
        }));
        store
    };

    let selected = match &config.policy_selector {
        Some(sel) => wc.clone().labels(sel),
        None => wc.clone(),
    };
    let (rescan_tx, rescan_rx) = futures::channel::mpsc::unbounded();
    let reporter = Reporter { controller: "trustwatch".into(), instance: Some(config.identity.clone()) };
    let (tr_store, tr_w) = reflector::store();
    let (pol_store, pol_w) = reflector::store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        roots: Default::default(),
        trust_roots: tr_store.clone(),
        policies: pol_store.clone(),
        pods: pods.clone(),
        namespaces: namespaces.clone(),
        replicasets: replicasets.clone(),
        jobs: jobs.clone(),
        network_policies: network_policies.clone(),
        reports: reports.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        config: config.clone(),
        rechecks: Default::default(),
        verdicts: Default::default(),
        rescan: rescan_tx,
        quarantine: Default::default(),
        synced: Default::default(),
        pull_configs: Default::default(),
        policy_reports: Default::default(),
    });

    // Our own status writes must not trigger scans: only spec (generation), annotation
    // (trustwatch.dev/recheck), finalizer and deletion changes do.
    // Deletions are taken from the same watches (the controllers only see objects that
    // exist): a deleted trust root's runtime is dropped, and metric series are forgotten.
    let (deleted_tx, deleted_rx) = futures::channel::mpsc::unbounded::<(bool, String)>();
    let on_delete = |is_root: bool| {
        let tx = deleted_tx.clone();
        move |name: String| {
            let _ = tx.unbounded_send((is_root, name));
        }
    };
    let root_deleted = on_delete(true);
    let tr_stream = watcher(Api::<TrustRoot>::all(client.clone()), selected.clone())
        .default_backoff()
        .reflect(tr_w)
        .inspect(move |e| {
            if let Ok(watcher::Event::Delete(o)) = e {
                root_deleted(o.name_any());
            }
        })
        .applied_objects()
        .predicate_filter(triggers::spec_or_lifecycle::<TrustRoot>, Default::default());
    let policy_deleted = on_delete(false);
    let pol_stream = watcher(Api::<ImageTrustPolicy>::all(client.clone()), selected)
        .default_backoff()
        .reflect(pol_w)
        .inspect(move |e| {
            if let Ok(watcher::Event::Delete(o)) = e {
                policy_deleted(o.name_any());
            }
        })
        .applied_objects()
        .predicate_filter(triggers::spec_or_lifecycle::<ImageTrustPolicy>, Default::default());

    let sync = {
        let (pods, namespaces, replicasets, jobs, network_policies) =
            (pods.clone(), namespaces.clone(), replicasets.clone(), jobs.clone(), network_policies.clone());
        let (tr_store, pol_store) = (tr_store.clone(), pol_store.clone());
        let synced = ctx.synced.clone();
        // With the webhook, the replica is ready when it answers too (the webhook's Service
        // sends the API server's calls to ready replicas only): the webhook sets `ready`.
        let (serves_webhook, ready) = (config.webhook.is_some(), ready.clone());
        async move {
            // Say which cache is late, so a slow or refused list shows in the logs.
            let waiting = async {
                macro_rules! wait {
                    ($store:expr, $what:literal) => {
                        while tokio::time::timeout(Duration::from_secs(10), $store.wait_until_ready()).await.is_err() {
                            tracing::warn!(cache = $what, "still waiting for the first list of {}", $what);
                        }
                    };
                }
                wait!(pods, "pods");
                wait!(namespaces, "namespaces");
                wait!(replicasets, "replicasets");
                wait!(jobs, "jobs");
                wait!(network_policies, "networkpolicies");
                wait!(tr_store, "trustroots");
                wait!(pol_store, "imagetrustpolicies");
            };
            waiting.await;
            synced.store(true, std::sync::atomic::Ordering::SeqCst);
            if serves_webhook {
                tracing::info!("caches synced; ready once the webhook serves");
            } else {
                ready.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::info!("caches synced; ready");
            }
        }
    };
    tokio::spawn(sync);

    let deletions = {
        let ctx = ctx.clone();
        deleted_rx.for_each(move |(is_root, name)| {
            let ctx = ctx.clone();
            async move {
                if is_root {
                    ctx.roots.write().await.remove(&name);
                    ctx.metrics.forget_trust_root(&name);
                } else {
                    ctx.metrics.forget_policy(&name);
                }
                tracing::info!(name = %name, trust_root = is_root, "deleted; state and metric series dropped");
            }
        })
    };
    tokio::spawn(deletions);

    // The webhook answers on every replica, from the same caches and trust roots.
    if let Some(webhook) = config.webhook.clone() {
        tokio::spawn(crate::admission::server::run(ctx.clone(), webhook, ready.clone()));
    }

    // Every replica follows the watches (warm caches, health, metrics); only the leader
    // reconciles. Until it leads, what the watches yield is dropped: the first pass after
    // taking over reconciles everything from the caches.
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tr_changes = drive(tr_stream, leading.clone());
    let pol_changes = drive(pol_stream, leading.clone());
    let pod_changes = drive(pod_events, leading.clone());
    let ns_changes = drive(ns_events, leading.clone());
    let mut leadership = leader::elect(&client, &config, &metrics).await?;
    if !leadership.wait_until_leading().await {
        leadership.release().await;
        return Ok(());
    }
    leading.store(true, std::sync::atomic::Ordering::SeqCst);

    let kick = || futures::stream::once(future::ready(()));
    let trust_roots = Controller::for_stream(tr_changes, tr_store)
        .with_config(ControllerConfig::default().concurrency(4))
        .reconcile_all_on(kick())
        .shutdown_on_signal()
        .run(trust_root::reconcile, trust_root::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    // Pod, namespace and trust data changes re-run every policy, at most once per throttle
    // period: a steady stream of pod changes delays a scan by one period, never forever.
    // A pod or namespace change scans only the policies that select its namespace.
    let everything = rescan_rx.map(|()| triggers::Change::Everything);
    let changes = futures::stream::select(futures::stream::select(pod_changes, ns_changes), everything);
    let (all_tx, all_rx) = futures::channel::mpsc::unbounded::<()>();
    let refs = {
        let ctx = ctx.clone();
        let pol_store = pol_store.clone();
        changes.filter_map(move |change| {
            let refs = match change {
                triggers::Change::Everything => {
                    let _ = all_tx.unbounded_send(());
                    vec![]
                }
                triggers::Change::Namespace(ns) => policies_selecting(&ctx, &pol_store, &ns),
            };
            future::ready(Some(futures::stream::iter(refs)))
        })
    }
    .flatten();
    let policies = Controller::for_stream(pol_changes, pol_store)
        .with_config(ControllerConfig::default().concurrency(2))
        .reconcile_all_on(triggers::throttle(futures::stream::select(kick(), all_rx), config.scan_throttle))
        .reconcile_on(triggers::throttle_each(refs, config.scan_throttle))
        .shutdown_on_signal()
        .run(policy::reconcile, policy::error_policy, ctx)
        .for_each(|_| future::ready(()));
    let result = tokio::select! {
        _ = async { tokio::join!(trust_roots, policies) } => Ok(()),
        lost = leadership.lost() => lost,
    };
    // A graceful stop hands the Lease over at once instead of letting it expire.
    leadership.release().await;
    result
}

/// The policies whose namespace selection includes `namespace`.
fn policies_selecting(
    ctx: &Context,
    policies: &Store<crate::crd::ImageTrustPolicy>,
    namespace: &str,
) -> Vec<kube::runtime::reflector::ObjectRef<crate::crd::ImageTrustPolicy>> {
    let labels = ctx.namespace_labels(namespace);
    policies
        .state()
        .iter()
        .filter(|p| p.spec.selects_namespace(namespace, &labels, ctx.operator_namespace()))
        .map(|p| kube::runtime::reflector::ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Polls a watch stream for as long as the process runs (so its cache stays warm), and passes
/// its items on only while this replica leads.
fn drive<S, T>(stream: S, leading: Arc<std::sync::atomic::AtomicBool>) -> futures::channel::mpsc::UnboundedReceiver<T>
where
    S: futures::Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    use futures::StreamExt;
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        let mut stream = Box::pin(stream);
        while let Some(item) = stream.next().await {
            if leading.load(std::sync::atomic::Ordering::SeqCst) && tx.unbounded_send(item).is_err() {
                break;
            }
        }
    });
    rx
}

/// A metadata-only cache of pod owners (ReplicaSets, Jobs), kept up to date in the
/// background; it triggers nothing.
fn owner_cache<K>(client: &kube::Client, wc: &kube::runtime::watcher::Config) -> Store<PartialObjectMeta<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    use futures::StreamExt;
    use kube::runtime::utils::WatchStreamExt;
    let (store, writer) = kube::runtime::reflector::store();
    let events = kube::runtime::watcher(kube::Api::<PartialObjectMeta<K>>::all(client.clone()), wc.clone())
        .default_backoff()
        .modify(|m| {
            m.metadata.managed_fields = None;
            m.metadata.annotations = None;
        })
        .reflect(writer)
        .touched_objects();
    tokio::spawn(events.for_each(|_| futures::future::ready(())));
    store
}
