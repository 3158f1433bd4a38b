//! Misses: the function runs and its value is stored.
//!
//! `miss_fresh_key`: every call takes a key never seen before (a global
//! counter), on caches of capacity 1,000,000 that fill up and then evict during
//! the run. The function builds the same 100-byte `String` for every variant;
//! `uncached` is that function alone. Same loop as the hit bench: `N` awaited
//! calls inside one `block_on` of a current-thread tokio runtime.
//!
//! `miss_single_flight_200`: on a 2-worker multi-thread runtime, 200 spawned
//! tasks call the same cold key at once (the function yields once, then builds
//! the value); one iteration is the time until all 200 have their value.
//! `uncached` is 200 tasks each running the function, for context.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench -p cache-runtime --bench miss`

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cache_runtime::Cache;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use tokio::runtime::Runtime;

/// Capacity of every cache of the fresh-key bench.
const CAPACITY: usize = 1_000_000;
/// Length of every value.
const VALUE_LEN: usize = 100;
/// Tasks calling one cold key at once.
const TASKS: usize = 200;

/// The value for `id`: exactly [`VALUE_LEN`] bytes.
fn value_for(id: u64) -> String {
    let mut s = format!("value-{id:020}-");
    s.extend(std::iter::repeat_n('x', VALUE_LEN - s.len()));
    s
}

/// A key no call has used yet (shared by all variants, so none reuses another's).
fn fresh_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// --- fresh-key misses -------------------------------------------------------

static MISS_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(CAPACITY));

/// The function alone.
async fn uncached(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "10m", cache = &*MISS_CACHE)]
async fn ours(id: u64) -> String {
    value_for(id)
}

/// The `cached` crate, bounded like the others (an LRU `SizedCache`).
#[cached::proc_macro::cached(size = 1_000_000)]
async fn cached_sized(id: u64) -> String {
    value_for(id)
}

static QUICK: LazyLock<quick_cache::sync::Cache<u64, String>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CAPACITY));

/// Raw quick_cache: a `get` that misses, the function, an `insert`.
async fn quick_get_insert(id: u64) -> String {
    if let Some(v) = QUICK.get(&id) {
        return v;
    }
    let v = uncached(id).await;
    QUICK.insert(id, v.clone());
    v
}

static MOKA: LazyLock<moka::future::Cache<u64, String>> =
    LazyLock::new(|| moka::future::Cache::new(CAPACITY as u64));

/// Raw moka: `get_with`, its get-or-load with coalescing of concurrent misses.
async fn moka_get_with(id: u64) -> String {
    MOKA.get_with(id, uncached(id)).await
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn fresh<F, Fut>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, f: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = String>,
{
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(f(fresh_key()).await);
                }
                start.elapsed()
            })
        })
    });
}

fn fresh_keys(c: &mut Criterion) {
    let rt = runtime();
    rt.block_on(async {
        let id = fresh_key();
        assert_eq!(ours(id).await, value_for(id));
        assert_eq!(MISS_CACHE.stats().loads, 1);
        assert_eq!(ours(id).await, value_for(id));
        assert_eq!(MISS_CACHE.stats().loads, 1);
    });

    let mut g = c.benchmark_group("miss_fresh_key");
    fresh(&mut g, &rt, "uncached", uncached);
    fresh(&mut g, &rt, "ours", ours);
    fresh(&mut g, &rt, "quick_cache_raw", quick_get_insert);
    fresh(&mut g, &rt, "moka_raw_get_with", moka_get_with);
    fresh(&mut g, &rt, "cached_macro_sized", cached_sized);
    g.finish();
}

// --- 200 tasks, one cold key ------------------------------------------------

static LOADS: AtomicU64 = AtomicU64::new(0);

/// The function of the single-flight bench: yields once (so callers pile up
/// while it runs), then builds the value. Counts its runs.
async fn slow_value(id: u64) -> String {
    LOADS.fetch_add(1, Ordering::Relaxed);
    tokio::task::yield_now().await;
    value_for(id)
}

static FLIGHT_CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(CAPACITY));

#[cache_runtime::cached(ttl = "10m", cache = &*FLIGHT_CACHE)]
async fn ours_flight(id: u64) -> String {
    slow_value(id).await
}

static MOKA_FLIGHT: LazyLock<moka::future::Cache<u64, String>> =
    LazyLock::new(|| moka::future::Cache::new(CAPACITY as u64));

async fn moka_flight(id: u64) -> String {
    MOKA_FLIGHT.get_with(id, slow_value(id)).await
}

/// The `cached` crate's per-key locking: concurrent misses of one key run once.
#[cached::proc_macro::cached(sync_writes = "by_key")]
async fn cached_flight(id: u64) -> String {
    slow_value(id).await
}

/// 200 tasks calling `f(id)` for one fresh `id`; returns how many times the
/// function body ran.
async fn round<F, Fut>(f: F) -> u64
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = String> + Send + 'static,
{
    let id = fresh_key();
    let before = LOADS.load(Ordering::Relaxed);
    let tasks: Vec<_> = (0..TASKS).map(|_| tokio::spawn(f(id))).collect();
    for t in tasks {
        black_box(t.await.expect("task panicked"));
    }
    LOADS.load(Ordering::Relaxed) - before
}

fn flight<F, Fut>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, f: F)
where
    F: Fn(u64) -> Fut + Copy,
    Fut: Future<Output = String> + Send + 'static,
{
    let loads = rt.block_on(round(f));
    eprintln!(
        "miss_single_flight_200/{name}: the function ran {loads} time(s) for {TASKS} callers"
    );
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    round(f).await;
                }
                start.elapsed()
            })
        })
    });
}

fn single_flight(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut g = c.benchmark_group("miss_single_flight_200");
    g.sample_size(50);
    flight(&mut g, &rt, "uncached", slow_value);
    flight(&mut g, &rt, "ours", ours_flight);
    flight(&mut g, &rt, "moka_raw_get_with", moka_flight);
    flight(&mut g, &rt, "cached_macro_by_key", cached_flight);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = fresh_keys, single_flight
}
criterion_main!(benches);
