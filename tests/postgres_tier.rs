//! The PostgreSQL tier through the builder (`.postgres(url)`,
//! `CACHE_POSTGRES_URL`) against private servers of the harness: shared
//! entries and invalidations across caches, one load across caches, and
//! faults (a server stopped and restarted, unreachable at start-up, a
//! malformed URL).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache, Policy};
use integration_tests::pg_harness::PgDatabase;
use integration_tests::Calls;

/// Builds a cache on `url`: write-through with a memory tier, or storage-only.
async fn cache(url: &str, namespace: &str, memory: bool) -> Cache {
    let mut builder = Cache::builder()
        .namespace(namespace)
        .postgres(url)
        .remote_timeout(Duration::from_secs(1));
    if memory {
        builder = builder.memory(1_000);
    }
    builder.build().await.unwrap()
}

/// Polls `check` every 10 ms until it holds or `bound` passes.
async fn within(bound: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

static SHARED: Calls = Calls::new();
#[cached(cache = cache, key = "user:{id}", tags = ["user:{id}", "users"], ttl = "1h")]
async fn user(cache: &Cache, id: u64) -> String {
    let n = SHARED.hit();
    format!("user {id} load {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caches_share_entries_and_see_each_others_invalidations_within_a_second() {
    let db = PgDatabase::start();
    let a = cache(&db.url(), "shared", true).await;
    let b = cache(&db.url(), "shared", true).await;
    let first = user(&a, 1).await;
    assert_eq!(
        user(&b, 1).await,
        first,
        "b reads a's entry from PostgreSQL"
    );
    assert_eq!(SHARED.get(), 1);
    assert_eq!(b.stats().remote_hits, 1);
    // Now in b's memory: only the backplane or a confirmation takes it out.
    assert_eq!(user(&b, 1).await, first);

    a.invalidate_tags(["users"]).await.unwrap();
    let started = Instant::now();
    let seen = within(Duration::from_secs(1), async || user(&b, 1).await != first).await;
    assert!(
        seen,
        "b still served the invalidated entry after {:?}",
        started.elapsed()
    );
    println!("b saw the invalidation after {:?}", started.elapsed());
    assert_eq!(SHARED.get(), 2);
    assert_eq!(user(&a, 1).await, user(&b, 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_cold_calls_over_two_caches_load_once() {
    let db = PgDatabase::start();
    let a = cache(&db.url(), "cold", true).await;
    let b = cache(&db.url(), "cold", true).await;
    let loads = Arc::new(AtomicU32::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut calls = Vec::new();
    for i in 0..32 {
        let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (loads, barrier) = (Arc::clone(&loads), Arc::clone(&barrier));
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            cache
                .get_or_load(
                    "cold",
                    &Policy::ttl(Duration::from_secs(60)),
                    ["t"],
                    || async move {
                        let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
                        // Long enough for every other call to find the load
                        // under way (here, or in the other cache: the lock).
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, String>(n)
                    },
                )
                .await
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 1);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the loader ran more than once"
    );
}

static FAULTS: Calls = Calls::new();
#[cached(cache = cache, ttl = "1h")]
async fn faulty(cache: &Cache, x: u64) -> u64 {
    FAULTS.hit();
    x + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_answer_while_postgres_is_down_and_use_it_again_after_a_restart() {
    let mut db = PgDatabase::start();
    let timeout = Duration::from_millis(200);
    let cache = Cache::builder()
        .namespace("down")
        .postgres(db.url())
        .remote_timeout(timeout)
        .breaker(2, Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    // Cached in PostgreSQL: a call stores, the next hits (the first
    // statements of a new pool may take a while on a busy machine).
    let stored = within(Duration::from_secs(10), async || {
        let before = FAULTS.get();
        faulty(&cache, 1).await;
        faulty(&cache, 1).await;
        FAULTS.get() <= before + 1
    })
    .await;
    assert!(stored, "{:?}", cache.stats());

    db.stop();
    let started = Instant::now();
    for i in 0..5 {
        let call = Instant::now();
        assert_eq!(faulty(&cache, 10 + i).await, 11 + i, "the function answers");
        // A miss is a read, maybe a lock and a write: each bounded by the
        // remote timeout, most skipped once the breaker opens.
        assert!(
            call.elapsed() < timeout * 4,
            "a call took {:?}",
            call.elapsed()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(cache.stats().store_errors >= 1);
    assert_eq!(cache.health().await.map(|h| h.connected), Some(false));

    // An immediate shutdown may lose the last commits (the harness runs
    // with synchronous_commit=off): the tables too, which the store then
    // creates again.
    db.restart();
    let back = Instant::now();
    let resumed = within(Duration::from_secs(10), async || {
        let before = FAULTS.get();
        faulty(&cache, 500).await;
        faulty(&cache, 500).await;
        // Stored, then served from PostgreSQL again.
        FAULTS.get() == before + 1
    })
    .await;
    assert!(
        resumed,
        "PostgreSQL was not used again after {:?}: {:?} {:?}",
        back.elapsed(),
        cache.stats(),
        cache.health_report().await
    );
    assert_eq!(cache.health().await.map(|h| h.connected), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_starts_degraded_and_is_used_once_it_is_up() {
    let mut db = PgDatabase::start();
    db.stop();
    let started = Instant::now();
    let cache = Cache::builder()
        .namespace("late")
        .postgres(db.url())
        .remote_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("build() does not fail for an unreachable server");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let report = cache.health_report().await;
    assert!(report.remote.is_some_and(|r| !r.connected), "{report:?}");
    assert_eq!(faulty(&cache, 1000).await, 1001, "the function answers");

    db.restart();
    let up = within(Duration::from_secs(10), async || {
        cache.health().await.is_some_and(|h| h.connected)
    })
    .await;
    assert!(up, "{:?}", cache.health_report().await);
    // Tables were created on that first connect.
    assert!(db
        .sql("SELECT count(*) FROM cache_runtime_tags")
        .trim()
        .parse::<u64>()
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_is_an_error_that_shows_no_password() {
    let built = Cache::builder()
        .postgres("postgres://app:hunter2-pw@db:notaport/app")
        .build()
        .await;
    let error = built.expect_err("a malformed URL is an error").to_string();
    assert!(!error.contains("hunter2"), "{error}");

    let env = Cache::builder().env_from([(
        "CACHE_POSTGRES_URL",
        "postgres://app:hunter2-pw@db:notaport/app",
    )]);
    let error = env.expect_err("a malformed URL is an error").to_string();
    assert!(error.contains("CACHE_POSTGRES_URL"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");

    let both = Cache::builder().env_from([
        ("CACHE_POSTGRES_URL", "postgres://app:hunter2-pw@db/app"),
        ("REDIS_URL", "redis://127.0.0.1:6390"),
    ]);
    let error = both.expect_err("two remote tiers").to_string();
    assert!(
        error.contains("REDIS_URL") && !error.contains("hunter2"),
        "{error}"
    );

    // Debug of a builder never shows the password either.
    let shown = format!(
        "{:?}",
        Cache::builder().postgres("postgres://app:hunter2-pw@db/app")
    );
    assert!(
        shown.contains("postgres://app:***@db") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_postgres_url_configures_the_tier() {
    let db = PgDatabase::start();
    let url = db.url();
    let cache = Cache::builder()
        .namespace("env")
        .memory(100)
        .env_from([("CACHE_POSTGRES_URL", url.as_str())])
        .unwrap()
        .build()
        .await
        .unwrap();
    cache.set("k", 7u32).await.unwrap();
    let rows = db.sql("SELECT count(*) FROM cache_runtime_entries WHERE key = 'env:k'::bytea");
    assert_eq!(rows.trim(), "1");
    assert!(cache.health().await.is_some_and(|h| h.connected));
}
