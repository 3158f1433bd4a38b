//! Warming: filling the cache ahead of traffic by calling cached functions
//! (or loaders) for a set of inputs, a few at a time.
//!
//! Each input's call runs inside a task-local scope (see `scope`), so the
//! read and load paths can tell the warm run what happened (no load, a load
//! that stored its value, a failed load) and leave the call out of the hit
//! ratio. Warming is counted in [`Stats::warmed`](crate::Stats::warmed)
//! instead.

mod progress;
pub(crate) mod scope;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};

use crate::cache::Inner;
use crate::Cache;
use progress::Progress;
pub(crate) use scope::Outcome;
use scope::Scope;

/// What a [`Cache::warm`] run did.
///
/// [`serde::Serialize`]: `elapsed` is written as `elapsed_ms`, a number of
/// milliseconds (fractional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WarmSummary {
    /// Inputs whose call ran a load that stored its value.
    pub loaded: u64,
    /// Inputs whose call ran no load: the value was already cached (in
    /// memory or the remote tier, fresh or stale) or another caller's load
    /// brought it.
    pub fresh: u64,
    /// Inputs whose load returned an error or panicked, whose call panicked,
    /// or whose call ran uncached (e.g. a key argument that failed to
    /// serialize).
    pub failed: u64,
    /// How long the run took.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
}

/// A duration as fractional milliseconds, for JSON.
fn millis<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64() * 1_000.0)
}

impl WarmSummary {
    /// Every input the run went through: `loaded + fresh + failed`.
    pub fn total(&self) -> u64 {
        self.loaded + self.fresh + self.failed
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::NoLoad => self.fresh += 1,
            Outcome::Loaded => self.loaded += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// Whether a hit, stale hit or miss of `inner` is counted in its stats: not
/// when the call runs inside one of its warm runs.
#[inline(always)]
pub(crate) fn counted(inner: &Inner) -> bool {
    inner.observe.warming.counts(inner.config.id)
}

/// Records how a load of `inner` ended, when it ran inside one of its warm
/// runs (see `Warming::record`).
#[inline]
pub(crate) fn record(inner: &Inner, outcome: Outcome) {
    inner.observe.warming.record(inner.config.id, outcome);
}

/// How long one input's call may run by default: far past any load a
/// service would wait for (remote round trips are bounded at 250 ms by
/// default), yet a hung input cannot hold a run (and the callers waiting
/// for its key) for ever.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A panic, caught.
type Panic = Box<dyn std::any::Any + Send + 'static>;

/// `f(input)`, with a panic caught: of its future, or of `f` itself before
/// it returns one (the input fails either way).
fn guarded<I, F, Fut>(f: &F, input: I) -> impl Future<Output = Result<Fut::Output, Panic>>
where
    F: Fn(I) -> Fut,
    Fut: Future,
{
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(input))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().left_future(),
        Err(panic) => futures_util::future::ready(Err(panic)).right_future(),
    }
}

/// `call`, dropped past `limit` (a failed input) when a tokio runtime's
/// timer is there to tell.
async fn limited<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, Panic>>,
) -> Result<T, ()> {
    if limit == Duration::MAX || tokio::runtime::Handle::try_current().is_err() {
        return call.await.map_err(drop);
    }
    match tokio::time::timeout(limit, call).await {
        Ok(output) => output.map_err(drop),
        Err(_) => {
            tracing::warn!(
                limit_ms = limit.as_millis() as u64,
                "a warm call ran past its time limit: dropped, its input failed"
            );
            Err(())
        }
    }
}

impl Cache {
    /// Calls `f` for every input, at most `concurrency` at a time (0 is
    /// taken as 1), so that the values it caches are there before traffic
    /// asks for them; returns what each call found.
    ///
    /// `f` is any call that goes through this cache: a `#[cached]` function
    /// that uses it, or [`get_or_load`](Cache::get_or_load). Each input is
    /// classified by what the cache saw inside its call: no load
    /// ([`fresh`](WarmSummary::fresh)), a load that stored its value
    /// ([`loaded`](WarmSummary::loaded)), or a load that failed or panicked
    /// ([`failed`](WarmSummary::failed); a panic is caught and counted, never
    /// passed on: one of the load, of `f`'s future, or of `f` itself before
    /// it returns its future). When a call runs several loads (a cached function calling
    /// another), the last to end, the outermost, decides. Whatever `f`'s
    /// future returns is dropped.
    ///
    /// Warming calls are not user traffic: they leave
    /// [`Stats::hits`](crate::Stats::hits), `misses` and `stale_hits` (and so
    /// the hit ratio the [health report](Cache::health_report) judges) as
    /// they were, and count in [`Stats::warmed`](crate::Stats::warmed). Their
    /// loads count in `loads` and `load_errors` as any load does.
    ///
    /// Each input's call may run for
    /// [`warm_timeout`](crate::CacheBuilder::warm_timeout) (30 s by
    /// default) inside a tokio runtime: past it, the call is dropped and
    /// the input fails.
    ///
    /// Progress is logged (`tracing::info!`, done/total, loaded, failed)
    /// every 5 s of a long run (on a timer inside a tokio runtime, so even
    /// while every call hangs; as calls complete elsewhere), and once at the
    /// end.
    ///
    /// ```
    /// use cache_runtime::{cached, Cache};
    /// use std::sync::LazyLock;
    ///
    /// static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1_000));
    ///
    /// #[cached(cache = &*CACHE, key = "user:{id}")]
    /// async fn get_user(id: u64) -> Result<String, String> {
    ///     if id == 13 { Err("no such user".into()) } else { Ok(format!("user {id}")) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// get_user(1).await.unwrap();
    /// let summary = CACHE.warm(1..=20, 4, |id| get_user(id)).await;
    /// assert_eq!((summary.loaded, summary.fresh, summary.failed), (18, 1, 1));
    /// assert_eq!(CACHE.stats().warmed, 20);
    /// assert_eq!(CACHE.stats().hits, 0, "warming is not a user hit");
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops the run: no new call starts, and the
    /// calls in flight are dropped, each as cancel safe as a cached call (no
    /// waiter hangs, no lock stays held); what was loaded stays stored.
    pub async fn warm<I, F, Fut>(
        &self,
        inputs: impl IntoIterator<Item = I>,
        concurrency: usize,
        f: F,
    ) -> WarmSummary
    where
        F: Fn(I) -> Fut,
        Fut: std::future::Future,
    {
        let inner = &self.inner;
        let started = Instant::now();
        let inputs = inputs.into_iter();
        let mut progress = Progress::new(&inner.config.namespace, inputs.size_hint(), started);
        // Before the first call, so that every call of the run is seen.
        let _run = inner.observe.warming.enter();
        let id = inner.config.id;
        let limit = inner.config.warm_timeout;
        let calls = inputs.map(|input| Scope::run(id, limited(limit, guarded(&f, input))));
        let mut calls = futures_util::stream::iter(calls).buffer_unordered(concurrency.max(1));
        let mut summary = WarmSummary::default();
        // In a tokio runtime, progress is logged on a timer, so that a run
        // whose calls all hang still says where it is; elsewhere, as calls
        // complete.
        let mut timer = progress::timer();
        loop {
            let next = match &mut timer {
                Some(timer) => tokio::select! {
                    next = calls.next() => next,
                    _ = timer.tick() => {
                        progress.log_now(&summary);
                        continue;
                    }
                },
                None => calls.next().await,
            };
            let Some((output, outcome)) = next else {
                break;
            };
            // A panic outside any load (in `f` itself) fails the input too.
            let outcome = if output.is_err() {
                Outcome::Failed
            } else {
                outcome
            };
            summary.add(outcome);
            inner.observe.counters.warmed.incr();
            if timer.is_none() {
                progress.tick(&summary);
            }
        }
        summary.elapsed = started.elapsed();
        progress.finish(&summary);
        summary
    }
}
