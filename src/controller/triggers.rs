//! What makes policies scan again, and how often.
//!
//! A pod update is only a reason to scan when something verification looks at changed: its
//! images, `imageID`s, phase, labels, owners or trustwatch annotations (not its conditions,
//! resource version or heartbeat-driven status fields). Scans are throttled, not debounced: the
//! first change starts a scan at once, further changes within `period` are coalesced into one
//! scan at its end. A debounce would wait for a quiet moment that pod churn may never give.

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Resource;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// Remembers a fingerprint of each pod's scan-relevant fields, to tell the updates that matter
/// from the ones that do not.
#[derive(Default)]
pub struct PodFingerprints {
    seen: HashMap<String, u64>,
}

/// The scan-relevant fields of a (stripped) pod: labels, trustwatch annotations, owners,
/// images, phase and image IDs.
pub fn pod_fingerprint(pod: &Pod) -> u64 {
    let meta = &pod.metadata;
    let mut h = DefaultHasher::new();
    meta.labels.hash(&mut h);
    let ours: BTreeMap<&String, &String> =
        meta.annotations.iter().flatten().filter(|(k, _)| k.starts_with("trustwatch.dev/")).collect();
    ours.hash(&mut h);
    for o in meta.owner_references.iter().flatten() {
        (&o.kind, &o.name, &o.uid).hash(&mut h);
    }
    if let Some(spec) = &pod.spec {
        for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
            (&c.name, &c.image).hash(&mut h);
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            (&c.name, &c.image).hash(&mut h);
        }
    }
    if let Some(status) = &pod.status {
        status.phase.hash(&mut h);
        for s in status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .chain(status.ephemeral_container_statuses.iter().flatten())
        {
            (&s.name, &s.image_id).hash(&mut h);
        }
    }
    h.finish()
}

fn key<K: Resource>(o: &K) -> String {
    format!("{}/{}", o.meta().namespace.as_deref().unwrap_or_default(), o.meta().name.as_deref().unwrap_or_default())
}

impl PodFingerprints {
    /// `Some(())` when the watch event changes something a scan looks at.
    pub fn relevant(&mut self, event: Result<watcher::Event<Pod>, watcher::Error>) -> Option<()> {
        match event.ok()? {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                let fp = pod_fingerprint(&p);
                (self.seen.insert(key(&p), fp) != Some(fp)).then_some(())
            }
            watcher::Event::Delete(p) => {
                self.seen.remove(&key(&p));
                Some(())
            }
            watcher::Event::InitDone => Some(()),
            watcher::Event::Init => None,
        }
    }
}

/// Remembers namespace labels: only label changes (and namespaces coming and going) change
/// what a `namespaceSelector` selects.
#[derive(Default)]
pub struct NamespaceLabels {
    seen: HashMap<String, u64>,
}

impl NamespaceLabels {
    pub fn relevant(
        &mut self,
        event: Result<watcher::Event<PartialObjectMeta<Namespace>>, watcher::Error>,
    ) -> Option<()> {
        match event.ok()? {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                let mut h = DefaultHasher::new();
                n.metadata.labels.hash(&mut h);
                let fp = h.finish();
                (self.seen.insert(key(&n), fp) != Some(fp)).then_some(())
            }
            watcher::Event::Delete(n) => {
                self.seen.remove(&key(&n));
                Some(())
            }
            watcher::Event::InitDone => Some(()),
            watcher::Event::Init => None,
        }
    }
}

/// The predicate of the TrustRoot and ImageTrustPolicy watches: the spec (generation),
/// annotations (`trustwatch.dev/recheck`), finalizers and deletion. Status writes, ours
/// included, change none of them.
pub fn spec_or_lifecycle<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut h = DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.as_ref().map(|t| t.0.as_second()).hash(&mut h);
    Some(h.finish())
}

/// Passes the first trigger at once, then at most one per `period`: triggers arriving within
/// a period are coalesced into one at its end.
pub fn throttle<S>(input: S, period: Duration) -> impl Stream<Item = ()> + Send + 'static
where
    S: Stream<Item = ()> + Send + 'static,
{
    let (mut tx, rx) = futures::channel::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        use futures::SinkExt;
        let mut input = Box::pin(input.fuse());
        'outer: while input.next().await.is_some() {
            loop {
                if tx.send(()).await.is_err() {
                    break 'outer;
                }
                let quiet = tokio::time::sleep(period);
                tokio::pin!(quiet);
                let mut pending = false;
                loop {
                    tokio::select! {
                        _ = &mut quiet => break,
                        next = input.next() => match next {
                            Some(()) => pending = true,
                            None => break 'outer,
                        },
                    }
                }
                if !pending {
                    break;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(image_id: &str, ready: &str, rv: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "resourceVersion": rv, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "r.example/app:v1"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
                       "containerStatuses": [{"name": "app", "image": "x", "imageID": image_id, "ready": true, "restartCount": 0}]}
        }))
        .unwrap()
    }

    #[test]
    fn only_updates_to_what_a_scan_reads_are_relevant() {
        let mut f = PodFingerprints::default();
        assert_eq!(f.relevant(Ok(watcher::Event::Apply(pod("r@sha256:1", "True", "1")))), Some(()));
        // A new resource version and another condition: nothing a scan reads.
        assert_eq!(f.relevant(Ok(watcher::Event::Apply(pod("r@sha256:1", "False", "2")))), None);
        assert_eq!(f.relevant(Ok(watcher::Event::Apply(pod("r@sha256:2", "False", "3")))), Some(()));
        assert_eq!(f.relevant(Ok(watcher::Event::Delete(pod("r@sha256:2", "False", "4")))), Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_changes_still_yields_a_scan_every_period() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
        let out = throttle(rx, Duration::from_secs(5));
        tokio::pin!(out);
        // Changes every second for 20 seconds: a debounce of 5s would never fire.
        tokio::spawn(async move {
            for _ in 0..20 {
                tx.unbounded_send(()).unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let start = tokio::time::Instant::now();
        let mut at = vec![];
        for _ in 0..4 {
            out.next().await.unwrap();
            at.push(start.elapsed().as_secs());
        }
        assert_eq!(at, vec![0, 5, 10, 15]);
    }
}
