//! The remote read of entries whose tags are known only from their headers
//! (the manual API's `get`, `get_many`, `get_or_load`, and the HTTP layer):
//! one [`fetch_batch`](crate::store::EntryStore::fetch_batch) for all the
//! entries, then the versions of the tags their headers record.
//!
//! What a hit costs, in round trips to the store:
//! - an entry stored without tags (`set`, `set_many`, the HTTP layer's
//!   responses without tags): **one**;
//! - an entry with tags, while this process's known-versions table
//!   (`coherence::known`, kept by the backplane and confirmed within a second)
//!   holds every one of them and they match the entry's: **one**;
//! - otherwise (no backplane, a tag not known or not confirmed lately, or
//!   the entry recorded other versions than those known): **two**, the
//!   second one `versions` read for every tag of the batch at once.
//!
//! The macro's read (`flow::remote_read`) knows its tags before it reads, so
//! it asks the store for the entry and its versions in the same
//! [`Fetch`]: one round trip always.

use std::collections::HashMap;

use crate::clock::now_millis;
use crate::flow::entry_from;
use crate::key::Key;
use crate::memory::Value;
use crate::outcome::Storable;
use crate::remote::entry::{self, Header};
use crate::remote::Remote;
use crate::store::Fetch;
use crate::tags::Observed;
use crate::{Cache, Result};

/// The fresh values under `keys` in the remote tier, in order (see the
/// module's docs for the round trips). Valid values are promoted to memory
/// and counted as remote hits; each key gets its one get event.
pub(crate) async fn read_many<T: Storable>(cache: &Cache, keys: &[Key]) -> Result<Vec<Option<T>>> {
    let inner = &cache.inner;
    let mut out: Vec<Option<T>> = keys.iter().map(|_| None).collect();
    let Some(remote) = &inner.tiers.remote else {
        return Ok(out);
    };
    let ns = &inner.config.namespace;
    // The tags are in the headers: each entry is asked for alone.
    let requests: Vec<Fetch<'_>> = keys
        .iter()
        .map(|key| Fetch {
            namespace: ns,
            key,
            tags: &[],
        })
        .collect();
    let fetched = remote
        .call(&inner.observe.counters, |s| s.fetch_batch(&requests))
        .await?;
    let now = now_millis();
    let mut found: Vec<(usize, Header, T)> = Vec::new();
    for (slot, answer) in fetched.iter().enumerate() {
        let Some(bytes) = &answer.entry else { continue };
        let decoded = entry::decode_header_within(bytes, remote.max_entry())
            .and_then(|(header, payload)| Ok((header, entry::decode_value::<T>(&payload)?)));
        match decoded {
            Ok((header, value)) if now < header.fresh_until => found.push((slot, header, value)),
            Ok(_) => {}
            Err(error) => {
                entry::count_unreadable(&inner.observe.counters, &keys[slot].full(ns), &error)
            }
        }
    }
    let mut names: Vec<String> = found
        .iter()
        .flat_map(|(_, header, _)| header.tags.iter().map(|(name, _)| name.to_string()))
        .collect();
    names.sort();
    names.dedup();
    // Before the versions are read: an invalidation while they travel
    // makes the promoted entries born invalid.
    let local = inner.tags.snapshot(&names);
    let valid = |current: &HashMap<&str, u64>, header: &Header| {
        header
            .tags
            .iter()
            .all(|(name, version)| current.get(name.as_ref()) == Some(version))
    };
    let current: HashMap<&str, u64> = if names.is_empty() {
        HashMap::new()
    } else if inner.tags.any_pending(&names) {
        // Redis may still hold what this process invalidated: the
        // entries carrying those tags are not used (see below).
        HashMap::new()
    } else {
        let known = inner.coherence.backplane.as_ref().map(|b| &b.known);
        // The versions this process knows, when it trusts them all and every
        // entry recorded them: no second round trip.
        let from_known = known
            .and_then(|k| k.versions(&names, now_millis()))
            .and_then(|versions| {
                if local.observe(&names, versions.as_slice()) == Observed::Outdated {
                    return None;
                }
                let current: HashMap<&str, u64> = names
                    .iter()
                    .map(String::as_str)
                    .zip(versions.as_slice().iter().copied())
                    .collect();
                found
                    .iter()
                    .all(|(_, header, _)| valid(&current, header))
                    .then_some(current)
            });
        match from_known {
            Some(current) => current,
            None => {
                let tag_keys: Vec<String> = names.iter().map(|t| Remote::tag_key(ns, t)).collect();
                let ticket = known.and_then(|k| k.ticket());
                let versions = remote
                    .call(&inner.observe.counters, |s| s.versions(&tag_keys))
                    .await?;
                if let (Some(known), Some(ticket)) = (known, ticket) {
                    known.learn(&names, &versions, ticket);
                }
                if local.observe(&names, &versions) == Observed::Outdated {
                    HashMap::new()
                } else {
                    names.iter().map(String::as_str).zip(versions).collect()
                }
            }
        }
    };
    for (slot, header, value) in found {
        if !valid(&current, &header) {
            continue;
        }
        let tag_names: Vec<&str> = header.tags.iter().map(|(n, _)| n.as_ref()).collect();
        let weight = inner.tiers.memory.weigh(&value);
        let snapshot = local.only(&tag_names);
        let promoted = entry_from(&header, Value::new(value.clone()), snapshot, weight);
        inner.tiers.memory.insert(keys[slot].repr.clone(), promoted);
        if crate::warm::counted(inner) {
            inner.observe.counters.remote_hits.incr();
        }
        out[slot] = Some(value);
    }
    // Each key's one get event: memory missed (`get_now` left it untold).
    // A warm run's gets are not traffic.
    let counted = crate::warm::counted(inner);
    inner.tell(|events| {
        if !counted {
            return;
        }
        for (key, value) in keys.iter().zip(&out) {
            let result = match value {
                Some(_) => crate::events::GetResult::Hit,
                None => crate::events::GetResult::Miss,
            };
            events.get(crate::events::Call::new(None, key), result);
        }
    });
    Ok(out)
}
