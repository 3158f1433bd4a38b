//! The remote tier: a [`store::RemoteStore`] (Redis) behind a timeout and a
//! circuit breaker, so that a slow or failing store costs a bounded time and
//! is skipped while it is down. Every fault is counted in `store_errors`.

pub(crate) mod backplane;
pub(crate) mod breaker;
pub(crate) mod cbor_text;
pub(crate) mod confirm;
pub(crate) mod entry;
pub(crate) mod key_writes;
pub(crate) mod known;
pub(crate) mod lock;
pub(crate) mod redis;
pub(crate) mod store;

use std::time::Duration;

use breaker::{Breaker, BreakerConfig, BreakerState};
use store::{RemoteStore, StoreError, StoreFuture};

use crate::key::reserved::escaped;
use crate::key::{shorten, Key, StoreKey};
use crate::stats::Counters;

/// Default time limit of one remote operation.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

pub(crate) struct Remote {
    store: Box<dyn RemoteStore>,
    breaker: Breaker,
    timeout: Duration,
}

impl Remote {
    pub(crate) fn new(
        store: Box<dyn RemoteStore>,
        timeout: Duration,
        breaker: BreakerConfig,
    ) -> Self {
        Self {
            store,
            breaker: Breaker::new(breaker),
            timeout,
        }
    }

    /// Runs one store operation under the breaker and the timeout.
    pub(crate) async fn call<'a, T>(
        &'a self,
        counters: &Counters,
        op: impl FnOnce(&'a dyn RemoteStore) -> StoreFuture<'a, T>,
    ) -> Result<T, StoreError> {
        // The timeout (and the store's I/O) need tokio: polled by another
        // executor, `timeout` would panic in the caller's thread. Before the
        // breaker, which must not count this against the store.
        if tokio::runtime::Handle::try_current().is_err() {
            counters.store_errors.incr();
            return Err(StoreError::Backend(
                "no tokio runtime: the remote tier is skipped outside one".into(),
            ));
        }
        let Some(permit) = self.breaker.permit() else {
            counters.store_errors.incr();
            return Err(StoreError::Open);
        };
        let outcome = match tokio::time::timeout(self.timeout, op(&*self.store)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Timeout),
        };
        // Keys the store found broken and replaced are faults too.
        let repaired = self.store.take_repairs();
        if repaired > 0 {
            counters.store_errors.add(repaired);
        }
        match &outcome {
            Ok(_) => self.breaker.success(permit),
            Err(error) => {
                self.breaker.failure(permit);
                counters.store_errors.incr();
                tracing::warn!(%error, "remote cache operation failed");
            }
        }
        outcome
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
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
