//! Method caching for async Rust.
//!
//! Put `#[cached]` on an `async fn` and its results are kept in a [`Cache`]:
//! fresh values are served from memory, stale ones while one background refresh
//! runs, expired ones when the function fails (fail-safe); concurrent misses run
//! the function once; tags invalidate groups of entries in O(1).
//!
//! ```
//! use cache_runtime::{cached, invalidate};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { id: u64, name: String }
//!
//! #[cached(ttl = "10m", stale = "1m", key = "user:{id}", tags = ["user:{id}", "users"])]
//! async fn get_user(id: u64) -> Result<User, String> {
//!     Ok(User { id, name: format!("user {id}") })
//! }
//!
//! #[invalidate(tags = ["user:{id}"])]
//! async fn rename_user(id: u64, name: String) -> Result<(), String> {
//!     let _ = name;
//!     Ok(())
//! }
//!
//! # #[tokio::main]
//! # async fn main() {
//! let user = get_user(7).await.unwrap();      // runs the function
//! let again = get_user(7).await.unwrap();     // served from the cache
//! assert_eq!(user.name, again.name);
//! rename_user(7, "x".into()).await.unwrap();  // the next get_user(7) runs again
//! # }
//! ```
//!
//! See the README for every argument of `#[cached]`, the key format and the
//! guarantees.
//!
//! # Testing with paused time
//!
//! Entries expire by the wall clock, which tokio's paused time does not move.
//! With the `test-util` feature (for dev-dependencies only; it implies
//! tokio's `test-util`) the cache's clock follows `tokio::time::Instant`, so
//! a test advances entries past their TTL, stale or fail-safe window with
//! `tokio::time::advance` instead of sleeping. Without the feature the clock
//! is the plain wall clock and costs nothing more.
//!
//! ```
//! # #[cfg(feature = "test-util")]
//! # mod with_feature {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use cache_runtime::{cached, Cache};
//!
//! static RUNS: AtomicU32 = AtomicU32::new(0);
//!
//! #[cached(cache = cache, ttl = "10s")]
//! async fn price(cache: &Cache, id: u32) -> u32 {
//!     RUNS.fetch_add(1, Ordering::SeqCst);
//!     id * 100
//! }
//!
//! // In your tests: #[tokio::test(start_paused = true)]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! pub async fn the_entry_expires_after_its_ttl() {
//!     let cache = Cache::memory(100);
//!     price(&cache, 7).await;
//!     tokio::time::advance(Duration::from_millis(9_999)).await;
//!     price(&cache, 7).await; // still fresh: served from memory
//!     assert_eq!(RUNS.load(Ordering::SeqCst), 1);
//!     tokio::time::advance(Duration::from_millis(1)).await;
//!     price(&cache, 7).await; // expired: the function runs again
//!     assert_eq!(RUNS.load(Ordering::SeqCst), 2);
//! }
//! # }
//! # fn main() {
//! #     #[cfg(feature = "test-util")]
//! #     with_feature::the_entry_expires_after_its_ttl();
//! # }
//! ```

#![warn(missing_docs)]
// `doc(cfg)` notes on docs.rs (built with `--cfg docsrs`): what needs a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod batch;
mod builder;
mod cache;
mod clock;
mod coalesce;
mod coherence;
mod duration;
mod error;
pub mod events;
mod flight;
mod flow;
mod global;
mod health;
#[cfg(feature = "http")]
pub mod http;
mod key;
mod keyspace;
mod manual;
mod memory;
#[cfg(feature = "metrics")]
mod metrics;
mod outcome;
mod owned;
mod policy;
mod remote;
mod stats;
pub mod store;
mod tags;
mod value;
mod warm;

#[doc(hidden)]
pub mod __private {
    //! Used by the code the macros generate; not public API.
    pub use crate::private::*;
}
mod private;

#[cfg(feature = "__fuzz")]
#[doc(hidden)]
#[path = "fuzz_api.rs"]
pub mod __fuzz;

pub use builder::CacheBuilder;
pub use cache::{Cache, Health};
pub use cache_macros::{cached, invalidate};
pub use error::{Error, Result};
pub use global::{global, install, DEFAULT_CAPACITY};
pub use health::{HealthReport, HealthStatus, HealthThresholds};
pub use memory::WeighFn;
pub use outcome::Storable;
pub use policy::Policy;
pub use remote::breaker::BreakerState;
pub use remote::lock::LockGuard;
pub use stats::Stats;
pub use store::StoreError;
pub use warm::WarmSummary;
