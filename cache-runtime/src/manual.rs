//! The manual API: get, set, delete and get-or-load by key, and their batch
//! forms. A key is stored as `{namespace}:{key}` with its reserved characters
//! (`%`, `#`, `~`) escaped, so `get("user:7")` sees the entry
//! `#[cached(key = "user:{id}")]` stored for 7, while no manual key can name a
//! versioned or default entry, a shortened key, a tag counter, a lock or a
//! counter, and two different manual keys never share an entry (see the
//! grammar in the `key` module).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::clock::now_millis;
use crate::coherence::key_writes::{self, KeyWrite};
use crate::events::{Call, FaultKind, GetResult, LoadOutcome};
use crate::flight::{Join, LeadGuard};
use crate::flow::plan::Plan;
use crate::flow::{begin_with, remote_versions, store_value, Begun, Step, Write};
use crate::key::Key;
use crate::outcome::{AsResult, Storable};
use crate::{Cache, Policy, Result};

impl Cache {
    /// The fresh value under `key`, if any (and if it is of type `T`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::memory(100);
    /// assert_eq!(cache.get::<u32>("n").await?, None);
    /// cache.set("n", 1u32).await?;
    /// assert_eq!(cache.get::<u32>("n").await?, Some(1));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get<T: Storable>(&self, key: &str) -> Result<Option<T>> {
        self.lookup(&Key::manual(key)).await
    }

    /// Memory, then the remote tier.
    async fn lookup<T: Storable>(&self, key: &Key) -> Result<Option<T>> {
        if let Some(value) = self.get_now(key) {
            return Ok(Some(value));
        }
        let found = crate::remote::read::read_many::<T>(self, std::slice::from_ref(key)).await?;
        Ok(found.into_iter().next().flatten())
    }

    pub(crate) fn get_now<T: Storable, K: crate::key::Lookup + ?Sized>(
        &self,
        key: &K,
    ) -> Option<T> {
        let inner = &self.inner;
        let now = now_millis();
        let value = inner
            .memory_read(key, now, |entry| {
                let fresh = now < entry.fresh_until && entry.tags.is_current();
                match entry.value.downcast_ref::<T>() {
                    Some(v) if fresh => Some(v.clone()),
                    Some(_) => None,
                    None => {
                        inner.observe.counters.fault(FaultKind::Decode);
                        None
                    }
                }
            })
            .flatten();
        // A warm run's gets are not traffic: neither counted nor told.
        let counted = crate::warm::counted(inner);
        if counted {
            match value {
                Some(_) => inner.observe.counters.hits.incr(),
                None => inner.observe.counters.misses.incr(),
            }
        }
        // Final unless the remote tier may still hit (`remote::read` tells).
        // (No listener of gets, the common case: nothing to build.)
        if inner.observe.get_events && counted && (value.is_some() || inner.tiers.remote.is_none())
        {
            let result = if value.is_some() {
                GetResult::Hit
            } else {
                GetResult::Miss
            };
            inner.tell(|events| {
                let key = key.to_key();
                events.get(Call::new(None, &key), result);
            });
        }
        value
    }

    /// Stores `value` under `key` with the cache's default TTL.
    ///
    /// # Cancel safety
    ///
    /// As [`set_with`](Self::set_with).
    pub async fn set<T: Storable>(&self, key: &str, value: T) -> Result<()> {
        self.set_with(key, value, &Policy::new(), std::iter::empty::<&str>())
            .await
    }

    /// Stores `value` under `key` with `policy` (unset options take the cache's
    /// defaults) and `tags`.
    ///
    /// # Cancel safety
    ///
    /// The key leaves this process's memory tier on the first
    /// poll, so a drop midway never leaves it serving the old value: it reads
    /// whatever the remote tier holds (the old value if the write had not
    /// landed, the new one if it had). Other processes drop their copy at their
    /// next confirmation, within about a second, when the message was not sent.
    /// Call it again to be sure of the new value.
    pub async fn set_with<T, I, S>(
        &self,
        key: &str,
        value: T,
        policy: &Policy,
        tags: I,
    ) -> Result<()>
    where
        T: Storable,
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tags: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        let plan = Plan::from_policy(policy, self, true);
        let key_now = Key::manual(key);
        // Out of memory before the remote write: dropped halfway, this
        // process then reads what Redis holds, never its old value.
        if self.inner.tiers.remote.is_some() {
            self.inner.tiers.memory.remove(&key_now.repr);
        }
        let seq = key_writes::reserve(&*self.inner).await;
        self.store_typed(&key_now, value, &plan, &tags).await;
        key_writes::publish(&*self.inner, seq, KeyWrite::Keys(vec![key])).await;
        Ok(())
    }

    /// Writes through both tiers, with the tags' remote versions read first.
    async fn store_typed<T: Storable>(&self, key: &Key, value: T, plan: &Plan, tags: &[String]) {
        let remote_versions = remote_versions(self, tags).await;
        let local = crate::flow::load_snapshot(self, tags, remote_versions.as_deref());
        let shared: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
        let write = Write {
            key,
            plan,
            tags,
            remote_versions,
            local,
            load_millis: 0,
        };
        store_value(self, &value, shared, write).await;
    }

    /// Removes the entry under `key` from every tier; whether there was one.
    ///
    /// # Cancel safety
    ///
    /// The key leaves this process's memory tier on the first
    /// poll; the remote delete may or may not have run when it is dropped
    /// (other processes then drop their copy within about a second). Calling it
    /// again finishes it: it is idempotent.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let name = key;
        let key = Key::manual(key);
        let in_memory = self.inner.tiers.memory.remove(&key.repr);
        let Some(remote) = &self.inner.tiers.remote else {
            return Ok(in_memory);
        };
        let full = key.full(&self.inner.config.namespace);
        let seq = key_writes::reserve(&*self.inner).await;
        let in_remote = remote
            .call(&self.inner.observe.counters, |s| s.delete(&full))
            .await;
        // Told even when the delete failed: others drop a key they may hold.
        key_writes::publish(&*self.inner, seq, KeyWrite::Keys(vec![name])).await;
        Ok(in_memory || in_remote?)
    }

    /// The value under `key`, or the one `load` returns, stored with `policy` and
    /// `tags`. Concurrent calls for one key run `load` once; an `Err` is returned
    /// and not stored; `fail_safe` in `policy` serves an expired value when
    /// `load` fails.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use cache_runtime::{Cache, Policy};
    /// let cache = Cache::memory(100);
    /// let v: Result<u32, String> = cache
    ///     .get_or_load("answer", &Policy::new(), ["numbers"], || async { Ok(42) })
    ///     .await;
    /// assert_eq!(v, Ok(42));
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As a `#[cached]` call: dropping a caller that waits
    /// for another's load leaves that load alone; dropping the caller that runs
    /// `load` drops `load` and hands the key to the next caller (no waiter
    /// hangs), and a distributed lock it held is released in the background.
    pub async fn get_or_load<T, E, I, S, F, Fut>(
        &self,
        key: &str,
        policy: &Policy,
        tags: I,
        load: F,
    ) -> std::result::Result<T, E>
    where
        T: Storable,
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let mut plan = Plan::from_policy(policy, self, false);
        plan.distributed = self.inner.tiers.remote.is_some();
        let tags = || tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        let key = Key::manual(key);
        let step = match begin_with::<AsResult, std::result::Result<T, E>, _>(self, plan, key, tags)
        {
            Begun::Ready(step) => step,
            Begun::Miss(miss) => miss.await,
        };
        match step {
            Step::Hit(r) | Step::Refresh(r, _) => r,
            Step::Load(ticket) => ticket.load(load()).await,
        }
    }

    /// The values under `keys`, in order; `load` is called once with only the
    /// keys that are missing and not already being loaded by a concurrent call
    /// (those are waited for). Keys `load` leaves out are `None` and not stored.
    /// An `Err` from `load` is returned and nothing is stored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::collections::HashMap;
    /// use cache_runtime::{Cache, Policy};
    /// let cache = Cache::memory(100);
    /// cache.set("a", 1u32).await.unwrap();
    /// let got = cache
    ///     .get_many_or_load(&["a", "b"], &Policy::new(), |missing: Vec<String>| async move {
    ///         assert_eq!(missing, vec!["b".to_string()]);
    ///         Ok::<_, String>(HashMap::from([("b".to_string(), 2u32)]))
    ///     })
    ///     .await;
    /// assert_eq!(got, Ok(vec![Some(1), Some(2)]));
    /// # }
    /// ```
    ///
    /// Round trips to the remote tier, whatever the number of keys: one read
    /// of the keys memory missed (as [`get_many`](Self::get_many)), one
    /// `put_many` of what `load` returned; none when memory holds every key.
    /// Each missing key joins this process's single flight: a concurrent
    /// [`get_or_load`](Self::get_or_load) of one of them waits for this
    /// batch's load, and this batch waits for one already running instead
    /// of loading that key. Across processes the keys are not locked (the
    /// distributed lock is per key, so a round trip each): two processes
    /// missing the same keys at once may both load them.
    ///
    /// # Errors
    ///
    /// `load`'s error, with nothing stored. A failing remote tier is not an
    /// error: its read counts as a miss and its write as a fault.
    ///
    /// # Cancel safety
    ///
    /// As [`get_or_load`](Self::get_or_load): dropping it
    /// while `load` runs drops `load` and releases the callers waiting for those
    /// keys (one of them loads next); nothing is stored.
    pub async fn get_many_or_load<T, E, K, F, Fut>(
        &self,
        keys: &[K],
        policy: &Policy,
        load: F,
    ) -> std::result::Result<Vec<Option<T>>, E>
    where
        T: Storable,
        K: AsRef<str>,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = std::result::Result<HashMap<String, T>, E>>,
    {
        let inner = &self.inner;
        let plan = Plan::from_policy(policy, self, false);
        let mut out: Vec<Option<T>> = keys
            .iter()
            .map(|k| self.get_now(&Key::manual(k.as_ref())))
            .collect();
        // Joined before the remote read, as a single load's leader does: a
        // concurrent `get_or_load` of one of these keys waits for this batch.
        let mut led: Vec<(usize, Option<LeadGuard>)> = Vec::new();
        let mut waiting = Vec::new();
        for i in (0..keys.len()).filter(|&i| out[i].is_none()) {
            // Untagged: no invalidation can overtake these loads.
            match inner
                .flights
                .join(&Key::manual(keys[i].as_ref()).repr, Default::default())
            {
                Join::Lead(guard) => led.push((i, Some(guard))),
                Join::Alone => led.push((i, None)),
                Join::Wait(flight) => waiting.push((i, flight)),
            }
        }
        if !led.is_empty() && inner.tiers.remote.is_some() {
            let wanted: Vec<Key> = led
                .iter()
                .map(|(i, _)| Key::manual(keys[*i].as_ref()))
                .collect();
            // One round trip; a remote fault reads as a miss: `load` answers.
            if let Ok(found) = crate::remote::read::read_many::<T>(self, &wanted).await {
                let mut still = Vec::with_capacity(led.len());
                for ((i, guard), value) in led.into_iter().zip(found) {
                    match value {
                        // Promoted to memory by the read: waiters may take it.
                        Some(value) => {
                            if let Some(guard) = guard {
                                guard.complete(Some(Arc::new(value.clone())));
                            }
                            out[i] = Some(value);
                        }
                        None => still.push((i, guard)),
                    }
                }
                led = still;
            }
        }
        if !led.is_empty() {
            let missing: Vec<String> = led
                .iter()
                .map(|(i, _)| keys[*i].as_ref().to_string())
                .collect();
            inner.observe.counters.loads.incr();
            let started = std::time::Instant::now();
            let loaded = load(missing).await;
            let took = started.elapsed();
            let outcome = match &loaded {
                Ok(_) => LoadOutcome::Ok,
                Err(_) => LoadOutcome::Error,
            };
            let batch = Call {
                function: None,
                key: None,
            };
            inner.tell(|events| events.load(batch, took, outcome, false));
            let mut loaded = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    inner.observe.counters.load_errors.incr();
                    crate::warm::record(inner, crate::warm::Outcome::Failed);
                    return Err(e);
                }
            };
            crate::warm::record(inner, crate::warm::Outcome::Loaded);
            let mut items = Vec::new();
            let mut done = Vec::new();
            for (i, guard) in led {
                match loaded.remove(keys[i].as_ref()) {
                    Some(value) => {
                        items.push((keys[i].as_ref().to_string(), value.clone()));
                        out[i] = Some(value);
                        done.push((i, guard));
                    }
                    None => drop(guard),
                }
            }
            let millis = u32::try_from(took.as_millis()).unwrap_or(u32::MAX);
            // A failed write is counted as a fault; the caller still gets its values.
            let _ = self.write_many(items, &plan, millis, false).await;
            // After the write, so a caller who finds no flight finds the entry.
            for (i, guard) in done {
                if let (Some(guard), Some(value)) = (guard, &out[i]) {
                    guard.complete(Some(Arc::new(value.clone())));
                }
            }
        }
        for (i, flight) in waiting {
            inner.observe.counters.coalesced.incr();
            let key = Key::manual(keys[i].as_ref());
            inner.tell(|events| events.coalesced(Call::new(None, &key)));
            let shared = flight.wait().await;
            out[i] = match shared.as_ref().and_then(|s| s.downcast_ref::<T>()) {
                Some(v) => Some(v.clone()),
                // The other load failed or did not have this key: read what is stored.
                None => self.lookup::<T>(&key).await.ok().flatten(),
            };
        }
        Ok(out)
    }
}
