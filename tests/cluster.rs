//! The remote tier on a real 3-master Redis Cluster started by the harness.

use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::RedisCluster;
use integration_tests::Calls;
use tokio::time::sleep;

async fn cache(cluster: &RedisCluster, ns: &str, memory: bool) -> Cache {
    let builder = Cache::builder().namespace(ns).redis_cluster(cluster.urls());
    let builder = if memory {
        builder.memory(1000)
    } else {
        builder
    };
    builder.build().await.expect("connect to the test cluster")
}

static SPREAD: Calls = Calls::new();
#[cached(cache = cache, key = "user:{id}", tags = ["user:{id}", "group:{group}"], ttl = "1h")]
async fn user(cache: &Cache, id: u64, group: u64) -> usize {
    SPREAD.hit()
}

static RACE: Calls = Calls::new();
#[cached(cache = cache, key = "cold", ttl = "1h")]
async fn cold(cache: &Cache) -> usize {
    let n = RACE.hit();
    sleep(Duration::from_millis(300)).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_spreads_entries_and_invalidates_across_slots() {
    let cluster = RedisCluster::start(3);
    let a = cache(&cluster, "cl", false).await;
    let b = cache(&cluster, "cl", true).await;
    for id in 0..60 {
        user(&a, id, id % 3).await;
    }
    assert_eq!(SPREAD.get(), 60);
    let per_node = cluster.dbsize_per_node();
    assert!(
        per_node.iter().all(|n| *n > 0),
        "entries on every node: {per_node:?}"
    );

    // b (write-through) reads a's entries from the cluster, one per call.
    for id in 0..60 {
        user(&b, id, id % 3).await;
    }
    assert_eq!(SPREAD.get(), 60, "all served from the cluster");

    // Tag keys and entry keys sit in different slots: invalidation still works.
    a.invalidate_tags(["group:1"]).await.unwrap();
    for id in 0..60 {
        user(&a, id, id % 3).await;
    }
    assert_eq!(SPREAD.get(), 80, "the 20 entries of group 1 reloaded");

    // The backplane reaches b's memory tier through the cluster.
    let started = Instant::now();
    let before = SPREAD.get();
    a.invalidate_tags(["user:0"]).await.unwrap();
    loop {
        user(&b, 0, 0).await;
        if SPREAD.get() > before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "b kept the invalidated entry"
        );
        sleep(Duration::from_millis(10)).await;
    }

    // The distributed lock: 3 caches x 16 tasks, one load.
    let caches = [
        cache(&cluster, "cl", true).await,
        cache(&cluster, "cl", true).await,
        a.clone(),
    ];
    let mut tasks = Vec::new();
    for c in &caches {
        for _ in 0..16 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move { cold(&c).await }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 0);
    }
    assert_eq!(RACE.get(), 1);
}
