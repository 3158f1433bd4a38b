//! Background refreshes (stale-while-revalidate, refresh-ahead). The refresh
//! owns everything it uses, so it outlives the call that started it; it holds
//! the key's flight, so a key has at most one refresh (or load) at a time.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
// tokio's: std's outside tests; on paused time a load's duration (XFetch's
// delta, the load event's) is the time the test let pass.
use tokio::time::Instant;

use futures_util::FutureExt;

use super::plan::Plan;
use super::store::{load_snapshot, remote_versions, store, Write};
use crate::events::{Call, LoadOutcome};
use crate::flight::LeadGuard;
use crate::key::Key;
use crate::memory::Entry;
use crate::outcome::ReturnKind;
use crate::Cache;

/// A background refresh to start with the function's owned future. Boxed, to
/// keep `Step` small.
pub struct Refresher {
    state: Box<RefreshState>,
}

struct RefreshState {
    cache: Cache,
    key: Key,
    plan: Plan,
    guard: LeadGuard,
    /// The entry being refreshed, for its tags.
    entry: Option<Entry>,
}

impl Refresher {
    pub(crate) fn new(
        cache: &Cache,
        key: Key,
        plan: Plan,
        guard: LeadGuard,
        entry: Option<Entry>,
    ) -> Self {
        Self {
            state: Box::new(RefreshState {
                cache: cache.clone(),
                key,
                plan,
                guard,
                entry,
            }),
        }
    }

    /// Spawns the refresh on the current tokio runtime. Without one, nothing
    /// runs (the stale value was still served) and the fault is counted.
    pub fn spawn<M, R, F>(self, load: F)
    where
        M: ReturnKind<R> + 'static,
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let state = *self.state;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            let inner = &state.cache.inner;
            inner
                .observe
                .counters
                .fault(crate::events::FaultKind::Other);
            tracing::warn!("no tokio runtime to refresh a cache entry in the background");
            return;
        };
        let inner = &state.cache.inner;
        inner.observe.counters.refreshes.incr();
        let call = Call::new(state.plan.function, &state.key);
        // Early (refresh-ahead) refreshes start from a fresh hit, with no entry.
        inner.tell(|events| events.refresh(call, state.entry.is_none()));
        handle.spawn(state.run::<M, R, F>(load));
    }
}

impl RefreshState {
    async fn run<M: ReturnKind<R>, R, F: Future<Output = R>>(self, load: F) {
        let inner = &self.cache.inner;
        let tags = match &self.entry {
            Some(entry) => entry.tags.names(),
            None => match inner.tiers.memory.get(&self.key.repr) {
                Some(entry) => entry.tags.names(),
                None => Vec::new(),
            },
        };
        // Remote versions are read before the load, like a foreground load's.
        let remote_versions = remote_versions(&self.cache, &tags).await;
        let snapshot = load_snapshot(&self.cache, &tags, remote_versions.as_deref());
        inner.observe.counters.loads.incr();
        let started = Instant::now();
        let outcome = AssertUnwindSafe(load).catch_unwind().await;
        let took = started.elapsed();
        let load_millis = took.as_millis() as u64;
        let outcome = outcome.map(M::split);
        let result = match &outcome {
            Ok(Ok(_)) => LoadOutcome::Ok,
            _ => LoadOutcome::Error,
        };
        let call = Call::new(self.plan.function, &self.key);
        inner.tell(|events| events.load(call, took, result, true));
        match outcome {
            Ok(Ok(value)) => {
                let shared: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
                if M::storable(&value, self.plan.cache_none) {
                    let write = Write {
                        key: &self.key,
                        plan: &self.plan,
                        tags: &tags,
                        remote_versions,
                        local: snapshot,
                        load_millis,
                    };
                    store(&self.cache, &value, shared.clone(), write).await;
                }
                self.guard.complete(Some(shared));
            }
            Ok(Err(_)) | Err(_) => {
                // The stale value stays; the next stale hit tries again.
                inner.observe.counters.load_errors.incr();
                tracing::warn!(key = %self.key.full(&inner.config.namespace), "background cache refresh failed");
            }
        }
    }
}
