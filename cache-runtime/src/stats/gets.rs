//! Gets counted per `#[cached]` function and cache: each plan a cache keeps
//! for a site (`flow::plan::PlanTable`) points to one [`SiteCounts`], so a hit
//! bumps its own function's counter instead of the cache-wide one, and metrics
//! label gets by function without any work on the hit path. The cache's
//! counters own them (to sum them into `Stats`), so they are freed with it.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Lanes;

/// What a get found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Got {
    /// Fresh in memory.
    Hit = 0,
    /// Of the memory tier's misses, fresh in the remote tier (also counted
    /// as a miss when memory missed).
    RemoteHit = 1,
    Stale = 2,
    /// Missed memory (the remote tier may still hit: see `RemoteHit`).
    Miss = 3,
}

/// One function's gets through one cache.
pub(crate) struct SiteCounts {
    /// The `#[cached]` site's `name`.
    pub(crate) function: &'static str,
    lanes: Lanes<4>,
}

impl std::fmt::Debug for SiteCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteCounts")
            .field("function", &self.function)
            .field("totals", &self.totals())
            .finish()
    }
}

/// Raw sums of gets, as counted (a remote hit is in `misses` too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GetTotals {
    pub(crate) hits: u64,
    pub(crate) remote_hits: u64,
    pub(crate) stale: u64,
    pub(crate) misses: u64,
}

impl GetTotals {
    /// Adds `other` to these.
    pub(crate) fn add(&mut self, other: GetTotals) {
        self.hits = self.hits.wrapping_add(other.hits);
        self.remote_hits = self.remote_hits.wrapping_add(other.remote_hits);
        self.stale = self.stale.wrapping_add(other.stale);
        self.misses = self.misses.wrapping_add(other.misses);
    }

    /// Calls served fresh from any tier.
    pub(crate) fn served(&self) -> u64 {
        self.hits.wrapping_add(self.remote_hits)
    }

    /// Calls that found nothing usable in any tier.
    pub(crate) fn missed(&self) -> u64 {
        self.misses.saturating_sub(self.remote_hits)
    }
}

/// [`SiteCounts`] alive in this process (about 2 KiB each), for tests.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The number of [`SiteCounts`] alive in this process.
pub(crate) fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

impl SiteCounts {
    pub(crate) fn new(function: &'static str) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Self {
            function,
            lanes: Lanes::default(),
        }
    }

    #[inline(always)]
    pub(crate) fn count(&self, got: Got) {
        self.lanes.add(got as usize, 1);
    }

    /// The sums so far. Remote hits are read before misses, so that a call
    /// counted in both between the two reads never makes `missed` dip.
    pub(crate) fn totals(&self) -> GetTotals {
        let remote_hits = self.lanes.get(Got::RemoteHit as usize);
        GetTotals {
            hits: self.lanes.get(Got::Hit as usize),
            remote_hits,
            stale: self.lanes.get(Got::Stale as usize),
            misses: self.lanes.get(Got::Miss as usize),
        }
    }
}

impl Drop for SiteCounts {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A plan's pointer to its function's [`SiteCounts`] in one cache: a plan is
/// `Copy` and read on every hit, so it holds no reference count. Made only by
/// [`Sites::register`]; read only through the `Counters` that own those
/// `Sites` (`Counters::count_get`), which keep the counts alive while they
/// are borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountsRef(NonNull<SiteCounts>);

// SAFETY: a `SiteCounts` is `Send + Sync` (atomics and a `&'static str`),
// and the pointer is only read as a shared reference.
unsafe impl Send for CountsRef {}
// SAFETY: as above.
unsafe impl Sync for CountsRef {}

impl CountsRef {
    /// The counts.
    ///
    /// # Safety
    ///
    /// The `Sites` that made this pointer must be alive (borrowed) for the
    /// returned lifetime: they own the counts.
    #[inline(always)]
    pub(crate) unsafe fn get<'a>(self) -> &'a SiteCounts {
        // SAFETY: the caller's promise; `Sites` never drops counts it holds.
        unsafe { self.0.as_ref() }
    }
}

/// The [`SiteCounts`] of every function with a plan kept by one cache.
#[derive(Default)]
pub(crate) struct Sites(Mutex<Vec<Arc<SiteCounts>>>);

impl Sites {
    /// Keeps `counts` (until these `Sites` are dropped), and a pointer to
    /// them for a plan.
    pub(crate) fn register(&self, counts: SiteCounts) -> CountsRef {
        let counts = Arc::new(counts);
        let pointer = CountsRef(NonNull::from(&*counts));
        self.0.lock().push(counts);
        pointer
    }

    /// Every registered site's counts, in registration order (a site keeps
    /// its index).
    #[cfg_attr(not(any(feature = "metrics", test)), allow(dead_code))] // the drain's
    pub(crate) fn list(&self) -> Vec<Arc<SiteCounts>> {
        self.0.lock().clone()
    }

    /// The sum over every registered site.
    pub(crate) fn totals(&self) -> GetTotals {
        let mut sum = GetTotals::default();
        for site in self.0.lock().iter() {
            sum.add(site.totals());
        }
        sum
    }
}
