//! Coherence: what keeps every process's memory tier and tag versions in
//! step with the store. Tag versions this process knows (`known`) and their
//! periodic confirmation (`confirm`), the backplane that carries other
//! processes' invalidations and key writes (`backplane`, `key_writes`), the
//! queue of invalidations the store has not confirmed yet (`invalidation`),
//! and the outage grace (`outage`). The store itself is `remote`'s.

pub(crate) mod backplane;
pub(crate) mod confirm;
pub(crate) mod invalidation;
pub(crate) mod key_writes;
pub(crate) mod known;
pub(crate) mod message;
pub(crate) mod outage;

use std::sync::Arc;

use crate::remote::Remote;
use crate::stats::Counters;
use crate::tags::TagRegistry;

/// A cache's coherence state (a part of the cache, inline: the memory hit
/// reads `backplane` without another pointer).
pub(crate) struct Coherence {
    /// Write-through only: carries invalidations between processes.
    pub(crate) backplane: Option<backplane::Backplane>,
    /// Invalidations the remote tier has not confirmed yet.
    pub(crate) invalidations: invalidation::Invalidations,
}

/// What coherence needs of the cache it keeps, in narrow methods: the
/// memory tier only to drop entries, the tag table, the store and the
/// counters. The cache implements it; this layer never names the cache, so
/// the tiers and the layer import downwards only.
pub(crate) trait Host: Send + Sync + Sized + 'static {
    /// This cache's coherence state.
    fn coherence(&self) -> &Coherence;
    /// The namespace every key of the cache starts with.
    fn namespace(&self) -> &str;
    /// The remote tier, if any.
    fn remote(&self) -> Option<&Remote>;
    /// Counters and fault counts.
    fn counters(&self) -> &Counters;
    /// The tag versions of this process.
    fn tags(&self) -> &TagRegistry;
    /// Whether the cache has a memory tier.
    fn memory_enabled(&self) -> bool;
    /// Empties the memory tier (it may have missed invalidations).
    fn clear_memory(&self);
    /// Drops one manual-API key from the memory tier.
    fn forget_key(&self, key: &str);
    /// Drops from the memory tier every key matching a `delete_matching` pattern.
    fn forget_matching(&self, pattern: &str);
    /// Tells the listeners, if any, of an invalidation.
    fn tell_invalidate(&self, tags: &[String]);
}

/// A strong handle on a [`Host`] (the `Cache`): what a detached
/// invalidation holds, so that its drop, if it is the last handle, flushes
/// the queue as the application's last handle would.
pub(crate) trait Handle: Clone + Send + Sync + 'static {
    /// The cache it holds.
    type Host: Host;
    /// The shared cache.
    fn host(&self) -> &Arc<Self::Host>;
}
