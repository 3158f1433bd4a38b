//! The contract's "Availability": a Redis outage is not a stampede on the
//! function (the memory tier serves for the outage grace), a cache starts
//! while Redis is unreachable and connects when it comes up, and its health
//! is good again as soon as Redis is back. Real `redis-server` processes,
//! killed and restarted under load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache, CacheBuilder, Error};
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;

#[path = "captured_logs.rs"]
mod captured_logs;

/// Log lines at INFO and above of every test in this binary.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    captured_logs::global(tracing::Level::INFO)
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// A write-through cache on `url` with a short timeout and breaker, so
/// that faults are noticed quickly.
fn builder(url: &str, ns: &str) -> CacheBuilder {
    Cache::builder()
        .namespace(ns)
        .memory(1_000)
        .redis(url)
        .remote_timeout(Duration::from_millis(100))
        .breaker(5, Duration::from_millis(200))
}

/// The "database" of one test: a value per id, and how often it was read.
struct Db {
    values: [AtomicU64; 16],
    reads: AtomicUsize,
}

impl Db {
    const fn new() -> Db {
        Db {
            values: [const { AtomicU64::new(1) }; 16],
            reads: AtomicUsize::new(0),
        }
    }
    fn read(&self, id: u64) -> u64 {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.values[id as usize % 16].load(Ordering::SeqCst)
    }
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// Calls `f` for every id in `ids` until `span` has passed; how many calls.
async fn hammer<F, Fut>(span: Duration, ids: std::ops::Range<u64>, f: F) -> usize
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < span {
        for id in ids.clone() {
            f(id).await;
            calls += 1;
        }
        tokio::task::yield_now().await;
    }
    calls
}

static GRACE_DB: Db = Db::new();

#[cached(cache = cache, key = "g:{id}", tags = ["g:{id}"], ttl = "1h")]
async fn grace_item(cache: &Cache, id: u64) -> u64 {
    GRACE_DB.read(id)
}

/// The reproduction: Redis killed under load. With the grace, the
/// memory tier keeps serving (the function runs about once, for the call
/// that found Redis gone); an invalidation of this process applies at once;
/// past the grace the function runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_served_from_memory_for_the_grace_then_by_the_function() {
    let mut server = RedisServer::start();
    let grace = Duration::from_millis(2_500);
    let cache = builder(&server.url(), "grace")
        .outage_grace(grace)
        .build()
        .await
        .unwrap();
    for id in 0..10 {
        assert_eq!(grace_item(&cache, id).await, 1);
    }
    let warm = hammer(Duration::from_millis(200), 0..10, |id| {
        grace_item(&cache, id)
    })
    .await;
    assert_eq!(GRACE_DB.reads(), 10, "{warm} calls were all hits");

    server.kill();
    let killed = Instant::now();
    let before = GRACE_DB.reads();
    let calls = hammer(Duration::from_secs(1), 0..10, |id| grace_item(&cache, id)).await;
    let runs = GRACE_DB.reads() - before;
    eprintln!("outage: {calls} calls ran the function {runs} times");
    assert!(calls >= 100, "{calls} calls");
    assert!(
        runs <= 3,
        "{runs} of {calls} calls ran the function during the outage"
    );
    let health = cache.health_report().await;
    assert!(health.status.is_degraded(), "{health:?}");
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r.ends_with("the memory tier still serves")),
        "{:?}",
        health.reasons
    );

    // This process's invalidation is in force at once: the next call of
    // the tag's function runs it; the other ids are still served.
    GRACE_DB.values[3].store(2, Ordering::SeqCst);
    let queued = cache.invalidate_tags(["g:3"]).await;
    assert!(
        matches!(queued, Err(Error::InvalidationQueued { .. })),
        "{queued:?}"
    );
    let before = GRACE_DB.reads();
    assert_eq!(
        grace_item(&cache, 3).await,
        2,
        "the old value after an own invalidation"
    );
    assert_eq!(GRACE_DB.reads(), before + 1);
    for id in [0, 1, 2, 4, 5] {
        assert_eq!(grace_item(&cache, id).await, 1);
    }
    assert_eq!(
        GRACE_DB.reads(),
        before + 1,
        "the others still served from memory"
    );

    // Past the grace (counted from the last confirmation, at most about
    // 250 ms before the kill) memory is emptied: the function runs again.
    let before = GRACE_DB.reads();
    let reran = within!(grace + Duration::from_secs(2), {
        grace_item(&cache, 0).await;
        GRACE_DB.reads() > before
    });
    let at = killed.elapsed();
    assert!(reran.is_some(), "the function never ran again");
    assert!(
        at >= grace - Duration::from_millis(400) && at <= grace + Duration::from_secs(1),
        "ran again {at:?} after the kill, for a grace of {grace:?}"
    );
    // ... once per key and grace, not on every call (but for id 3, whose
    // invalidation is pending: it runs on every call until Redis has it).
    let before = GRACE_DB.reads();
    let calls = hammer(Duration::from_millis(500), 4..10, |id| {
        grace_item(&cache, id)
    })
    .await;
    let runs = GRACE_DB.reads() - before;
    assert!(
        runs <= 6,
        "{runs} runs in {calls} calls after the grace rolled over"
    );
}

static ZERO_DB: Db = Db::new();

#[cached(cache = cache, key = "z:{id}", tags = ["z:{id}"], ttl = "1h")]
async fn zero_item(cache: &Cache, id: u64) -> u64 {
    ZERO_DB.read(id)
}

/// A grace of zero is the behaviour before it: without Redis, memory is not
/// used and every call runs its function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_grace_runs_the_function_on_every_call_of_an_outage() {
    let mut server = RedisServer::start();
    let cache = builder(&server.url(), "zero")
        .outage_grace(Duration::ZERO)
        .build()
        .await
        .unwrap();
    for id in 0..10 {
        zero_item(&cache, id).await;
    }
    server.kill();
    // The backplane notices the kill at once (its connection drops).
    let untrusted = within!(Duration::from_secs(2), {
        cache
            .health()
            .await
            .is_some_and(|h| h.backplane == Some(false))
    });
    assert!(untrusted.is_some());
    let before = ZERO_DB.reads();
    let calls = hammer(Duration::from_millis(500), 0..10, |id| {
        zero_item(&cache, id)
    })
    .await;
    assert_eq!(
        ZERO_DB.reads() - before,
        calls,
        "every call ran the function"
    );
}

static SHARED_DB: Db = Db::new();

#[cached(cache = cache, key = "s:{id}", tags = ["s:{id}"], ttl = "1h")]
async fn shared_item(cache: &Cache, id: u64) -> u64 {
    SHARED_DB.read(id)
}

/// What the grace costs: another process's invalidation made while Redis
/// is down is not seen here during the outage; it is seen once Redis is
/// back (its queue delivers it, and this process drops what moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_invalidation_is_seen_after_the_outage() {
    let mut server = RedisServer::start();
    let a = builder(&server.url(), "shared").build().await.unwrap();
    let b = builder(&server.url(), "shared").build().await.unwrap();
    assert_eq!(shared_item(&a, 5).await, 1);
    assert_eq!(shared_item(&b, 5).await, 1);

    server.kill();
    SHARED_DB.values[5].store(2, Ordering::SeqCst);
    let queued = b.invalidate_tags(["s:5"]).await;
    assert!(
        matches!(queued, Err(Error::InvalidationQueued { .. })),
        "{queued:?}"
    );
    assert_eq!(shared_item(&b, 5).await, 2, "b's own invalidation holds");
    // The documented price: `a` cannot hear of it while Redis is down. (Its
    // first call after the kill finds Redis gone: another key's.)
    shared_item(&a, 6).await;
    assert_eq!(
        shared_item(&a, 5).await,
        1,
        "a serves its memory in the grace"
    );

    server.restart();
    let seen = within!(Duration::from_secs(5), shared_item(&a, 5).await == 2);
    assert!(
        seen.is_some(),
        "a still serves the old value after Redis is back"
    );
    eprintln!("another process's invalidation seen {seen:?} after the restart");
    let stable = hammer(Duration::from_millis(300), 5..6, |id| shared_item(&a, id)).await;
    assert!(stable > 0);
    assert_eq!(shared_item(&a, 5).await, 2);
}

static START_DB: Db = Db::new();

#[cached(cache = cache, key = "st:{id}", ttl = "1h")]
async fn start_item(cache: &Cache, id: u64) -> u64 {
    START_DB.read(id)
}

/// `build()` with nothing listening: Ok, at once; calls work (the function,
/// then memory); health says why; once redis-server starts on that port the
/// cache connects by itself, logs it, shares entries through Redis and is
/// healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_starts_without_redis_and_connects_when_it_comes_up() {
    logs();
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();

    let started = Instant::now();
    let cache = builder(&url, "start")
        .build()
        .await
        .expect("build() without Redis");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(start_item(&cache, 1).await, 1);
    assert_eq!(start_item(&cache, 1).await, 1);
    assert_eq!(START_DB.reads(), 1, "served from memory the second time");
    let health = cache.health().await.expect("a remote tier");
    assert!(!health.connected, "{health:?}");
    let report = cache.health_report().await;
    assert!(!report.status.is_healthy(), "{report:?}");
    assert!(
        report
            .reasons
            .iter()
            .any(|r| r.contains("has not connected since start-up")),
        "{:?}",
        report.reasons
    );
    assert!(
        logged().contains("cannot connect to the remote cache tier"),
        "{}",
        logged()
    );

    server.restart();
    let up = within!(Duration::from_secs(10), {
        cache.health_report().await.status.is_healthy()
    });
    assert!(up.is_some(), "{:?}", cache.health_report().await);
    eprintln!("healthy {up:?} after redis-server started");
    assert!(
        logged().contains("connected to the remote cache tier: it is used from now on"),
        "{}",
        logged()
    );
    // Entries go through Redis now: another cache reads what this one stored.
    assert_eq!(start_item(&cache, 2).await, 1);
    let other = builder(&url, "start").build().await.unwrap();
    let before = START_DB.reads();
    assert_eq!(start_item(&other, 2).await, 1);
    assert_eq!(
        START_DB.reads(),
        before,
        "read from Redis, not the function"
    );
}

/// A wrong password is not a failed start either: the cache runs without
/// Redis, and the reason (never the password) is in the health report and
/// the logs. A malformed URL still fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_starts_degraded_and_a_malformed_url_fails() {
    logs();
    let server = RedisServer::start_with_password("right-pw");
    let wrong = format!("redis://:wr0ng-pw@127.0.0.1:{}/", server.port());
    let cache = builder(&wrong, "pw")
        .build()
        .await
        .expect("degraded, not an error");
    let report = cache.health_report().await;
    assert!(!report.status.is_healthy(), "{report:?}");
    let text = format!("{report:?}");
    assert!(text.contains("has not connected since start-up"), "{text}");
    assert!(!text.contains("wr0ng-pw"), "{text}");
    assert!(!logged().contains("wr0ng-pw"), "{}", logged());

    for url in ["redis://127.0.0.1:notaport", "http://127.0.0.1:7000"] {
        let result = builder(url, "bad").build().await;
        assert!(
            matches!(result, Err(Error::Connect { .. })),
            "{url}: {result:?}"
        );
    }
}

static LOAD_DB: Db = Db::new();

#[cached(cache = cache, key = "l:{id}", ttl = "1h")]
async fn load_item(cache: &Cache, id: u64) -> u64 {
    LOAD_DB.read(id)
}

/// The reproduction: after Redis came back, the health report stayed
/// unhealthy for a whole window (60 s) because the window still held the
/// outage's faults. It must be healthy within 5 s of the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_good_within_seconds_of_recovery() {
    let mut server = RedisServer::start();
    // Storage-only: every call of an outage is a store fault.
    let cache = Cache::builder()
        .namespace("recover")
        .redis(server.url())
        .remote_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let load = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                load_item(&cache, i % 50).await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let healthy = within!(Duration::from_secs(5), {
        cache.health_report().await.status.is_healthy()
    });
    assert!(healthy.is_some(), "{:?}", cache.health_report().await);

    server.kill();
    let down = within!(Duration::from_secs(5), {
        let report = cache.health_report().await;
        report.status.is_unhealthy() && report.error_ratio.is_some_and(|r| r > 0.05)
    });
    assert!(down.is_some(), "{:?}", cache.health_report().await);
    // Long enough for the window to fill with the outage.
    tokio::time::sleep(Duration::from_secs(2)).await;

    server.restart();
    let restarted = Instant::now();
    let healed = within!(Duration::from_secs(5), {
        cache.health_report().await.status.is_healthy()
    });
    let report = cache.health_report().await;
    load.abort();
    assert!(
        healed.is_some(),
        "not healthy 5 s after the restart: {:?}",
        report
    );
    eprintln!("healthy {:?} after the restart", restarted.elapsed());
}

static ANSWER_DB: Db = Db::new();

#[cached(cache = cache, key = "a:{id}", tags = ["a:{id}"], ttl = "1h")]
async fn answer_item(cache: &Cache, id: u64) -> u64 {
    ANSWER_DB.read(id)
}

/// The grace is for a store that does not answer. A Redis that answers
/// while only the backplane is down (here: subscribing is denied and the
/// subscription killed) may be carrying other processes' invalidations, so
/// memory is not used: reads go to Redis (remote hits, not the function).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_answers_gets_no_grace() {
    let server = RedisServer::start();
    let cache = builder(&server.url(), "answers").build().await.unwrap();
    assert_eq!(answer_item(&cache, 1).await, 1);
    assert_eq!(answer_item(&cache, 1).await, 1);
    assert_eq!(cache.stats().remote_hits, 0, "a memory hit");

    server.cli(&["ACL", "SETUSER", "default", "-subscribe"]);
    server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let down = within!(Duration::from_secs(2), {
        cache
            .health()
            .await
            .is_some_and(|h| h.backplane == Some(false))
    });
    assert!(down.is_some(), "{:?}", cache.health().await);
    let before = cache.stats();
    for _ in 0..20 {
        assert_eq!(answer_item(&cache, 1).await, 1);
    }
    let after = cache.stats();
    assert_eq!(after.remote_hits - before.remote_hits, 20, "{after:?}");
    assert_eq!(ANSWER_DB.reads(), 1, "Redis answered every read");
}

static FROZEN_DB: Db = Db::new();

#[cached(cache = cache, key = "f:{id}", tags = ["f:{id}"], ttl = "1h")]
async fn frozen_item(cache: &Cache, id: u64) -> u64 {
    FROZEN_DB.read(id)
}

/// A Redis that hangs (every operation times out; the connections stay
/// open, so the backplane does not notice) is unreachable too: past the
/// second in which memory is trusted without a confirmation, memory keeps
/// serving instead of every call running its function. Thawed, the
/// confirmations resume and memory is trusted as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_an_outage_too() {
    let server = RedisServer::start();
    let cache = builder(&server.url(), "frozen").build().await.unwrap();
    for id in 0..10 {
        frozen_item(&cache, id).await;
    }
    server.freeze();
    let before = FROZEN_DB.reads();
    // Longer than the second memory is trusted after the last confirmation.
    let calls = hammer(Duration::from_millis(2_000), 0..10, |id| {
        frozen_item(&cache, id)
    })
    .await;
    let runs = FROZEN_DB.reads() - before;
    eprintln!("frozen: {calls} calls ran the function {runs} times");
    server.thaw();
    assert!(calls >= 100, "{calls} calls");
    assert!(
        runs <= 3,
        "{runs} of {calls} calls ran the function while Redis hung"
    );
    let trusted = within!(Duration::from_secs(5), {
        let before = cache.stats();
        frozen_item(&cache, 1).await;
        let after = cache.stats();
        after.hits > before.hits && after.remote_hits == before.remote_hits
    });
    assert!(trusted.is_some(), "{:?}", cache.health_report().await);
}
