//! The limits a health report judges against, set at start-up.

use std::time::Duration;

/// The limits of [`Cache::health_report`](crate::Cache::health_report), set
/// with [`CacheBuilder::health_thresholds`](crate::CacheBuilder::health_thresholds).
///
/// Each figure has a warning limit (past it the cache is
/// [degraded](super::HealthStatus::Degraded)) and a critical one (past it,
/// [unhealthy](super::HealthStatus::Unhealthy)). The ratios are judged over
/// the last [`window`](Self::window), and only once it holds at least
/// [`min_calls`](Self::min_calls) calls, so a cold start is not degraded.
///
/// | figure | warning | critical |
/// |---|---|---|
/// | hit ratio (below) | 80% | 60% |
/// | error ratio (above) | 1% | 5% |
/// | remote round trip (above) | 10 ms | 50 ms |
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::HealthThresholds;
///
/// let thresholds = HealthThresholds::default()
///     .hit_ratio(0.5, 0.2)                // a cache of long-tail keys
///     .window(Duration::from_secs(300))
///     .min_calls(1_000);
/// assert_eq!(thresholds.hit_ratio_warn, 0.5);
/// assert_eq!(thresholds.error_ratio_critical, 0.05);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct HealthThresholds {
    /// A hit ratio below this is degraded (default 0.8).
    pub hit_ratio_warn: f64,
    /// A hit ratio below this is unhealthy (default 0.6).
    pub hit_ratio_critical: f64,
    /// An error ratio above this is degraded (default 0.01).
    pub error_ratio_warn: f64,
    /// An error ratio above this is unhealthy (default 0.05).
    pub error_ratio_critical: f64,
    /// A remote round trip (one PING) longer than this is degraded (default 10 ms).
    pub round_trip_warn: Duration,
    /// A remote round trip longer than this is unhealthy (default 50 ms).
    pub round_trip_critical: Duration,
    /// How far back the ratios look (default 60 s). The window is sampled
    /// twelve times over its length (every 5 s by default), so a report
    /// covers between one window and one window and a twelfth.
    pub window: Duration,
    /// Fewer calls than this in the window leave the ratios unjudged
    /// (default 100).
    pub min_calls: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            hit_ratio_warn: 0.8,
            hit_ratio_critical: 0.6,
            error_ratio_warn: 0.01,
            error_ratio_critical: 0.05,
            round_trip_warn: Duration::from_millis(10),
            round_trip_critical: Duration::from_millis(50),
            window: Duration::from_secs(60),
            min_calls: 100,
        }
    }
}

impl HealthThresholds {
    /// The hit ratio (0.0 to 1.0) below which the cache is degraded, and
    /// below which it is unhealthy. `0.0, 0.0` never judges it.
    pub fn hit_ratio(mut self, warn: f64, critical: f64) -> Self {
        self.hit_ratio_warn = warn;
        self.hit_ratio_critical = critical;
        self
    }

    /// The error ratio (0.0 to 1.0) above which the cache is degraded, and
    /// above which it is unhealthy. `1.0, 1.0` never judges it.
    pub fn error_ratio(mut self, warn: f64, critical: f64) -> Self {
        self.error_ratio_warn = warn;
        self.error_ratio_critical = critical;
        self
    }

    /// The remote round trip above which the cache is degraded, and above
    /// which it is unhealthy.
    pub fn round_trip(mut self, warn: Duration, critical: Duration) -> Self {
        self.round_trip_warn = warn;
        self.round_trip_critical = critical;
        self
    }

    /// How far back the ratios look; at least 100 ms is used.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The fewest calls in the window for the ratios to be judged.
    pub fn min_calls(mut self, min_calls: u64) -> Self {
        self.min_calls = min_calls;
        self
    }
}
