//! A listener that panics or blocks costs the cache one panic, and never
//! stalls a call or the runtime's workers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::events::{Get, Invalidate, Listener, RemoteOp};
use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::RedisServer;

/// The tag whose invalidation marks the end of a test's calls: events are
/// delivered in order, so a listener that has it has every event before it.
const MARKER: &str = "listener-isolation-marker";

/// What a listener was told.
#[derive(Default)]
struct Seen {
    events: AtomicU64,
    gets: AtomicU64,
    remote_ops: AtomicU64,
    marked: AtomicBool,
}

impl Seen {
    async fn wait_marked(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.marked.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the marker event never came");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Counts the events; with `panics`, panics on every one.
struct Counting {
    seen: Arc<Seen>,
    panics: bool,
    gate: Option<Arc<Gate>>,
}

impl Counting {
    fn told(&self) {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        self.seen.events.fetch_add(1, Ordering::SeqCst);
        if self.panics {
            panic!("a listener that panics on every event");
        }
    }
}

impl Listener for Counting {
    fn on_get(&self, _: &Get<'_>) {
        self.seen.gets.fetch_add(1, Ordering::SeqCst);
        self.told();
    }

    fn on_invalidate(&self, event: &Invalidate<'_>) {
        self.told();
        if event.tags.iter().any(|t| t == MARKER) {
            self.seen.marked.store(true, Ordering::SeqCst);
        }
    }

    fn on_remote_op(&self, _: &RemoteOp<'_>) {
        self.seen.remote_ops.fetch_add(1, Ordering::SeqCst);
        self.told();
    }
}

/// A gate held closed by the test: a listener waits at it until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[cached(name = "listener_isolation::double", cache = cache)]
async fn double(cache: &Cache, n: u64) -> u64 {
    n * 2
}

#[tokio::test]
async fn a_panicking_listener_is_told_once_then_turned_off() {
    const CALLS: u64 = 2_000;
    let bad = Arc::new(Seen::default());
    let good = Arc::new(Seen::default());
    let cache = Cache::builder()
        .namespace("li_panics")
        .memory(10_000)
        .listener(Counting {
            seen: bad.clone(),
            panics: true,
            gate: None,
        })
        .listener(Counting {
            seen: good.clone(),
            panics: false,
            gate: None,
        })
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    for n in 0..CALLS {
        assert_eq!(double(&cache, n % 100).await, (n % 100) * 2);
    }
    let took = started.elapsed();
    cache.invalidate_tags([MARKER]).await.unwrap();
    good.wait_marked().await;
    let stats = cache.stats();
    assert_eq!(
        bad.events.load(Ordering::SeqCst),
        1,
        "the panicking listener is told of its first event only ({took:?} for {CALLS} calls)"
    );
    assert_eq!(stats.listener_panics, 1);
    assert_eq!(
        good.gets.load(Ordering::SeqCst) + stats.events_dropped,
        CALLS,
        "the other listener is told of every get"
    );
}
