//! Judging one entry read from the remote tier: whether the tag versions it
//! recorded are current, then serving it (fresh or stale, promoted to
//! memory), keeping it for fail-safe, or calling it a miss.

use std::sync::Arc;

use super::{How, RemoteRead};
use crate::clock::now_millis;
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::outcome::Storable;
use crate::remote::entry::{self, EntryError, Header, Payload};
use crate::tags::{Observed, TagSnapshot};
use crate::Cache;

/// Decodes a CBOR payload into the caller's value type: behind an `Arc` when
/// `shared` (it goes to memory and to a load's waiters too), else inline when
/// small (a storage-only hit hands it straight to its caller).
pub(crate) type DecodeFn = fn(&Payload<'_>, shared: bool) -> Result<Value, EntryError>;

/// A [`DecodeFn`] for `V`. The user's `Deserialize` runs contained
/// (`remote::user_code`): a panic in it is an unreadable entry.
pub(crate) fn decode_for<V: Storable>(
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

/// What the read found under one key: the entry's header and payload
/// (borrowed from the store's answer), or nothing usable.
pub(super) enum Found<'b> {
    /// No entry (or one past its TTL).
    Absent,
    /// Damaged, oversized, or of another format version: counted when
    /// found, a miss; the next load overwrites it.
    Unreadable,
    Entry(Header<'b>, Payload<'b>),
}

impl<'b> Found<'b> {
    /// The entry's header, if it was readable.
    pub(super) fn header(&self) -> Option<&Header<'b>> {
        match self {
            Found::Entry(header, _) => Some(header),
            Found::Absent | Found::Unreadable => None,
        }
    }

    /// Checks `bytes` (at most `max` long, checksum, header); an unreadable
    /// entry is counted here, once, however often it is judged.
    pub(super) fn decode(cache: &Cache, key: &Key, bytes: Option<&'b [u8]>, max: usize) -> Self {
        let Some(bytes) = bytes else {
            return Found::Absent;
        };
        match entry::decode_header_within(bytes, max) {
            Ok((header, payload)) => Found::Entry(header, payload),
            Err(error) => {
                unreadable(cache, key, &error);
                Found::Unreadable
            }
        }
    }
}

/// The verdict on an entry read with its tags' versions.
pub(super) enum Judged {
    Read(RemoteRead),
    /// The entry recorded other tag versions than those given, or the
    /// versions are older than ones this process saw: ask the store.
    NotCurrent,
}

/// Judges what was found under a key whose caller knows its `tags`, against
/// `versions` of them (in that order). `snapshot` (the tags' local versions
/// taken before the read) observes them first: newer versions than this
/// process saw drop older memory entries; older ones mean the answer was
/// overtaken by an invalidation seen meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) fn judge_tagged(
    cache: &Cache,
    key: &Key,
    how: How,
    tags: &[String],
    snapshot: Option<&TagSnapshot>,
    found: &Found<'_>,
    versions: &[u64],
) -> Judged {
    if let Some(snapshot) = snapshot {
        if snapshot.observe(tags, versions) == Observed::Outdated {
            return Judged::NotCurrent;
        }
    }
    let (header, payload) = match found {
        Found::Absent | Found::Unreadable => {
            return Judged::Read(RemoteRead::missed(Some(versions)))
        }
        Found::Entry(header, payload) => (header, *payload),
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
    let inner = &cache.inner;
    // The tag snapshot is kept by a memory entry and used by a stale entry's
    // refresh; a storage-only fresh hit skips it, and the registry's lock.
    let snapshot = |stale: bool| match snapshot {
        Some(snapshot) => snapshot.clone(),
        // Storage-only: no memory entry, only a refresh's tag names.
        None if stale => inner.tags.snapshot(tags),
        None => TagSnapshot::default(),
    };
    Judged::Read(serve(
        cache,
        key,
        how,
        header,
        &payload,
        snapshot,
        Some(versions),
    ))
}

/// Serves an entry whose tags are current: a fresh value, a stale entry
/// (when `how.refreshable`), or a miss carrying the entry's value for
/// fail-safe and `versions` for the load's write. Fresh and stale entries
/// are promoted to memory with the snapshot `snapshot(stale)` gives.
pub(super) fn serve(
    cache: &Cache,
    key: &Key,
    how: How,
    header: &Header<'_>,
    payload: &Payload<'_>,
    snapshot: impl FnOnce(bool) -> TagSnapshot,
    versions: Option<&[u64]>,
) -> RemoteRead {
    let inner = &cache.inner;
    let memory = inner.tiers.memory.is_enabled();
    let weight = inner.tiers.memory.weigh_encoded(payload.len());
    let value = match (how.decode)(payload, memory) {
        Ok(value) => value,
        Err(error) => {
            unreadable(cache, key, &error);
            return RemoteRead::missed(versions);
        }
    };
    let now = now_millis();
    let fresh = now < header.fresh_until;
    let stale = !fresh && how.refreshable && now < header.stale_until;
    let snapshot = snapshot(stale);
    if fresh {
        // Storage-only, the value is not shared with an entry: the caller can
        // take it without a clone.
        if memory {
            let entry = entry_from(header, value.clone(), snapshot, weight);
            inner.tiers.memory.insert(key.repr.clone(), entry);
        }
        return RemoteRead::Fresh(value);
    }
    let entry = entry_from(header, value, snapshot, weight);
    if stale {
        inner.tiers.memory.insert(key.repr.clone(), entry.clone());
        RemoteRead::Stale(entry)
    } else {
        RemoteRead::Miss {
            fail_safe: (now < entry.fail_safe_until).then(|| entry.value.to_shared()),
            versions: versions.map(<[u64]>::to_vec),
            failed: false,
        }
    }
}

/// A memory entry for a value read from the remote tier.
/// `weight` as [`MemoryTier::weigh`](crate::memory::MemoryTier::weigh) gives it.
fn entry_from(header: &Header<'_>, value: Value, tags: TagSnapshot, weight: u32) -> Entry {
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

/// Counts an entry that does not decode (damaged, oversized, of another
/// format version, or of another shape of the stored type).
#[cold]
fn unreadable(cache: &Cache, key: &Key, error: &EntryError) {
    let inner = &cache.inner;
    entry::count_unreadable(
        &inner.observe.counters,
        &key.full(&inner.config.namespace),
        error,
    );
}
