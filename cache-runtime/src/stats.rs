//! Counters of what the cache did. The hit path must not pay for a locked
//! read-modify-write on a cache line shared by every thread, so each of up to
//! [`SLOTS`] live threads owns one slot of every counter and is its only
//! writer (a plain load and store); a thread gives its slot back when it
//! exits; threads beyond that share one atomic slot. Reading sums the slots.

mod gets;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) use gets::{live as live_site_counts, CountsRef, GetTotals, Got, SiteCounts, Sites};

use crate::events::{Events, FaultKind};

const SLOTS: usize = 16;

/// One thread's slot of `N` counters, on cache lines of its own.
#[repr(align(128))]
struct Slot<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Slot<N> {
    fn default() -> Self {
        Slot(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// `N` counters with one slot per thread (see the module docs): the counters
/// a call touches together share its thread's slot.
pub(crate) struct Lanes<const N: usize> {
    slots: [Slot<N>; SLOTS],
    shared: Slot<N>,
}

impl<const N: usize> Default for Lanes<N> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::default()),
            shared: Slot::default(),
        }
    }
}

/// A counter with one slot per thread (see the module docs).
#[derive(Default)]
pub(crate) struct Counter(Lanes<1>);

/// A thread's claim on a slot index, given back when the thread exits so that
/// servers whose threads come and go keep using their own slots.
struct Lease(usize);

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static FREE_SLOTS: parking_lot::Mutex<Vec<usize>> = parking_lot::Mutex::new(Vec::new());

impl Lease {
    fn take() -> Lease {
        // The mutex orders the exited thread's last writes before the new
        // owner's first, so every slot keeps a single writer at a time.
        match FREE_SLOTS.lock().pop() {
            Some(index) => Lease(index),
            None => Lease(NEXT_SLOT.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.0 < SLOTS {
            FREE_SLOTS.lock().push(self.0);
        }
    }
}

thread_local! {
    static LEASE: Lease = Lease::take();
}

/// This thread's slot, if it has one of its own.
#[inline]
fn own_slot() -> Option<usize> {
    LEASE
        .try_with(|lease| lease.0)
        .ok()
        .filter(|index| *index < SLOTS)
}

impl<const N: usize> Lanes<N> {
    /// Adds `n` to counter `lane` (below `N`).
    #[inline(always)]
    pub(crate) fn add(&self, lane: usize, n: u64) {
        match own_slot() {
            Some(i) => {
                let cell = &self.slots[i].0[lane];
                // Single writer: no read-modify-write needed.
                cell.store(
                    cell.load(Ordering::Relaxed).wrapping_add(n),
                    Ordering::Relaxed,
                );
            }
            None => {
                self.shared.0[lane].fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The sum of counter `lane` over every slot.
    pub(crate) fn get(&self, lane: usize) -> u64 {
        self.slots
            .iter()
            .chain(std::iter::once(&self.shared))
            .map(|s| s.0[lane].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl Counter {
    #[inline(always)]
    pub(crate) fn incr(&self) {
        self.0.add(0, 1);
    }

    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0.add(0, n);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.get(0)
    }
}

/// The live counters of one cache.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: Counter,
    pub(crate) remote_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) stale_hits: Counter,
    pub(crate) loads: Counter,
    pub(crate) load_errors: Counter,
    pub(crate) store_errors: Counter,
    pub(crate) refreshes: Counter,
    pub(crate) early_refreshes: Counter,
    pub(crate) fail_safe_serves: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) evictions: Counter,
    pub(crate) invalidations: Counter,
    pub(crate) decode_errors: Counter,
    pub(crate) corrupt_entries: Counter,
    pub(crate) oversized_entries: Counter,
    pub(crate) schema_mismatches: Counter,
    pub(crate) config_errors: Counter,
    pub(crate) invalidation_failures: Counter,
    pub(crate) warmed: Counter,
    /// The gets of each `#[cached]` function called with this cache (not in the counters above).
    pub(crate) sites: Sites,
    /// The cache's listeners, for the parts that hold counters but not the
    /// cache (the memory tier's evictions, the remote tier's faults).
    pub(crate) events: Option<Arc<Events>>,
}

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_runtime::Cache::memory(100);
/// cache.set("k", 1u32).await.unwrap();
/// let _ = cache.get::<u32>("k").await.unwrap();
/// assert_eq!(cache.stats().hits, 1);
/// assert_eq!(cache.stats().hit_ratio(), 1.0);
/// # }
/// ```
///
/// `Stats` is [`serde::Serialize`], so an endpoint can return it as JSON: an
/// object with one number per field, and `hit_ratio`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Fresh values served from the cache (memory or remote tier).
    pub hits: u64,
    /// Of the misses of the memory tier, values found in the remote tier.
    pub remote_hits: u64,
    /// Calls that found no usable value in any tier (the function then ran, or
    /// the caller joined another caller's load).
    pub misses: u64,
    /// Stale values served while a background refresh ran.
    pub stale_hits: u64,
    /// Times the function (or a loader) ran to fill the cache.
    pub loads: u64,
    /// Loads that returned an error or panicked.
    pub load_errors: u64,
    /// Faults of a store (or of the cache's configuration) that made a call run uncached.
    pub store_errors: u64,
    /// Background refreshes started (stale-while-revalidate and early refresh).
    pub refreshes: u64,
    /// Of those, refreshes started early by `refresh_ahead`.
    pub early_refreshes: u64,
    /// Failed loads answered with an expired value under `fail_safe`.
    pub fail_safe_serves: u64,
    /// Callers that waited for another caller's load instead of running the function.
    pub coalesced: u64,
    /// Entries evicted from the memory tier to make room.
    pub evictions: u64,
    /// Tags invalidated.
    pub invalidations: u64,
    /// Entries that could not be decoded and were treated as misses.
    pub decode_errors: u64,
    /// Of `decode_errors`, remote entries whose checksum did not match (damaged
    /// in the store), or whose value's `Deserialize` panicked; each was a miss,
    /// and the load that followed overwrote it.
    pub corrupt_entries: u64,
    /// Entries over the maximum entry size
    /// ([`CacheBuilder::max_entry_bytes`](crate::CacheBuilder::max_entry_bytes)):
    /// values not written to the remote tier (returned to the caller all
    /// the same; the memory tier, if any, still keeps them), and entries
    /// read from it that were longer and treated as misses. Not in
    /// `store_errors` nor `decode_errors`: the store did nothing wrong.
    pub oversized_entries: u64,
    /// Remote entries written for another shape of the stored type (a
    /// field added, renamed or retyped, a variant added: another build's
    /// type under the same key or function name), each a clean miss that
    /// the load overwrote. Not in `decode_errors`: nothing was damaged.
    pub schema_mismatches: u64,
    /// Invalidations the remote tier did not confirm at once (they were
    /// queued and retried).
    pub invalidation_failures: u64,
    /// Tags whose invalidation waits for the remote tier now.
    pub pending_invalidations: u64,
    /// Inputs [`Cache::warm`](crate::Cache::warm) went through. Their calls
    /// are not in `hits`, `misses` or `stale_hits` (nor the hit ratio);
    /// their loads are in `loads` and `load_errors`.
    pub warmed: u64,
    /// Listeners turned off because they panicked: a listener that panics
    /// is told of nothing more (see [`crate::events`]).
    pub listener_panics: u64,
    /// Events not delivered because the listeners' queue was full (see
    /// [`crate::events`]).
    pub events_dropped: u64,
}

impl Stats {
    /// The share of calls answered from the cache: `(hits + stale_hits) /
    /// (hits + stale_hits + misses)`, from 0.0 to 1.0; 0.0 before any call.
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits.saturating_add(self.stale_hits);
        let calls = served.saturating_add(self.misses);
        if calls == 0 {
            0.0
        } else {
            served as f64 / calls as f64
        }
    }
}

/// The fields, and `hit_ratio`: written out, not derived, so that the JSON
/// carries the ratio.
impl serde::Serialize for Stats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // Destructured so that a new field is a compile error here.
        let Stats {
            hits,
            remote_hits,
            misses,
            stale_hits,
            loads,
            load_errors,
            store_errors,
            refreshes,
            early_refreshes,
            fail_safe_serves,
            coalesced,
            evictions,
            invalidations,
            decode_errors,
            corrupt_entries,
            oversized_entries,
            schema_mismatches,
            invalidation_failures,
            pending_invalidations,
            warmed,
            listener_panics,
            events_dropped,
        } = *self;
        let fields = [
            ("hits", hits),
            ("remote_hits", remote_hits),
            ("misses", misses),
            ("stale_hits", stale_hits),
            ("loads", loads),
            ("load_errors", load_errors),
            ("store_errors", store_errors),
            ("refreshes", refreshes),
            ("early_refreshes", early_refreshes),
            ("fail_safe_serves", fail_safe_serves),
            ("coalesced", coalesced),
            ("evictions", evictions),
            ("invalidations", invalidations),
            ("decode_errors", decode_errors),
            ("corrupt_entries", corrupt_entries),
            ("oversized_entries", oversized_entries),
            ("schema_mismatches", schema_mismatches),
            ("invalidation_failures", invalidation_failures),
            ("pending_invalidations", pending_invalidations),
            ("warmed", warmed),
            ("listener_panics", listener_panics),
            ("events_dropped", events_dropped),
        ];
        let mut out = serializer.serialize_struct("Stats", fields.len() + 1)?;
        for (name, value) in fields {
            out.serialize_field(name, &value)?;
        }
        out.serialize_field("hit_ratio", &self.hit_ratio())?;
        out.end()
    }
}

impl Counters {
    /// Counts a get: in its function's counters when it has them (a
    /// `#[cached]` site's plan kept by this cache), else in the cache-wide
    /// ones. `site` must come from a plan resolved for this cache.
    #[inline(always)]
    pub(crate) fn count_get(&self, site: Option<CountsRef>, got: Got) {
        match site {
            // SAFETY: a plan's counts are registered in its own cache's
            // `sites` (`Plan::for_site`), and a plan is used only with that
            // cache (every caller passes the plan and the counters of the
            // same cache); `self` owns those `sites` and is borrowed here.
            Some(site) => unsafe { site.get() }.count(got),
            None => match got {
                Got::Hit => self.hits.incr(),
                Got::RemoteHit => self.remote_hits.incr(),
                Got::Stale => self.stale_hits.incr(),
                Got::Miss => self.misses.incr(),
            },
        }
    }

    /// Counts a fault of the remote tier (`Decode`: of its bytes) and tells
    /// the listeners.
    pub(crate) fn fault(&self, kind: FaultKind) {
        self.faults(kind, 1);
    }

    /// Counts `n` faults of one kind.
    pub(crate) fn faults(&self, kind: FaultKind, n: u64) {
        match kind {
            FaultKind::Decode => self.decode_errors.add(n),
            FaultKind::Corrupt => {
                self.decode_errors.add(n);
                self.corrupt_entries.add(n);
            }
            FaultKind::Oversized => self.oversized_entries.add(n),
            FaultKind::SchemaMismatch => self.schema_mismatches.add(n),
            _ => self.store_errors.add(n),
        }
        if let Some(events) = &self.events {
            for _ in 0..n {
                events.fault(kind);
            }
        }
    }

    /// Counts entries the memory tier dropped for room.
    pub(crate) fn evicted(&self, n: u64) {
        self.evictions.add(n);
        if let Some(events) = &self.events {
            events.evict(n);
        }
    }

    /// The gets counted cache-wide: the manual API's, and those of calls
    /// that have no plan of a `#[cached]` site.
    pub(crate) fn wide_gets(&self) -> GetTotals {
        // Remote hits first: see `SiteCounts::totals`.
        let remote_hits = self.remote_hits.get();
        GetTotals {
            hits: self.hits.get(),
            remote_hits,
            stale: self.stale_hits.get(),
            misses: self.misses.get(),
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut gets = self.wide_gets();
        gets.add(self.sites.totals());
        Stats {
            hits: gets.served(),
            remote_hits: gets.remote_hits,
            misses: gets.missed(),
            stale_hits: gets.stale,
            loads: self.loads.get(),
            load_errors: self.load_errors.get(),
            store_errors: self.store_errors.get() + self.config_errors.get(),
            refreshes: self.refreshes.get(),
            early_refreshes: self.early_refreshes.get(),
            fail_safe_serves: self.fail_safe_serves.get(),
            coalesced: self.coalesced.get(),
            evictions: self.evictions.get(),
            invalidations: self.invalidations.get(),
            decode_errors: self.decode_errors.get(),
            corrupt_entries: self.corrupt_entries.get(),
            oversized_entries: self.oversized_entries.get(),
            schema_mismatches: self.schema_mismatches.get(),
            invalidation_failures: self.invalidation_failures.get(),
            pending_invalidations: 0,
            warmed: self.warmed.get(),
            listener_panics: self.events.as_ref().map_or(0, |e| e.panics()),
            events_dropped: self.events.as_ref().map_or(0, |e| e.dropped()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_counts_stale_hits_as_served() {
        assert_eq!(Stats::default().hit_ratio(), 0.0);
        let stats = Stats {
            hits: 6,
            stale_hits: 2,
            misses: 2,
            ..Stats::default()
        };
        assert_eq!(stats.hit_ratio(), 0.8);
        let all = Stats {
            hits: u64::MAX,
            misses: u64::MAX,
            ..Stats::default()
        };
        assert!(all.hit_ratio() > 0.99, "saturates, never overflows");
    }

    // One test, so the two parts never run at once and starve each other of slots.
    #[test]
    fn slots_are_given_back_and_counts_sum_over_threads() {
        for _ in 0..3 * SLOTS {
            std::thread::spawn(|| assert!(own_slot().is_some(), "a slot for a short-lived thread"))
                .join()
                .unwrap();
        }

        let c = std::sync::Arc::new(Counter::default());
        // More threads than slots: the overflow threads share the atomic slot.
        let handles: Vec<_> = (0..SLOTS + 8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.incr()))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(c.get(), 1000 * (SLOTS as u64 + 8));
    }
}
