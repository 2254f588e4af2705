//! What makes policies scan again, and how often.
//!
//! A pod update is only a reason to scan when something verification looks at changed: its
//! images, `imageID`s, phase, labels, owners or trustwatch annotations (not its conditions,
//! resource version or heartbeat-driven status fields). Scans are throttled, not debounced: the
//! first change starts a scan at once, further changes within `period` are coalesced into one
//! scan at its end. A debounce would wait for a quiet moment that pod churn may never give.

use crate::scanner::pods::CachedPod;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
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
pub fn pod_fingerprint(pod: &CachedPod) -> u64 {
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

/// What changed, for the policies it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// Something in this namespace (a pod, or the namespace's labels).
    Namespace(String),
    /// Anything at all (a relist, trust data): every policy.
    Everything,
}

impl PodFingerprints {
    /// The change a watch event makes, when it changes something a scan looks at.
    pub fn relevant(&mut self, event: Result<watcher::Event<CachedPod>, watcher::Error>) -> Option<Change> {
        let ns = |p: &CachedPod| Change::Namespace(p.metadata.namespace.clone().unwrap_or_default());
        match event.ok()? {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                let fp = pod_fingerprint(&p);
                (self.seen.insert(key(&p), fp) != Some(fp)).then(|| ns(&p))
            }
            watcher::Event::Delete(p) => {
                self.seen.remove(&key(&p));
                Some(ns(&p))
            }
            watcher::Event::InitDone => Some(Change::Everything),
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
    ) -> Option<Change> {
        let ns = |n: &PartialObjectMeta<Namespace>| Change::Namespace(n.metadata.name.clone().unwrap_or_default());
        match event.ok()? {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                let mut h = DefaultHasher::new();
                n.metadata.labels.hash(&mut h);
                let fp = h.finish();
                (self.seen.insert(key(&n), fp) != Some(fp)).then(|| ns(&n))
            }
            watcher::Event::Delete(n) => {
                self.seen.remove(&key(&n));
                Some(ns(&n))
            }
            watcher::Event::InitDone => Some(Change::Everything),
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

/// Throttles each distinct item on its own: an item passes at once when it did not pass in the
/// last `period`, else once at the end of that period however often it arrived meanwhile.
/// (Per policy: a busy namespace delays no scan of a policy that does not select it.)
pub fn throttle_each<T, S>(input: S, period: Duration) -> impl Stream<Item = T> + Send + 'static
where
    T: Clone + Eq + std::hash::Hash + Send + 'static,
    S: Stream<Item = T> + Send + 'static,
{
    use std::collections::HashSet;
    use tokio::time::Instant;
    let (tx, rx) = futures::channel::mpsc::unbounded::<T>();
    tokio::spawn(async move {
        let mut input = Box::pin(input.fuse());
        let mut last: HashMap<T, Instant> = HashMap::new();
        let mut pending: HashSet<T> = HashSet::new();
        loop {
            let now = Instant::now();
            // Items whose quiet period is over go out.
            let due: Vec<T> =
                pending.iter().filter(|t| last.get(*t).is_none_or(|l| now >= *l + period)).cloned().collect();
            for t in due {
                pending.remove(&t);
                last.insert(t.clone(), now);
                if tx.unbounded_send(t).is_err() {
                    return;
                }
            }
            let next = pending.iter().filter_map(|t| last.get(t)).map(|l| *l + period).min();
            let item = match next {
                Some(at) => tokio::select! {
                    item = input.next() => item,
                    _ = tokio::time::sleep_until(at) => continue,
                },
                None => input.next().await,
            };
            let Some(item) = item else { return };
            match last.get(&item) {
                Some(l) if Instant::now() < *l + period => {
                    pending.insert(item);
                }
                _ => {
                    last.insert(item.clone(), Instant::now());
                    if tx.unbounded_send(item).is_err() {
                        return;
                    }
                }
            }
            last.retain(|_, l| Instant::now() < *l + period * 4);
        }
    });
    rx
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

    fn pod(image_id: &str, ready: &str, rv: &str) -> CachedPod {
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
        let ns = Some(Change::Namespace("ns".into()));
        assert_eq!(f.relevant(Ok(watcher::Event::Apply(pod("r@sha256:1", "True", "1")))), ns);
        // A new resource version and another condition: nothing a scan reads.
        assert_eq!(f.relevant(Ok(watcher::Event::Apply(pod("r@sha256:1", "False", "2")))), None);
        assert_eq!(f.relevant(Ok(watcher::Event::Apply(pod("r@sha256:2", "False", "3")))), ns);
        assert_eq!(f.relevant(Ok(watcher::Event::Delete(pod("r@sha256:2", "False", "4")))), ns);
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

#[cfg(test)]
mod throttle_each_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_item_is_throttled_on_its_own() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<&'static str>();
        let out = throttle_each(rx, Duration::from_secs(5));
        tokio::pin!(out);
        let start = tokio::time::Instant::now();
        tx.unbounded_send("a").unwrap();
        tx.unbounded_send("a").unwrap();
        tx.unbounded_send("b").unwrap();
        let mut seen = vec![];
        for _ in 0..3 {
            let item = out.next().await.unwrap();
            seen.push((item, start.elapsed().as_secs()));
        }
        // "b" is not held back by "a"; the second "a" comes once, at the end of its period.
        assert_eq!(seen, vec![("a", 0), ("b", 0), ("a", 5)]);
    }
}
