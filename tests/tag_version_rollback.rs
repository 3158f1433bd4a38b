//! A tag version never repeats, even when Redis loses the last increments
//! of its counter (a failover to a replica that missed them, a restore from
//! an older snapshot): set a tag's version key back (by one, by many) or
//! delete it, then invalidate the tag; neither the invalidating cache nor
//! another one sharing Redis may serve the entry loaded before. Standalone
//! and on a 3-master cluster.

use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::{RedisCluster, RedisServer};
use integration_tests::Calls;

/// Every load returns a number no other load returned: two calls gave the
/// same number iff the second was served from the cache.
static LOADS: Calls = Calls::new();

#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}"], ttl = "1h")]
async fn item(cache: &Cache, id: u64) -> usize {
    let _ = id;
    LOADS.hit()
}

/// What happens to the tag's counter between the load and the invalidation.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// One `INCR` lost.
    BackByOne,
    /// Many lost (an older snapshot).
    BackByMany,
    /// The key lost altogether.
    Deleted,
}

const LOSSES: [Loss; 3] = [Loss::BackByOne, Loss::BackByMany, Loss::Deleted];

/// One command, routed by its key (standalone or cluster).
trait Store {
    async fn run(&self, args: &[&str]) -> redis::Value;
}

impl Store for RedisServer {
    async fn run(&self, args: &[&str]) -> redis::Value {
        let mut conn = self
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test server");
        command(args).query_async(&mut conn).await.expect("command")
    }
}

impl Store for RedisCluster {
    async fn run(&self, args: &[&str]) -> redis::Value {
        let mut conn = self
            .client()
            .get_async_connection()
            .await
            .expect("connect to the test cluster");
        command(args).query_async(&mut conn).await.expect("command")
    }
}

fn command(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd
}

async fn version<S: Store>(store: &S, key: &str) -> Option<u64> {
    match store.run(&["GET", key]).await {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok()?.parse().ok(),
        _ => None,
    }
}

/// Loads `item(id)` through both caches, makes the store lose `loss` of the
/// tag's counter, invalidates the tag through `invalidator`, and counts the
/// caches (of `invalidator` and `other`) that then serve the old value, plus
/// one when the bump repeated a version handed out before.
async fn stale_after_loss<S: Store>(
    store: &S,
    namespace: &str,
    invalidator: &Cache,
    other: &Cache,
    id: u64,
    loss: Loss,
) -> usize {
    let first = item(invalidator, id).await;
    assert_eq!(item(other, id).await, first, "{loss:?}: a shared entry");
    let key = format!("{namespace}#tag:item:{id}");
    let before = version(store, &key).await.expect("the tag has a version");
    match loss {
        Loss::BackByOne => {
            store.run(&["SET", &key, &(before - 1).to_string()]).await;
        }
        Loss::BackByMany => {
            store
                .run(&["SET", &key, &(before - 1000).to_string()])
                .await;
        }
        Loss::Deleted => {
            store.run(&["DEL", &key]).await;
        }
    }
    invalidator
        .invalidate_tags([format!("item:{id}")])
        .await
        .expect("invalidate");
    let after = version(store, &key)
        .await
        .expect("a version after the bump");
    // Counted as a stale serve of its own, checked with the rest at the end.
    let mut stale = usize::from(after <= before);
    if after <= before {
        eprintln!("{loss:?}: the bump gave {after}, not above {before} handed out before");
    }
    for cache in [invalidator, other] {
        if item(cache, id).await == first {
            stale += 1;
        }
    }
    stale
}

/// The invalidating cache is write-through (its memory entry is dropped at
/// once); the other reads every tag version from Redis, so that what it
/// serves does not depend on when the backplane's message arrives.
async fn caches(url: impl Fn() -> cache_runtime::CacheBuilder, namespace: &str) -> (Cache, Cache) {
    let invalidator = url()
        .namespace(namespace)
        .memory(1000)
        .build()
        .await
        .expect("connect");
    let other = url()
        .namespace(namespace)
        .known_tag_versions(0)
        .build()
        .await
        .expect("connect");
    (invalidator, other)
}

#[tokio::test]
async fn a_lost_increment_never_brings_back_an_invalidated_entry() {
    let server = RedisServer::start();
    let url = server.url();
    let (invalidator, other) = caches(|| Cache::builder().redis(url.clone()), "lost").await;
    let mut stale = Vec::new();
    for (id, loss) in LOSSES.into_iter().enumerate() {
        let n = stale_after_loss(&server, "lost", &invalidator, &other, id as u64, loss).await;
        stale.push((loss, n));
    }
    let total: usize = stale.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total, 0,
        "stale values served (and repeated versions) of 6 (+3): {stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_increment_never_brings_back_an_invalidated_entry_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let (invalidator, other) =
        caches(|| Cache::builder().redis_cluster(urls.clone()), "lost-cl").await;
    let mut stale = Vec::new();
    // Several ids, so that the tags sit on different masters.
    for round in 0..3u64 {
        for (i, loss) in LOSSES.into_iter().enumerate() {
            let id = 100 + round * 10 + i as u64;
            let n = stale_after_loss(&cluster, "lost-cl", &invalidator, &other, id, loss).await;
            stale.push((loss, n));
        }
    }
    let total: usize = stale.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total, 0,
        "stale values served (and repeated versions) of 18 (+9): {stale:?}"
    );
}
