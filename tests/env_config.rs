//! Remote retries after a connection fault.

use cache_runtime::{Cache, StoreError};
use integration_tests::redis_harness::RedisServer;

/// A storage-only cache on `server` with `retries`, and no background task
/// that could find a killed connection before the test does.
async fn storage(server: &RedisServer, retries: u32) -> Cache {
    Cache::builder()
        .redis(server.url())
        .known_tag_versions(0)
        .remote_retries(retries)
        .build()
        .await
        .unwrap()
}

/// Kills the cache's connections (the `SKIPME` default spares `cli`'s own).
fn kill_clients(server: &RedisServer) {
    let killed: u32 = server
        .cli(&["CLIENT", "KILL", "TYPE", "normal"])
        .trim()
        .parse()
        .expect("a count of killed clients");
    assert!(killed >= 1, "the cache's connection was killed");
}

#[tokio::test]
async fn a_retry_rides_over_a_killed_connection() {
    let server = RedisServer::start();
    let cache = storage(&server, 1).await;
    cache.set("k", 1u32).await.unwrap();
    let errors = cache.stats().store_errors;
    for _ in 0..3 {
        kill_clients(&server);
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    }
    assert_eq!(
        cache.stats().store_errors,
        errors,
        "no fault reached the caller"
    );
}

#[tokio::test]
async fn without_retries_a_killed_connection_fails_one_call() {
    let server = RedisServer::start();
    let cache = storage(&server, 0).await;
    cache.set("k", 1u32).await.unwrap();
    let errors = cache.stats().store_errors;
    kill_clients(&server);
    let failed = cache.get::<u32>("k").await;
    assert!(
        matches!(
            failed,
            Err(cache_runtime::Error::Store(StoreError::Connection(_)))
        ),
        "{failed:?}"
    );
    assert_eq!(cache.stats().store_errors, errors + 1);
    // The client reconnected meanwhile.
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
}

/// The count of `kind` error replies the server sent (`INFO errorstats`).
fn error_replies(server: &RedisServer, kind: &str) -> u64 {
    let info = server.cli(&["INFO", "errorstats"]);
    info.lines()
        .find(|l| l.starts_with(&format!("errorstat_{kind}:")))
        .and_then(|l| l.split("count=").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_error_reply_is_not_retried() {
    let server = RedisServer::start_with_acl_user("app", "app-pw");
    let cache = storage(&server, 5).await;
    cache.set("k", 1u32).await.unwrap();
    server.cli(&["ACL", "SETUSER", "app", "-mget", "-get"]);
    assert!(cache.get::<u32>("k").await.is_err(), "NOPERM");
    assert_eq!(error_replies(&server, "NOPERM"), 1, "asked once");
}
