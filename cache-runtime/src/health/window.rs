//! The window the health report judges: a small ring of [`Stats`] snapshots,
//! taken by a light background task, so that the report compares the counters
//! now with the counters about one window ago instead of judging lifetime
//! totals (a cache that was fine for a week and misses everything now is
//! not healthy).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::HealthThresholds;
use crate::cache::Inner;
use crate::Stats;

/// Snapshots per window: the ring holds one more, so that one of them is
/// always at least a window old once the cache is that old.
const SAMPLES: u32 = 12;
/// The shortest window used.
const MIN_WINDOW: Duration = Duration::from_millis(100);

/// The per-cache state of health reports: the thresholds and the ring.
pub(crate) struct Monitor {
    pub(super) thresholds: HealthThresholds,
    window: Duration,
    ring: Mutex<VecDeque<(Instant, Stats)>>,
    /// Whether a sampling task runs; cleared when it ends, also when its
    /// runtime shuts down and drops it, so a later report starts another.
    sampling: Arc<AtomicBool>,
}

impl Monitor {
    pub(crate) fn new(thresholds: HealthThresholds) -> Self {
        // The cache's birth: every counter is zero.
        let ring = VecDeque::from([(Instant::now(), Stats::default())]);
        Self {
            window: thresholds.window.max(MIN_WINDOW),
            thresholds,
            ring: Mutex::new(ring),
            sampling: Arc::default(),
        }
    }

    /// Time between snapshots.
    fn period(&self) -> Duration {
        self.window / SAMPLES
    }

    fn push(&self, at: Instant, stats: Stats) {
        let mut ring = self.ring.lock();
        if ring.len() > SAMPLES as usize {
            ring.pop_front();
        }
        ring.push_back((at, stats));
    }

    /// The snapshot the window starts at, at `now`: the newest one at least
    /// a window old, else (a young cache, or a task that has not run) the
    /// oldest one.
    pub(super) fn base(&self, now: Instant) -> (Instant, Stats) {
        let ring = self.ring.lock();
        ring.iter()
            .rev()
            .find(|(at, _)| now.saturating_duration_since(*at) >= self.window)
            .or_else(|| ring.front())
            .copied()
            // The ring is never empty (it starts with one, and `push` adds
            // after it removes); a zero base is the safe answer all the same.
            .unwrap_or((now, Stats::default()))
    }
}

/// Starts the sampling task of `inner` unless it runs; a no-op outside a
/// tokio runtime (a report made later, inside one, starts it).
pub(crate) fn start(inner: &Arc<Inner>) {
    let monitor = &inner.observe.health;
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if monitor.sampling.swap(true, Ordering::AcqRel) {
        return;
    }
    // Made here, in the runtime's context: a runtime built without timers
    // (`enable_time`) panics on it. The flag stays set then, so no report
    // tries again, and the figures cover the cache's whole life.
    let period = monitor.period();
    let Ok(mut ticks) = std::panic::catch_unwind(|| tokio::time::interval(period)) else {
        tracing::warn!(namespace = %inner.config.namespace, "the tokio runtime has no timers: health reports judge the cache's lifetime counters");
        return;
    };
    // A late tick (a busy runtime) is taken late, not made up in a burst.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let running = Running(monitor.sampling.clone());
    handle.spawn(sample(Arc::downgrade(inner), ticks, running));
}

/// Clears the flag when the task ends or is dropped.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Takes a snapshot at every tick until the cache is gone. Holds the cache
/// only while it takes one, so the last `Cache` handle's drop ends it.
async fn sample(cache: Weak<Inner>, mut ticks: tokio::time::Interval, _running: Running) {
    // The first tick is at once; the ring already holds the birth snapshot.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = cache.upgrade() else { return };
        inner.observe.health.push(Instant::now(), inner.stats());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(hits: u64) -> Stats {
        Stats {
            hits,
            ..Stats::default()
        }
    }

    #[test]
    fn the_base_is_the_newest_snapshot_a_window_old() {
        let monitor = Monitor::new(HealthThresholds::default().window(Duration::from_secs(12)));
        assert_eq!(monitor.period(), Duration::from_secs(1));
        let start = Instant::now();
        // Young: the birth snapshot.
        assert_eq!(monitor.base(start + Duration::from_secs(3)).1, stats(0));
        for s in 1..=30u64 {
            monitor.push(start + Duration::from_secs(s), stats(s));
        }
        // Snapshots 18..=30 are left (13 of them); at 31 s the newest one at
        // least 12 s old is the one of 19 s.
        assert_eq!(monitor.ring.lock().len(), 13);
        let (at, base) = monitor.base(start + Duration::from_secs(31));
        assert_eq!(base, stats(19));
        assert_eq!(at, start + Duration::from_secs(19));
    }

    #[test]
    fn a_runtime_without_timers_is_not_a_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let cache = crate::Cache::memory(10);
            let report = cache.health_report().await;
            assert!(report.status.is_healthy());
            assert!(
                cache.inner.observe.health.sampling.load(Ordering::Acquire),
                "not tried again by every report"
            );
        });
    }

    #[test]
    fn a_tiny_window_is_raised() {
        let monitor = Monitor::new(HealthThresholds::default().window(Duration::ZERO));
        assert_eq!(monitor.window, MIN_WINDOW);
        assert!(monitor.period() > Duration::ZERO);
    }
}
