//! Memory hits: `#[cached]` against the raw stores and the `cached` crate.
//!
//! Every variant answers the same calls: a `u64` argument cycling over
//! `1..=1000` (all pre-warmed), returning an owned 100-byte `String`. Each is
//! driven by the same loop: `iter_custom` timing `N` awaited calls inside one
//! `block_on` of a current-thread tokio runtime, so the runtime costs nothing
//! per call (a hit never yields).
//!
//! `hit_2threads` runs two long-lived OS threads at once (started once, like a
//! server's workers), each with its own current-thread runtime, each doing the
//! full `N` calls (starting 500 keys apart); the time reported is the slower
//! thread's wall time divided by `N`: the time per call seen by each thread
//! while another thread hits the same cache. Aggregate throughput is two calls
//! per reported time.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench -p cache-runtime --bench hit`

use std::future::Future;
use std::hint::black_box;
use std::sync::{mpsc, Arc, Barrier, LazyLock};
use std::time::{Duration, Instant};

use cache_runtime::Cache;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use tokio::runtime::Runtime;

/// Keys cycle over `1..=KEYS`.
const KEYS: u64 = 1000;
/// Length of every value.
const VALUE_LEN: usize = 100;

#[inline]
fn key(i: u64) -> u64 {
    i % KEYS + 1
}

/// The value for `id`: exactly [`VALUE_LEN`] bytes.
fn value_for(id: u64) -> String {
    let mut s = format!("value-{id:020}-");
    s.extend(std::iter::repeat_n('x', VALUE_LEN - s.len()));
    s
}

// --- the variants -----------------------------------------------------------

/// `#[cached]` on the global cache (the default: no `cache = ..`).
#[cache_runtime::cached(ttl = "10m")]
async fn ours_global(id: u64) -> String {
    value_for(id)
}

static EXPLICIT: LazyLock<Cache> = LazyLock::new(|| Cache::memory(10_000));

/// `#[cached]` on a cache given with `cache = ..`.
#[cache_runtime::cached(ttl = "10m", cache = &*EXPLICIT)]
async fn ours_explicit(id: u64) -> String {
    value_for(id)
}

/// The `cached` crate's plain macro: an `UnboundCache` behind one async mutex.
#[cached::proc_macro::cached]
async fn cached_default(id: u64) -> String {
    value_for(id)
}

/// The `cached` crate's concurrency-oriented form (there is no
/// `concurrent_cached` in cached 0.56): `sync_writes = "by_key"`, a map of
/// per-key async mutexes so concurrent misses of one key run the body once.
#[cached::proc_macro::cached(sync_writes = "by_key")]
async fn cached_by_key(id: u64) -> String {
    value_for(id)
}

/// The `cached` crate's macro on the function equivalent to ours: entries
/// expire after 10 minutes (`ttl = "10m"`) and the cache is bounded
/// (`Cache::memory(10_000)`, the global default): a `TimedSizedCache`.
#[cached::proc_macro::cached(time = 600, size = 10_000)]
async fn cached_timed_sized(id: u64) -> String {
    value_for(id)
}

static QUICK: LazyLock<quick_cache::sync::Cache<u64, String>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(10_000));

static MOKA: LazyLock<moka::future::Cache<u64, String>> =
    LazyLock::new(|| moka::future::Cache::new(10_000));

/// Raw quick_cache: `get` already returns an owned clone of the `String`.
async fn quick_get(id: u64) -> Option<String> {
    QUICK.get(&id)
}

/// Raw moka: `get` returns an owned clone of the `String`.
async fn moka_get(id: u64) -> Option<String> {
    MOKA.get(&id).await
}

static CONTROL: LazyLock<String> = LazyLock::new(|| value_for(0));

/// Control, no cache: only the clone of a (shared, read-only) 100-byte
/// `String` every variant pays to hand out an owned value. Shows the floor and
/// how this machine scales to two threads when nothing shared is written.
async fn control_clone(id: u64) -> String {
    black_box(id);
    CONTROL.clone()
}

// --- the harness ------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Times `iters` calls of `f` on this thread, starting at key offset `offset`.
fn run<F, Fut, T>(rt: &Runtime, iters: u64, offset: u64, f: &F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = T>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            black_box(f(black_box(key(i + offset))).await);
        }
        start.elapsed()
    })
}

/// A job for a worker thread: runs on its runtime, returns its timing.
type Job = Box<dyn FnOnce(&Runtime) -> Duration + Send>;

/// Two long-lived worker threads, each with its own current-thread runtime,
/// like the fixed worker threads of a server. (Spawning fresh threads for every
/// sample would measure thread start-up effects, e.g. per-thread slots, that a
/// server's fixed pool does not have.)
struct Workers {
    jobs: Vec<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Duration>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn new(n: usize) -> Self {
        let (done_tx, done) = mpsc::channel();
        let (jobs, threads) = (0..n)
            .map(|i| {
                let (tx, rx) = mpsc::channel::<Job>();
                let done_tx = done_tx.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("bench-worker-{i}"))
                    .spawn(move || {
                        let rt = runtime();
                        while let Ok(job) = rx.recv() {
                            if done_tx.send(job(&rt)).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("spawn bench worker");
                (tx, thread)
            })
            .unzip();
        Self {
            jobs,
            done,
            threads,
        }
    }

    /// Every worker does `iters` calls of `f` at once (released together by a
    /// barrier, worker `t` starting at key offset `t * KEYS / n`); the slower
    /// worker's time.
    fn run<F, Fut, T>(&self, iters: u64, f: F) -> Duration
    where
        F: Fn(u64) -> Fut + Copy + Send + 'static,
        Fut: Future<Output = T>,
    {
        let n = self.jobs.len() as u64;
        let barrier = Arc::new(Barrier::new(self.jobs.len()));
        for (t, jobs) in (0u64..).zip(&self.jobs) {
            let barrier = barrier.clone();
            let job: Job = Box::new(move |rt: &Runtime| {
                barrier.wait();
                run(rt, iters, t * KEYS / n, &f)
            });
            jobs.send(job).expect("bench worker gone");
        }
        (0..n)
            .map(|_| self.done.recv().expect("bench worker panicked"))
            .max()
            .unwrap_or_default()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn warm(rt: &Runtime) {
    rt.block_on(async {
        for id in 1..=KEYS {
            let v = value_for(id);
            assert_eq!(ours_global(id).await, v);
            assert_eq!(ours_explicit(id).await, v);
            assert_eq!(cached_default(id).await, v);
            assert_eq!(cached_by_key(id).await, v);
            assert_eq!(cached_timed_sized(id).await, v);
            QUICK.insert(id, v.clone());
            MOKA.insert(id, v).await;
        }
        MOKA.run_pending_tasks().await;
        // Every variant now hits.
        let before = cache_runtime::global().stats().hits;
        for id in 1..=KEYS {
            assert_eq!(ours_global(id).await.len(), VALUE_LEN);
            assert!(quick_get(id).await.is_some());
            assert!(moka_get(id).await.is_some());
        }
        assert_eq!(cache_runtime::global().stats().hits - before, KEYS);
    });
}

fn one_thread<F, Fut, T>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, f: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = T>,
{
    g.bench_function(name, |b| b.iter_custom(|n| run(rt, n, 0, &f)));
}

fn two_threads<F, Fut, T>(g: &mut BenchmarkGroup<'_, WallTime>, workers: &Workers, name: &str, f: F)
where
    F: Fn(u64) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = T>,
{
    g.bench_function(name, |b| b.iter_custom(|n| workers.run(n, f)));
}

fn hits(c: &mut Criterion) {
    let rt = runtime();
    warm(&rt);

    let mut g = c.benchmark_group("hit_1thread");
    one_thread(&mut g, &rt, "control_clone_only", control_clone);
    one_thread(&mut g, &rt, "ours_global", ours_global);
    one_thread(&mut g, &rt, "ours_explicit_cache", ours_explicit);
    one_thread(&mut g, &rt, "quick_cache_raw", quick_get);
    one_thread(&mut g, &rt, "moka_raw", moka_get);
    one_thread(&mut g, &rt, "cached_macro", cached_default);
    one_thread(&mut g, &rt, "cached_macro_by_key", cached_by_key);
    one_thread(&mut g, &rt, "cached_macro_ttl_sized", cached_timed_sized);
    g.finish();

    let workers = Workers::new(2);
    let mut g = c.benchmark_group("hit_2threads");
    two_threads(&mut g, &workers, "control_clone_only", control_clone);
    two_threads(&mut g, &workers, "ours_global", ours_global);
    two_threads(&mut g, &workers, "ours_explicit_cache", ours_explicit);
    two_threads(&mut g, &workers, "quick_cache_raw", quick_get);
    two_threads(&mut g, &workers, "moka_raw", moka_get);
    two_threads(&mut g, &workers, "cached_macro", cached_default);
    two_threads(&mut g, &workers, "cached_macro_by_key", cached_by_key);
    two_threads(
        &mut g,
        &workers,
        "cached_macro_ttl_sized",
        cached_timed_sized,
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = hits
}
criterion_main!(benches);
