//! Wall-clock milliseconds: entry times are wall-clock so they mean the same in
//! every process that shares a store.
//!
//! On Linux the read path uses `CLOCK_REALTIME_COARSE`: about 3 ns a read
//! instead of about 22 ns for `SystemTime::now()` (measured on the CI machine),
//! at the price of a resolution of one kernel tick (1-4 ms), which is far below
//! any useful TTL.
//!
//! With the `test-util` feature the clock follows tokio's instead (see
//! `follow_tokio`), so tests drive expiry with `tokio::time::pause` and
//! `advance`. A feature, not a field of the cache: builds without it (every
//! production and bench build) run exactly the code above, with no branch nor
//! load on the memory hit, and one time source moves timers, TTLs, stale and
//! fail-safe windows and the breaker together, as tokio's own `test-util` does
//! for `tokio::time::Instant`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
#[cfg(not(feature = "test-util"))]
#[inline]
pub(crate) fn now_millis() -> u64 {
    wall_millis()
}

/// Milliseconds since the Unix epoch, as tokio's clock sees them.
#[cfg(feature = "test-util")]
#[inline]
pub(crate) fn now_millis() -> u64 {
    follow_tokio::now_millis()
}

#[cfg(feature = "test-util")]
mod follow_tokio {
    //! Wall-clock milliseconds that move with `tokio::time::Instant`: the wall
    //! clock read once, plus how far tokio's clock has moved since. Outside a
    //! runtime, or in one whose time is not paused, tokio's clock is the
    //! monotonic clock, so this is the wall clock; in a runtime with paused
    //! time it stands still until the test advances it (or the runtime
    //! auto-advances to the next timer). Each runtime has its own clock: each
    //! `#[tokio::test]` sees its own time.
    use std::sync::OnceLock;
    use std::time::Instant;

    /// The wall clock and the monotonic clock, read together once.
    static ORIGIN: OnceLock<(u64, Instant)> = OnceLock::new();

    pub(crate) fn now_millis() -> u64 {
        let &(wall, at) = ORIGIN.get_or_init(|| (super::wall_millis(), Instant::now()));
        let now = tokio::time::Instant::now().into_std();
        // A paused clock may stand before `at` (paused before another thread
        // read the origin): the offset is signed, and floored as one number,
        // so that advancing by n ms always moves the result by exactly n
        // (rounding each side toward zero would lose a millisecond where the
        // offset changes sign).
        let offset: i128 = match now.checked_duration_since(at) {
            Some(ahead) => ahead.as_nanos() as i128,
            None => -(at.saturating_duration_since(now).as_nanos() as i128),
        };
        let millis = (i128::from(wall) * 1_000_000 + offset).div_euclid(1_000_000);
        u64::try_from(millis).unwrap_or(0)
    }
}

/// The wall clock, as the read path reads it.
#[inline]
fn wall_millis() -> u64 {
    #[cfg(target_os = "linux")]
    if let Some(ms) = coarse_millis() {
        return ms;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(target_os = "linux")]
#[inline]
fn coarse_millis() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 || ts.tv_sec < 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000)
}

/// The longest duration [`millis`] gives: about 100 years. A longer TTL (up to
/// `Duration::MAX`) means "forever" to a user, but Redis rejects a `PX` whose
/// deadline passes `i64::MAX` ms, and deadlines are `now + ttl`: capped, both
/// stay far from overflow.
pub(crate) const MAX_MILLIS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// Milliseconds of a duration, saturating at [`MAX_MILLIS`].
#[inline]
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    // u64 arithmetic: `as_millis` goes through u128, which shows on the hit path.
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
        .min(MAX_MILLIS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_capped() {
        use std::time::Duration;
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), MAX_MILLIS);
        assert_eq!(millis(Duration::from_secs(u64::MAX / 999)), MAX_MILLIS);
        // Redis takes `now + PX` up to i64::MAX ms.
        assert!(now_millis() + MAX_MILLIS < i64::MAX as u64);
    }

    #[test]
    fn coarse_clock_agrees_with_system_time() {
        let precise = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let now = now_millis();
        assert!(now.abs_diff(precise) < 50, "{now} vs {precise}");
    }
}
