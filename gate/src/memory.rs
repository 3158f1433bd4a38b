//! The `#[cached]` paths: hits by key form and cache, with metrics, a miss.

use std::future::Future;
use std::hint::black_box;
use std::sync::OnceLock;

use cache_runtime::Cache;
use tokio::runtime::Runtime;

/// Keys cycle over `1..=KEYS`, all warmed before the measured calls.
const KEYS: u64 = 1000;
/// Misses before the measured ones (the function's first-call work).
const MISS_WARM: u64 = 1000;
/// Entries of the miss path's cache: room for the warm-up and 2N misses of
/// `.ci/bench-gate` (N = 10,000), so no measured miss evicts: in three
/// runs each, a miss into a full cache (evicting) spread by 0.7 %, one with
/// room by 0.4 % (the store's random hash seed moves both).
const MISS_CAPACITY: usize = 100_000;

/// The value for `id`: 100 bytes.
pub fn value_for(id: u64) -> String {
    let mut s = format!("value-{id:020}-");
    s.extend(std::iter::repeat_n('x', 100 - s.len()));
    s
}

/// The caches, built in the runtime (see [`built`]).
static PLAIN: OnceLock<Cache> = OnceLock::new();
static TEMPLATE: OnceLock<Cache> = OnceLock::new();
static METERED: OnceLock<Cache> = OnceLock::new();
static MISSES: OnceLock<Cache> = OnceLock::new();

/// A memory cache; `metrics(false)` except on the `metrics` path, so the
/// other paths cost what they cost without the feature (and no drain task
/// runs at a time-dependent point of theirs).
async fn built(name: &str, capacity: usize, metrics: bool) -> Cache {
    Cache::builder()
        .namespace(name)
        .memory(capacity)
        .metrics(metrics)
        .build()
        .await
        .expect("a memory cache builds")
}

fn cache(cell: &'static OnceLock<Cache>) -> &'static Cache {
    cell.get().expect("built before the calls")
}

#[cache_runtime::cached(ttl = "10m", cache = cache(&PLAIN))]
async fn default_key_item(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "10m", key = "item:{id}", cache = cache(&TEMPLATE))]
async fn template_item(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "10m", cache = tenant)]
async fn tenant_item(tenant: &Cache, id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "10m", cache = cache(&METERED))]
async fn metered_item(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "10m", cache = cache(&MISSES))]
async fn miss_item(id: u64) -> String {
    value_for(id)
}

/// Warms keys `1..=KEYS` through `f`, then makes `calls` calls cycling over
/// them.
pub fn hits<F, Fut>(rt: &Runtime, calls: u64, f: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = String>,
{
    rt.block_on(async {
        for id in 1..=KEYS {
            black_box(f(id).await);
        }
    });
    crate::measured(&mut || {
        rt.block_on(async {
            for i in 0..calls {
                black_box(f(black_box(i % KEYS + 1)).await);
            }
        })
    });
}

/// `default_key`: a hit of a function with its cache named by `cache = ..`.
pub fn default_key(rt: &Runtime, calls: u64) {
    init(rt, &PLAIN, "plain", 10_000, false);
    hits(rt, calls, default_key_item);
}

/// `template_key`: as `default_key`, the key rendered from `item:{id}`.
pub fn template_key(rt: &Runtime, calls: u64) {
    init(rt, &TEMPLATE, "template", 10_000, false);
    hits(rt, calls, template_item);
}

/// `second_cache`: one function used with two caches, the calls through
/// the second one it met.
pub fn second_cache(rt: &Runtime, calls: u64) {
    let (first, second) = rt.block_on(async {
        (
            built("first", 10_000, false).await,
            built("second", 10_000, false).await,
        )
    });
    rt.block_on(async {
        for id in 1..=KEYS {
            black_box(tenant_item(&first, id).await);
        }
    });
    hits(rt, calls, |id| tenant_item(&second, id));
}

/// `metrics`: `default_key` on a cache that reports metrics, to an
/// installed Prometheus recorder.
pub fn metrics(rt: &Runtime, calls: u64) {
    let _handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the first recorder of this process");
    init(rt, &METERED, "metered", 10_000, true);
    hits(rt, calls, metered_item);
}

/// `miss`: a key never asked before, on a memory-only cache with room for
/// it: runs the function and stores the value.
pub fn miss(rt: &Runtime, calls: u64) {
    init(rt, &MISSES, "misses", MISS_CAPACITY, false);
    rt.block_on(async {
        for id in 0..MISS_WARM {
            black_box(miss_item(id).await);
        }
    });
    crate::measured(&mut || {
        rt.block_on(async {
            for id in MISS_WARM..MISS_WARM + calls {
                black_box(miss_item(black_box(id)).await);
            }
        })
    });
}

fn init(rt: &Runtime, cell: &'static OnceLock<Cache>, name: &str, capacity: usize, metrics: bool) {
    let cache = rt.block_on(built(name, capacity, metrics));
    assert!(cell.set(cache).is_ok(), "each path runs once per process");
}
