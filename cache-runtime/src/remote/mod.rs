//! The remote tier: a [`Store`](crate::store::Store) (Redis, or the
//! application's) behind a timeout and a circuit breaker, so that a slow or failing store costs a bounded time and
//! is skipped while it is down. Every fault is counted in `store_errors`.

pub(crate) mod breaker;
pub(crate) mod cbor_text;
// The Redis and PostgreSQL stores connect in the background.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) mod deferred;
pub(crate) mod entry;
pub(crate) mod lock;
pub(crate) mod oversize;
pub(crate) mod read;
pub(crate) mod store;
pub(crate) mod user_code;
pub(crate) mod walk;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use breaker::{Breaker, BreakerConfig, BreakerState, Permit};
use store::{DynBackplane, DynStore, StoreError, StoreFuture};

use crate::events::FaultKind;
use crate::key::reserved::escaped;
use crate::key::{shorten, Key, StoreKey};
use crate::stats::{Counters, Stats};

/// Default time limit of one remote operation.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default number of retries of an operation after a connection fault.
pub(crate) const DEFAULT_RETRIES: u32 = 1;
/// The wait before the first retry; it doubles for each next one, up to
/// [`MAX_BACKOFF`]. Long enough for the client to reconnect on loopback.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(160);

/// Microseconds on a monotonic clock since the first call: remote
/// operations' timeouts and durations.
fn micros() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

pub(crate) struct Remote {
    store: Box<dyn DynStore>,
    /// Where invalidations are published (and the subscriber subscribes):
    /// `None` for a store without one (`coherence::confirm` bounds staleness).
    backplane: Option<std::sync::Arc<dyn DynBackplane>>,
    breaker: Breaker,
    timeout: Duration,
    retries: u32,
    /// The maximum size of an entry, in bytes (`oversize`).
    max_entry: usize,
    /// Entries whose CBOR is longer are compressed (`entry::compress`).
    compress_above: Option<usize>,
    /// Whether the last call that reached the store failed to get an answer
    /// (refused or dropped connection, timeout): the store is unreachable,
    /// not merely answering with errors. Calls skipped by an open breaker
    /// leave it as the failures that opened it set it.
    unreachable: AtomicBool,
    /// When the breaker last closed after being open (a probe succeeded),
    /// with the counters then: the health report's figures start there.
    recovered: parking_lot::Mutex<Option<(Instant, Stats)>>,
}

impl Remote {
    pub(crate) fn new(store: Box<dyn DynStore>, timeout: Duration, breaker: BreakerConfig) -> Self {
        Self {
            store,
            backplane: None,
            breaker: Breaker::new(breaker),
            timeout,
            retries: DEFAULT_RETRIES,
            max_entry: oversize::DEFAULT_MAX_ENTRY_BYTES,
            compress_above: None,
            unreachable: AtomicBool::new(false),
            recovered: parking_lot::Mutex::new(None),
        }
    }

    /// Publishes invalidations on `backplane`.
    pub(crate) fn backplane(mut self, backplane: std::sync::Arc<dyn DynBackplane>) -> Self {
        self.backplane = Some(backplane);
        self
    }

    /// The backplane, for the subscriber (`coherence::backplane`).
    pub(crate) fn backplane_handle(&self) -> Option<std::sync::Arc<dyn DynBackplane>> {
        self.backplane.clone()
    }

    /// Publishes `message` on `channel` under the breaker and the timeout,
    /// as [`call`](Self::call) runs a store operation (a backplane is most
    /// often the store's own server); `Ok` without a backplane.
    pub(crate) async fn publish(
        &self,
        counters: &Counters,
        channel: &str,
        message: Vec<u8>,
    ) -> Result<(), StoreError> {
        let Some(backplane) = &self.backplane else {
            return Ok(());
        };
        let permit = self.admit(counters)?;
        let started = micros();
        let attempts = async {
            let mut backoff = FIRST_BACKOFF;
            let mut left = self.retries;
            loop {
                match backplane.publish(channel, message.clone()).await {
                    Err(StoreError::Connection(error)) if left > 0 => {
                        tracing::debug!(%error, "backplane connection fault; retrying");
                        left -= 1;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    outcome => return outcome,
                }
            }
        };
        let outcome = tokio::time::timeout(self.timeout, attempts)
            .await
            .unwrap_or(Err(StoreError::Timeout));
        self.settle(counters, permit, outcome, started)
    }

    /// Retries of [`call`](Self::call) after a connection fault.
    pub(crate) fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The maximum size of an entry written or read, in bytes.
    pub(crate) fn max_entry_bytes(mut self, max: usize) -> Self {
        self.max_entry = max;
        self
    }

    /// The maximum size of an entry written or read, in bytes.
    pub(crate) fn max_entry(&self) -> usize {
        self.max_entry
    }

    /// Compresses entries whose CBOR is longer than `above` bytes.
    pub(crate) fn compress_above(mut self, above: Option<usize>) -> Self {
        self.compress_above = above;
        self
    }

    /// How entries are written: the maximum size and the compression threshold.
    pub(crate) fn limits(&self) -> entry::Limits {
        entry::Limits {
            max: self.max_entry,
            compress_above: self.compress_above,
        }
    }

    /// Runs one store operation under the breaker and the timeout; after a
    /// connection fault ([`StoreError::Connection`]) it runs `op` again, up
    /// to the configured number of retries, all within the one timeout. For
    /// operations that may safely run twice (reads, `SET`s, tag bumps).
    pub(crate) async fn call<'a, T>(
        &'a self,
        counters: &Counters,
        op: impl Fn(&'a dyn DynStore) -> StoreFuture<'a, T>,
    ) -> Result<T, StoreError> {
        // `call` and `call_once` repeat these three steps rather than share an
        // async fn taking the future: that made every caller's future larger.
        let permit = self.admit(counters)?;
        // Microseconds in a `u64`, not an `Instant`: half the size in every
        // caller's future.
        let started = micros();
        // In a block, so the first outcome is gone before the retries' await
        // (a value alive across it would enlarge every caller's future).
        let error = {
            let first = tokio::time::timeout(self.timeout, op(&*self.store)).await;
            match first {
                Ok(Err(StoreError::Connection(error))) if self.retries > 0 => error,
                other => {
                    return self.settle(
                        counters,
                        permit,
                        other.unwrap_or(Err(StoreError::Timeout)),
                        started,
                    )
                }
            }
        };
        // The retries get what is left of the one time limit. Boxed: their
        // state (a timer) would enlarge every caller's future too.
        let spent = micros().saturating_sub(started);
        let left = self.timeout.saturating_sub(Duration::from_micros(spent));
        let outcome = Box::pin(tokio::time::timeout(left, self.retry(op, error))).await;
        self.settle(
            counters,
            permit,
            outcome.unwrap_or(Err(StoreError::Timeout)),
            started,
        )
    }

    /// Like [`call`](Self::call), tried once: for operations that must not
    /// run twice (a counter's `INCR`).
    pub(crate) async fn call_once<'a, T>(
        &'a self,
        counters: &Counters,
        op: impl FnOnce(&'a dyn DynStore) -> StoreFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let permit = self.admit(counters)?;
        let started = micros();
        let outcome = tokio::time::timeout(self.timeout, op(&*self.store))
            .await
            .unwrap_or(Err(StoreError::Timeout));
        self.settle(counters, permit, outcome, started)
    }

    /// Whether a call may go to the store now: a breaker's permit, or the
    /// (counted) fault that stops it.
    fn admit(&self, counters: &Counters) -> Result<Permit, StoreError> {
        // The timeout (and the store's I/O) need tokio: polled by another
        // executor, `timeout` would panic in the caller's thread. Before the
        // breaker, which must not count this against the store.
        if tokio::runtime::Handle::try_current().is_err() {
            counters.fault(FaultKind::Other);
            return Err(StoreError::Backend(
                "no tokio runtime: the remote tier is skipped outside one".into(),
            ));
        }
        self.breaker.permit().ok_or_else(|| {
            counters.fault(FaultKind::BreakerOpen);
            StoreError::Open
        })
    }

    /// Tells the breaker, the counters and the listeners how a call that
    /// started at `started` ([`micros`]) ended.
    fn settle<T>(
        &self,
        counters: &Counters,
        permit: Permit,
        outcome: Result<T, StoreError>,
        started: u64,
    ) -> Result<T, StoreError> {
        // Keys the store found broken and replaced are faults too (counted
        // with the store's errors, as they always were).
        let repaired = self.store.take_repairs();
        if repaired > 0 {
            counters.faults(FaultKind::Other, repaired);
        }
        if let Some(events) = &counters.events {
            let took = Duration::from_micros(micros().saturating_sub(started));
            events.remote_op(took, outcome.is_ok());
        }
        match &outcome {
            Ok(_) => {
                if matches!(permit, Permit::Probe) {
                    *self.recovered.lock() = Some((Instant::now(), counters.snapshot()));
                    tracing::info!("the remote cache tier answers again: circuit breaker closed");
                }
                self.breaker.success(permit);
                self.set_unreachable(false);
            }
            Err(error) => {
                if matches!(error, StoreError::Timeout | StoreError::Connection(_)) {
                    self.set_unreachable(true);
                }
                self.breaker.failure(permit);
                counters.fault(match error {
                    StoreError::Timeout => FaultKind::Timeout,
                    StoreError::Open => FaultKind::BreakerOpen,
                    StoreError::Connection(_) => FaultKind::Connection,
                    StoreError::Backend(_) => FaultKind::Other,
                });
                tracing::warn!(%error, "remote cache operation failed");
            }
        }
        outcome
    }

    /// The retries after a first attempt failed with a connection fault.
    #[cold]
    async fn retry<'a, T>(
        &'a self,
        op: impl Fn(&'a dyn DynStore) -> StoreFuture<'a, T>,
        mut error: String,
    ) -> Result<T, StoreError> {
        let mut backoff = FIRST_BACKOFF;
        for left in (0..self.retries).rev() {
            tracing::debug!(%error, "remote cache connection fault; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match op(&*self.store).await {
                Err(StoreError::Connection(again)) if left > 0 => error = again,
                outcome => return outcome,
            }
        }
        Err(StoreError::Connection(error))
    }

    /// Written only when it changes: every call ends here (see
    /// `Breaker::success`).
    fn set_unreachable(&self, unreachable: bool) {
        if self.unreachable.load(Ordering::Relaxed) != unreachable {
            self.unreachable.store(unreachable, Ordering::Release);
        }
    }

    /// Whether the store is unreachable: the last call that went to it got
    /// no answer (a refused or dropped connection, a timeout), or its
    /// breaker is open after such failures. An answering store, even one
    /// that answers with errors, is not unreachable.
    pub(crate) fn unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Acquire)
    }

    /// Why the store has not connected since start-up, if it has not.
    pub(crate) fn connect_error(&self) -> Option<String> {
        self.store.connect_error()
    }

    /// When the breaker last closed after being open, and the counters then.
    pub(crate) fn recovered(&self) -> Option<(Instant, Stats)> {
        *self.recovered.lock()
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Notified when the remote tier is back after failures (see
    /// [`Breaker::back`]).
    pub(crate) fn back(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.breaker.back()
    }

    /// A new connection to the store works: see [`Breaker::reconnected`].
    pub(crate) fn reconnected(&self) {
        self.breaker.reconnected();
    }

    /// The store key of a lock taken by name (`Cache::lock`):
    /// `{namespace}#lock:{name}`, the name's reserved characters escaped, so
    /// it is apart from entries and from the locks of loads.
    pub(crate) fn lock_key(namespace: &str, name: &str) -> String {
        shorten(format!("{namespace}#lock:{}", escaped(name)))
    }

    /// The store key of the lock of `key`'s load: `{namespace}#load:{key}`.
    pub(crate) fn load_lock_key(namespace: &str, key: &Key) -> String {
        StoreKey::Load { namespace, key }.name()
    }

    /// The store key of a tag's version counter. `#` after the namespace keeps
    /// it apart from every entry key (`{namespace}:...`).
    pub(crate) fn tag_key(namespace: &str, tag: &str) -> String {
        StoreKey::Tag { namespace, tag }.name()
    }
}
