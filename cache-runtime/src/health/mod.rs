//! The health report: the remote tier's state and the window's figures,
//! judged against thresholds set at start-up, for a health endpoint.
//!
//! - `thresholds`: the limits ([`HealthThresholds`]).
//! - `window`: the ring of counter snapshots the ratios are computed over.
//! - `assess`: figures and limits in, status and reasons out (pure).
//! - `report`: [`Cache::health_report`](crate::Cache::health_report).

mod assess;
mod report;
mod thresholds;
mod window;

use std::time::Duration;

pub use thresholds::HealthThresholds;
pub(crate) use window::{start, Monitor};

use crate::{Health, Stats};

/// How a cache is doing, from [`Cache::health_report`](crate::Cache::health_report).
///
/// Ordered from best to worst. Serialized as `"healthy"`, `"degraded"` or
/// `"unhealthy"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Every figure is within its limits.
    #[default]
    Healthy,
    /// A figure is past its warning limit, or a part is down while the
    /// cache still serves (e.g. the remote tier is unreachable and the
    /// memory tier answers).
    Degraded,
    /// A figure is past its critical limit, or the cache serves nothing
    /// (every call runs its function uncached).
    Unhealthy,
}

impl HealthStatus {
    /// `true` for [`Healthy`](Self::Healthy).
    pub fn is_healthy(self) -> bool {
        self == Self::Healthy
    }

    /// `true` for [`Degraded`](Self::Degraded).
    pub fn is_degraded(self) -> bool {
        self == Self::Degraded
    }

    /// `true` for [`Unhealthy`](Self::Unhealthy): the case for a health
    /// endpoint's `503 Service Unavailable`.
    pub fn is_unhealthy(self) -> bool {
        self == Self::Unhealthy
    }

    /// `"healthy"`, `"degraded"` or `"unhealthy"`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }

    /// The HTTP status a health endpoint answers with: 503 when unhealthy,
    /// else 200 (a degraded cache still serves).
    pub fn http_status(self) -> u16 {
        if self.is_unhealthy() {
            503
        } else {
            200
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cache's health, from [`Cache::health_report`](crate::Cache::health_report).
///
/// [`serde::Serialize`], for a health endpoint: `window` is written as
/// `window_s`, a number of seconds (fractional). For example:
///
/// ```json
/// {
///   "status": "degraded",
///   "reasons": ["hit ratio 72.4% over the last 60 s is below 80%"],
///   "window_s": 61.3,
///   "calls": 5012,
///   "hit_ratio": 0.724,
///   "error_ratio": 0.0,
///   "remote": {"connected": true, "ping_ms": 0.21, "breaker": "closed",
///              "backplane": true, "pending_invalidations": 0},
///   "stats": {"hits": 90210, "...": 0, "hit_ratio": 0.93}
/// }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The worst of the reasons' judgements; `Healthy` without reasons.
    pub status: HealthStatus,
    /// Why the status is not `Healthy`, in words, one per finding (e.g.
    /// `"hit ratio 55.0% over the last 60 s is below 60%"`); empty when healthy.
    pub reasons: Vec<String>,
    /// The span the window's figures cover: about
    /// [`HealthThresholds::window`] (up to a twelfth more), less while the
    /// cache is younger than that, or since the remote tier last recovered
    /// (its circuit breaker closed again) when that is later.
    #[serde(rename = "window_s", serialize_with = "seconds")]
    pub window: Duration,
    /// User calls in the window: hits, stale hits and misses (warming calls
    /// are not counted).
    pub calls: u64,
    /// `(hits + stale hits) / calls` over the window; `None` when the
    /// window holds fewer than [`HealthThresholds::min_calls`] calls.
    pub hit_ratio: Option<f64>,
    /// Faults over calls in the window: `(load_errors + store_errors +
    /// decode_errors) / (calls + warmed)`, at most 1.0 (one call may count
    /// several store faults, and background work counts its own); `None`
    /// when the window holds fewer than [`HealthThresholds::min_calls`] calls.
    pub error_ratio: Option<f64>,
    /// The remote tier's state, pinged for this report; `None` without a
    /// remote tier.
    pub remote: Option<Health>,
    /// The lifetime counters.
    pub stats: Stats,
}

/// A duration as fractional seconds, for JSON.
fn seconds<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}
