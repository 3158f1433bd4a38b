//! Memory hits with the `metrics` feature: a `#[cached]` function through a
//! cache that reports metrics, to an installed Prometheus recorder, against
//! the same function through a cache built with `.metrics(false)`, in
//! alternating rounds (see `hit_ratio.rs` for why rounds).
//!
//! The two sides are one function definition expanded twice, each with a
//! cache of its own, so that each cache is its function's first (the memo's
//! fast slot) and the comparison measures metrics alone.
//!
//! `cargo bench -p cache-runtime --features metrics --bench metrics_hit`
//! (about 10 s; set `RATIO_ROUNDS` for more or fewer rounds). Target: on/off
//! at most 1.15.

mod rounds;

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

use cache_runtime::Cache;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::runtime::Runtime;

/// Calls per side per round.
const CALLS: u64 = 200_000;
/// Keys cycle over `1..=KEYS`.
const KEYS: u64 = 1000;

/// The caches, built in `main` inside the bench's runtime (the drain task
/// runs there).
static ON: OnceLock<Cache> = OnceLock::new();
static OFF: OnceLock<Cache> = OnceLock::new();

async fn built(metrics: bool) -> Cache {
    Cache::builder()
        .namespace(if metrics { "on" } else { "off" })
        .memory(10_000)
        .metrics(metrics)
        .build()
        .await
        .expect("memory cache")
}

macro_rules! item_fn {
    ($name:ident, $cache:expr) => {
        #[cache_runtime::cached(ttl = "10m", name = "bench::item", cache = $cache.get().expect("built in main"))]
        async fn $name(id: u64) -> String {
            format!("value-{id:020}-{}", "x".repeat(70))
        }
    };
}

item_fn!(item_on, ON);
item_fn!(item_off, OFF);

fn side(rt: &Runtime, on: bool) -> f64 {
    let took = rt.block_on(async {
        let start = Instant::now();
        for i in 0..CALLS {
            let id = black_box(i % KEYS + 1);
            if on {
                black_box(item_on(id).await);
            } else {
                black_box(item_off(id).await);
            }
        }
        start.elapsed()
    });
    took.as_nanos() as f64 / CALLS as f64
}

fn main() {
    if !rounds::selected("metrics_hit") {
        return;
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the bench's recorder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let _ = ON.set(built(true).await);
        let _ = OFF.set(built(false).await);
        for id in 1..=KEYS {
            item_on(id).await;
            item_off(id).await;
        }
    });
    // `METRICS_HIT_ONLY=on|off`: that side's calls alone, once, for an
    // instruction count (`valgrind --tool=callgrind`): the difference of two
    // runs with different `METRICS_HIT_CALLS` is the cost of the hits alone.
    if let Ok(only) = std::env::var("METRICS_HIT_ONLY") {
        let calls: u64 = std::env::var("METRICS_HIT_CALLS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CALLS);
        rt.block_on(async {
            for i in 0..calls {
                let id = black_box(i % KEYS + 1);
                if only == "on" {
                    black_box(item_on(id).await);
                } else {
                    black_box(item_off(id).await);
                }
            }
        });
        return;
    }
    side(&rt, true);
    side(&rt, false);
    let wanted = rounds::wanted(15);
    let rounds: Vec<[f64; 2]> = (0..wanted)
        .map(|round| {
            let mut r = [0.0; 2];
            for which in rounds::order(round, 2) {
                r[which] = side(&rt, which == 0);
            }
            r
        })
        .collect();
    // Let the drain report (it runs while the runtime is driven).
    rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(600)).await });
    let scrape = handle.render();
    let reported = scrape
        .lines()
        .find(|l| {
            l.starts_with("cache_gets_total")
                && l.contains("cache=\"on\"")
                && l.contains("result=\"hit\"")
        })
        .unwrap_or("cache_gets_total for cache=on: not found");
    let ratio = rounds::spread(rounds.iter().map(|r| r[0] / r[1]));
    let median = |i: usize| rounds::spread(rounds.iter().map(|r| r[i])).median;
    println!("metrics_hit: {wanted} rounds of {CALLS} calls per side, 1 thread, {KEYS} keys");
    println!("metrics_hit: metrics on  median {:6.1} ns/hit", median(0));
    println!("metrics_hit: metrics off median {:6.1} ns/hit", median(1));
    println!(
        "metrics_hit: on / off: median {:.3} (quartiles {:.3}-{:.3}; target at most 1.15)",
        ratio.median, ratio.low_quartile, ratio.high_quartile
    );
    println!("metrics_hit: reported: {reported}");
}
