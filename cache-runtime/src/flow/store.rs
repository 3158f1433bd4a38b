//! Writing a loaded value: to the remote tier (when there is one and its
//! tag versions are known), then to memory.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::plan::Plan;
use crate::clock::now_millis;
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::outcome::Storable;
use crate::remote::entry::{self, EntryError, Header};
use crate::remote::oversize;
use crate::remote::Remote;
use crate::tags::TagSnapshot;
use crate::Cache;

/// What a write needs besides the value.
pub(crate) struct Write<'a> {
    pub(crate) key: &'a Key,
    pub(crate) plan: &'a Plan,
    /// The rendered tags and, in the same order, their remote versions read
    /// before the load began, or vouched for when that read failed (no
    /// tags; the known-versions table's): see `remote::read`. `None`: never
    /// read, so the remote tier is skipped rather than written with a guess.
    pub(crate) tags: &'a [String],
    pub(crate) remote_versions: Option<Vec<u64>>,
    pub(crate) local: TagSnapshot,
    pub(crate) load_millis: u64,
}

/// Stores `value`; `shared` is the same value as shared with the load's waiters.
pub(crate) async fn store<V: Storable>(
    cache: &Cache,
    value: &V,
    shared: Arc<dyn Any + Send + Sync>,
    w: Write<'_>,
) {
    let inner = &cache.inner;
    let now = now_millis();
    let (fresh_until, stale_until, fail_safe_until) = w.plan.deadlines(now);
    if let (Some(remote), Some(versions)) = (&inner.tiers.remote, w.remote_versions) {
        let header = Header {
            created: now,
            fresh_until,
            stale_until,
            fail_safe_until,
            load_millis: u32::try_from(w.load_millis).unwrap_or(u32::MAX),
            schema: entry::schema_of::<V>(),
            tags: w
                .tags
                .iter()
                .map(|t| Cow::Borrowed(t.as_str()))
                .zip(versions)
                .collect(),
        };
        match entry::encode_within(&header, value, remote.limits()) {
            Ok(bytes) => {
                let full = w.key.full(&inner.config.namespace);
                let ttl = Duration::from_millis(
                    stale_until.max(fail_safe_until).saturating_sub(now).max(1),
                );
                // A failed write is counted by `call`; the caller still gets its value.
                let _ = remote
                    .call(&inner.observe.counters, |s| {
                        s.put(&full, bytes.clone(), ttl)
                    })
                    .await;
            }
            Err(error @ EntryError::Oversized { .. }) => {
                let full = w.key.full(&inner.config.namespace);
                oversize::count(&inner.observe.counters, &full, &error);
                // Not stored: no older value under the key may outlive the
                // one the caller gets (a `set` over a small value). A failed
                // delete is counted by `call`.
                let _ = remote
                    .call(&inner.observe.counters, |s| s.delete(&full))
                    .await;
            }
            Err(error) => {
                inner
                    .observe
                    .counters
                    .fault(crate::events::FaultKind::Other);
                tracing::warn!(%error, "cache value could not be encoded for the remote tier");
            }
        }
    }
    inner.tiers.memory.insert(
        w.key.repr.clone(),
        Entry {
            value: Value::new_or_shared(value, shared),
            fresh_until,
            stale_until,
            fail_safe_until,
            load_millis: u32::try_from(w.load_millis).unwrap_or(u32::MAX),
            tags: w.local,
            weight: inner.tiers.memory.weigh(value),
        },
    );
}

/// The local snapshot a load that starts now records, given the remote
/// versions of `tags` read before it (`None`: not read). The remote versions
/// are observed first, so an invalidation they reveal drops older entries
/// without making this one born invalid.
pub(crate) fn load_snapshot(
    cache: &Cache,
    tags: &[String],
    remote_versions: Option<&[u64]>,
) -> TagSnapshot {
    let inner = &cache.inner;
    let snapshot = inner.tags.snapshot(tags);
    if inner.tiers.remote.is_none() || tags.is_empty() {
        return snapshot;
    }
    match remote_versions {
        Some(versions) => {
            snapshot.observe(tags, versions);
            if snapshot.is_current() {
                snapshot
            } else {
                snapshot.renewed()
            }
        }
        None => {
            snapshot.mark_dirty();
            snapshot
        }
    }
}

/// The remote versions of `tags`, for a write that did not read them;
/// `None` while one of them has an invalidation the remote tier has not
/// confirmed (the write then skips the remote tier).
pub(crate) async fn remote_versions(cache: &Cache, tags: &[String]) -> Option<Vec<u64>> {
    let inner = &cache.inner;
    let remote = inner.tiers.remote.as_ref()?;
    if inner.tags.any_pending(tags) {
        return None;
    }
    // No tags, no versions: not worth a round trip.
    if tags.is_empty() {
        return Some(Vec::new());
    }
    let keys: Vec<String> = tags
        .iter()
        .map(|t| Remote::tag_key(&inner.config.namespace, t))
        .collect();
    remote
        .call(&inner.observe.counters, |s| s.versions(&keys))
        .await
        .ok()
}
