//! A listener that panics or blocks costs the cache one panic, and never
//! stalls a call or the runtime's workers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::events::{Get, Invalidate, Listener, Load, RemoteOp};
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

    fn on_load(&self, _: &Load<'_>) {
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

/// Opens `gate` after `after`, should the test not (before the fix, a
/// blocked listener held the test's only thread: this lets it end, late).
fn backstop(gate: &Arc<Gate>, after: Duration) {
    let gate = gate.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        gate.open();
    });
}

/// Until `done`, or a deadline.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A listener blocked at a gate (on every event, remote operations of the
/// build and of the background included) delays neither `build()`, nor the
/// calls, nor a timer on the runtime's only thread.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_listener_delays_no_call_and_no_timer() {
    let server = RedisServer::start();
    let gate = Arc::new(Gate::default());
    backstop(&gate, Duration::from_secs(3));
    let seen = Arc::new(Seen::default());
    let timer = tokio::spawn(async {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(10)).await;
        started.elapsed()
    });
    let started = Instant::now();
    let cache = Cache::builder()
        .namespace("li_blocked")
        .memory(1_000)
        .redis(server.url())
        .listener(Counting {
            seen: seen.clone(),
            panics: false,
            gate: Some(gate.clone()),
        })
        .build()
        .await
        .unwrap();
    let built = started.elapsed();
    for n in 0..50 {
        assert_eq!(double(&cache, n).await, n * 2);
        assert_eq!(double(&cache, n).await, n * 2);
    }
    let called = started.elapsed();
    let fired = timer.await.unwrap();
    gate.open();
    assert!(
        fired < Duration::from_millis(300),
        "a 10 ms timer fired after {fired:?} (build {built:?}, calls {called:?})"
    );
    assert!(built < Duration::from_secs(2), "build took {built:?}");
    // Once the listener goes on, it is told of everything, in order.
    cache.invalidate_tags([MARKER]).await.unwrap();
    seen.wait_marked().await;
    assert_eq!(seen.gets.load(Ordering::SeqCst), 100);
    assert!(seen.remote_ops.load(Ordering::SeqCst) > 0);
    assert_eq!(cache.stats().events_dropped, 0);
}

/// With the listener blocked, the queue fills: further events are dropped
/// and counted, the calls go on, and what was queued is delivered.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts_events() {
    const CALLS: u64 = 12_000;
    let gate = Arc::new(Gate::default());
    backstop(&gate, Duration::from_secs(3));
    let seen = Arc::new(Seen::default());
    let cache = Cache::builder()
        .namespace("li_full")
        .memory(100_000)
        .listener(Counting {
            seen: seen.clone(),
            panics: false,
            gate: Some(gate.clone()),
        })
        .build()
        .await
        .unwrap();
    for n in 0..CALLS {
        assert_eq!(double(&cache, n).await, n * 2);
    }
    let dropped = cache.stats().events_dropped;
    gate.open();
    // A miss and a load per call.
    let events = 2 * CALLS;
    assert!(
        dropped > 0,
        "nothing dropped: the calls waited for the listener"
    );
    until("every queued event delivered", || {
        seen.events.load(Ordering::SeqCst) + dropped == events
    })
    .await;
    assert_eq!(cache.stats().events_dropped, dropped);
}
