//! The global cache: a memory fallback until `install`, the installed cache
//! after it, for `#[cached]` functions without `cache = ..`. In a binary of its
//! own, since `install` holds for the whole process.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};

static LOADS: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = "1h")]
async fn answer(id: u64) -> u64 {
    LOADS.fetch_add(1, Ordering::SeqCst);
    id * 2
}

static SLOW_LOADS: AtomicU32 = AtomicU32::new(0);
static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
static SLOW_RELEASED: AtomicBool = AtomicBool::new(false);

/// Runs until `SLOW_RELEASED`: a call in flight across `install`.
#[cached(ttl = "1h")]
async fn slow(id: u64) -> u64 {
    SLOW_LOADS.fetch_add(1, Ordering::SeqCst);
    SLOW_STARTED.store(true, Ordering::SeqCst);
    while !SLOW_RELEASED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    id + 100
}

/// The messages of the `warn` events logged in this process.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A tracing subscriber that keeps warnings' messages, nothing else.
struct Warnings;

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        WARNINGS.lock().unwrap().push(message);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn install_warnings() -> usize {
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains("install") && m.contains("fallback"))
        .count()
}

#[tokio::test]
async fn functions_move_from_the_fallback_to_the_installed_cache() {
    tracing::subscriber::set_global_default(Warnings).unwrap();

    assert_eq!(answer(21).await, 42);
    assert_eq!(answer(21).await, 42);
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        1,
        "the fallback cache served the second call"
    );
    let fallback: &'static Cache = cache_runtime::global();
    assert_eq!(fallback.stats().hits, 1);

    // A call that started on the fallback is still running when `install` comes.
    let in_flight = tokio::spawn(slow(1));
    let started = Instant::now();
    while !SLOW_STARTED.load(Ordering::SeqCst) {
        assert!(started.elapsed() < Duration::from_secs(5), "slow never ran");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let installed = Cache::builder()
        .namespace("installed")
        .memory(100)
        .build()
        .await
        .unwrap();
    assert_eq!(install_warnings(), 0);
    cache_runtime::install(installed.clone()).unwrap();
    assert_eq!(cache_runtime::global().namespace(), "installed");
    assert_eq!(
        install_warnings(),
        1,
        "install after the fallback was used warns"
    );

    // The call in flight finishes normally, on the fallback it started with.
    SLOW_RELEASED.store(true, Ordering::SeqCst);
    assert_eq!(in_flight.await.unwrap(), 101);
    assert_eq!(
        fallback.stats().loads,
        2,
        "answer(21) and slow(1) loaded there"
    );
    assert_eq!(fallback.memory_len(), 2, "slow(1)'s value was stored there");
    assert_eq!(installed.stats().loads, 0);
    assert_eq!(installed.memory_len(), 0, "nothing carried over");

    // Later calls use the installed cache, which is empty: the functions run
    // again, then hit there; the fallback's entries are not served.
    assert_eq!(slow(1).await, 101);
    assert_eq!(SLOW_LOADS.load(Ordering::SeqCst), 2);
    assert_eq!(answer(21).await, 42);
    assert_eq!(answer(21).await, 42);
    assert_eq!(LOADS.load(Ordering::SeqCst), 2);
    assert_eq!(installed.stats().hits, 1);
    assert_eq!(installed.memory_len(), 2);
    assert_eq!(fallback.stats().hits, 1, "the fallback is no longer read");

    assert!(cache_runtime::install(installed).is_err());
    assert_eq!(install_warnings(), 1);
}
