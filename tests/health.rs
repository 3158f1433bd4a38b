//! `Cache::health_report`: judged over a window, against thresholds set at
//! start-up, with the remote tier's state; real `redis-server` processes
//! from the harness for the remote cases.

use std::time::{Duration, Instant};

use cache_runtime::{Cache, HealthReport, HealthStatus, HealthThresholds, Policy};
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;

/// A memory cache judged over `window`, from 10 calls on.
async fn memory_cache(window: Duration) -> Cache {
    Cache::builder()
        .memory(1_000)
        .health_thresholds(HealthThresholds::default().window(window).min_calls(10))
        .build()
        .await
        .unwrap()
}

/// `hits` hits and `misses` misses through the manual API.
async fn traffic(cache: &Cache, hits: u32, misses: u32) {
    cache.set("present", 1u32).await.unwrap();
    for _ in 0..hits {
        assert_eq!(cache.get::<u32>("present").await.unwrap(), Some(1));
    }
    for i in 0..misses {
        assert_eq!(cache.get::<u32>(&format!("absent{i}")).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_cold_cache_is_healthy() {
    let cache = Cache::memory(100);
    let report = cache.health_report().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert!(report.reasons.is_empty());
    assert_eq!(report.calls, 0);
    assert_eq!((report.hit_ratio, report.error_ratio), (None, None));
    assert_eq!(report.remote, None);
    // A few misses are below min_calls (100 by default): still healthy.
    traffic(&cache, 0, 50).await;
    let report = cache.health_report().await;
    assert_eq!(report.calls, 50);
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.reasons);
    assert_eq!(report.stats.misses, 50);
}

#[tokio::test]
async fn misses_degrade_then_fail_with_reasons() {
    let cache = memory_cache(Duration::from_secs(60)).await;
    traffic(&cache, 70, 30).await;
    let report = cache.health_report().await;
    assert_eq!(report.calls, 100);
    assert_eq!(report.hit_ratio, Some(0.7));
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.reasons.len(), 1, "{:?}", report.reasons);
    let reason = &report.reasons[0];
    assert!(
        reason.starts_with("hit ratio 70.0% over the last ") && reason.ends_with(" s is below 80%"),
        "{reason}"
    );
    assert_eq!(report.status.http_status(), 200);

    traffic(&cache, 0, 100).await;
    let report = cache.health_report().await;
    assert_eq!(report.calls, 200);
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert!(report.status.is_unhealthy());
    assert_eq!(report.status.http_status(), 503);
    assert!(
        report.reasons[0].ends_with("is below 60%"),
        "{:?}",
        report.reasons
    );
}

#[tokio::test]
async fn failing_loads_raise_the_error_ratio() {
    let cache = memory_cache(Duration::from_secs(60)).await;
    for i in 0..20 {
        let key = format!("k{i}");
        let got: Result<u32, String> = cache
            .get_or_load(&key, &Policy::new(), [""; 0], || async {
                Err("down".into())
            })
            .await;
        assert!(got.is_err());
    }
    let report = cache.health_report().await;
    assert_eq!(report.error_ratio, Some(1.0));
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert!(
        report
            .reasons
            .iter()
            .any(|r| r.starts_with("error ratio 100.0% over the last ")
                && r.ends_with("is above 5%")),
        "{:?}",
        report.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_recovers_once_the_window_passes() {
    let window = Duration::from_secs(2);
    let cache = memory_cache(window).await;
    traffic(&cache, 0, 50).await;
    let bad = Instant::now();
    let report = cache.health_report().await;
    assert_eq!(
        report.status,
        HealthStatus::Unhealthy,
        "{:?}",
        report.reasons
    );
    assert_eq!(report.hit_ratio, Some(0.0));
    let healthy = within!(Duration::from_secs(6), {
        cache.health_report().await.status.is_healthy()
    });
    assert!(
        healthy.is_some(),
        "healthy again once the misses left the window"
    );
    let took = bad.elapsed();
    // Sampled every window / 12: the misses leave between one window and
    // one window and a twelfth (plus scheduling) after they happened.
    assert!(
        took >= window - Duration::from_millis(200),
        "recovered after {took:?}"
    );
    let report = cache.health_report().await;
    assert_eq!(report.calls, 0);
    assert_eq!(report.stats.misses, 50, "lifetime totals stay");
    assert!(report.window >= window, "{:?}", report.window);
    assert!(report.window <= window * 2, "{:?}", report.window);
}

fn judged_down(report: &HealthReport) -> bool {
    report.remote.is_some_and(|r| !r.connected)
}

/// Whether some reason ends with `tail`.
fn says(report: &HealthReport, tail: &str) -> bool {
    report.reasons.iter().any(|r| r.ends_with(tail))
}

const STILL_SERVES: &str = "the memory tier still serves";
const NOTHING_SERVES: &str = "no memory tier is in use: every call runs its function uncached";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_is_degraded_while_memory_serves_then_unhealthy_and_heals() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("health-wt")
        .memory(1_000)
        .redis(server.url())
        // A short timeout: the report's PING fails fast when Redis hangs.
        .remote_timeout(Duration::from_millis(50))
        // No outage grace, so that memory is skipped once unconfirmed
        // (with one it serves on: tests/availability.rs).
        .outage_grace(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let report = cache.health_report().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.reasons);
    let remote = report.remote.expect("a remote tier");
    assert!(remote.connected && remote.ping.is_some());
    assert_eq!(remote.backplane, Some(true));

    // Redis hangs: connections stay open, so the memory tier is trusted for
    // up to a second after Redis last confirmed the tag versions (every
    // 250 ms). Meanwhile it still serves: degraded.
    server.freeze();
    let report = cache.health_report().await;
    assert!(judged_down(&report), "{report:?}");
    assert_eq!(
        report.status,
        HealthStatus::Degraded,
        "{:?}",
        report.reasons
    );
    assert!(says(&report, STILL_SERVES), "{:?}", report.reasons);
    // Then memory is skipped too (it may have missed invalidations): every
    // call runs its function.
    let unhealthy = within!(Duration::from_secs(5), {
        let report = cache.health_report().await;
        report.status.is_unhealthy() && says(&report, NOTHING_SERVES)
    });
    assert!(unhealthy.is_some(), "{:?}", cache.health_report().await);
    server.thaw();
    let healed = within!(Duration::from_secs(15), {
        cache.health_report().await.status.is_healthy()
    });
    assert!(healed.is_some(), "{:?}", cache.health_report().await);

    // Redis dies: the backplane's connection drops, and memory is not
    // trusted from that moment.
    dies_and_heals(&mut server, &cache).await;
}

/// Kills `server`: `cache` is unhealthy at once, as nothing serves; and
/// healthy again after a restart.
async fn dies_and_heals(server: &mut RedisServer, cache: &Cache) {
    server.kill();
    let report = cache.health_report().await;
    assert!(judged_down(&report), "{report:?}");
    assert_eq!(
        report.status,
        HealthStatus::Unhealthy,
        "{:?}",
        report.reasons
    );
    assert!(says(&report, NOTHING_SERVES), "{:?}", report.reasons);
    server.restart();
    let healed = within!(Duration::from_secs(15), {
        cache.health_report().await.status.is_healthy()
    });
    assert!(healed.is_some(), "{:?}", cache.health_report().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_only_is_unhealthy_without_redis_and_heals() {
    let mut server = RedisServer::start();
    let cache = integration_tests::storage_only(&server, "health-so").await;
    let report = cache.health_report().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.reasons);

    dies_and_heals(&mut server, &cache).await;
}

#[tokio::test]
async fn the_json_shape_is_pinned() {
    let cache = memory_cache(Duration::from_secs(60)).await;
    traffic(&cache, 70, 30).await;
    let report = cache.health_report().await;
    let mut json = serde_json::to_value(&report).unwrap();
    let window = json["window_s"].take();
    assert!(
        window.as_f64().is_some_and(|w| (0.0..60.0).contains(&w)),
        "{window}"
    );
    let reason = report.reasons[0].clone();
    assert_eq!(
        json,
        serde_json::json!({
            "status": "degraded",
            "reasons": [reason],
            "window_s": null,
            "calls": 100,
            "hit_ratio": 0.7,
            "error_ratio": 0.0,
            "remote": null,
            "stats": {
                "hits": 70, "remote_hits": 0, "misses": 30, "stale_hits": 0,
                "loads": 0, "load_errors": 0, "store_errors": 0, "refreshes": 0,
                "early_refreshes": 0, "fail_safe_serves": 0, "coalesced": 0,
                "evictions": 0, "invalidations": 0, "decode_errors": 0,
                "corrupt_entries": 0, "oversized_entries": 0, "schema_mismatches": 0, "invalidation_failures": 0, "pending_invalidations": 0,
                "warmed": 0, "listener_panics": 0, "events_dropped": 0, "hit_ratio": 0.7
            }
        })
    );
    let names: Vec<&str> = [
        HealthStatus::Healthy,
        HealthStatus::Degraded,
        HealthStatus::Unhealthy,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    assert_eq!(names, ["healthy", "degraded", "unhealthy"]);
    assert_eq!(
        serde_json::to_string(&HealthStatus::Unhealthy).unwrap(),
        "\"unhealthy\""
    );
}

#[tokio::test]
async fn remote_fields_serialize_as_health_does() {
    let server = RedisServer::start();
    let cache = integration_tests::write_through(&server, "health-json").await;
    let json = serde_json::to_value(cache.health_report().await).unwrap();
    let remote = json["remote"].as_object().expect("an object");
    let mut keys: Vec<&str> = remote.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "backplane",
            "breaker",
            "connected",
            "pending_invalidations",
            "ping_ms"
        ]
    );
    assert_eq!(json["remote"]["breaker"], "closed");
}

/// The README's endpoint: the report as JSON, `503` when unhealthy.
async fn health_endpoint(
    axum::extract::State(cache): axum::extract::State<Cache>,
) -> impl axum::response::IntoResponse {
    use axum::http::{header, StatusCode};
    let report = cache.health_report().await;
    let code = if report.status.is_unhealthy() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = serde_json::to_string(&report).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

#[tokio::test]
async fn an_axum_endpoint_answers_503_when_unhealthy() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let cache = memory_cache(Duration::from_secs(60)).await;
    let app = axum::Router::new()
        .route("/health/cache", axum::routing::get(health_endpoint))
        .with_state(cache.clone());
    let ask = || {
        let request = http::Request::get("/health/cache")
            .body(axum::body::Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    };
    let response = ask().await.unwrap();
    assert_eq!(response.status(), 200);

    traffic(&cache, 0, 100).await;
    let response = ask().await.unwrap();
    assert_eq!(response.status(), 503);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "unhealthy");
    assert_eq!(json["calls"], 100);
}
