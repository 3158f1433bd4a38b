//! Hit-for-miss (as Varnish calls it): the targets whose last answer could
//! not be stored, remembered for a short while, so that concurrent requests
//! for them go to the origin at once instead of waiting for one request (the
//! single flight's leader) whose answer they could not use anyway.
//!
//! A mark is a 64-bit hash of the request's identity and an expiry, in
//! memory, at most [`MAX_MARKS`] of them: a hash collision or a lost mark
//! only changes whether requests are coalesced, never what is served. The
//! miss path alone reads the marks; a hit never does.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The most targets remembered; past that, expired marks are dropped, and if
/// none were, all are (the cost: a few requests coalesced once more).
pub(crate) const MAX_MARKS: usize = 4096;

/// The remembered uncacheable targets of one layer.
#[derive(Debug, Default)]
pub(crate) struct Uncacheable {
    /// Identity hash to expiry, Unix milliseconds.
    marks: Mutex<HashMap<u64, u64>>,
}

fn hash(identity: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(identity.as_bytes())
}

impl Uncacheable {
    /// Whether `identity` answered uncacheably and the mark has not expired.
    pub(crate) fn marked(&self, identity: &str, now: u64) -> bool {
        let marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        if marks.is_empty() {
            return false;
        }
        marks.get(&hash(identity)).is_some_and(|until| *until > now)
    }

    /// Remembers that `identity` answered uncacheably, until `now + for_millis`.
    pub(crate) fn mark(&self, identity: &str, now: u64, for_millis: u64) {
        if for_millis == 0 {
            return;
        }
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        if marks.len() >= MAX_MARKS {
            marks.retain(|_, until| *until > now);
            if marks.len() >= MAX_MARKS {
                marks.clear();
            }
        }
        marks.insert(hash(identity), now.saturating_add(for_millis));
    }

    /// Forgets `identity`: its last answer was stored.
    pub(crate) fn clear(&self, identity: &str) {
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        if !marks.is_empty() {
            marks.remove(&hash(identity));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_expire_are_cleared_and_stay_bounded() {
        let u = Uncacheable::default();
        assert!(!u.marked("a", 0));
        u.mark("a", 1_000, 5_000);
        assert!(u.marked("a", 5_999));
        assert!(!u.marked("a", 6_000), "expired");
        assert!(!u.marked("b", 2_000));
        u.clear("a");
        assert!(!u.marked("a", 2_000));
        u.mark("z", 0, 0);
        assert!(!u.marked("z", 0), "a zero duration marks nothing");
        for i in 0..(MAX_MARKS * 3) {
            u.mark(&format!("t{i}"), 10, 1_000);
        }
        let len = u.marks.lock().unwrap().len();
        assert!(len <= MAX_MARKS, "{len}");
        assert!(u.marked(&format!("t{}", MAX_MARKS * 3 - 1), 20));
    }
}
