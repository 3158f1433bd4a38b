//! A load led by the caller: runs the function, stores its value, shares it with
//! the waiters, or answers a failure from fail-safe.

use std::any::Any;
use std::future::Future;
use std::panic::{resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
// tokio's: std's outside tests; on paused time a load's duration (XFetch's
// delta, the load event's) is the time the test let pass.
use tokio::time::Instant;

use futures_util::FutureExt;

use super::missed::Lead;
use super::plan::Plan;
use super::store::{store, Write};
use super::Kind;
use crate::events::{Call, LoadOutcome};
use crate::flight::LeadGuard;
use crate::key::Key;
use crate::outcome::ReturnKind;
use crate::remote::lock::{LockGuard, LOAD_LOCK_TTL};
use crate::Cache;

/// The caller's turn to run the function. Boxed: it exists only on a miss, and
/// a pointer keeps `Step` (moved on every hit) small.
pub struct Ticket<M, R> {
    state: Box<TicketState>,
    _kind: Kind<M, R>,
}

struct TicketState {
    cache: Cache,
    /// `None` when the call runs uncached (invalid key, unknown profile).
    key: Option<Key>,
    plan: Option<Plan>,
    tags: Vec<String>,
    guard: Option<LeadGuard>,
    fail_safe: Option<Arc<dyn Any + Send + Sync>>,
    remote_versions: Option<Vec<u64>>,
    lock: Option<LockGuard>,
}

impl<M: ReturnKind<R>, R> Ticket<M, R> {
    pub(crate) fn new(cache: &Cache, lead: Lead) -> Self {
        Self {
            state: Box::new(TicketState {
                cache: cache.clone(),
                key: Some(lead.key),
                plan: Some(lead.plan),
                tags: lead.tags,
                guard: lead.guard,
                fail_safe: lead.fail_safe,
                remote_versions: lead.remote_versions,
                lock: lead.lock,
            }),
            _kind: Default::default(),
        }
    }

    pub(crate) fn uncached(cache: &Cache) -> Self {
        Self {
            state: Box::new(TicketState {
                cache: cache.clone(),
                key: None,
                plan: None,
                tags: Vec::new(),
                guard: None,
                fail_safe: None,
                remote_versions: None,
                lock: None,
            }),
            _kind: Default::default(),
        }
    }

    /// Runs `load` (the function's body) and returns its result, caching it as
    /// the return kind allows, with the tags rendered when the call missed.
    ///
    /// The load (with the body's future) is boxed here, on the miss path, so
    /// that it does not enlarge the caller's future, which is moved on every hit.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops the function's
    /// body; the waiters are released (one of them loads next), a distributed
    /// lock is released in the background, and nothing is stored. Dropped while
    /// storing, the remote tier may or may not hold the value; memory does not.
    pub fn load<F: Future<Output = R>>(self, load: F) -> Pin<Box<impl Future<Output = R>>> {
        Box::pin(Self::run(*self.state, load))
    }

    async fn run<F: Future<Output = R>>(this: TicketState, load: F) -> R {
        let TicketState {
            cache,
            key,
            plan,
            tags,
            guard,
            fail_safe,
            remote_versions,
            lock,
        } = this;
        let (Some(key), Some(plan)) = (key, plan) else {
            // Nothing is stored: not a warmed entry.
            crate::warm::record(&cache.inner, crate::warm::Outcome::Failed);
            return load.await;
        };
        let inner = &cache.inner;
        // Versions are taken before the function runs: an invalidation while it
        // runs makes the stored entry born invalid.
        let snapshot = super::store::load_snapshot(&cache, &tags, remote_versions.as_deref());
        inner.observe.counters.loads.incr();
        let started = Instant::now();
        // Other processes wait while we hold the lock: keep it while we load.
        let keep_alive = lock.as_ref().map(|l| l.keep_alive(LOAD_LOCK_TTL));
        let outcome = AssertUnwindSafe(load).catch_unwind().await;
        drop(keep_alive);
        let took = started.elapsed();
        let load_millis = took.as_millis() as u64;
        let ok = matches!(&outcome, Ok(r) if M::succeeded(r));
        let call = Call::new(plan.function, &key);
        let result = if ok {
            LoadOutcome::Ok
        } else {
            LoadOutcome::Error
        };
        inner.tell(|events| events.load(call, took, result, false));
        let failure = match outcome {
            Ok(r) => match M::split(r) {
                Ok(value) => {
                    let shared: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
                    if M::storable(&value, plan.cache_none) {
                        let write = Write {
                            key: &key,
                            plan: &plan,
                            tags: &tags,
                            remote_versions,
                            local: snapshot,
                            load_millis,
                        };
                        store(&cache, &value, shared.clone(), write).await;
                    }
                    // Released after the write, so waiters re-reading find it.
                    release(lock).await;
                    if let Some(guard) = guard {
                        guard.complete(Some(shared));
                    }
                    crate::warm::record(inner, crate::warm::Outcome::Loaded);
                    return M::join(value);
                }
                Err(r) => Ok(r),
            },
            Err(panic) => Err(panic),
        };
        inner.observe.counters.load_errors.incr();
        crate::warm::record(inner, crate::warm::Outcome::Failed);
        release(lock).await;
        if let Some(old) = fail_safe {
            if let Some(value) = old.downcast_ref::<M::Value>() {
                inner.observe.counters.fail_safe_serves.incr();
                inner.tell(|events| events.fail_safe(Call::new(plan.function, &key)));
                tracing::warn!(
                    key = %key.full(&inner.config.namespace),
                    panicked = failure.is_err(),
                    "cache load failed; serving the expired value (fail-safe)"
                );
                let value = value.clone();
                if let Some(guard) = guard {
                    guard.complete(Some(old));
                }
                return M::join(value);
            }
        }
        // Dropping the guard releases the waiters: one of them leads next.
        drop(guard);
        match failure {
            Ok(r) => r,
            Err(panic) => resume_unwind(panic),
        }
    }
}

async fn release(lock: Option<LockGuard>) {
    if let Some(lock) = lock {
        // A failed release is counted; the lock then expires at its TTL.
        let _ = lock.release().await;
    }
}
