//! How long entries stay fresh, stale and fail-safe: per function, per profile,
//! per cache.

use std::time::Duration;

/// The largest `refresh_ahead` beta accepted (see [`Policy::refresh_ahead`]).
pub(crate) const MAX_REFRESH_AHEAD: f64 = 100.0;

/// A set of expiry options, registered by name with
/// [`CacheBuilder::profile`](crate::CacheBuilder::profile) or passed to the
/// manual API. Unset options fall through to the next level: the function's
/// own arguments win over the profile, which wins over the cache's defaults.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::Policy;
///
/// let policy = Policy::ttl(Duration::from_secs(1800))
///     .stale(Duration::from_secs(60))
///     .fail_safe(Duration::from_secs(3600));
/// assert_eq!(policy.ttl_value(), Some(Duration::from_secs(1800)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Policy {
    pub(crate) ttl: Option<Duration>,
    pub(crate) stale: Option<Duration>,
    pub(crate) fail_safe: Option<Duration>,
    pub(crate) refresh_ahead: Option<f64>,
}

impl Policy {
    /// A policy with every option unset.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy whose values are fresh for `ttl`.
    pub fn ttl(ttl: Duration) -> Self {
        Self {
            ttl: Some(ttl),
            ..Self::default()
        }
    }

    /// Sets how long the values are fresh.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// After the TTL, serve the old value for up to `stale` while one background
    /// refresh runs.
    pub fn stale(mut self, stale: Duration) -> Self {
        self.stale = Some(stale);
        self
    }

    /// Past expiry, serve the old value for up to `fail_safe` when a load fails.
    pub fn fail_safe(mut self, fail_safe: Duration) -> Self {
        self.fail_safe = Some(fail_safe);
        self
    }

    /// Probabilistic early refresh (XFetch) with this beta; 1.0 is the usual value.
    ///
    /// A hit refreshes early with a probability that grows as expiry nears,
    /// about `beta` × the function's run time ahead of it. The beta must be in
    /// `(0, 100]`: above 100 nearly every hit refreshes. A builder's
    /// [`defaults`](crate::CacheBuilder::defaults) or
    /// [`profile`](crate::CacheBuilder::profile) outside that range is an
    /// [`Error::Config`](crate::Error::Config) from `build()`, as are
    /// `CACHE_PROFILE_*` values and `#[cached(refresh_ahead = ..)]` (at compile
    /// time); a policy given per call is capped at 100, and one at or
    /// below 0 (or NaN) turns early refresh off.
    pub fn refresh_ahead(mut self, beta: f64) -> Self {
        self.refresh_ahead = Some(beta);
        self
    }

    /// The TTL, if set.
    pub fn ttl_value(&self) -> Option<Duration> {
        self.ttl
    }

    /// The stale window, if set.
    pub fn stale_value(&self) -> Option<Duration> {
        self.stale
    }

    /// The fail-safe window, if set.
    pub fn fail_safe_value(&self) -> Option<Duration> {
        self.fail_safe
    }

    /// The XFetch beta, if set.
    pub fn refresh_ahead_value(&self) -> Option<f64> {
        self.refresh_ahead
    }

    /// Each option of `self` that is unset takes the value of `fallback`.
    pub(crate) fn or(self, fallback: &Policy) -> Policy {
        Policy {
            ttl: self.ttl.or(fallback.ttl),
            stale: self.stale.or(fallback.stale),
            fail_safe: self.fail_safe.or(fallback.fail_safe),
            refresh_ahead: self.refresh_ahead.or(fallback.refresh_ahead),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_fills_only_unset_options() {
        let own = Policy::new().stale(Duration::from_secs(1));
        let profile = Policy::ttl(Duration::from_secs(10)).stale(Duration::from_secs(5));
        let merged = own.or(&profile);
        assert_eq!(merged.ttl, Some(Duration::from_secs(10)));
        assert_eq!(merged.stale, Some(Duration::from_secs(1)));
        assert_eq!(merged.fail_safe, None);
    }
}
