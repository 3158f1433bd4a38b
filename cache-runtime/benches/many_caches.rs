//! One `#[cached]` function used with 1,000 caches (a cache per tenant): the
//! time of a memory hit through the 1st, 9th, 16th and 1,000th cache it met,
//! in alternating rounds (as `hit_ratio`), and each over the 1st.
//!
//! `CARGO_TARGET_DIR=target/bench cargo bench -p cache-runtime --bench many_caches`
//! (`RATIO_ROUNDS` rounds, 30 by default). For instruction counts,
//! `MANY_CACHES_ONLY=<n>` runs only cache #n for `MANY_CACHES_CALLS` hits
//! (200,000 by default): run it under callgrind with two call counts and
//! divide the difference by the difference of the calls.

mod rounds;

use std::hint::black_box;
use std::time::Instant;

use cache_runtime::Cache;
use tokio::runtime::Runtime;

/// Caches the function is used with, in this order.
const CACHES: usize = 1000;
/// Keys per cache, all pre-warmed.
const KEYS: u64 = 100;
/// Calls per cache per round.
const CALLS: u64 = 200_000;
/// The caches measured (1-based, in the order the function met them).
const MEASURED: [usize; 4] = [1, 9, 16, 1000];

#[cache_runtime::cached(ttl = "10m", cache = cache)]
async fn tenant_item(cache: &Cache, id: u64) -> u64 {
    id * 2
}

fn hits(rt: &Runtime, cache: &Cache, calls: u64) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..calls {
            black_box(tenant_item(cache, black_box(i % KEYS + 1)).await);
        }
        start.elapsed().as_nanos() as f64 / calls as f64
    })
}

fn main() {
    if !rounds::selected("many_caches") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let caches: Vec<Cache> = rt.block_on(async {
        let caches: Vec<Cache> = (0..CACHES).map(|_| Cache::memory(1_000)).collect();
        for cache in &caches {
            for id in 1..=KEYS {
                assert_eq!(tenant_item(cache, id).await, id * 2);
            }
        }
        caches
    });
    if let Ok(only) = std::env::var("MANY_CACHES_ONLY") {
        let n: usize = only.parse().expect("MANY_CACHES_ONLY: a cache number");
        let calls = std::env::var("MANY_CACHES_CALLS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(CALLS);
        let ns = hits(&rt, &caches[n - 1], calls);
        println!("many_caches: cache #{n}: {calls} hits, {ns:.1} ns/hit");
        return;
    }
    let wanted = rounds::wanted(30);
    let sides = MEASURED.len();
    for &n in &MEASURED {
        hits(&rt, &caches[n - 1], CALLS); // warm-up round
    }
    let rounds: Vec<Vec<f64>> = (0..wanted)
        .map(|round| {
            let mut r = vec![0.0; sides];
            for which in rounds::order(round, sides) {
                r[which] = hits(&rt, &caches[MEASURED[which] - 1], CALLS);
            }
            r
        })
        .collect();
    println!("many_caches: {wanted} rounds of {CALLS} hits per cache, 1 thread, {CACHES} caches");
    for (i, n) in MEASURED.iter().enumerate() {
        let ns = rounds::spread(rounds.iter().map(|r| r[i]));
        let ratio = rounds::spread(rounds.iter().map(|r| r[i] / r[0]));
        println!(
            "many_caches: cache #{n:<5} median {:6.1} ns/hit; / cache #1: median {:.3} (quartiles {:.3}-{:.3}; target at most 1.15)",
            ns.median, ratio.median, ratio.low_quartile, ratio.high_quartile
        );
    }
}
