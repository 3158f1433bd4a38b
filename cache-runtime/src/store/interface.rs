//! The traits a remote store implements, one per concern.
//!
//! Every method returns a future that must be `Send` (the cache runs them on
//! tokio's worker threads); an implementation may write `async fn`. The
//! cache bounds every call with its remote timeout and passes it through a
//! circuit breaker, so a store need not time its own calls out; a call may be
//! dropped at any await (on that timeout), and must leave the store
//! consistent when it is.

use std::future::Future;
use std::time::Duration;

use super::{Fetch, Fetched, StoreError, Subscription};

/// Bytes by key with a time to live: the shared tier's entries.
///
/// Keys are the cache's own names (at most a few hundred bytes of printable
/// ASCII, the namespace first); values are opaque bytes the cache encoded and
/// checks when it reads them back (a damaged entry is a miss, never a value),
/// so a store keeps them byte for byte and need not inspect them.
pub trait EntryStore: Send + Sync + 'static {
    /// The entry and its tags' versions (see [`Fetch`]): **one round trip**
    /// where the store can (one script, one query, one pipeline), as a hit
    /// with a remote tier costs what this costs. Versions are read as
    /// [`TagStore::versions`] reads them, so a missing counter is created.
    /// An entry past its TTL is absent.
    fn fetch(&self, request: Fetch<'_>)
        -> impl Future<Output = Result<Fetched, StoreError>> + Send;

    /// Many [`fetch`](Self::fetch)es at once, answered in order: **one round
    /// trip** where the store can (Redis: one `MGET` of every entry and every
    /// tag counter; a cluster: concurrent `GET`s), as every remote read of
    /// the cache (the macro's, `get`, `get_many`, the HTTP layer's) goes
    /// through it. A request with no tags reads its entry alone.
    ///
    /// The default answers one request with [`fetch`](Self::fetch), requests
    /// without tags with one [`fetch_many`](Self::fetch_many), and otherwise
    /// runs the [`fetch`](Self::fetch)es concurrently.
    fn fetch_batch(
        &self,
        requests: &[Fetch<'_>],
    ) -> impl Future<Output = Result<Vec<Fetched>, StoreError>> + Send {
        async move {
            match requests {
                [] => Ok(Vec::new()),
                [one] => Ok(vec![self.fetch(*one).await?]),
                _ if requests.iter().all(|r| r.tag_count() == 0) => {
                    let keys: Vec<String> = requests.iter().map(Fetch::entry_key).collect();
                    let entries = self.fetch_many(&keys).await?;
                    Ok(entries
                        .into_iter()
                        .map(|entry| Fetched::new(entry, Vec::new()))
                        .collect())
                }
                _ => {
                    futures_util::future::try_join_all(requests.iter().map(|r| self.fetch(*r)))
                        .await
                }
            }
        }
    }

    /// The bytes under each of `keys`, in order (`None` for an absent one);
    /// one round trip where the store can. Used by batch reads.
    fn fetch_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>> + Send;

    /// Stores `bytes` under `key` for `ttl` (at least 1 ms), replacing what
    /// was there. Once this returns `Ok`, every later `fetch` of `key` from
    /// any process sees these bytes (until the TTL passes or another write).
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores each `(key, bytes, ttl)` as [`put`](Self::put) does;
    /// pipelined where the store can. Not atomic: after an error, some may
    /// be stored.
    fn put_many(
        &self,
        items: Vec<(String, Vec<u8>, Duration)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes `key`; whether it existed.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A round trip that does nothing: the health check and the circuit
    /// breaker's probe.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many broken keys (a tag counter that was not a number, a lock
    /// that would never expire) the store replaced since the last call. The
    /// cache counts them as store errors. Stores that repair nothing keep the
    /// default.
    fn take_repairs(&self) -> u64 {
        0
    }
}

/// Tag version counters: what makes invalidation O(1) per tag.
///
/// An entry records the versions of its tags when it is written, and is valid
/// only while each is still current. The flow relies on one promise above
/// all: **a version is never handed out twice**. A counter only grows; one
/// that is missing (never used, evicted, lost in a failover) or broken is
/// created at a value above any it can have held before (the cache's own
/// stores take the larger of the old value + 1 and the wall clock in
/// microseconds), so that no entry recorded earlier matches it.
pub trait TagStore: Send + Sync + 'static {
    /// The current versions of `tag_keys`, in order, creating missing or
    /// broken counters as said above. One round trip where the store can.
    fn versions(
        &self,
        tag_keys: &[String],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;

    /// Increments each of `tag_keys` (an invalidation) and returns the new
    /// versions, in order. Each new version is above every version of that
    /// counter any caller has read. Safe to repeat: the cache retries a bump
    /// whose answer it did not get.
    fn bump(
        &self,
        tag_keys: &[String],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;
}

/// Locks with tokens: one load across processes (`lock = "distributed"`)
/// and [`Cache::lock`](crate::Cache::lock).
///
/// Each operation is atomic on the store (a compare-and-set): a lock is held
/// by at most one token at a time, and only its holder's token extends or
/// releases it.
pub trait LockStore: Send + Sync + 'static {
    /// Takes `key` for `token` for `ttl` unless another token holds it;
    /// whether it was taken. A lock past its TTL is free. A key that would
    /// never expire by itself (left by a fault) is nobody's: take it over.
    fn try_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Extends `key` to `ttl` from now if `token` still holds it; whether it did.
    fn extend_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Releases `key` if `token` still holds it (compare-and-delete); whether
    /// it did.
    fn unlock(
        &self,
        key: &str,
        token: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Atomic counters (`Cache::increment`): `key` holds a signed integer.
pub trait CounterStore: Send + Sync + 'static {
    /// Adds `delta` to the integer under `key` (0 when absent), atomically
    /// across processes; the new value. Never retried by the cache (it is not
    /// safe to repeat): an `Err` may or may not have counted.
    fn increment(
        &self,
        key: &str,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// The integer under `key` (0 when absent), unchanged: how the cache
    /// reads its namespace's write counter (a few times a second, to catch a
    /// lost backplane message). Safe to repeat. The default adds 0; a store
    /// whose increment creates the key may read it instead (Redis: `GET`).
    fn value(&self, key: &str) -> impl Future<Output = Result<i64, StoreError>> + Send {
        self.increment(key, 0)
    }
}

/// Deletion by pattern (`Cache::delete_matching`), walked page by page so
/// that every round trip gets the cache's timeout of its own and other
/// clients are not blocked by one long command.
pub trait ScanStore: Send + Sync + 'static {
    /// One part of the store that is walked on its own (a cluster's master).
    type Node: ScanNode;

    /// The parts to walk: the store itself, or each master of a cluster,
    /// so that the walk covers every key.
    fn scan_nodes(&self) -> impl Future<Output = Result<Vec<Self::Node>, StoreError>> + Send;
}

/// One part of a [`ScanStore`], walked by cursor.
pub trait ScanNode: Send + Sync + 'static {
    /// One page of keys matching the glob `pattern` (`*`, `?`, `[abc]`,
    /// `\` escaping the next character, as Redis' `SCAN MATCH`), from
    /// `cursor` (0 to start), visiting about `count` keys: the next cursor
    /// (0 when the walk is over) and the keys found. A key that exists for
    /// the whole walk is returned at least once; a page may be empty.
    fn scan(
        &self,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> impl Future<Output = Result<(u64, Vec<String>), StoreError>> + Send;

    /// Deletes `keys` (found on this node); how many existed.
    fn unlink(&self, keys: &[String]) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A remote tier: everything the cache asks of its shared store.
/// Implemented for every type that implements the five parts.
pub trait Store: EntryStore + TagStore + LockStore + CounterStore + ScanStore {}

impl<T: EntryStore + TagStore + LockStore + CounterStore + ScanStore> Store for T {}

/// Publish/subscribe between the processes that share a store: how an
/// invalidation reaches other processes' memory tiers within milliseconds.
///
/// Delivery may be lossy (a message published while a subscriber is
/// disconnected is gone): the cache bounds what a lost message costs by
/// confirming the versions it holds with the [`TagStore`] (within a second).
/// A message is a hint the cache checks, never an authority.
pub trait Backplane: Send + Sync + 'static {
    /// Sends `message` to every current subscriber of `channel`, in any
    /// process (this one included: the cache ignores its own).
    fn publish(
        &self,
        channel: &str,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Subscribes to `channel`: once this returns `Ok`, every message
    /// published afterwards is delivered on the [`Subscription`] until it
    /// ends. A subscription that ends is lost; the cache subscribes again
    /// (with a short backoff) and treats its memory as stale meanwhile.
    fn subscribe(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send;
}
