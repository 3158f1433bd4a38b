//! Reading an entry from the remote tier, with its tags' current versions in
//! the same round trip, and promoting it to memory.

use std::sync::Arc;

use super::plan::Plan;
use crate::clock::now_millis;
use crate::coherence::known::Versions;
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::remote::entry::{self, EntryError, Header, Payload};
use crate::store::Fetch;
use crate::tags::{Observed, TagSnapshot};
use crate::value::SharedValue;
use crate::Cache;

/// Decodes a CBOR payload into the caller's value type: behind an `Arc` when
/// `shared` (it goes to memory and to a load's waiters too), else inline when
/// small (a storage-only hit hands it straight to its caller).
pub(crate) type DecodeFn = fn(&Payload<'_>, shared: bool) -> Result<Value, EntryError>;

/// A [`DecodeFn`] for `V`.
pub(crate) fn decode_for<V: crate::outcome::Storable>(
    payload: &Payload<'_>,
    shared: bool,
) -> Result<Value, EntryError> {
    let value = entry::decode_value::<V>(payload)?;
    Ok(if shared {
        Value::from_shared(Arc::new(value))
    } else {
        Value::new(value)
    })
}

pub(crate) enum RemoteRead {
    /// A fresh value (also put in memory, when the cache has a memory tier).
    Fresh(Value),
    Stale(Entry),
    Miss {
        fail_safe: Option<SharedValue>,
        /// The tags' versions, to write the loaded entry with; `None` when the
        /// remote tier could not be read (the load then skips it).
        versions: Option<Vec<u64>>,
    },
}

/// A memory entry for a value read from the remote tier.
/// `weight` as [`MemoryTier::weigh`](crate::memory::MemoryTier::weigh) gives it.
pub(crate) fn entry_from(header: &Header, value: Value, tags: TagSnapshot, weight: u32) -> Entry {
    Entry {
        value,
        fresh_until: header.fresh_until,
        stale_until: header.stale_until,
        fail_safe_until: header.fail_safe_until,
        load_millis: header.load_millis,
        tags,
        weight,
    }
}

/// Reads `key` from the remote tier. Without one: a miss with no versions.
///
/// `snapshot` is the tags' local versions taken before the caller looked
/// for a flight; with a memory tier and none given, one is taken now, before
/// the request is sent, so that an invalidation while it travels makes the
/// entry born invalid. While an invalidation of one of the tags waits for
/// the remote tier, the entry is not read at all: Redis may still hold what
/// this process invalidated.
///
/// When this process knows the current versions of the entry's tags (the
/// backplane keeps them: `coherence::known`), the entry is read alone, in one
/// `GET`; otherwise, or when the entry recorded other versions than those
/// known, the entry and its tags' version counters are read together.
pub(crate) async fn read_remote(
    cache: &Cache,
    key: &Key,
    tags: &[String],
    plan: &Plan,
    decode: DecodeFn,
    snapshot: Option<&TagSnapshot>,
) -> RemoteRead {
    let inner = &cache.inner;
    let Some(remote) = &inner.tiers.remote else {
        return unread();
    };
    if inner.tags.any_pending(tags) {
        return unread();
    }
    let taken;
    let snapshot = match snapshot {
        Some(snapshot) => Some(snapshot),
        None if inner.tiers.memory.is_enabled() => {
            taken = inner.tags.snapshot(tags);
            Some(&taken)
        }
        None => None,
    };
    let known = inner.coherence.backplane.as_ref().map(|b| &b.known);
    let known_versions = if tags.is_empty() {
        Some(Versions::default())
    } else {
        known.and_then(|k| k.versions(tags, now_millis()))
    };
    if let Some(versions) = known_versions {
        let keys = Fetch {
            namespace: &inner.config.namespace,
            key,
            tags: &[],
        };
        let Ok(fetched) = remote
            .call(&inner.observe.counters, |s| s.fetch(keys))
            .await
        else {
            return unread();
        };
        match judge_remote(
            cache,
            key,
            tags,
            plan,
            decode,
            fetched.entry,
            versions.as_slice(),
            snapshot,
        ) {
            Judged::Read(read) => return read,
            // Recorded with versions other than those known: ask Redis.
            Judged::NotCurrent => {}
        }
    }
    let keys = Fetch {
        namespace: &inner.config.namespace,
        key,
        tags,
    };
    let ticket = known.and_then(|k| k.ticket());
    let Ok(fetched) = remote
        .call(&inner.observe.counters, |s| s.fetch(keys))
        .await
    else {
        return unread();
    };
    if let (Some(known), Some(ticket)) = (known, ticket) {
        known.learn(tags, &fetched.versions, ticket);
    }
    match judge_remote(
        cache,
        key,
        tags,
        plan,
        decode,
        fetched.entry,
        &fetched.versions,
        snapshot,
    ) {
        Judged::Read(read) => read,
        Judged::NotCurrent => RemoteRead::Miss {
            fail_safe: None,
            versions: Some(fetched.versions),
        },
    }
}

/// The remote tier could not be read: a miss whose load skips it.
fn unread() -> RemoteRead {
    RemoteRead::Miss {
        fail_safe: None,
        versions: None,
    }
}

enum Judged {
    Read(RemoteRead),
    /// The entry recorded other tag versions than the current ones.
    NotCurrent,
}

/// Judges `bytes` read from the remote tier against the current `versions`
/// of `tags`; `snapshot` (taken before the read) is what a memory entry
/// made from them records.
#[allow(clippy::too_many_arguments)]
fn judge_remote(
    cache: &Cache,
    key: &Key,
    tags: &[String],
    plan: &Plan,
    decode: DecodeFn,
    bytes: Option<Vec<u8>>,
    versions: &[u64],
    snapshot: Option<&TagSnapshot>,
) -> Judged {
    let inner = &cache.inner;
    // Newer versions than this process saw drop older memory entries; older
    // ones mean the reply was overtaken by an invalidation seen meanwhile.
    if let Some(snapshot) = snapshot {
        if snapshot.observe(tags, versions) == Observed::Outdated {
            return Judged::NotCurrent;
        }
    }
    let miss = |versions: &[u64]| {
        Judged::Read(RemoteRead::Miss {
            fail_safe: None,
            versions: Some(versions.to_vec()),
        })
    };
    let Some(bytes) = bytes else {
        return miss(versions);
    };
    let max = inner
        .tiers
        .remote
        .as_ref()
        .map_or(usize::MAX, |r| r.max_entry());
    let (header, payload) = match entry::decode_header_within(&bytes, max) {
        Ok(decoded) => decoded,
        Err(error) => return undecodable(cache, key, error, versions),
    };
    // Valid only while every tag version it recorded is current.
    let current = header.tags.iter().all(|(name, version)| {
        tags.iter()
            .position(|t| t == name)
            .and_then(|i| versions.get(i))
            .is_some_and(|v| v == version)
    });
    if !current {
        return Judged::NotCurrent;
    }
    let memory = inner.tiers.memory.is_enabled();
    let weight = inner.tiers.memory.weigh_encoded(payload.len());
    let value = match decode(&payload, memory) {
        Ok(value) => value,
        Err(error) => return undecodable(cache, key, error, versions),
    };
    let now = now_millis();
    let fresh = now < header.fresh_until;
    let stale = !fresh && plan.refreshable && now < header.stale_until;
    // The tag snapshot is kept by a memory entry and used by a stale entry's
    // refresh; a storage-only fresh hit skips it, and the registry's lock.
    let snapshot = match snapshot {
        Some(snapshot) => snapshot.clone(),
        // Storage-only: no memory entry, only a refresh's tag names.
        None if stale => inner.tags.snapshot(tags),
        None => TagSnapshot::default(),
    };
    if fresh {
        // Storage-only, the value is not shared with an entry: the caller can
        // take it without a clone.
        if memory {
            let entry = entry_from(&header, value.clone(), snapshot, weight);
            inner.tiers.memory.insert(key.repr.clone(), entry);
        }
        return Judged::Read(RemoteRead::Fresh(value));
    }
    let entry = entry_from(&header, value, snapshot, weight);
    if stale {
        inner.tiers.memory.insert(key.repr.clone(), entry.clone());
        Judged::Read(RemoteRead::Stale(entry))
    } else {
        Judged::Read(RemoteRead::Miss {
            fail_safe: (now < entry.fail_safe_until).then(|| entry.value.to_shared()),
            versions: Some(versions.to_vec()),
        })
    }
}

/// An entry that does not decode (or is damaged, or of another format
/// version) is a miss; the next load overwrites it.
#[cold]
fn undecodable(cache: &Cache, key: &Key, error: EntryError, versions: &[u64]) -> Judged {
    let inner = &cache.inner;
    entry::count_unreadable(
        &inner.observe.counters,
        &key.full(&inner.config.namespace),
        &error,
    );
    Judged::Read(RemoteRead::Miss {
        fail_safe: None,
        versions: Some(versions.to_vec()),
    })
}
