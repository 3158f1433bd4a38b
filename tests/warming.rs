//! `Cache::warm`: exact summaries, bounded concurrency, no effect on the hit
//! ratio, and entries that a second cache on the same Redis sees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::{cached, Cache, Policy, WarmSummary};
use integration_tests::redis_harness::RedisServer;
use integration_tests::{within, write_through, Calls};
use tokio::sync::Semaphore;

static USERS: Calls = Calls::new();

/// Ids 91 and up fail; 50 panics.
#[cached(cache = cache, key = "user:{id}", ttl = "1h")]
async fn user(cache: &Cache, id: u64) -> Result<String, String> {
    USERS.hit();
    match id {
        50 => panic!("user 50 panics"),
        91.. => Err(format!("no user {id}")),
        _ => Ok(format!("user {id}")),
    }
}

#[tokio::test]
async fn the_summary_counts_a_mix_exactly_and_stats_are_untouched() {
    let cache = Cache::memory(1_000);
    for id in 1..=10 {
        user(&cache, id).await.unwrap();
    }
    let before = cache.stats();
    assert_eq!((before.misses, before.loads), (10, 10));
    let runs = USERS.get();

    let summary = cache.warm(1..=100, 8, |id| user(&cache, id)).await;
    assert_eq!(
        (summary.loaded, summary.fresh, summary.failed),
        (79, 10, 11),
        "1-10 cached, 50 panics, 91-100 fail: {summary:?}"
    );
    assert_eq!(summary.total(), 100);
    assert_eq!(USERS.get() - runs, 90, "cached inputs do not run");

    let after = cache.stats();
    assert_eq!(
        (
            after.hits,
            after.misses,
            after.stale_hits,
            after.remote_hits
        ),
        (
            before.hits,
            before.misses,
            before.stale_hits,
            before.remote_hits
        ),
        "warming is not user traffic"
    );
    assert_eq!(after.warmed, 100);
    assert_eq!(after.loads, before.loads + 90);
    assert_eq!(after.load_errors, before.load_errors + 11);

    // Users now hit what was warmed.
    let runs = USERS.get();
    for id in 11..=49 {
        assert_eq!(user(&cache, id).await.unwrap(), format!("user {id}"));
    }
    assert_eq!(USERS.get(), runs, "served from the cache");
    assert_eq!(cache.stats().hits, before.hits + 39);
    assert_eq!(cache.stats().misses, before.misses);
}

// Paused time: each load's 2 ms pass only once every running load waits on
// its timer, so as many loads overlap as the bound lets start.
#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_zero_means_one() {
    let cache = Cache::memory(1_000);
    for (asked, bound) in [(4, 4), (0, 1)] {
        let now = AtomicUsize::new(0);
        let max = AtomicUsize::new(0);
        let summary = cache
            .warm(0..40u32, asked, |i| {
                let (now, max, cache) = (&now, &max, &cache);
                async move {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(running, Ordering::SeqCst);
                    let key = format!("n{asked}:{i}");
                    let got: Result<u32, String> = cache
                        .get_or_load(&key, &Policy::new(), [""; 0], || async move {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            Ok(i)
                        })
                        .await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    got
                }
            })
            .await;
        assert_eq!(summary.loaded, 40, "{summary:?}");
        assert_eq!(max.load(Ordering::SeqCst), bound, "concurrency {asked}");
    }
    assert_eq!(cache.stats().misses, 0);
    assert_eq!(cache.stats().warmed, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_calls_during_a_warm_run_still_count() {
    let cache = Cache::memory(1_000);
    // The warm run's loads hold here until the user's calls are done.
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let warming = {
        let (cache, gate, started) = (cache.clone(), gate.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .warm(0..20u32, 2, |i| {
                    let (cache, gate, started) = (cache.clone(), gate.clone(), started.clone());
                    async move {
                        let got: Result<u32, String> = cache
                            .get_or_load(&format!("w{i}"), &Policy::new(), [""; 0], || async move {
                                started.fetch_add(1, Ordering::SeqCst);
                                gate.acquire().await.unwrap().forget();
                                Ok(i)
                            })
                            .await;
                        got
                    }
                })
                .await
        })
    };
    // The warm run is under way (its first loads wait at the gate):
    // meanwhile, user misses on other keys.
    let under_way = within!(Duration::from_secs(10), started.load(Ordering::SeqCst) == 2);
    assert!(under_way.is_some(), "the warm run started");
    for i in 0..10 {
        assert_eq!(cache.get::<u32>(&format!("user{i}")).await.unwrap(), None);
    }
    gate.add_permits(20);
    let summary = warming.await.unwrap();
    assert_eq!(summary.loaded, 20);
    let stats = cache.stats();
    assert_eq!(stats.misses, 10, "the user's calls, not the warm run's");
    assert_eq!(stats.warmed, 20);
}

#[tokio::test]
async fn the_summary_serializes() {
    let cache = Cache::memory(10);
    let summary: WarmSummary = cache.warm(Vec::<u32>::new(), 4, |_| async {}).await;
    assert_eq!(summary.total(), 0);
    let json = serde_json::to_value(summary).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["elapsed_ms", "failed", "fresh", "loaded"]);
    assert!(json["elapsed_ms"].is_f64());
}

static SHARED: Calls = Calls::new();

#[cached(cache = cache, key = "item:{id}", ttl = "1h")]
async fn item(cache: &Cache, id: u64) -> u64 {
    SHARED.hit();
    id * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warmed_write_through_cache_fills_redis_for_others() {
    let server = RedisServer::start();
    let a = write_through(&server, "warm-shared").await;
    let b = write_through(&server, "warm-shared").await;

    let summary = a.warm(1..=50, 8, |id| item(&a, id)).await;
    assert_eq!((summary.loaded, summary.fresh, summary.failed), (50, 0, 0));
    assert_eq!(SHARED.get(), 50);
    assert!(server.dbsize() >= 50, "entries in Redis");

    // The second cache finds them in Redis: fresh, no load, and its memory
    // tier is filled on the way.
    let summary = b.warm(1..=50, 8, |id| item(&b, id)).await;
    assert_eq!((summary.loaded, summary.fresh, summary.failed), (0, 50, 0));
    assert_eq!(SHARED.get(), 50);
    let stats = b.stats();
    assert_eq!((stats.hits, stats.misses, stats.remote_hits), (0, 0, 0));
    assert_eq!(b.memory_len(), 50);
    // And users of either hit memory.
    assert_eq!(item(&b, 7).await, 70);
    assert_eq!(item(&a, 8).await, 80);
    assert_eq!(SHARED.get(), 50);
    assert_eq!(b.stats().hits, 1);
    assert_eq!(a.stats().hits, 1);
}
