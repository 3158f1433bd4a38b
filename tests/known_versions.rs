//! Tag versions known in-process: a storage-only hit reads its entry alone
//! while the backplane is subscribed, and falls back to reading its tags'
//! versions from Redis when it is not, or when what it knows is old.

use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::RedisServer;
use integration_tests::{command_calls, storage_only, Calls};
use tokio::time::sleep;

/// Polls `cache`'s health until its backplane is `subscribed` (10 s at most).
async fn until_backplane(cache: &Cache, subscribed: bool) {
    let started = Instant::now();
    while cache.health().await.and_then(|h| h.backplane) != Some(subscribed) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the backplane never became subscribed = {subscribed}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

static LOST: Calls = Calls::new();
#[cached(cache = cache, key = "lost:{id}", tags = ["lost:{id}"], ttl = "1h")]
async fn lost(cache: &Cache, id: u64) -> usize {
    let _ = id;
    LOST.hit()
}

#[tokio::test]
async fn an_invalidation_whose_message_was_lost_is_seen_within_about_a_second() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "lost").await;
    assert_eq!(lost(&cache, 1).await, 0);
    assert_eq!(lost(&cache, 1).await, 0);
    // Another process bumped the tag and died before publishing.
    server.cli(&["INCR", "lost#tag:lost:1"]);
    let started = Instant::now();
    while lost(&cache, 1).await == 0 {
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "the bump without a message was never seen"
        );
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(LOST.get(), 2);
}

static DOWN: Calls = Calls::new();
#[cached(cache = cache, key = "down:{id}", tags = ["down:{id}", "downs"], ttl = "1h")]
async fn down(cache: &Cache, id: u64) -> usize {
    let _ = id;
    DOWN.hit()
}

#[tokio::test]
async fn while_the_backplane_is_down_hits_read_their_tags_versions_from_redis() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "down").await;
    until_backplane(&cache, true).await;
    assert_eq!(down(&cache, 1).await, 0);
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert_eq!(down(&cache, 1).await, 0);
    let stats = server.cli(&["INFO", "commandstats"]);
    assert_eq!(
        (command_calls(&stats, "get"), command_calls(&stats, "mget")),
        (1, 0),
        "{stats}"
    );

    // The default user may no longer subscribe: the backplane is down, and
    // stays down, so messages could be missed from now on.
    server.cli(&["ACL", "SETUSER", "default", "resetchannels"]);
    server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    until_backplane(&cache, false).await;
    // A bump nobody hears of: the next hit must still see it.
    server.cli(&["INCR", "down#tag:downs"]);
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert_eq!(down(&cache, 1).await, 1, "the bump is seen at once");
    assert_eq!(down(&cache, 1).await, 1);
    let stats = server.cli(&["INFO", "commandstats"]);
    assert!(command_calls(&stats, "mget") >= 2, "{stats}");

    // Subscribed again: what was known before is forgotten, learnt anew,
    // and hits read their entry alone again.
    server.cli(&["ACL", "SETUSER", "default", "allchannels"]);
    until_backplane(&cache, true).await;
    assert_eq!(down(&cache, 1).await, 1);
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert_eq!(down(&cache, 1).await, 1);
    let stats = server.cli(&["INFO", "commandstats"]);
    assert_eq!(
        (command_calls(&stats, "get"), command_calls(&stats, "mget")),
        (1, 0),
        "{stats}"
    );
    assert_eq!(DOWN.get(), 2);
}

static OTHERS: Calls = Calls::new();
#[cached(cache = cache, key = "others:{id}", tags = ["others:{id}"], ttl = "1h")]
async fn others(cache: &Cache, id: u64) -> usize {
    let _ = id;
    OTHERS.hit()
}

#[tokio::test]
async fn another_instances_invalidations_keep_reads_to_one_get() {
    let server = RedisServer::start();
    let a = storage_only(&server, "others").await;
    let b = storage_only(&server, "others").await;
    until_backplane(&b, true).await;
    let mut last = others(&b, 1).await;
    for round in 1..=3 {
        a.invalidate_tags(["others:1"]).await.unwrap();
        let started = Instant::now();
        loop {
            let seen = others(&b, 1).await;
            if seen != last {
                last = seen;
                break;
            }
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "round {round}: b never saw a's invalidation"
            );
            sleep(Duration::from_millis(10)).await;
        }
        // The message told b the tag's new version: b's next hits need no
        // MGET.
        server.cli(&["CONFIG", "RESETSTAT"]);
        assert_eq!(others(&b, 1).await, last);
        let stats = server.cli(&["INFO", "commandstats"]);
        assert_eq!(
            (command_calls(&stats, "get"), command_calls(&stats, "mget")),
            (1, 0),
            "round {round}: {stats}"
        );
    }
}
