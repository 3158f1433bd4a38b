//! The read of keys whose tags are in their entries' headers, typed: the
//! manual API's `get`, `get_many`, `get_or_load` (its lookup) and the HTTP
//! layer's. Counts remote hits and tells each key's get event here, as the
//! macro's miss path does for its own calls.

use super::{decode_for, read, How, RemoteRead, Want};
use crate::events::{Call, GetResult};
use crate::key::Key;
use crate::outcome::Storable;
use crate::{Cache, Result};

/// The fresh values under `keys` in the remote tier, in order (see the
/// module's docs for the round trips). Valid values are promoted to memory
/// and counted as remote hits; each key gets its one get event.
pub(crate) async fn read_many<T: Storable>(cache: &Cache, keys: &[Key]) -> Result<Vec<Option<T>>> {
    let inner = &cache.inner;
    if inner.tiers.remote.is_none() {
        return Ok(keys.iter().map(|_| None).collect());
    }
    let wants: Vec<Want<'_>> = keys
        .iter()
        .map(|key| Want {
            key,
            tags: None,
            snapshot: None,
        })
        .collect();
    let how = How {
        decode: decode_for::<T>,
        refreshable: false,
    };
    let read = read(cache, &wants, how).await;
    if let Some(error) = read.error {
        return Err(error.into());
    }
    // A warm run's gets are not traffic.
    let counted = crate::warm::counted(inner);
    let out: Vec<Option<T>> = read
        .reads
        .into_iter()
        .map(|read| match read {
            // Decoded as `T`: the type matches.
            RemoteRead::Fresh(value) => value.take::<T>().ok(),
            RemoteRead::Stale(_) | RemoteRead::Miss { .. } => None,
        })
        .collect();
    let hits = out.iter().filter(|v| v.is_some()).count();
    if counted && hits > 0 {
        inner.observe.counters.remote_hits.add(hits as u64);
    }
    // Each key's one get event: memory missed (`get_now` left it untold).
    inner.tell(|events| {
        if !counted {
            return;
        }
        for (key, value) in keys.iter().zip(&out) {
            let result = match value {
                Some(_) => GetResult::Hit,
                None => GetResult::Miss,
            };
            events.get(Call::new(None, key), result);
        }
    });
    Ok(out)
}
