//! The `Cache` handle: cheap to clone, `Send + Sync`, everything behind one `Arc`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::CacheBuilder;
use crate::flight::Flights;
use crate::key::Key;
use crate::memory::MemoryTier;
use crate::remote::backplane::{self, Backplane};
use crate::remote::breaker::BreakerState;
use crate::remote::Remote;
use crate::stats::{Counters, Stats};
use crate::tags::TagRegistry;
use crate::{Policy, Result};

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

pub(crate) struct Inner {
    /// Unique per cache built in this process (never reused, unlike an address).
    pub(crate) id: u64,
    pub(crate) namespace: String,
    pub(crate) defaults: Policy,
    pub(crate) profiles: HashMap<String, Policy>,
    pub(crate) memory: MemoryTier,
    pub(crate) remote: Option<Remote>,
    /// Counters of a cache without a remote tier.
    pub(crate) local_counters: crate::keyspace::LocalCounters,
    /// Write-through only: carries invalidations between processes.
    pub(crate) backplane: Option<Backplane>,
    pub(crate) tags: TagRegistry,
    pub(crate) flights: Arc<Flights>,
    pub(crate) counters: Arc<Counters>,
}

impl Inner {
    /// The memory tier's entry, unless the backplane is down (then memory may
    /// have missed invalidations, and reads go to the remote tier).
    #[inline]
    pub(crate) fn memory_get(&self, key: &crate::key::Repr) -> Option<crate::memory::Entry> {
        if let Some(backplane) = &self.backplane {
            if !backplane.trusted() {
                return None;
            }
        }
        self.memory.get(key)
    }

    /// Like [`Inner::memory_get`], but runs `read` on the entry by reference.
    #[inline]
    pub(crate) fn memory_read<T>(
        &self,
        key: &crate::key::Repr,
        read: impl FnOnce(&crate::memory::Entry) -> T,
    ) -> Option<T> {
        if let Some(backplane) = &self.backplane {
            if !backplane.trusted() {
                return None;
            }
        }
        self.memory.read(key, read)
    }
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

    /// The namespace every key of this cache starts with.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Invalidates tags: every entry that carries one of them is a miss from now
    /// on. O(1) per tag, whatever the number of entries carrying it.
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
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let inner = &self.inner;
        let mut names = Vec::new();
        for tag in tags {
            let tag = tag.as_ref();
            inner.tags.invalidate(tag);
            inner.counters.invalidations.incr();
            tracing::debug!(namespace = %inner.namespace, tag, "cache tag invalidated");
            names.push(tag.to_string());
        }
        if let Some(remote) = &inner.remote {
            if !names.is_empty() {
                let tag_keys: Vec<String> = names
                    .iter()
                    .map(|t| Remote::tag_key(&inner.namespace, t))
                    .collect();
                let known = inner.backplane.as_ref().map(|b| &b.known);
                let ticket = known.and_then(|k| k.ticket());
                let versions = match remote.call(&inner.counters, |s| s.bump(&tag_keys)).await {
                    Ok(versions) => versions,
                    Err(error) => {
                        // The INCRs may have run: stop trusting what we knew.
                        if let Some(known) = known {
                            known.forget(&names);
                        }
                        return Err(error.into());
                    }
                };
                if let (Some(known), Some(ticket)) = (known, ticket) {
                    known.learn(&names, &versions, ticket);
                }
                let tags = names;
                let origin = inner.backplane.as_ref().map_or(0, |b| b.origin);
                if let Some(message) = backplane::encode(origin, &tags, &versions) {
                    let channel = backplane::channel(&inner.namespace);
                    remote
                        .call(&inner.counters, |s| s.publish(&channel, message))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The keys held in the memory tier, as full key strings
    /// (`{namespace}:{key}`), in no particular order. For diagnostics.
    pub fn memory_keys(&self) -> Vec<String> {
        let ns = &self.inner.namespace;
        self.inner
            .memory
            .keys()
            .into_iter()
            .map(|repr| Key { repr }.full(ns))
            .collect()
    }

    /// The number of entries in the memory tier (expired ones included until
    /// they are evicted or replaced).
    pub fn memory_len(&self) -> usize {
        self.inner.memory.len()
    }

    /// The state of the remote tier: reachable or not, its round-trip time,
    /// and its circuit breaker. `None` without a remote tier.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_runtime::Cache::memory(10);
    /// assert!(cache.health().await.is_none());
    /// # }
    /// ```
    pub async fn health(&self) -> Option<Health> {
        let inner = &self.inner;
        let remote = inner.remote.as_ref()?;
        let started = std::time::Instant::now();
        let ping = remote.call(&inner.counters, |s| s.ping()).await;
        Some(Health {
            connected: ping.is_ok(),
            ping: ping.ok().map(|_| started.elapsed()),
            breaker: remote.breaker_state(),
            backplane: inner.backplane.as_ref().map(|b| b.trusted()),
        })
    }

    /// The policy a call resolves to: its own options over the profile's over
    /// the cache's defaults.
    pub(crate) fn profile(&self, name: &str) -> Option<&Policy> {
        self.inner.profiles.get(name)
    }
}

/// The remote tier's state, from [`Cache::health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Whether a PING was answered just now.
    pub connected: bool,
    /// How long that PING took.
    pub ping: Option<Duration>,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// Whether the backplane is subscribed, so that this process hears other
    /// processes' invalidations; `None` when the cache has no backplane (no
    /// memory tier and no [known tag versions]). While it is not, the memory
    /// tier and the known tag versions are not used.
    ///
    /// [known tag versions]: crate::CacheBuilder::known_tag_versions
    pub backplane: Option<bool>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.namespace)
            .field("memory_len", &self.inner.memory.len())
            .finish_non_exhaustive()
    }
}
