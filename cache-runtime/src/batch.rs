//! Batch reads and writes: `get_many` reads every missing entry in one round
//! trip and all their tags' versions in a second; `set_many` writes in one
//! pipeline (concurrent single-key writes in a cluster).

use std::collections::HashMap;

use std::time::Duration;

use crate::clock::now_millis;
use crate::flow::entry_from;
use crate::flow::plan::Plan;
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::outcome::Storable;
use crate::remote::entry::{self, EntryError, Header};
use crate::remote::key_writes::{self, KeyWrite};
use crate::remote::oversize;
use crate::remote::Remote;
use crate::tags::Observed;
use crate::{Cache, Policy, Result};

impl Cache {
    /// The fresh values under `keys`, in order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// use cache_runtime::{Cache, Policy};
    /// let cache = Cache::memory(10);
    /// cache.set_many([("a", 1u8), ("b", 2u8)], &Policy::new()).await?;
    /// assert_eq!(cache.get_many::<u8, _>(&["a", "x", "b"]).await?, vec![Some(1), None, Some(2)]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get_many<T: Storable, K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<T>>> {
        let inner = &self.inner;
        let mut out: Vec<Option<T>> = keys
            .iter()
            .map(|k| self.get_now(&Key::manual(k.as_ref())))
            .collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|i| out[*i].is_none()).collect();
        if inner.remote.is_none() || missing.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<Key> = missing
            .iter()
            .map(|i| Key::manual(keys[*i].as_ref()))
            .collect();
        for (slot, value) in missing
            .into_iter()
            .zip(self.remote_many::<T>(&wanted).await?)
        {
            out[slot] = value;
        }
        Ok(out)
    }

    /// The fresh values under `keys` in the remote tier, in order: the entries
    /// in one round trip, then all their tags' versions in one more. Valid
    /// values are promoted to memory and counted as remote hits.
    pub(crate) async fn remote_many<T: Storable>(&self, keys: &[Key]) -> Result<Vec<Option<T>>> {
        let inner = &self.inner;
        let mut out: Vec<Option<T>> = keys.iter().map(|_| None).collect();
        let Some(remote) = &inner.remote else {
            return Ok(out);
        };
        let ns = &inner.namespace;
        let full: Vec<String> = keys.iter().map(|k| k.full(ns)).collect();
        let fetched = remote
            .call(&inner.counters, |s| s.fetch_many(&full))
            .await?;
        let now = now_millis();
        let mut found: Vec<(usize, Header, T)> = Vec::new();
        for (slot, bytes) in fetched.iter().enumerate() {
            let Some(bytes) = bytes else { continue };
            let decoded = entry::decode_header_within(bytes, remote.max_entry())
                .and_then(|(header, payload)| Ok((header, entry::decode_value::<T>(payload)?)));
            match decoded {
                Ok((header, value)) if now < header.fresh_until => {
                    found.push((slot, header, value))
                }
                Ok(_) => {}
                Err(error) => entry::count_unreadable(&inner.counters, &full[slot], &error),
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
        let current: HashMap<&str, u64> = if names.is_empty() {
            HashMap::new()
        } else if inner.tags.any_pending(&names) {
            // Redis may still hold what this process invalidated: the
            // entries carrying those tags are not used (see below).
            HashMap::new()
        } else {
            let tag_keys: Vec<String> = names.iter().map(|t| Remote::tag_key(ns, t)).collect();
            let versions = remote
                .call(&inner.counters, |s| s.versions(&tag_keys))
                .await?;
            if local.observe(&names, &versions) == Observed::Outdated {
                HashMap::new()
            } else {
                names.iter().map(String::as_str).zip(versions).collect()
            }
        };
        for (slot, header, value) in found {
            let valid = header
                .tags
                .iter()
                .all(|(name, version)| current.get(name.as_ref()) == Some(version));
            if !valid {
                continue;
            }
            let tag_names: Vec<&str> = header.tags.iter().map(|(n, _)| n.as_ref()).collect();
            let weight = inner.memory.weigh(&value);
            let snapshot = local.only(&tag_names);
            let promoted = entry_from(&header, Value::new(value.clone()), snapshot, weight);
            inner.memory.insert(keys[slot].repr.clone(), promoted);
            if crate::warm::counted(inner) {
                inner.counters.remote_hits.incr();
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

    /// Stores every `(key, value)` with `policy`: one pipeline to the remote
    /// tier, then memory.
    ///
    /// # Cancel safety
    ///
    /// The keys leave this process's memory tier on the first
    /// poll, so a drop midway never leaves it serving the old values: it reads
    /// whatever the remote tier holds (the old values if the write had not
    /// landed, the new ones if it had). Other processes drop their copies at
    /// their next confirmation, within about a second, when the message was not
    /// sent. Call it again to be sure of the new values.
    pub async fn set_many<T, K, I>(&self, items: I, policy: &Policy) -> Result<()>
    where
        T: Storable,
        K: AsRef<str>,
        I: IntoIterator<Item = (K, T)>,
    {
        let inner = &self.inner;
        let plan = Plan::from_policy(policy, self, true);
        let now = now_millis();
        let (fresh_until, stale_until, fail_safe_until) = plan.deadlines(now);
        let ttl =
            Duration::from_millis(stale_until.max(fail_safe_until).saturating_sub(now).max(1));
        let header = Header {
            created: now,
            fresh_until,
            stale_until,
            fail_safe_until,
            load_millis: 0,
            tags: Vec::new(),
        };
        let mut writes = Vec::new();
        let mut entries = Vec::new();
        let mut names = Vec::new();
        // Keys whose value is over the maximum entry size: deleted instead.
        let mut oversized = Vec::new();
        for (key, value) in items {
            names.push(key.as_ref().to_string());
            let key = Key::manual(key.as_ref());
            if let Some(remote) = &inner.remote {
                match entry::encode_within(&header, &value, remote.max_entry()) {
                    Ok(bytes) => writes.push((key.full(&inner.namespace), bytes, ttl)),
                    Err(error @ EntryError::Oversized { .. }) => {
                        let full = key.full(&inner.namespace);
                        oversize::count(&inner.counters, &full, &error);
                        oversized.push(full);
                    }
                    Err(error) => {
                        inner.counters.fault(crate::events::FaultKind::Other);
                        tracing::warn!(%error, "cache value could not be encoded for the remote tier");
                    }
                }
            }
            let entry = Entry {
                weight: inner.memory.weigh(&value),
                value: Value::new(value),
                fresh_until,
                stale_until,
                fail_safe_until,
                load_millis: 0,
                tags: Default::default(),
            };
            entries.push((key, entry));
        }
        let mut outcome = Ok(());
        if let Some(remote) = &inner.remote {
            // Out of memory before the remote write: dropped halfway, this
            // process then reads what Redis holds, never its old values.
            for (key, _) in &entries {
                inner.memory.remove(&key.repr);
            }
            if !writes.is_empty() || !oversized.is_empty() {
                let seq = key_writes::reserve(self).await;
                if !writes.is_empty() {
                    outcome = remote
                        .call(&inner.counters, |s| s.put_many(writes.clone()))
                        .await;
                }
                // Not stored: no older value under these keys may outlive
                // the new ones (rare, so one delete each).
                for full in &oversized {
                    let deleted = remote.call(&inner.counters, |s| s.delete(full)).await;
                    if outcome.is_ok() {
                        outcome = deleted.map(drop);
                    }
                }
                let keys = names.iter().map(String::as_str).collect();
                key_writes::publish(self, seq, KeyWrite::Keys(keys)).await;
            }
        }
        for (key, entry) in entries {
            inner.memory.insert(key.repr, entry);
        }
        Ok(outcome?)
    }
}
