//! Start-up configuration of a [`Cache`].

mod checks;
mod debug;
pub(crate) mod env;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);
use std::time::Duration;

use crate::cache::{Cache, Config, Inner, Observe, Tiers, DEFAULT_NAMESPACE, DEFAULT_TTL};
use crate::coherence::backplane::{self, Backplane};
use crate::coherence::{self, Coherence};
use crate::events::{Events, Listener};
use crate::flight::Flights;
use crate::memory::{Bounds, MemoryTier, WeighFn};
use crate::remote::breaker::BreakerConfig;
use crate::remote::store::{DynBackplane, DynStore};
use crate::remote::{self, Remote};
use crate::stats::Counters;
use crate::store::{Backplane as BackplaneTrait, Store};
use crate::tags::TagRegistry;
use crate::{Error, Policy, Result};

/// The longest remote timeout used: about 100 years, no limit in practice.
const MAX_REMOTE_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Configures a [`Cache`]; made by [`Cache::builder`]. Its `Debug` shows
/// the settings with every Redis password redacted.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, Policy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// let cache = Cache::builder()
///     .namespace("myapp")
///     .default_ttl(Duration::from_secs(300))
///     .memory(10_000)
///     .profile("user-profile", Policy::ttl(Duration::from_secs(1800)))
///     .build()
///     .await?;
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct CacheBuilder {
    namespace: String,
    default_ttl: Duration,
    /// The memory tier's entry bound (`usize::MAX`: none); `None`: no tier.
    memory: Option<usize>,
    /// Its bound in bytes, or in the unit of `weigher`.
    memory_bytes: Option<u64>,
    weigher: Option<Arc<WeighFn>>,
    profiles: HashMap<String, Policy>,
    defaults: Policy,
    /// The Redis tier (`store::redis::connect`).
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::store::redis::RedisTarget>,
    /// The PostgreSQL tier's URL (`store::postgres::connect`).
    #[cfg(feature = "postgres")]
    pub(crate) postgres: Option<String>,
    /// The application's store ([`store`](Self::store)); `redis` or this.
    pub(crate) store: Option<Box<dyn DynStore>>,
    /// The application's backplane ([`backplane`](Self::backplane)); over
    /// the one a Redis target brings.
    backplane: Option<Arc<dyn DynBackplane>>,
    /// A private CA for `rediss://` URLs.
    #[cfg(feature = "redis")]
    pub(crate) root_ca: Option<Vec<u8>>,
    remote_timeout: Duration,
    breaker: BreakerConfig,
    known_tags: usize,
    outage_grace: Duration,
    enabled: bool,
    remote_retries: u32,
    health: crate::HealthThresholds,
    listeners: Vec<Arc<dyn Listener>>,
    event_keys: bool,
    warm_timeout: Duration,
    metrics: bool,
    max_entry_bytes: usize,
    compress_above: Option<usize>,
}

impl Cache {
    /// A memory-only cache of at most `capacity` entries, with default settings.
    /// This is what `#[cached]` uses before [`crate::install`] is called.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::memory(10_000);
    /// assert_eq!(cache.namespace(), "cache");
    /// ```
    pub fn memory(capacity: usize) -> Cache {
        CacheBuilder::new().memory(capacity).build_now()
    }

    /// Starts a configured cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::new()
    }
}

impl CacheBuilder {
    pub(crate) fn new() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_string(),
            default_ttl: DEFAULT_TTL,
            memory: None,
            memory_bytes: None,
            weigher: None,
            profiles: HashMap::new(),
            defaults: Policy::new(),
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "postgres")]
            postgres: None,
            store: None,
            backplane: None,
            #[cfg(feature = "redis")]
            root_ca: None,
            remote_timeout: remote::DEFAULT_TIMEOUT,
            breaker: BreakerConfig::default(),
            known_tags: coherence::known::DEFAULT_CAPACITY,
            outage_grace: coherence::outage::DEFAULT_GRACE,
            enabled: true,
            remote_retries: remote::DEFAULT_RETRIES,
            health: crate::HealthThresholds::default(),
            listeners: Vec::new(),
            event_keys: false,
            warm_timeout: crate::warm::DEFAULT_TIMEOUT,
            metrics: true,
            max_entry_bytes: remote::oversize::DEFAULT_MAX_ENTRY_BYTES,
            compress_above: None,
        }
    }

    /// The prefix of every key (`{namespace}:{key}`); default `"cache"`.
    /// 1 to 64 ASCII letters, digits, `-`, `_` or `.`; anything else (empty,
    /// `:`, `#`, glob characters, ...) makes [`build`](Self::build) return
    /// [`Error::Config`], so no namespace can read another's keys.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long values are fresh when the function and its profile do not say;
    /// default 5 minutes. Zero is refused by [`build`](Self::build)
    /// ([`Error::Config`]): it would turn caching off without a word (use
    /// [`enabled(false)`](Self::enabled) for that).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Default stale, fail-safe and refresh-ahead options for every function
    /// (their TTL is taken from [`default_ttl`](Self::default_ttl)).
    pub fn defaults(mut self, policy: Policy) -> Self {
        self.defaults = policy;
        self
    }

    /// A memory tier of at most `capacity` entries. With
    /// [`memory_bytes`](Self::memory_bytes) (or
    /// [`memory_weighted`](Self::memory_weighted)) too, both bounds hold.
    pub fn memory(mut self, capacity: usize) -> Self {
        self.memory = Some(capacity);
        self
    }

    /// Bounds the memory tier to about `bytes` of entries, each weighed once
    /// when stored (never on a hit): its value's estimated size, its key's
    /// text and its slot. Without [`memory`](Self::memory) the tier has no
    /// entry bound; with it, both hold.
    ///
    /// Set it when values vary in size or are large (HTTP bodies, rendered
    /// pages, blobs): an entry bound alone lets memory grow with the values,
    /// 10,000 entries of 1 MB being 10 GB. `CACHE_MEMORY_BYTES` sets it from
    /// the environment.
    ///
    /// The estimate is the value's inline size plus what serde sees of it
    /// (strings and byte strings by length, numbers by width); a value read
    /// from the remote tier weighs its encoded length. It leaves out the
    /// allocator's slack and undercounts values made of many small
    /// allocations; [`memory_weighted`](Self::memory_weighted) takes a weigher
    /// of your own instead. Entries are spread over shards, each holding an
    /// equal share of the bound (4 MiB or more, when the bound is): a value
    /// heavier than a shard's share is not kept in memory. It is still
    /// returned, and stored in the remote tier.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .memory(10_000)                 // at most 10,000 entries
    ///     .memory_bytes(256 * 1024 * 1024) // and at most 256 MiB of them
    ///     .build()
    ///     .await?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self.memory.get_or_insert(usize::MAX);
        self
    }

    /// A memory tier bounded by total weight instead of entry count: `weigh`
    /// gives each value's weight (e.g. its size in bytes; at least 1 is used),
    /// computed once when the value is stored.
    ///
    /// It is [`memory_bytes`](Self::memory_bytes) with your weigher instead
    /// of the byte estimate, and no entry bound: a later
    /// [`memory`](Self::memory) adds one (both then hold), a later
    /// `memory_bytes` replaces `max_weight` and keeps `weigh`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .memory_weighted(64 * 1024 * 1024, |value| {
    ///         value.downcast_ref::<String>().map_or(64, |s| s.len() as u64)
    ///     })
    ///     .build()
    ///     .await?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn memory_weighted<F>(mut self, max_weight: usize, weigh: F) -> Self
    where
        F: Fn(&dyn Any) -> u64 + Send + Sync + 'static,
    {
        self.memory = Some(usize::MAX);
        self.memory_bytes = Some(max_weight as u64);
        self.weigher = Some(Arc::new(weigh));
        self
    }

    /// Registers a named policy for `#[cached(profile = "name")]`.
    pub fn profile(mut self, name: impl Into<String>, policy: Policy) -> Self {
        self.profiles.insert(name.into(), policy);
        self
    }

    /// A remote tier on any [`Store`](crate::store::Store): a shared tier
    /// of your own (a database, another key-value server, an in-process map
    /// for tests), in place of [`redis`](Self::redis) (whichever is called
    /// last is used). With `.memory(..)` too, reads try memory, then the
    /// store, then the function, and writes go to both (write-through);
    /// alone, every value lives in the store only (storage-only).
    ///
    /// Give it a [`backplane`](Self::backplane) too when processes share the
    /// store and have memory tiers: other processes' invalidations are then
    /// seen within milliseconds. Without one the cache stays correct: a few
    /// times a second it confirms the versions of the tags its memory holds
    /// with the store, so an invalidation elsewhere is seen within a second,
    /// and every remote hit reads its tags' versions with its entry.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use cache_runtime::store::*;
    /// # struct MyStore;
    /// # impl EntryStore for MyStore {
    /// #     async fn fetch(&self, r: Fetch<'_>) -> Result<Fetched, StoreError> { Ok(Fetched::new(None, vec![1; r.tag_count()])) }
    /// #     async fn fetch_many(&self, k: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> { Ok(vec![None; k.len()]) }
    /// #     async fn put(&self, _: &str, _: Vec<u8>, _: Duration) -> Result<(), StoreError> { Ok(()) }
    /// #     async fn put_many(&self, _: Vec<(String, Vec<u8>, Duration)>) -> Result<(), StoreError> { Ok(()) }
    /// #     async fn delete(&self, _: &str) -> Result<bool, StoreError> { Ok(false) }
    /// #     async fn ping(&self) -> Result<(), StoreError> { Ok(()) }
    /// # }
    /// # impl TagStore for MyStore {
    /// #     async fn versions(&self, t: &[String]) -> Result<Vec<u64>, StoreError> { Ok(vec![1; t.len()]) }
    /// #     async fn bump(&self, t: &[String]) -> Result<Vec<u64>, StoreError> { Ok(vec![2; t.len()]) }
    /// # }
    /// # impl LockStore for MyStore {
    /// #     async fn try_lock(&self, _: &str, _: &str, _: Duration) -> Result<bool, StoreError> { Ok(true) }
    /// #     async fn extend_lock(&self, _: &str, _: &str, _: Duration) -> Result<bool, StoreError> { Ok(true) }
    /// #     async fn unlock(&self, _: &str, _: &str) -> Result<bool, StoreError> { Ok(true) }
    /// # }
    /// # impl CounterStore for MyStore {
    /// #     async fn increment(&self, _: &str, d: i64) -> Result<i64, StoreError> { Ok(d) }
    /// # }
    /// # impl ScanStore for MyStore {
    /// #     type Node = MyNode;
    /// #     async fn scan_nodes(&self) -> Result<Vec<MyNode>, StoreError> { Ok(vec![]) }
    /// # }
    /// # struct MyNode;
    /// # impl ScanNode for MyNode {
    /// #     async fn scan(&self, _: u64, _: &str, _: u32) -> Result<(u64, Vec<String>), StoreError> { Ok((0, vec![])) }
    /// #     async fn unlink(&self, _: &[String]) -> Result<u64, StoreError> { Ok(0) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// // `MyStore` implements the parts of `cache_runtime::store::Store`
    /// // (see that module for a worked example).
    /// let cache = cache_runtime::Cache::builder()
    ///     .memory(10_000)
    ///     .store(MyStore)
    ///     .build()
    ///     .await?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Box::new(store));
        #[cfg(feature = "redis")]
        {
            self.redis = None;
        }
        #[cfg(feature = "postgres")]
        {
            self.postgres = None;
        }
        self
    }

    /// Where invalidations travel between the processes that share the
    /// remote tier: each process's memory tier (and the tag versions it
    /// knows) then drops what another invalidated within milliseconds,
    /// instead of within the second the confirmation takes without one. A
    /// [`redis`](Self::redis) tier brings its own (Redis pub/sub); this one
    /// replaces it, whichever is called first. Only with a remote tier:
    /// alone, [`build`](Self::build) returns [`Error::Config`].
    ///
    /// Messages are hints the cache checks against the store's tag
    /// versions, and a lost one is caught by the same confirmation: a
    /// backplane may be lossy (see [`Backplane`](crate::store::Backplane)).
    ///
    /// ```no_run
    /// # use cache_runtime::store::{Backplane, StoreError, Subscription};
    /// # struct MyBus;
    /// # impl Backplane for MyBus {
    /// #     async fn publish(&self, _: &str, _: Vec<u8>) -> Result<(), StoreError> { Ok(()) }
    /// #     async fn subscribe(&self, _: &str) -> Result<Subscription, StoreError> {
    /// #         Ok(Subscription::new(futures_util::stream::pending()))
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// // Entries in Redis, invalidations on a message bus of your own.
    /// let cache = cache_runtime::Cache::builder()
    ///     .memory(10_000)
    ///     .redis("redis://127.0.0.1:6380")
    ///     .backplane(MyBus)
    ///     .build()
    ///     .await?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn backplane(mut self, backplane: impl BackplaneTrait) -> Self {
        self.backplane = Some(Arc::new(backplane));
        self
    }

    /// The largest entry written to or read from the remote tier, in bytes,
    /// checksum and header included; default 16 MiB
    /// (`CACHE_MAX_ENTRY_BYTES`). `0` is refused by [`build`](Self::build)
    /// ([`Error::Config`]); `usize::MAX` sets no bound.
    ///
    /// A value whose entry would be larger is returned to the caller as
    /// usual but not written: its encoding stops at the bound (the buffer
    /// never grows past it, so a 600 MB value costs at most the bound in
    /// encoding, not 600 MB or more), the key is deleted from the remote
    /// tier instead (so no older value under it outlives the new one), and
    /// it is counted in [`Stats::oversized_entries`](crate::Stats::oversized_entries)
    /// ([`FaultKind::Oversized`](crate::events::FaultKind::Oversized),
    /// `cache_oversized_entries_total`), with at most one `warn` log every
    /// 10 s. The memory tier, which holds the typed value and encodes
    /// nothing, still keeps it within its own bounds
    /// ([`memory`](Self::memory), [`memory_bytes`](Self::memory_bytes)):
    /// this process serves it from there; other processes load it for
    /// themselves. An entry read from the remote tier that is longer than
    /// the bound (written by a process with a larger one) is a miss, counted
    /// the same way, never decoded.
    ///
    /// Why 16 MiB: Redis takes values up to 512 MB (`proto-max-bulk-len`),
    /// but a value is worth storing only if it is written and read back
    /// within the [`remote_timeout`](Self::remote_timeout), 250 ms by
    /// default. At 1 Gbit/s, 16 MiB takes about 135 ms on the wire, half the
    /// default timeout; 32 MiB would take longer than all of it. A write
    /// holds the encoding and a copy for a retry, so the bound also caps
    /// that at about 32 MiB per concurrent write. Raise it with the timeout
    /// on a faster network.
    ///
    /// Byte buffers take half the room as CBOR byte strings: a `Vec<u8>`
    /// field is written as an array of integers (1 to 2 bytes each) unless
    /// marked `#[serde(with = "serde_bytes")]` (or typed
    /// `serde_bytes::ByteBuf`, or `bytes::Bytes`); see [`crate::Storable`].
    ///
    /// ```
    /// let builder = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1:6380")
    ///     .max_entry_bytes(64 << 20)                    // 64 MiB entries,
    ///     .remote_timeout(std::time::Duration::from_secs(1)); // sent in time
    /// # let _ = builder;
    /// ```
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// Compresses remote entries whose encoded value (CBOR) is larger than
    /// `bytes`, with LZ4 (env `CACHE_COMPRESS_ABOVE`); off by default.
    ///
    /// Why set it: large values (lists of records, rendered pages) cost
    /// Redis memory, network time and the remote timeout in proportion to
    /// their size, and JSON-like data compresses 2 to 3 times. LZ4 was
    /// chosen for speed: about 0.3 to 0.5 GB/s to compress and 1.2 to 1.7
    /// GB/s to decompress on one core (BENCHMARKS.md), so a 64 KiB value
    /// costs some 150 µs more to write and 50 µs more to read, against
    /// some 40 KiB less on the wire. Below a few KiB there is little to
    /// gain; 4096 is a fair start. An entry is stored compressed only when
    /// that makes it shorter; the memory tier keeps typed values and never
    /// compresses.
    ///
    /// [`max_entry_bytes`](Self::max_entry_bytes) bounds the uncompressed
    /// form: compression does not let larger values in, and a reader
    /// refuses a compressed entry that declares more than its bound before
    /// decompressing anything. Readers decompress whatever their setting:
    /// processes with different thresholds share entries.
    ///
    /// ```
    /// let builder = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1:6380")
    ///     .compress_above(4096); // entries over 4 KiB are compressed
    /// # let _ = builder;
    /// ```
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.compress_above = Some(bytes);
        self
    }

    /// The time limit of each remote operation (default 250 ms). Past it the
    /// call goes on without the remote tier, and the fault is counted. A limit
    /// above about 100 years (e.g. `Duration::MAX`) is taken as 100 years.
    pub fn remote_timeout(mut self, timeout: Duration) -> Self {
        self.remote_timeout = timeout;
        self
    }

    /// The remote tier's circuit breaker: it opens after `failures`
    /// consecutive failed operations and lets one probe through after
    /// `open_for` (defaults: 5 failures, 2 s), or at once when the
    /// backplane's subscription comes back (Redis answers again).
    pub fn breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.breaker = BreakerConfig {
            threshold: failures.max(1),
            open_for,
        };
        self
    }

    /// How many tags' versions this process keeps (default 16,384), so that
    /// a remote hit reads its entry alone, in one `GET`, instead of the entry
    /// and its tags' version counters together.
    ///
    /// The versions are learnt from Redis and raised by the backplane's
    /// messages as other processes invalidate, so another process's
    /// invalidation is seen within milliseconds, as it is by a memory tier.
    /// They are trusted only while the backplane is subscribed, and for at
    /// most one second after Redis last confirmed them, which bounds how long
    /// a lost message (a process that died between its `INCR` and its
    /// `PUBLISH`) goes unseen.
    ///
    /// `0` keeps none: every remote hit reads its tags' versions from Redis
    /// in the same round trip (one `MGET`), and sees an invalidation the
    /// moment Redis has it. A storage-only cache then needs no pub/sub
    /// connection.
    ///
    /// ```
    /// let builder = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1:6380")
    ///     .known_tag_versions(0);
    /// # let _ = builder;
    /// ```
    pub fn known_tag_versions(mut self, capacity: usize) -> Self {
        self.known_tags = capacity;
        self
    }

    /// How long, while Redis is unreachable (refused or dropped connections,
    /// timeouts, an open breaker), the memory tier keeps serving the entries
    /// it holds; default 30 s (`CACHE_OUTAGE_GRACE`). Without it every call
    /// would run its function for the whole outage, since memory cannot be
    /// checked against other processes' invalidations.
    ///
    /// The price is staleness: another process's invalidation during the
    /// outage is not seen here until Redis is back, so an entry is served at
    /// most `grace` after Redis last confirmed it (or after it was loaded).
    /// Past the grace the memory tier is emptied and refilled from the
    /// function, grace after grace. This process's own invalidations apply
    /// at once, as always. A Redis that answers (only the backplane is
    /// down, or it replies with errors) gets no grace. `Duration::ZERO`
    /// turns it off: memory is not used while Redis is unreachable.
    ///
    /// ```
    /// let builder = cache_runtime::Cache::builder()
    ///     .memory(10_000)
    ///     .redis("redis://127.0.0.1:6380")
    ///     .outage_grace(std::time::Duration::from_secs(10));
    /// # let _ = builder;
    /// ```
    pub fn outage_grace(mut self, grace: Duration) -> Self {
        self.outage_grace = grace;
        self
    }

    /// `false` turns the cache off: every call runs its function, nothing is
    /// stored or served, and no server is reached (`build()` builds neither
    /// tier). Invalidations are no-ops; counters and locks stay within the
    /// process. For tests and incidents (`CACHE_DISABLED=true`); default `true`.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// How many times a remote operation is tried again after a connection
    /// fault (a dropped or refused connection, not an error reply, a timeout
    /// or an open breaker), after 5 ms, then 10 ms, 20 ms, ...; default 1.
    /// The retries fit within the operation's
    /// [`remote_timeout`](Self::remote_timeout), which bounds the whole call.
    /// Operations that must not run twice (counters) are never retried.
    pub fn remote_retries(mut self, retries: u32) -> Self {
        self.remote_retries = retries;
        self
    }

    /// The limits [`Cache::health_report`] judges against; default
    /// [`HealthThresholds::default`](crate::HealthThresholds::default).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::{Cache, HealthThresholds};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = Cache::builder()
    ///     .memory(10_000)
    ///     .health_thresholds(HealthThresholds::default().window(Duration::from_secs(300)))
    ///     .build()
    ///     .await?;
    /// assert!(cache.health_report().await.status.is_healthy());
    /// # Ok(())
    /// # }
    /// ```
    pub fn health_thresholds(mut self, thresholds: crate::HealthThresholds) -> Self {
        self.health = thresholds;
        self
    }

    /// Tells `listener` of this cache's events (see [`crate::events`]); may
    /// be called several times, each listener is told of every event.
    ///
    /// ```
    /// use cache_runtime::events::{Listener, StoreFault};
    ///
    /// struct Faults;
    /// impl Listener for Faults {
    ///     fn on_store_fault(&self, fault: &StoreFault<'_>) {
    ///         eprintln!("{}: remote fault {:?}", fault.cache, fault.kind);
    ///     }
    /// }
    /// let builder = cache_runtime::Cache::builder().memory(100).listener(Faults);
    /// # let _ = builder;
    /// ```
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Whether events carry the call's full key (`key: Some(..)`); default
    /// `false`, since rendering the key costs on every event.
    pub fn event_keys(mut self, keys: bool) -> Self {
        self.event_keys = keys;
        self
    }

    /// How long one input's call of [`Cache::warm`] may run (default 30 s):
    /// past it, the call is dropped (as cancel safe as any cached call:
    /// callers waiting for its load go on without it) and the input counts
    /// as [`failed`](crate::WarmSummary::failed). Only inside a tokio
    /// runtime (the limit needs its timer); `Duration::MAX` sets no limit.
    pub fn warm_timeout(mut self, limit: Duration) -> Self {
        self.warm_timeout = limit;
        self
    }

    /// With the `metrics` feature, whether this cache reports metrics
    /// (default `true`: every cache does); `false` turns them off for this
    /// one, whose hits then cost what they cost without the feature. Without
    /// the feature, this does nothing.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Builds the cache; connects to the remote tier if there is one.
    ///
    /// A memory-only cache builds and runs under any executor. A remote tier
    /// needs a tokio runtime (its connections, timeouts and backplane run on
    /// it): without one, `build()` returns [`Error::Config`].
    ///
    /// # Errors
    ///
    /// Only for what can be checked without the server: [`Error::Config`]
    /// (a bad namespace, no tier, no runtime) and [`Error::Connect`] (a
    /// malformed URL, TLS settings that cannot work). A server that cannot
    /// be reached, or that refuses the connection (a wrong password, a
    /// certificate it is not trusted for), is not an error: the cache starts
    /// without it, serving from memory and the function, logs the reason at
    /// `warn` (never the password), reports it in [`Cache::health`] and
    /// [`Cache::health_report`], and connects in the background, logging
    /// at `info` when it has.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the cache being built: its
    /// background tasks (the backplane's subscriber, the confirmation) end with
    /// it, and nothing stays connected.
    pub async fn build(mut self) -> Result<Cache> {
        if self.enabled && self.has_remote() && tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "a remote tier (.redis / .redis_cluster / .store) needs a tokio runtime: call build() inside one, e.g. under #[tokio::main]".into(),
            ));
        }
        if self.enabled && self.memory.is_none() && !self.has_remote() {
            return Err(Error::Config(
                "no storage tier: call .memory(capacity) and/or .redis(url) (or .store(..)) on the builder".into(),
            ));
        }
        if self.enabled && self.backplane.is_some() && !self.has_remote() {
            return Err(Error::Config(
                "a backplane without a remote tier carries nothing: give it a .store(..) (or .redis(url)) too, or drop the .backplane(..)".into(),
            ));
        }
        crate::key::check_namespace(&self.namespace)?;
        self.check_settings()?;
        if !self.enabled {
            // Nothing is stored: no tier to build, no server to reach.
            return Ok(self.assemble(None, false));
        }
        // Longer than any wait is meant to be, and `timeout * 4` stays far from overflow.
        let timeout = self.remote_timeout.min(MAX_REMOTE_TIMEOUT);
        let connected = match self.store.take() {
            Some(store) => Some((store, None, true)),
            None => self
                .connect_shared(timeout)
                .await?
                .map(|(store, transport, up)| (store, Some(transport), up)),
        };
        let (remote, up) = match connected {
            Some((store, transport, up)) => {
                let mut remote = Remote::new(store, timeout, self.breaker)
                    .retries(self.remote_retries)
                    .max_entry_bytes(self.max_entry_bytes)
                    .compress_above(self.compress_above);
                // The application's backplane over the one Redis brings.
                if let Some(transport) = self.backplane.take().or(transport) {
                    remote = remote.backplane(transport);
                }
                (Some(remote), up)
            }
            None => (None, true),
        };
        // Not connected: the backplane and the confirmations start at once
        // and come up with the server, without holding up the start.
        let wait = if up { timeout * 4 } else { Duration::ZERO };
        // The backplane keeps a memory tier current, and the tag versions
        // this process knows.
        let backplane = self.memory.is_some() || self.known_tags > 0;
        let cache = self.assemble(remote, backplane);
        if backplane && cache.inner.tiers.remote.is_some() {
            backplane::start(&cache.inner, wait).await;
            coherence::confirm::start(&cache.inner, wait).await;
        }
        Ok(cache)
    }

    /// A memory-only cache, built at once. Only `Cache::memory` calls it, with
    /// the default namespace; a namespace that fails the check would fall
    /// back to that default rather than panic.
    pub(crate) fn build_now(mut self) -> Cache {
        if let Err(error) = crate::key::check_namespace(&self.namespace) {
            tracing::warn!(%error, "using the default namespace");
            self.namespace = DEFAULT_NAMESPACE.to_string();
        }
        self.assemble(None, false)
    }

    /// Connects to the Redis or PostgreSQL tier set (the last call of
    /// `.redis`, `.postgres` clears the other): store, backplane, whether up now.
    #[allow(clippy::unused_async)] // with neither feature there is nothing to await
    async fn connect_shared(
        &self,
        timeout: Duration,
    ) -> Result<Option<(Box<dyn DynStore>, Arc<dyn DynBackplane>, bool)>> {
        #[cfg(feature = "redis")]
        if let Some(connected) = self.connect_redis(timeout).await? {
            return Ok(Some(connected));
        }
        #[cfg(feature = "postgres")]
        if let Some(connected) = self.connect_postgres(timeout).await? {
            return Ok(Some(connected));
        }
        let _ = timeout;
        Ok(None)
    }

    /// Whether a remote tier is configured.
    pub(crate) fn has_remote(&self) -> bool {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            return true;
        }
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return true;
        }
        self.store.is_some()
    }

    fn assemble(self, remote: Option<Remote>, backplane: bool) -> Cache {
        let known_tags = self.known_tags;
        // The crate's own listeners, told within the call (the user's go
        // through a queue: `events::queue`).
        #[allow(unused_mut)] // pushed to by optional features
        let mut inline: Vec<Arc<dyn Listener>> = Vec::new();
        #[cfg(feature = "metrics")]
        if self.metrics {
            inline.push(Arc::new(crate::metrics::MetricsListener));
        }
        let events = Events::new(&self.namespace, self.listeners, inline, self.event_keys);
        let counters = Arc::new(Counters {
            events: events.clone(),
            ..Counters::default()
        });
        let memory = match self.memory {
            Some(entries) if self.enabled => {
                let bounds = Bounds {
                    entries: (entries < usize::MAX).then_some(entries),
                    weight: self.memory_bytes,
                    weigher: self.weigher,
                };
                MemoryTier::new(bounds, counters.clone())
            }
            _ => MemoryTier::disabled(),
        };
        let cache = Cache {
            inner: Arc::new(Inner {
                config: Config {
                    id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
                    enabled: self.enabled,
                    namespace: self.namespace,
                    defaults: self.defaults.with_ttl(self.default_ttl),
                    profiles: self.profiles,
                    warm_timeout: self.warm_timeout,
                },
                coherence: Coherence {
                    backplane: remote.as_ref().filter(|_| backplane).map(|remote| {
                        let backplane = Backplane::new(known_tags).outage_grace(self.outage_grace);
                        // Without one, the confirmations keep memory current.
                        if remote.backplane_handle().is_some() {
                            backplane
                        } else {
                            backplane.deaf()
                        }
                    }),
                    invalidations: Default::default(),
                },
                tiers: Tiers {
                    memory,
                    remote,
                    local_counters: Default::default(),
                },
                tags: TagRegistry::new(),
                plans: Default::default(),
                flights: Flights::new(),
                observe: Observe {
                    counters,
                    health: crate::health::Monitor::new(self.health),
                    warming: Default::default(),
                    get_events: events.as_ref().is_some_and(|e| e.wants_gets()),
                    events,
                },
            }),
        };
        // The health report's window, sampled in the background when built
        // inside a tokio runtime (else from the first report made in one).
        crate::health::start(&cache.inner);
        #[cfg(feature = "metrics")]
        if self.metrics {
            crate::metrics::start(&cache);
        }
        cache
    }
}
