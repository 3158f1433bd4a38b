//! A circuit breaker around the remote tier: after `threshold` consecutive
//! failures it opens, and calls skip the remote tier (the memory tier and the
//! function keep serving) until `open_for` has passed; then one probe call is
//! let through (half-open): success closes the breaker, failure opens it again.
//!
//! It also tells when the remote tier is back: a success after failures, or
//! a new connection seen elsewhere ([`Breaker::reconnected`], the backplane
//! subscribing again, which also lets a probe through at once) wakes
//! [`Breaker::back`]'s waiter, the retry of queued invalidations.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
// tokio's, not std's: the same instant outside tests, and tokio's paused time
// in tests (`tokio::time::pause`/`advance` open and close the breaker).
use tokio::time::Instant;

/// The state of a cache's circuit breaker, as reported by stats and health.
/// Serialized as `"closed"`, `"open"` or `"half_open"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go to the remote tier.
    Closed,
    /// The remote tier failed repeatedly; calls skip it until a probe is due.
    Open,
    /// One probe call is in flight to see whether the remote tier is back.
    HalfOpen,
}

/// Breaker thresholds; see [`CacheBuilder::breaker`](crate::CacheBuilder::breaker).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerConfig {
    pub(crate) threshold: u32,
    pub(crate) open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            open_for: Duration::from_secs(2),
        }
    }
}

pub(crate) struct Breaker {
    config: BreakerConfig,
    epoch: Instant,
    failures: AtomicU32,
    /// Micros since `epoch` when the breaker opened; 0 when closed.
    opened_at: AtomicU64,
    /// Micros since `epoch` when the probe in flight began; 0 when none.
    /// A probe whose caller was dropped never reports back: after
    /// `open_for` it is taken as abandoned and another probe goes, instead
    /// of the breaker staying open for ever.
    probing: AtomicU64,
    /// Set by [`Breaker::reconnected`]: the next permit probes at once.
    probe_now: AtomicBool,
    /// Notified (one stored permit) when the remote tier is back.
    back: Arc<Notify>,
}

/// Permission to call the remote tier; report how the call went.
pub(crate) enum Permit {
    Call,
    Probe,
}

/// Microseconds of `d`, saturating: `as u64` would wrap a huge `open_for`
/// (e.g. 2^60 s wraps to 0: a breaker that never stays open).
fn saturating_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probing: AtomicU64::new(0),
            probe_now: AtomicBool::new(false),
            back: Arc::new(Notify::new()),
        }
    }

    /// Notified when the remote tier is back after failures.
    pub(crate) fn back(&self) -> Arc<Notify> {
        self.back.clone()
    }

    /// A new connection to the remote tier works (seen outside the calls
    /// this breaker watches): an open breaker probes at the next call
    /// instead of waiting out its open period, and `back` is notified.
    pub(crate) fn reconnected(&self) {
        if self.opened_at.load(Ordering::Acquire) != 0 {
            self.probe_now.store(true, Ordering::Release);
        }
        self.back.notify_one();
    }

    fn now_micros(&self) -> u64 {
        // +1 keeps 0 free to mean "closed".
        saturating_micros(self.epoch.elapsed()).saturating_add(1)
    }

    /// Whether a call may go to the remote tier now.
    pub(crate) fn permit(&self) -> Option<Permit> {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            return Some(Permit::Call);
        }
        let open_for = saturating_micros(self.config.open_for);
        if self.now_micros().saturating_sub(opened) < open_for
            && !self.probe_now.load(Ordering::Acquire)
        {
            return None;
        }
        // Past the open period: exactly one caller probes (a probe
        // abandoned for `open_for` is replaced).
        let now = self.now_micros();
        let probing = self.probing.load(Ordering::Acquire);
        if probing != 0 && now.saturating_sub(probing) < open_for {
            return None;
        }
        self.probing
            .compare_exchange(probing, now, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Permit::Probe)
    }

    pub(crate) fn success(&self, permit: Permit) {
        // Written only when it changes: every remote call ends here, and an
        // unconditional store made the counter's cache line bounce between
        // cores on every call.
        let mut recovered = false;
        if self.failures.load(Ordering::Acquire) != 0 {
            self.failures.store(0, Ordering::Release);
            recovered = true;
        }
        if matches!(permit, Permit::Probe) || self.opened_at.load(Ordering::Acquire) != 0 {
            self.opened_at.store(0, Ordering::Release);
            self.probing.store(0, Ordering::Release);
            self.probe_now.store(false, Ordering::Release);
            recovered = true;
        }
        if recovered {
            self.back.notify_one();
        }
    }

    pub(crate) fn failure(&self, permit: Permit) {
        match permit {
            Permit::Probe => {
                self.opened_at.store(self.now_micros(), Ordering::Release);
                self.probe_now.store(false, Ordering::Release);
                self.probing.store(0, Ordering::Release);
            }
            Permit::Call => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.config.threshold {
                    let _ = self.opened_at.compare_exchange(
                        0,
                        self.now_micros(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
            }
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        if self.opened_at.load(Ordering::Acquire) == 0 {
            BreakerState::Closed
        } else if self.probing.load(Ordering::Acquire) != 0 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_ms: u64) -> Breaker {
        Breaker::new(BreakerConfig {
            threshold,
            open_for: Duration::from_millis(open_ms),
        })
    }

    // The tests run on tokio's paused time: `advance` moves the breaker's
    // clock exactly, so "before the open period ends" and "after it" are
    // decided by the test, not by the machine's load.
    use tokio::time::advance;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_probes_then_closes() {
        let b = breaker(3, 50);
        for _ in 0..2 {
            b.failure(b.permit().unwrap());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure(b.permit().unwrap());
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.permit().is_none(), "open: no calls");
        advance(Duration::from_millis(49)).await;
        assert!(
            b.permit().is_none(),
            "still open 1 ms before the period ends"
        );
        advance(Duration::from_millis(1)).await;
        let probe = b.permit().expect("a probe after the open period");
        assert!(matches!(probe, Permit::Probe));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.permit().is_none(), "only one probe at a time");
        b.success(probe);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(matches!(b.permit(), Some(Permit::Call)));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens() {
        let b = breaker(1, 30);
        b.failure(b.permit().unwrap());
        advance(Duration::from_millis(30)).await;
        let probe = b.permit().unwrap();
        assert!(matches!(probe, Permit::Probe));
        advance(Duration::from_millis(20)).await;
        b.failure(probe);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.permit().is_none());
        advance(Duration::from_millis(29)).await;
        assert!(
            b.permit().is_none(),
            "the period runs again from the failed probe, not from the first opening"
        );
        advance(Duration::from_millis(1)).await;
        assert!(matches!(b.permit(), Some(Permit::Probe)));
    }

    #[test]
    fn a_huge_open_period_keeps_it_open() {
        for open_for in [Duration::MAX, Duration::from_secs(1 << 60)] {
            let b = Breaker::new(BreakerConfig {
                threshold: 1,
                open_for,
            });
            b.failure(b.permit().unwrap());
            assert_eq!(b.state(), BreakerState::Open);
            assert!(b.permit().is_none(), "{open_for:?}: no probe yet");
        }
    }

    #[test]
    fn a_reconnection_lets_an_open_breaker_probe_at_once_and_says_so() {
        let b = breaker(1, 60_000);
        b.failure(b.permit().unwrap());
        assert!(b.permit().is_none(), "open for a minute");
        let back = b.back();
        b.reconnected();
        let probe = b.permit().expect("a probe at once");
        assert!(matches!(probe, Permit::Probe));
        b.failure(probe);
        assert!(
            b.permit().is_none(),
            "a failed probe waits the period again"
        );
        b.reconnected();
        b.success(b.permit().expect("a probe"));
        assert_eq!(b.state(), BreakerState::Closed);
        // `back` holds a permit for its waiter.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), back.notified())
                .await
                .expect("notified");
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_caller_was_dropped_is_replaced_after_the_open_period() {
        let b = breaker(1, 30);
        b.failure(b.permit().unwrap());
        advance(Duration::from_millis(30)).await;
        // The caller is cancelled: the probe never reports back.
        assert!(matches!(b.permit(), Some(Permit::Probe)));
        assert!(b.permit().is_none(), "one probe at a time");
        advance(Duration::from_millis(29)).await;
        assert!(b.permit().is_none(), "the probe is not abandoned yet");
        advance(Duration::from_millis(1)).await;
        let probe = b.permit().expect("the abandoned probe is replaced");
        b.success(probe);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn success_resets_the_failure_count() {
        let b = breaker(2, 1000);
        b.failure(b.permit().unwrap());
        b.success(b.permit().unwrap());
        b.failure(b.permit().unwrap());
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
