//! Pods at the boundary: stripped to what verification needs before they enter a cache, and
//! converted to a small domain view with their top owner (the workload a report is about).

use crate::crd::WorkloadRef;
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A pod as the operator's cache holds it: the fields a scan reads, deserialized straight
/// from the API server's JSON (serde skips every other field). `k8s_openapi`'s `Pod` takes
/// about 6 KiB a pod even stripped (its container type alone is 2.3 KiB inline); this, well
/// under 1 KiB with its strings (BENCHMARKS.md, memory).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedPod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CachedPodSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CachedPodStatus>,
}

impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::ListableResource for CachedPod {
    const LIST_KIND: &'static str = "PodList";
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// `spec` of a [`CachedPod`]: containers (names and images), `hostNetwork` and what the
/// registry credentials of the pod come from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodSpec {
    #[serde(default)]
    pub containers: Vec<CachedContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<CachedContainer>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_containers: Option<Vec<CachedContainer>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedContainer {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `status` of a [`CachedPod`]: the phase and what each container runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_statuses: Option<Vec<CachedContainerStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_statuses: Option<Vec<CachedContainerStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_container_statuses: Option<Vec<CachedContainerStatus>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedContainerStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(rename = "imageID", default)]
    pub image_id: String,
}

/// What a container runs, as its status reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunningImage {
    /// A repository digest, `sha256:...` (from `repo@sha256:...` or `docker-pullable://...`).
    Digest(String),
    /// A local image configuration ID (`sha256:...` with no repository, `docker://sha256:...`):
    /// not comparable with a signed manifest digest.
    ConfigId(String),
    /// Not started yet, or nothing the runtime reported.
    #[default]
    Unknown,
}

impl RunningImage {
    /// Reads `status.*ContainerStatuses[].imageID` ([`crate::image::running_digest`]).
    pub fn from_image_id(image_id: &str) -> RunningImage {
        match crate::image::running_digest(image_id) {
            crate::image::RunningDigest::Repository(d) => RunningImage::Digest(d),
            crate::image::RunningDigest::ConfigId(d) => RunningImage::ConfigId(d),
            crate::image::RunningDigest::Missing => RunningImage::Unknown,
        }
    }

    pub fn digest(&self) -> Option<&str> {
        match self {
            RunningImage::Digest(d) => Some(d),
            _ => None,
        }
    }
}

/// One container of a pod, as verification sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    /// The image as written in the pod spec.
    pub image: String,
    /// What `status.*ContainerStatuses[].imageID` says it runs.
    pub running: RunningImage,
}

impl ContainerView {
    /// The repository digest it runs, when known.
    pub fn running_digest(&self) -> Option<&str> {
        self.running.digest()
    }
}

/// The workload a pod belongs to, with the UID used for the report's owner reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub api_version: String,
    pub uid: Option<String>,
}

impl Workload {
    pub fn as_ref(&self) -> WorkloadRef {
        WorkloadRef { kind: self.kind.clone(), name: self.name.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Value of the quarantine reason annotation, when quarantined by trustwatch.
    pub quarantine_reason: Option<String>,
    /// Value of the `trustwatch.dev/recheck` annotation: a new value asks for a scan with fresh
    /// trust data.
    pub recheck: Option<String>,
    pub workload: Workload,
    /// Init, regular and ephemeral containers.
    pub containers: Vec<ContainerView>,
    /// `spec.hostNetwork`: NetworkPolicies do not apply to such a pod.
    pub host_network: bool,
    /// The pod's own registry credentials: its imagePullSecrets and its ServiceAccount's.
    pub pull: PullRef,
}

/// The registry credentials a pod pulled with: Secrets of its namespace, named in its
/// `imagePullSecrets` and in its ServiceAccount's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PullRef {
    pub namespace: String,
    /// `spec.imagePullSecrets[].name`, sorted.
    pub secrets: Vec<String>,
    /// `spec.serviceAccountName` (its imagePullSecrets count too).
    pub service_account: String,
}

impl PodView {
    pub fn is_quarantined(&self) -> bool {
        self.labels.get(crate::crd::QUARANTINED_LABEL).is_some_and(|v| v == "true")
    }
}

/// Owner links the pod's own references do not tell: ReplicaSet -> Deployment and
/// Job -> CronJob, from the ReplicaSets and Jobs the operator watches (metadata only).
#[derive(Debug, Clone, Default)]
pub struct OwnerIndex {
    links: HashMap<(String, String, String), OwnerReference>,
}

impl OwnerIndex {
    /// Records that `kind/name` in `namespace` is controlled by `owner`.
    pub fn insert(&mut self, namespace: &str, kind: &str, name: &str, owner: OwnerReference) {
        self.links.insert((namespace.to_string(), kind.to_string(), name.to_string()), owner);
    }

    pub fn from_metas<'a>(kind: &str, metas: impl IntoIterator<Item = &'a ObjectMeta>) -> OwnerIndex {
        let mut idx = OwnerIndex::default();
        idx.extend(kind, metas);
        idx
    }

    pub fn extend<'a>(&mut self, kind: &str, metas: impl IntoIterator<Item = &'a ObjectMeta>) {
        for m in metas {
            if let (Some(ns), Some(name), Some(owner)) = (&m.namespace, &m.name, controller_of(m)) {
                self.insert(ns, kind, name, owner.clone());
            }
        }
    }

    fn get(&self, namespace: &str, kind: &str, name: &str) -> Option<&OwnerReference> {
        self.links.get(&(namespace.to_string(), kind.to_string(), name.to_string()))
    }
}

fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    let owners = meta.owner_references.as_ref()?;
    owners.iter().find(|o| o.controller == Some(true)).or_else(|| owners.first())
}

/// The top owner: Deployment, StatefulSet, DaemonSet, Job, CronJob, or the bare Pod.
pub fn top_owner(pod: &CachedPod, index: &OwnerIndex) -> Workload {
    let meta = &pod.metadata;
    let ns = meta.namespace.clone().unwrap_or_default();
    let bare = Workload {
        kind: "Pod".into(),
        name: meta.name.clone().unwrap_or_default(),
        api_version: "v1".into(),
        uid: meta.uid.clone(),
    };
    let Some(owner) = controller_of(meta) else { return bare };
    let mut cur = workload_of(owner);
    // Walk up at most two levels (Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob).
    for _ in 0..2 {
        match index.get(&ns, &cur.kind, &cur.name) {
            Some(parent) => cur = workload_of(parent),
            None => break,
        }
    }
    if cur.kind == "ReplicaSet" {
        // Without the ReplicaSet object, kubectl's own heuristic: a Deployment's ReplicaSet is
        // named `<deployment>-<pod-template-hash>`.
        let hash = meta.labels.as_ref().and_then(|l| l.get("pod-template-hash"));
        if let Some(dep) = hash.and_then(|h| cur.name.strip_suffix(&format!("-{h}"))) {
            return Workload {
                kind: "Deployment".into(),
                name: dep.to_string(),
                api_version: "apps/v1".into(),
                uid: None,
            };
        }
    }
    cur
}

fn workload_of(o: &OwnerReference) -> Workload {
    Workload {
        kind: o.kind.clone(),
        name: o.name.clone(),
        api_version: o.api_version.clone(),
        uid: Some(o.uid.clone()),
    }
}

/// Whether a pod has finished (Succeeded or Failed): it runs nothing and is not scanned.
pub fn is_finished(pod: &CachedPod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Converts a pod into the view verification uses.
pub fn pod_view(pod: &CachedPod, index: &OwnerIndex) -> PodView {
    let meta = &pod.metadata;
    let (no_spec, no_status) = (CachedPodSpec::default(), CachedPodStatus::default());
    let spec = pod.spec.as_ref().unwrap_or(&no_spec);
    let status = pod.status.as_ref().unwrap_or(&no_status);
    let mut digests: HashMap<&str, RunningImage> = HashMap::new();
    for s in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .chain(status.ephemeral_container_statuses.iter().flatten())
    {
        digests.insert(s.name.as_str(), RunningImage::from_image_id(&s.image_id));
    }
    let mut containers = vec![];
    let names_images = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .chain(
            spec.ephemeral_containers.iter().flatten().map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())),
        );
    for (name, image) in names_images {
        let running = digests.get(name.as_str()).cloned().unwrap_or_default();
        containers.push(ContainerView { name, image, running });
    }
    PodView {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        quarantine_reason: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::crd::QUARANTINE_REASON_ANNOTATION))
            .cloned(),
        recheck: meta.annotations.as_ref().and_then(|a| a.get(crate::crd::RECHECK_ANNOTATION)).cloned(),
        workload: top_owner(pod, index),
        containers,
        host_network: spec.host_network.unwrap_or(false),
        pull: PullRef {
            namespace: meta.namespace.clone().unwrap_or_default(),
            secrets: {
                let mut names: Vec<String> = spec
                    .image_pull_secrets
                    .iter()
                    .flatten()
                    .map(|s| s.name.clone())
                    .filter(|n| !n.is_empty())
                    .collect();
                names.sort();
                names.dedup();
                names
            },
            service_account: spec.service_account_name.clone().unwrap_or_else(|| "default".into()),
        },
    }
}

/// Strips a pod to what verification needs before it enters the reflector cache: names,
/// labels, owners, the trustwatch annotations, images and image IDs ([`CachedPod`] holds no
/// more). Managed fields and other annotations go.
pub fn strip_pod(pod: &mut CachedPod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    if let Some(a) = &mut meta.annotations {
        a.retain(|k, _| k.starts_with("trustwatch.dev/"));
    }
}
