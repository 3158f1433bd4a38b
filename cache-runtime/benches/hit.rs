//! Memory hits: `#[cached]` against the raw stores and the `cached` crate
//! (4.x, whose `#[concurrent_cached]` is its fast form, and 0.56).
//!
//! The variants and the loop that drives them are in `memory_hits/`:
//! criterion's `iter_custom` times `N` awaited calls of one variant. Criterion
//! measures the variants one after another; `hit_ratio` alternates them, which
//! this machine's drift cannot favour one side of.
//!
//! `hit_2threads` runs two long-lived OS threads at once (started once, like a
//! server's workers), each with its own current-thread runtime, each doing the
//! full `N` calls (starting 500 keys apart); the time reported is the slower
//! thread's wall time divided by `N`: the time per call seen by each thread
//! while another thread hits the same cache. Aggregate throughput is two calls
//! per reported time.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench -p cache-runtime --bench hit`

mod memory_hits;

use std::future::Future;
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use memory_hits::*;
use tokio::runtime::Runtime;

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
    one_thread(&mut g, &rt, "ours_template_key", ours_template);
    one_thread(&mut g, &rt, "quick_cache_raw", quick_get);
    one_thread(&mut g, &rt, "moka_raw", moka_get);
    one_thread(&mut g, &rt, "cached_macro", cached_default);
    one_thread(&mut g, &rt, "cached_macro_by_key", cached_by_key);
    one_thread(&mut g, &rt, "cached_macro_ttl_sized", cached_timed_sized);
    one_thread(&mut g, &rt, "ours_tenant_first", ours_tenant_first);
    one_thread(&mut g, &rt, "ours_tenant_second", ours_tenant_second);
    one_thread(&mut g, &rt, "ours_tenant_fourth", ours_tenant_fourth);
    one_thread(&mut g, &rt, "cached4_concurrent", cached4_concurrent);
    one_thread(
        &mut g,
        &rt,
        "cached4_concurrent_ttl_sized",
        cached4_concurrent_ttl_sized,
    );
    one_thread(&mut g, &rt, "cached4_macro", cached4_default);
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
    two_threads(&mut g, &workers, "cached4_concurrent", cached4_concurrent);
    two_threads(
        &mut g,
        &workers,
        "cached4_concurrent_ttl_sized",
        cached4_concurrent_ttl_sized,
    );
    two_threads(&mut g, &workers, "cached4_macro", cached4_default);
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
