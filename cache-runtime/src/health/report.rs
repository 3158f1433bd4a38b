//! [`Cache::health_report`]: the remote tier pinged, the window's figures
//! taken, and both judged.

use std::time::{Duration, Instant};

use super::assess::{assess, Figures, Tiers};
use super::{HealthReport, HealthThresholds};
use crate::{Cache, Stats};

impl Cache {
    /// How the cache is doing: the remote tier's state (pinged now, within
    /// the remote timeout) and the hit and error ratios of the last
    /// [window](HealthThresholds::window), judged against the
    /// [thresholds](crate::CacheBuilder::health_thresholds) set at start-up.
    ///
    /// A remote tier that is unreachable or whose circuit breaker is not
    /// closed makes the cache degraded while the memory tier still serves
    /// (write-through through an outage, for the
    /// [outage grace](crate::CacheBuilder::outage_grace)), and unhealthy
    /// when no memory tier is in use (storage-only, or write-through whose
    /// memory is not trusted and has no grace), since every call then runs
    /// its function uncached. Pending invalidations and a backplane that is
    /// down make it degraded; so does a remote tier that has not connected
    /// since start-up, with the reason among the report's reasons.
    ///
    /// The ratios are taken over the window, or since the remote tier last
    /// recovered (its circuit breaker closed again) if that is later: a
    /// cache is healthy again as soon as Redis is back, not a window later.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_runtime::Cache::memory(100);
    /// let report = cache.health_report().await;
    /// assert!(report.status.is_healthy(), "a cold cache is not degraded");
    /// assert_eq!(report.hit_ratio, None, "fewer calls than min_calls");
    /// assert!(report.reasons.is_empty());
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads (see
    /// [`health`](Cache::health)).
    pub async fn health_report(&self) -> HealthReport {
        let inner = &self.inner;
        // Sampling stopped if the runtime it ran on shut down (a global cache
        // outliving a test's runtime); a report restarts it.
        super::start(inner);
        let remote = self.health().await;
        let now = Instant::now();
        let stats = self.stats();
        let (at, base) = since_recovery(inner, inner.observe.health.base(now));
        let window = now.saturating_duration_since(at);
        let thresholds = &inner.observe.health.thresholds;
        let delta = Delta::between(&base, &stats);
        let tiers = if !inner.config.enabled {
            Tiers::Disabled
        } else if inner.tiers.memory.is_enabled() && memory_trusted(inner) {
            Tiers::Memory
        } else {
            Tiers::RemoteOnly
        };
        let figures = Figures {
            window,
            hit_ratio: delta.hit_ratio(thresholds),
            error_ratio: delta.error_ratio(thresholds),
            remote,
            tiers,
        };
        let (status, mut reasons) = assess(&figures, thresholds);
        if let Some(error) = inner.tiers.remote.as_ref().and_then(|r| r.connect_error()) {
            reasons.push(format!(
                "the remote tier has not connected since start-up ({error}); connecting in the background"
            ));
        }
        HealthReport {
            status,
            reasons,
            window: round_to_millis(window),
            calls: delta.calls,
            hit_ratio: figures.hit_ratio,
            error_ratio: figures.error_ratio,
            remote,
            stats,
        }
    }
}

fn memory_trusted(inner: &crate::cache::Inner) -> bool {
    inner.memory_usable(crate::clock::now_millis())
}

/// The window's start, or the last recovery of the remote tier if that is
/// later: the faults of an outage that is over do not keep a cache that
/// works again unhealthy for a whole window.
fn since_recovery(inner: &crate::cache::Inner, base: (Instant, Stats)) -> (Instant, Stats) {
    match inner.tiers.remote.as_ref().and_then(|r| r.recovered()) {
        Some(recovered) if recovered.0 > base.0 => recovered,
        _ => base,
    }
}

/// Whole milliseconds: the JSON shows `61.3`, not `61.300412877`.
fn round_to_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().min(u64::MAX as u128) as u64)
}

/// What happened between two snapshots.
#[derive(Debug, PartialEq)]
struct Delta {
    calls: u64,
    served: u64,
    warmed: u64,
    errors: u64,
}

impl Delta {
    fn between(base: &Stats, now: &Stats) -> Delta {
        let d = |f: fn(&Stats) -> u64| f(now).saturating_sub(f(base));
        let served = d(|s| s.hits) + d(|s| s.stale_hits);
        Delta {
            calls: served + d(|s| s.misses),
            served,
            warmed: d(|s| s.warmed),
            errors: d(|s| s.load_errors) + d(|s| s.store_errors) + d(|s| s.decode_errors),
        }
    }

    fn hit_ratio(&self, t: &HealthThresholds) -> Option<f64> {
        (self.calls >= t.min_calls.max(1)).then(|| self.served as f64 / self.calls as f64)
    }

    fn error_ratio(&self, t: &HealthThresholds) -> Option<f64> {
        let calls = self.calls + self.warmed;
        (calls >= t.min_calls.max(1)).then(|| (self.errors as f64 / calls as f64).min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_differences_and_wait_for_min_calls() {
        let base = Stats {
            hits: 1_000,
            misses: 10,
            load_errors: 3,
            ..Stats::default()
        };
        let now = Stats {
            hits: 1_055,
            stale_hits: 5,
            misses: 50,
            load_errors: 4,
            store_errors: 2,
            warmed: 20,
            ..Stats::default()
        };
        let delta = Delta::between(&base, &now);
        assert_eq!(
            delta,
            Delta {
                calls: 100,
                served: 60,
                warmed: 20,
                errors: 3
            }
        );
        let t = HealthThresholds::default();
        assert_eq!(delta.hit_ratio(&t), Some(0.6));
        assert_eq!(delta.error_ratio(&t), Some(3.0 / 120.0));
        let strict = t.min_calls(101);
        assert_eq!(delta.hit_ratio(&strict), None);
        assert_eq!(
            delta.error_ratio(&strict),
            Some(3.0 / 120.0),
            "warming counts here"
        );
        let none = Delta::between(&now, &now);
        assert_eq!(none.hit_ratio(&t.min_calls(0)), None, "no call, no ratio");
    }

    #[test]
    fn the_error_ratio_is_at_most_one() {
        let now = Stats {
            misses: 100,
            store_errors: 500,
            ..Stats::default()
        };
        let delta = Delta::between(&Stats::default(), &now);
        assert_eq!(delta.error_ratio(&HealthThresholds::default()), Some(1.0));
    }
}
