//! The global cache: a memory fallback until `install`, the installed cache
//! after it, for `#[cached]` functions without `cache = ..`. In a binary of its
//! own, since `install` holds for the whole process.

use std::sync::atomic::{AtomicU32, Ordering};

use cache_runtime::{cached, Cache};

static LOADS: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = "1h")]
async fn answer(id: u64) -> u64 {
    LOADS.fetch_add(1, Ordering::SeqCst);
    id * 2
}

#[tokio::test]
async fn functions_move_from_the_fallback_to_the_installed_cache() {
    assert_eq!(answer(21).await, 42);
    assert_eq!(answer(21).await, 42);
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        1,
        "the fallback cache served the second call"
    );
    let fallback_hits = cache_runtime::global().stats().hits;
    assert_eq!(fallback_hits, 1);

    let installed = Cache::builder()
        .namespace("installed")
        .memory(100)
        .build()
        .await
        .unwrap();
    cache_runtime::install(installed.clone()).unwrap();
    assert_eq!(cache_runtime::global().namespace(), "installed");

    // The installed cache is empty: the function runs again, then hits there.
    assert_eq!(answer(21).await, 42);
    assert_eq!(answer(21).await, 42);
    assert_eq!(LOADS.load(Ordering::SeqCst), 2);
    assert_eq!(installed.stats().hits, 1);
    assert!(cache_runtime::install(installed).is_err());
}
