//! The remote tier on a real 3-master Redis Cluster started by the harness.

use std::time::Duration;

use cache_runtime::{cached, Cache};
use integration_tests::cluster_scenario::{backplane_reaches, spread_share_and_invalidate};
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
    spread_share_and_invalidate(&cluster, &a, &b).await;
    // The backplane reaches b's memory tier through the cluster.
    backplane_reaches(&a, &b, Duration::from_millis(500)).await;

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
