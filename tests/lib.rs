//! Shared helpers for the integration tests.

pub mod chaos_plan;
pub mod cluster_scenario;
pub mod fault_proxy;
pub mod pg_harness;
pub mod proxy_process;
pub mod redis_harness;
pub mod service_process;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Polls `$done` (an expression that may `.await`) every 5 ms for up to
/// `$limit`, inside an async test; how long it took to hold, if it did.
#[macro_export]
macro_rules! within {
    ($limit:expr, $done:expr) => {{
        let start = ::std::time::Instant::now();
        let mut took = None;
        while start.elapsed() < $limit {
            if $done {
                took = Some(start.elapsed());
                break;
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(5)).await;
        }
        took
    }};
}

/// Counts how many times a function body ran.
#[derive(Default)]
pub struct Calls(AtomicUsize);

impl Calls {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// Records one call; returns the number of calls before it.
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// The number of calls so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Asserts at compile time that a future is `Send`, and returns it.
pub fn assert_send<F: std::future::Future + Send>(f: F) -> F {
    f
}

/// The calls of `cmd` counted in `INFO commandstats` output (0 if absent).
pub fn command_calls(stats: &str, cmd: &str) -> u64 {
    stats
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A storage-only cache (Redis alone) on a harness server.
pub async fn storage_only(
    server: &redis_harness::RedisServer,
    namespace: &str,
) -> cache_runtime::Cache {
    cache_runtime::Cache::builder()
        .namespace(namespace)
        .redis(server.url())
        .build()
        .await
        .expect("connect to the test server")
}

/// A write-through cache (memory and Redis) on a harness server.
pub async fn write_through(
    server: &redis_harness::RedisServer,
    namespace: &str,
) -> cache_runtime::Cache {
    cache_runtime::Cache::builder()
        .namespace(namespace)
        .memory(1000)
        .redis(server.url())
        .build()
        .await
        .expect("connect to the test server")
}

/// Why a cache that `build()` could not connect is not connected, from its
/// health report (it starts all the same: the contract's "Availability").
pub async fn not_connected_because(cache: &cache_runtime::Cache) -> String {
    let report = cache.health_report().await;
    assert!(report.remote.is_some_and(|r| !r.connected), "{report:?}");
    report
        .reasons
        .iter()
        .find(|r| r.contains("has not connected since start-up"))
        .unwrap_or_else(|| panic!("no reason given: {:?}", report.reasons))
        .clone()
}
