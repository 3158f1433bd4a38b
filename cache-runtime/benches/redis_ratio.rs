//! The 64-task throughput of storage-only `#[cached]` hits relative to raw
//! redis-rs `GET`s, and to raw `MGET`s of the same three keys a hit reads,
//! measured in alternation; then the sequential latency of the two, also in
//! alternation.
//!
//! On a small shared machine the client and `redis-server` compete for the
//! same cores, and throughput drifts by tens of percent between runs. Criterion
//! (`redis_hit`) measures the two sides one after the other, so a drift lands
//! on one side only. This bench alternates short rounds of each side and
//! reports the median of the per-round ratios, which a drift affects equally.
//!
//! `cargo bench -p cache-runtime --bench redis_ratio` (about 1 minute; set
//! `RATIO_ROUNDS` for more or fewer rounds, `RATIO_PER_TASK` for longer ones).

mod rounds;
mod support;

use std::time::{Duration, Instant};

use cache_runtime::Cache;
use redis::aio::ConnectionManager;
use support::{cached_hits, item, prepare, raw_gets, Server, TASKS};

/// Calls per task per throughput round (`RATIO_PER_TASK`, default 300: a
/// round of about 70 ms here). Longer rounds smooth the scheduler's hiccups.
fn per_task() -> usize {
    std::env::var("RATIO_PER_TASK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(300)
}

/// Hits per second of one round: `TASKS` tasks, `per_task()` raw GETs each.
async fn raw_round(raw: &ConnectionManager) -> f64 {
    let started = Instant::now();
    raw_gets(raw, per_task()).await;
    (TASKS * per_task()) as f64 / started.elapsed().as_secs_f64()
}

/// Reads per second of one round: 64 tasks, `per_task()` raw MGETs each of the
/// very keys a cached hit reads (its entry and its two tags' versions), with
/// no decoding: what the one-round-trip design costs before any of our code.
async fn mget_round(raw: &ConnectionManager) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|id| {
            let mut conn = raw.clone();
            let keys = [
                format!("bench:item:{id}"),
                format!("bench#tag:item:{id}"),
                "bench#tag:items".to_owned(),
            ];
            tokio::spawn(async move {
                for _ in 0..per_task() {
                    let reply: redis::Value = redis::cmd("MGET")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .expect("MGET");
                    std::hint::black_box(reply);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    (TASKS * per_task()) as f64 / started.elapsed().as_secs_f64()
}

/// Calls per sequential round (one task, one key).
const SEQUENTIAL: usize = 300;

/// Mean latency in µs of `SEQUENTIAL` raw GETs, one after another.
async fn raw_sequential(raw: &ConnectionManager) -> f64 {
    let mut conn = raw.clone();
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg("raw:item:0")
            .query_async(&mut conn)
            .await
            .expect("GET");
        std::hint::black_box(String::from_utf8(bytes).expect("utf8"));
    }
    started.elapsed().as_secs_f64() * 1e6 / SEQUENTIAL as f64
}

/// Mean latency in µs of `SEQUENTIAL` cached hits, one after another.
async fn cached_sequential(cache: &Cache) -> f64 {
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        std::hint::black_box(item(cache, 0).await);
    }
    started.elapsed().as_secs_f64() * 1e6 / SEQUENTIAL as f64
}

/// Hits per second of one round: `TASKS` tasks, `per_task()` cached hits each.
async fn cached_round(cache: &Cache) -> f64 {
    let started = Instant::now();
    cached_hits(cache, per_task()).await;
    (TASKS * per_task()) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if !rounds::selected("redis_ratio") {
        return;
    }
    let wanted = rounds::wanted(20);
    let server = Server::start();
    let rt = support::runtime();
    rt.block_on(async {
        let (cache, raw) = prepare(server.url()).await;
        // Warm-up, one round each.
        raw_round(&raw).await;
        mget_round(&raw).await;
        cached_round(&cache).await;
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut rounds: Vec<[f64; 3]> = Vec::with_capacity(wanted);
        for round in 0..wanted {
            let mut r = [0.0; 3];
            for side in rounds::order(round, 3) {
                r[side] = match side {
                    0 => raw_round(&raw).await,
                    1 => mget_round(&raw).await,
                    _ => cached_round(&cache).await,
                };
            }
            rounds.push(r);
            if Instant::now() > deadline {
                break;
            }
        }
        // Sequential latency, in alternation too: a raw GET, then a hit.
        let mut latency: Vec<[f64; 2]> = Vec::with_capacity(wanted);
        for round in 0..wanted {
            let mut r = [0.0; 2];
            for side in rounds::order(round, 2) {
                r[side] = match side {
                    0 => raw_sequential(&raw).await,
                    _ => cached_sequential(&cache).await,
                };
            }
            latency.push(r);
        }
        let ratio = rounds::spread(latency.iter().map(|r| r[1] / r[0]));
        println!(
            "redis_ratio: sequential, {} rounds of {SEQUENTIAL}: median latency raw GET {:.1} µs, #[cached] {:.1} µs; #[cached] / raw GET latency: median {:.3}, quartiles {:.3}..{:.3}",
            latency.len(),
            rounds::spread(latency.iter().map(|r| r[0])).median,
            rounds::spread(latency.iter().map(|r| r[1])).median,
            ratio.median,
            ratio.low_quartile,
            ratio.high_quartile,
        );
        let n = rounds.len() as f64;
        let mean = |i: usize| rounds.iter().map(|r| r[i]).sum::<f64>() / n;
        println!(
            "redis_ratio: {} rounds of 64 tasks x {}; mean throughput: raw GET {:.0}/s, raw MGET of the hit's 3 keys {:.0}/s, #[cached] storage-only {:.0}/s",
            rounds.len(),
            per_task(),
            mean(0),
            mean(1),
            mean(2)
        );
        for (name, num, den) in [
            ("#[cached] / raw GET", 2, 0),
            ("raw MGET / raw GET", 1, 0),
            ("#[cached] / raw MGET", 2, 1),
        ] {
            let ratio = rounds::spread(rounds.iter().map(|r| r[num] / r[den]));
            println!(
                "redis_ratio: {name}: median {:.3}, quartiles {:.3}..{:.3}, range {:.3}..{:.3}",
                ratio.median, ratio.low_quartile, ratio.high_quartile, ratio.min, ratio.max
            );
        }
    });
}
