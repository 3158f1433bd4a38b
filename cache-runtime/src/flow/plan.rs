//! A call's effective options: the function's own over its profile's over the
//! cache's defaults, in milliseconds; and each cache's table of them per site.

pub(crate) mod number;
mod table;

pub(crate) use table::PlanTable;

use crate::clock::millis;
use crate::private::{LockMode, Site};
use crate::stats::{CountsRef, SiteCounts};
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
    /// Where this call's gets are counted: the function's own counters in
    /// the cache the plan was resolved for (only ever used with that cache,
    /// which owns them), or (`None`: the manual API) the cache-wide ones.
    pub(crate) counts: Option<CountsRef>,
}

impl Plan {
    pub(crate) fn from_policy(policy: &Policy, cache: &Cache, refreshable: bool) -> Plan {
        let p = policy.or(&cache.inner.config.defaults);
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
        let inner = &cache.inner;
        if let Some(plan) = inner.plans.get(site.plan.index()) {
            return Ok(*plan);
        }
        let mut plan = Self::resolve(site, cache)?;
        // Profiles and defaults are fixed once a cache is built, so the plan
        // stays right for this cache. A plan kept in the table counts its
        // gets in counters of its own, which the cache owns.
        Ok(inner.plans.remember(site.plan.number(), || {
            let counts = SiteCounts::new(site.name);
            plan.counts = Some(inner.observe.counters.sites.register(counts));
            plan
        }))
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
        plan.distributed = cache.inner.tiers.remote.is_some()
            && matches!(site.lock, LockMode::Default | LockMode::Distributed);
        plan.cache_none = site.cache_none;
        plan.function = Some(site.name);
        plan.fast_hit = plan.beta == 0.0 && !cache.inner.observe.get_events;
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Weak;
    use std::time::Duration;

    use super::*;

    /// A plan told apart by `n` in every word, so a torn read would show.
    pub(crate) fn plan(n: u64) -> Plan {
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

    pub(crate) fn is_plan(found: Option<&Plan>, n: u64) -> bool {
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
        // Every cache's plan is kept (hits take the fast path), each its own.
        for (cache, ttl) in &caches {
            let kept = cache.inner.plans.get(SITE.plan.index()).map(|p| p.ttl);
            assert_eq!(kept, Some(*ttl), "cache {}", cache.inner.config.id);
        }
    }

    /// Before the plans moved into the caches, a site kept eight (a fixed
    /// memo) and resolved the later caches' plans on every call.
    #[test]
    fn a_site_used_with_a_thousand_caches_keeps_every_plan() {
        static SITE: Site = Site {
            name: "plan::tenants",
            ..Site::DEFAULT
        };
        let caches: Vec<Cache> = (0..1000).map(|_| Cache::memory(10)).collect();
        for cache in &caches {
            let plan = Plan::for_site(&SITE, cache).expect("no profile to miss");
            assert!(plan.counts.is_some(), "counted per function");
        }
        let kept = caches
            .iter()
            .filter(|cache| cache.inner.plans.get(SITE.plan.index()).is_some())
            .count();
        assert_eq!(kept, 1000);
    }

    #[test]
    fn a_dropped_cache_frees_its_functions_counters() {
        static SITES: [Site; 3] = [
            Site {
                name: "plan::a",
                ..Site::DEFAULT
            },
            Site {
                name: "plan::b",
                ..Site::DEFAULT
            },
            Site {
                name: "plan::c",
                ..Site::DEFAULT
            },
        ];
        // Outside a tokio runtime: no metrics drain shares the counters.
        let cache = Cache::memory(10);
        let other = Cache::memory(10);
        for site in &SITES {
            Plan::for_site(site, &cache).expect("no profile to miss");
            Plan::for_site(site, &other).expect("no profile to miss");
        }
        let counts: Vec<Weak<SiteCounts>> = cache
            .inner
            .observe
            .counters
            .sites
            .list()
            .iter()
            .map(std::sync::Arc::downgrade)
            .collect();
        assert_eq!(counts.len(), 3);
        let clone = cache.clone();
        drop(cache);
        assert!(
            counts.iter().all(|c| c.upgrade().is_some()),
            "a clone is alive"
        );
        drop(clone);
        assert!(
            counts.iter().all(|c| c.upgrade().is_none()),
            "freed with the cache"
        );
        // The other cache keeps its own.
        assert_eq!(other.inner.observe.counters.sites.list().len(), 3);
        for site in &SITES {
            assert!(other.inner.plans.get(site.plan.index()).is_some());
        }
    }
}
