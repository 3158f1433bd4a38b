//! Events: what a cache did, told to the [`Listener`]s registered with
//! [`CacheBuilder::listener`](crate::CacheBuilder::listener), as it happens.
//!
//! Listeners are told off the call and off the runtime: a call copies its
//! event into its cache's queue (bounded: 10,000 events), and one thread
//! per cache with a listener (`cache-events`) tells the listeners, in order,
//! shortly after. A slow or blocked listener delays no call, no `build()`
//! and no tokio worker; while it lags, events past the queue's bound are
//! dropped and counted in
//! [`Stats::events_dropped`](crate::Stats::events_dropped). An event may
//! reach a listener after its call returned: to see every event of the
//! calls up to a point, wait for an event made at that point (an
//! `invalidate_tags` of a marker tag, say). The thread ends with the cache.
//!
//! A listener that panics is caught, and turned off: it is told
//! of no more events (one error log, counted in
//! [`Stats::listener_panics`](crate::Stats::listener_panics)); the call goes
//! on, and the other listeners are still told.
//!
//! With no listener of gets registered, a hit pays nothing for events: the
//! one flag it already tests (its memoized plan's) says so. A listener that
//! does not need gets says so with [`Listener::wants_gets`], and keeps hits
//! on that fast path.
//!
//! ```
//! use std::time::Duration;
//! use cache_runtime::events::{Listener, Load};
//! use cache_runtime::{cached, Cache};
//!
//! /// Logs every load slower than 100 ms.
//! struct SlowLoads;
//!
//! impl Listener for SlowLoads {
//!     fn wants_gets(&self) -> bool {
//!         false // loads only: hits stay on the fast path
//!     }
//!
//!     fn on_load(&self, load: &Load<'_>) {
//!         if load.duration > Duration::from_millis(100) {
//!             eprintln!(
//!                 "slow load of {} in {}: {:?} ({:?})",
//!                 load.function.unwrap_or("a manual call"),
//!                 load.cache,
//!                 load.duration,
//!                 load.outcome,
//!             );
//!         }
//!     }
//! }
//!
//! #[cached(name = "slow_square", cache = cache)]
//! async fn slow_square(cache: &Cache, n: u64) -> u64 {
//!     tokio::time::sleep(Duration::from_millis(150)).await;
//!     n * n
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_runtime::Error> {
//! let cache = Cache::builder().memory(1_000).listener(SlowLoads).build().await?;
//! assert_eq!(slow_square(&cache, 3).await, 9); // logs the slow load
//! assert_eq!(slow_square(&cache, 3).await, 9); // a hit: no load
//! # Ok(())
//! # }
//! ```

mod dispatch;
mod kinds;
mod queue;

pub(crate) use dispatch::{Call, Events};
pub use kinds::{
    Coalesced, Evict, FailSafe, FaultKind, Get, GetResult, Invalidate, Load, LoadOutcome, Refresh,
    RemoteOp, StoreFault,
};

/// Receives a cache's events; every method does nothing unless overridden.
/// Register one with [`CacheBuilder::listener`](crate::CacheBuilder::listener)
/// (see the [module docs](self) for an example).
pub trait Listener: Send + Sync + 'static {
    /// Whether this listener is told of gets ([`on_get`](Self::on_get));
    /// default `true`. Asked once, when the cache is built. A cache with a
    /// listener of gets sends every hit through the general path (about
    /// twice a plain hit's time, plus the listener's): answer `false` when
    /// you only need the other events.
    fn wants_gets(&self) -> bool {
        true
    }
    /// A call looked for its value: one event per call, when its result is
    /// known (a remote hit is a `Hit`, not a miss).
    fn on_get(&self, _event: &Get<'_>) {}
    /// The function (or a loader) ran; a panic counts as an error.
    fn on_load(&self, _event: &Load<'_>) {}
    /// Tags were invalidated: one event per `invalidate_tags` call.
    fn on_invalidate(&self, _event: &Invalidate<'_>) {}
    /// The memory tier dropped entries to make room.
    fn on_evict(&self, _event: &Evict<'_>) {}
    /// The remote tier failed an operation, or its bytes did not decode.
    fn on_store_fault(&self, _event: &StoreFault<'_>) {}
    /// A background refresh started.
    fn on_refresh(&self, _event: &Refresh<'_>) {}
    /// A failed load was answered with an expired value (fail-safe).
    fn on_fail_safe(&self, _event: &FailSafe<'_>) {}
    /// A caller waits for another caller's load.
    fn on_coalesced(&self, _event: &Coalesced<'_>) {}
    /// An operation on the remote tier ended.
    fn on_remote_op(&self, _event: &RemoteOp<'_>) {}
}
