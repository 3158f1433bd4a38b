//! The public single flight: [`Cache::coalesce`] and [`Cache::try_coalesce`]
//! run one load per key at a time among concurrent callers. Built on the
//! cache's flights (`flight.rs`), in a key space of their own (`#coalesce:`,
//! which no manual key or entry of the cache can spell), so they never join
//! the cache's own loads.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use crate::flight::{Join, LeadGuard};
use crate::key::{reserved, KeyText, Repr};
use crate::tags::TagSnapshot;
use crate::Cache;

/// How many runs a caller waits for (each ended without a value) before it
/// runs its own load outside the flight: a load that keeps failing is not
/// retried by its waiters one after another, without end.
const TRIES: usize = 3;

impl Cache {
    /// Runs `load` once for all the concurrent callers of one `key`: the
    /// first caller (the leader) runs its `load`; those that come while it
    /// runs wait, and each gets a clone of its value. Nothing is stored in the
    /// cache: this is the cache's single flight, for work of your own (the
    /// HTTP layer sends one request per URI to the origin through it).
    ///
    /// - A leader's `Err` is its own: it is not shared. Its waiters are
    ///   released to retry: one of them runs its own `load` as the next
    ///   leader, the others wait for that run.
    /// - A caller whose wait ended without a value three times, or that is
    ///   handed a value of another type than `T` (another caller of the same
    ///   key with another type), runs its own `load` alone, outside the flight.
    /// - Keys are a space of their own: `coalesce("k", ..)` never waits for the
    ///   cache's own load of the entry `k` (`get_or_load`, `#[cached]`).
    ///
    /// `load` is called at most once, and only by a caller that runs it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let cache = cache_runtime::Cache::memory(100);
    /// let runs = AtomicUsize::new(0);
    /// let call = || {
    ///     cache.coalesce("report:7", || async {
    ///         runs.fetch_add(1, Ordering::SeqCst);
    ///         // Let the other caller reach the flight while this one runs.
    ///         tokio::task::yield_now().await;
    ///         Ok::<_, std::io::Error>("report 7".to_string())
    ///     })
    /// };
    /// let (a, b) = tokio::join!(call(), call());
    /// assert_eq!(a.unwrap(), "report 7");
    /// assert_eq!(b.unwrap(), "report 7");
    /// assert_eq!(runs.load(Ordering::SeqCst), 1);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping a waiter's future affects no one else. Dropping the leader's
    /// future drops its `load` unfinished and releases the waiters, which
    /// retry as after an `Err`: nobody waits for a run that no longer exists.
    ///
    /// # Panics
    ///
    /// Never by itself. A panic of the leader's `load` unwinds through this
    /// call (in the leader only) and releases the waiters to retry, as a
    /// cancellation does.
    pub async fn coalesce<T, E, F, Fut>(&self, key: &str, load: F) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = flight_key(key);
        let flights = &self.inner.flights;
        for _ in 0..TRIES {
            match flights.join(&key, TagSnapshot::default()) {
                Join::Lead(guard) => return lead(guard, load()).await,
                // (Untagged flights are never overtaken; kept for the match.)
                Join::Alone => break,
                Join::Wait(flight) => {
                    let Some(value) = flight.wait().await else {
                        continue; // The leader failed: retry.
                    };
                    match value.downcast_ref::<T>() {
                        Some(value) => return Ok(value.clone()),
                        None => break,
                    }
                }
            }
        }
        load().await
    }

    /// Leads a run of `load` for `key` unless one is in progress (then `None`,
    /// and `load` is dropped unpolled): the non-waiting form of
    /// [`coalesce`](Cache::coalesce), for work that only one caller need
    /// start, such as a refresh in the background.
    ///
    /// The lead is taken by this call, before the returned future is first
    /// polled: callers of `coalesce` with the same key wait for this run from
    /// now on. The future, run (or spawned), ends the run with `load`'s
    /// result: a value for the waiters, or an `Err` that releases them to
    /// retry.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_runtime::Cache::memory(100);
    /// let run = cache
    ///     .try_coalesce("refresh:7", async { Ok::<_, std::io::Error>(7) })
    ///     .expect("no run of this key is in progress");
    /// // Taken already: a second try finds the run, and a waiter joins it.
    /// assert!(cache
    ///     .try_coalesce("refresh:7", async { Ok::<_, std::io::Error>(8) })
    ///     .is_none());
    /// let waiter = cache.coalesce("refresh:7", || async { Ok::<_, std::io::Error>(9) });
    /// let (led, waited) = tokio::join!(tokio::spawn(run), waiter);
    /// assert_eq!(led.unwrap().unwrap(), 7);
    /// assert_eq!(waited.unwrap(), 7);
    /// # }
    /// ```
    ///
    /// `load` is a future rather than a function: the returned future holds
    /// it and not `self`, so it can be spawned whenever `load` can.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future, polled or not, ends the run without a
    /// value: its waiters retry, as after an `Err`.
    ///
    /// # Panics
    ///
    /// Never by itself. A panic of `load` unwinds to the returned future's
    /// poller and releases the waiters to retry.
    pub fn try_coalesce<T, E, Fut>(
        &self,
        key: &str,
        load: Fut,
    ) -> Option<impl Future<Output = Result<T, E>>>
    where
        T: Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        let guard = self
            .inner
            .flights
            .try_lead(&flight_key(key), TagSnapshot::default())?;
        Some(lead(guard, load))
    }
}

/// Runs the leader's `load`, and hands its value to the waiters (an `Err`
/// drops the guard instead, which releases them to retry).
async fn lead<T, E>(guard: LeadGuard, load: impl Future<Output = Result<T, E>>) -> Result<T, E>
where
    T: Clone + Send + Sync + 'static,
{
    let value = load.await?;
    guard.complete(Some(Arc::new(value.clone()) as Arc<dyn Any + Send + Sync>));
    Ok(value)
}

/// `key` in the flights' own space: `#` is reserved, and escaped in every key
/// a caller gives (so `key` cannot end this prefix early either).
fn flight_key(key: &str) -> Repr {
    Repr::Text(KeyText::from_string(format!(
        "#coalesce:{}",
        reserved::escaped(key)
    )))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::panic::AssertUnwindSafe;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::join_all;
    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    /// A load that counts its runs and answers `value` once `gate` opens.
    async fn gated(
        runs: &AtomicUsize,
        gate: oneshot::Receiver<()>,
        value: u32,
    ) -> Result<u32, Infallible> {
        runs.fetch_add(1, Ordering::SeqCst);
        let _ = gate.await;
        Ok(value)
    }

    async fn counted(runs: &AtomicUsize, value: u32) -> Result<u32, Infallible> {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok(value)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let cache = Cache::memory(10);
        let runs = AtomicUsize::new(0);
        let (open, gate) = oneshot::channel();
        let mut gate = Some(gate);
        // Each call's load is made when it runs; only the first can take the gate.
        let calls = (0..16u32).map(|i| {
            let gate = gate.take();
            let runs = &runs;
            cache.coalesce("k", move || async move {
                match gate {
                    Some(gate) => gated(runs, gate, 7).await,
                    None => counted(runs, 100 + i).await,
                }
            })
        });
        // `join_all` polls every call once (the first leads and waits at its
        // gate, the others join), then the gate opens.
        let (got, _) = tokio::join!(join_all(calls), async { open.send(()) });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|r| *r == Ok(7)), "{got:?}");
        assert_eq!(cache.inner.flights.in_progress(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_leader_releases_its_waiters() {
        let cache = Cache::memory(10);
        let runs = AtomicUsize::new(0);
        let mut leader = Box::pin(cache.coalesce("k", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<u32, Infallible>>().await
        }));
        assert!(leader.as_mut().now_or_never().is_none());
        let mut waiter = Box::pin(cache.coalesce("k", || counted(&runs, 2)));
        assert!(
            waiter.as_mut().now_or_never().is_none(),
            "waits for the leader"
        );
        drop(leader);
        // The waiter retries: it leads, with its own load.
        assert_eq!(waiter.await, Ok(2));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(cache.inner.flights.in_progress(), 0);
    }

    #[tokio::test]
    async fn a_panicking_leader_releases_its_waiters() {
        let cache = Cache::memory(10);
        let (open, gate) = oneshot::channel::<()>();
        let mut leader = Box::pin(cache.coalesce("k", || async {
            let _ = gate.await;
            if true {
                panic!("the load fails");
            }
            Ok::<u32, Infallible>(1)
        }));
        assert!(leader.as_mut().now_or_never().is_none());
        let runs = AtomicUsize::new(0);
        let mut waiter = Box::pin(cache.coalesce("k", || counted(&runs, 2)));
        assert!(
            waiter.as_mut().now_or_never().is_none(),
            "waits for the leader"
        );
        let _ = open.send(());
        let unwound = AssertUnwindSafe(leader).catch_unwind().await;
        assert!(unwound.is_err(), "the panic reaches the leader's caller");
        assert_eq!(waiter.await, Ok(2));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.inner.flights.in_progress(), 0);
    }

    #[tokio::test]
    async fn an_error_is_the_leaders_own_and_its_waiters_retry() {
        let cache = Cache::memory(10);
        let (open, gate) = oneshot::channel::<()>();
        let mut leader = Box::pin(cache.coalesce("k", || async {
            let _ = gate.await;
            Err::<u32, &str>("origin down")
        }));
        assert!(leader.as_mut().now_or_never().is_none());
        let mut waiter = Box::pin(cache.coalesce("k", || async { Ok::<u32, &str>(2) }));
        assert!(waiter.as_mut().now_or_never().is_none());
        let _ = open.send(());
        assert_eq!(leader.await, Err("origin down"));
        assert_eq!(waiter.await, Ok(2));
    }

    #[tokio::test]
    async fn distinct_keys_run_independently() {
        let cache = Cache::memory(10);
        let runs = AtomicUsize::new(0);
        let (open, gate) = oneshot::channel();
        let mut a = Box::pin(cache.coalesce("a", || gated(&runs, gate, 1)));
        assert!(a.as_mut().now_or_never().is_none());
        // `b` neither waits for `a` nor is handed its value.
        let b = cache.coalesce("b", || counted(&runs, 2)).now_or_never();
        assert_eq!(b, Some(Ok(2)));
        let _ = open.send(());
        assert_eq!(a.await, Ok(1));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_value_of_another_type_is_not_handed_over() {
        let cache = Cache::memory(10);
        let (open, gate) = oneshot::channel();
        let runs = AtomicUsize::new(0);
        let mut leader = Box::pin(cache.coalesce("k", || gated(&runs, gate, 1)));
        assert!(leader.as_mut().now_or_never().is_none());
        let mut other =
            Box::pin(cache.coalesce("k", || async { Ok::<String, Infallible>("own".into()) }));
        assert!(other.as_mut().now_or_never().is_none());
        let _ = open.send(());
        assert_eq!(leader.await, Ok(1));
        assert_eq!(other.await.as_deref(), Ok("own"));
    }

    #[tokio::test]
    async fn waiters_give_up_after_three_failed_runs() {
        let cache = Cache::memory(10);
        let runs = AtomicUsize::new(0);
        let mut waiter = Box::pin(cache.coalesce("k", || counted(&runs, 9)));
        for _ in 0..TRIES {
            // A leader that takes the flight first, then is cancelled.
            let guard = cache
                .inner
                .flights
                .try_lead(&flight_key("k"), TagSnapshot::default());
            assert!(guard.is_some());
            assert!(waiter.as_mut().now_or_never().is_none());
            drop(guard);
        }
        // A new leader holds the flight, yet the waiter runs its load alone.
        let _held = cache
            .inner
            .flights
            .try_lead(&flight_key("k"), TagSnapshot::default());
        assert_eq!(waiter.now_or_never(), Some(Ok(9)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn try_coalesce_takes_the_lead_when_called() {
        let cache = Cache::memory(10);
        let run = cache.try_coalesce("k", async { Ok::<u32, Infallible>(1) });
        let run = run.expect("no run in progress");
        assert!(cache
            .try_coalesce("k", async { Ok::<u32, Infallible>(2) })
            .is_none());
        // The run is taken though its future was never polled: a caller waits.
        let mut waiter = Box::pin(cache.coalesce("k", || async { Ok::<u32, Infallible>(3) }));
        assert!(waiter.as_mut().now_or_never().is_none());
        assert_eq!(run.await, Ok(1));
        assert_eq!(waiter.await, Ok(1));
        // Dropped unpolled, a run releases its waiters (who then lead).
        let run = cache.try_coalesce("k", async { Ok::<u32, Infallible>(4) });
        let mut waiter = Box::pin(cache.coalesce("k", || async { Ok::<u32, Infallible>(5) }));
        assert!(waiter.as_mut().now_or_never().is_none());
        drop(run);
        assert_eq!(waiter.await, Ok(5));
    }

    #[tokio::test]
    async fn keys_are_apart_from_the_caches_own_loads() {
        let cache = Cache::memory(10);
        let _entry_load = cache
            .inner
            .flights
            .try_lead(&crate::key::Key::manual("k").repr, TagSnapshot::default());
        let got = cache.coalesce("k", || async { Ok::<u32, Infallible>(1) });
        assert_eq!(got.now_or_never(), Some(Ok(1)));
    }
}
