//! Concurrent misses run the function once; a cancelled or panicking leader
//! hands over to a waiter.

use std::sync::LazyLock;
use std::time::Duration;

use cache_runtime::{cached, Cache};
use integration_tests::Calls;
use tokio::time::{sleep, timeout};

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1000));

static SLOW: Calls = Calls::new();
#[cached(cache = &*CACHE)]
async fn slow(x: u32) -> u32 {
    SLOW.hit();
    sleep(Duration::from_millis(100)).await;
    x * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_misses_run_once() {
    let handles: Vec<_> = (0..200).map(|_| tokio::spawn(slow(4))).collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), 40);
    }
    assert_eq!(SLOW.get(), 1);
    assert!(CACHE.stats().coalesced >= 1);
}

static CANCELLED: Calls = Calls::new();
#[cached(cache = &*CACHE)]
async fn cancellable(x: u32) -> usize {
    let n = CANCELLED.hit();
    // The first call hangs (it will be cancelled); later calls are quick.
    let wait = if n == 0 { 3600 } else { 0 };
    sleep(Duration::from_secs(wait)).await;
    x as usize + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_leader_hands_over_to_a_waiter() {
    let leader = tokio::spawn(cancellable(1));
    sleep(Duration::from_millis(50)).await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(cancellable(1))).collect();
    sleep(Duration::from_millis(50)).await;
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

static PANICS: Calls = Calls::new();
#[cached(cache = &*CACHE)]
async fn panics_first(x: u32) -> usize {
    let n = PANICS.hit();
    sleep(Duration::from_millis(50)).await;
    if n == 0 {
        panic!("loader failed");
    }
    x as usize + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_reaches_its_caller_only_and_a_waiter_takes_over() {
    let leader = tokio::spawn(panics_first(1));
    sleep(Duration::from_millis(10)).await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(panics_first(1))).collect();
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

static FAILING: Calls = Calls::new();
#[cached(cache = &*CACHE)]
async fn fails_first(x: u32) -> Result<usize, String> {
    let n = FAILING.hit();
    sleep(Duration::from_millis(50)).await;
    if n == 0 {
        return Err("first call fails".into());
    }
    Ok(x as usize + n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_goes_to_its_caller_and_waiters_retry() {
    let leader = tokio::spawn(fails_first(1));
    sleep(Duration::from_millis(10)).await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(fails_first(1))).collect();
    assert_eq!(leader.await.unwrap(), Err("first call fails".into()));
    for w in waiters {
        assert_eq!(w.await.unwrap(), Ok(2));
    }
    assert_eq!(FAILING.get(), 2);
}

static UNLOCKED: Calls = Calls::new();
#[cached(cache = &*CACHE, lock = "none")]
async fn unlocked(x: u32) -> u32 {
    UNLOCKED.hit();
    sleep(Duration::from_millis(100)).await;
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_none_does_not_coalesce() {
    let handles: Vec<_> = (0..5).map(|_| tokio::spawn(unlocked(1))).collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), 1);
    }
    assert_eq!(UNLOCKED.get(), 5);
    assert_eq!(unlocked(1).await, 1);
    assert_eq!(UNLOCKED.get(), 5);
}
