//! The memory tier at scale: 1,000,000 live entries of `#[cached]` against raw
//! `quick_cache` with the same key and value types (`u64` → a 100-byte
//! `String`), both alive in one process.
//!
//! Reports, for each side:
//! - resident bytes per entry: the growth of the process's resident set
//!   (`/proc/self/statm`) while filling, over the live entries;
//! - heap bytes per entry: the growth of glibc's bytes in use (`mallinfo2`:
//!   arena chunks plus mmapped blocks), which excludes pages touched and freed;
//! - random hits over all the entries, in alternating rounds (the same seeded
//!   key sequence for both sides in a round, the order rotated each round):
//!   median time per hit and the median of the per-round ratios, in this
//!   thread's CPU time (the time it waited for a core on a loaded machine
//!   left out) and in wall time.
//!
//! Both caches get the same capacity, a little above the entries, so that the
//! shards' uneven fill evicts nothing; the fill checks that every entry is
//! there.
//!
//! `CARGO_TARGET_DIR=target/bench cargo bench -p cache-runtime --bench scale`
//! (about 20 s and 0.6 GB; `RATIO_ROUNDS` sets the rounds, `SCALE_ENTRIES`
//! the entries).

mod rounds;

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cache_runtime::Cache;
use tokio::runtime::Runtime;

/// Length of every value.
const VALUE_LEN: usize = 100;
/// Random hits per side per round.
const CALLS: u64 = 200_000;

/// Entries to fill: `SCALE_ENTRIES`, else 1,000,000.
fn entries() -> u64 {
    std::env::var("SCALE_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Both caches' capacity: 5 % over the entries (the shards fill unevenly).
fn capacity() -> usize {
    (entries() as usize) * 21 / 20
}

fn value_for(id: u64) -> String {
    let mut s = format!("value-{id:020}-");
    s.extend(std::iter::repeat_n('x', VALUE_LEN - s.len()));
    s
}

static OURS: LazyLock<Cache> = LazyLock::new(|| Cache::memory(capacity()));
static QUICK: LazyLock<quick_cache::sync::Cache<u64, String>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(capacity()));

/// The `#[cached]` side: a default (hashed-argument) key.
#[cache_runtime::cached(ttl = "1h", cache = &*OURS)]
async fn item(id: u64) -> String {
    value_for(id)
}

/// The process's resident bytes.
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(not(target_os = "linux"))]
fn page_size() -> u64 {
    4096
}

/// glibc's heap bytes in use (arena chunks and mmapped blocks).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap() -> Option<u64> {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks + info.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> Option<u64> {
    None
}

/// Memory before and after one side's fill.
struct Usage {
    resident: Option<u64>,
    heap: Option<u64>,
}

impl Usage {
    fn now() -> Self {
        Self {
            resident: resident(),
            heap: heap(),
        }
    }

    /// Bytes per entry grown since `before`, as text.
    fn per_entry(&self, before: &Usage, entries: u64) -> (String, String) {
        let per = |after: Option<u64>, before: Option<u64>| match (after, before) {
            (Some(a), Some(b)) => format!("{:.1}", a.saturating_sub(b) as f64 / entries as f64),
            _ => "n/a".to_string(),
        };
        (
            per(self.resident, before.resident),
            per(self.heap, before.heap),
        )
    }
}

fn fill_quick(n: u64) -> u64 {
    for id in 1..=n {
        QUICK.insert(id, value_for(id));
    }
    (1..=n).filter(|id| QUICK.peek(id).is_some()).count() as u64
}

fn fill_ours(rt: &Runtime, n: u64) -> u64 {
    rt.block_on(async {
        for id in 1..=n {
            black_box(item(id).await);
        }
        assert_eq!(OURS.stats().misses, n, "every fill call is a miss");
        // Every entry is there: each call now hits.
        let before = OURS.stats().hits;
        for id in 1..=n {
            black_box(item(id).await);
        }
        let live = OURS.stats().hits - before;
        assert_eq!(OURS.stats().misses, n, "no entry was evicted");
        live
    })
}

/// This thread's CPU time: unlike wall time, it leaves out the time the
/// thread waited for a core, which on a loaded machine is most of a round.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> Duration {
    Duration::ZERO
}

/// One round of one side: ns per hit in wall time and in thread CPU time.
#[derive(Clone, Copy, Default)]
struct Took {
    wall: f64,
    cpu: f64,
}

/// Times `hits`, which makes `CALLS` calls.
fn timed(hits: impl FnOnce()) -> Took {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    hits();
    let per_call = |d: Duration| d.as_nanos() as f64 / CALLS as f64;
    Took {
        cpu: per_call(thread_cpu().saturating_sub(cpu)),
        wall: per_call(wall.elapsed()),
    }
}

/// `CALLS` random hits of one side; `seed` picks the keys.
fn side(rt: &Runtime, which: usize, n: u64, seed: u64) -> Took {
    let mut rng = fastrand::Rng::with_seed(seed);
    match which {
        0 => timed(|| {
            rt.block_on(async {
                for _ in 0..CALLS {
                    black_box(item(black_box(rng.u64(1..=n))).await);
                }
            })
        }),
        _ => timed(|| {
            for _ in 0..CALLS {
                black_box(QUICK.get(&black_box(rng.u64(1..=n))));
            }
        }),
    }
}

fn main() {
    if !rounds::selected("scale") {
        return;
    }
    let n = entries();
    let wanted = rounds::wanted(21);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // Build both (empty) caches first, so their tables count in their own fill.
    let empty = Usage::now();
    LazyLock::force(&QUICK);
    let quick_live = fill_quick(n);
    let quick_full = Usage::now();
    let quick_usage = quick_full.per_entry(&empty, quick_live);
    LazyLock::force(&OURS);
    let ours_live = fill_ours(&rt, n);
    let ours_usage = Usage::now().per_entry(&quick_full, ours_live);
    println!(
        "scale: {n} entries filled (u64 -> {VALUE_LEN}-byte String), capacity {}",
        capacity()
    );
    println!(
        "scale: #[cached]        {ours_live} live; resident {} bytes/entry; heap {} bytes/entry",
        ours_usage.0, ours_usage.1
    );
    println!(
        "scale: raw quick_cache  {quick_live} live; resident {} bytes/entry; heap {} bytes/entry",
        quick_usage.0, quick_usage.1
    );

    let hits_before = OURS.stats().hits;
    side(&rt, 0, n, u64::MAX); // warm-up round
    side(&rt, 1, n, u64::MAX);
    let rounds: Vec<[Took; 2]> = (0..wanted)
        .map(|round| {
            let mut r = [Took::default(); 2];
            for which in rounds::order(round, 2) {
                r[which] = side(&rt, which, n, round as u64);
            }
            r
        })
        .collect();
    let calls = CALLS * (wanted as u64 + 1);
    assert_eq!(OURS.stats().hits - hits_before, calls, "every call hit");
    println!("scale: {wanted} rounds of {CALLS} random hits per side over {n} entries, 1 thread");
    for (clock, read) in [
        ("thread CPU", (|t: &Took| t.cpu) as fn(&Took) -> f64),
        ("wall", |t: &Took| t.wall),
    ] {
        let ours = rounds::spread(rounds.iter().map(|r| read(&r[0]))).median;
        let quick = rounds::spread(rounds.iter().map(|r| read(&r[1]))).median;
        let ratio = rounds::spread(rounds.iter().map(|r| read(&r[0]) / read(&r[1])));
        println!(
            "scale: {clock:10} #[cached] median {ours:7.1} ns/hit; raw quick_cache {quick:7.1} ns/hit; \
             ratio median {:.3} (quartiles {:.3}-{:.3})",
            ratio.median, ratio.low_quartile, ratio.high_quartile
        );
    }
}
