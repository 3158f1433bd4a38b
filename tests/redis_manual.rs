//! The manual API on a real Redis (standalone and cluster): batch reads and
//! writes, atomic counters, deletion by pattern.

use std::time::Duration;

use cache_runtime::{Cache, Policy};
use integration_tests::redis_harness::{RedisCluster, RedisServer};

async fn exercise(a: Cache, b: Cache) {
    // set_many in one pipeline, get_many across instances, tags honoured.
    a.set_many([("m:1", 1u32), ("m:2", 2), ("m:3", 3)], &Policy::new())
        .await
        .unwrap();
    a.set_with("m:4", 4u32, &Policy::ttl(Duration::from_secs(60)), ["four"])
        .await
        .unwrap();
    assert_eq!(
        b.get_many::<u32, _>(&["m:1", "m:2", "nope", "m:3", "m:4"])
            .await
            .unwrap(),
        vec![Some(1), Some(2), None, Some(3), Some(4)]
    );
    a.invalidate_tags(["four"]).await.unwrap();
    assert_eq!(
        a.get_many::<u32, _>(&["m:4", "m:1"]).await.unwrap(),
        vec![None, Some(1)],
        "an invalidated entry is not returned"
    );

    // Atomic counters across instances.
    let mut tasks = Vec::new();
    for cache in [a.clone(), b.clone()] {
        for _ in 0..25 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                cache.increment("hits", 2).await.unwrap()
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(b.counter("hits").await.unwrap(), 100);
    assert_eq!(a.decrement("hits", 30).await.unwrap(), 70);

    // Pattern deletion stays inside the namespace and treats [ ] ? literally.
    a.set("user:1", 1u8).await.unwrap();
    a.set("user:2", 2u8).await.unwrap();
    a.set("user:[1]", 3u8).await.unwrap();
    a.set("order:1", 4u8).await.unwrap();
    assert_eq!(
        a.delete_matching("user:[1]").await.unwrap(),
        1,
        "brackets are literal"
    );
    assert_eq!(b.get::<u8>("user:1").await.unwrap(), Some(1));
    assert_eq!(a.delete_matching("user:*").await.unwrap(), 2);
    assert_eq!(b.get::<u8>("user:2").await.unwrap(), None);
    assert_eq!(b.get::<u8>("order:1").await.unwrap(), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_api_on_a_standalone_server() {
    let server = RedisServer::start();
    let a = Cache::builder()
        .namespace("man")
        .memory(100)
        .redis(server.url())
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .namespace("man")
        .redis(server.url())
        .build()
        .await
        .unwrap();
    let other = Cache::builder()
        .namespace("other")
        .redis(server.url())
        .build()
        .await
        .unwrap();
    other.set("user:9", 9u8).await.unwrap();

    server.cli(&["CONFIG", "RESETSTAT"]);
    exercise(a, b).await;
    assert_eq!(
        other.get::<u8>("user:9").await.unwrap(),
        Some(9),
        "another namespace is untouched"
    );
    let stats = server.cli(&["INFO", "commandstats"]);
    assert!(!stats.contains("cmdstat_keys:"), "never KEYS: {stats}");
    assert!(stats.contains("cmdstat_scan:"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_api_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    let a = Cache::builder()
        .namespace("man")
        .memory(100)
        .redis_cluster(cluster.urls())
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .namespace("man")
        .redis_cluster(cluster.urls())
        .build()
        .await
        .unwrap();
    exercise(a, b).await;
}

#[tokio::test]
async fn counters_and_patterns_without_a_remote_tier() {
    let cache = Cache::memory(10);
    assert_eq!(cache.increment("n", 3).await.unwrap(), 3);
    assert_eq!(cache.decrement("n", 1).await.unwrap(), 2);
    cache.set("a:1", 1u8).await.unwrap();
    cache.set("b:1", 1u8).await.unwrap();
    assert_eq!(cache.delete_matching("a:*").await.unwrap(), 1);
    assert_eq!(cache.get::<u8>("b:1").await.unwrap(), Some(1));
}
