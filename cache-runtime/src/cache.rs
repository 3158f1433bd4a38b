//! The `Cache` handle: cheap to clone, `Send + Sync`, everything behind one `Arc`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::coherence::{invalidation, outage, Coherence, Handle, Host};
use crate::flight::Flights;
use crate::key::Key;
use crate::keyspace::counters::LocalCounters;
use crate::keyspace::glob;
use crate::memory::MemoryTier;
use crate::remote::breaker::BreakerState;
use crate::remote::Remote;
use crate::stats::{Counters, Stats};
use crate::tags::TagRegistry;
use crate::warm::scope::Warming;
use crate::{Error, Policy, Result};

/// Default TTL when neither the function, its profile nor the builder sets one.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Namespace when the builder sets none.
pub(crate) const DEFAULT_NAMESPACE: &str = "cache";

/// A cache: the memory tier, tag versions, loads in progress and counters.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, Policy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// let cache = Cache::builder()
///     .namespace("myapp")
///     .default_ttl(Duration::from_secs(60))
///     .memory(10_000)
///     .profile("user-profile", Policy::ttl(Duration::from_secs(1800)))
///     .build()
///     .await?;
/// cache.set("greeting", "hello".to_string()).await?;
/// assert_eq!(cache.get::<String>("greeting").await?, Some("hello".to_string()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

/// The shared state of a [`Cache`], in a few parts. Each part is inline (no
/// pointer of its own): a memory hit reads `tiers.memory`,
/// `coherence.backplane` and `tags` at fixed offsets from the one `Arc`.
pub(crate) struct Inner {
    /// What the builder set.
    pub(crate) config: Config,
    /// Where values are kept.
    pub(crate) tiers: Tiers,
    /// What keeps this process's memory and tag versions in step with others.
    pub(crate) coherence: Coherence,
    /// Tag versions in this process: what every entry's tags are checked against.
    pub(crate) tags: TagRegistry,
    /// The plan of each `#[cached]` function called with this cache, by site
    /// number: freed with the cache, like the counters the plans point to.
    pub(crate) plans: crate::flow::plan::PlanTable,
    /// Loads in progress (single flight).
    pub(crate) flights: Arc<Flights>,
    /// What the cache counts, reports and tells.
    pub(crate) observe: Observe,
}

/// The settings a cache was built with.
pub(crate) struct Config {
    /// Unique per cache built in this process (never reused, unlike an address).
    pub(crate) id: u64,
    /// `false`: every call runs its function (the cache has no tier either).
    pub(crate) enabled: bool,
    pub(crate) namespace: String,
    pub(crate) defaults: Policy,
    pub(crate) profiles: HashMap<String, Policy>,
    /// How long one input's call of a warm run may take (`CacheBuilder::warm_timeout`).
    pub(crate) warm_timeout: Duration,
}

/// The tiers values live in.
pub(crate) struct Tiers {
    pub(crate) memory: MemoryTier,
    pub(crate) remote: Option<Remote>,
    /// Counters of a cache without a remote tier.
    pub(crate) local_counters: LocalCounters,
}

/// Counters, health, listeners and warm runs.
pub(crate) struct Observe {
    pub(crate) counters: Arc<Counters>,
    /// Thresholds and the window of health reports.
    pub(crate) health: crate::health::Monitor,
    /// Warm runs in progress (their calls are not counted as hits or misses).
    pub(crate) warming: Warming,
    /// The listeners (also in `counters`, for the tiers); `None` without any.
    pub(crate) events: Option<Arc<crate::events::Events>>,
    /// Whether a listener wants get events; kept plans copy it into
    /// `Plan::fast_hit`, so the hit path tests no extra flag for events.
    pub(crate) get_events: bool,
}

impl Inner {
    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.observe.counters.snapshot();
        stats.pending_invalidations = self.coherence.invalidations.pending() as u64;
        stats
    }

    /// Tells the listeners, if any.
    #[inline(always)]
    pub(crate) fn tell(&self, event: impl FnOnce(&crate::events::Events)) {
        if let Some(events) = &self.observe.events {
            event(events);
        }
    }

    /// The memory tier's entry, unless memory is not trusted at `now` (the
    /// backplane is down, or tag versions were not confirmed within the
    /// last second: memory may have missed invalidations, and reads go to
    /// the remote tier), and no outage grace applies (`coherence::outage`).
    #[inline]
    pub(crate) fn memory_get(&self, key: &crate::key::Repr) -> Option<crate::memory::Entry> {
        if self.coherence.backplane.is_some() && !self.memory_usable(crate::clock::now_millis()) {
            return None;
        }
        self.tiers.memory.get(key)
    }

    /// Like [`Inner::memory_get`] at `now`, but runs `read` on the entry by
    /// reference.
    #[inline]
    pub(crate) fn memory_read<T, K: crate::key::Lookup + ?Sized>(
        &self,
        key: &K,
        now: u64,
        read: impl FnOnce(&crate::memory::Entry) -> T,
    ) -> Option<T> {
        if !self.memory_usable(now) {
            return None;
        }
        self.tiers.memory.read(key, read)
    }

    /// Whether the memory tier may serve at `now`: no backplane, or one that
    /// trusts memory, or an outage grace that applies (`coherence::outage`).
    #[inline(always)]
    pub(crate) fn memory_usable(&self, now: u64) -> bool {
        match &self.coherence.backplane {
            Some(backplane) => backplane.memory_trusted(now) || outage::serves(self, now),
            None => true,
        }
    }
}

impl Host for Inner {
    fn coherence(&self) -> &Coherence {
        &self.coherence
    }

    fn namespace(&self) -> &str {
        &self.config.namespace
    }

    fn remote(&self) -> Option<&Remote> {
        self.tiers.remote.as_ref()
    }

    fn counters(&self) -> &Counters {
        &self.observe.counters
    }

    fn tags(&self) -> &TagRegistry {
        &self.tags
    }

    fn memory_enabled(&self) -> bool {
        self.tiers.memory.is_enabled()
    }

    fn clear_memory(&self) {
        self.tiers.memory.clear();
    }

    fn forget_key(&self, key: &str) {
        self.tiers.memory.remove(&Key::manual(key).repr);
    }

    fn forget_matching(&self, pattern: &str) {
        glob::forget_matching(&self.tiers.memory, &self.config.namespace, pattern);
    }

    fn tell_invalidate(&self, tags: &[String]) {
        self.tell(|events| events.invalidate(tags));
    }
}

impl Handle for Cache {
    type Host = Inner;

    fn host(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Cache {
    /// The namespace every key of this cache starts with.
    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Invalidates tags: every entry that carries one of them is a miss from now
    /// on. O(1) per tag, whatever the number of entries carrying it.
    ///
    /// From the moment this returns, this process serves nothing the tags
    /// covered, in any mode, whatever the remote tier did. Other processes
    /// hear of it within milliseconds of its reaching the remote tier, and
    /// within a second even if that message is lost.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidationQueued`] when the remote tier did not confirm the
    /// invalidation (timeout, lost connection, open circuit breaker, an error
    /// reply). It is applied in this process all the same, and queued: a
    /// background task retries it, in order, until the remote tier confirms
    /// it ([`Health::pending_invalidations`], [`Stats::pending_invalidations`];
    /// [`Cache::flush_invalidations`] waits for it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// use cache_runtime::{Cache, Policy};
    /// let cache = Cache::memory(100);
    /// cache.set_with("user:7", 7u32, &Policy::new(), ["user:7", "users"]).await?;
    /// cache.invalidate_tags(["users"]).await?;
    /// assert_eq!(cache.get::<u32>("user:7").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe once polled, and it loses nothing. The
    /// first poll puts the invalidation in force in this process and hands its
    /// send to a task on the runtime; dropping the future afterwards (a request
    /// timeout, a client that hung up) does not stop that task: the tags'
    /// versions are bumped in the remote tier (or, if that fails, queued and
    /// retried), other processes are told, and the tags stop being pending here
    /// as soon as the remote tier confirms, exactly as if the future had been
    /// awaited. A future dropped before its first poll did nothing.
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        let count = names.len();
        invalidation::invalidate(self, names)
            .await
            .map_err(|source| Error::InvalidationQueued {
                tags: count,
                source,
            })
    }

    /// Waits until every queued invalidation reached the remote tier, or
    /// `timeout` passed; the number of tags still queued (0: all sent).
    ///
    /// An invalidation the remote tier did not confirm (see
    /// [`invalidate_tags`](Cache::invalidate_tags)) is retried in the
    /// background; call this at shutdown so that a process does not exit
    /// with invalidations other processes never hear of.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_runtime::Cache::memory(100);
    /// let left = cache.flush_invalidations(std::time::Duration::from_secs(5)).await;
    /// assert_eq!(left, 0);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits. The queue keeps draining
    /// in the background.
    pub async fn flush_invalidations(&self, timeout: Duration) -> usize {
        invalidation::flush(&self.inner, timeout).await
    }

    /// The keys held in the memory tier, as full key strings
    /// (`{namespace}:{key}`), in no particular order. For diagnostics.
    pub fn memory_keys(&self) -> Vec<String> {
        let ns = &self.inner.config.namespace;
        self.inner
            .tiers
            .memory
            .keys()
            .into_iter()
            .map(|repr| Key { repr }.full(ns))
            .collect()
    }

    /// The number of entries in the memory tier (expired ones included until
    /// they are evicted or replaced).
    pub fn memory_len(&self) -> usize {
        self.inner.tiers.memory.len()
    }

    /// The weight of the memory tier's entries: with
    /// [`memory_bytes`](crate::CacheBuilder::memory_bytes), their estimated
    /// bytes (keys, values and slots), never above that bound; with
    /// [`memory_weighted`](crate::CacheBuilder::memory_weighted), the sum of
    /// the weigher's weights; with an entry bound alone, the entries. With
    /// both an entry and a weight bound, an entry weighs at least the weight
    /// bound over the entry bound (how the entry bound is held).
    pub fn memory_weight(&self) -> u64 {
        self.inner.tiers.memory.weight()
    }

    /// The state of the remote tier: reachable or not, its round-trip time,
    /// and its circuit breaker. `None` without a remote tier. A remote tier
    /// that `build()` could not connect (it starts without it, see
    /// [`CacheBuilder::build`](crate::CacheBuilder::build)) is not
    /// `connected` until the background connection succeeds; the reason is
    /// in [`Cache::health_report`]'s reasons.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_runtime::Cache::memory(10);
    /// assert!(cache.health().await.is_none());
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it drops a `PING`, nothing else
    /// (had it been the circuit breaker's probe, another probe goes after the
    /// open period).
    pub async fn health(&self) -> Option<Health> {
        let inner = &self.inner;
        let remote = inner.tiers.remote.as_ref()?;
        let started = std::time::Instant::now();
        let ping = remote.call(&inner.observe.counters, |s| s.ping()).await;
        Some(Health {
            connected: ping.is_ok(),
            ping: ping.ok().map(|_| started.elapsed()),
            breaker: remote.breaker_state(),
            backplane: inner
                .coherence
                .backplane
                .as_ref()
                .filter(|b| b.listening())
                .map(|b| b.subscribed()),
            pending_invalidations: inner.coherence.invalidations.pending(),
        })
    }

    /// The policy a call resolves to: its own options over the profile's over
    /// the cache's defaults.
    pub(crate) fn profile(&self, name: &str) -> Option<&Policy> {
        self.inner.config.profiles.get(name)
    }
}

/// The remote tier's state, from [`Cache::health`].
///
/// [`serde::Serialize`], for a health endpoint: `ping` is written as
/// `ping_ms`, a number of milliseconds (fractional) or `null`, and `breaker`
/// as `"closed"`, `"open"` or `"half_open"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Health {
    /// Whether a PING was answered just now.
    pub connected: bool,
    /// How long that PING took.
    #[serde(rename = "ping_ms", serialize_with = "millis")]
    pub ping: Option<Duration>,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// Whether the backplane is subscribed, so that this process hears other
    /// processes' invalidations; `None` when the cache has no backplane (a
    /// [store](crate::CacheBuilder::store) given without one, or no memory
    /// tier and no [known tag versions]). While it is not, the memory tier
    /// and the known tag versions are not used.
    ///
    /// [known tag versions]: crate::CacheBuilder::known_tag_versions
    pub backplane: Option<bool>,
    /// Tags whose invalidation the remote tier has not confirmed yet: they
    /// are invalid in this process, and retried in the background (see
    /// [`Cache::invalidate_tags`]).
    pub pending_invalidations: usize,
}

/// A duration as fractional milliseconds, for JSON.
fn millis<S: serde::Serializer>(
    ping: &Option<Duration>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&ping.map(|d| d.as_secs_f64() * 1_000.0), serializer)
}

impl Drop for Cache {
    fn drop(&mut self) {
        invalidation::on_drop(self);
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.config.namespace)
            .field("memory_len", &self.inner.tiers.memory.len())
            .finish_non_exhaustive()
    }
}
