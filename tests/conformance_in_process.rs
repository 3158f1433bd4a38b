//! The conformance suite against the in-process store (one node, three
//! nodes, paused time with latency), and proof that the suite catches
//! broken stores: wrappers with one flaw each fail the matching check.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::store::in_process::{InProcessNode, InProcessStore};
use cache_runtime::store::*;
use futures_util::FutureExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_store_passes_the_suite() {
    let store = InProcessStore::new();
    conformance::run_all(|| std::future::ready(store.connect())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_store_of_three_nodes_passes_the_suite() {
    let store = InProcessStore::with_nodes(3);
    conformance::run_all(|| std::future::ready(store.connect())).await;
}

/// Under paused time, with latency on every call: TTL waits take no real
/// time, and latency alone breaks no contract.
#[tokio::test(start_paused = true)]
async fn the_suite_runs_under_paused_time_with_latency() {
    let store = InProcessStore::with_nodes(2);
    let started = std::time::Instant::now();
    conformance::run_all(|| {
        let handle = store.connect();
        handle.faults().latency(Duration::from_millis(3));
        std::future::ready(handle)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// One deliberate bug of a [`Flawed`] store.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    /// None: the wrapper passes everything through.
    Sound,
    /// Tag counters start at 1 again once lost (no version clock).
    VersionsRestart,
    /// `extend_lock` and `unlock` do not compare the token.
    LockIgnoresTokens,
    /// `try_lock` always succeeds (no mutual exclusion).
    LockAlwaysGranted,
    /// `bump` answers the current versions without raising them.
    VersionsFrozen,
    /// `fetch` answers the versions in reverse order.
    VersionsOutOfOrder,
    /// `increment` reads, yields, then writes (lost updates).
    IncrementNotAtomic,
    /// A walk ends after its first page.
    ScanFirstPageOnly,
    /// `put` ignores the TTL it is given.
    TtlIgnored,
    /// Each connection's messages stay within that connection.
    BackplaneLocal,
    /// A counter that holds no number reads as 0 (through `fetch` too).
    BrokenCounterReadsZero,
    /// `fetch_batch` answers its requests in reverse order.
    BatchOutOfOrder,
}

/// An in-process store with one flaw; the flaws' own state is shared by
/// every connection of one backend, as a real store's would be.
struct Flawed {
    inner: InProcessStore,
    flaw: Flaw,
    counters: Arc<Mutex<HashMap<String, u64>>>,
    connection: u64,
}

/// A factory of connections to one flawed backend.
fn flawed(flaw: Flaw) -> impl Fn() -> std::future::Ready<Flawed> {
    let base = InProcessStore::new();
    let counters = Arc::default();
    let next = AtomicU64::new(0);
    move || {
        std::future::ready(Flawed {
            inner: base.connect(),
            flaw,
            counters: Arc::clone(&counters),
            connection: next.fetch_add(1, Ordering::Relaxed),
        })
    }
}

impl Flawed {
    fn naive_versions(&self, keys: &[String], bump: bool) -> Vec<u64> {
        let mut counters = self.counters.lock().unwrap();
        keys.iter()
            .map(|key| {
                let n = counters.entry(key.clone()).or_insert(1);
                *n += u64::from(bump);
                *n
            })
            .collect()
    }
}

impl EntryStore for Flawed {
    async fn fetch(&self, request: Fetch<'_>) -> Result<Fetched, StoreError> {
        if self.flaw == Flaw::BrokenCounterReadsZero {
            // Read before the inner fetch repairs the counter.
            let keys: Vec<String> = request.tag_keys().collect();
            let versions = TagStore::versions(self, &keys).await?;
            let fetched = self.inner.fetch(request).await?;
            return Ok(Fetched::new(fetched.entry, versions));
        }
        let mut fetched = self.inner.fetch(request).await?;
        match self.flaw {
            Flaw::VersionsOutOfOrder => fetched.versions.reverse(),
            Flaw::VersionsRestart => {
                let keys: Vec<String> = request.tag_keys().collect();
                fetched.versions = self.naive_versions(&keys, false);
            }
            _ => {}
        }
        Ok(fetched)
    }
    async fn fetch_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.fetch_many(keys).await
    }
    async fn fetch_batch(&self, requests: &[Fetch<'_>]) -> Result<Vec<Fetched>, StoreError> {
        let mut answers = Vec::new();
        for request in requests {
            answers.push(self.fetch(*request).await?);
        }
        if self.flaw == Flaw::BatchOutOfOrder {
            answers.reverse();
        }
        Ok(answers)
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let ttl = match self.flaw {
            Flaw::TtlIgnored => Duration::from_secs(3600),
            _ => ttl,
        };
        self.inner.put(key, bytes, ttl).await
    }
    async fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> Result<(), StoreError> {
        self.inner.put_many(items).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        if self.flaw == Flaw::VersionsRestart {
            // The lost counter is forgotten, and recreated at 1.
            if self.counters.lock().unwrap().remove(key).is_some() {
                return Ok(true);
            }
        }
        self.inner.delete(key).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

impl TagStore for Flawed {
    async fn versions(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        match self.flaw {
            Flaw::VersionsRestart => Ok(self.naive_versions(tag_keys, false)),
            Flaw::BrokenCounterReadsZero => {
                let raw = self.inner.fetch_many(tag_keys).await?;
                let mut versions = Vec::new();
                for (key, bytes) in tag_keys.iter().zip(raw) {
                    versions.push(match bytes.as_deref().map(is_number) {
                        Some(false) => 0,
                        _ => self.inner.versions(std::slice::from_ref(key)).await?[0],
                    });
                }
                Ok(versions)
            }
            _ => self.inner.versions(tag_keys).await,
        }
    }
    async fn bump(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        match self.flaw {
            Flaw::VersionsRestart => Ok(self.naive_versions(tag_keys, true)),
            Flaw::VersionsFrozen => self.inner.versions(tag_keys).await,
            _ => self.inner.bump(tag_keys).await,
        }
    }
}

impl LockStore for Flawed {
    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self.flaw {
            Flaw::LockAlwaysGranted => Ok(true),
            _ => self.inner.try_lock(key, token, ttl).await,
        }
    }
    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self.flaw {
            Flaw::LockIgnoresTokens => {
                Ok(self.inner.fetch_many(&[key.to_string()]).await?[0].is_some())
            }
            _ => self.inner.extend_lock(key, token, ttl).await,
        }
    }
    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        match self.flaw {
            Flaw::LockIgnoresTokens => self.inner.delete(key).await,
            _ => self.inner.unlock(key, token).await,
        }
    }
}

impl CounterStore for Flawed {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        if self.flaw != Flaw::IncrementNotAtomic {
            return self.inner.increment(key, delta).await;
        }
        let old = self.inner.fetch_many(&[key.to_string()]).await?[0]
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok()?.parse::<i64>().ok())
            .unwrap_or(0);
        tokio::task::yield_now().await;
        let new = old + delta;
        let bytes = new.to_string().into_bytes();
        self.inner.put(key, bytes, Duration::from_secs(60)).await?;
        Ok(new)
    }
}

impl ScanStore for Flawed {
    type Node = FlawedNode;
    async fn scan_nodes(&self) -> Result<Vec<FlawedNode>, StoreError> {
        let nodes = self.inner.scan_nodes().await?;
        let flaw = self.flaw;
        Ok(nodes
            .into_iter()
            .map(|inner| FlawedNode { inner, flaw })
            .collect())
    }
}

struct FlawedNode {
    inner: InProcessNode,
    flaw: Flaw,
}

impl ScanNode for FlawedNode {
    async fn scan(
        &self,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let (next, keys) = self.inner.scan(cursor, pattern, count).await?;
        match self.flaw {
            Flaw::ScanFirstPageOnly => Ok((0, keys)),
            _ => Ok((next, keys)),
        }
    }
    async fn unlink(&self, keys: &[String]) -> Result<u64, StoreError> {
        self.inner.unlink(keys).await
    }
}

impl Backplane for Flawed {
    async fn publish(&self, channel: &str, message: Vec<u8>) -> Result<(), StoreError> {
        self.inner.publish(&self.channel(channel), message).await
    }
    async fn subscribe(&self, channel: &str) -> Result<Subscription, StoreError> {
        self.inner.subscribe(&self.channel(channel)).await
    }
}

impl Flawed {
    fn channel(&self, channel: &str) -> String {
        match self.flaw {
            Flaw::BackplaneLocal => format!("{channel}@{}", self.connection),
            _ => channel.to_string(),
        }
    }
}

fn is_number(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.parse::<u64>().is_ok())
}

/// The panic message of `check`, or `None` if it passed.
async fn failure(check: impl Future<Output = ()>) -> Option<String> {
    let payload = AssertUnwindSafe(check).catch_unwind().await.err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

/// Asserts that `check` fails against the store of `flaw`, naming itself.
async fn caught(name: &str, flaw: Flaw, check: impl Future<Output = ()>) {
    let message = failure(check).await;
    let message = message.unwrap_or_else(|| panic!("`{name}` passed a store with {flaw:?}"));
    assert!(
        message.contains(&format!("`{name}`")),
        "`{name}` failed on {flaw:?} without naming itself: {message}"
    );
    println!("{flaw:?} caught: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sound_wrapper_passes_the_suite() {
    conformance::run_all(flawed(Flaw::Sound)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_that_restart_after_a_loss_are_caught() {
    let connect = flawed(Flaw::VersionsRestart);
    caught(
        "versions_survive_loss",
        Flaw::VersionsRestart,
        conformance::versions_survive_loss(&connect),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_ignores_tokens_is_caught() {
    let connect = flawed(Flaw::LockIgnoresTokens);
    caught(
        "lock_tokens",
        Flaw::LockIgnoresTokens,
        conformance::lock_tokens(&connect),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answered_out_of_order_is_caught() {
    let connect = flawed(Flaw::BatchOutOfOrder);
    caught(
        "fetch_batch_as_fetch",
        Flaw::BatchOutOfOrder,
        conformance::fetch_batch_as_fetch(&connect),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_out_of_order_are_caught() {
    let connect = flawed(Flaw::VersionsOutOfOrder);
    caught(
        "fetch_reads_entry_and_versions",
        Flaw::VersionsOutOfOrder,
        conformance::fetch_reads_entry_and_versions(&connect),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_that_is_not_atomic_is_caught() {
    let connect = flawed(Flaw::IncrementNotAtomic);
    caught(
        "increment_concurrent",
        Flaw::IncrementNotAtomic,
        conformance::increment_concurrent(&connect),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_that_stops_early_is_caught() {
    let connect = flawed(Flaw::ScanFirstPageOnly);
    caught(
        "scan_glob_forms",
        Flaw::ScanFirstPageOnly,
        conformance::scan_glob_forms(&connect),
    )
    .await;
    caught(
        "scan_during_changes",
        Flaw::ScanFirstPageOnly,
        conformance::scan_during_changes(&connect),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_ttl_that_is_ignored_is_caught() {
    let connect = flawed(Flaw::TtlIgnored);
    caught(
        "entry_expires",
        Flaw::TtlIgnored,
        conformance::entry_expires(&connect),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backplane_that_stays_in_one_connection_is_caught() {
    let connect = flawed(Flaw::BackplaneLocal);
    caught(
        "publish_reaches_other_connection",
        Flaw::BackplaneLocal,
        conformance::publish_reaches_other_connection(&connect),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_counter_read_as_zero_is_caught() {
    let connect = flawed(Flaw::BrokenCounterReadsZero);
    caught(
        "broken_counter_replaced",
        Flaw::BrokenCounterReadsZero,
        conformance::broken_counter_replaced(&connect),
    )
    .await;
}

/// The full suite stops at the first broken contract, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_suite_names_the_first_broken_check() {
    let message = failure(conformance::run(flawed(Flaw::LockIgnoresTokens))).await;
    let message = message.expect("the suite passed a store whose locks ignore tokens");
    assert!(message.contains("`lock_tokens`"), "{message}");
}

/// The cross-process checks through two caches on the in-process store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caches_on_the_in_process_store_pass_the_cache_checks() {
    let store = InProcessStore::with_nodes(2);
    conformance::run_cache(|| std::future::ready(store.connect())).await;
}

/// With every backplane message lost, an invalidation still reaches the
/// other cache within the bound (by confirmation of the tag's version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_is_seen_elsewhere_with_every_message_lost() {
    let store = InProcessStore::new();
    conformance::cache_invalidation_seen_elsewhere(&|| {
        let handle = store.connect();
        handle.faults().drop_messages(u64::MAX);
        std::future::ready(handle)
    })
    .await;
    conformance::cache_versions_monotonic(&|| {
        let handle = store.connect();
        handle.faults().drop_messages(u64::MAX);
        std::future::ready(handle)
    })
    .await;
}

/// A lock that excludes nobody lets both caches load: the cache-level
/// check of one load across instances catches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_excludes_nobody_is_caught_through_the_cache() {
    let connect = flawed(Flaw::LockAlwaysGranted);
    caught(
        "cache_loads_once_across_instances",
        Flaw::LockAlwaysGranted,
        conformance::cache_loads_once_across_instances(&connect),
    )
    .await;
}

/// A bump that hands out the version already read: the value loaded
/// across it is served afterwards, and the cache-level check catches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_that_do_not_move_are_caught_through_the_cache() {
    let connect = flawed(Flaw::VersionsFrozen);
    caught(
        "cache_versions_monotonic",
        Flaw::VersionsFrozen,
        conformance::cache_versions_monotonic(&connect),
    )
    .await;
}
