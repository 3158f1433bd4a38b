//! The benchmark's load generator: `connections` keep-alive connections to
//! one address on this machine, each sending `GET /users/{id}` with a random
//! id in `1..=ids` back to back for `duration`; then one markdown table row:
//! `| label | requests/s | p50 | p99 | errors |`.
//!
//! ```text
//! loadgen --addr 127.0.0.1:3000 --connections 16 --duration 10 --label memory
//! ```
//!
//! Bounded by design: only loopback addresses, at most 1024 connections and
//! 600 s. Latency is measured per request, from writing it to reading the
//! whole response.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use service::client::{self, Connection};
use service::db::QUERIES_TOTAL;

const MAX_CONNECTIONS: usize = 1024;
const MAX_SECONDS: u64 = 600;

struct Args {
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    ids: u64,
    label: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        connections: 16,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        ids: 1000,
        label: "run".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--addr" => args.addr = value.parse().map_err(|e| bad(&e))?,
            "--connections" => args.connections = value.parse().map_err(|e| bad(&e))?,
            "--duration" => {
                args.duration = Duration::from_secs(value.parse().map_err(|e| bad(&e))?)
            }
            "--warmup" => args.warmup = Duration::from_secs(value.parse().map_err(|e| bad(&e))?),
            "--ids" => args.ids = value.parse().map_err(|e| bad(&e))?,
            "--label" => args.label = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !args.addr.ip().is_loopback() {
        return Err(format!("--addr {}: only loopback addresses", args.addr));
    }
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        return Err(format!("--connections: 1 to {MAX_CONNECTIONS}"));
    }
    if args.duration.is_zero() || args.duration.as_secs() + args.warmup.as_secs() > MAX_SECONDS {
        return Err(format!("--duration + --warmup: 1 to {MAX_SECONDS} s"));
    }
    if args.ids == 0 {
        return Err("--ids: at least 1".into());
    }
    Ok(args)
}

/// What one connection measured after the warm-up.
#[derive(Default)]
struct Tally {
    /// Latency of each successful request, in microseconds.
    latencies_us: Vec<u32>,
    errors: u64,
}

async fn drive(args: &Args, measure_from: Instant, until: Instant) -> Result<Tally, String> {
    let mut conn = Connection::connect(args.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", args.addr))?;
    let mut tally = Tally::default();
    let mut rng = fastrand::Rng::new();
    while Instant::now() < until {
        let path = format!("/users/{}", rng.u64(1..=args.ids));
        let start = Instant::now();
        let response = conn.get(&path).await;
        let took = start.elapsed();
        let counted = start >= measure_from;
        match response {
            Ok(r) if r.status == 200 => {
                if counted {
                    tally
                        .latencies_us
                        .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok(_) => tally.errors += u64::from(counted),
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(tally)
}

/// The service's query counter, read from `/metrics` at `at`.
async fn queries_at(addr: SocketAddr, at: Instant) -> Result<f64, String> {
    tokio::time::sleep_until(at.into()).await;
    let metrics = client::send(addr, "GET", "/metrics", None)
        .await
        .map_err(|e| format!("/metrics: {e}"))?;
    Ok(client::counter_sum(&metrics.body, QUERIES_TOTAL, &[]))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// A task's result, or what went wrong in it.
async fn joined<T>(task: tokio::task::JoinHandle<Result<T, String>>) -> Result<T, String> {
    task.await.map_err(|e| format!("a task failed: {e}"))?
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let args = std::sync::Arc::new(args);
    let measure_from = Instant::now() + args.warmup;
    let until = measure_from + args.duration;
    let addr = args.addr;
    let queries = tokio::spawn(async move {
        let before = queries_at(addr, measure_from).await?;
        let after = queries_at(addr, until).await?;
        Ok(after - before)
    });
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let args = args.clone();
            tokio::spawn(async move { drive(&args, measure_from, until).await })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let tally = joined(task).await?;
        all.extend(tally.latencies_us);
        errors += tally.errors;
    }
    let queries: f64 = joined(queries).await?;
    all.sort_unstable();
    let rps = all.len() as f64 / args.duration.as_secs_f64();
    println!(
        "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.3} | {} |",
        args.label,
        rps,
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        queries / all.len().max(1) as f64,
        errors
    );
    if errors > 0 {
        return Err(format!("{errors} responses were not 200"));
    }
    Ok(())
}
