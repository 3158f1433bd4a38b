//! The outage grace: while Redis is unreachable, the memory tier keeps
//! serving for a bounded while, instead of every call running its function.
//!
//! Normally memory is trusted only while the backplane is subscribed and
//! Redis confirmed tag versions within the last second
//! (`Backplane::memory_trusted`). Without Redis neither can happen, yet
//! other processes cannot invalidate through an unreachable Redis either.
//! So, while the store is *unreachable* (no answer: a refused or dropped
//! connection, timeouts, an open breaker; see `Remote::unreachable`), memory
//! is served until `grace` after it was last known current: the last
//! confirmation of tag versions, or the last time it was emptied (every
//! entry in it was loaded after that). When that runs out the memory tier is
//! emptied and a new grace begins, so that through a long outage no entry
//! is served more than `grace` after it was loaded or confirmed: each key's
//! function runs about once per grace, not on every call.
//!
//! A store that answers (the backplane alone is down, or Redis replies with
//! errors) gets no grace: other processes may be invalidating through it, and
//! reads go to it as before. This process's own invalidations still apply at
//! once: their tags are pending, and entries carrying a pending tag are
//! never served (`TagRegistry::begin_pending`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Host;
use crate::clock::now_millis;

/// The default grace: see the README ("When Redis fails") for the choice.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// A cache's outage grace and when its memory tier was last known current.
pub(crate) struct Outage {
    /// The grace in ms; 0 turns it off (memory is not used without Redis).
    grace: u64,
    /// Ms since the epoch: the latest confirmation of tag versions or
    /// emptying of the memory tier.
    current_at: AtomicU64,
}

impl Outage {
    /// A grace of `grace`; the memory tier is empty (so current) now.
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            grace: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            current_at: AtomicU64::new(now_millis()),
        }
    }

    /// Whether memory may outlive a lost connection (a grace above zero).
    pub(crate) fn enabled(&self) -> bool {
        self.grace > 0
    }

    /// Redis confirmed every tag version held, in a read sent at `sent_at`;
    /// or the memory tier was emptied at `sent_at`.
    pub(crate) fn current(&self, at: u64) {
        self.current_at.fetch_max(at, Ordering::AcqRel);
    }
}

/// Whether `host`'s memory tier may serve at `now` though it is not trusted:
/// the remote tier is unreachable and the grace since memory was last
/// current has not run out. Past the grace it empties the memory tier and
/// starts a new grace (see the module's comment).
#[cold]
#[inline(never)]
pub(crate) fn serves<H: Host>(host: &H, now: u64) -> bool {
    let (Some(backplane), Some(remote)) = (&host.coherence().backplane, host.remote()) else {
        return false;
    };
    let outage = &backplane.outage;
    if !outage.enabled() || !remote.unreachable() {
        return false;
    }
    let since = outage.current_at.load(Ordering::Acquire);
    if now < since.saturating_add(outage.grace) {
        return true;
    }
    // One caller empties memory and starts the next grace; the others
    // see the new start (and an emptier memory) at once.
    if outage
        .current_at
        .compare_exchange(since, now, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        host.clear_memory();
        tracing::info!(
            namespace = %host.namespace(),
            grace_ms = outage.grace,
            "the remote cache tier is still unreachable after the outage grace: memory tier emptied, its entries are loaded again"
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grace_of_zero_is_off_and_current_only_rises() {
        assert!(!Outage::new(Duration::ZERO).enabled());
        let outage = Outage::new(Duration::from_secs(1));
        assert!(outage.enabled());
        let at = outage.current_at.load(Ordering::Acquire);
        outage.current(at + 10);
        outage.current(at + 5);
        assert_eq!(outage.current_at.load(Ordering::Acquire), at + 10);
        assert_eq!(Outage::new(Duration::MAX).grace, u64::MAX);
    }
}
