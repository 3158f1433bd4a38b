//! Reading an entry from the remote tier, with its tags' current versions in
//! the same round trip, and promoting it to memory.

use std::any::Any;
use std::sync::Arc;

use super::plan::Plan;
use crate::clock::now_millis;
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::remote::entry::{self, EntryError, Header};
use crate::remote::store::FetchKeys;
use crate::tags::TagSnapshot;
use crate::Cache;

pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

/// Decodes a CBOR payload into the caller's value type.
pub(crate) type DecodeFn = fn(&[u8]) -> Result<Shared, EntryError>;

/// A [`DecodeFn`] for `V`.
pub(crate) fn decode_shared<V: crate::outcome::Storable>(
    payload: &[u8],
) -> Result<Shared, EntryError> {
    entry::decode_value::<V>(payload).map(|v| Arc::new(v) as Shared)
}

pub(crate) enum RemoteRead {
    /// A fresh value (also put in memory, when the cache has a memory tier).
    Fresh(Shared),
    Stale(Entry),
    Miss {
        fail_safe: Option<Shared>,
        /// The tags' versions, to write the loaded entry with; `None` when the
        /// remote tier could not be read (the load then skips it).
        versions: Option<Vec<u64>>,
    },
}

/// A memory entry for a value read from the remote tier.
pub(crate) fn entry_from(header: &Header, value: Shared, tags: TagSnapshot) -> Entry {
    Entry {
        value: Value::from_shared(value),
        fresh_until: header.fresh_until,
        stale_until: header.stale_until,
        fail_safe_until: header.fail_safe_until,
        load_millis: u64::from(header.load_millis),
        tags,
    }
}

/// Reads `key` from the remote tier. Without one: a miss with no versions.
pub(crate) async fn read(
    cache: &Cache,
    key: &Key,
    tags: &[String],
    plan: &Plan,
    decode: DecodeFn,
) -> RemoteRead {
    let inner = &cache.inner;
    let Some(remote) = &inner.remote else {
        return RemoteRead::Miss {
            fail_safe: None,
            versions: None,
        };
    };
    let keys = FetchKeys {
        namespace: &inner.namespace,
        key,
        tags,
    };
    let Ok(fetched) = remote.call(&inner.counters, |s| s.fetch(keys)).await else {
        return RemoteRead::Miss {
            fail_safe: None,
            versions: None,
        };
    };
    let versions = fetched.versions;
    let miss = |versions| RemoteRead::Miss {
        fail_safe: None,
        versions: Some(versions),
    };
    let Some(bytes) = fetched.entry else {
        return miss(versions);
    };
    let decoded =
        entry::decode_header(&bytes).and_then(|(header, payload)| Ok((header, decode(payload)?)));
    let (header, value) = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            // The next load overwrites it.
            inner.counters.decode_errors.incr();
            tracing::warn!(key = %key.full(&inner.namespace), %error, "undecodable remote cache entry treated as a miss");
            return miss(versions);
        }
    };
    // Valid only while every tag version it recorded is current.
    let current = header.tags.iter().all(|(name, version)| {
        tags.iter()
            .position(|t| t == name)
            .and_then(|i| versions.get(i))
            .is_some_and(|v| v == version)
    });
    if !current {
        return miss(versions);
    }
    let now = now_millis();
    let fresh = now < header.fresh_until;
    let stale = !fresh && plan.refreshable && now < header.stale_until;
    // The tag snapshot is kept by a memory entry and used by a stale entry's
    // refresh; a storage-only fresh hit skips it, and the registry's lock.
    let snapshot = if stale || (fresh && inner.memory.is_enabled()) {
        inner.tags.snapshot(tags)
    } else {
        TagSnapshot::default()
    };
    if fresh {
        // Storage-only, the value is not shared with an entry: the caller can
        // take it without a clone.
        if inner.memory.is_enabled() {
            let entry = entry_from(&header, value.clone(), snapshot);
            inner.memory.insert(key.repr.clone(), entry);
        }
        return RemoteRead::Fresh(value);
    }
    let entry = entry_from(&header, value, snapshot);
    if stale {
        inner.memory.insert(key.repr.clone(), entry.clone());
        RemoteRead::Stale(entry)
    } else {
        RemoteRead::Miss {
            fail_safe: (now < entry.fail_safe_until).then(|| entry.value.to_shared()),
            versions: Some(versions),
        }
    }
}
