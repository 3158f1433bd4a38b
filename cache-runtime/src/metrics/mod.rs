//! The `metrics` feature: every cache reports through the [`metrics`]
//! facade, to whatever recorder the application installed (the library
//! installs none). [`CacheBuilder::metrics(false)`](crate::CacheBuilder::metrics)
//! turns it off for one cache.
//!
//! Two parts. A listener on the [events](crate::events) counts what happens
//! off the hit path as it happens (loads and their durations,
//! invalidations, evictions, faults, refreshes, fail-safe serves, coalesced
//! waiters, remote operations' durations). Gets are not events for it: a hit
//! only bumps its function's counter, as `Stats` always counted, and a drain
//! task turns those counters' growth into `cache_gets_total` every
//! [`PERIOD`], with the gauges. The task runs on the tokio runtime the cache
//! was built in and stops once the cache's last handle is dropped (after a
//! last drain); a cache built outside a tokio runtime has no task, so its
//! gets and gauges are not reported (its other metrics are).
//!
//! Labels are `cache` (the namespace), `function` (a `#[cached]` function's
//! `name`) on what a call of a cached function did, and a small fixed set
//! (`result`, `outcome`, `kind`): never a key or a tag, so the number of
//! series is bounded by the number of cached functions.

mod drain;
mod listener;

pub(crate) use drain::start;
pub(crate) use listener::MetricsListener;

use metrics::{describe_counter, describe_gauge, describe_histogram, Label, Unit};

/// How often the drain reports gets and gauges: values are current within 1 s.
pub(crate) const PERIOD: std::time::Duration = std::time::Duration::from_millis(500);

/// The metric names (README: Metrics).
pub(crate) mod names {
    pub(crate) const GETS: &str = "cache_gets_total";
    pub(crate) const LOADS: &str = "cache_loads_total";
    pub(crate) const LOAD_DURATION: &str = "cache_load_duration_seconds";
    pub(crate) const INVALIDATIONS: &str = "cache_invalidations_total";
    pub(crate) const EVICTIONS: &str = "cache_evictions_total";
    pub(crate) const FAIL_SAFE: &str = "cache_fail_safe_total";
    pub(crate) const REFRESHES: &str = "cache_refreshes_total";
    pub(crate) const COALESCED: &str = "cache_coalesced_total";
    pub(crate) const DECODE_ERRORS: &str = "cache_decode_errors_total";
    pub(crate) const CORRUPT_ENTRIES: &str = "cache_corrupt_entries_total";
    pub(crate) const OVERSIZED_ENTRIES: &str = "cache_oversized_entries_total";
    pub(crate) const SCHEMA_MISMATCHES: &str = "cache_schema_mismatches_total";
    pub(crate) const REMOTE_ERRORS: &str = "cache_remote_errors_total";
    pub(crate) const REMOTE_DURATION: &str = "cache_remote_duration_seconds";
    pub(crate) const BREAKER_STATE: &str = "cache_breaker_state";
    pub(crate) const BACKPLANE_UP: &str = "cache_backplane_up";
    pub(crate) const MEMORY_ENTRIES: &str = "cache_memory_entries";
    pub(crate) const PENDING_INVALIDATIONS: &str = "cache_pending_invalidations";
}

/// `cache`, then `function` when there is one.
pub(crate) fn labels(cache: &str, function: Option<&str>) -> Vec<Label> {
    let mut labels = Vec::with_capacity(3);
    labels.push(Label::new("cache", cache.to_string()));
    if let Some(function) = function {
        labels.push(Label::new("function", function.to_string()));
    }
    labels
}

/// Describes every metric to the recorder installed now; once per process.
pub(crate) fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use names::*;
        describe_counter!(GETS, "Calls that looked for a value, by result: hit, stale or miss.");
        describe_counter!(LOADS, "Runs of the function (or a loader), by outcome: ok or error (an error or a panic).");
        describe_histogram!(LOAD_DURATION, Unit::Seconds, "How long each run of the function took.");
        describe_counter!(INVALIDATIONS, "Tags invalidated (one per tag).");
        describe_counter!(EVICTIONS, "Entries evicted from the memory tier to make room.");
        describe_counter!(FAIL_SAFE, "Failed loads answered with an expired value (fail-safe).");
        describe_counter!(REFRESHES, "Background refreshes started (stale-while-revalidate, refresh-ahead).");
        describe_counter!(COALESCED, "Callers that waited for another caller's load.");
        describe_counter!(DECODE_ERRORS, "Entries or messages from the remote tier that did not decode.");
        describe_counter!(CORRUPT_ENTRIES, "Of the decode errors, remote entries whose checksum did not match.");
        describe_counter!(OVERSIZED_ENTRIES, "Entries over the maximum entry size: not written to the remote tier, or read from it and not decoded.");
        describe_counter!(SCHEMA_MISMATCHES, "Remote entries written for another shape of the stored type: misses, never decoded.");
        describe_counter!(REMOTE_ERRORS, "Failed operations of the remote tier, by kind: timeout, connection, breaker_open, other.");
        describe_histogram!(REMOTE_DURATION, Unit::Seconds, "How long each operation on the remote tier took.");
        describe_gauge!(BREAKER_STATE, "The remote tier's circuit breaker: 0 closed, 1 half-open, 2 open.");
        describe_gauge!(BACKPLANE_UP, "Whether the backplane is subscribed (1) or not (0).");
        describe_gauge!(MEMORY_ENTRIES, "Entries held in the memory tier.");
        describe_gauge!(PENDING_INVALIDATIONS, "Tags whose invalidation the remote tier has not confirmed yet.");
    });
}
