//! Concurrent misses run the function once; a cancelled or panicking leader
//! hands over to a waiter.
//!
//! Who leads is decided by gates, not sleeps: the leader's function holds at
//! a semaphore the test opens, and the test opens it only once every other
//! caller is waiting on the load (the cache's `coalesced` count, one per
//! caller that starts waiting: each test has a cache of its own so the count
//! is its callers'). The runtimes stay multi-threaded, so the callers really
//! race for the flight.

use std::sync::LazyLock;
use std::time::Duration;

use cache_runtime::{cached, Cache};
use integration_tests::{within, Calls};
use tokio::sync::{Barrier, Semaphore};
use tokio::time::timeout;

/// Waits (polling, 10 s at most) until `n` callers wait on `cache`'s loads.
async fn until_waiting(cache: &Cache, n: u64) {
    let waiting = within!(Duration::from_secs(10), cache.stats().coalesced >= n);
    assert!(
        waiting.is_some(),
        "{} callers waiting, not {n}",
        cache.stats().coalesced
    );
}

/// Waits (polling, 10 s at most) until `calls` has counted `n` runs.
async fn until_ran(calls: &Calls, n: usize) {
    let ran = within!(Duration::from_secs(10), calls.get() >= n);
    assert!(ran.is_some(), "{} runs, not {n}", calls.get());
}

static MANY_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1000));
static SLOW: Calls = Calls::new();
static SLOW_GATE: Semaphore = Semaphore::const_new(0);
#[cached(cache = &*MANY_CACHE)]
async fn slow(x: u32) -> u32 {
    SLOW.hit();
    SLOW_GATE.acquire().await.unwrap().forget();
    x * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_misses_run_once() {
    let handles: Vec<_> = (0..200).map(|_| tokio::spawn(slow(4))).collect();
    // The leader holds until the 199 others wait on its load.
    until_waiting(&MANY_CACHE, 199).await;
    assert_eq!(SLOW.get(), 1, "one caller leads");
    SLOW_GATE.add_permits(1);
    for h in handles {
        assert_eq!(h.await.unwrap(), 40);
    }
    assert_eq!(SLOW.get(), 1);
    assert_eq!(MANY_CACHE.stats().coalesced, 199);
}

static CANCEL_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1000));
static CANCELLED: Calls = Calls::new();
#[cached(cache = &*CANCEL_CACHE)]
async fn cancellable(x: u32) -> usize {
    let n = CANCELLED.hit();
    // The first call hangs (it will be cancelled); later calls are quick.
    if n == 0 {
        std::future::pending::<()>().await;
    }
    x as usize + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_leader_hands_over_to_a_waiter() {
    let leader = tokio::spawn(cancellable(1));
    until_ran(&CANCELLED, 1).await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(cancellable(1))).collect();
    until_waiting(&CANCEL_CACHE, 10).await;
    leader.abort();
    for w in waiters {
        let v = timeout(Duration::from_secs(5), w)
            .await
            .expect("waiter hung")
            .unwrap();
        assert_eq!(v, 2, "waiters share the second run's value");
    }
    assert_eq!(CANCELLED.get(), 2);
}

static PANIC_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1000));
static PANICS: Calls = Calls::new();
static PANIC_GATE: Semaphore = Semaphore::const_new(0);
#[cached(cache = &*PANIC_CACHE)]
async fn panics_first(x: u32) -> usize {
    let n = PANICS.hit();
    if n == 0 {
        PANIC_GATE.acquire().await.unwrap().forget();
        panic!("loader failed");
    }
    x as usize + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_reaches_its_caller_only_and_a_waiter_takes_over() {
    let leader = tokio::spawn(panics_first(1));
    until_ran(&PANICS, 1).await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(panics_first(1))).collect();
    until_waiting(&PANIC_CACHE, 10).await;
    PANIC_GATE.add_permits(1);
    let err = leader.await.expect_err("the leader's panic propagates");
    assert!(err.is_panic());
    for w in waiters {
        let v = timeout(Duration::from_secs(5), w)
            .await
            .expect("waiter hung")
            .unwrap();
        assert_eq!(v, 2);
    }
    assert_eq!(PANICS.get(), 2);
    assert_eq!(
        panics_first(1).await,
        2,
        "the cache still works after the panic"
    );
    assert_eq!(PANICS.get(), 2);
}

static FAIL_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1000));
static FAILING: Calls = Calls::new();
static FAIL_GATE: Semaphore = Semaphore::const_new(0);
#[cached(cache = &*FAIL_CACHE)]
async fn fails_first(x: u32) -> Result<usize, String> {
    let n = FAILING.hit();
    if n == 0 {
        FAIL_GATE.acquire().await.unwrap().forget();
        return Err("first call fails".into());
    }
    Ok(x as usize + n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_goes_to_its_caller_and_waiters_retry() {
    let leader = tokio::spawn(fails_first(1));
    until_ran(&FAILING, 1).await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(fails_first(1))).collect();
    until_waiting(&FAIL_CACHE, 10).await;
    FAIL_GATE.add_permits(1);
    assert_eq!(leader.await.unwrap(), Err("first call fails".into()));
    for w in waiters {
        assert_eq!(w.await.unwrap(), Ok(2));
    }
    assert_eq!(FAILING.get(), 2);
}

static UNLOCKED_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1000));
static UNLOCKED: Calls = Calls::new();
/// The first five runs meet here: all five must be running at once.
static UNLOCKED_MEET: LazyLock<Barrier> = LazyLock::new(|| Barrier::new(5));
#[cached(cache = &*UNLOCKED_CACHE, lock = "none")]
async fn unlocked(x: u32) -> u32 {
    if UNLOCKED.hit() < 5 {
        UNLOCKED_MEET.wait().await;
    }
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_none_does_not_coalesce() {
    let handles: Vec<_> = (0..5).map(|_| tokio::spawn(unlocked(1))).collect();
    // Coalesced callers would wait for one run, which waits for four more
    // at the barrier: a hang.
    for h in handles {
        let v = timeout(Duration::from_secs(5), h)
            .await
            .expect("the five runs did not all start: calls were coalesced")
            .unwrap();
        assert_eq!(v, 1);
    }
    assert_eq!(UNLOCKED.get(), 5);
    assert_eq!(UNLOCKED_CACHE.stats().coalesced, 0);
    assert_eq!(unlocked(1).await, 1);
    assert_eq!(UNLOCKED.get(), 5);
}
