//! Writes by key (`set`, `set_with`, `set_many`, `delete`,
//! `delete_matching`) on the backplane, so that other processes' memory
//! tiers drop those keys within milliseconds, and within about a second when
//! a message is lost.
//!
//! A write takes a number from the namespace's write counter (`INCR
//! {namespace}#writes`) before it changes Redis, and publishes the keys with
//! that number after. Each process notes the numbers it heard (its own
//! included); the periodic confirmation (`coherence::confirm`) reads the
//! counter, and a number that was taken a round earlier but never heard
//! means a message was lost: the memory tier is cleared, since which keys it
//! named is unknown. A writer that dies between its `INCR` and its write
//! costs others one such clear; one that dies after its write but before its
//! `PUBLISH` is caught the same way.

use std::collections::BTreeSet;

use parking_lot::Mutex;

use super::{message, Host};

/// What a write changed.
pub(crate) enum KeyWrite<'a> {
    /// These manual-API keys.
    Keys(Vec<&'a str>),
    /// Every key of the namespace matching this `delete_matching` pattern.
    Pattern(&'a str),
}

/// The store key of a namespace's write counter.
pub(crate) fn counter_key(namespace: &str) -> String {
    format!("{namespace}#writes")
}

/// Takes a number for a write about to be made; `None` without a remote
/// tier, or when the counter could not be reached (the message then goes
/// without a number, and a lost one goes unseen until the entries expire).
pub(crate) async fn reserve<H: Host>(inner: &H) -> Option<u64> {
    let remote = inner.remote()?;
    let key = counter_key(inner.namespace());
    let seq = remote
        .call_once(inner.counters(), |s| s.increment(&key, 1))
        .await
        .ok()
        .and_then(|n| u64::try_from(n).ok())?;
    if let Some(backplane) = &inner.coherence().backplane {
        backplane.writes.heard(seq);
    }
    Some(seq)
}

/// Tells other processes that `write` (numbered `seq`) was made.
pub(crate) async fn publish<H: Host>(inner: &H, seq: Option<u64>, write: KeyWrite<'_>) {
    let Some(remote) = inner.remote() else { return };
    let origin = inner.coherence().backplane.as_ref().map_or(0, |b| b.origin);
    let (keys, pattern) = match write {
        KeyWrite::Keys(keys) => (keys.into_iter().map(str::to_string).collect(), None),
        KeyWrite::Pattern(pattern) => (Vec::new(), Some(pattern.to_string())),
    };
    let Some(message) = message::encode_writes(origin, keys, pattern, seq) else {
        return;
    };
    let channel = message::channel(inner.namespace());
    // Counted by `call`; a lost message is caught by the confirmation.
    let _ = remote.publish(inner.counters(), &channel, message).await;
}

/// Drops from memory what another process's write changed.
pub(crate) fn apply<H: Host>(inner: &H, keys: &[String], pattern: Option<&str>) {
    for key in keys {
        inner.forget_key(key);
    }
    if let Some(pattern) = pattern {
        inner.forget_matching(pattern);
    }
}

/// The write numbers one process heard since the last confirmation.
#[derive(Default)]
pub(crate) struct WriteLog {
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    /// Every number up to this one is accounted for.
    settled: Option<u64>,
    /// The counter as read by the previous confirmation.
    previous: Option<u64>,
    /// Numbers above `settled` heard so far.
    heard: BTreeSet<u64>,
}

impl WriteLog {
    /// A write numbered `seq` was heard (or made here).
    pub(crate) fn heard(&self, seq: u64) {
        let mut state = self.state.lock();
        if state.settled.is_none_or(|settled| seq > settled) {
            state.heard.insert(seq);
        }
    }

    /// Starts afresh (a new subscription: memory was cleared).
    pub(crate) fn reset(&self) {
        *self.state.lock() = LogState::default();
    }

    /// The confirmation read the counter at `now`: whether every write
    /// numbered up to the previous reading was heard. `false` means a
    /// message was lost, and the memory tier must be cleared.
    pub(crate) fn confirm(&self, now: u64) -> bool {
        let mut state = self.state.lock();
        // The counter went back (evicted or deleted): what was heard cannot
        // be matched to it.
        let went_back = state.previous.is_some_and(|previous| now < previous);
        let complete = !went_back
            && match (state.settled, state.previous) {
                (Some(settled), Some(previous)) => {
                    (settled + 1..=previous).all(|seq| state.heard.contains(&seq))
                }
                _ => true,
            };
        // After a gap memory is cleared, so what came before is moot too.
        let settled = if went_back {
            now
        } else {
            state.previous.unwrap_or(now)
        };
        state.settled = Some(settled);
        state.heard = state.heard.split_off(&(settled + 1));
        state.previous = Some(now);
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_heard_keeps_memory_and_a_gap_clears_it() {
        let log = WriteLog::default();
        assert!(log.confirm(10), "the first reading sets the start");
        log.heard(11);
        log.heard(12);
        assert!(
            log.confirm(12),
            "11 and 12 were taken after the reading of 10"
        );
        // 13 is taken but its message travels: not judged until a round later.
        log.heard(14);
        assert!(log.confirm(14));
        log.heard(13);
        assert!(log.confirm(14), "13 arrived in time");
        log.heard(16);
        assert!(log.confirm(16));
        assert!(!log.confirm(16), "15 never came");
        assert!(log.confirm(16), "a clear starts afresh");
    }

    #[test]
    fn a_counter_that_went_back_clears_memory_once() {
        let log = WriteLog::default();
        assert!(log.confirm(100));
        assert!(log.confirm(100));
        assert!(!log.confirm(3), "evicted and started again");
        log.heard(4);
        assert!(log.confirm(4));
        assert!(log.confirm(4), "4 was heard");
        assert!(log.confirm(5), "5 is judged a round later");
        assert!(!log.confirm(5), "5 never came");
    }
}
