//! A call's effective options: the function's own over its profile's over the
//! cache's defaults, in milliseconds; and each site's memo of them per cache.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::clock::millis;
use crate::private::{LockMode, Site};
use crate::stats::SiteCounts;
use crate::{Cache, Error, Policy};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) ttl: u64,
    pub(crate) stale: u64,
    pub(crate) fail_safe: u64,
    /// XFetch beta; 0 when off.
    pub(crate) beta: f64,
    pub(crate) single_flight: bool,
    /// One load per key across processes (needs a remote tier).
    pub(crate) distributed: bool,
    pub(crate) cache_none: bool,
    /// Whether a background refresh can be made (stale / refresh-ahead apply).
    pub(crate) refreshable: bool,
    /// Whether [`hit`](super::hit) may decide a fresh hit alone: no
    /// refresh-ahead to roll for, and no listener of get events (both
    /// fixed once the cache is built, so the memoized plan keeps it and the
    /// hit path tests one flag for both).
    pub(crate) fast_hit: bool,
    /// The `#[cached]` site's name; `None` for the manual API.
    pub(crate) function: Option<&'static str>,
    /// Where this call's gets are counted: the memo's own counters, or
    /// (`None`: the manual API, a plan not memoized) the cache-wide ones.
    pub(crate) counts: Option<&'static SiteCounts>,
}

impl Plan {
    pub(crate) fn from_policy(policy: &Policy, cache: &Cache, refreshable: bool) -> Plan {
        let p = policy.or(&cache.inner.defaults);
        Plan {
            ttl: p.ttl.map_or(0, millis),
            stale: if refreshable {
                p.stale.map_or(0, millis)
            } else {
                0
            },
            fail_safe: p.fail_safe.map_or(0, millis),
            beta: match p.refresh_ahead {
                // A policy given per call is not checked by `build()`: capped here.
                Some(beta) if refreshable && beta > 0.0 => {
                    beta.min(crate::policy::MAX_REFRESH_AHEAD)
                }
                _ => 0.0,
            },
            single_flight: true,
            distributed: false,
            cache_none: true,
            refreshable,
            fast_hit: false,
            function: None,
            counts: None,
        }
    }

    #[inline]
    pub(crate) fn for_site(site: &'static Site, cache: &Cache) -> Result<Plan, Error> {
        if let Some(plan) = site.plan.get(cache.inner.id) {
            return Ok(*plan);
        }
        let mut plan = Self::resolve(site, cache)?;
        // Profiles and defaults are fixed once a cache is built, so the plan
        // stays right for this cache.
        if let Some(counts) = site.plan.remember(cache.inner.id, &mut plan) {
            cache.inner.counters.sites.register(counts);
        }
        Ok(plan)
    }

    fn resolve(site: &'static Site, cache: &Cache) -> Result<Plan, Error> {
        let own = Policy {
            ttl: site.ttl,
            stale: site.stale,
            fail_safe: site.fail_safe,
            refresh_ahead: site.refresh_ahead,
        };
        let policy = match site.profile {
            None => own,
            Some(name) => match cache.profile(name) {
                Some(profile) => own.or(profile),
                None => return Err(Error::UnknownProfile(name.to_string())),
            },
        };
        let mut plan = Plan::from_policy(&policy, cache, site.refreshable);
        plan.single_flight = site.lock != LockMode::None;
        plan.distributed = cache.inner.remote.is_some()
            && matches!(site.lock, LockMode::Default | LockMode::Distributed);
        plan.cache_none = site.cache_none;
        plan.function = Some(site.name);
        plan.fast_hit = plan.beta == 0.0 && !cache.inner.get_events;
        Ok(plan)
    }

    /// (fresh_until, stale_until, fail_safe_until) for a value stored at `now`.
    pub(crate) fn deadlines(&self, now: u64) -> (u64, u64, u64) {
        let fresh = now.saturating_add(self.ttl);
        (
            fresh,
            fresh.saturating_add(self.stale),
            fresh.saturating_add(self.fail_safe),
        )
    }
}

/// Caches a site memoizes plans for; a site used with more resolves its plan
/// for the later ones on every call (one profile lookup, no allocation).
pub(crate) const PLAN_SLOTS: usize = 8;

/// A site's resolved options for each of the first `PLAN_SLOTS` (8) caches it is
/// used with (tenants, `cache = self.cache` over several instances, the
/// default global cache before `install` and the installed one), so hits
/// through any of them skip resolving them.
///
/// The first cache's plan has a box of its own, read with one pointer load
/// and one comparison, as when it was the only one memoized: the common case
/// of one cache per function pays nothing for the others (a shared block with
/// the first plan in slot 0 measured slower at 1M entries). The others share
/// a block of write-once slots, scanned out of line.
///
/// Lock-free: each plan is written before the pointer or id that publishes it
/// is stored with `Release`, and read only after that pointer or id was seen
/// with `Acquire`, so no plan is read while it is written. Cache ids are never
/// reused, so a dropped cache's slot is never wrong, only unused.
///
/// Each remembered plan has get counters of its own (`SiteCounts`: one
/// 128-byte line per thread slot, about 2 KiB), so that a hit counts for its
/// function without touching anything shared; the cache sums them into its
/// `Stats`, and the `metrics` feature labels them with the function.
///
/// Nothing here is ever freed: sites are statics, so this is one 80-byte box
/// and 2 KiB of counters per cached function and cache it is used with, and a
/// block of about 570 bytes for a function used with a second cache. (A
/// `OnceLock` would need a destructor, which the `..Site::DEFAULT` of
/// generated statics cannot have.)
#[derive(Debug)]
pub struct PlanCache {
    first: AtomicPtr<(u64, Plan)>,
    more: AtomicPtr<Slots>,
}

/// Write-once slots for the caches after the first.
struct Slots {
    slots: [Slot; PLAN_SLOTS - 1],
    /// Slots claimed by writers so far (at most `PLAN_SLOTS - 1`).
    claimed: AtomicUsize,
}

struct Slot {
    /// 0 (no cache has id 0) until `plan` is written; then the cache's id,
    /// never changed again.
    id: AtomicU64,
    plan: UnsafeCell<MaybeUninit<Plan>>,
}

impl PlanCache {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            first: AtomicPtr::new(std::ptr::null_mut()),
            more: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The plan remembered for `cache_id`: a reference (one register, the
    /// same for both paths below), not a copy of the plan's five words.
    #[inline]
    pub(crate) fn get(&self, cache_id: u64) -> Option<&Plan> {
        let ptr = self.first.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `remember`
        // and is never freed or written again, so it is valid for shared
        // reads forever.
        let (id, plan) = unsafe { ptr.as_ref() }?;
        if *id == cache_id {
            return Some(plan);
        }
        self.get_more(cache_id)
    }

    /// The plan of a cache after the first, if remembered. Out of line, so
    /// the first cache's inlined read stays as small as it was.
    #[inline(never)]
    fn get_more(&self, cache_id: u64) -> Option<&Plan> {
        for slot in &self.more()?.slots {
            let id = slot.id.load(Ordering::Acquire);
            if id == cache_id {
                // SAFETY: a non-zero id is stored (with `Release`) only after
                // the plan was written, and the plan is never written again.
                return Some(unsafe { (*slot.plan.get()).assume_init_ref() });
            }
            if id == 0 {
                // Slots are claimed in order: none after this one is set
                // (bar a writer between its claim and its id store, whose
                // cache resolves its plan meanwhile).
                break;
            }
        }
        None
    }

    /// The block of slots for the caches after the first, if made yet.
    fn more(&self) -> Option<&Slots> {
        let ptr = self.more.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `make_more`
        // and is never freed, so it is valid for shared reads forever.
        unsafe { ptr.as_ref() }
    }

    /// Remembers `plan` for `cache_id`, unless it is already known or every
    /// slot is taken. Two threads remembering the same new cache at once may
    /// both take a slot: harmless, and bounded by `PLAN_SLOTS`.
    ///
    /// A remembered plan gets counters of its own (`plan.counts`), made only
    /// once its slot is secured and never freed, like the slot; they are
    /// returned, for the cache to sum into its `Stats`.
    pub(crate) fn remember(&self, cache_id: u64, plan: &mut Plan) -> Option<&'static SiteCounts> {
        let first = self.first.load(Ordering::Acquire);
        if first.is_null() {
            let counts = Box::into_raw(Box::new(SiteCounts::new(plan.function.unwrap_or(""))));
            // SAFETY: just allocated; freed below only if never shared.
            plan.counts = Some(unsafe { &*counts });
            let new = Box::into_raw(Box::new((cache_id, *plan)));
            match self.first.compare_exchange(
                std::ptr::null_mut(),
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // SAFETY: published with the plan, which is never freed.
                Ok(_) => return Some(unsafe { &*counts }),
                Err(_) => {
                    plan.counts = None;
                    // SAFETY: `new` and `counts` were never shared: the
                    // exchange failed, and `plan` no longer points to them.
                    drop(unsafe { Box::from_raw(new) });
                    drop(unsafe { Box::from_raw(counts) });
                }
            }
        }
        if self.get(cache_id).is_some() {
            return None;
        }
        let more = self.make_more();
        let claimed = more
            .claimed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < more.slots.len()).then_some(n + 1)
            });
        // Full: this cache's plan is resolved on each call, and counted cache-wide.
        let slot = claimed.ok().and_then(|index| more.slots.get(index))?;
        let counts: &'static SiteCounts =
            Box::leak(Box::new(SiteCounts::new(plan.function.unwrap_or(""))));
        plan.counts = Some(counts);
        // SAFETY: the `claimed` counter handed this slot to this call alone,
        // and no reader reads its plan before the id below is published.
        unsafe { (*slot.plan.get()).write(*plan) };
        slot.id.store(cache_id, Ordering::Release);
        Some(counts)
    }

    /// The block of slots for the caches after the first, made by the first
    /// caller that needs it.
    fn make_more(&self) -> &Slots {
        if let Some(more) = self.more() {
            return more;
        }
        let new = Box::into_raw(Box::new(Slots {
            slots: std::array::from_fn(|_| Slot {
                id: AtomicU64::new(0),
                plan: UnsafeCell::new(MaybeUninit::uninit()),
            }),
            claimed: AtomicUsize::new(0),
        }));
        match self.more.compare_exchange(
            std::ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `new` is now shared and never freed (see `more`).
            Ok(_) => unsafe { &*new },
            Err(existing) => {
                // SAFETY: `new` was never shared: the exchange failed.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: another caller's block, never freed (see `more`).
                unsafe { &*existing }
            }
        }
    }
}

impl Default for PlanCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A plan told apart by `n` in every word, so a torn read would show.
    fn plan(n: u64) -> Plan {
        Plan {
            ttl: n,
            stale: n * 2,
            fail_safe: n * 3,
            beta: n as f64,
            single_flight: n.is_multiple_of(2),
            distributed: false,
            cache_none: true,
            refreshable: false,
            fast_hit: false,
            function: None,
            counts: None,
        }
    }

    fn is_plan(found: Option<&Plan>, n: u64) -> bool {
        found.is_some_and(|p| {
            (p.ttl, p.stale, p.fail_safe, p.beta, p.single_flight)
                == (n, n * 2, n * 3, n as f64, n.is_multiple_of(2))
        })
    }

    #[tokio::test]
    async fn a_site_keeps_each_caches_own_plan() {
        static SITE: Site = Site {
            name: "plan::test",
            ..Site::DEFAULT
        };
        let mut caches = Vec::new();
        for secs in [10, 20, 30] {
            let cache = Cache::builder()
                .default_ttl(Duration::from_secs(secs))
                .memory(10)
                .build()
                .await
                .expect("memory cache");
            caches.push((cache, secs * 1000));
        }
        for _ in 0..2 {
            for (cache, ttl) in &caches {
                let resolved = Plan::for_site(&SITE, cache).expect("no profile to miss");
                assert_eq!(resolved.ttl, *ttl);
            }
        }
        // Every cache's plan is memoized (hits take the fast path), each its own.
        for (cache, ttl) in &caches {
            let memo = SITE.plan.get(cache.inner.id).map(|p| p.ttl);
            assert_eq!(memo, Some(*ttl), "cache {}", cache.inner.id);
        }
    }

    #[test]
    fn up_to_plan_slots_caches_are_remembered() {
        let memo = PlanCache::new();
        assert!(memo.get(1).is_none());
        let last = PLAN_SLOTS as u64 + 2;
        for id in 1..=last {
            assert!(memo.remember(id, &mut plan(id)).is_some() == (id <= PLAN_SLOTS as u64));
            // Remembering a known cache again takes no slot.
            assert!(memo.remember(id, &mut plan(id)).is_none());
        }
        for id in 1..=PLAN_SLOTS as u64 {
            assert!(is_plan(memo.get(id), id), "cache {id}");
        }
        for id in PLAN_SLOTS as u64 + 1..=last {
            assert!(memo.get(id).is_none(), "cache {id} past the slots");
        }
    }

    #[test]
    fn concurrent_readers_see_whole_plans() {
        let memo = PlanCache::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let memo = &memo;
                s.spawn(move || {
                    for round in 0..1000 {
                        if round == t * 10 {
                            memo.remember(t + 1, &mut plan(t + 1));
                            memo.remember(t + 5, &mut plan(t + 5));
                        }
                        for id in 1..=PLAN_SLOTS as u64 {
                            if let Some(found) = memo.get(id) {
                                assert!(is_plan(Some(found), id), "cache {id}: {found:?}");
                            }
                        }
                    }
                });
            }
        });
        for id in 1..=PLAN_SLOTS as u64 {
            assert!(is_plan(memo.get(id), id), "cache {id}");
        }
    }
}
