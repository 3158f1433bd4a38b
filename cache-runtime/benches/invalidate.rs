//! Tag invalidation is O(1): `invalidate_tags(["t"])` with 1 and with
//! 1,000,000 entries tagged `"t"` present (stored with `set_with` during setup,
//! in caches of twice that capacity, so no shard of the memory tier evicts). Same loop
//! as the other benches: `N` awaited calls inside one `block_on` of a
//! current-thread tokio runtime.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench -p cache-runtime --bench invalidate`

use std::hint::black_box;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tokio::runtime::Runtime;

/// Length of every value.
const VALUE_LEN: usize = 100;

/// The value for `id`: exactly [`VALUE_LEN`] bytes.
fn value_for(id: u64) -> String {
    let mut s = format!("value-{id:020}-");
    s.extend(std::iter::repeat_n('x', VALUE_LEN - s.len()));
    s
}

/// A cache holding `entries` values, each tagged `"t"`.
async fn tagged_cache(entries: u64) -> Cache {
    let cache = Cache::builder()
        // quick_cache bounds each shard: room to spare so no shard evicts.
        .memory(entries as usize * 2 + 1024)
        .build()
        .await
        .expect("cache");
    for id in 0..entries {
        cache
            .set_with(&format!("k{id}"), value_for(id), &Policy::new(), ["t"])
            .await
            .expect("set_with");
    }
    assert_eq!(cache.memory_len() as u64, entries, "setup evicted entries");
    // Invalidation works: the last entry is gone after one.
    let last = format!("k{}", entries - 1);
    assert!(cache.get::<String>(&last).await.expect("get").is_some());
    cache.invalidate_tags(["t"]).await.expect("invalidate");
    assert!(cache.get::<String>(&last).await.expect("get").is_none());
    assert_eq!(cache.memory_len() as u64, entries, "entries stay present");
    cache
}

fn invalidate(c: &mut Criterion) {
    let rt: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut g = c.benchmark_group("invalidate_tag");
    for entries in [1u64, 1_000_000] {
        let started = Instant::now();
        let cache = rt.block_on(tagged_cache(entries));
        eprintln!(
            "invalidate_tag: stored {entries} tagged entries in {:.2?}",
            started.elapsed()
        );
        g.bench_with_input(BenchmarkId::from_parameter(entries), &cache, |b, cache| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(cache.invalidate_tags(black_box(["t"])).await)
                            .expect("invalidate");
                    }
                    start.elapsed()
                })
            })
        });
        assert_eq!(cache.memory_len() as u64, entries);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = invalidate
}
criterion_main!(benches);
