//! A store written outside the crate, against the public interface only
//! (`support_store.rs`), serving `#[cached]` functions in write-through and
//! storage-only modes: hits, misses, and another cache's invalidations seen
//! by a second `Cache` over the same store, with a backplane (over tokio
//! broadcast channels) and without one (the confirmation bounds staleness to
//! a second, the contract's promise).

#[path = "support_store.rs"]
mod support_store;

use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};
use integration_tests::Calls;
use support_store::{ChannelBackplane, MapStore};

/// The contract's bound on seeing another process's invalidation.
const BOUND: Duration = Duration::from_secs(1);

async fn cache(
    namespace: &str,
    store: &MapStore,
    backplane: Option<&ChannelBackplane>,
    memory: bool,
) -> Cache {
    let mut builder = Cache::builder().namespace(namespace).store(store.clone());
    if memory {
        builder = builder.memory(100);
    }
    if let Some(backplane) = backplane {
        builder = builder.backplane(backplane.clone());
    }
    builder.build().await.expect("build over the map store")
}

/// Awaits `$call` until it is no longer `$old`, for at most [`BOUND`] (the
/// change is what is awaited: polling, not ordering); how long it took.
macro_rules! seen_within_bound {
    ($call:expr, $old:expr) => {{
        let started = Instant::now();
        loop {
            if $call.await != $old {
                break started.elapsed();
            }
            assert!(
                started.elapsed() < BOUND,
                "the other cache's change was not seen within {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }};
}

/// The health's backplane flag: `Some(subscribed)`, `None` without one.
async fn backplane_up(cache: &Cache) -> Option<bool> {
    cache.health().await.and_then(|h| h.backplane)
}

static WT_BP: Calls = Calls::new();
#[cached(cache = cache, key = "u:{id}", tags = ["users"], ttl = "1h")]
async fn wt_bp(cache: &Cache, id: u64) -> usize {
    let _ = id;
    WT_BP.hit()
}

#[tokio::test]
async fn write_through_with_a_backplane() {
    let (store, backplane) = (MapStore::default(), ChannelBackplane::default());
    let a = cache("wtbp", &store, Some(&backplane), true).await;
    let b = cache("wtbp", &store, Some(&backplane), true).await;
    assert_eq!(backplane_up(&a).await, Some(true));
    assert_eq!(wt_bp(&a, 1).await, 0, "a miss runs the function");
    assert_eq!(wt_bp(&a, 1).await, 0, "a memory hit");
    assert_eq!(store.count("wtbp:"), 1, "written through to the store");
    assert_eq!(wt_bp(&b, 1).await, 0, "the other cache's remote hit");
    assert_eq!(WT_BP.get(), 1);
    a.invalidate_tags(["users"]).await.unwrap();
    assert_eq!(wt_bp(&a, 1).await, 1, "the invalidating cache at once");
    let took = seen_within_bound!(wt_bp(&b, 1), 0);
    eprintln!("seen by the other cache after {took:?}");
}

static WT: Calls = Calls::new();
#[cached(cache = cache, key = "u:{id}", tags = ["users"], ttl = "1h")]
async fn wt(cache: &Cache, id: u64) -> usize {
    let _ = id;
    WT.hit()
}

#[tokio::test]
async fn write_through_without_a_backplane_sees_invalidations_within_a_second() {
    let store = MapStore::default();
    let a = cache("wt", &store, None, true).await;
    let b = cache("wt", &store, None, true).await;
    assert_eq!(backplane_up(&a).await, None, "no backplane to report");
    assert_eq!(wt(&a, 1).await, 0);
    assert_eq!(wt(&b, 1).await, 0, "the other cache's remote hit");
    // Memory serves: the confirmation keeps it trusted without a backplane.
    let calls = store.calls.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..100 {
        assert_eq!(wt(&b, 1).await, 0);
    }
    let after = store.calls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        after - calls < 50,
        "memory hits do not go to the store: {} round trips for 100 hits",
        after - calls
    );
    assert_eq!(WT.get(), 1);
    a.invalidate_tags(["users"]).await.unwrap();
    assert_eq!(wt(&a, 1).await, 1);
    let took = seen_within_bound!(wt(&b, 1), 0);
    eprintln!("seen by the other cache after {took:?}");
}

static SO_BP: Calls = Calls::new();
#[cached(cache = cache, key = "u:{id}", tags = ["users"], ttl = "1h")]
async fn so_bp(cache: &Cache, id: u64) -> usize {
    let _ = id;
    SO_BP.hit()
}

#[tokio::test]
async fn storage_only_with_a_backplane() {
    let (store, backplane) = (MapStore::default(), ChannelBackplane::default());
    let a = cache("sobp", &store, Some(&backplane), false).await;
    let b = cache("sobp", &store, Some(&backplane), false).await;
    assert_eq!(so_bp(&a, 1).await, 0, "a miss");
    assert_eq!(so_bp(&a, 1).await, 0, "a remote hit");
    assert_eq!(so_bp(&b, 1).await, 0, "the other cache's remote hit");
    assert_eq!(SO_BP.get(), 1);
    a.invalidate_tags(["users"]).await.unwrap();
    assert_eq!(so_bp(&a, 1).await, 1);
    seen_within_bound!(so_bp(&b, 1), 0);
}

static SO: Calls = Calls::new();
#[cached(cache = cache, key = "u:{id}", tags = ["users"], ttl = "1h")]
async fn so(cache: &Cache, id: u64) -> usize {
    let _ = id;
    SO.hit()
}

#[tokio::test]
async fn storage_only_without_a_backplane_sees_invalidations_at_once() {
    let store = MapStore::default();
    let a = cache("so", &store, None, false).await;
    let b = cache("so", &store, None, false).await;
    assert_eq!(so(&a, 1).await, 0);
    assert_eq!(so(&b, 1).await, 0);
    assert_eq!(SO.get(), 1);
    a.invalidate_tags(["users"]).await.unwrap();
    assert_eq!(so(&a, 1).await, 1);
    // Every remote hit reads its tags' versions: nothing to wait for.
    assert_eq!(so(&b, 1).await, 1);
    assert_eq!(SO.get(), 2);
}

#[tokio::test]
async fn manual_writes_without_a_backplane_are_seen_within_a_second() {
    let store = MapStore::default();
    let a = cache("manual", &store, None, true).await;
    let b = cache("manual", &store, None, true).await;
    a.set("k", 1u64).await.unwrap();
    assert_eq!(b.get::<u64>("k").await.unwrap(), Some(1));
    assert_eq!(b.get::<u64>("k").await.unwrap(), Some(1));
    a.set("k", 2u64).await.unwrap();
    seen_within_bound!(async { b.get::<u64>("k").await.unwrap() }, Some(1));
    assert_eq!(b.get::<u64>("k").await.unwrap(), Some(2));
    assert!(
        a.delete_matching("k*").await.unwrap() >= 1,
        "walked by ScanStore"
    );
    seen_within_bound!(async { b.get::<u64>("k").await.unwrap() }, Some(2));
}

#[tokio::test]
async fn a_backplane_without_a_store_is_refused() {
    let error = Cache::builder()
        .memory(10)
        .backplane(ChannelBackplane::default())
        .build()
        .await
        .expect_err("nothing for the backplane to carry");
    assert!(error.to_string().contains("backplane"), "{error}");
}
