//! The scenario the plain and the TLS cluster tests share: entries spread over
//! the nodes, read by another instance, and invalidated across slots.

use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};
use tokio::time::sleep;

use crate::redis_harness::RedisCluster;
use crate::Calls;

/// Loads of [`user`].
pub static SPREAD: Calls = Calls::new();

/// A cached function whose entry and two tags hash to different slots.
#[cached(cache = cache, key = "user:{id}", tags = ["user:{id}", "group:{group}"], ttl = "1h")]
pub async fn user(cache: &Cache, id: u64, group: u64) -> usize {
    SPREAD.hit()
}

/// `a` (storage-only) loads 60 entries, which land on every node; `b`
/// (write-through) reads all of them from the cluster; `a` invalidates one
/// group's tag (a different slot from its entries) and exactly its 20 entries
/// load again.
pub async fn spread_share_and_invalidate(cluster: &RedisCluster, a: &Cache, b: &Cache) {
    let start = SPREAD.get();
    for id in 0..60 {
        user(a, id, id % 3).await;
    }
    assert_eq!(SPREAD.get() - start, 60);
    let per_node = cluster.dbsize_per_node();
    assert!(
        per_node.iter().all(|n| *n > 0),
        "entries on every node: {per_node:?}"
    );

    for id in 0..60 {
        user(b, id, id % 3).await;
    }
    assert_eq!(SPREAD.get() - start, 60, "all served from the cluster");

    a.invalidate_tags(["group:1"]).await.unwrap();
    for id in 0..60 {
        user(a, id, id % 3).await;
    }
    assert_eq!(
        SPREAD.get() - start,
        80,
        "the 20 entries of group 1 reloaded"
    );
}

/// An invalidation of `user:0` by `a` reaches `b`'s memory tier within
/// `within` (through the backplane).
pub async fn backplane_reaches(a: &Cache, b: &Cache, within: Duration) {
    let started = Instant::now();
    let before = SPREAD.get();
    a.invalidate_tags(["user:0"]).await.unwrap();
    loop {
        user(b, 0, 0).await;
        if SPREAD.get() > before {
            break;
        }
        assert!(started.elapsed() < within, "b kept the invalidated entry");
        sleep(Duration::from_millis(10)).await;
    }
}
