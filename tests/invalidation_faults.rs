//! The contract's "Invalidation across processes" under faults: an
//! invalidation the remote tier did not confirm is in force in the process
//! that made it, queued and retried until Redis has it; a lost backplane
//! message costs other processes at most about a second; a read or a load
//! that an invalidation overtook never hands out what it brought.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::{cached, invalidate, Cache, Error};
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;
use tokio::sync::Semaphore;

/// The "database": one version per test (each test has its own static).
struct Db(AtomicU64);

impl Db {
    const fn new() -> Db {
        Db(AtomicU64::new(1))
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn bump(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

async fn build(server: &RedisServer, ns: &str, memory: bool, timeout: Duration) -> Cache {
    let builder = Cache::builder()
        .namespace(ns)
        .redis(server.url())
        .remote_timeout(timeout)
        .breaker(1_000, Duration::from_millis(200));
    let builder = if memory {
        builder.memory(1000)
    } else {
        builder
    };
    builder.build().await.expect("connect to the test server")
}

static SLOW_REDIS: Db = Db::new();

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn slow_redis_item(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    SLOW_REDIS.get()
}

/// The reproduction from the issue: a read on `x` is in flight on a stalled
/// Redis when `x` invalidates; the read's reply (older than the
/// invalidation) must not make `x` serve the old value afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_in_flight_during_an_invalidation_never_serves_the_old_value_after_it() {
    let server = RedisServer::start();
    let x = build(&server, "racing", true, Duration::from_secs(3)).await;
    let y = build(&server, "racing", true, Duration::from_secs(3)).await;
    assert_eq!(
        slow_redis_item(&y, 1).await,
        1,
        "y stores version 1 in Redis"
    );

    server.freeze();
    let reader = {
        let x = x.clone();
        tokio::spawn(async move { slow_redis_item(&x, 1).await })
    };
    // The reader holds the key's flight (its read of the frozen Redis is
    // under way) once a second caller waits on it.
    let probe = {
        let x = x.clone();
        tokio::spawn(async move { slow_redis_item(&x, 1).await })
    };
    let reading = within!(Duration::from_secs(10), x.stats().coalesced >= 1);
    assert!(
        reading.is_some(),
        "the reader leads a read of the frozen Redis"
    );
    SLOW_REDIS.bump();
    let invalidator = {
        let x = x.clone();
        tokio::spawn(async move { x.invalidate_tags(["item:1"]).await })
    };
    // The invalidation is in force here (counted, its tags pending) before
    // Redis answers the read.
    let started = within!(Duration::from_secs(10), x.stats().invalidations >= 1);
    assert!(started.is_some(), "the invalidation started");
    server.thaw();
    let _ = reader.await.expect("reader");
    // Started before the invalidation: whatever it got is allowed.
    let _ = probe.await.expect("probe");
    invalidator
        .await
        .expect("invalidator")
        .expect("Redis confirmed the invalidation");

    let mut old = 0;
    for _ in 0..100 {
        if slow_redis_item(&x, 1).await < 2 {
            old += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        old, 0,
        "reads after the invalidation returned that got the old value"
    );
}

static FROZEN: Db = Db::new();

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn frozen_item(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    FROZEN.get()
}

/// Redis stops answering during an invalidation: `invalidate_tags` says the
/// invalidation is queued, the invalidating process (write-through and
/// storage-only alike) never serves the old value, and once Redis answers
/// again the queue drains and another process sees it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_invalidation_holds_locally_and_reaches_redis_later() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(150);
    let through = build(&server, "frozen", true, timeout).await;
    let storage = build(&server, "frozen", false, timeout).await;
    let other = build(&server, "frozen", false, Duration::from_secs(2)).await;
    assert_eq!(frozen_item(&through, 1).await, 1);
    assert_eq!(frozen_item(&storage, 1).await, 1, "read back from Redis");

    server.freeze();
    FROZEN.bump();
    for cache in [&through, &storage] {
        // Bounded by the 150 ms remote timeout, not by Redis coming back.
        let error = tokio::time::timeout(Duration::from_secs(2), cache.invalidate_tags(["item:1"]))
            .await
            .expect("invalidate_tags returns while Redis is frozen")
            .expect_err("Redis is frozen");
        assert!(
            matches!(error, Error::InvalidationQueued { tags: 1, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("queued"), "{error}");
        assert!(cache.stats().pending_invalidations >= 1);
        assert_eq!(cache.stats().invalidation_failures, 1);
    }
    // Redis still holds version 1 for `item:1`; neither process serves it.
    for cache in [&through, &storage] {
        assert_eq!(frozen_item(cache, 1).await, 2);
        assert_eq!(frozen_item(cache, 1).await, 2);
    }
    let pending = through.health().await.expect("remote tier");
    assert!(pending.pending_invalidations >= 1, "{pending:?}");

    server.thaw();
    let drained = within!(
        Duration::from_secs(5),
        through.stats().pending_invalidations == 0 && storage.stats().pending_invalidations == 0
    );
    assert!(drained.is_some(), "the queues drained once Redis answered");
    assert_eq!(through.flush_invalidations(Duration::from_secs(1)).await, 0);
    // Another process reads Redis: the invalidation reached it.
    assert_eq!(frozen_item(&other, 1).await, 2);
    // And the invalidating processes cache again.
    let loads = through.stats().loads;
    assert_eq!(frozen_item(&through, 1).await, 2);
    assert_eq!(frozen_item(&through, 1).await, 2);
    assert!(through.stats().loads <= loads + 1);
}

static RESTARTED: Db = Db::new();

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn restarted_item(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    RESTARTED.get()
}

#[invalidate(cache = cache, tags = ["item:{id}"])]
async fn rename(cache: &Cache, id: u64) -> Result<(), String> {
    let _ = id;
    RESTARTED.bump();
    Ok(())
}

/// Redis is killed: `#[invalidate]` returns the function's result, counts
/// the failure and leaves the invalidation queued; it lands after Redis
/// comes back on the same port (the client reconnects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let cache = build(&server, "restart", true, Duration::from_millis(150)).await;
    assert_eq!(restarted_item(&cache, 1).await, 1);
    server.kill();
    assert_eq!(rename(&cache, 1).await, Ok(()));
    assert_eq!(cache.stats().invalidation_failures, 1);
    assert!(cache.stats().pending_invalidations >= 1);
    assert_eq!(restarted_item(&cache, 1).await, 2, "in force here at once");
    server.restart();
    let landed = within!(
        Duration::from_secs(8),
        cache.stats().pending_invalidations == 0
    );
    assert!(
        landed.is_some(),
        "the queued invalidation reached the restarted Redis"
    );
    let version = server.cli(&["GET", "restart#tag:item:1"]);
    assert!(
        version.trim().parse::<u64>().is_ok(),
        "the tag's counter exists again: {version:?}"
    );
}

static LOST: Db = Db::new();

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn lost_item(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    LOST.get()
}

/// An invalidation whose backplane message never came (its sender died
/// between `INCR` and `PUBLISH`): a write-through process drops its memory
/// entry within about a second, not at the entry's TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_leaves_memory_stale_for_about_a_second_at_most() {
    let server = RedisServer::start();
    let cache = build(&server, "lostmsg", true, Duration::from_millis(250)).await;
    assert_eq!(lost_item(&cache, 1).await, 1);
    assert_eq!(lost_item(&cache, 1).await, 1);
    assert!(cache.stats().hits >= 1, "served from memory");
    LOST.bump();
    server.cli(&["INCR", "lostmsg#tag:item:1"]);
    let seen = within!(Duration::from_secs(3), lost_item(&cache, 1).await == 2);
    let seen = seen.expect("the lost invalidation was seen");
    assert!(seen < Duration::from_millis(1300), "seen after {seen:?}");
}

static FLIGHT: Db = Db::new();
static FLIGHT_RUNS: AtomicU64 = AtomicU64::new(0);
/// Holds the first load until the test lets it finish.
static FLIGHT_GATE: Semaphore = Semaphore::const_new(0);

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn slow_item(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    let version = FLIGHT.get();
    if FLIGHT_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        FLIGHT_GATE.acquire().await.unwrap().forget();
    }
    version
}

/// A caller that starts after an invalidation never joins (and is never
/// handed the value of) a load that began before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_overtaken_by_an_invalidation_is_not_joined() {
    let cache = Cache::memory(100);
    let early = {
        let cache = cache.clone();
        tokio::spawn(async move { slow_item(&cache, 1).await })
    };
    // The early load has read version 1 and holds at the gate.
    let running = within!(
        Duration::from_secs(10),
        FLIGHT_RUNS.load(Ordering::SeqCst) == 1
    );
    assert!(running.is_some(), "the early load started");
    FLIGHT.bump();
    cache
        .invalidate_tags(["item:1"])
        .await
        .expect("memory only");
    // The early load is still held: a caller that joined it would hang.
    let late = tokio::time::timeout(Duration::from_secs(5), slow_item(&cache, 1))
        .await
        .expect("the late caller joined the overtaken load");
    assert_eq!(late, 2, "a caller after the invalidation");
    FLIGHT_GATE.add_permits(1);
    assert_eq!(early.await.expect("early caller"), 1);
    assert_eq!(
        slow_item(&cache, 1).await,
        2,
        "the early load was born invalid"
    );
}

static REFUSED: Db = Db::new();

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn refused_item(cache: &Cache, id: u64) -> u64 {
    let _ = id;
    REFUSED.get()
}

/// Redis answers reads but refuses the `INCR` (an ACL change here; a key of
/// another type does the same): until the invalidation lands, the
/// invalidating process does not serve from Redis what it invalidated, in
/// storage-only and write-through mode alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_invalidation_keeps_redis_entries_out_until_it_lands() {
    let server = RedisServer::start_with_acl_user("app", "secret");
    let connect = |memory: bool| {
        let builder = Cache::builder()
            .namespace("refused")
            .redis(server.url())
            .breaker(1_000, Duration::from_millis(200));
        let builder = if memory { builder.memory(100) } else { builder };
        builder.build()
    };
    let storage = connect(false).await.expect("connect");
    let through = connect(true).await.expect("connect");
    assert_eq!(
        refused_item(&storage, 1).await,
        1,
        "stored in Redis at version 1"
    );
    assert_eq!(refused_item(&through, 1).await, 1);
    server.cli(&["ACL", "SETUSER", "app", "-incr"]);
    REFUSED.bump();
    for cache in [&storage, &through] {
        let error = cache.invalidate_tags(["item:1"]).await.expect_err("NOPERM");
        assert!(
            matches!(error, Error::InvalidationQueued { .. }),
            "{error:?}"
        );
    }
    for _ in 0..3 {
        assert_eq!(refused_item(&storage, 1).await, 2, "storage-only");
        assert_eq!(refused_item(&through, 1).await, 2, "write-through");
    }
    server.cli(&["ACL", "SETUSER", "app", "+incr"]);
    let landed = within!(
        Duration::from_secs(5),
        storage.stats().pending_invalidations == 0 && through.stats().pending_invalidations == 0
    );
    assert!(landed.is_some(), "the queued invalidations landed");
    assert_eq!(refused_item(&storage, 1).await, 2);
}
