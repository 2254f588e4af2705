//! A bounded, content-addressed cache of verified bytes (manifests and blobs fetched by
//! digest). Content addressing makes it safe: an entry is stored only after its bytes hashed
//! to the digest it is stored under, and a digest names one content forever.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A verified object and what it was served as.
#[derive(Debug, Clone)]
pub struct Cached {
    pub media_type: String,
    pub bytes: Arc<[u8]>,
}

struct Inner {
    /// digest -> (last use, object)
    map: HashMap<String, (u64, Cached)>,
    /// last use -> digest: the least recently used entry comes first.
    order: BTreeMap<u64, String>,
    bytes: usize,
    tick: u64,
}

/// Least-recently-used eviction once `capacity_bytes` is exceeded; objects larger than a
/// quarter of the capacity are not cached at all.
pub struct ContentCache {
    capacity_bytes: usize,
    inner: Mutex<Inner>,
}

impl ContentCache {
    pub fn new(capacity_bytes: usize) -> ContentCache {
        ContentCache {
            capacity_bytes,
            inner: Mutex::new(Inner { map: HashMap::new(), order: BTreeMap::new(), bytes: 0, tick: 0 }),
        }
    }

    pub fn get(&self, digest: &str) -> Option<Cached> {
        let mut g = self.inner.lock().expect("content cache poisoned");
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let (used, obj) = inner.map.get_mut(digest)?;
        inner.order.remove(used);
        *used = tick;
        inner.order.insert(tick, digest.to_string());
        Some(obj.clone())
    }

    /// Stores bytes that were verified to hash to `digest`.
    pub fn put(&self, digest: &str, obj: Cached) {
        let size = obj.bytes.len() + digest.len() + obj.media_type.len();
        if size > self.capacity_bytes / 4 {
            return;
        }
        let mut g = self.inner.lock().expect("content cache poisoned");
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((used, old)) = inner.map.remove(digest) {
            inner.order.remove(&used);
            inner.bytes -= old.bytes.len() + digest.len() + old.media_type.len();
        }
        inner.map.insert(digest.to_string(), (tick, obj));
        inner.order.insert(tick, digest.to_string());
        inner.bytes += size;
        while inner.bytes > self.capacity_bytes {
            let Some((_, victim)) = inner.order.pop_first() else { break };
            if let Some((_, old)) = inner.map.remove(&victim) {
                inner.bytes -= old.bytes.len() + victim.len() + old.media_type.len();
            }
        }
    }

    /// (entries, bytes) held now.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.inner.lock().expect("content cache poisoned");
        (g.map.len(), g.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(n: usize) -> Cached {
        Cached { media_type: String::new(), bytes: Arc::from(vec![0u8; n]) }
    }

    #[test]
    fn least_recently_used_entries_go_first_and_the_bound_holds() {
        // Each entry counts 80 bytes (79 + the one-byte key).
        let c = ContentCache::new(330);
        for k in ["a", "b", "c", "d"] {
            c.put(k, obj(79));
        }
        assert!(c.get("a").is_some(), "a is now the most recently used");
        c.put("e", obj(79));
        assert!(c.get("b").is_none(), "b was the least recently used");
        assert!(["a", "c", "d", "e"].iter().all(|k| c.get(k).is_some()));
        assert!(c.usage().1 <= 330);
        c.put("huge", obj(200));
        assert!(c.get("huge").is_none(), "objects over a quarter of the capacity are not cached");
        c.put("a", obj(10));
        assert_eq!(c.get("a").unwrap().bytes.len(), 10);
        assert_eq!(c.usage().0, 4);
    }
}
