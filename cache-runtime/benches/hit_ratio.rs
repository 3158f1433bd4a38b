//! Memory hits at 1 thread, measured in alternation: `#[cached]` against the
//! `cached` crate's macros (4.x and 0.56) and raw `quick_cache`, and one
//! function hit through each of several caches (`cache = c`), each against
//! the first cache it met.
//!
//! On this small shared machine a variant's time drifts by a fifth between
//! criterion runs (raw `quick_cache` measured 46 ns in one run and 65 ns in
//! the next), and criterion (`hit`) measures the variants one after another,
//! so a drift lands on one side of a comparison only. This bench runs short
//! rounds of every variant in turn, rotating the order, and reports each
//! variant's median time and the median of the per-round ratios.
//!
//! `CARGO_TARGET_DIR=/work/target-bench cargo bench -p cache-runtime --bench hit_ratio`
//! (about 30 s; set `RATIO_ROUNDS` for more or fewer rounds).

mod memory_hits;
mod rounds;

use std::future::Future;
use std::time::Duration;

use memory_hits::*;
use tokio::runtime::Runtime;

/// Calls per variant per round (about 15 ms).
const CALLS: u64 = 200_000;

const NAMES: [&str; 13] = [
    "#[cached], global cache",
    "#[cached(cache = ..)]",
    "#[cached(key = \"item:{id}\")]",
    "cache = c: 1st cache of 4",
    "cache = c: 2nd cache",
    "cache = c: 4th cache",
    "cached 4 #[concurrent_cached]",
    "cached 4 #[concurrent_cached(ttl, size)]",
    "cached 4 #[cached]",
    "cached 0.56 #[cached] (plain)",
    "cached 0.56 #[cached(time, size)]",
    "raw quick_cache",
    "control (clone only)",
];

/// Indices of the anchors in [`NAMES`].
const EXPLICIT: usize = 1;
const TEMPLATE: usize = 2;
const FIRST_TENANT: usize = 3;
const CONCURRENT4: usize = 6;
const PLAIN056: usize = 9;
const QUICK: usize = 11;

fn ns_per_call<F, Fut, T>(rt: &Runtime, f: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = T>,
{
    let took: Duration = run(rt, CALLS, 0, &f);
    took.as_nanos() as f64 / CALLS as f64
}

fn side(rt: &Runtime, which: usize) -> f64 {
    match which {
        0 => ns_per_call(rt, ours_global),
        1 => ns_per_call(rt, ours_explicit),
        2 => ns_per_call(rt, ours_template),
        3 => ns_per_call(rt, ours_tenant_first),
        4 => ns_per_call(rt, ours_tenant_second),
        5 => ns_per_call(rt, ours_tenant_fourth),
        6 => ns_per_call(rt, cached4_concurrent),
        7 => ns_per_call(rt, cached4_concurrent_ttl_sized),
        8 => ns_per_call(rt, cached4_default),
        9 => ns_per_call(rt, cached_default),
        10 => ns_per_call(rt, cached_timed_sized),
        11 => ns_per_call(rt, quick_get),
        _ => ns_per_call(rt, control_clone),
    }
}

fn main() {
    if !rounds::selected("hit_ratio") {
        return;
    }
    let wanted = rounds::wanted(30);
    let rt = runtime();
    warm(&rt);
    let sides = NAMES.len();
    for which in 0..sides {
        side(&rt, which); // warm-up round
    }
    let rounds: Vec<Vec<f64>> = (0..wanted)
        .map(|round| {
            let mut r = vec![0.0; sides];
            for which in rounds::order(round, sides) {
                r[which] = side(&rt, which);
            }
            r
        })
        .collect();
    println!("hit_ratio: {wanted} rounds of {CALLS} calls per variant, 1 thread, {KEYS} keys");
    let median = |f: &dyn Fn(&[f64]) -> f64| rounds::spread(rounds.iter().map(|r| f(r))).median;
    for (i, name) in NAMES.iter().enumerate() {
        println!(
            "hit_ratio: {name:42} median {:6.1} ns/hit; / cached 4 concurrent {:.3}; / cached 0.56 plain {:.3}; / raw quick_cache {:.3}",
            median(&|r| r[i]),
            median(&|r| r[i] / r[CONCURRENT4]),
            median(&|r| r[i] / r[PLAIN056]),
            median(&|r| r[i] / r[QUICK]),
        );
    }
    // The template variant names its cache with `cache = ..` too, so its
    // default-key counterpart is that variant.
    let template = rounds::spread(rounds.iter().map(|r| r[TEMPLATE] / r[EXPLICIT]));
    println!(
        "hit_ratio: template key / default key (both cache = ..): median {:.3} (quartiles {:.3}-{:.3}; target at most 1.3)",
        template.median, template.low_quartile, template.high_quartile
    );
    for (i, name) in NAMES.iter().enumerate().skip(FIRST_TENANT + 1).take(2) {
        let ratio = rounds::spread(rounds.iter().map(|r| r[i] / r[FIRST_TENANT]));
        println!(
            "hit_ratio: {name} / 1st cache: median {:.3} (quartiles {:.3}-{:.3}; target at most 1.15)",
            ratio.median, ratio.low_quartile, ratio.high_quartile
        );
    }
}
