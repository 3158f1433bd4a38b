//! Writes by key (`set`, `set_many`, `delete`, `delete_matching`) reach other
//! processes' memory tiers over the backplane within milliseconds, and
//! within about a second when the message is lost.

use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy};
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;

async fn through(url: String, ns: &str) -> Cache {
    Cache::builder()
        .namespace(ns)
        .memory(1000)
        .redis(url)
        .build()
        .await
        .expect("connect to the test server")
}

async fn held(cache: &Cache, key: &str) -> Option<u32> {
    cache.get::<u32>(key).await.expect("get")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_drop_keys_written_or_deleted_here() {
    let server = RedisServer::start();
    let a = through(server.url(), "writes").await;
    let b = through(server.url(), "writes").await;
    a.set("k", 1u32).await.expect("set");
    a.set("user:1", 1u32).await.expect("set");
    a.set("user:2", 2u32).await.expect("set");
    for key in ["k", "user:1", "user:2"] {
        assert!(held(&b, key).await.is_some(), "{key} read into b's memory");
    }
    let remote_reads = b.stats().remote_hits;
    assert_eq!(held(&b, "k").await, Some(1));
    assert_eq!(
        b.stats().remote_hits,
        remote_reads,
        "served from b's memory"
    );

    a.set("k", 2u32).await.expect("set");
    let seen = within!(Duration::from_millis(500), held(&b, "k").await == Some(2));
    assert!(seen.is_some(), "b saw the new value of k");

    a.set_many([("k", 3u32)], &Policy::new())
        .await
        .expect("set_many");
    let seen = within!(Duration::from_millis(500), held(&b, "k").await == Some(3));
    assert!(seen.is_some(), "b saw set_many");

    a.delete("k").await.expect("delete");
    let seen = within!(Duration::from_millis(500), held(&b, "k").await.is_none());
    assert!(seen.is_some(), "b dropped the deleted key");

    a.delete_matching("user:*").await.expect("delete_matching");
    let seen = within!(
        Duration::from_millis(500),
        held(&b, "user:1").await.is_none() && held(&b, "user:2").await.is_none()
    );
    assert!(seen.is_some(), "b dropped the keys matching the pattern");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_write_message_costs_about_a_second() {
    let server = RedisServer::start_with_acl_user("app", "secret");
    let a = through(server.url(), "lostwrite").await;
    let b = through(server.url(), "lostwrite").await;
    a.set("k", 1u32).await.expect("set");
    assert_eq!(held(&b, "k").await, Some(1));
    assert_eq!(held(&b, "k").await, Some(1));
    // a's PUBLISH is refused from now on: its message is lost.
    server.cli(&["ACL", "SETUSER", "app", "-publish"]);
    let started = Instant::now();
    a.set("k", 2u32).await.expect("the write itself works");
    let seen = within!(Duration::from_secs(3), held(&b, "k").await == Some(2));
    let seen = seen.expect("b saw the write whose message was lost");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "seen after {seen:?}"
    );
}
