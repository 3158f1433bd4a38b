//! The maximum size of an entry in the remote tier
//! ([`CacheBuilder::max_entry_bytes`](crate::CacheBuilder::max_entry_bytes)):
//! the writer that stops encoding at it, and the counting and logging of the
//! entries it refuses.
//!
//! Without a bound, a 600 MB value was encoded whole (a `Vec<u8>` without
//! `serde_bytes` takes about twice its size as a CBOR array of integers),
//! copied for the write, and sent to Redis: 3 GB of resident memory for one
//! call, and a write that fails at the remote timeout anyway.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::events::FaultKind;
use crate::stats::Counters;

/// The default bound of one entry in the remote tier: 16 MiB.
///
/// Redis accepts values up to its `proto-max-bulk-len`, 512 MB, but a value
/// is useful only if it can be written and read back within the remote
/// timeout (250 ms by default). At 1 Gbit/s (about 119 MiB/s on the wire)
/// 16 MiB takes about 135 ms each way, half the default timeout, leaving the
/// rest for the round trip and a busy server; 32 MiB would already take
/// longer than the timeout. It also bounds what one write holds: the
/// encoding and its copy for a retry, about 32 MiB per concurrent write, and
/// how long Redis' single thread spends copying one reply. Entries of this
/// size are far past what a cache usually holds (memcached's default item
/// limit is 1 MiB), so the bound only stops the accidents it is meant for.
pub(crate) const DEFAULT_MAX_ENTRY_BYTES: usize = 16 << 20;

/// At most one warning per this many milliseconds per process (the others
/// are logged at `debug`, and counted in the next warning).
const WARN_EVERY_MS: u64 = 10_000;

/// A writer into `out` that fails, without growing `out`, once more than
/// `max` bytes would be in it. Its buffer grows as a `Vec` does (doubling)
/// but never past `max`, so encoding a value of any size allocates at most
/// `max` bytes.
pub(crate) struct Bounded<'a> {
    out: &'a mut Vec<u8>,
    max: usize,
}

impl<'a> Bounded<'a> {
    /// Appends to `out`, up to `max` bytes in all (what `out` holds included).
    pub(crate) fn new(out: &'a mut Vec<u8>, max: usize) -> Self {
        Self { out, max }
    }
}

/// The error the writer fails with; ciborium hands it back as its `Io` error.
#[derive(Debug)]
pub(crate) struct PastBound;

impl std::fmt::Display for PastBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the entry is larger than the maximum entry size")
    }
}

impl std::error::Error for PastBound {}

impl io::Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let needed = self
            .out
            .len()
            .checked_add(buf.len())
            .filter(|needed| *needed <= self.max)
            .ok_or_else(|| io::Error::other(PastBound))?;
        if needed > self.out.capacity() {
            let target = needed
                .max(self.out.capacity().saturating_mul(2))
                .min(self.max);
            self.out.reserve_exact(target - self.out.len());
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

static LAST_WARN: AtomicU64 = AtomicU64::new(0);
static QUIET: AtomicU64 = AtomicU64::new(0);

/// Counts an entry over the bound (not written, or read and not decoded) as
/// [`FaultKind::Oversized`], and logs it: at `warn` at most once every 10 s
/// per process (with how many were logged at `debug` since), else at `debug`.
#[cold]
pub(crate) fn count(counters: &Counters, key: &str, error: &dyn std::fmt::Display) {
    counters.fault(FaultKind::Oversized);
    let now = crate::clock::now_millis();
    let last = LAST_WARN.load(Ordering::Relaxed);
    let due = now.saturating_sub(last) >= WARN_EVERY_MS
        && LAST_WARN
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
    if due {
        let quiet = QUIET.swap(0, Ordering::Relaxed);
        tracing::warn!(
            key,
            %error,
            since_last_warning = quiet,
            "cache entry over the maximum entry size (max_entry_bytes): not stored in, or not read from, the remote tier"
        );
    } else {
        QUIET.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(key, %error, "cache entry over the maximum entry size");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte buffer serialized as a CBOR byte string (what `serde_bytes` does).
    struct ByteString<'a>(&'a [u8]);

    impl serde::Serialize for ByteString<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    fn encode_into<T: serde::Serialize>(value: &T, max: usize) -> (bool, Vec<u8>) {
        let mut out = Vec::new();
        let ok = ciborium::into_writer(value, Bounded::new(&mut out, max)).is_ok();
        (ok, out)
    }

    #[test]
    fn encoding_stops_at_the_bound_and_never_reserves_past_it() {
        const MAX: usize = 1 << 20;
        // 64 MB as an array of integers (a `Vec<u8>` without serde_bytes):
        // one write per element, so the buffer fills up to the bound.
        let big = vec![200u8; 64 << 20];
        let (ok, out) = encode_into(&big, MAX);
        assert!(!ok);
        assert!(out.len() <= MAX, "{}", out.len());
        assert!(out.len() > MAX - 16, "filled to the bound: {}", out.len());
        assert!(out.capacity() <= MAX, "capacity {}", out.capacity());
        // As a byte string: one write of 64 MB, refused before any growth.
        let (ok, out) = encode_into(&ByteString(&big), MAX);
        assert!(!ok);
        assert!(
            out.len() <= 16 && out.capacity() <= MAX,
            "{}",
            out.capacity()
        );
        // Within the bound, the same bytes as an unbounded encoding.
        let small = vec![7u8; 1000];
        let (ok, out) = encode_into(&small, MAX);
        let mut plain = Vec::new();
        ciborium::into_writer(&small, &mut plain).unwrap();
        assert!(ok);
        assert_eq!(out, plain);
        // Exactly at the bound is within it; one byte short is not.
        let mut exact = Vec::new();
        ciborium::into_writer(&ByteString(&small), &mut exact).unwrap();
        assert!(encode_into(&ByteString(&small), exact.len()).0);
        assert!(!encode_into(&ByteString(&small), exact.len() - 1).0);
    }

    #[test]
    fn what_is_already_in_the_buffer_counts() {
        let mut out = vec![0; 90];
        let mut w = Bounded::new(&mut out, 100);
        io::Write::write_all(&mut w, &[1; 10]).unwrap();
        assert!(io::Write::write_all(&mut w, &[1]).is_err());
        assert_eq!(out.len(), 100);
    }
}
