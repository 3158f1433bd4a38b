//! What the memory-hit benches share: the variants compared and the loop that
//! drives them.
//!
//! Every variant answers the same calls: a `u64` argument cycling over
//! `1..=1000` (all pre-warmed by [`warm`]), returning an owned 100-byte
//! `String`. Each is driven by [`run`]: `N` awaited calls inside one
//! `block_on` of a current-thread tokio runtime, so the runtime costs nothing
//! per call (a hit never yields).

use std::future::Future;
use std::hint::black_box;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cache_runtime::Cache;
use tokio::runtime::Runtime;

/// Keys cycle over `1..=KEYS`.
pub const KEYS: u64 = 1000;
/// Length of every value.
pub const VALUE_LEN: usize = 100;

#[inline]
fn key(i: u64) -> u64 {
    i % KEYS + 1
}

/// The value for `id`: exactly [`VALUE_LEN`] bytes.
fn value_for(id: u64) -> String {
    let mut s = format!("value-{id:020}-");
    s.extend(std::iter::repeat_n('x', VALUE_LEN - s.len()));
    s
}

/// `#[cached]` on the global cache (the default: no `cache = ..`).
#[cache_runtime::cached(ttl = "10m")]
pub async fn ours_global(id: u64) -> String {
    value_for(id)
}

static EXPLICIT: LazyLock<Cache> = LazyLock::new(|| Cache::memory(10_000));
static TEMPLATE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(10_000));

/// `#[cached]` with a template key (`item:{id}`), on a cache of its own so
/// the others' working sets stay as they were.
#[cache_runtime::cached(ttl = "10m", key = "item:{id}", cache = &*TEMPLATE)]
pub async fn ours_template(id: u64) -> String {
    value_for(id)
}

/// `#[cached]` on a cache given with `cache = ..`.
#[cache_runtime::cached(ttl = "10m", cache = &*EXPLICIT)]
pub async fn ours_explicit(id: u64) -> String {
    value_for(id)
}

/// Four caches one function is used with, as a multi-tenant service passes
/// `cache = ..` per call: [`warm`] fills them in order, so `TENANTS[0]` is the
/// first cache the function meets and `TENANTS[3]` the fourth.
pub static TENANTS: LazyLock<[Cache; 4]> =
    LazyLock::new(|| [(); 4].map(|()| Cache::memory(10_000)));

/// `#[cached]` with the cache as an argument (left out of the key).
#[cache_runtime::cached(ttl = "10m", cache = cache)]
pub async fn ours_tenant(cache: &Cache, id: u64) -> String {
    value_for(id)
}

/// [`ours_tenant`] through the first cache it was used with.
pub async fn ours_tenant_first(id: u64) -> String {
    ours_tenant(&TENANTS[0], id).await
}

/// [`ours_tenant`] through the second cache it was used with.
pub async fn ours_tenant_second(id: u64) -> String {
    ours_tenant(&TENANTS[1], id).await
}

/// [`ours_tenant`] through the fourth cache it was used with.
pub async fn ours_tenant_fourth(id: u64) -> String {
    ours_tenant(&TENANTS[3], id).await
}

/// cached 0.56's plain macro: an `UnboundCache` behind one async mutex.
#[cached::proc_macro::cached]
pub async fn cached_default(id: u64) -> String {
    value_for(id)
}

/// cached 0.56's concurrency-oriented form (0.56 has no `concurrent_cached`;
/// 4.x does, below): `sync_writes = "by_key"`, a map of per-key async mutexes
/// so concurrent misses of one key run the body once.
#[cached::proc_macro::cached(sync_writes = "by_key")]
pub async fn cached_by_key(id: u64) -> String {
    value_for(id)
}

/// The `cached` crate's macro on the function equivalent to ours: entries
/// expire after 10 minutes (`ttl = "10m"`) and the cache is bounded
/// (`Cache::memory(10_000)`, the global default): a `TimedSizedCache`.
#[cached::proc_macro::cached(time = 600, size = 10_000)]
pub async fn cached_timed_sized(id: u64) -> String {
    value_for(id)
}

/// cached 4.x's plain `#[cached]`: an unbounded store behind one async lock.
#[cached4::macros::cached]
pub async fn cached4_default(id: u64) -> String {
    value_for(id)
}

/// cached 4.x's fast form, `#[concurrent_cached]`: a sharded store with a
/// lock per shard, unbounded.
#[cached4::macros::concurrent_cached]
pub async fn cached4_concurrent(id: u64) -> String {
    value_for(id)
}

/// cached 4.x's `#[concurrent_cached]` on the function equivalent to ours:
/// 10-minute expiry in a store bounded at 10,000 entries.
#[cached4::macros::concurrent_cached(ttl_secs = 600, max_size = 10_000)]
pub async fn cached4_concurrent_ttl_sized(id: u64) -> String {
    value_for(id)
}

static QUICK: LazyLock<quick_cache::sync::Cache<u64, String>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(10_000));

static MOKA: LazyLock<moka::future::Cache<u64, String>> =
    LazyLock::new(|| moka::future::Cache::new(10_000));

/// Raw quick_cache: `get` already returns an owned clone of the `String`.
pub async fn quick_get(id: u64) -> Option<String> {
    QUICK.get(&id)
}

/// Raw moka: `get` returns an owned clone of the `String`.
pub async fn moka_get(id: u64) -> Option<String> {
    MOKA.get(&id).await
}

static CONTROL: LazyLock<String> = LazyLock::new(|| value_for(0));

/// Control, no cache: only the clone of a (shared, read-only) 100-byte
/// `String` every variant pays to hand out an owned value. Shows the floor and
/// how this machine scales to two threads when nothing shared is written.
pub async fn control_clone(id: u64) -> String {
    black_box(id);
    CONTROL.clone()
}

/// A current-thread runtime, as each bench thread uses.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Times `iters` calls of `f` on this thread, starting at key offset `offset`.
pub fn run<F, Fut, T>(rt: &Runtime, iters: u64, offset: u64, f: &F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = T>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            black_box(f(black_box(key(i + offset))).await);
        }
        start.elapsed()
    })
}

/// Fills every variant with every key, and checks that each now hits.
pub fn warm(rt: &Runtime) {
    rt.block_on(async {
        for id in 1..=KEYS {
            let v = value_for(id);
            assert_eq!(ours_global(id).await, v);
            assert_eq!(ours_explicit(id).await, v);
            assert_eq!(ours_template(id).await, v);
            assert_eq!(cached_default(id).await, v);
            assert_eq!(cached_by_key(id).await, v);
            assert_eq!(cached_timed_sized(id).await, v);
            assert_eq!(cached4_default(id).await, v);
            assert_eq!(cached4_concurrent(id).await, v);
            assert_eq!(cached4_concurrent_ttl_sized(id).await, v);
            for tenant in TENANTS.iter() {
                assert_eq!(ours_tenant(tenant, id).await, v);
            }
            QUICK.insert(id, v.clone());
            MOKA.insert(id, v).await;
        }
        MOKA.run_pending_tasks().await;
        // Every variant now hits.
        let before = cache_runtime::global().stats().hits;
        for id in 1..=KEYS {
            assert_eq!(ours_global(id).await.len(), VALUE_LEN);
            assert!(quick_get(id).await.is_some());
            assert!(moka_get(id).await.is_some());
        }
        assert_eq!(cache_runtime::global().stats().hits - before, KEYS);
        for tenant in TENANTS.iter() {
            let before = tenant.stats().hits;
            for id in 1..=KEYS {
                assert_eq!(ours_tenant(tenant, id).await.len(), VALUE_LEN);
            }
            assert_eq!(tenant.stats().hits - before, KEYS);
        }
    });
}
