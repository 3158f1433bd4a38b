//! The object-safe face of the public store interface ([`crate::store`]):
//! its traits return `impl Future` (a store writes `async fn`), which cannot
//! sit behind `dyn`, so the cache holds a `Box<dyn DynStore>` and every
//! [`Store`] is one through the blanket impl below, each call boxing the
//! store's future once (as the store's own boxed futures did before).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub(crate) use crate::store::StoreError;
use crate::store::{Backplane, Fetch, Fetched, ScanNode, Store, Subscription};

/// A boxed store operation.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One node of a pattern walk (see [`DynStore::scan_nodes`]).
pub(crate) trait DynScanNode: Send + Sync {
    /// [`ScanNode::scan`].
    fn scan<'a>(
        &'a self,
        cursor: u64,
        pattern: &'a str,
        count: u32,
    ) -> StoreFuture<'a, (u64, Vec<String>)>;
    /// [`ScanNode::unlink`].
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64>;
}

impl<N: ScanNode> DynScanNode for N {
    fn scan<'a>(
        &'a self,
        cursor: u64,
        pattern: &'a str,
        count: u32,
    ) -> StoreFuture<'a, (u64, Vec<String>)> {
        Box::pin(ScanNode::scan(self, cursor, pattern, count))
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        Box::pin(ScanNode::unlink(self, keys))
    }
}

/// A remote tier, as the cache calls it: the methods of [`Store`]'s parts
/// (see their docs for the contracts), boxed.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn fetch<'a>(&'a self, keys: Fetch<'a>) -> StoreFuture<'a, Fetched>;
    fn fetch_batch<'a>(&'a self, requests: &'a [Fetch<'a>]) -> StoreFuture<'a, Vec<Fetched>>;
    fn versions<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>>;
    fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> StoreFuture<'_, ()>;
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64>;
    fn counter_value<'a>(&'a self, key: &'a str) -> StoreFuture<'a, i64>;
    fn scan_nodes(&self) -> StoreFuture<'_, Vec<Box<dyn DynScanNode>>>;
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()>;
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;
    fn bump<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>>;
    fn try_lock<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration)
        -> StoreFuture<'a, bool>;
    fn extend_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> StoreFuture<'a, bool>;
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// How many broken keys the store replaced since the last call;
    /// [`Remote::call`](super::Remote::call) counts them as store errors.
    fn take_repairs(&self) -> u64;
    /// Why the store has not connected since start-up (a store `build()`
    /// could not connect: `remote::deferred`); `None` once it has.
    fn connect_error(&self) -> Option<String> {
        None
    }
}

impl<S: Store> DynStore for S {
    fn fetch<'a>(&'a self, keys: Fetch<'a>) -> StoreFuture<'a, Fetched> {
        Box::pin(crate::store::EntryStore::fetch(self, keys))
    }
    fn fetch_batch<'a>(&'a self, requests: &'a [Fetch<'a>]) -> StoreFuture<'a, Vec<Fetched>> {
        Box::pin(crate::store::EntryStore::fetch_batch(self, requests))
    }
    fn versions<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(crate::store::TagStore::versions(self, tag_keys))
    }
    fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> StoreFuture<'_, ()> {
        Box::pin(crate::store::EntryStore::put_many(self, items))
    }
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        Box::pin(crate::store::CounterStore::increment(self, key, delta))
    }
    fn counter_value<'a>(&'a self, key: &'a str) -> StoreFuture<'a, i64> {
        Box::pin(crate::store::CounterStore::value(self, key))
    }
    fn scan_nodes(&self) -> StoreFuture<'_, Vec<Box<dyn DynScanNode>>> {
        Box::pin(async move {
            let nodes = crate::store::ScanStore::scan_nodes(self).await?;
            Ok(nodes
                .into_iter()
                .map(|node| Box::new(node) as Box<dyn DynScanNode>)
                .collect())
        })
    }
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(crate::store::EntryStore::put(self, key, bytes, ttl))
    }
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(crate::store::EntryStore::delete(self, key))
    }
    fn bump<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(crate::store::TagStore::bump(self, tag_keys))
    }
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(crate::store::LockStore::try_lock(self, key, token, ttl))
    }
    fn extend_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(crate::store::LockStore::extend_lock(self, key, token, ttl))
    }
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(crate::store::LockStore::unlock(self, key, token))
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(crate::store::EntryStore::ping(self))
    }
    fn take_repairs(&self) -> u64 {
        crate::store::EntryStore::take_repairs(self)
    }
}

/// A [`Backplane`], as the cache calls it.
pub(crate) trait DynBackplane: Send + Sync + 'static {
    fn publish<'a>(&'a self, channel: &'a str, message: Vec<u8>) -> StoreFuture<'a, ()>;
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription>;
}

impl<B: Backplane> DynBackplane for B {
    fn publish<'a>(&'a self, channel: &'a str, message: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(Backplane::publish(self, channel, message))
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        Box::pin(Backplane::subscribe(self, channel))
    }
}
