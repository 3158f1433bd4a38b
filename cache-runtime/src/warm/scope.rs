//! What the cache saw inside one warmed input's call.
//!
//! [`Cache::warm`](crate::Cache::warm) runs each input's future inside a
//! task-local [`Scope`]. The read path asks [`Warming::counts`] before it counts a
//! hit, stale hit or miss, and the load path tells [`Warming::record`] how a load
//! ended; both look at the task-local only while a warm run of *this* cache
//! is in progress (one relaxed load of [`Warming::runs`] otherwise), so user
//! calls pay one predictable branch and nothing else.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

tokio::task_local! {
    static SCOPE: Scope;
}

/// The per-cache state of warming: how many [`Cache::warm`](crate::Cache::warm)
/// runs are in progress.
#[derive(Default)]
pub(crate) struct Warming {
    runs: AtomicUsize,
}

/// One warm run in progress; dropping it (the run ended or was cancelled)
/// lets user calls skip the task-local again once no other run is left.
pub(super) struct Run<'a>(&'a Warming);

impl Warming {
    pub(super) fn enter(&self) -> Run<'_> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        Run(self)
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.0.runs.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the loads inside one input's call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No load ran: the value was fresh (in memory, in the remote tier, or
    /// brought by another caller's load).
    NoLoad,
    /// A load ran and its value was stored.
    Loaded,
    /// A load returned an error or panicked, or the call ran uncached.
    Failed,
}

/// The task-local state of one warmed input.
pub(super) struct Scope {
    cache: u64,
    outcome: Cell<Outcome>,
}

impl Scope {
    /// Runs `future` as one warmed input of the cache `cache` (its id); its
    /// output and the outcome the cache saw.
    pub(super) async fn run<F: std::future::Future>(cache: u64, future: F) -> (F::Output, Outcome) {
        let scope = Scope {
            cache,
            outcome: Cell::new(Outcome::NoLoad),
        };
        SCOPE
            .scope(scope, async move {
                let output = future.await;
                // Inside the scope: `with` cannot miss it.
                let outcome = SCOPE
                    .try_with(|s| s.outcome.get())
                    .unwrap_or(Outcome::NoLoad);
                (output, outcome)
            })
            .await
    }
}

impl Warming {
    /// Whether a hit, stale hit or miss of the cache numbered `cache` is
    /// counted in its stats: not when the call runs inside one of its warm runs.
    #[inline(always)]
    pub(crate) fn counts(&self, cache: u64) -> bool {
        self.runs.load(Ordering::Relaxed) == 0 || !in_scope(cache)
    }

    /// Records how a load of the cache numbered `cache` ended, when it ran
    /// inside one of its warm runs. The last load to end wins: a load nested
    /// in another (a cached function calling another) ends first, so the
    /// outermost one decides.
    #[inline]
    pub(crate) fn record(&self, cache: u64, outcome: Outcome) {
        if self.runs.load(Ordering::Relaxed) != 0 {
            record_cold(cache, outcome);
        }
    }
}

#[cold]
#[inline(never)]
fn in_scope(cache: u64) -> bool {
    SCOPE.try_with(|s| s.cache == cache).unwrap_or(false)
}

#[cold]
#[inline(never)]
fn record_cold(cache: u64, outcome: Outcome) {
    let _ = SCOPE.try_with(|s| {
        if s.cache == cache {
            s.outcome.set(outcome);
        }
    });
}
