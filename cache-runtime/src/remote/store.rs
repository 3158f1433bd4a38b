//! The remote store interface between the read path and a concrete store:
//! bytes by key, and tag version counters. Redis is the first implementation;
//! another store plugs in by implementing [`RemoteStore`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed store operation.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

pub(crate) use crate::store::StoreError;

pub(crate) use crate::store::Fetched;

/// What one fetch reads (the public [`Fetch`](crate::store::Fetch)).
pub(crate) type FetchKeys<'a> = crate::store::Fetch<'a>;

/// One node of a pattern walk ([`RemoteStore::scan_nodes`]): a standalone
/// server, or one master of a cluster. Each method is one round trip.
pub(crate) trait ScanNode: Send + Sync {
    /// One `SCAN cursor MATCH pattern COUNT count` page (never `KEYS`): the
    /// next cursor (0 when the walk of this node is over) and the keys found.
    fn scan<'a>(
        &'a self,
        cursor: u64,
        pattern: &'a str,
        count: u32,
    ) -> StoreFuture<'a, (u64, Vec<String>)>;
    /// Unlinks `keys` (found on this node); how many existed.
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64>;
}

/// A remote tier.
pub(crate) trait RemoteStore: Send + Sync + 'static {
    /// The bytes under `key` and the versions of `tag_keys`, in one round trip
    /// where the store can. A version never repeats: a tag whose counter is
    /// missing (never used, evicted or deleted) or broken reads as a version
    /// newer than any it had before (the store creates it), so no entry
    /// recorded earlier matches it.
    fn fetch<'a>(&'a self, keys: FetchKeys<'a>) -> StoreFuture<'a, Fetched>;
    /// The versions of `tag_keys`, created or repaired as by [`fetch`](Self::fetch).
    fn versions<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>>;
    /// The bytes under each of `keys` (in a cluster: across slots).
    fn fetch_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>>;
    /// Stores each `(key, bytes, ttl)` (pipelined where the store can).
    fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> StoreFuture<'_, ()>;
    /// Adds `delta` to the integer under `key` (0 if absent); the new value.
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64>;
    /// The nodes a pattern walk (`delete_matching`, see `remote::walk`)
    /// visits: the server itself, or every master of a cluster (one round
    /// trip per node to find them). The walk then drives each node page by
    /// page, so that every round trip gets the timeout of its own.
    fn scan_nodes(&self) -> StoreFuture<'_, Vec<Box<dyn ScanNode>>>;
    /// Stores `bytes` under `key` for `ttl`.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()>;
    /// Removes `key`; whether it existed.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;
    /// Increments the versions of `tag_keys` (invalidation); their new
    /// versions, in order. A missing or broken counter is created first, as
    /// by [`fetch`](Self::fetch), so the new version exceeds every earlier one.
    fn bump<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>>;
    /// Takes `key` with `token` for `ttl` unless someone holds it. A key that
    /// would never expire by itself (no TTL, or another kind of value) is no
    /// holder's: it is taken over.
    fn try_lock<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration)
        -> StoreFuture<'a, bool>;
    /// Extends `key` to `ttl` if `token` still holds it.
    fn extend_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;
    /// Releases `key` if `token` still holds it (compare-and-delete).
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> StoreFuture<'a, bool>;
    /// Publishes `message` on `channel`.
    fn publish<'a>(&'a self, channel: &'a str, message: Vec<u8>) -> StoreFuture<'a, ()>;
    /// A round trip that does nothing.
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// How many broken keys (tag counters, locks) the store replaced since
    /// the last call; [`Remote::call`](super::Remote::call) counts them as
    /// store errors.
    fn take_repairs(&self) -> u64 {
        0
    }
    /// Why the store has not connected since start-up (a store `build()`
    /// could not connect: `remote::deferred`); `None` once it has.
    fn connect_error(&self) -> Option<String> {
        None
    }
}
