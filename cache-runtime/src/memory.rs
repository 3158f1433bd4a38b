//! The memory tier: typed values (no serialization on a hit) in `quick_cache`,
//! bounded by entry count or by a weigher. `quick_cache` was chosen over `moka`
//! by measurement (see BENCHMARKS.md): its `get` is several times faster, and
//! expiry is checked by the read path anyway, so moka's timers are not needed.
//!
//! The tier shards `quick_cache`'s single-threaded cache behind read-write
//! locks itself (as `quick_cache::sync` does inside) so that a hit can judge the
//! entry and clone its value *by reference* under the read lock: `sync::Cache::get`
//! returns a clone of the stored `Arc`, and that reference count's increment and
//! decrement were a third of a hit's time (BENCHMARKS.md, run 5).

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;
use quick_cache::unsync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, Weighter};

use crate::key::Repr;
use crate::stats::Counters;
use crate::tags::TagSnapshot;
pub(crate) use crate::value::Value;

/// A stored value and when it stops being usable, in wall-clock milliseconds.
///
/// Held inline in `quick_cache`'s slot, next to its key, rather than behind an
/// `Arc`: a hit reads `fresh_until` and `value` from the cache line the key
/// comparison already loaded (the extra pointer was a cache miss taking a
/// tenth of a hit: BENCHMARKS.md, run 7). Cloning it costs two reference counts.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
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

impl Weighter<Repr, Entry> for EntryWeigher {
    fn weight(&self, _key: &Repr, entry: &Entry) -> u64 {
        match &self.0 {
            // Zero would pin the entry in quick_cache: every entry weighs at least 1.
            Some(weigh) => weigh(entry.value.as_any()).max(1),
            None => 1,
        }
    }
}

/// Counts the entries one insert drops. quick_cache 0.6 reports an entry
/// replaced under its own key through the same hook as one pushed out for
/// room (`Shard::insert_existing` calls `on_evict_*` with the old value, despite
/// the trait's docs), so [`MemoryTier::insert`] subtracts the replaced one.
#[derive(Clone)]
pub(crate) struct DropCounter;

impl Lifecycle<Repr, Entry> for DropCounter {
    type RequestState = u64;

    fn begin_request(&self) -> u64 {
        0
    }

    fn on_evict(&self, dropped: &mut u64, _key: Repr, _entry: Entry) {
        *dropped += 1;
    }
}

type Shard = QuickCache<Repr, Entry, EntryWeigher, DefaultHashBuilder, DropCounter>;

/// One shard on its own cache lines, so readers of neighbouring shards do not
/// contend on the lock word.
#[repr(align(128))]
struct Padded(RwLock<Shard>);

/// The memory tier of one cache; disabled (every call a no-op) in the
/// storage-only mode, so the read path needs no special case.
pub(crate) struct MemoryTier {
    shards: Box<[Padded]>,
    /// `shards.len() - 1`; the length is a power of two.
    mask: usize,
    /// Where evictions are counted; `None` when disabled.
    counters: Option<Arc<Counters>>,
}

/// A key with its `hash64` computed, for a lookup: it hashes as the key
/// does (one `write_u64` of that word) without computing it again.
struct Query<'a> {
    hash: u64,
    key: &'a Repr,
}

impl Hash for Query<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<Repr> for Query<'_> {
    fn equivalent(&self, key: &Repr) -> bool {
        self.key == key
    }
}

/// Each shard holds at least this many entries' worth of capacity, so a small
/// cache is not split into shards too small to keep their hot entries.
const MIN_SHARD_CAPACITY: usize = 64;

impl MemoryTier {
    /// A tier of at most `capacity` entries, or of at most `capacity` weight
    /// when a weigher is given.
    pub(crate) fn new(
        capacity: usize,
        weigher: Option<Arc<WeighFn>>,
        counters: Arc<Counters>,
    ) -> Self {
        let capacity = capacity.max(1);
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        let mut count = (parallelism * 4).next_power_of_two();
        while count > 1 && capacity / count < MIN_SHARD_CAPACITY {
            count /= 2;
        }
        let shard_capacity = capacity.div_ceil(count);
        let estimated_items = if weigher.is_some() {
            (shard_capacity / 16).clamp(16, 1 << 20)
        } else {
            shard_capacity
        };
        let weigher = EntryWeigher(weigher);
        let shards = (0..count)
            .map(|_| {
                Padded(RwLock::new(QuickCache::with(
                    estimated_items,
                    shard_capacity as u64,
                    weigher.clone(),
                    DefaultHashBuilder::default(),
                    DropCounter,
                )))
            })
            .collect();
        Self {
            shards,
            mask: count - 1,
            counters: Some(counters),
        }
    }

    /// No memory tier: the storage-only mode.
    pub(crate) fn disabled() -> Self {
        Self {
            shards: Box::new([]),
            mask: 0,
            counters: None,
        }
    }

    /// Whether this tier holds anything (not the storage-only mode).
    #[inline]
    pub(crate) fn is_enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The shard of a key whose `hash64` is `hash`: its high bits (the
    /// shard's table hashes the whole word again, with its own seed).
    #[inline]
    fn shard(&self, hash: u64) -> Option<&RwLock<Shard>> {
        self.shards
            .get((hash >> 40) as usize & self.mask)
            .map(|padded| &padded.0)
    }

    /// Runs `read` on the entry under `key`, if any, by reference: the hit
    /// path clones only what it returns. The key is hashed once, for both
    /// the shard and its table.
    #[inline]
    pub(crate) fn read<T>(&self, key: &Repr, read: impl FnOnce(&Entry) -> T) -> Option<T> {
        let hash = key.hash64();
        let shard = self.shard(hash)?.read();
        shard.get(&Query { hash, key }).map(read)
    }

    pub(crate) fn get(&self, key: &Repr) -> Option<Entry> {
        self.read(key, Entry::clone)
    }

    /// Stores `entry`, counting as evictions only the entries dropped for room
    /// (the new one included, when it does not fit), not the one it replaces.
    pub(crate) fn insert(&self, key: Repr, entry: Entry) {
        let hash = key.hash64();
        let Some(shard) = self.shard(hash) else {
            return;
        };
        let mut shard = shard.write();
        // A resident entry under this key is reported dropped by this insert
        // exactly once (replaced, or removed when the new one is overweight).
        let replaces = shard.contains_key(&Query { hash, key: &key });
        let dropped = shard.insert_with_lifecycle(key, entry);
        drop(shard);
        let evicted = dropped.saturating_sub(u64::from(replaces));
        if let (Some(counters), true) = (&self.counters, evicted > 0) {
            counters.evicted(evicted);
        }
    }

    pub(crate) fn remove(&self, key: &Repr) -> bool {
        let hash = key.hash64();
        self.shard(hash)
            .is_some_and(|shard| shard.write().remove(&Query { hash, key }).is_some())
    }

    /// Drops every entry (the backplane lost messages).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            shard.0.write().clear();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.0.read().len()).sum()
    }

    /// The keys held, for listings.
    pub(crate) fn keys(&self) -> Vec<Repr> {
        let mut keys = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            keys.extend(shard.0.read().iter().map(|(key, _)| key.clone()));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private::Site;

    static SITE: Site = Site {
        name: "tests::f",
        ..Site::DEFAULT
    };

    fn entry(value: u64) -> Entry {
        Entry {
            value: Value::new(value),
            fresh_until: u64::MAX,
            stale_until: u64::MAX,
            fail_safe_until: u64::MAX,
            load_millis: 0,
            tags: TagSnapshot::default(),
        }
    }

    fn hashed(i: u64) -> Repr {
        Repr::Hashed {
            site: &SITE,
            hash: xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()),
        }
    }

    fn tier(capacity: usize) -> MemoryTier {
        MemoryTier::new(capacity, None, Arc::new(Counters::default()))
    }

    #[test]
    fn reads_by_reference_what_was_inserted_in_any_shard() {
        let memory = tier(10_000);
        for i in 0..500 {
            memory.insert(hashed(i), entry(i));
            memory.insert(Repr::Text(format!("k{i}").into()), entry(i + 1000));
        }
        assert_eq!(memory.len(), 1000);
        for i in 0..500 {
            let read = |e: &Entry| *e.value.downcast_ref::<u64>().expect("u64");
            assert_eq!(memory.read(&hashed(i), read), Some(i));
            let text = Repr::Text(format!("k{i}").into());
            assert_eq!(memory.read(&text, read), Some(i + 1000));
        }
        assert_eq!(memory.keys().len(), 1000);
        assert!(memory.remove(&hashed(7)));
        assert!(memory.read(&hashed(7), |_| ()).is_none());
        memory.clear();
        assert_eq!(memory.len(), 0);
    }

    #[test]
    fn stays_within_its_capacity_and_counts_evictions() {
        let counters = Arc::new(Counters::default());
        let memory = MemoryTier::new(1000, None, counters.clone());
        for i in 0..5000 {
            memory.insert(hashed(i), entry(i));
        }
        assert!(memory.len() <= 1000, "{}", memory.len());
        assert!(memory.len() >= 500, "{}", memory.len());
        assert_eq!(counters.evictions.get() as usize, 5000 - memory.len());
    }

    #[test]
    fn overwriting_a_key_is_not_an_eviction() {
        let counters = Arc::new(Counters::default());
        let memory = MemoryTier::new(100, None, counters.clone());
        for i in 0..1000 {
            memory.insert(hashed(1), entry(i));
        }
        assert_eq!(memory.len(), 1);
        assert_eq!(counters.evictions.get(), 0);
        // A full tier: overwriting its keys pushes nothing out either.
        for round in 0..10 {
            for i in 0..100 {
                memory.insert(hashed(i), entry(round));
            }
        }
        let held = memory.len() as u64;
        assert_eq!(counters.evictions.get(), 100 - held);
        for i in 1000..1500 {
            memory.insert(hashed(i), entry(i));
        }
        assert_eq!(counters.evictions.get(), 600 - memory.len() as u64);
    }

    #[test]
    fn an_entry_too_heavy_to_hold_counts_once() {
        let counters = Arc::new(Counters::default());
        // Values of 1000 and above weigh more than the whole tier.
        let weigh: Arc<WeighFn> = Arc::new(|value: &dyn Any| {
            value
                .downcast_ref::<u64>()
                .map_or(1, |v| if *v >= 1000 { 1 << 20 } else { 1 })
        });
        let memory = MemoryTier::new(100, Some(weigh), counters.clone());
        memory.insert(hashed(1), entry(1));
        memory.insert(hashed(1), entry(2));
        assert_eq!(counters.evictions.get(), 0);
        // Replacing a held entry with one that cannot be held drops the key once.
        memory.insert(hashed(1), entry(1000));
        assert!(memory.get(&hashed(1)).is_none());
        assert_eq!(counters.evictions.get(), 1);
        memory.insert(hashed(2), entry(1001));
        assert_eq!(counters.evictions.get(), 2);
    }

    #[test]
    fn a_tiny_capacity_still_holds_entries() {
        let memory = tier(1);
        memory.insert(hashed(1), entry(1));
        assert_eq!(memory.len(), 1);
    }

    #[test]
    fn disabled_tier_holds_nothing() {
        let memory = MemoryTier::disabled();
        assert!(!memory.is_enabled());
        memory.insert(hashed(1), entry(1));
        assert_eq!(memory.len(), 0);
        assert!(memory.get(&hashed(1)).is_none());
        assert!(!memory.remove(&hashed(1)));
    }
}
