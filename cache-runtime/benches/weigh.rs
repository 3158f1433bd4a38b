//! What weighing costs a store (`.memory_bytes(n)`): `Cache::set` into a
//! memory tier bounded by entries alone against one bounded in bytes too, in
//! alternating rounds, for a 700 kB `String` (one length read), a small
//! struct, and a `Vec<u64>` of 1,000 numbers (serde's sequence, one call per
//! element). A hit never weighs; `hit_ratio` measures that.
//!
//! `CARGO_TARGET_DIR=target/bench cargo bench -p cache-runtime --bench weigh`
//! (`RATIO_ROUNDS` rounds, default 15).

mod rounds;

use std::time::{Duration, Instant};

use cache_runtime::Cache;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
    active: bool,
}

/// Stores per side per round.
const STORES: u64 = 2_000;
/// Distinct keys, so stores replace entries as a busy tier does.
const KEYS: u64 = 256;

fn time_sets<V: Clone + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static>(
    rt: &Runtime,
    cache: &Cache,
    value: &V,
) -> f64 {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let took: Duration = rt.block_on(async {
        let start = Instant::now();
        for i in 0..STORES {
            let key = &keys[(i % KEYS) as usize];
            cache.set(key, value.clone()).await.expect("a memory set");
        }
        start.elapsed()
    });
    took.as_nanos() as f64 / STORES as f64
}

fn main() {
    if !rounds::selected("weigh") {
        return;
    }
    let rt = Runtime::new().expect("a runtime");
    let entries = rt
        .block_on(Cache::builder().memory(10_000).build())
        .expect("cache");
    let bytes = rt
        .block_on(
            Cache::builder()
                .memory(10_000)
                .memory_bytes(1 << 30)
                .build(),
        )
        .expect("cache");
    let page = "x".repeat(700_000);
    let user = User {
        id: 7,
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        roles: vec!["admin".into(), "editor".into()],
        active: true,
    };
    let numbers: Vec<u64> = (0..1_000).collect();
    let wanted = rounds::wanted(15);
    let names = ["700 kB String", "User struct", "Vec<u64> of 1,000"];
    for (which, name) in names.iter().enumerate() {
        let side = |cache: &Cache| match which {
            0 => time_sets(&rt, cache, &page),
            1 => time_sets(&rt, cache, &user),
            _ => time_sets(&rt, cache, &numbers),
        };
        let runs: Vec<(f64, f64)> = (0..wanted)
            .map(|round| {
                let mut r = (0.0, 0.0);
                for s in rounds::order(round, 2) {
                    if s == 0 {
                        r.0 = side(&entries);
                    } else {
                        r.1 = side(&bytes);
                    }
                }
                r
            })
            .collect();
        let median = |f: &dyn Fn(&(f64, f64)) -> f64| rounds::spread(runs.iter().map(f)).median;
        println!(
            "weigh: set {name:18} entries only {:9.1} ns; with memory_bytes {:9.1} ns; ratio median {:.3}",
            median(&|r| r.0),
            median(&|r| r.1),
            median(&|r| r.1 / r.0),
        );
    }
}
