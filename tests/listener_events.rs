//! One `on_get` event per call, whatever the call found, in each mode:
//! memory-only, storage-only and write-through (Redis from the harness).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::events::{Get, GetResult, Invalidate, Listener};
use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::RedisServer;

/// Calls per phase (misses, then hits, then stale hits).
const CALLS: u64 = 20;
/// Entries are fresh this long, then stale for an hour.
const TTL: Duration = Duration::from_secs(1);
/// The tag whose invalidation marks the end of the calls: events arrive in
/// order, so once the listener has it, it has every event before it.
const MARKER: &str = "listener-events-marker";

/// Counts get events by result, and notes the marker.
#[derive(Default)]
struct Gets {
    hits: AtomicU64,
    stale: AtomicU64,
    misses: AtomicU64,
    marked: AtomicBool,
}

impl Gets {
    fn counts(&self) -> (u64, u64, u64) {
        (
            self.misses.load(Ordering::SeqCst),
            self.hits.load(Ordering::SeqCst),
            self.stale.load(Ordering::SeqCst),
        )
    }
}

struct Counting(Arc<Gets>);

impl Listener for Counting {
    fn on_get(&self, event: &Get<'_>) {
        let counter = match event.result {
            GetResult::Hit => &self.0.hits,
            GetResult::Stale => &self.0.stale,
            _ => &self.0.misses,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn on_invalidate(&self, event: &Invalidate<'_>) {
        if event.tags.iter().any(|t| t == MARKER) {
            self.0.marked.store(true, Ordering::SeqCst);
        }
    }
}

#[cached(name = "listener_events::square", cache = cache, ttl = "1s", stale = "1h")]
async fn square(cache: &Cache, n: u64) -> u64 {
    n * n
}

/// The counts once every event of the calls before has been delivered.
async fn settled(cache: &Cache, gets: &Gets) -> (u64, u64, u64) {
    cache.invalidate_tags([MARKER]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gets.marked.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the marker event never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gets.marked.store(false, Ordering::SeqCst);
    gets.counts()
}

/// Misses, hits and stale hits: exactly one get event for each call.
async fn one_event_per_call(cache: Cache, gets: Arc<Gets>, mode: &str) {
    for n in 0..CALLS {
        assert_eq!(square(&cache, n).await, n * n);
    }
    assert_eq!(
        settled(&cache, &gets).await,
        (CALLS, 0, 0),
        "{mode}: misses"
    );
    for n in 0..CALLS {
        assert_eq!(square(&cache, n).await, n * n);
    }
    assert_eq!(
        settled(&cache, &gets).await,
        (CALLS, CALLS, 0),
        "{mode}: hits"
    );
    // Time passing, not synchronisation: the entries turn stale.
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    for n in 0..CALLS {
        assert_eq!(square(&cache, n).await, n * n);
    }
    assert_eq!(
        settled(&cache, &gets).await,
        (CALLS, CALLS, CALLS),
        "{mode}: stale hits"
    );
}

fn builder(gets: &Arc<Gets>, namespace: &str) -> cache_runtime::CacheBuilder {
    Cache::builder()
        .namespace(namespace)
        .listener(Counting(gets.clone()))
}

#[tokio::test]
async fn memory_only_one_get_event_per_call() {
    let gets = Arc::new(Gets::default());
    let cache = builder(&gets, "le_memory")
        .memory(1000)
        .build()
        .await
        .unwrap();
    one_event_per_call(cache, gets, "memory-only").await;
}

#[tokio::test]
async fn storage_only_one_get_event_per_call() {
    let server = RedisServer::start();
    let gets = Arc::new(Gets::default());
    let cache = builder(&gets, "le_storage")
        .redis(server.url())
        .build()
        .await
        .unwrap();
    one_event_per_call(cache, gets, "storage-only").await;
}

#[tokio::test]
async fn write_through_one_get_event_per_call() {
    let server = RedisServer::start();
    let gets = Arc::new(Gets::default());
    let cache = builder(&gets, "le_write_through")
        .memory(1000)
        .redis(server.url())
        .build()
        .await
        .unwrap();
    one_event_per_call(cache, gets, "write-through").await;
}
