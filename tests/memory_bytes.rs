//! The memory tier bounded in bytes (`.memory_bytes(n)`, `CACHE_MEMORY_BYTES`):
//! large values, through the manual API and the HTTP layer, stay within the
//! bound (the tier's weight and the process's resident memory), the entry
//! bound still holds beside it, and a value larger than the bound is
//! returned but not kept.
//!
//! The tests of this file measure the process's resident memory, so they
//! run one at a time (`ONE_AT_A_TIME`), each with the allocations of the
//! others freed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::routing::get;
use axum::Router;
use cache_runtime::http::CacheLayer;
use cache_runtime::{Cache, Policy};
use http_body_util::BodyExt;
use tower::ServiceExt;

const MIB: u64 = 1 << 20;
const BOUND: u64 = 64 * MIB;
const VALUE: usize = 700_000;
const VALUES: usize = 2_000;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process's resident memory, in bytes (`/proc/self/statm`).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}

/// A distinct 700 kB value: its own allocation, as a response body would be.
fn value(i: usize) -> String {
    let mut v = format!("{i:08}");
    v.push_str(&"x".repeat(VALUE - v.len()));
    v
}

async fn bounded(entries: usize) -> Cache {
    Cache::builder()
        .memory(entries)
        .memory_bytes(BOUND)
        .build()
        .await
        .expect("a memory cache")
}

#[tokio::test]
async fn large_manual_values_stay_within_the_byte_bound() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cache = bounded(10_000).await;
    let start = rss();
    let mut at_half = 0;
    for i in 0..VALUES {
        cache.set(&format!("page:{i}"), value(i)).await.unwrap();
        assert!(
            cache.memory_weight() <= BOUND,
            "{} after {i}",
            cache.memory_weight()
        );
        if i == VALUES / 2 {
            at_half = rss();
        }
    }
    let end = rss();
    let held = cache.memory_len();
    eprintln!(
        "{VALUES} x {VALUE} B with a 64 MiB bound: {held} entries, weight {} B, RSS {} -> {} -> {} MiB",
        cache.memory_weight(),
        start / MIB,
        at_half / MIB,
        end / MIB
    );
    // About 64 MiB of 700 kB values, less what the shards' shares leave over.
    assert!((40..=96).contains(&held), "{held} entries held");
    assert!(cache.memory_weight() >= held as u64 * VALUE as u64);
    // Not linear: 2,000 values without the bound are 1.4 GB. The bound, the
    // allocator's free lists and the values in flight, not the count.
    assert!(
        end.saturating_sub(start) < 3 * BOUND,
        "RSS grew {} MiB",
        (end - start) / MIB
    );
    assert!(
        end.saturating_sub(at_half) < BOUND,
        "RSS grew {} MiB in the second half",
        (end - at_half) / MIB
    );
    // What is held is served from memory, whole.
    let last = format!("page:{}", VALUES - 1);
    assert_eq!(
        cache.get::<String>(&last).await.unwrap(),
        Some(value(VALUES - 1))
    );
    assert!(cache.stats().evictions >= (VALUES - held) as u64);
}

#[tokio::test]
async fn the_entry_bound_still_holds_beside_the_byte_bound() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cache = bounded(100).await;
    for i in 0..2_000u64 {
        cache.set(&format!("n:{i}"), i).await.unwrap();
    }
    assert!(cache.memory_len() <= 100, "{} entries", cache.memory_len());
    assert!(cache.memory_len() >= 50, "{} entries", cache.memory_len());
    assert!(cache.memory_weight() <= BOUND);
    // And `.memory_weighted` with `.memory`: both hold too.
    let cache = Cache::builder()
        .memory_weighted(1_000, |v| {
            v.downcast_ref::<String>().map_or(1, |s| s.len() as u64)
        })
        .memory(20)
        .build()
        .await
        .unwrap();
    for i in 0..500 {
        cache
            .set(&format!("s:{i}"), "y".repeat(i % 7))
            .await
            .unwrap();
        assert!(cache.memory_len() <= 20 && cache.memory_weight() <= 1_000);
    }
}

#[tokio::test]
async fn a_value_larger_than_the_bound_is_returned_but_not_kept() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cache = Cache::builder()
        .memory_bytes(4 * MIB)
        .build()
        .await
        .unwrap();
    let loads = AtomicUsize::new(0);
    let big = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>("z".repeat(5 * MIB as usize))
    };
    for _ in 0..2 {
        let got = cache
            .get_or_load("big", &Policy::new(), ["blobs"], big)
            .await
            .unwrap();
        assert_eq!(got.len(), 5 * MIB as usize);
    }
    // Not kept, so each call loads it again.
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    assert_eq!((cache.memory_len(), cache.memory_weight()), (0, 0));
    // A value within the bound is kept.
    cache.set("small", "z".repeat(1000)).await.unwrap();
    assert_eq!(cache.memory_len(), 1);
    assert!(cache.get::<String>("small").await.unwrap().is_some());
}

/// An origin answering every path with a distinct 700 kB body, fresh for a minute.
async fn origin(calls: axum::extract::State<Arc<AtomicUsize>>) -> Response<Body> {
    let n = calls.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .header("cache-control", "max-age=60")
        .header("content-type", "text/plain")
        .body(Body::from(value(n)))
        .unwrap()
}

#[tokio::test]
async fn large_http_bodies_stay_within_the_byte_bound() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cache = bounded(10_000).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/{*path}", get(origin))
        .with_state(calls.clone())
        .layer(CacheLayer::new(cache.clone()));
    let start = rss();
    for i in 0..VALUES {
        let request = Request::builder()
            .uri(format!("/page/{i}"))
            .header("host", "example.test")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), VALUE);
        assert!(
            cache.memory_weight() <= BOUND,
            "{} after {i}",
            cache.memory_weight()
        );
    }
    let end = rss();
    let held = cache.memory_len();
    eprintln!(
        "HTTP: {VALUES} bodies of {VALUE} B with a 64 MiB bound: {held} entries, RSS {} -> {} MiB",
        start / MIB,
        end / MIB
    );
    assert!((40..=96).contains(&held), "{held} entries held");
    assert!(
        end.saturating_sub(start) < 3 * BOUND,
        "RSS grew {} MiB",
        (end - start) / MIB
    );
    // The last page is still held: served without the origin.
    let before = calls.load(Ordering::SeqCst);
    let request = Request::builder()
        .uri(format!("/page/{}", VALUES - 1))
        .header("host", "example.test")
        .body(Body::empty())
        .unwrap();
    let body = app
        .oneshot(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(body.to_bytes().len(), VALUE);
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn cache_memory_bytes_from_the_environment_bounds_the_tier() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cache = Cache::builder()
        .memory(10_000)
        .env_from([("CACHE_MEMORY_BYTES", "8MiB")])
        .unwrap()
        .build()
        .await
        .unwrap();
    for i in 0..100 {
        cache.set(&format!("e:{i}"), value(i)).await.unwrap();
    }
    assert!(
        cache.memory_weight() <= 8 * MIB,
        "{}",
        cache.memory_weight()
    );
    assert!(cache.memory_len() <= 12, "{}", cache.memory_len());
    for bad in ["64 M", "lots", "-5MB", "0"] {
        let error = Cache::builder()
            .memory(10)
            .env_from([("CACHE_MEMORY_BYTES", bad)])
            .expect_err("malformed")
            .to_string();
        assert!(error.contains("CACHE_MEMORY_BYTES"), "{bad}: {error}");
    }
}

#[tokio::test]
async fn values_read_from_redis_are_weighed_too() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = integration_tests::redis_harness::RedisServer::start();
    let cache = |bytes: u64| {
        Cache::builder()
            .namespace("weighed")
            .memory(10_000)
            .memory_bytes(bytes)
            .redis(server.url())
            .build()
    };
    let writer = cache(BOUND).await.unwrap();
    for i in 0..100 {
        writer.set(&format!("r:{i}"), value(i)).await.unwrap();
    }
    // Another process's tier fills from Redis alone, within its own bound.
    let reader = cache(8 * MIB).await.unwrap();
    for i in 0..100 {
        let got: Option<String> = reader.get(&format!("r:{i}")).await.unwrap();
        assert_eq!(got.map(|v| v.len()), Some(VALUE));
        assert!(
            reader.memory_weight() <= 8 * MIB,
            "{}",
            reader.memory_weight()
        );
    }
    assert!(reader.stats().remote_hits >= 100);
    assert!(
        (6..=12).contains(&reader.memory_len()),
        "{}",
        reader.memory_len()
    );
}
