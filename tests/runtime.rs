//! The cache outside a tokio runtime: a memory cache works under any
//! executor; a remote tier needs tokio, and says so at `build()` instead of
//! panicking; background work that cannot start is a counted fault, never a
//! panic in the caller's thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache, Error};
use integration_tests::redis_harness::RedisServer;
use integration_tests::Calls;

/// Wakes the thread that runs [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor that is not tokio (as `futures::executor::block_on`
/// or `pollster` are): no tokio runtime is entered while it polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

static PLAIN: Calls = Calls::new();
#[cached(cache = cache, ttl = "1h")]
async fn plain(cache: &Cache, x: u64) -> u64 {
    PLAIN.hit();
    x + 1
}

#[test]
fn a_memory_cache_builds_and_serves_under_another_executor() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let cache = block_on(Cache::builder().namespace("plain").memory(100).build())
        .expect("a memory cache needs no runtime");
    assert_eq!(block_on(plain(&cache, 1)), 2);
    assert_eq!(block_on(plain(&cache, 1)), 2);
    assert_eq!(PLAIN.get(), 1);
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn a_remote_tier_outside_tokio_is_a_build_error() {
    let server = RedisServer::start();
    for memory in [false, true] {
        let builder = Cache::builder().namespace("no-runtime").redis(server.url());
        let builder = if memory { builder.memory(100) } else { builder };
        match block_on(builder.build()) {
            Err(Error::Config(message)) => {
                assert!(message.contains("tokio runtime"), "{message}")
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
    let cluster = Cache::builder().redis_cluster([server.url()]);
    assert!(matches!(block_on(cluster.build()), Err(Error::Config(_))));
}

static REMOTE: Calls = Calls::new();
#[cached(cache = cache, ttl = "1h")]
async fn remote(cache: &Cache, x: u64) -> u64 {
    REMOTE.hit();
    x * 10
}

#[test]
fn a_remote_cache_called_outside_tokio_runs_the_function_and_counts_the_fault() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for memory in [false, true] {
        let builder = Cache::builder()
            .namespace(if memory {
                "wt-elsewhere"
            } else {
                "storage-elsewhere"
            })
            .redis(server.url());
        let builder = if memory { builder.memory(100) } else { builder };
        let cache = runtime.block_on(builder.build()).unwrap();
        let before = REMOTE.get();
        // Stored from inside the runtime...
        assert_eq!(runtime.block_on(remote(&cache, 3)), 30);
        let errors = cache.stats().store_errors;
        // ...then called from a thread with no runtime: no panic.
        let from_plain_thread = {
            let cache = cache.clone();
            std::thread::spawn(move || block_on(async { remote(&cache, 4).await }))
                .join()
                .expect("no panic in the caller's thread")
        };
        assert_eq!(from_plain_thread, 40);
        assert_eq!(REMOTE.get(), before + 2);
        assert!(
            cache.stats().store_errors > errors,
            "memory {memory}: counted"
        );
    }
}

static STALE: Calls = Calls::new();
#[cached(cache = cache, ttl = "50ms", stale = "1h")]
async fn stale(cache: &Cache, x: u64) -> usize {
    let _ = x;
    STALE.hit()
}

#[test]
fn a_stale_hit_outside_tokio_serves_the_stale_value_and_counts_the_refresh_fault() {
    let cache = block_on(
        Cache::builder()
            .namespace("stale-plain")
            .memory(100)
            .build(),
    )
    .unwrap();
    assert_eq!(block_on(stale(&cache, 1)), 0);
    let started = Instant::now();
    // Past the TTL the entry is stale: wait for the first stale hit.
    while cache.stats().stale_hits == 0 {
        assert_eq!(block_on(stale(&cache, 1)), 0, "the stored value is served");
        assert!(started.elapsed() < Duration::from_secs(5), "never stale");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = cache.stats();
    assert_eq!(stats.refreshes, 0, "no runtime: no refresh ran");
    assert!(
        stats.store_errors >= 1,
        "the refresh that could not start is counted"
    );
    // The key's flight was let go: later calls are served, not stuck.
    assert_eq!(block_on(stale(&cache, 1)), 0);
    assert_eq!(STALE.get(), 1, "the function ran once");
    assert_eq!(cache.stats().stale_hits, stats.stale_hits + 1);
}
