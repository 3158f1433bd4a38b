//! A remote store that could not be connected at start-up: `build()` does
//! not fail for it. Until a background task connects (retrying with a
//! backoff of up to [`MAX_BACKOFF`]), every operation fails as a connection
//! fault, so the cache runs degraded (memory tier and function) and its
//! health says why; from then on every operation goes to the connected store.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::store::{DynScanNode, DynStore, StoreError, StoreFuture};
use crate::store::{Fetch, Fetched};

/// Makes one connection attempt (a `store::redis::Redis::connect*` call).
pub(crate) type Connect = Arc<dyn Fn() -> StoreFuture<'static, Box<dyn DynStore>> + Send + Sync>;

/// The wait before the second attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts: a server that comes back is used
/// within about this long.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The store once connected, and why it is not yet.
struct Slot {
    store: OnceLock<Box<dyn DynStore>>,
    /// The last attempt's error (never a password: the Redis store's `backend` takes it out).
    error: parking_lot::Mutex<String>,
}

/// See the module's comment.
pub(crate) struct Deferred {
    slot: Arc<Slot>,
}

impl Deferred {
    /// A store whose first attempt failed with `error`; connects in the
    /// background on the current tokio runtime (`build()` checked for one).
    /// `url` (password redacted) is for the logs.
    pub(crate) fn start(connect: Connect, error: &StoreError, url: String) -> Self {
        let slot = Arc::new(Slot {
            store: OnceLock::new(),
            error: parking_lot::Mutex::new(error.to_string()),
        });
        tracing::warn!(
            %url, %error,
            "cannot connect to the remote cache tier: running without it (memory tier and function) and connecting in the background"
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(reconnect(Arc::downgrade(&slot), connect, url));
            }
            Err(_) => tracing::warn!("no tokio runtime: the remote cache tier is not connected"),
        }
        Self { slot }
    }

    fn store(&self) -> Option<&dyn DynStore> {
        self.slot.store.get().map(|s| &**s)
    }

    fn not_yet<'a, T: Send + 'a>(&self) -> StoreFuture<'a, T> {
        let error = StoreError::Connection(format!(
            "not connected since start-up: {}",
            self.slot.error.lock()
        ));
        Box::pin(std::future::ready(Err(error)))
    }
}

/// Tries to connect until it does, or until the store is dropped.
async fn reconnect(slot: Weak<Slot>, connect: Connect, url: String) {
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 1u64;
    loop {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if slot.strong_count() == 0 {
            return;
        }
        attempts += 1;
        let outcome = connect().await;
        let Some(slot) = slot.upgrade() else { return };
        match outcome {
            Ok(store) => {
                let _ = slot.store.set(store);
                tracing::info!(%url, attempts, "connected to the remote cache tier: it is used from now on");
                return;
            }
            Err(error) => {
                tracing::debug!(%url, %error, attempts, "the remote cache tier is still unreachable");
                *slot.error.lock() = error.to_string();
            }
        }
    }
}

impl DynStore for Deferred {
    fn fetch<'a>(&'a self, keys: Fetch<'a>) -> StoreFuture<'a, Fetched> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.fetch(keys))
    }
    fn fetch_batch<'a>(&'a self, requests: &'a [Fetch<'a>]) -> StoreFuture<'a, Vec<Fetched>> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.fetch_batch(requests))
    }
    fn versions<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.versions(tag_keys))
    }
    fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> StoreFuture<'_, ()> {
        match self.store() {
            Some(s) => s.put_many(items),
            None => self.not_yet(),
        }
    }
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.increment(key, delta))
    }
    fn counter_value<'a>(&'a self, key: &'a str) -> StoreFuture<'a, i64> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.counter_value(key))
    }
    fn scan_nodes(&self) -> StoreFuture<'_, Vec<Box<dyn DynScanNode>>> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.scan_nodes())
    }
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()> {
        match self.store() {
            Some(s) => s.put(key, bytes, ttl),
            None => self.not_yet(),
        }
    }
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.delete(key))
    }
    fn bump<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.bump(tag_keys))
    }
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.try_lock(key, token, ttl))
    }
    fn extend_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.extend_lock(key, token, ttl))
    }
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> StoreFuture<'a, bool> {
        self.store()
            .map_or_else(|| self.not_yet(), |s| s.unlock(key, token))
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.store().map_or_else(|| self.not_yet(), |s| s.ping())
    }
    fn take_repairs(&self) -> u64 {
        self.store().map_or(0, |s| s.take_repairs())
    }
    fn connect_error(&self) -> Option<String> {
        match self.store() {
            Some(_) => None,
            None => Some(self.slot.error.lock().clone()),
        }
    }
}
