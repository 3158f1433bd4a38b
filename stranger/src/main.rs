//! The `#[cached]` memory hit as a stranger's crate sees it (issue 18): this
//! crate depends on `cache-runtime` by path like any user's, with the
//! `metrics` feature on and no recorder or listener installed, and measures
//! every figure against its anchor, raw `quick_cache` holding the same
//! `u64` → 100-byte `String`, in the same process.
//!
//! ```text
//! stranger ratio [rounds]        hits over 1,000 keys: default key ÷ raw, template ÷ default
//! stranger scale [entries]       1,000,000 entries: bytes per entry ÷ raw (entry bound,
//!                                and with .memory_bytes), then spread hits ÷ raw
//! stranger threads [rounds]      2 threads hitting: per-thread cost ÷ raw's with 2 threads
//! stranger count <path> <calls>  for callgrind (--toggle-collect=stranger_bench::measured);
//!                                path: raw, default, template
//! ```
//!
//! Times are each thread's CPU time, medians of interleaved rounds (each
//! round runs every side, the order rotated), so a loaded machine slows
//! both sides of a ratio alike.
//! Memory is counted by this crate's global allocator: the bytes glibc
//! really holds for each live block (`malloc_usable_size` plus its 8-byte
//! header), summed per side, so the figure does not depend on which side
//! ran first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Barrier, OnceLock};

use cache_runtime::Cache;
use tokio::runtime::Runtime;

/// Counts the bytes of live heap blocks as glibc holds them.
struct Counting;

static HELD: AtomicI64 = AtomicI64::new(0);
/// Counting is on only for `scale`: elsewhere the allocator costs what
/// `System` does (plus this flag's load), as in a user's program.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn block(ptr: *mut u8) -> i64 {
    if !COUNTING.load(Ordering::Relaxed) {
        return 0;
    }
    // SAFETY: `ptr` is a live block of the system allocator (glibc malloc).
    (unsafe { libc::malloc_usable_size(ptr.cast()) } + 8) as i64
}

// SAFETY: forwards to `System`; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            HELD.fetch_add(block(ptr), Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(block(ptr), Ordering::Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            HELD.fetch_add(block(ptr), Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = block(ptr);
        // SAFETY: as the caller's contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            HELD.fetch_add(block(new) - before, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const VALUE_LEN: usize = 100;
/// Keys of the small-cache hits (`ratio`, `threads`, `count`).
const KEYS: u64 = 1000;

fn value_for(id: u64) -> String {
    let mut s = format!("value-{id:020}-");
    s.extend(std::iter::repeat_n('x', VALUE_LEN - s.len()));
    s
}

static SMALL: OnceLock<Cache> = OnceLock::new();
static BIG: OnceLock<Cache> = OnceLock::new();
static BOUNDED: OnceLock<Cache> = OnceLock::new();

fn small() -> &'static Cache {
    SMALL.get().expect("built first")
}
fn big() -> &'static Cache {
    BIG.get().expect("built first")
}
fn bounded() -> &'static Cache {
    BOUNDED.get().expect("built first")
}

#[cache_runtime::cached(ttl = "1h", cache = small())]
async fn item(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "1h", key = "item:{id}", cache = small())]
async fn templated(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "1h", cache = big())]
async fn spread(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(ttl = "1h", cache = bounded())]
async fn weighed(id: u64) -> String {
    value_for(id)
}

type Raw = quick_cache::sync::Cache<u64, String>;

/// Runs the calls callgrind counts (`count`).
#[inline(never)]
pub fn measured(calls: &mut dyn FnMut()) {
    calls();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This thread's CPU time in ns: unlike wall time, it leaves out the time
/// the thread waited for a core, most of a round on a loaded machine.
fn thread_cpu() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "the thread's CPU clock");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// ns of this thread's CPU time per call of `calls` calls of `f`.
fn timed(calls: u64, f: impl FnOnce()) -> f64 {
    let start = thread_cpu();
    f();
    (thread_cpu() - start) as f64 / calls as f64
}

fn small_cache(rt: &Runtime) -> Raw {
    let cache = rt.block_on(async { Cache::builder().memory(10_000).build().await });
    let _ = SMALL.set(cache.expect("a memory cache"));
    let raw = Raw::new(10_000);
    rt.block_on(async {
        for id in 1..=KEYS {
            raw.insert(id, value_for(id));
            black_box(item(id).await);
            black_box(templated(id).await);
        }
    });
    raw
}

/// `calls` hits of one side (0 raw, 1 default key, 2 template key).
fn hits(rt: &Runtime, raw: &Raw, side: usize, calls: u64) {
    rt.block_on(async {
        for i in 0..calls {
            let id = black_box(i % KEYS + 1);
            match side {
                0 => drop(black_box(raw.get(&id))),
                1 => drop(black_box(item(id).await)),
                _ => drop(black_box(templated(id).await)),
            }
        }
    })
}

fn ratio(rt: &Runtime, rounds: usize) {
    let raw = small_cache(rt);
    const CALLS: u64 = 200_000;
    let mut ns = [Vec::new(), Vec::new(), Vec::new()];
    let (mut default_raw, mut template_default) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut t = [0.0; 3];
        for k in 0..3 {
            let side = (k + round) % 3;
            t[side] = timed(CALLS, || hits(rt, &raw, side, CALLS));
        }
        default_raw.push(t[1] / t[0]);
        template_default.push(t[2] / t[1]);
        for side in 0..3 {
            ns[side].push(t[side]);
        }
    }
    let [raw_ns, default_ns, template_ns] = ns.map(median);
    println!("hits over {KEYS} keys, {rounds} rounds of {CALLS} calls (medians)");
    println!("  raw quick_cache get   {raw_ns:6.1} ns");
    println!(
        "  default key hit       {default_ns:6.1} ns   ÷ raw {:.3}",
        median(default_raw)
    );
    println!(
        "  template key hit      {template_ns:6.1} ns   ÷ default {:.3}",
        median(template_default)
    );
}

fn scale(rt: &Runtime, entries: u64) {
    let capacity = (entries as usize) * 21 / 20;
    COUNTING.store(true, Ordering::Relaxed);
    let per = |before: i64| (HELD.load(Ordering::Relaxed) - before) as f64 / entries as f64;
    let before = HELD.load(Ordering::Relaxed);
    let raw = Raw::new(capacity);
    for id in 1..=entries {
        raw.insert(id, value_for(id));
    }
    let raw_bytes = per(before);
    let before = HELD.load(Ordering::Relaxed);
    let cache = rt.block_on(async { Cache::builder().memory(capacity).build().await });
    let _ = BIG.set(cache.expect("a memory cache"));
    rt.block_on(async {
        for id in 1..=entries {
            black_box(spread(id).await);
        }
    });
    let ours_bytes = per(before);
    assert_eq!(big().stats().misses, entries, "every fill call missed once");
    // The same with a byte bound that holds them all, in a cache of its own.
    let before = HELD.load(Ordering::Relaxed);
    let cache = rt.block_on(async {
        Cache::builder()
            .memory(capacity)
            .memory_bytes(4 << 30)
            .build()
            .await
    });
    let _ = BOUNDED.set(cache.expect("a memory cache"));
    rt.block_on(async {
        for id in 1..=entries {
            black_box(weighed(id).await);
        }
    });
    let bounded_bytes = per(before);
    assert_eq!(
        bounded().stats().misses,
        entries,
        "every fill call missed once"
    );
    COUNTING.store(false, Ordering::Relaxed);
    println!("{entries} entries, heap bytes per entry (glibc blocks)");
    println!("  raw quick_cache       {raw_bytes:6.1}");
    println!(
        "  #[cached] default key {ours_bytes:6.1}   ÷ raw {:.3}",
        ours_bytes / raw_bytes
    );
    println!(
        "  with .memory_bytes    {bounded_bytes:6.1}   ÷ raw {:.3}",
        bounded_bytes / raw_bytes
    );
    const CALLS: u64 = 200_000;
    let (mut r, mut o, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..15u64 {
        let mut t = [0.0; 2];
        for k in 0..2 {
            let side = (k + round as usize) % 2;
            let mut rng = fastrand::Rng::with_seed(round);
            t[side] = timed(CALLS, || {
                rt.block_on(async {
                    for _ in 0..CALLS {
                        let id = black_box(rng.u64(1..=entries));
                        if side == 0 {
                            drop(black_box(raw.get(&id)));
                        } else {
                            drop(black_box(spread(id).await));
                        }
                    }
                })
            });
        }
        r.push(t[0]);
        o.push(t[1]);
        ratios.push(t[1] / t[0]);
    }
    println!("random hits over {entries} live entries, 15 rounds (medians)");
    println!("  raw quick_cache get   {:6.1} ns", median(r));
    println!(
        "  default key hit       {:6.1} ns   ÷ raw {:.3}",
        median(o),
        median(ratios)
    );
}

fn threads(rt: &Runtime, rounds: usize) {
    let raw = small_cache(rt);
    const CALLS: u64 = 200_000;
    let (mut r, mut o, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut t = [0.0; 2];
        for k in 0..2 {
            let side = (k + round) % 2;
            let barrier = Barrier::new(2);
            let per_thread: Vec<f64> = std::thread::scope(|s| {
                let run = || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("a runtime");
                    barrier.wait();
                    timed(CALLS, || hits(&rt, &raw, side, CALLS))
                };
                let a = s.spawn(run);
                let b = s.spawn(run);
                [a, b].map(|h| h.join().expect("a bench thread")).to_vec()
            });
            t[side] = per_thread.iter().sum::<f64>() / 2.0;
        }
        r.push(t[0]);
        o.push(t[1]);
        ratios.push(t[1] / t[0]);
    }
    println!("2 threads hitting {KEYS} keys, {rounds} rounds (medians, per thread)");
    println!("  raw quick_cache get   {:6.1} ns", median(r));
    println!(
        "  default key hit       {:6.1} ns   ÷ raw {:.3}",
        median(o),
        median(ratios)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match args.first().map(String::as_str) {
        Some("ratio") => ratio(&rt, arg(1, 31) as usize),
        Some("scale") => scale(&rt, arg(1, 1_000_000)),
        Some("threads") => threads(&rt, arg(1, 15) as usize),
        Some("count") => {
            let raw = small_cache(&rt);
            let side = match args.get(1).map(String::as_str) {
                Some("raw") => 0,
                Some("default") => 1,
                _ => 2,
            };
            let calls = arg(2, 100_000);
            measured(&mut || hits(&rt, &raw, side, calls));
        }
        _ => eprintln!(
            "usage: stranger ratio|scale|threads [n] | count raw|default|template <calls>"
        ),
    }
}
