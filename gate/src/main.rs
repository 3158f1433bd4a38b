//! The regression gate's bench (`.ci/bench-gate`): runs one path of the
//! library `calls` times and exits, for `valgrind --tool=callgrind`.
//!
//! `bench-gate <path> <calls>`. The gate runs each path twice, with `N` and
//! `2N` calls, counting only inside [`measured`], and takes the difference
//! of the two counts over `N`: what is the same in both runs (entering the
//! runtime, the first calls' one-time work) cancels, leaving one call.
//!
//! Every memory path answers a `u64` argument cycling over `1..=1000` (all
//! warmed first) with an owned 100-byte `String`, as `benches/hit_ratio.rs`
//! does, inside one `block_on` of a current-thread runtime (a hit never
//! yields, so the runtime costs nothing per call).

mod http_hit;
mod memory;
mod remote_hit;

use std::process::ExitCode;

/// The paths, each with what it measures.
const PATHS: [(&str, &str); 8] = [
    (
        "default_key",
        "#[cached(cache = ..)] memory hit, default key",
    ),
    ("template_key", "#[cached(key = \"item:{id}\")] memory hit"),
    (
        "second_cache",
        "one function over two caches, a hit through the second",
    ),
    (
        "metrics",
        "default_key with metrics on and a Prometheus recorder",
    ),
    (
        "http_hit",
        "CacheLayer fresh memory hit, 1 KiB body collected",
    ),
    (
        "miss",
        "memory-only miss: runs the function and stores the value",
    ),
    (
        "remote_hit",
        "storage-only #[cached] hit on the in-process store, no tags",
    ),
    (
        "remote_hit_tagged",
        "remote_hit with two tags, their versions read with the entry",
    ),
];

/// Runs the calls the gate counts. `.ci/bench-gate` has callgrind collect
/// inside this function only (`--toggle-collect`), which leaves out the
/// set-up and whatever the runtime ran outside it (the metrics drain's
/// ticks, whose number depends on time).
#[inline(never)]
pub fn measured(calls: &mut dyn FnMut()) {
    calls();
}

fn usage() -> ExitCode {
    eprintln!("usage: bench-gate <path> <calls>; paths:");
    for (name, what) in PATHS {
        eprintln!("  {name:17} {what}");
    }
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, calls] = args.as_slice() else {
        return usage();
    };
    let Ok(calls) = calls.parse::<u64>() else {
        return usage();
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    match path.as_str() {
        "default_key" => memory::default_key(&rt, calls),
        "template_key" => memory::template_key(&rt, calls),
        "second_cache" => memory::second_cache(&rt, calls),
        "metrics" => memory::metrics(&rt, calls),
        "http_hit" => http_hit::run(&rt, calls),
        "miss" => memory::miss(&rt, calls),
        "remote_hit" => remote_hit::untagged(&rt, calls),
        "remote_hit_tagged" => remote_hit::tagged(&rt, calls),
        _ => return usage(),
    }
    println!("bench-gate: {path}: {calls} calls");
    ExitCode::SUCCESS
}
