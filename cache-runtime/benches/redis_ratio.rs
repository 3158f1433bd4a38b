//! The 64-task throughput of storage-only `#[cached]` hits relative to raw
//! redis-rs `GET`s, and to raw `MGET`s of the same three keys a hit reads,
//! measured in alternation.
//!
//! On a small shared machine the client and `redis-server` compete for the
//! same cores, and throughput drifts by tens of percent between runs. Criterion
//! (`redis_hit`) measures the two sides one after the other, so a drift lands
//! on one side only. This bench alternates short rounds of each side and
//! reports the median of the per-round ratios, which a drift affects equally.
//!
//! `cargo bench -p cache-runtime --bench redis_ratio` (about 1 minute; set
//! `RATIO_ROUNDS` for more or fewer rounds).

mod support;

use std::time::{Duration, Instant};

use cache_runtime::Cache;
use redis::aio::ConnectionManager;
use support::{cached_hits, prepare, raw_gets, Server, TASKS};

const PER_TASK: usize = 300;

/// Hits per second of one round: `TASKS` tasks, `PER_TASK` raw GETs each.
async fn raw_round(raw: &ConnectionManager) -> f64 {
    let started = Instant::now();
    raw_gets(raw, PER_TASK).await;
    (TASKS * PER_TASK) as f64 / started.elapsed().as_secs_f64()
}

/// Reads per second of one round: 64 tasks, `PER_TASK` raw MGETs each of the
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
                for _ in 0..PER_TASK {
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
    (TASKS * PER_TASK) as f64 / started.elapsed().as_secs_f64()
}

/// Hits per second of one round: `TASKS` tasks, `PER_TASK` cached hits each.
async fn cached_round(cache: &Cache) -> f64 {
    let started = Instant::now();
    cached_hits(cache, PER_TASK).await;
    (TASKS * PER_TASK) as f64 / started.elapsed().as_secs_f64()
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that excludes this bench skips it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"redis_ratio".contains(a.as_str()))
    {
        return;
    }
    let wanted: usize = std::env::var("RATIO_ROUNDS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(20);
    let server = Server::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (cache, raw) = prepare(server.url()).await;
        // Warm-up, one round each.
        raw_round(&raw).await;
        mget_round(&raw).await;
        cached_round(&cache).await;
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut rounds: Vec<[f64; 3]> = Vec::with_capacity(wanted);
        for round in 0..wanted {
            // Rotate the order, so no side always follows the same other.
            let mut r = [0.0; 3];
            for step in 0..3 {
                let side = (round + step) % 3;
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
        let n = rounds.len() as f64;
        let mean = |i: usize| rounds.iter().map(|r| r[i]).sum::<f64>() / n;
        println!(
            "redis_ratio: {} rounds of 64 tasks x {PER_TASK}; mean throughput: raw GET {:.0}/s, raw MGET of the hit's 3 keys {:.0}/s, #[cached] storage-only {:.0}/s",
            rounds.len(),
            mean(0),
            mean(1),
            mean(2)
        );
        for (name, num, den) in [
            ("#[cached] / raw GET", 2, 0),
            ("raw MGET / raw GET", 1, 0),
            ("#[cached] / raw MGET", 2, 1),
        ] {
            let mut ratios: Vec<f64> = rounds.iter().map(|r| r[num] / r[den]).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "redis_ratio: {name}: median {:.3}, quartiles {:.3}..{:.3}, range {:.3}..{:.3}",
                median(&ratios),
                ratios[ratios.len() / 4],
                ratios[ratios.len() * 3 / 4],
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    });
}
