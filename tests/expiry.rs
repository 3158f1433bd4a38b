//! TTL, stale-while-revalidate, refresh-ahead, fail-safe and profiles.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache, Policy};
use integration_tests::Calls;
use tokio::time::sleep;

static STALE_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100));
static STALE: Calls = Calls::new();
#[cached(cache = &*STALE_CACHE, ttl = "200ms", stale = "10s")]
async fn stale_fn(x: u32) -> usize {
    let n = STALE.hit();
    if n > 0 {
        sleep(Duration::from_millis(300)).await;
    }
    x as usize * 100 + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_hit_returns_at_once_and_refreshes_once_in_background() {
    assert_eq!(stale_fn(1).await, 100);
    sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let handles: Vec<_> = (0..20).map(|_| tokio::spawn(stale_fn(1))).collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), 100, "the stale value is served");
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "stale hits do not wait for the refresh"
    );
    sleep(Duration::from_millis(600)).await;
    assert_eq!(STALE.get(), 2, "exactly one background refresh");
    let stats = STALE_CACHE.stats();
    assert_eq!(stats.stale_hits, 20);
    assert_eq!(stats.refreshes, 1);
    assert_eq!(stale_fn(1).await, 101, "the refreshed value is served");
}

static AHEAD_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100));
static AHEAD: Calls = Calls::new();
#[cached(cache = &*AHEAD_CACHE, ttl = "1s", refresh_ahead = 100.0)]
async fn ahead_fn(x: u32) -> usize {
    let n = AHEAD.hit();
    sleep(Duration::from_millis(20)).await;
    x as usize + n
}

static NOT_AHEAD: Calls = Calls::new();
#[cached(cache = &*AHEAD_CACHE, ttl = "1h", refresh_ahead = 0.001)]
async fn not_ahead_fn(x: u32) -> usize {
    NOT_AHEAD.hit();
    x as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_refreshes_before_expiry() {
    assert_eq!(ahead_fn(1).await, 1);
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
    sleep(Duration::from_millis(300)).await;
    assert!(AHEAD.get() >= 2, "an early refresh ran");
    assert!(ahead_fn(1).await >= 2, "the refreshed value is served");
    assert!(AHEAD_CACHE.stats().early_refreshes >= 1);

    for _ in 0..100 {
        not_ahead_fn(5).await;
    }
    assert_eq!(
        NOT_AHEAD.get(),
        1,
        "far from expiry with a small beta: no early refresh"
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

#[tokio::test]
async fn fail_safe_serves_the_old_value_when_the_function_errs() {
    assert_eq!(fail_safe_fn(9).await, Ok(9));
    sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fail_safe_fn(9).await,
        Ok(9),
        "expired, the function failed: old value"
    );
    let stats = FAIL_SAFE_CACHE.stats();
    assert_eq!(stats.fail_safe_serves, 1);
    assert_eq!(stats.load_errors, 1);
    sleep(Duration::from_millis(700)).await;
    assert_eq!(
        fail_safe_fn(9).await,
        Err("backend down".into()),
        "past the fail-safe window"
    );
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

#[tokio::test]
async fn fail_safe_serves_the_old_value_when_the_function_panics() {
    assert_eq!(fail_safe_panics(3).await, 3);
    sleep(Duration::from_millis(200)).await;
    assert_eq!(fail_safe_panics(3).await, 3);
    assert_eq!(FS_PANIC.get(), 2);
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

#[tokio::test]
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
    profiled(&cache, 1).await;
    overridden(&cache, 1).await;
    assert_eq!((PROFILED.get(), OVERRIDDEN.get()), (1, 1));
    sleep(Duration::from_millis(200)).await;
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

#[tokio::test]
async fn the_caches_default_ttl_applies() {
    let cache = Cache::builder()
        .memory(10)
        .default_ttl(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    default_ttl_fn(&cache).await;
    default_ttl_fn(&cache).await;
    assert_eq!(DEFAULT_TTL.get(), 1);
    sleep(Duration::from_millis(200)).await;
    default_ttl_fn(&cache).await;
    assert_eq!(DEFAULT_TTL.get(), 2);
}
