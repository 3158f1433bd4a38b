//! The `metrics` feature and the events it is built on: exact counts per
//! label after known calls, read from a real Prometheus recorder's scrape
//! (installed once for this test binary: every test uses a namespace of
//! its own), and a user listener told of every kind of event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cache_runtime::events::{
    Coalesced, Evict, FailSafe, FaultKind, Get, GetResult, Invalidate, Listener, Load, Refresh,
    RemoteOp, StoreFault,
};
use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's recorder, installed by the first test that needs it.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this test binary")
    })
}

/// One sample of a scrape: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// Every sample of the Prometheus text `scrape`.
fn samples(scrape: &str) -> Vec<(Series, f64)> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect();
            Some(((name.to_string(), labels), value.parse().ok()?))
        })
        .collect()
}

/// The value of the sample `name` whose labels are exactly `labels`; 0 when
/// absent (a counter not yet incremented).
fn value(name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples(&recorder().render())
        .into_iter()
        .find(|((n, l), _)| n == name && *l == want)
        .map_or(0.0, |(_, v)| v)
}

/// Whether any sample carries `cache="{namespace}"`.
fn reports(namespace: &str) -> bool {
    samples(&recorder().render())
        .iter()
        .any(|((_, labels), _)| labels.get("cache").map(String::as_str) == Some(namespace))
}

/// Polls until `name{labels}` reads `expected` (the drain reports every
/// 500 ms); the value read last.
async fn settles(name: &str, labels: &[(&str, &str)], expected: f64) -> f64 {
    within!(Duration::from_secs(3), value(name, labels) == expected);
    value(name, labels)
}

/// A memory-only cache (with metrics, the default).
async fn memory_cache(namespace: &str, capacity: usize) -> Cache {
    Cache::builder()
        .namespace(namespace)
        .memory(capacity)
        .build()
        .await
        .expect("a memory cache")
}

#[cached(name = "metrics::square", cache = cache, ttl = "1h")]
async fn square(cache: &Cache, n: u64) -> Result<u64, String> {
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n * n)
}

#[cached(name = "metrics::soon_stale", cache = cache, ttl = "100ms", stale = "1h")]
async fn soon_stale(cache: &Cache, n: u64) -> u64 {
    n + 1
}

#[tokio::test]
async fn gets_loads_and_invalidations_count_exactly_per_function() {
    recorder();
    let ns = "m_counts";
    let cache = memory_cache(ns, 1000).await;

    assert_eq!(square(&cache, 3).await, Ok(9)); // miss, load ok
    assert_eq!(square(&cache, 3).await, Ok(9)); // hit
    assert_eq!(square(&cache, 3).await, Ok(9)); // hit
    assert!(square(&cache, 0).await.is_err()); // miss, load error (not stored)
    assert!(square(&cache, 0).await.is_err()); // miss, load error

    assert_eq!(soon_stale(&cache, 1).await, 2); // miss, load ok
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(soon_stale(&cache, 1).await, 2); // stale, refresh (a load)

    // The manual API: no function label.
    cache.set("k", 1u32).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1)); // hit
    assert_eq!(cache.get::<u32>("absent").await.unwrap(), None); // miss

    cache.invalidate_tags(["a", "b"]).await.unwrap();
    cache.invalidate_tags(["c"]).await.unwrap();

    let sq = [("cache", ns), ("function", "metrics::square")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = sq.to_vec();
        labels.push(extra);
        labels
    };
    assert_eq!(
        settles("cache_gets_total", &with(("result", "hit")), 2.0).await,
        2.0
    );
    assert_eq!(
        settles("cache_gets_total", &with(("result", "miss")), 3.0).await,
        3.0
    );
    assert_eq!(value("cache_loads_total", &with(("outcome", "ok"))), 1.0);
    assert_eq!(value("cache_loads_total", &with(("outcome", "error"))), 2.0);
    // Every run of the function is timed, the failed ones too.
    assert_eq!(value("cache_load_duration_seconds_count", &sq), 3.0);

    let st = [("cache", ns), ("function", "metrics::soon_stale")];
    let stale = [st[0], st[1], ("result", "stale")];
    assert_eq!(settles("cache_gets_total", &stale, 1.0).await, 1.0);
    assert_eq!(value("cache_refreshes_total", &st), 1.0);
    let refreshed = [st[0], st[1], ("outcome", "ok")];
    // The first load and the background refresh.
    assert_eq!(settles("cache_loads_total", &refreshed, 2.0).await, 2.0);

    let manual_hit = [("cache", ns), ("result", "hit")];
    let manual_miss = [("cache", ns), ("result", "miss")];
    assert_eq!(settles("cache_gets_total", &manual_hit, 1.0).await, 1.0);
    assert_eq!(value("cache_gets_total", &manual_miss), 1.0);
    assert_eq!(value("cache_invalidations_total", &[("cache", ns)]), 3.0);
    assert_eq!(
        value("cache_memory_entries", &[("cache", ns)]),
        cache.memory_len() as f64
    );

    // For the README's sample: `METRICS_SCRAPE=path cargo test --test metrics`.
    if let Ok(path) = std::env::var("METRICS_SCRAPE") {
        std::fs::write(path, recorder().render()).expect("write the scrape");
    }

    // The metrics and `Stats` count the same calls.
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.stale_hits), (3, 5, 1));
    assert_eq!(
        (stats.loads, stats.load_errors, stats.invalidations),
        (5, 2, 3)
    );
}

#[tokio::test]
async fn gets_of_a_dropped_cache_are_still_reported() {
    recorder();
    let ns = "m_dropped";
    let cache = memory_cache(ns, 100).await;
    assert_eq!(square(&cache, 5).await, Ok(25));
    assert_eq!(square(&cache, 5).await, Ok(25));
    assert_eq!(square(&cache, 5).await, Ok(25));
    // Dropped before its drain ever ran: the drain's last round reports it.
    drop(cache);
    let hits = [
        ("cache", ns),
        ("function", "metrics::square"),
        ("result", "hit"),
    ];
    assert_eq!(settles("cache_gets_total", &hits, 2.0).await, 2.0);
}

#[tokio::test]
async fn evictions_count_as_the_stats_do() {
    recorder();
    let ns = "m_evict";
    let cache = memory_cache(ns, 10).await;
    for i in 0..200u32 {
        cache.set(&format!("k{i}"), i).await.unwrap();
    }
    let evicted = cache.stats().evictions;
    assert!(evicted >= 150, "{evicted}");
    let labels = [("cache", ns)];
    assert_eq!(value("cache_evictions_total", &labels), evicted as f64);
    let entries = settles("cache_memory_entries", &labels, cache.memory_len() as f64).await;
    assert_eq!(entries, cache.memory_len() as f64);
}

#[tokio::test]
async fn a_cache_built_with_metrics_false_reports_nothing() {
    recorder();
    let ns = "m_off";
    let cache = Cache::builder()
        .namespace(ns)
        .memory(100)
        .metrics(false)
        .build()
        .await
        .unwrap();
    assert_eq!(square(&cache, 2).await, Ok(4));
    assert_eq!(square(&cache, 2).await, Ok(4));
    cache.invalidate_tags(["x"]).await.unwrap();
    // A cache that reports is seen within a drain period: wait two.
    let on = memory_cache("m_on", 100).await;
    assert_eq!(square(&on, 2).await, Ok(4));
    assert!(within!(Duration::from_secs(3), reports("m_on")).is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!reports(ns), "{}", recorder().render());
    assert_eq!(cache.stats().hits, 1, "Stats count all the same");
}

#[cached(name = "metrics::remote", cache = cache, ttl = "1h")]
async fn remote_item(cache: &Cache, n: u64) -> u64 {
    n * 10
}

#[tokio::test]
async fn a_redis_fault_counts_in_remote_errors() {
    recorder();
    let ns = "m_redis";
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .namespace(ns)
        .memory(100)
        .redis(server.url())
        .remote_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    assert_eq!(remote_item(&cache, 1).await, 10);
    let labels = [("cache", ns)];
    assert!(value("cache_remote_duration_seconds_count", &labels) >= 2.0);
    assert!(within!(
        Duration::from_secs(3),
        value("cache_backplane_up", &labels) == 1.0
    )
    .is_some());
    assert_eq!(value("cache_breaker_state", &labels), 0.0);

    server.kill();
    // A miss reads the remote tier, which is gone; the function still answers.
    assert_eq!(remote_item(&cache, 2).await, 20);
    let faults = |kind: &'static str| {
        value(
            "cache_remote_errors_total",
            &[("cache", ns), ("kind", kind)],
        )
    };
    let kinds = ["timeout", "connection", "breaker_open", "other"];
    let total: f64 = kinds.iter().map(|k| faults(k)).sum();
    assert!(total >= 1.0, "{}", recorder().render());
    // Every fault the stats counted is in the metric, by kind.
    assert!(
        within!(Duration::from_secs(3), {
            let total: f64 = kinds.iter().map(|k| faults(k)).sum();
            total == cache.stats().store_errors as f64
        })
        .is_some(),
        "{} vs {:?}",
        recorder().render(),
        cache.stats()
    );
    assert!(within!(
        Duration::from_secs(3),
        value("cache_backplane_up", &labels) == 0.0
    )
    .is_some());
}

/// Writes down every event it is told of.
#[derive(Default, Clone)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn note(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn has(&self, prefix: &str) -> bool {
        self.lines().iter().any(|l| l.starts_with(prefix))
    }

    /// The lines once one starts with `prefix`: events reach a listener
    /// in order, through its cache's queue, so the lines before it are in.
    async fn up_to(&self, prefix: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.has(prefix) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {prefix} in {:#?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.lines()
    }
}

impl Listener for Journal {
    fn on_get(&self, e: &Get<'_>) {
        self.note(format!("get {:?} {:?} {:?}", e.result, e.function, e.key));
    }
    fn on_load(&self, e: &Load<'_>) {
        self.note(format!(
            "load {:?} {:?} {:?} {}",
            e.outcome, e.function, e.key, e.background
        ));
    }
    fn on_invalidate(&self, e: &Invalidate<'_>) {
        self.note(format!("invalidate {:?}", e.tags));
    }
    fn on_evict(&self, e: &Evict<'_>) {
        self.note(format!("evict {}", e.count));
    }
    fn on_store_fault(&self, e: &StoreFault<'_>) {
        self.note(format!("fault {:?}", e.kind));
    }
    fn on_refresh(&self, e: &Refresh<'_>) {
        self.note(format!("refresh {:?} {}", e.function, e.early));
    }
    fn on_fail_safe(&self, e: &FailSafe<'_>) {
        self.note(format!("fail_safe {:?}", e.function));
    }
    fn on_coalesced(&self, e: &Coalesced<'_>) {
        self.note(format!("coalesced {:?}", e.function));
    }
    fn on_remote_op(&self, e: &RemoteOp<'_>) {
        self.note(format!("remote_op {}", e.ok));
    }
}

/// A listener of loads alone: it declines gets.
struct LoadsOnly(Journal);

impl Listener for LoadsOnly {
    fn wants_gets(&self) -> bool {
        false
    }
    fn on_get(&self, e: &Get<'_>) {
        self.0.on_get(e);
    }
    fn on_load(&self, e: &Load<'_>) {
        self.0.on_load(e);
    }
}

static FAIL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cached(name = "events::item", cache = cache, key = "item:{n}", ttl = "100ms", stale = "150ms", fail_safe = "1h")]
async fn event_item(cache: &Cache, n: u64) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    if FAIL.load(std::sync::atomic::Ordering::SeqCst) {
        return Err("failing".into());
    }
    Ok(n)
}

#[cached(name = "events::panics", cache = cache)]
async fn panics(cache: &Cache, n: u64) -> u64 {
    if n > 0 {
        panic!("a loader panics");
    }
    n
}

#[tokio::test]
async fn a_listener_is_told_every_kind_of_event_and_keys_only_when_asked() {
    let mut server = RedisServer::start();
    let journal = Journal::default();
    let cache = Cache::builder()
        .namespace("ev")
        .memory(10)
        .redis(server.url())
        .remote_timeout(Duration::from_millis(200))
        .listener(journal.clone())
        .event_keys(true)
        .build()
        .await
        .unwrap();
    // Two callers at once: one loads, one waits (coalesced).
    let (a, b) = tokio::join!(event_item(&cache, 1), event_item(&cache, 1));
    assert_eq!((a, b), (Ok(1), Ok(1)));
    assert_eq!(event_item(&cache, 1).await, Ok(1)); // hit
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(event_item(&cache, 1).await, Ok(1)); // stale: refresh
    tokio::time::sleep(Duration::from_millis(400)).await; // past stale, inside fail-safe
    FAIL.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(event_item(&cache, 1).await, Ok(1)); // load fails: fail-safe
    let panicked = tokio::spawn({
        let cache = cache.clone();
        async move { panics(&cache, 1).await }
    })
    .await;
    assert!(panicked.is_err(), "the panic reaches the caller");
    cache.invalidate_tags(["t1", "t2"]).await.unwrap();
    for i in 0..100u32 {
        cache.set(&format!("fill{i}"), i).await.unwrap();
    }
    server.kill();
    assert_eq!(cache.get::<u32>("nowhere").await.ok().flatten(), None);

    // The fault of the killed server's comes after every other.
    let lines = journal.up_to("fault ").await;
    let f = "Some(\"events::item\")";
    let key = "Some(\"ev:item:1\")";
    for expected in [
        format!("get Miss {f} {key}"),
        format!("get Hit {f} {key}"),
        format!("get Stale {f} {key}"),
        format!("coalesced {f}"),
        format!("load Ok {f} {key} false"),
        format!("refresh {f} false"),
        format!("load Ok {f} {key} true"),
        format!("load Error {f} {key} false"),
        format!("fail_safe {f}"),
        "load Error Some(\"events::panics\")".to_string(),
        "invalidate [\"t1\", \"t2\"]".to_string(),
        "remote_op true".to_string(),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&expected)),
            "{expected} in {lines:#?}"
        );
    }
    assert!(journal.has("evict "), "{lines:#?}");
    let fault = lines.iter().any(|l| {
        [
            FaultKind::Connection,
            FaultKind::Timeout,
            FaultKind::BreakerOpen,
        ]
        .iter()
        .any(|k| *l == format!("fault {k:?}"))
    });
    assert!(fault, "{lines:#?}");
    // A call's one get event: the coalesced caller's is a miss, not a hit too.
    let gets = |result: GetResult| {
        let prefix = format!("get {result:?} {f}");
        lines.iter().filter(|l| l.starts_with(&prefix)).count()
    };
    assert_eq!(
        (gets(GetResult::Hit), gets(GetResult::Stale)),
        (1, 1),
        "{lines:#?}"
    );
    assert_eq!(
        gets(GetResult::Miss),
        3,
        "two at first, the failed load: {lines:#?}"
    );

    // Without `event_keys`, no keys; a listener that declines gets has none.
    let plain = Journal::default();
    let loads = Journal::default();
    let quiet = Cache::builder()
        .namespace("ev_plain")
        .memory(10)
        .listener(plain.clone())
        .listener(LoadsOnly(loads.clone()))
        .build()
        .await
        .unwrap();
    FAIL.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(event_item(&quiet, 2).await, Ok(2));
    assert_eq!(event_item(&quiet, 2).await, Ok(2));
    let lines = plain.up_to("get Hit").await;
    assert!(lines.contains(&format!("get Miss {f} None")), "{lines:#?}");
    assert!(lines.contains(&format!("get Hit {f} None")), "{lines:#?}");
    assert!(
        lines.contains(&format!("load Ok {f} None false")),
        "{lines:#?}"
    );
}
