//! One function over many caches (a cache per tenant): each cache keeps its
//! functions' plans and get counters (about 2 KiB per function and cache),
//! and frees them when its last handle is dropped. Before, a site kept the
//! counters of the first eight caches it met for ever (256 functions × 1,000
//! caches held 4.9 MB).
//!
//! One test in this binary: it reads a process-wide count.

use std::time::Duration;

use cache_runtime::__private::live_site_counts;
use cache_runtime::{cached, Cache};

/// Declares one `#[cached]` function per name, and `call_all`, which calls
/// each once with a cache.
macro_rules! functions {
    ($($name:ident,)*) => {
        $(
            #[cached(cache = cache, ttl = "1h")]
            async fn $name(cache: &Cache, n: u64) -> u64 {
                n + 1
            }
        )*

        /// The number of functions.
        const FUNCTIONS: usize = [$(stringify!($name)),*].len();

        async fn call_all(cache: &Cache) {
            $(assert_eq!($name(cache, 1).await, 2);)*
        }
    };
}

functions!(
    f00, f01, f02, f03, f04, f05, f06, f07, f08, f09, f10, f11, f12, f13, f14, f15, f16, f17, f18,
    f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34, f35, f36, f37,
    f38, f39, f40, f41, f42, f43, f44, f45, f46, f47, f48, f49,
);

const CACHES: usize = 1000;

// Paused time: each cache's metrics drain (this crate enables `metrics`)
// shares its counters until its last report, and the paused clock lets
// every drain run that report before the end is checked.
#[tokio::test(start_paused = true)]
async fn a_thousand_dropped_caches_free_their_functions_counters() {
    let baseline = live_site_counts();
    for round in 0..CACHES {
        let cache = Cache::memory(100);
        call_all(&cache).await;
        call_all(&cache).await;
        let stats = cache.stats();
        assert_eq!(
            (stats.misses, stats.hits),
            (FUNCTIONS as u64, FUNCTIONS as u64)
        );
        if round == 0 {
            // One block per function called with this cache.
            assert_eq!(live_site_counts(), baseline + FUNCTIONS);
        }
        drop(cache);
    }
    // Longer than the drains' period: every drain has made its last report.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = live_site_counts().saturating_sub(baseline);
    // A block is 17 cache lines of 128 bytes (16 thread slots and a shared one).
    println!(
        "{CACHES} caches × {FUNCTIONS} functions: {left} counter blocks left (about {} KiB)",
        left * 17 * 128 / 1024
    );
    assert_eq!(left, 0, "counter blocks of dropped caches left");
}
