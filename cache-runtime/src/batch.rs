//! Batch reads and writes: `get_many` reads every missing entry through the
//! one remote read (`remote::read`: one round trip, a second only for tag
//! versions this process does not know); `set_many` writes in one pipeline
//! (concurrent single-key writes in a cluster).

use std::time::Duration;

use crate::clock::now_millis;
use crate::coherence::key_writes::{self, KeyWrite};
use crate::flow::plan::Plan;
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::outcome::Storable;
use crate::remote::entry::{self, EntryError, Header};
use crate::remote::oversize;
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
    /// Round trips to the remote tier, whatever the number of keys: none
    /// when memory holds every key; else one `fetch_batch` of the keys memory
    /// missed (a Redis cluster sends it to each node concurrently), and a
    /// second one, `versions` of every tag at once, only for tagged entries
    /// whose tags' versions this process does not know.
    ///
    /// # Errors
    ///
    /// The remote tier's error when its read failed (a timeout, a fault, an
    /// open breaker).
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
        if inner.tiers.remote.is_none() || missing.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<Key> = missing
            .iter()
            .map(|i| Key::manual(keys[*i].as_ref()))
            .collect();
        for (slot, value) in missing
            .into_iter()
            .zip(crate::remote::read::read_many::<T>(self, &wanted).await?)
        {
            out[slot] = value;
        }
        Ok(out)
    }

    /// Stores every `(key, value)` with `policy`: one pipeline to the remote
    /// tier, then memory.
    ///
    /// Round trips: one `put_many` for every entry (the store's pipeline; a
    /// Redis cluster groups it per node), plus the reservation of the
    /// key-write sequence number other processes order key writes by, and a
    /// `delete` per value over the maximum entry size (not stored).
    ///
    /// # Errors
    ///
    /// The remote tier's error when the write failed; memory holds the new
    /// values all the same.
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
        let plan = Plan::from_policy(policy, self, true);
        let items = items
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v))
            .collect();
        self.write_many(items, &plan, 0, true).await
    }

    /// Writes untagged `items` through both tiers in one `put_many`;
    /// `publish`: a write others must hear of (a `set`, not a load's fill).
    pub(crate) async fn write_many<T: Storable>(
        &self,
        items: Vec<(String, T)>,
        plan: &Plan,
        load_millis: u32,
        publish: bool,
    ) -> Result<()> {
        let inner = &self.inner;
        let now = now_millis();
        let (fresh_until, stale_until, fail_safe_until) = plan.deadlines(now);
        let ttl =
            Duration::from_millis(stale_until.max(fail_safe_until).saturating_sub(now).max(1));
        let header = Header {
            created: now,
            fresh_until,
            stale_until,
            fail_safe_until,
            load_millis,
            schema: entry::schema_of::<T>(),
            tags: Vec::new(),
        };
        let mut writes = Vec::new();
        let mut entries = Vec::new();
        let mut names = Vec::new();
        // Keys whose value is over the maximum entry size: deleted instead.
        let mut oversized = Vec::new();
        for (name, value) in items {
            let key = Key::manual(&name);
            names.push(name);
            if let Some(remote) = &inner.tiers.remote {
                match entry::encode_within(&header, &value, remote.limits()) {
                    Ok(bytes) => writes.push((key.full(&inner.config.namespace), bytes, ttl)),
                    Err(error @ EntryError::Oversized { .. }) => {
                        let full = key.full(&inner.config.namespace);
                        oversize::count(&inner.observe.counters, &full, &error);
                        oversized.push(full);
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
            let entry = Entry {
                weight: inner.tiers.memory.weigh(&value),
                value: Value::new(value),
                fresh_until,
                stale_until,
                fail_safe_until,
                load_millis,
                tags: Default::default(),
            };
            entries.push((key, entry));
        }
        let mut outcome = Ok(());
        if let Some(remote) = &inner.tiers.remote {
            // Out of memory before the remote write: dropped halfway, this
            // process then reads what Redis holds, never its old values.
            for (key, _) in &entries {
                inner.tiers.memory.remove(&key.repr);
            }
            if !writes.is_empty() || !oversized.is_empty() {
                let seq = match publish {
                    true => Some(key_writes::reserve(&*self.inner).await),
                    false => None,
                };
                if !writes.is_empty() {
                    outcome = remote
                        .call(&inner.observe.counters, |s| s.put_many(writes.clone()))
                        .await;
                }
                // Not stored: no older value under these keys may outlive
                // the new ones (rare, so one delete each).
                for full in &oversized {
                    let deleted = remote
                        .call(&inner.observe.counters, |s| s.delete(full))
                        .await;
                    if outcome.is_ok() {
                        outcome = deleted.map(drop);
                    }
                }
                if let Some(seq) = seq {
                    let keys = names.iter().map(String::as_str).collect();
                    key_writes::publish(&*self.inner, seq, KeyWrite::Keys(keys)).await;
                }
            }
        }
        for (key, entry) in entries {
            inner.tiers.memory.insert(key.repr, entry);
        }
        Ok(outcome?)
    }
}
