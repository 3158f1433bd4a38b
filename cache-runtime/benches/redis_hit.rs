//! A storage-only `#[cached]` hit (100-byte value, two tags) against a raw
//! redis-rs GET of the same bytes on the same kind of connection
//! (ConnectionManager), sequential and with 64 concurrent tasks; and a
//! write-through hit served from memory against a memory-only hit. The bench
//! starts its own redis-server on a free loopback port (needs redis-server).
//!
//! `cargo bench -p cache-runtime --bench redis_hit`

mod support;

use std::time::Duration;

use cache_runtime::Cache;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use support::{cached_hits, item, prepare, raw_gets, Server, TASKS};

const PER_TASK: usize = 50;

fn storage_only(c: &mut Criterion) {
    let server = Server::start();
    let rt = support::runtime();
    let (cache, raw) = rt.block_on(prepare(server.url()));

    // Commands per hit, from the server's own counters.
    server.reset_stats();
    rt.block_on(async {
        for _ in 0..1000 {
            item(&cache, 1).await;
        }
    });
    let stats = server.commands();
    let per_hit: Vec<&str> = stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .collect();
    println!("redis commands for 1000 storage-only hits: {per_hit:?}");

    let mut group = c.benchmark_group("redis_hit_sequential");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("raw_get", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            async move {
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg("raw:item:1")
                    .query_async(&mut raw)
                    .await
                    .expect("GET");
                String::from_utf8(bytes).expect("utf8")
            }
        })
    });
    group.bench_function("cached_storage_only", |b| {
        b.to_async(&rt).iter(|| item(&cache, 1))
    });
    group.finish();

    let mut group = c.benchmark_group("redis_hit_64_tasks");
    group.measurement_time(Duration::from_secs(6));
    group.sample_size(20);
    group.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    group.bench_function("raw_get", |b| {
        b.to_async(&rt).iter(|| raw_gets(&raw, PER_TASK))
    });
    group.bench_function("cached_storage_only", |b| {
        b.to_async(&rt).iter(|| cached_hits(&cache, PER_TASK))
    });
    group.finish();
}

fn write_through_memory_hit(c: &mut Criterion) {
    let server = Server::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (wt, mem) = rt.block_on(async {
        let wt = Cache::builder()
            .namespace("bench-wt")
            .memory(10_000)
            .redis(server.url())
            .build()
            .await
            .expect("cache");
        let mem = Cache::memory(10_000);
        item(&wt, 1).await;
        item(&mem, 1).await;
        (wt, mem)
    });
    let mut group = c.benchmark_group("memory_hit_by_mode");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("memory_only", |b| b.to_async(&rt).iter(|| item(&mem, 1)));
    group.bench_function("write_through", |b| b.to_async(&rt).iter(|| item(&wt, 1)));
    group.finish();
}

criterion_group!(benches, storage_only, write_through_memory_hit);
criterion_main!(benches);
