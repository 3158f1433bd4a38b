//! Memory hits at 1 thread, measured in alternation: `#[cached]` against the
//! `cached` crate's macros and raw `quick_cache`.
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

const NAMES: [&str; 7] = [
    "#[cached], global cache",
    "#[cached(cache = ..)]",
    "#[cached(key = \"item:{id}\")]",
    "cached #[cached] (plain)",
    "cached #[cached(time, size)]",
    "raw quick_cache",
    "control (clone only)",
];

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
        3 => ns_per_call(rt, cached_default),
        4 => ns_per_call(rt, cached_timed_sized),
        5 => ns_per_call(rt, quick_get),
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
    for (i, name) in NAMES.iter().enumerate() {
        let times = rounds::spread(rounds.iter().map(|r| r[i])).median;
        let vs_plain = rounds::spread(rounds.iter().map(|r| r[i] / r[3])).median;
        let vs_quick = rounds::spread(rounds.iter().map(|r| r[i] / r[5])).median;
        println!(
            "hit_ratio: {name:30} median {:6.1} ns/hit; / cached plain {:.3}; / raw quick_cache {:.3}",
            times, vs_plain, vs_quick
        );
    }
}
