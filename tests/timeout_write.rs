//! A `#[cached]` call whose remote read fails (here: a fetch slower than the
//! remote timeout) runs the function and returns its value, and still writes
//! that value through to the store when it can vouch for the versions the
//! entry records: none (an untagged function), or the known-versions
//! table's. A tag whose version was never read is not guessed: that entry
//! is not written. In-process store, tokio's paused clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::store::in_process::{InProcessStore, Op};
use cache_runtime::{cached, Cache};

const TIMEOUT: Duration = Duration::from_millis(100);

/// A process: its cache over its own handle to `backend`, with a backplane
/// (subscribed before this returns, so the known-versions table is trusted).
async fn process(backend: &InProcessStore, memory: bool) -> (Cache, InProcessStore) {
    let handle = backend.connect();
    let builder = Cache::builder()
        .namespace("tw")
        .store(handle.clone())
        .backplane(backend.connect())
        .remote_timeout(TIMEOUT)
        // The breaker is on the wall clock; keep it closed.
        .breaker(1_000, Duration::from_millis(200));
    let builder = if memory { builder.memory(100) } else { builder };
    let cache = builder.build().await.expect("an in-process store connects");
    for _ in 0..1_000 {
        if cache.health().await.and_then(|h| h.backplane) == Some(true) {
            return (cache, handle);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the backplane never subscribed");
}

static LOADS: AtomicU64 = AtomicU64::new(0);

/// Each load returns a new value: what the store holds says which load wrote it.
fn load() -> u64 {
    LOADS.fetch_add(1, Ordering::SeqCst) + 1000
}

#[cached(cache = cache, key = "untagged:{id}", ttl = "1h")]
async fn untagged(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    load()
}

#[cached(cache = cache, key = "grouped:{id}", tags = ["group"], ttl = "1h")]
async fn grouped(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    load()
}

#[cached(cache = cache, key = "unseen:{id}", tags = ["unseen:{id}"], ttl = "1h")]
async fn unseen(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    load()
}

/// What another process reads under `key`: what the store holds.
async fn stored(backend: &InProcessStore, key: &str) -> Option<u64> {
    let (other, _) = process(backend, false).await;
    other
        .get::<u64>(key)
        .await
        .expect("the other process reads")
}

/// The next fetch of `handle` never answers: the call's read times out.
fn time_out_next_read(handle: &InProcessStore) {
    handle.faults().time_out_next_of(Op::Fetch, 1);
}

#[tokio::test(start_paused = true)]
async fn an_untagged_value_is_written_after_the_read_timed_out() {
    for memory in [true, false] {
        let backend = InProcessStore::new();
        let (cache, handle) = process(&backend, memory).await;
        time_out_next_read(&handle);
        let value = untagged(&cache, 1).await;
        assert!(cache.stats().store_errors >= 1, "the read failed");
        assert_eq!(
            stored(&backend, "untagged:1").await,
            Some(value),
            "memory tier: {memory}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_value_whose_tag_versions_are_known_is_written_after_the_read_timed_out() {
    let backend = InProcessStore::new();
    let (cache, handle) = process(&backend, true).await;
    // A read of another key with the same tag: the process learns its version.
    grouped(&cache, 1).await;
    time_out_next_read(&handle);
    let errors = cache.stats().store_errors;
    let value = grouped(&cache, 2).await;
    assert!(cache.stats().store_errors > errors, "the read failed");
    assert_eq!(stored(&backend, "grouped:2").await, Some(value));
    // Written with the tag's current version: an invalidation reaches it.
    cache.invalidate_tags(["group"]).await.expect("invalidates");
    assert_eq!(stored(&backend, "grouped:2").await, None);
}

#[tokio::test(start_paused = true)]
async fn a_value_whose_tag_versions_were_never_read_is_not_written() {
    let backend = InProcessStore::new();
    let (cache, handle) = process(&backend, true).await;
    time_out_next_read(&handle);
    let value = unseen(&cache, 1).await;
    assert!(cache.stats().store_errors >= 1, "the read failed");
    assert_eq!(stored(&backend, "unseen:1").await, None);
    // The caller got the function's value, and memory serves it.
    assert_eq!(unseen(&cache, 1).await, value);
}
