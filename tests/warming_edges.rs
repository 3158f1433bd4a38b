//! `Cache::warm` at its edges: a warm function that panics before it
//! returns its future fails that input, and the run goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// An input whose call never returns fails at the time limit (30 s by
/// default), and the run ends; time is paused, so the test takes no 30 s.
#[tokio::test(start_paused = true)]
async fn an_input_that_never_returns_fails_at_the_default_limit() {
    let cache = Cache::memory(1_000);
    let started = tokio::time::Instant::now();
    let run = cache.warm(1..=5u64, 2, |id| {
        let cache = cache.clone();
        async move {
            if id == 3 {
                std::future::pending::<()>().await;
            }
            edge(&cache, id).await
        }
    });
    let summary = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("warm() returns once the hung input's time is up");
    assert_eq!(
        (summary.loaded, summary.fresh, summary.failed),
        (4, 0, 1),
        "{summary:?}"
    );
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(31)).contains(&took),
        "the limit is 30 s: {took:?}"
    );
}

/// `CacheBuilder::warm_timeout` sets the limit.
#[tokio::test(start_paused = true)]
async fn the_limit_is_configurable() {
    let cache = Cache::builder()
        .memory(1_000)
        .warm_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let summary = cache
        .warm([1u64], 1, |_| std::future::pending::<()>())
        .await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(3)).contains(&took),
        "{took:?}"
    );
}

#[path = "captured_logs.rs"]
mod captured_logs;

/// Log lines at INFO and above (one global subscriber for this binary).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    captured_logs::global(tracing::Level::INFO)
}

/// A run whose only call hangs still logs its progress every 5 s, until
/// the call's time is up (30 s: lines at 5, 10, 15, 20 and 25 s).
#[tokio::test(start_paused = true)]
async fn progress_is_logged_on_a_timer_while_a_call_hangs() {
    let logs = logs();
    let cache = Cache::builder()
        .namespace("we_progress")
        .memory(1_000)
        .build()
        .await
        .unwrap();
    let summary = cache
        .warm([1u64], 1, |_| std::future::pending::<()>())
        .await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let lines = text
        .lines()
        .filter(|l| l.contains("we_progress") && l.contains("cache warming in progress"))
        .count();
    assert!(lines >= 5, "{lines} progress lines in 30 s:\n{text}");
}
