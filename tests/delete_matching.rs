//! `delete_matching` on a Redis that holds many keys of other applications:
//! the default `remote_timeout` (250 ms) bounds each round trip of the walk
//! (each `SCAN` page, each `UNLINK` batch), not the whole walk, so one call
//! finishes it, on a standalone server and on every master of a cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy};
use integration_tests::redis_harness::{RedisCluster, RedisServer};

/// Matching entries written by the cache (one more than a round thousand, so
/// that no batch size divides it).
const MATCHING: u64 = 1_001;

/// Writes `user:0` .. `user:1000` through `cache`, in pipelined batches.
async fn write_matching(cache: &Cache) {
    let items: Vec<(String, u32)> = (0..MATCHING as u32)
        .map(|i| (format!("user:{i}"), i))
        .collect();
    for chunk in items.chunks(250) {
        cache
            .set_many(chunk.iter().cloned(), &Policy::new())
            .await
            .expect("set_many");
    }
}

/// One call of `delete_matching("user:*")`, timed.
async fn walk(cache: &Cache) -> (Result<u64, cache_runtime::Error>, Duration) {
    let started = Instant::now();
    let outcome = cache.delete_matching("user:*").await;
    (outcome, started.elapsed())
}

/// GETs of a filler key, one after another, on a connection of its own
/// until `done`; each one's latency (at least one).
async fn gets_until(client: redis::Client, done: Arc<AtomicBool>) -> Vec<Duration> {
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect the other client");
    let mut latencies = Vec::new();
    while latencies.is_empty() || !done.load(Ordering::Acquire) {
        let started = Instant::now();
        let _: Option<Vec<u8>> = redis::cmd("GET")
            .arg("other:1")
            .query_async(&mut conn)
            .await
            .expect("GET");
        latencies.push(started.elapsed());
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_deletes_every_match_among_a_million_other_keys() {
    let server = RedisServer::start();
    // The fastest fill there is: the server writes the keys itself.
    server.cli(&["DEBUG", "POPULATE", "1000000", "other"]);
    let filler = server.dbsize();
    assert_eq!(filler, 1_000_000);
    let cache = Cache::builder()
        .namespace("app")
        .redis(server.url())
        .build()
        .await
        .expect("connect to the test server");
    write_matching(&cache).await;
    // The cache's own keys (its write counter) besides the entries.
    let before = server.dbsize();
    assert!(before >= filler + MATCHING, "{before}");

    // Another client's GETs during the walk: what the walk costs it.
    let done = Arc::new(AtomicBool::new(false));
    let other = tokio::spawn(gets_until(server.client(), done.clone()));
    let (outcome, took) = walk(&cache).await;
    done.store(true, Ordering::Release);
    let mut latencies = other.await.expect("the other client");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "standalone: 1,000,000 other keys, walk took {took:?}: {outcome:?}; \
         another client's {} GETs meanwhile: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    assert_eq!(
        outcome.expect("the walk finishes within the default timeout per round trip"),
        MATCHING
    );
    assert_eq!(
        server.dbsize(),
        before - MATCHING,
        "every match gone, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_deletes_every_match_on_every_master_of_a_cluster() {
    let cluster = RedisCluster::start(3);
    // DEBUG POPULATE writes into the node's keyspace whatever the slots: the
    // filler is only there to be walked past.
    for i in 0..cluster.nodes().len() {
        cluster.cli_node(i, &["DEBUG", "POPULATE", "200000", "other"]);
    }
    let filler: u64 = cluster.dbsize_per_node().iter().sum();
    let cache = Cache::builder()
        .namespace("app")
        .redis_cluster(cluster.urls())
        .build()
        .await
        .expect("connect to the test cluster");
    write_matching(&cache).await;
    let per_node = cluster.dbsize_per_node();
    assert!(
        per_node.iter().all(|&n| n > 200_000),
        "the matches spread over every master: {per_node:?}"
    );
    let before: u64 = per_node.iter().sum();
    assert!(before >= filler + MATCHING, "{before}");

    let (outcome, took) = walk(&cache).await;
    eprintln!("cluster: 3 x 200,000 other keys, walk took {took:?}: {outcome:?}");
    assert_eq!(
        outcome.expect("the walk finishes on every master"),
        MATCHING
    );
    assert_eq!(
        cluster.dbsize_per_node().iter().sum::<u64>(),
        before - MATCHING,
        "every match gone from every master, nothing else"
    );
}

/// Polls `DBSIZE` (bounded) until it is below `size`; the size then.
async fn below(conn: &mut redis::aio::MultiplexedConnection, size: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: u64 = redis::cmd("DBSIZE")
            .query_async(conn)
            .await
            .expect("DBSIZE");
        if now < size {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the walk deleted nothing in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A walk that cannot go on (the server stops answering midway) returns an
/// error that says how many keys it deleted, never `Ok` with keys left; a
/// second call, once the server answers, finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_that_cannot_finish_says_how_many_it_deleted() {
    let server = RedisServer::start();
    server.cli(&["DEBUG", "POPULATE", "1000000", "other"]);
    let cache = Cache::builder()
        .namespace("app")
        .redis(server.url())
        .build()
        .await
        .expect("connect to the test server");
    write_matching(&cache).await;
    let before = server.dbsize();

    let walking = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.delete_matching("user:*").await })
    };
    // Once the walk has deleted keys in two batches (bounded polls), the
    // server stops answering. Two: the walk sends a batch only after the
    // reply to the one before, so at least one reply reached it (the batch
    // in flight when the server stops is never confirmed).
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let first = below(&mut conn, before).await;
    below(&mut conn, first).await;
    server.freeze();
    let outcome = walking.await.expect("the walk's task");
    server.thaw();
    let deleted = match &outcome {
        Err(cache_runtime::Error::DeleteIncomplete { deleted, .. }) => *deleted,
        other => panic!("expected DeleteIncomplete, got {other:?}"),
    };
    let message = outcome.unwrap_err().to_string();
    eprintln!("stopped midway: {message}");
    assert!(
        (1..MATCHING).contains(&deleted),
        "some deleted, not all: {deleted}"
    );
    assert!(
        message.contains(&format!("after deleting {deleted} key(s)")),
        "{message}"
    );

    // Calling it again finishes the job (commands queued while the server was
    // frozen may have deleted a few more meanwhile).
    let rest = cache
        .delete_matching("user:*")
        .await
        .expect("the second walk finishes");
    assert!(deleted + rest <= MATCHING, "{deleted} + {rest}");
    assert_eq!(server.dbsize(), before - MATCHING, "every match gone");
}
