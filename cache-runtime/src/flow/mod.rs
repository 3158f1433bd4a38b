//! The read path: look in memory, serve fresh or stale, join or lead the load
//! of a missing key. Generated code awaits [`begin`] and then acts on the
//! [`Step`] it returns, so the function's body is only touched on a load.
//!
//! `begin` decides hits synchronously and returns a small future; only a miss
//! (joining or leading a load) allocates its state on the heap. That keeps the
//! caller's future small, which matters: rustc moves futures by `memcpy`, and a
//! large state costs on every call, hit or not.

mod distributed;
mod lookup;
pub(crate) mod plan;
mod refresh;
mod remote_read;
mod slow;
mod store;
mod ticket;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

pub use refresh::Refresher;
use remote_read::decode_shared;
pub(crate) use remote_read::entry_from;
pub(crate) use store::{remote_versions, store as store_value, Write};
pub use ticket::Ticket;

use crate::clock::now_millis;
use crate::key::Key;
use crate::outcome::ReturnKind;
use crate::private::Site;
use crate::Cache;
use lookup::{judge, Found};
use plan::Plan;
use slow::{miss, Lead, MissCall, Missed};

/// What the caller does next.
pub enum Step<M, R> {
    /// A value to return.
    Hit(R),
    /// A value to return, and a background refresh to start.
    Refresh(R, Refresher),
    /// The caller runs the function through the ticket.
    Load(Ticket<M, R>),
}

/// Starts a `#[cached]` call. `tags` renders the entry's tags; it is called at
/// most once, synchronously, and only when memory has no usable value.
#[inline]
pub fn begin<'a, M, R, T>(
    cache: &'a Cache,
    site: &'static Site,
    key: Key,
    tags: T,
) -> Begin<'a, M, R>
where
    M: ReturnKind<R>,
    T: FnOnce() -> Vec<String>,
{
    match Plan::for_site(site, cache) {
        Ok(plan) => begin_with(cache, plan, key, tags),
        Err(error) => {
            cache.inner.counters.config_errors.incr();
            tracing::warn!(function = site.name, %error, "cache call runs uncached");
            Begin::ready(Step::Load(Ticket::uncached(cache)))
        }
    }
}

/// The future of [`begin`]: ready at once on a hit, else the boxed miss path.
pub struct Begin<'a, M, R> {
    state: BeginState<'a, M, R>,
}

enum BeginState<'a, M, R> {
    Ready(Option<Step<M, R>>),
    Miss {
        cache: &'a Cache,
        future: Pin<Box<dyn Future<Output = Missed> + Send + 'a>>,
    },
}

impl<M, R> Begin<'_, M, R> {
    fn ready(step: Step<M, R>) -> Self {
        Begin {
            state: BeginState::Ready(Some(step)),
        }
    }
}

// `Begin` holds no `M` or `R` by value in a way that pins it: Step is moved out.
impl<M, R> Unpin for Begin<'_, M, R> {}

impl<M: ReturnKind<R>, R> Future for Begin<'_, M, R> {
    type Output = Step<M, R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Step<M, R>> {
        match &mut self.state {
            BeginState::Ready(step) => match step.take() {
                Some(step) => Poll::Ready(step),
                // Polled after completion: a caller bug; stay pending rather than panic.
                None => Poll::Pending,
            },
            BeginState::Miss { cache, future } => {
                let cache = *cache;
                future
                    .as_mut()
                    .poll(cx)
                    .map(|missed| missed.into_step::<M, R>(cache))
            }
        }
    }
}

pub(crate) fn begin_with<M, R, T>(cache: &Cache, plan: Plan, key: Key, tags: T) -> Begin<'_, M, R>
where
    M: ReturnKind<R>,
    T: FnOnce() -> Vec<String>,
{
    let inner = &cache.inner;
    if !key.is_valid() {
        inner.counters.store_errors.incr();
        tracing::warn!("cache key arguments failed to serialize; call runs uncached");
        return Begin::ready(Step::Load(Ticket::uncached(cache)));
    }
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let now = now_millis();
    let (found, wrong_type) = judge::<M::Value>(inner.memory_get(&key.repr), &plan, now);
    if wrong_type {
        inner.counters.decode_errors.incr();
    }
    let fail_safe = match found {
        Found::Fresh { value, early } => {
            inner.counters.hits.incr();
            if early {
                if let Some(guard) = inner.flights.try_lead(&key.repr) {
                    inner.counters.early_refreshes.incr();
                    trace(cache, &key, "hit, refresh ahead", started);
                    let refresher = Refresher::new(cache, key, plan, guard, None);
                    return Begin::ready(Step::Refresh(M::join(value), refresher));
                }
            }
            trace(cache, &key, "hit", started);
            return Begin::ready(Step::Hit(M::join(value)));
        }
        Found::Stale { value, tags_entry } => {
            inner.counters.stale_hits.incr();
            trace(cache, &key, "stale hit", started);
            return Begin::ready(match inner.flights.try_lead(&key.repr) {
                Some(guard) => {
                    let refresher = Refresher::new(cache, key, plan, guard, Some(tags_entry));
                    Step::Refresh(M::join(value), refresher)
                }
                // A refresh of this key is already running.
                None => Step::Hit(M::join(value)),
            });
        }
        Found::Miss { fail_safe } => fail_safe,
    };
    inner.counters.misses.incr();
    let tags = tags();
    if !plan.single_flight && inner.remote.is_none() {
        trace(cache, &key, "miss, load", started);
        let lead = Lead {
            key,
            plan,
            tags,
            guard: None,
            fail_safe,
            remote_versions: None,
            lock: None,
        };
        return Begin::ready(Step::Load(Ticket::new(cache, lead)));
    }
    let call = MissCall {
        plan,
        key,
        tags,
        fail_safe,
        value_type: std::any::TypeId::of::<M::Value>(),
        decode: decode_shared::<M::Value>,
        started,
    };
    Begin {
        state: BeginState::Miss {
            cache,
            future: Box::pin(miss(cache, call)),
        },
    }
}

pub(crate) fn trace(cache: &Cache, key: &Key, outcome: &'static str, started: Option<Instant>) {
    if let Some(started) = started {
        tracing::debug!(
            key = %key.full(&cache.inner.namespace),
            outcome,
            elapsed_us = started.elapsed().as_micros() as u64,
            "cache call"
        );
    }
}

/// After an `#[invalidate]` function returned: invalidates `tags` when the
/// result is a success.
pub async fn invalidate_after<M: ReturnKind<R>, R>(cache: &Cache, result: &R, tags: Vec<String>) {
    if M::succeeded(result) {
        // Invalidation of the memory tier cannot fail; a remote tier's error is
        // counted by the cache and must not change the function's result.
        let _ = cache.invalidate_tags(tags).await;
    }
}

/// Keeps `Step`'s type parameters without owning an `M`.
pub(crate) type Kind<M, R> = PhantomData<fn() -> (M, R)>;
