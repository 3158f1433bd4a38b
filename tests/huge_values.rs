//! Huge values and the remote tier: the maximum entry size
//! (`.max_entry_bytes(n)`, `CACHE_MAX_ENTRY_BYTES`, 16 MiB by default) and
//! byte strings, against a real Redis.
//!
//! - A 64 MB value, above the bound, in storage-only and write-through
//!   modes: the call returns it at once, nothing is stored under its key
//!   (an older value there is deleted), it is counted in
//!   `Stats::oversized_entries`, and encoding it allocated at most about the
//!   bound (measured by the counting allocator of this test binary).
//! - An entry longer than a reader's bound is a counted miss, never decoded.
//! - A 1 MB byte buffer takes about 1 MB in Redis as a byte string
//!   (`serde_bytes`), and about 1.9 MB as a plain `Vec<u8>`.
//! - An oversized entry is a `FaultKind::Oversized` event and counts in
//!   `cache_oversized_entries_total`, not in the remote errors.
//!
//! The tests measure allocations process-wide, so they run one at a time
//! (`ONE_AT_A_TIME`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::events::{FaultKind, Listener, StoreFault};
use cache_runtime::{cached, Cache, Policy};
use integration_tests::redis_harness::RedisServer;
use integration_tests::Calls;
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

const MIB: usize = 1 << 20;
/// The default maximum entry size.
const BOUND: usize = 16 * MIB;
/// The huge value: 64 MB, four times the bound.
const HUGE: usize = 64 * MIB;

/// The system allocator, counting the bytes held and their peak, except
/// blocks of exactly [`HUGE`] bytes: the huge value and its copies (which
/// the framework makes for waiters and for the memory tier whatever the
/// remote tier does), so that what is counted is the rest, the encoding
/// and what the write to Redis holds.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator as it is; the
// counters are only updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        shrank(layout.size());
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            // Counted as both blocks held at once, as a moving realloc is.
            grew(new_size);
            shrank(layout.size());
        }
        q
    }
}

fn grew(size: usize) {
    if size != HUGE {
        let held = HELD.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(held, Ordering::Relaxed);
    }
}

fn shrank(size: usize) {
    if size != HUGE {
        HELD.fetch_sub(size, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; what it returned, how long it took, and the most bytes held
/// at once during it beyond those held when it started (blocks of [`HUGE`]
/// bytes left out).
async fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, usize) {
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    let out = f.await;
    let took = start.elapsed();
    (
        out,
        took,
        PEAK.load(Ordering::Relaxed).saturating_sub(before),
    )
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `len` bytes of every value, most of which take two bytes as CBOR integers.
fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The one key of `namespace` in Redis named `name` (a manual key), or
/// matching `*name*` when `name` holds a `*`; `None` if there is none.
fn stored_key(server: &RedisServer, namespace: &str, name: &str) -> Option<String> {
    let keys = server.cli(&["KEYS", &format!("{namespace}:{name}")]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(keys.len() <= 1, "keys {name:?}: {keys:?}");
    keys.first().map(|k| (*k).to_owned())
}

fn strlen(server: &RedisServer, key: &str) -> usize {
    let out = server.cli(&["STRLEN", key]);
    out.trim().parse().expect("STRLEN")
}

async fn cache(server: &RedisServer, namespace: &str, memory: bool) -> Cache {
    let builder = Cache::builder().namespace(namespace).redis(server.url());
    let builder = if memory { builder.memory(100) } else { builder };
    builder.build().await.expect("connect to the test server")
}

static LOADS: Calls = Calls::new();

/// The huge value, made once (slow in a debug build).
fn huge() -> &'static Vec<u8> {
    static VALUE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    VALUE.get_or_init(|| bytes(HUGE))
}

#[cached(cache = cache, key = "blob:{id}", ttl = "1h", lock = "local")]
async fn blob(cache: &Cache, id: u64) -> Vec<u8> {
    LOADS.hit();
    let mut v = huge().clone();
    v[0] = id as u8;
    v
}

/// One mode: a `#[cached]` load and a manual `set` of 64 MB each.
async fn huge_value_is_returned_unstored_and_counted(memory: bool) {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let ns = if memory { "huge-wt" } else { "huge-so" };
    let cache = cache(&server, ns, memory).await;
    let mode = if memory {
        "write-through"
    } else {
        "storage-only"
    };

    // Through #[cached]: the caller gets the value, Redis gets nothing.
    huge();
    let loads = LOADS.get();
    let (value, took, peak) = measured(blob(&cache, 1)).await;
    assert_eq!(value.len(), HUGE);
    assert_eq!(LOADS.get(), loads + 1);
    println!(
        "{mode}: #[cached] 64 MB load took {took:?}; beyond the value's copies, {:.1} MiB held at the peak",
        peak as f64 / MIB as f64
    );
    // An encoding buffer of at most the bound (while it grows into its
    // last size, the one before is held too: 8 + 16 MiB), and a little for
    // the rest of the call.
    assert!(
        peak <= BOUND + BOUND / 2 + 2 * MIB,
        "{mode}: {} MiB held at the peak",
        peak / MIB
    );
    assert!(took < Duration::from_secs(10), "{mode}: {took:?}");
    assert_eq!(stored_key(&server, ns, "*blob*"), None, "{mode}: stored");
    let stats = cache.stats();
    assert_eq!(stats.oversized_entries, 1, "{mode}: {stats:?}");
    assert_eq!(stats.store_errors, 0, "{mode}: {stats:?}");
    assert_eq!(stats.decode_errors, 0, "{mode}: {stats:?}");
    drop(value);

    // Again: from memory in write-through (the memory tier keeps it), from
    // the function in storage-only (nothing was stored).
    let again = blob(&cache, 1).await;
    assert_eq!(again.len(), HUGE);
    drop(again);
    let expected_loads = if memory { loads + 1 } else { loads + 2 };
    assert_eq!(LOADS.get(), expected_loads, "{mode}");
    assert_eq!(
        cache.stats().oversized_entries,
        if memory { 1 } else { 2 },
        "{mode}"
    );

    // A manual set over a small value: the small one does not outlive it.
    cache.set("k", bytes(1000)).await.unwrap();
    assert!(stored_key(&server, ns, "k").is_some());
    let huge = huge().clone();
    let (set, took, peak) = measured(cache.set("k", huge.clone())).await;
    set.unwrap();
    println!(
        "{mode}: set of 64 MB took {took:?}; beyond the value's copies, {:.1} MiB held at the peak",
        peak as f64 / MIB as f64
    );
    assert!(
        peak <= BOUND + BOUND / 2 + 2 * MIB,
        "{mode}: {} MiB",
        peak / MIB
    );
    assert_eq!(
        stored_key(&server, ns, "k"),
        None,
        "{mode}: the old value stayed"
    );
    let read = cache.get::<Vec<u8>>("k").await.unwrap();
    if memory {
        assert_eq!(read.as_deref(), Some(&huge[..]), "{mode}: memory keeps it");
    } else {
        assert_eq!(read, None, "{mode}: never the older value");
    }
    assert_eq!(cache.stats().store_errors, 0, "{mode}");
}

// Multi-threaded: the cache's background confirmation keeps its memory
// tier trusted while the huge load keeps one thread busy (for seconds in a
// debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_value_storage_only() {
    huge_value_is_returned_unstored_and_counted(false).await;
}

// Multi-threaded: the cache's background confirmation keeps its memory
// tier trusted while the huge load keeps one thread busy (for seconds in a
// debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_value_write_through() {
    huge_value_is_returned_unstored_and_counted(true).await;
}

#[tokio::test]
async fn values_within_the_bound_are_stored_as_before() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("within")
        .redis(server.url())
        .max_entry_bytes(2 * MIB)
        .build()
        .await
        .unwrap();
    let value = ByteBuf::from(bytes(MIB));
    cache.set("one", value.clone()).await.unwrap();
    let key = stored_key(&server, "within", "one").expect("stored");
    assert!(strlen(&server, &key) <= 2 * MIB);
    assert_eq!(cache.get::<ByteBuf>("one").await.unwrap(), Some(value));
    // The same bytes as integers are about 1.9 MiB: within 2 MiB too.
    cache.set("two", bytes(MIB)).await.unwrap();
    assert!(stored_key(&server, "within", "two").is_some());
    // Half again as many bytes as integers pass the bound: not stored.
    cache.set("three", bytes(MIB + MIB / 2)).await.unwrap();
    assert_eq!(stored_key(&server, "within", "three"), None);
    assert_eq!(cache.stats().oversized_entries, 1);
    // ... while as a byte string they fit.
    cache
        .set("four", ByteBuf::from(bytes(MIB + MIB / 2)))
        .await
        .unwrap();
    assert!(stored_key(&server, "within", "four").is_some());
    assert_eq!(cache.stats().oversized_entries, 1);
    // Batches too.
    let policy = Policy::ttl(Duration::from_secs(60));
    cache
        .set_many(
            [
                ("five", bytes(10)),
                ("six", bytes(3 * MIB)),
                ("seven", bytes(10)),
            ],
            &policy,
        )
        .await
        .unwrap();
    assert!(stored_key(&server, "within", "five").is_some());
    assert_eq!(stored_key(&server, "within", "six"), None);
    assert!(stored_key(&server, "within", "seven").is_some());
    assert_eq!(cache.stats().oversized_entries, 2);
    assert_eq!(cache.stats().store_errors, 0);
}

#[tokio::test]
async fn entries_longer_than_the_readers_bound_are_counted_misses() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let writer = Cache::builder()
        .namespace("shared")
        .redis(server.url())
        .max_entry_bytes(usize::MAX)
        .build()
        .await
        .unwrap();
    let reader = Cache::builder()
        .namespace("shared")
        .redis(server.url())
        .max_entry_bytes(MIB)
        .build()
        .await
        .unwrap();
    writer
        .set("big", ByteBuf::from(bytes(2 * MIB)))
        .await
        .unwrap();
    writer.set("small", ByteBuf::from(bytes(10))).await.unwrap();
    assert_eq!(writer.stats().oversized_entries, 0);
    assert_eq!(
        writer.get::<ByteBuf>("big").await.unwrap().map(|b| b.len()),
        Some(2 * MIB)
    );
    // The reader never decodes it: a miss, counted as oversized.
    assert_eq!(reader.get::<ByteBuf>("big").await.unwrap(), None);
    assert!(reader.get::<ByteBuf>("small").await.unwrap().is_some());
    let loaded = reader
        .get_or_load("big", &Policy::new(), [""; 0], || async {
            Ok::<_, ()>(ByteBuf::from(vec![1]))
        })
        .await
        .unwrap();
    assert_eq!(loaded.as_ref(), [1]);
    let stats = reader.stats();
    // The get, and the read before the load (and maybe its re-read under
    // the lock): every read of the long entry.
    assert!(stats.oversized_entries >= 2, "{stats:?}");
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.store_errors, 0, "{stats:?}");
}

/// A value with a byte buffer stored as a byte string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Thumbnail {
    id: u64,
    #[serde(with = "serde_bytes")]
    png: Vec<u8>,
}

/// The same without `serde_bytes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PlainThumbnail {
    id: u64,
    png: Vec<u8>,
}

#[tokio::test]
async fn byte_strings_take_half_the_room_in_redis() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let cache = cache(&server, "bytes", false).await;
    let data = bytes(1_000_000);

    cache.set("vec", data.clone()).await.unwrap();
    cache.set("buf", ByteBuf::from(data.clone())).await.unwrap();
    let thumb = Thumbnail {
        id: 7,
        png: data.clone(),
    };
    cache.set("field", thumb.clone()).await.unwrap();
    let plain = PlainThumbnail {
        id: 7,
        png: data.clone(),
    };
    cache.set("plain", plain.clone()).await.unwrap();

    let size = |suffix: &str| strlen(&server, &stored_key(&server, "bytes", suffix).unwrap());
    let (vec, buf, field, plain_len) = (size("vec"), size("buf"), size("field"), size("plain"));
    println!(
        "1 MB in Redis: Vec<u8> {vec} bytes, ByteBuf {buf}, #[serde(with = \"serde_bytes\")] field {field}, plain field {plain_len}"
    );
    // A byte string: the bytes, the header and a few more.
    assert!(buf < 1_000_100, "{buf}");
    assert!(field < 1_000_100, "{field}");
    // An array of integers: two bytes for each of the 227 values of 24 and up.
    assert!(vec > 1_800_000, "{vec}");
    assert!(plain_len > 1_800_000, "{plain_len}");

    assert_eq!(
        cache.get::<Vec<u8>>("vec").await.unwrap(),
        Some(data.clone())
    );
    assert_eq!(
        cache.get::<ByteBuf>("buf").await.unwrap(),
        Some(ByteBuf::from(data.clone()))
    );
    assert_eq!(cache.get::<Thumbnail>("field").await.unwrap(), Some(thumb));
    assert_eq!(
        cache.get::<PlainThumbnail>("plain").await.unwrap(),
        Some(plain)
    );
    // Switching a field to serde_bytes changes the type's shape (a byte
    // string where a sequence of integers was): entries written before are
    // clean misses after the change (entry format v3's schema fingerprint),
    // then overwritten by their load; never a decode error. (Before the
    // fingerprint they read, as serde_bytes accepts an array of integers.)
    assert_eq!(cache.get::<Thumbnail>("plain").await.unwrap(), None);
    assert_eq!(cache.get::<PlainThumbnail>("field").await.unwrap(), None);
    assert_eq!(cache.stats().schema_mismatches, 2);
    assert_eq!(cache.stats().decode_errors, 0);
}

#[tokio::test]
async fn a_zero_bound_is_a_configuration_error() {
    let err = Cache::builder()
        .memory(10)
        .max_entry_bytes(0)
        .build()
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("max_entry_bytes(0)"), "{err}");
    let err = Cache::builder()
        .memory(10)
        .env_from([("CACHE_MAX_ENTRY_BYTES", "0")])
        .expect_err("refused");
    assert!(err.to_string().contains("CACHE_MAX_ENTRY_BYTES"), "{err}");
}

/// Tells which store faults it was told of.
#[derive(Clone, Default)]
struct Faults(std::sync::Arc<std::sync::Mutex<Vec<FaultKind>>>);

impl Listener for Faults {
    fn on_store_fault(&self, fault: &StoreFault<'_>) {
        self.0.lock().unwrap().push(fault.kind);
    }
}

#[tokio::test]
async fn oversized_entries_are_events_and_a_metric() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The only recorder of this test binary.
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("a recorder");
    let server = RedisServer::start();
    let faults = Faults::default();
    let cache = Cache::builder()
        .namespace("metric")
        .redis(server.url())
        .max_entry_bytes(MIB)
        .listener(faults.clone())
        .build()
        .await
        .unwrap();
    cache
        .set("big", ByteBuf::from(bytes(2 * MIB)))
        .await
        .unwrap();
    assert_eq!(cache.stats().oversized_entries, 1);
    let line = "cache_oversized_entries_total{cache=\"metric\"} 1";
    let scrape = prometheus.render();
    assert!(scrape.lines().any(|l| l == line), "{scrape}");
    assert!(
        !scrape.contains("cache_remote_errors_total{cache=\"metric\""),
        "{scrape}"
    );
    // User listeners are told through a queue: wait for it to drain.
    let told = integration_tests::within!(
        Duration::from_secs(5),
        faults.0.lock().unwrap().contains(&FaultKind::Oversized)
    );
    assert!(told.is_some(), "{:?}", faults.0.lock().unwrap());
    assert_eq!(FaultKind::Oversized.as_str(), "oversized");
}
