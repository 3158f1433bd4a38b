//! Tag invalidation, `#[invalidate]`, and invalidation during a load.

use std::sync::LazyLock;
use std::time::Duration;

use cache_runtime::{cached, invalidate, Cache};
use integration_tests::{within, Calls};
use tokio::sync::Semaphore;

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100_000));

static USERS: Calls = Calls::new();
#[cached(cache = &*CACHE, key = "user:{id}", tags = ["user:{id}", "users"])]
async fn user(id: u64) -> String {
    let n = USERS.hit();
    format!("user {id} v{n}")
}

#[invalidate(cache = &*CACHE, tags = ["user:{id}"])]
async fn rename(id: u64, ok: bool) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err("rename failed".into())
    }
}

#[tokio::test]
async fn tags_invalidate_their_entries_only() {
    let a = user(1).await;
    let b = user(2).await;
    assert_eq!(user(1).await, a);
    CACHE.invalidate_tags(["user:1"]).await.unwrap();
    assert_ne!(user(1).await, a, "user:1 was invalidated");
    assert_eq!(user(2).await, b, "user:2 was not");

    let c = user(2).await;
    assert_eq!(rename(2, false).await, Err("rename failed".into()));
    assert_eq!(user(2).await, c, "an Err does not invalidate");
    assert_eq!(rename(2, true).await, Ok(()));
    assert_ne!(user(2).await, c, "Ok invalidated before the caller got it");

    let before = user(3).await;
    CACHE.invalidate_tags(["users"]).await.unwrap();
    assert_ne!(user(3).await, before, "a shared tag reaches every entry");
}

static SLOW_LOADS: Calls = Calls::new();
/// Holds the first load until the test has invalidated.
static REPORT_GATE: Semaphore = Semaphore::const_new(0);
#[cached(cache = &*CACHE, tags = ["report"])]
async fn slow_report(x: u32) -> usize {
    let n = SLOW_LOADS.hit();
    if n == 0 {
        REPORT_GATE.acquire().await.unwrap().forget();
    }
    x as usize + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_during_a_load_is_not_lost() {
    let load = tokio::spawn(slow_report(1));
    // The function runs (its tag snapshot is taken): now invalidate.
    let started = within!(Duration::from_secs(10), SLOW_LOADS.get() == 1);
    assert!(started.is_some(), "the load started");
    CACHE.invalidate_tags(["report"]).await.unwrap();
    REPORT_GATE.add_permits(1);
    assert_eq!(load.await.unwrap(), 1, "the caller still gets its result");
    assert_eq!(
        slow_report(1).await,
        2,
        "but the entry was born invalid: it reloads"
    );
    assert_eq!(slow_report(1).await, 2);
    assert_eq!(SLOW_LOADS.get(), 2);
}

#[tokio::test]
async fn one_invalidation_reaches_many_entries() {
    let cache = Cache::memory(20_000);
    for i in 0..10_000u32 {
        cache
            .set_with(&format!("k{i}"), i, &Default::default(), ["bulk"])
            .await
            .unwrap();
    }
    assert_eq!(cache.get::<u32>("k9999").await.unwrap(), Some(9999));
    cache.invalidate_tags(["bulk"]).await.unwrap();
    for i in (0..10_000u32).step_by(997) {
        assert_eq!(cache.get::<u32>(&format!("k{i}")).await.unwrap(), None);
    }
    assert_eq!(cache.stats().invalidations, 1);
}
