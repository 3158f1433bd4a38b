//! The memory tier: typed values (no serialization on a hit) in `quick_cache`,
//! bounded by entry count or by a weigher. `quick_cache` was chosen over `moka`
//! by measurement (see BENCHMARKS.md): its `get` is several times faster, and
//! expiry is checked by the read path anyway, so moka's timers are not needed.

use std::any::Any;
use std::sync::Arc;

use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use crate::key::Repr;
use crate::stats::Counters;
use crate::tags::TagSnapshot;

/// A stored value and when it stops being usable, in wall-clock milliseconds.
pub(crate) struct Entry {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    pub(crate) fresh_until: u64,
    pub(crate) stale_until: u64,
    pub(crate) fail_safe_until: u64,
    /// How long the load that produced it took (XFetch's delta).
    pub(crate) load_millis: u64,
    pub(crate) tags: TagSnapshot,
}

/// Weighs a value for a weight-bounded memory tier.
pub type WeighFn = dyn Fn(&dyn Any) -> u64 + Send + Sync;

#[derive(Clone)]
pub(crate) struct EntryWeigher(Option<Arc<WeighFn>>);

impl Weighter<Repr, Arc<Entry>> for EntryWeigher {
    fn weight(&self, _key: &Repr, entry: &Arc<Entry>) -> u64 {
        match &self.0 {
            // Zero would pin the entry in quick_cache: every entry weighs at least 1.
            Some(weigh) => weigh(&*entry.value).max(1),
            None => 1,
        }
    }
}

#[derive(Clone)]
pub(crate) struct EvictionCounter(Arc<Counters>);

impl Lifecycle<Repr, Arc<Entry>> for EvictionCounter {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut (), _key: Repr, _entry: Arc<Entry>) {
        self.0.evictions.incr();
    }
}

type Map = QuickCache<Repr, Arc<Entry>, EntryWeigher, DefaultHashBuilder, EvictionCounter>;

/// The memory tier of one cache; disabled (every call a no-op) in the
/// storage-only mode, so the read path needs no special case.
pub(crate) struct MemoryTier {
    map: Option<Map>,
}

impl MemoryTier {
    /// A tier of at most `capacity` entries, or of at most `capacity` weight
    /// when a weigher is given.
    pub(crate) fn new(
        capacity: usize,
        weigher: Option<Arc<WeighFn>>,
        counters: Arc<Counters>,
    ) -> Self {
        let capacity = capacity.max(1);
        let estimated_items = if weigher.is_some() {
            (capacity / 16).clamp(16, 1 << 20)
        } else {
            capacity
        };
        Self {
            map: Some(QuickCache::with(
                estimated_items,
                capacity as u64,
                EntryWeigher(weigher),
                DefaultHashBuilder::default(),
                EvictionCounter(counters),
            )),
        }
    }

    /// No memory tier: the storage-only mode.
    pub(crate) fn disabled() -> Self {
        Self { map: None }
    }

    #[inline]
    pub(crate) fn get(&self, key: &Repr) -> Option<Arc<Entry>> {
        self.map.as_ref()?.get(key)
    }

    pub(crate) fn insert(&self, key: Repr, entry: Arc<Entry>) {
        if let Some(map) = &self.map {
            map.insert(key, entry);
        }
    }

    pub(crate) fn remove(&self, key: &Repr) -> bool {
        self.map.as_ref().is_some_and(|m| m.remove(key).is_some())
    }

    /// Drops every entry (the backplane lost messages).
    pub(crate) fn clear(&self) {
        if let Some(map) = &self.map {
            map.clear();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// The keys held, for listings.
    pub(crate) fn keys(&self) -> Vec<Repr> {
        self.map
            .as_ref()
            .map_or_else(Vec::new, |m| m.iter().map(|(k, _)| k).collect())
    }
}
