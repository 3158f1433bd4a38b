//! `Cache::warm` at its edges: a warm function that panics before it
//! returns its future fails that input, and the run goes on.

use cache_runtime::{cached, Cache};

#[cached(cache = cache, key = "edge:{id}", ttl = "1h")]
async fn edge(cache: &Cache, id: u64) -> u64 {
    id
}

#[tokio::test]
async fn a_warm_function_that_panics_before_its_future_fails_the_input() {
    let cache = Cache::memory(1_000);
    let run = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .warm(1..=20u64, 4, |id| {
                    // Panics in the warm function itself, not in its future.
                    assert!(id != 7, "the warm function panics for input 7");
                    let cache = cache.clone();
                    async move { edge(&cache, id).await }
                })
                .await
        }
    })
    .await;
    let summary = run.expect("warm() catches the panic of its function");
    assert_eq!(
        (summary.loaded, summary.fresh, summary.failed),
        (19, 0, 1),
        "{summary:?}"
    );
    assert_eq!(cache.stats().warmed, 20);
    assert_eq!(cache.stats().loads, 19);
}
