//! Huge durations (`Duration::MAX` and the like) from the user: a TTL, a
//! remote timeout, a breaker's open period, a lock's wait. None may overflow
//! `Instant`/`Duration` arithmetic and panic, and each must still mean what a
//! user asks for: "forever", "no limit".

use std::time::{Duration, Instant};

use cache_runtime::{cached, BreakerState, Cache, Policy};
use integration_tests::redis_harness::RedisServer;
use integration_tests::Calls;
use tokio::time::sleep;

fn forever() -> Policy {
    Policy::ttl(Duration::MAX)
        .stale(Duration::MAX)
        .fail_safe(Duration::MAX)
}

static FOREVER: Calls = Calls::new();
#[cached(cache = cache, key = "forever:{id}", profile = "forever")]
async fn forever_value(cache: &Cache, id: u64) -> u64 {
    FOREVER.hit();
    id + 1
}

/// Redis's remaining TTL of the only key matching `pattern`, in ms.
fn pttl(server: &RedisServer, pattern: &str) -> i64 {
    let keys = server.cli(&["KEYS", pattern]);
    let key = keys.lines().next().expect("the entry is in Redis").trim();
    server.cli(&["PTTL", key]).trim().parse().expect("a PTTL")
}

#[tokio::test]
async fn a_ttl_of_duration_max_is_stored_in_redis_and_served() {
    let server = RedisServer::start();
    for (namespace, memory) in [("forever-storage", false), ("forever-wt", true)] {
        let builder = Cache::builder()
            .namespace(namespace)
            .redis(server.url())
            .default_ttl(Duration::MAX)
            .profile("forever", forever());
        let builder = if memory { builder.memory(100) } else { builder };
        let cache = builder.build().await.unwrap();
        let before = FOREVER.get();
        assert_eq!(forever_value(&cache, 1).await, 2);
        assert_eq!(forever_value(&cache, 1).await, 2);
        assert_eq!(FOREVER.get(), before + 1, "{namespace}: one load");
        let stats = cache.stats();
        assert_eq!(stats.store_errors, 0, "{namespace}: Redis took the entry");
        assert_eq!(stats.hits, 1, "{namespace}");
        // Far in the future, but a TTL Redis accepts: more than 50 years.
        let ttl = pttl(&server, &format!("{namespace}:*"));
        assert!(ttl > 50 * 365 * 24 * 3600 * 1000, "{namespace}: PTTL {ttl}");

        // The manual API takes the same policy.
        cache
            .set_with("manual", 7u32, &forever(), ["t"])
            .await
            .unwrap();
        assert_eq!(cache.get::<u32>("manual").await.unwrap(), Some(7));
        assert_eq!(cache.stats().store_errors, 0, "{namespace}");
    }
}

#[tokio::test]
async fn a_memory_ttl_of_duration_max_holds() {
    let cache = Cache::builder()
        .namespace("forever-memory")
        .memory(100)
        .default_ttl(Duration::MAX)
        .profile("forever", forever())
        .build()
        .await
        .unwrap();
    let before = FOREVER.get();
    for _ in 0..3 {
        assert_eq!(forever_value(&cache, 5).await, 6);
    }
    assert_eq!(FOREVER.get(), before + 1);
    assert_eq!(cache.stats().hits, 2);
}

static TIMED: Calls = Calls::new();
#[cached(cache = cache, ttl = "1h")]
async fn timed(cache: &Cache, x: u64) -> u64 {
    TIMED.hit();
    x * 3
}

#[tokio::test]
async fn a_remote_timeout_of_duration_max_still_completes_calls() {
    let server = RedisServer::start();
    for memory in [false, true] {
        let builder = Cache::builder()
            .namespace(if memory {
                "timeout-wt"
            } else {
                "timeout-storage"
            })
            .redis(server.url())
            .remote_timeout(Duration::MAX);
        let builder = if memory { builder.memory(100) } else { builder };
        let cache = builder.build().await.unwrap();
        let before = TIMED.get();
        assert_eq!(timed(&cache, 2).await, 6);
        assert_eq!(timed(&cache, 2).await, 6);
        assert_eq!(TIMED.get(), before + 1, "memory {memory}: one load");
        assert_eq!(cache.stats().store_errors, 0);
        let health = cache.health().await.expect("a remote tier");
        assert!(health.connected);
    }
}

static BROKEN: Calls = Calls::new();
#[cached(cache = cache, ttl = "1h")]
async fn broken(cache: &Cache, x: u64) -> u64 {
    BROKEN.hit();
    x + 10
}

#[tokio::test]
async fn a_breaker_open_for_a_huge_period_stays_open() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("breaker-max")
        .redis(server.url())
        .remote_timeout(Duration::from_millis(200))
        // 2^60 s: its microseconds wrapped to 0 in a `u64` (`Duration::MAX`'s
        // happen to wrap to `u64::MAX`; the unit tests cover both).
        .breaker(2, Duration::from_secs(1 << 60))
        // No backplane: its subscription coming back would let one probe
        // through early (`Breaker::reconnected`), which is not what this
        // test looks at.
        .known_tag_versions(0)
        .build()
        .await
        .unwrap();
    assert_eq!(broken(&cache, 1).await, 11);
    server.kill();
    let started = Instant::now();
    for i in 0..6 {
        assert_eq!(
            broken(&cache, 100 + i).await,
            110 + i,
            "the function answers"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let health = cache.health().await.unwrap();
    assert_eq!(health.breaker, BreakerState::Open);
    server.restart();
    // Open "forever": no probe goes out, however long we look.
    let errors = cache.stats().store_errors;
    for _ in 0..5 {
        assert_eq!(broken(&cache, 1).await, 11);
        sleep(Duration::from_millis(20)).await;
    }
    let health = cache.health().await.unwrap();
    assert_eq!(health.breaker, BreakerState::Open);
    assert!(!health.connected, "the breaker let nothing through");
    assert!(
        cache.stats().store_errors > errors,
        "skipped calls are counted"
    );
}

#[tokio::test]
async fn a_lock_wait_of_duration_max_waits_for_the_holder() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("lock-max")
        .redis(server.url())
        .build()
        .await
        .unwrap();
    let held = cache
        .lock("job", Duration::from_secs(30), Duration::MAX)
        .await
        .expect("a free lock is taken at once");
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .lock("job", Duration::from_secs(30), Duration::MAX)
                .await
        })
    };
    sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "the lock is held: the waiter waits");
    assert!(held.release().await.unwrap());
    let second = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter takes the released lock")
        .expect("no panic")
        .expect("the lock");
    assert!(second.release().await.unwrap());
}
