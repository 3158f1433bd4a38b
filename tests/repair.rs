//! What faults leave behind in Redis is repaired, against real servers: a tag
//! version key that disappears (evicted, deleted) never brings back entries
//! invalidated before; one of another type or holding no number is replaced;
//! a lock key that would never expire is taken over at once.

use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::{RedisCluster, RedisServer};
use integration_tests::{command_calls, storage_only, write_through, Calls};

/// Every load returns a number no other load returned: two calls gave the
/// same number iff the second was served from the cache.
static LOADS: Calls = Calls::new();

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn item(cache: &Cache, id: u64) -> usize {
    let _ = id;
    LOADS.hit()
}

fn tag_key(namespace: &str, id: u64) -> String {
    format!("{namespace}#tag:item:{id}")
}

/// A storage-only cache that reads its tags' versions with every hit.
async fn strict(url: &str, namespace: &str) -> Cache {
    Cache::builder()
        .namespace(namespace)
        .redis(url)
        .known_tag_versions(0)
        .build()
        .await
        .expect("connect to the test server")
}

/// The version `server` holds under `key`, which must be a plain number.
fn version_in(server: &RedisServer, key: &str) -> u64 {
    let text = server.cli(&["GET", key]);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{key} holds no version: {text:?}"))
}

/// Loads, invalidates, then deletes the tag key (an eviction does the same):
/// `reader` must not serve the entry loaded before the invalidation.
async fn invalidate_then_lose_the_tag(
    writer: &Cache,
    reader: &Cache,
    id: u64,
    delete: impl FnOnce(),
    what: &str,
) {
    let first = item(writer, id).await;
    assert_eq!(item(writer, id).await, first, "{what}: a hit before");
    writer
        .invalidate_tags([format!("item:{id}")])
        .await
        .unwrap();
    delete();
    let after = item(reader, id).await;
    assert_ne!(
        after, first,
        "{what}: the entry invalidated before its tag key vanished was served"
    );
    assert_eq!(item(reader, id).await, after, "{what}: and a hit again");
}

#[tokio::test]
async fn a_deleted_tag_key_never_brings_back_an_invalidated_entry() {
    let server = RedisServer::start();
    let server = &server;
    let delete = |ns: &str, id| {
        let key = tag_key(ns, id);
        move || assert_eq!(server.cli(&["DEL", &key]).trim(), "1", "{key}")
    };

    let a = storage_only(server, "gone").await;
    invalidate_then_lose_the_tag(&a, &a, 1, delete("gone", 1), "storage-only").await;
    let recreated = version_in(server, &tag_key("gone", 1));
    assert!(
        recreated > 1_000_000_000_000_000,
        "recreated from the server's clock: {recreated}"
    );

    let s = strict(&server.url(), "gone-strict").await;
    invalidate_then_lose_the_tag(&s, &s, 1, delete("gone-strict", 1), "known_tag_versions(0)")
        .await;

    // Once repaired, a hit is one MGET again: the script ran only for the
    // missing key.
    server.cli(&["CONFIG", "RESETSTAT"]);
    item(&s, 1).await;
    let stats = server.cli(&["INFO", "commandstats"]);
    assert_eq!(
        (
            command_calls(&stats, "mget"),
            command_calls(&stats, "evalsha") + command_calls(&stats, "eval")
        ),
        (1, 0),
        "{stats}"
    );

    let w = write_through(server, "gone-wt").await;
    let fresh = write_through(server, "gone-wt").await;
    invalidate_then_lose_the_tag(&w, &fresh, 1, delete("gone-wt", 1), "write-through").await;

    // Bumping a missing key starts from a fresh base too, not from 0 (where
    // `INCR` would climb back through the old versions).
    let before = version_in(server, &tag_key("gone-strict", 1));
    server.cli(&["DEL", &tag_key("gone-strict", 1)]);
    s.invalidate_tags(["item:1"]).await.unwrap();
    assert!(version_in(server, &tag_key("gone-strict", 1)) > before);

    for cache in [&a, &s, &w, &fresh] {
        assert_eq!(cache.stats().store_errors, 0, "a missing key is no fault");
    }
}

/// Corrupts the tag key of `item(id)` with `corrupt`, then checks that
/// nothing loaded before is served, that hits work again once it is
/// repaired, and that invalidation works after the repair. `bump_first`
/// meets the broken key with an invalidation instead of a read.
async fn survives_a_broken_tag_key(
    cache: &Cache,
    id: u64,
    corrupt: impl FnOnce(),
    bump_first: bool,
    what: &str,
) {
    let first = item(cache, id).await;
    assert_eq!(item(cache, id).await, first, "{what}: a hit before");
    let errors = cache.stats().store_errors;
    corrupt();
    if bump_first {
        cache
            .invalidate_tags([format!("item:{id}")])
            .await
            .unwrap_or_else(|e| panic!("{what}: invalidating a broken tag key failed: {e}"));
    }
    let repaired = item(cache, id).await;
    assert_ne!(repaired, first, "{what}: an entry of before was served");
    assert_eq!(item(cache, id).await, repaired, "{what}: hits work again");
    assert_eq!(
        cache.stats().store_errors,
        errors + 1,
        "{what}: the repair is counted once"
    );
    cache
        .invalidate_tags([format!("item:{id}")])
        .await
        .unwrap_or_else(|e| panic!("{what}: invalidation after the repair failed: {e}"));
    let reloaded = item(cache, id).await;
    assert_ne!(reloaded, repaired, "{what}: the invalidation took effect");
    assert_eq!(item(cache, id).await, reloaded, "{what}: and hits again");
}

#[tokio::test]
async fn a_tag_key_of_another_type_or_without_a_number_is_replaced() {
    let server = RedisServer::start();
    let cache = strict(&server.url(), "broken").await;
    let corruptions: [(&str, &[&str]); 4] = [
        ("garbage", &["SET", "{key}", "garbage"]),
        ("a hash", &["HSET", "{key}", "f", "v"]),
        ("a list", &["RPUSH", "{key}", "x"]),
        ("a negative number", &["SET", "{key}", "-3"]),
    ];
    let mut id = 0;
    for (what, command) in corruptions {
        for bump_first in [false, true] {
            id += 1;
            let key = tag_key("broken", id);
            let args: Vec<String> = command.iter().map(|a| a.replace("{key}", &key)).collect();
            let corrupt = || {
                // The key exists (a string): a hash or a list replaces it.
                server.cli(&["DEL", &key]);
                server.cli(&args);
            };
            let what = format!("{what}, bump first: {bump_first}");
            survives_a_broken_tag_key(&cache, id, corrupt, bump_first, &what).await;
            assert_eq!(server.cli(&["TYPE", &key]).trim(), "string", "{what}");
            version_in(&server, &key);
        }
    }

    // The default storage-only cache (versions known in-process) meets the
    // broken key on its invalidation, and on its next read from Redis.
    let known = storage_only(&server, "broken").await;
    id += 1;
    let key = tag_key("broken", id);
    let corrupt = || {
        server.cli(&["DEL", &key]);
        server.cli(&["HSET", &key, "f", "v"]);
    };
    survives_a_broken_tag_key(&known, id, corrupt, true, "known versions, a hash").await;
}

#[cached(cache = cache, key = "locked:{id}", ttl = "1h", lock = "distributed")]
async fn locked(cache: &Cache, id: u64) -> usize {
    let _ = id;
    LOADS.hit()
}

/// The lock key of `locked(id)`'s load in `namespace`.
fn lock_key(namespace: &str, id: u64) -> String {
    format!("{namespace}#load:locked:{id}")
}

/// Calls `locked(id)` while its lock key is broken by `break_lock`: the call
/// must take the lock over instead of waiting out the 10 s bound.
async fn takes_a_broken_lock_over(cache: &Cache, id: u64, break_lock: impl FnOnce(), what: &str) {
    let errors = cache.stats().store_errors;
    break_lock();
    let started = Instant::now();
    let first = locked(cache, id).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "{what}: waited {took:?} for a lock that never expires"
    );
    assert_eq!(
        cache.stats().store_errors,
        errors + 1,
        "{what}: the takeover is counted"
    );
    assert_eq!(
        locked(cache, id).await,
        first,
        "{what}: the load was stored"
    );
}

#[tokio::test]
async fn a_lock_key_without_an_expiry_or_of_another_type_is_taken_over() {
    let server = RedisServer::start();
    for (i, cache) in [
        storage_only(&server, "locks").await,
        write_through(&server, "locks").await,
    ]
    .iter()
    .enumerate()
    {
        let id = 10 * i as u64;
        let key = lock_key("locks", id + 1);
        takes_a_broken_lock_over(
            cache,
            id + 1,
            || {
                server.cli(&["SET", &key, "someone-forever"]);
            },
            "no expiry",
        )
        .await;
        assert_eq!(
            server.cli(&["EXISTS", &key]).trim(),
            "0",
            "taken with our token, so released by us"
        );
        let key = lock_key("locks", id + 2);
        takes_a_broken_lock_over(
            cache,
            id + 2,
            || {
                server.cli(&["RPUSH", &key, "x"]);
                server.cli(&["PEXPIRE", &key, "60000"]);
            },
            "a list",
        )
        .await;
        assert_eq!(server.cli(&["EXISTS", &key]).trim(), "0");
    }

    // A lock that will expire is still waited for: it has a holder.
    let cache = storage_only(&server, "locks").await;
    server.cli(&["SET", "locks#lock:job", "holder", "PX", "60000"]);
    assert!(cache
        .try_lock("job", Duration::from_secs(1))
        .await
        .unwrap()
        .is_none());
    // The lock API takes one without an expiry over too.
    server.cli(&["SET", "locks#lock:job", "holder"]);
    let started = Instant::now();
    let guard = cache
        .lock("job", Duration::from_secs(5), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(guard.release().await.unwrap(), "held with our token");
}

/// Runs one command on the cluster (routed by its key).
async fn on_cluster(cluster: &RedisCluster, args: &[&str]) {
    let mut conn = cluster
        .client()
        .get_async_connection()
        .await
        .expect("connect to the test cluster");
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_repairs_tag_and_lock_keys_in_every_slot() {
    let cluster = RedisCluster::start(3);
    let build = |memory: bool, known: bool| {
        let urls = cluster.urls();
        async move {
            let builder = Cache::builder().namespace("cl").redis_cluster(urls);
            let builder = if memory {
                builder.memory(1000)
            } else {
                builder
            };
            let builder = if known {
                builder
            } else {
                builder.known_tag_versions(0)
            };
            builder.build().await.expect("connect to the test cluster")
        }
    };
    let storage = build(false, true).await;
    let strict = build(false, false).await;
    let wt = build(true, true).await;
    let fresh = build(true, true).await;

    // Deleted tag keys, on whichever node holds each.
    for id in 1..=6 {
        let key = tag_key("cl", id);
        let (writer, reader, what) = match id % 3 {
            0 => (&storage, &storage, "storage-only"),
            1 => (&strict, &strict, "known_tag_versions(0)"),
            _ => (&wt, &fresh, "write-through"),
        };
        let first = item(writer, id).await;
        writer
            .invalidate_tags([format!("item:{id}")])
            .await
            .unwrap();
        on_cluster(&cluster, &["DEL", &key]).await;
        let after = item(reader, id).await;
        assert_ne!(after, first, "{what}, item {id}: an invalidated entry");
        assert_eq!(item(reader, id).await, after, "{what}, item {id}");
    }

    // Broken tag keys: met by a read, or by an invalidation.
    let mut id = 100;
    for corrupt in [
        ["SET", "{key}", "garbage", ""],
        ["HSET", "{key}", "f", "v"],
        ["RPUSH", "{key}", "x", ""],
    ] {
        for bump_first in [false, true] {
            id += 1;
            let key = tag_key("cl", id);
            let args: Vec<String> = corrupt
                .iter()
                .filter(|a| !a.is_empty())
                .map(|a| a.replace("{key}", &key))
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let first = item(&strict, id).await;
            let errors = strict.stats().store_errors;
            on_cluster(&cluster, &["DEL", &key]).await;
            on_cluster(&cluster, &args).await;
            if bump_first {
                strict
                    .invalidate_tags([format!("item:{id}")])
                    .await
                    .unwrap();
            }
            let repaired = item(&strict, id).await;
            assert_ne!(repaired, first, "{args:?}: an entry of before was served");
            assert_eq!(item(&strict, id).await, repaired, "{args:?}: hits again");
            assert_eq!(strict.stats().store_errors, errors + 1, "{args:?}");
            strict
                .invalidate_tags([format!("item:{id}")])
                .await
                .unwrap();
            assert_ne!(item(&strict, id).await, repaired, "{args:?}: invalidated");
        }
    }

    // A lock key without an expiry.
    for id in 1..=3 {
        let key = lock_key("cl", id);
        on_cluster(&cluster, &["SET", &key, "someone-forever"]).await;
        let started = Instant::now();
        let first = locked(&storage, id).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{key}");
        assert_eq!(locked(&storage, id).await, first);
    }
}
