//! README (Metrics): a dropped cache's series stay in the application's
//! exporter until the exporter forgets idle series. `metrics-exporter-prometheus`
//! does with `PrometheusBuilder::idle_timeout`: the dropped cache's series go
//! once idle that long, while a live cache's, updated by its drain, stay.
//!
//! Its own binary: it installs a recorder with an idle timeout. The exporter
//! reads a real clock (no mock is public), so the timeout is short and the
//! test polls for the outcome within a bounded time.

use std::collections::BTreeMap;
use std::time::Duration;

use cache_runtime::{cached, Cache};
use integration_tests::within;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Longer than the drain's period (500 ms), so a live cache's gauges and
/// growing counters never go idle.
const IDLE: Duration = Duration::from_secs(2);

fn recorder() -> PrometheusHandle {
    PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::ALL, Some(IDLE))
        .install_recorder()
        .expect("the only recorder of this test binary")
}

/// The `cache` label of every sample rendered now, with the sample's name.
fn series(handle: &PrometheusHandle) -> Vec<(String, BTreeMap<String, String>, f64)> {
    handle
        .render()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let labels = labels
                .trim_end_matches('}')
                .split("\",")
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect();
            Some((name.to_string(), labels, value.parse().ok()?))
        })
        .collect()
}

/// Whether any sample carries `cache="{namespace}"`.
fn reports(handle: &PrometheusHandle, namespace: &str) -> bool {
    series(handle)
        .iter()
        .any(|(_, labels, _)| labels.get("cache").map(String::as_str) == Some(namespace))
}

/// `cache_gets_total{cache, result="hit"}` summed over functions; `None`
/// when absent.
fn hits(handle: &PrometheusHandle, namespace: &str) -> Option<f64> {
    let found: Vec<f64> = series(handle)
        .into_iter()
        .filter(|(name, labels, _)| {
            name == "cache_gets_total"
                && labels.get("cache").map(String::as_str) == Some(namespace)
                && labels.get("result").map(String::as_str) == Some("hit")
        })
        .map(|(_, _, value)| value)
        .collect();
    (!found.is_empty()).then(|| found.iter().sum())
}

/// `cache_memory_entries{cache}`, the drain's gauge, if present.
fn entries_gauge(handle: &PrometheusHandle, namespace: &str) -> bool {
    series(handle).iter().any(|(name, labels, _)| {
        name == "cache_memory_entries" && labels.get("cache").map(String::as_str) == Some(namespace)
    })
}

async fn memory_cache(namespace: &str) -> Cache {
    Cache::builder()
        .namespace(namespace)
        .memory(100)
        .build()
        .await
        .expect("a memory cache")
}

#[cached(name = "metrics_idle::item", cache = cache, ttl = "1h")]
async fn item(cache: &Cache, n: u64) -> u64 {
    n + 1
}

#[tokio::test]
async fn a_dropped_caches_series_leave_the_exporter_after_its_idle_timeout() {
    let handle = recorder();
    let live = memory_cache("idle_live").await;
    let gone = memory_cache("idle_gone").await;
    for cache in [&live, &gone] {
        assert_eq!(item(cache, 1).await, 2);
        assert_eq!(item(cache, 1).await, 2);
    }
    let both = within!(
        Duration::from_secs(5),
        hits(&handle, "idle_live").is_some() && hits(&handle, "idle_gone").is_some()
    );
    assert!(both.is_some(), "both caches' gets reported");

    drop(gone);
    // The live cache keeps hitting: its drain reports its gets and gauges
    // every 500 ms. The dropped cache's drain made its last report.
    let removed = within!(Duration::from_secs(4 * IDLE.as_secs()), {
        item(&live, 1).await;
        !reports(&handle, "idle_gone")
    });
    assert!(
        removed.is_some(),
        "the dropped cache's series left after the idle timeout"
    );
    assert!(
        hits(&handle, "idle_live").is_some(),
        "the live cache's gets stay"
    );
    assert!(
        entries_gauge(&handle, "idle_live"),
        "the live cache's gauge stays"
    );

    // Two more reports of the live cache's drain (each at least a period
    // apart): the dropped cache's drain, had it run on, would have reported
    // again by then; its series stay gone.
    for _ in 0..2 {
        let before = hits(&handle, "idle_live").unwrap_or(0.0);
        let grew = within!(Duration::from_secs(5), {
            item(&live, 1).await;
            hits(&handle, "idle_live").unwrap_or(0.0) > before
        });
        assert!(grew.is_some(), "the live cache's drain reports");
    }
    assert!(
        !reports(&handle, "idle_gone"),
        "the dropped cache reports nothing more"
    );
}
