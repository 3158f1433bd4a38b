//! A call's effective options: the function's own over its profile's over the
//! cache's defaults, in milliseconds.

use crate::clock::millis;
use crate::private::{LockMode, Site};
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
                Some(beta) if refreshable && beta > 0.0 && beta.is_finite() => beta,
                _ => 0.0,
            },
            single_flight: true,
            distributed: false,
            cache_none: true,
            refreshable,
        }
    }

    #[inline]
    pub(crate) fn for_site(site: &'static Site, cache: &Cache) -> Result<Plan, Error> {
        if let Some(plan) = site.plan.get(cache.inner.id) {
            return Ok(plan);
        }
        let plan = Self::resolve(site, cache)?;
        // Profiles and defaults are fixed once a cache is built, so the plan
        // stays right for this cache; other caches resolve each time.
        site.plan.remember(cache.inner.id, plan);
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
