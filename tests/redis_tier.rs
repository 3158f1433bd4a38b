//! The remote tier against real `redis-server` processes started by the
//! harness: shared entries, the three modes, tags across instances, faults.

use std::time::{Duration, Instant};

use cache_runtime::{cached, BreakerState, Cache, Policy};
use integration_tests::redis_harness::RedisServer;
use integration_tests::{command_calls, not_connected_because, storage_only, write_through, Calls};
use tokio::time::sleep;

static SHARED: Calls = Calls::new();
#[cached(cache = cache, key = "user:{id}", tags = ["user:{id}", "users"], ttl = "1h")]
async fn user(cache: &Cache, id: u64) -> String {
    let n = SHARED.hit();
    format!("user {id} load {n}")
}

#[tokio::test]
async fn storage_only_instances_share_entries_and_invalidations() {
    let server = RedisServer::start();
    let a = storage_only(&server, "shared").await;
    let b = storage_only(&server, "shared").await;
    let first = user(&a, 1).await;
    assert_eq!(user(&b, 1).await, first, "b reads a's entry from Redis");
    assert_eq!(SHARED.get(), 1);
    assert_eq!(a.memory_len(), 0, "storage-only keeps nothing in memory");
    assert_eq!(b.stats().remote_hits, 1);

    a.invalidate_tags(["users"]).await.unwrap();
    assert_ne!(
        user(&a, 1).await,
        first,
        "a sees its own invalidation at once"
    );
    assert_eq!(SHARED.get(), 2);
    // b knows the tags' versions; the backplane's message raises them.
    let started = Instant::now();
    let second = loop {
        let seen = user(&b, 1).await;
        if seen != first {
            break seen;
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "b still serves the invalidated entry"
        );
        sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(SHARED.get(), 2, "b reads the entry a loaded again");
    assert_eq!(user(&a, 1).await, second);
}

static STRICT: Calls = Calls::new();
#[cached(cache = cache, key = "strict:{id}", tags = ["strict:{id}"], ttl = "1h")]
async fn strict(cache: &Cache, id: u64) -> usize {
    let _ = id;
    STRICT.hit()
}

#[tokio::test]
async fn without_known_versions_another_instance_sees_an_invalidation_at_once() {
    let server = RedisServer::start();
    let strict_cache = || async {
        Cache::builder()
            .namespace("strict")
            .redis(server.url())
            .known_tag_versions(0)
            .build()
            .await
            .unwrap()
    };
    let (a, b) = (strict_cache().await, strict_cache().await);
    assert_eq!(strict(&a, 1).await, 0);
    assert_eq!(strict(&b, 1).await, 0);
    a.invalidate_tags(["strict:1"]).await.unwrap();
    assert_eq!(
        strict(&b, 1).await,
        1,
        "b reads the tag's version with the entry"
    );
    assert_eq!(
        b.health().await.unwrap().backplane,
        None,
        "no pub/sub needed"
    );
}

static WT: Calls = Calls::new();
#[cached(cache = cache, ttl = "1h")]
async fn square(cache: &Cache, x: u64) -> u64 {
    WT.hit();
    x * x
}

#[tokio::test]
async fn write_through_reads_memory_then_redis_then_the_function() {
    let server = RedisServer::start();
    let a = write_through(&server, "wt").await;
    let b = write_through(&server, "wt").await;
    assert_eq!(square(&a, 12).await, 144);
    assert_eq!(WT.get(), 1);
    assert_eq!(square(&b, 12).await, 144, "from Redis");
    assert_eq!(b.stats().remote_hits, 1);
    assert_eq!(square(&b, 12).await, 144, "now from b's memory");
    assert_eq!(b.stats().remote_hits, 1);
    assert_eq!(b.stats().hits, 2);
    assert_eq!(WT.get(), 1);
    assert_eq!(server.dbsize(), 1, "one entry in Redis");
}

#[cached(cache = cache, key = "profile:{id}", tags = ["user:{id}", "users"], ttl = "1h")]
async fn profile(cache: &Cache, id: u64) -> String {
    format!("profile {id}")
}

#[tokio::test]
async fn a_storage_only_hit_with_two_tags_is_one_get_once_their_versions_are_known() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "rt").await;
    // The miss reads the tags' versions (and this process learns them).
    profile(&cache, 77).await;
    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..10 {
        assert_eq!(profile(&cache, 77).await, "profile 77");
    }
    let stats = server.cli(&["INFO", "commandstats"]);
    // Versions are confirmed again after a second: on a slow machine, one
    // of the ten hits may have read them with its entry.
    assert!(command_calls(&stats, "mget") <= 1, "{stats}");
    assert_eq!(
        command_calls(&stats, "get") + command_calls(&stats, "mget"),
        10,
        "{stats}"
    );
    assert_eq!(
        command_calls(&stats, "set") + command_calls(&stats, "evalsha"),
        0,
        "{stats}"
    );
}

#[tokio::test]
async fn without_known_versions_a_hit_with_two_tags_is_one_mget() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("rt")
        .redis(server.url())
        .known_tag_versions(0)
        .build()
        .await
        .unwrap();
    profile(&cache, 77).await;
    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..10 {
        assert_eq!(profile(&cache, 77).await, "profile 77");
    }
    let stats = server.cli(&["INFO", "commandstats"]);
    assert_eq!(command_calls(&stats, "mget"), 10, "{stats}");
    assert_eq!(
        command_calls(&stats, "get")
            + command_calls(&stats, "set")
            + command_calls(&stats, "evalsha"),
        0,
        "{stats}"
    );
}

static SLOW: Calls = Calls::new();
#[cached(cache = cache, key = "report", tags = ["report"])]
async fn slow_report(cache: &Cache) -> usize {
    let n = SLOW.hit();
    sleep(Duration::from_millis(300)).await;
    n
}

#[tokio::test]
async fn an_invalidation_during_a_load_in_another_instance_is_not_lost() {
    let server = RedisServer::start();
    let a = storage_only(&server, "race").await;
    let b = storage_only(&server, "race").await;
    let load = {
        let a = a.clone();
        tokio::spawn(async move { slow_report(&a).await })
    };
    sleep(Duration::from_millis(100)).await;
    b.invalidate_tags(["report"]).await.unwrap();
    assert_eq!(load.await.unwrap(), 0);
    assert_eq!(
        slow_report(&b).await,
        1,
        "the entry a wrote was born invalid"
    );
    assert_eq!(slow_report(&a).await, 1);
}

static FAULTS: Calls = Calls::new();
#[cached(cache = cache, ttl = "1h")]
async fn faulty(cache: &Cache, x: u64) -> u64 {
    FAULTS.hit();
    x + 1
}

#[tokio::test]
async fn calls_answer_while_redis_is_down_and_use_it_again_after_a_restart() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("down")
        .redis(server.url())
        .remote_timeout(Duration::from_millis(200))
        .breaker(2, Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    assert_eq!(faulty(&cache, 1).await, 2);
    server.kill();
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(faulty(&cache, 1).await, 2, "the function answers");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(cache.stats().store_errors >= 2);
    assert_eq!(cache.health().await.map(|h| h.connected), Some(false));

    server.restart();
    let back = Instant::now();
    loop {
        let before = FAULTS.get();
        faulty(&cache, 5).await;
        faulty(&cache, 5).await;
        if FAULTS.get() == before + 1 {
            break; // stored, then served from Redis again
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "Redis was not used again"
        );
        sleep(Duration::from_millis(100)).await;
    }
    let health = cache.health().await.unwrap();
    assert!(health.connected);
    assert_eq!(health.breaker, BreakerState::Closed);
}

#[tokio::test]
async fn calls_answer_within_two_seconds_while_redis_is_frozen() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "frozen").await;
    assert_eq!(faulty(&cache, 100).await, 101);
    server.freeze();
    let started = Instant::now();
    for i in 0..3 {
        assert_eq!(faulty(&cache, 200 + i).await, 201 + i);
    }
    let elapsed = started.elapsed();
    server.thaw();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(cache.stats().store_errors >= 1);
}

static GARBAGE: Calls = Calls::new();
#[cached(cache = cache, key = "g:{x}")]
async fn garbage(cache: &Cache, x: u64) -> u64 {
    GARBAGE.hit();
    x
}

#[tokio::test]
async fn garbage_bytes_and_wrongly_typed_keys_are_misses() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "junk").await;
    server.cli(&["SET", "junk:g:1", "\u{1}\u{2}not an entry"]);
    server.cli(&["RPUSH", "junk:g:2", "a", "b"]);
    assert_eq!(garbage(&cache, 1).await, 1);
    assert_eq!(garbage(&cache, 2).await, 2);
    assert_eq!(GARBAGE.get(), 2);
    assert!(cache.stats().decode_errors >= 1);
    // Both keys were overwritten by the loads: now they hit.
    assert_eq!(garbage(&cache, 1).await, 1);
    assert_eq!(garbage(&cache, 2).await, 2);
    assert_eq!(GARBAGE.get(), 2);
    assert_eq!(server.cli(&["TYPE", "junk:g:2"]).trim(), "string");
}

#[tokio::test]
async fn a_wrong_password_starts_degraded_with_a_clear_reason_without_the_password() {
    let server = RedisServer::start_with_password("s3cr3t-pw");
    let wrong = format!("redis://:wrong-pw@127.0.0.1:{}/", server.port());
    let cache = Cache::builder().redis(wrong).build().await.unwrap();
    let text = not_connected_because(&cache).await;
    assert!(
        !text.contains("wrong-pw") && !text.contains("s3cr3t-pw"),
        "{text}"
    );
    assert!(text.contains("authentication failed"), "{text}");
    let ok = Cache::builder().redis(server.url()).build().await;
    assert!(ok.is_ok(), "{:?}", ok.err());

    let acl = RedisServer::start_with_acl_user("app", "acl-pw");
    let cache = Cache::builder()
        .namespace("acl")
        .redis(acl.url())
        .build()
        .await
        .unwrap();
    assert_eq!(faulty(&cache, 9).await, 10);
}

#[tokio::test]
async fn an_unreachable_server_starts_degraded_with_a_clear_reason() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let cache = Cache::builder().redis(url).build().await.unwrap();
    let text = not_connected_because(&cache).await;
    assert!(text.contains("refused"), "{text}");
}

#[tokio::test]
async fn the_manual_api_goes_through_redis() {
    let server = RedisServer::start();
    let a = write_through(&server, "manual").await;
    let b = storage_only(&server, "manual").await;
    a.set_with(
        "k",
        "v".to_string(),
        &Policy::ttl(Duration::from_secs(60)),
        ["t"],
    )
    .await
    .unwrap();
    assert_eq!(b.get::<String>("k").await.unwrap(), Some("v".into()));
    b.invalidate_tags(["t"]).await.unwrap();
    assert_eq!(
        b.get::<String>("k").await.unwrap(),
        None,
        "invalidated in Redis"
    );
    b.set("k2", 5u32).await.unwrap();
    assert_eq!(a.get::<u32>("k2").await.unwrap(), Some(5));
    assert!(b.delete("k2").await.unwrap());
    assert_eq!(b.get::<u32>("k2").await.unwrap(), None);
    assert_eq!(
        b.get_many::<u32, _>(&["k2", "nope"]).await.unwrap(),
        vec![None, None]
    );
}

static BP: Calls = Calls::new();
#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn item(cache: &Cache, id: u64) -> usize {
    BP.hit()
}

#[tokio::test]
async fn write_through_invalidations_reach_other_memory_tiers_within_500ms() {
    let server = RedisServer::start();
    let a = write_through(&server, "bp").await;
    let b = write_through(&server, "bp").await;
    let first = item(&a, 1).await;
    assert_eq!(
        item(&b, 1).await,
        first,
        "b has it (from Redis, now in memory)"
    );
    assert_eq!(item(&b, 1).await, first, "b's memory hit");
    assert_eq!(b.stats().hits, 2);

    a.invalidate_tags(["item:1"]).await.unwrap();
    let started = Instant::now();
    loop {
        if item(&b, 1).await != first {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "b's memory tier still serves the invalidated entry"
        );
        sleep(Duration::from_millis(10)).await;
    }
}

static DISTRUST: Calls = Calls::new();
#[cached(cache = cache, key = "d:{id}", ttl = "1h")]
async fn distrusted(cache: &Cache, id: u64) -> usize {
    DISTRUST.hit()
}

#[tokio::test]
async fn after_a_backplane_disconnect_memory_is_not_trusted() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("distrust")
        .memory(100)
        .redis(server.url())
        .remote_timeout(Duration::from_millis(200))
        // No outage grace: memory goes unused as soon as Redis is gone
        // (tests/availability.rs tests the grace).
        .outage_grace(Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert_eq!(distrusted(&cache, 1).await, 0);
    assert_eq!(distrusted(&cache, 1).await, 0, "memory hit");
    server.kill();
    sleep(Duration::from_millis(300)).await;
    // Memory still holds the entry, but invalidations could be missed now:
    // the function runs rather than serve it.
    assert_eq!(distrusted(&cache, 1).await, 1);
    server.restart();
    let started = Instant::now();
    loop {
        let before = cache.stats();
        let x = distrusted(&cache, 2).await;
        let y = distrusted(&cache, 2).await;
        let after = cache.stats();
        let memory_hit = after.hits > before.hits && after.remote_hits == before.remote_hits;
        if x == y && memory_hit {
            break; // resubscribed: memory is trusted again
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "memory never trusted again"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

static TLS: Calls = Calls::new();
#[cached(cache = cache, key = "tls:{x}", ttl = "1h")]
async fn over_tls(cache: &Cache, x: u64) -> u64 {
    TLS.hit();
    x * 3
}

#[tokio::test]
async fn rediss_connections_work_with_the_servers_ca() {
    let server = RedisServer::start_tls();
    let connect = || {
        Cache::builder()
            .namespace("tls")
            .memory(10)
            .redis(server.tls_url())
            .redis_tls_root_ca(server.ca_pem())
            .remote_timeout(Duration::from_secs(2))
    };
    let a = connect().build().await.expect("TLS with the test CA");
    let b = connect().build().await.expect("TLS with the test CA");
    assert_eq!(over_tls(&a, 5).await, 15);
    assert_eq!(over_tls(&b, 5).await, 15, "shared over TLS");
    assert_eq!(TLS.get(), 1);
    assert!(a.health().await.unwrap().connected);

    // Without the CA, the self-signed chain is not trusted: not connected,
    // with a clear reason.
    let untrusted = Cache::builder()
        .redis(server.tls_url())
        .build()
        .await
        .unwrap();
    let text = not_connected_because(&untrusted).await;
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

static FEED: Calls = Calls::new();
#[cached(cache = cache, key = "feed:{id}", tags = ["feed:{id}"], ttl = "1s", stale = "1h")]
async fn feed(cache: &Cache, id: u64) -> usize {
    let _ = id;
    FEED.hit()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_only_stale_refresh_keeps_the_entry_tags() {
    let server = RedisServer::start();
    let a = storage_only(&server, "stale").await;
    assert_eq!(feed(&a, 1).await, 0);
    sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        feed(&a, 1).await,
        0,
        "past its TTL: the stale value at once"
    );
    // The background refresh writes load 1 (or, on a machine slow enough
    // for that entry to go stale too, a later load: never 0 again).
    let started = Instant::now();
    while feed(&a, 1).await < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refresh never landed"
        );
        sleep(Duration::from_millis(20)).await;
    }
    // The refreshed entry still carries its tag: invalidating it is a miss.
    let loads = FEED.get();
    a.invalidate_tags(["feed:1"]).await.unwrap();
    assert_eq!(feed(&a, 1).await, loads, "invalidated: loaded again");
}
