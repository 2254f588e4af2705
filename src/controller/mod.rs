//! The operator: a TrustRoot controller that keeps trust data fresh and an ImageTrustPolicy
//! controller that re-verifies every running pod. Each reconcile gathers (caches, verified
//! trust data), decides (pure functions in [`crate::scanner`] and [`status`]) and acts
//! (server-side apply of only what changed).

pub mod policy;
pub mod roots;
pub mod status;
pub mod trust_root;

use crate::telemetry::Metrics;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use roots::TrustRootRuntime;
use std::collections::HashMap;
use std::sync::Arc;

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
    ("apps", "replicasets", "list"),
    ("apps", "replicasets", "watch"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("trustwatch.dev", "trustroots", "list"),
    ("trustwatch.dev", "trustroots", "watch"),
    ("trustwatch.dev", "trustroots/status", "patch"),
    ("trustwatch.dev", "imagetrustpolicies", "list"),
    ("trustwatch.dev", "imagetrustpolicies", "watch"),
    ("trustwatch.dev", "imagetrustpolicies/status", "patch"),
    ("trustwatch.dev", "imagetrustreports", "list"),
    ("trustwatch.dev", "imagetrustreports", "patch"),
    ("trustwatch.dev", "imagetrustreports", "delete"),
    ("trustwatch.dev", "imagetrustreports/status", "patch"),
    ("networking.k8s.io", "networkpolicies", "list"),
    ("networking.k8s.io", "networkpolicies", "patch"),
    ("networking.k8s.io", "networkpolicies", "delete"),
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
];

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
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::Serialize(_) => "SerializationError",
        }
    }
}

/// What the reconcilers share.
pub struct Context {
    pub client: kube::Client,
    pub roots: tokio::sync::RwLock<HashMap<String, Arc<TrustRootRuntime>>>,
    pub pods: Store<Pod>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub replicasets: Store<PartialObjectMeta<ReplicaSet>>,
    pub jobs: Store<PartialObjectMeta<Job>>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub operator_namespace: String,
    /// Policy -> the `trustwatch.dev/recheck` value already honoured.
    pub rechecks: std::sync::Mutex<HashMap<String, String>>,
    /// Asks every policy to scan again (trust data changed).
    pub rescan: futures::channel::mpsc::UnboundedSender<()>,
}

/// Runs both controllers until SIGTERM/ctrl-c. `ready` turns true once the caches synced.
pub async fn run(
    client: kube::Client,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    operator_namespace: String,
) -> Result<(), Error> {
    use crate::crd::{ImageTrustPolicy, TrustRoot};
    use futures::{StreamExt, future};
    use kube::ResourceExt;
    use kube::api::Api;
    use kube::runtime::controller::{Config as ControllerConfig, Controller};
    use kube::runtime::events::Reporter;
    use kube::runtime::reflector;
    use kube::runtime::utils::{Predicate, WatchStreamExt, predicates};
    use kube::runtime::watcher;
    use std::time::Duration;

    let wc = watcher::Config::default();
    // Pods enter the cache stripped to names, owners, images and image IDs.
    let (pods, pods_w) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), wc.clone())
        .default_backoff()
        .modify(crate::scanner::pods::strip_pod)
        .reflect(pods_w)
        .touched_objects()
        .map(|_| ());
    let (namespaces, ns_w) = reflector::store();
    let ns_events = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), wc.clone())
        .default_backoff()
        .modify(|m| m.metadata.managed_fields = None)
        .reflect(ns_w)
        .touched_objects()
        .map(|_| ());
    let replicasets = owner_cache::<ReplicaSet>(&client, &wc);
    let jobs = owner_cache::<Job>(&client, &wc);

    let (rescan_tx, rescan_rx) = futures::channel::mpsc::unbounded();
    let reporter = Reporter { controller: "trustwatch".into(), instance: std::env::var("POD_NAME").ok() };
    let ctx = Arc::new(Context {
        client: client.clone(),
        roots: Default::default(),
        pods: pods.clone(),
        namespaces: namespaces.clone(),
        replicasets: replicasets.clone(),
        jobs: jobs.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        operator_namespace,
        rechecks: Default::default(),
        rescan: rescan_tx,
    });

    // Our own status writes must not trigger scans: only spec (generation) and annotation
    // (trustwatch.dev/recheck) changes do.
    // Deletions are taken from the same watches (the controllers only see objects that
    // exist): a deleted trust root's runtime is dropped, and metric series are forgotten.
    let (deleted_tx, deleted_rx) = futures::channel::mpsc::unbounded::<(bool, String)>();
    let on_delete = |is_root: bool| {
        let tx = deleted_tx.clone();
        move |name: String| {
            let _ = tx.unbounded_send((is_root, name));
        }
    };
    let (tr_store, tr_w) = reflector::store();
    let root_deleted = on_delete(true);
    let tr_stream = watcher(Api::<TrustRoot>::all(client.clone()), wc.clone())
        .default_backoff()
        .reflect(tr_w)
        .inspect(move |e| {
            if let Ok(watcher::Event::Delete(o)) = e {
                root_deleted(o.name_any());
            }
        })
        .applied_objects()
        .predicate_filter(
            (predicates::generation as fn(&TrustRoot) -> Option<u64>).combine(predicates::annotations),
            Default::default(),
        );
    let (pol_store, pol_w) = reflector::store();
    let policy_deleted = on_delete(false);
    let pol_stream = watcher(Api::<ImageTrustPolicy>::all(client.clone()), wc.clone())
        .default_backoff()
        .reflect(pol_w)
        .inspect(move |e| {
            if let Ok(watcher::Event::Delete(o)) = e {
                policy_deleted(o.name_any());
            }
        })
        .applied_objects()
        .predicate_filter(
            (predicates::generation as fn(&ImageTrustPolicy) -> Option<u64>).combine(predicates::annotations),
            Default::default(),
        );

    let sync = {
        let (pods, namespaces, replicasets, jobs) =
            (pods.clone(), namespaces.clone(), replicasets.clone(), jobs.clone());
        let (tr_store, pol_store) = (tr_store.clone(), pol_store.clone());
        async move {
            let _ = pods.wait_until_ready().await;
            let _ = namespaces.wait_until_ready().await;
            let _ = replicasets.wait_until_ready().await;
            let _ = jobs.wait_until_ready().await;
            let _ = tr_store.wait_until_ready().await;
            let _ = pol_store.wait_until_ready().await;
            ready.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!("caches synced; ready");
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

    let trust_roots = Controller::for_stream(tr_stream, tr_store)
        .with_config(ControllerConfig::default().concurrency(4))
        .shutdown_on_signal()
        .run(trust_root::reconcile, trust_root::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    // Pod and namespace changes and trust data changes re-run every policy (debounced).
    let triggers = futures::stream::select(futures::stream::select(pod_events, ns_events), rescan_rx);
    let policies = Controller::for_stream(pol_stream, pol_store)
        .with_config(ControllerConfig::default().debounce(Duration::from_secs(5)).concurrency(2))
        .reconcile_all_on(triggers)
        .shutdown_on_signal()
        .run(policy::reconcile, policy::error_policy, ctx)
        .for_each(|_| future::ready(()));
    tokio::join!(trust_roots, policies);
    Ok(())
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
