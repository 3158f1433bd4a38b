//! TTL, stale-while-revalidate, refresh-ahead, fail-safe and profiles.
//!
//! Every test runs on tokio's paused time: cache-runtime's `test-util` feature
//! makes the cache's clock follow tokio's, so `advance` moves entries past
//! their TTL exactly, whatever the machine's load, and a background refresh
//! is held by a gate the test opens, not by a sleep it hopes is long enough.

use std::sync::LazyLock;
use std::time::Duration;

use cache_runtime::{cached, Cache, Policy};
use integration_tests::Calls;
use tokio::sync::{Notify, Semaphore};
use tokio::time::{advance, sleep, timeout, Instant};

/// Lets the spawned tasks of a current-thread runtime run until `done` holds:
/// a bounded poll for background work (a refresh storing its value), which
/// lets no time pass.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("background work did not finish");
}

static STALE_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100));
static STALE: Calls = Calls::new();
/// Holds the refresh until the test adds a permit.
static STALE_GATE: Semaphore = Semaphore::const_new(0);
/// Notified when the refresh's function returns.
static STALE_DONE: Notify = Notify::const_new();
#[cached(cache = &*STALE_CACHE, ttl = "200ms", stale = "10s")]
async fn stale_fn(x: u32) -> usize {
    let n = STALE.hit();
    if n > 0 {
        STALE_GATE.acquire().await.unwrap().forget();
        STALE_DONE.notify_one();
    }
    x as usize * 100 + n
}

#[tokio::test(start_paused = true)]
async fn stale_hit_returns_at_once_and_refreshes_once_in_background() {
    assert_eq!(stale_fn(1).await, 100);
    advance(Duration::from_millis(199)).await;
    assert_eq!(stale_fn(1).await, 100);
    assert_eq!(
        STALE_CACHE.stats().stale_hits,
        0,
        "fresh 1 ms before its TTL"
    );
    advance(Duration::from_millis(2)).await;

    let started = Instant::now();
    let handles: Vec<_> = (0..20).map(|_| tokio::spawn(stale_fn(1))).collect();
    // The refresh is held at its gate all along: a stale hit that waited for
    // it would hang here (and the paused clock would run to the timeout).
    for h in handles {
        let value = timeout(Duration::from_secs(1), h)
            .await
            .expect("a stale hit waited for the refresh")
            .unwrap();
        assert_eq!(value, 100, "the stale value is served");
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "stale hits do not wait");
    until(|| STALE.get() >= 2).await;
    assert_eq!(
        STALE.get(),
        2,
        "one refresh started, and it is still running"
    );
    let stats = STALE_CACHE.stats();
    assert_eq!(stats.stale_hits, 20);
    assert_eq!(stats.refreshes, 1);

    STALE_GATE.add_permits(1);
    STALE_DONE.notified().await;
    // The refresh's function returned; let it store its value (stale hits
    // meanwhile start no other refresh: it still holds the key's flight).
    let mut served = 0;
    for _ in 0..1000 {
        served = stale_fn(1).await;
        if served != 100 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(served, 101, "the refreshed value is served");
    assert_eq!(STALE.get(), 2, "exactly one background refresh");
    assert_eq!(STALE_CACHE.stats().refreshes, 1);
}

static AHEAD_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100));
static AHEAD: Calls = Calls::new();
#[cached(cache = &*AHEAD_CACHE, ttl = "1s", refresh_ahead = 100.0)]
async fn ahead_fn(x: u32) -> usize {
    let n = AHEAD.hit();
    // Paused time: the load takes exactly 20 ms of the test's clock.
    sleep(Duration::from_millis(20)).await;
    x as usize + n
}

static NOT_AHEAD: Calls = Calls::new();
#[cached(cache = &*AHEAD_CACHE, ttl = "1h", refresh_ahead = 0.001)]
async fn not_ahead_fn(x: u32) -> usize {
    NOT_AHEAD.hit();
    // As long a load as ahead_fn's: only beta and the TTL differ.
    sleep(Duration::from_millis(20)).await;
    x as usize
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_refreshes_before_expiry() {
    assert_eq!(ahead_fn(1).await, 1);
    let loaded = Instant::now();
    // Beta at its bound (100) and a 20 ms function: XFetch looks about 2 s
    // ahead, so each hit of this 1 s entry refreshes it early with a
    // probability over 0.4; the current value is returned meanwhile.
    for _ in 0..200 {
        if AHEAD.get() >= 2 {
            break;
        }
        assert_eq!(ahead_fn(1).await, 1, "the current value is returned");
        tokio::task::yield_now().await;
    }
    assert!(AHEAD.get() >= 2, "an early refresh ran");
    assert!(AHEAD_CACHE.stats().early_refreshes >= 1);
    // The refresh's load takes 20 ms: let them pass, and it stores.
    advance(Duration::from_millis(20)).await;
    let mut refreshed = 0;
    for _ in 0..1000 {
        refreshed = ahead_fn(1).await;
        if refreshed >= 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refreshed >= 2, "the refreshed value is served");
    assert!(
        loaded.elapsed() < Duration::from_secs(1),
        "refreshed before the first value expired"
    );

    not_ahead_fn(5).await;
    // 100 ms before expiry, after a load as long as ahead_fn's: with beta at
    // 100 nearly every hit would refresh (XFetch would look ~2 s ahead);
    // with 0.001 it looks 20 µs ahead.
    advance(Duration::from_secs(3600) - Duration::from_millis(100)).await;
    for _ in 0..100 {
        not_ahead_fn(5).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        NOT_AHEAD.get(),
        1,
        "not close enough to expiry for a small beta: no early refresh"
    );
}

static FAIL_SAFE_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100));
static FS: Calls = Calls::new();
#[cached(cache = &*FAIL_SAFE_CACHE, ttl = "100ms", fail_safe = "600ms")]
async fn fail_safe_fn(x: u32) -> Result<u32, String> {
    if FS.hit() == 0 {
        Ok(x)
    } else {
        Err("backend down".into())
    }
}

#[tokio::test(start_paused = true)]
async fn fail_safe_serves_the_old_value_when_the_function_errs() {
    assert_eq!(fail_safe_fn(9).await, Ok(9));
    advance(Duration::from_millis(100)).await;
    assert_eq!(
        fail_safe_fn(9).await,
        Ok(9),
        "expired, the function failed: old value"
    );
    let stats = FAIL_SAFE_CACHE.stats();
    assert_eq!(stats.fail_safe_serves, 1);
    assert_eq!(stats.load_errors, 1);
    // The window's last millisecond: 100 ms of TTL, then 600 ms of fail-safe.
    advance(Duration::from_millis(599)).await;
    assert_eq!(fail_safe_fn(9).await, Ok(9), "still inside the window");
    assert_eq!(FAIL_SAFE_CACHE.stats().fail_safe_serves, 2);
    advance(Duration::from_millis(1)).await;
    assert_eq!(
        fail_safe_fn(9).await,
        Err("backend down".into()),
        "past the fail-safe window"
    );
    assert_eq!(FS.get(), 4);
}

// A cache of its own: tests run concurrently, and the test above counts its
// cache's fail-safe serves.
static FAIL_SAFE_PANIC_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100));
static FS_PANIC: Calls = Calls::new();
#[cached(cache = &*FAIL_SAFE_PANIC_CACHE, ttl = "100ms", fail_safe = "1h")]
async fn fail_safe_panics(x: u32) -> u32 {
    if FS_PANIC.hit() > 0 {
        panic!("backend exploded");
    }
    x
}

#[tokio::test(start_paused = true)]
async fn fail_safe_serves_the_old_value_when_the_function_panics() {
    assert_eq!(fail_safe_panics(3).await, 3);
    advance(Duration::from_millis(99)).await;
    assert_eq!(fail_safe_panics(3).await, 3);
    assert_eq!(FS_PANIC.get(), 1, "fresh: the function did not run");
    advance(Duration::from_millis(1)).await;
    assert_eq!(fail_safe_panics(3).await, 3);
    assert_eq!(FS_PANIC.get(), 2);
    assert_eq!(FAIL_SAFE_PANIC_CACHE.stats().fail_safe_serves, 1);
}

static PROFILED: Calls = Calls::new();
#[cached(cache = cache, profile = "short")]
async fn profiled(cache: &Cache, x: u32) -> u32 {
    PROFILED.hit();
    x
}

static OVERRIDDEN: Calls = Calls::new();
#[cached(cache = cache, profile = "short", ttl = "1h")]
async fn overridden(cache: &Cache, x: u32) -> u32 {
    OVERRIDDEN.hit();
    x
}

static UNKNOWN: Calls = Calls::new();
#[cached(cache = cache, profile = "nope")]
async fn unknown_profile(cache: &Cache, x: u32) -> u32 {
    UNKNOWN.hit();
    x
}

#[tokio::test(start_paused = true)]
async fn profiles_set_options_and_function_arguments_win() {
    let cache = Cache::builder()
        .memory(100)
        .default_ttl(Duration::from_secs(3600))
        .profile("short", Policy::ttl(Duration::from_millis(100)))
        .build()
        .await
        .unwrap();
    profiled(&cache, 1).await;
    overridden(&cache, 1).await;
    advance(Duration::from_millis(99)).await;
    profiled(&cache, 1).await;
    overridden(&cache, 1).await;
    assert_eq!((PROFILED.get(), OVERRIDDEN.get()), (1, 1));
    advance(Duration::from_millis(1)).await;
    profiled(&cache, 1).await;
    overridden(&cache, 1).await;
    assert_eq!(PROFILED.get(), 2, "the profile's 100ms TTL applied");
    assert_eq!(OVERRIDDEN.get(), 1, "the function's own ttl won");

    assert_eq!(unknown_profile(&cache, 4).await, 4);
    assert_eq!(unknown_profile(&cache, 4).await, 4);
    assert_eq!(UNKNOWN.get(), 2, "an unknown profile runs uncached");
    assert!(cache.stats().store_errors >= 2, "and is counted");
}

static DEFAULT_TTL: Calls = Calls::new();
#[cached(cache = cache)]
async fn default_ttl_fn(cache: &Cache) -> u32 {
    DEFAULT_TTL.hit();
    1
}

#[tokio::test(start_paused = true)]
async fn the_caches_default_ttl_applies() {
    let cache = Cache::builder()
        .memory(10)
        .default_ttl(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    default_ttl_fn(&cache).await;
    advance(Duration::from_millis(99)).await;
    default_ttl_fn(&cache).await;
    assert_eq!(DEFAULT_TTL.get(), 1);
    advance(Duration::from_millis(1)).await;
    default_ttl_fn(&cache).await;
    assert_eq!(DEFAULT_TTL.get(), 2);
}
