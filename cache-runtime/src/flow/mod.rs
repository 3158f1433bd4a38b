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
mod missed;
pub(crate) mod plan;
mod refresh;
mod slow;
mod store;
mod ticket;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

pub use refresh::Refresher;
pub(crate) use store::{load_snapshot, remote_versions, store as store_value, Write};
pub use ticket::Ticket;

use crate::clock::now_millis;
use crate::events::{Call, FaultKind, GetResult};
use crate::key::Key;
use crate::outcome::ReturnKind;
use crate::private::Site;
use crate::remote::read::decode_for;
use crate::stats::Got;
use crate::Cache;
use lookup::{fresh_value, judge_memory, Found};
use missed::{Lead, Missed};
use plan::Plan;
use slow::{miss, MissCall};

/// What the caller does next.
pub enum Step<M, R> {
    /// A value to return.
    Hit(R),
    /// A value to return, and a background refresh to start.
    Refresh(R, Refresher),
    /// The caller runs the function through the ticket.
    Load(Ticket<M, R>),
}

/// A plain fresh memory hit, decided inline in the caller: generated code
/// tries this first and returns the value at once, so it travels in registers
/// and never through the caller's future state or the general path's enums
/// (copying it through those cost a third of a hit in store-forwarding
/// stalls: BENCHMARKS.md, run 7). `None` (stale, refresh-ahead to roll for, a
/// call to log, a miss) sends the call to [`begin`], which looks again.
#[inline(always)]
pub fn hit<M: ReturnKind<R>, R>(cache: &Cache, site: &'static Site, key: &Key) -> Option<R> {
    let inner = &cache.inner;
    // Storage-only: nothing to look at (and no key to hash, no clock to read).
    if !inner.tiers.memory.is_enabled() {
        return None;
    }
    let plan = inner.plans.get(site.plan.index())?;
    if !plan.fast_hit || tracing::enabled!(tracing::Level::DEBUG) {
        return None;
    }
    let now = now_millis();
    let value =
        inner.memory_read(&key.repr, now, |entry| fresh_value::<M::Value>(entry, now))??;
    if crate::warm::counted(inner) {
        // The function's own counter (kept plans have one), not the cache's.
        inner.observe.counters.count_get(plan.counts, Got::Hit);
    }
    Some(M::join(value))
}

/// Starts a `#[cached]` call. `tags` renders the entry's tags; it is called at
/// most once, synchronously, and only when memory has no usable value.
///
/// # Cancel safety
///
/// Dropping the returned [`Begin`] (the miss path) leaves
/// nothing held: a load it waited for goes on for the others, and a load it
/// was about to lead is handed to the next caller (see the crate's
/// `flight` module); a distributed lock it took is released in the
/// background.
pub fn begin<'a, M, R, T>(
    cache: &'a Cache,
    site: &'static Site,
    key: Key,
    tags: T,
) -> Begun<'a, M, R>
where
    M: ReturnKind<R>,
    T: FnOnce() -> Vec<String>,
{
    match Plan::for_site(site, cache) {
        Ok(plan) => begin_with(cache, plan, key, tags),
        Err(error) => {
            cache.inner.observe.counters.config_errors.incr();
            tracing::warn!(function = site.name, %error, "cache call runs uncached");
            Begun::Ready(Step::Load(Ticket::uncached(cache)))
        }
    }
}

/// What [`begin`] found: the next step at once (hits never touch a future),
/// or the miss path to await.
pub enum Begun<'a, M, R> {
    /// The next step, decided without waiting.
    Ready(Step<M, R>),
    /// Join or lead a load: await it for the next step.
    Miss(Begin<'a, M, R>),
}

/// The miss path of [`begin`]: its state is boxed so the caller's future
/// stays small.
pub struct Begin<'a, M, R> {
    cache: &'a Cache,
    future: Pin<Box<dyn Future<Output = Missed> + Send + 'a>>,
    _kind: Kind<M, R>,
}

impl<M: ReturnKind<R>, R> Future for Begin<'_, M, R> {
    type Output = Step<M, R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Step<M, R>> {
        let cache = self.cache;
        self.future
            .as_mut()
            .poll(cx)
            .map(|missed| missed.into_step::<M, R>(cache))
    }
}

pub(crate) fn begin_with<M, R, T>(cache: &Cache, plan: Plan, key: Key, tags: T) -> Begun<'_, M, R>
where
    M: ReturnKind<R>,
    T: FnOnce() -> Vec<String>,
{
    let inner = &cache.inner;
    if !inner.config.enabled {
        return disabled(cache, plan, key);
    }
    if !key.is_valid() {
        inner.observe.counters.fault(FaultKind::Other);
        tracing::warn!("cache key arguments failed to serialize; call runs uncached");
        return Begun::Ready(Step::Load(Ticket::uncached(cache)));
    }
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let (found, wrong_type) = if inner.tiers.memory.is_enabled() {
        let now = now_millis();
        inner
            .memory_read(&key.repr, now, |entry| {
                judge_memory::<M::Value>(entry, &plan, now)
            })
            .unwrap_or_else(Found::absent)
    } else {
        Found::absent()
    };
    if wrong_type {
        inner.observe.counters.fault(FaultKind::Decode);
    }
    let call = Call::new(plan.function, &key);
    let fail_safe = match found {
        Found::Fresh { value, early } => {
            if crate::warm::counted(inner) {
                inner.observe.counters.count_get(plan.counts, Got::Hit);
                inner.tell(|events| events.get(call, GetResult::Hit));
            }
            if let Some(tags) = early {
                if let Some(guard) = inner.flights.try_lead(&key.repr, tags) {
                    inner.observe.counters.early_refreshes.incr();
                    trace(cache, &key, "hit, refresh ahead", started);
                    let refresher = Refresher::new(cache, key, plan, guard, None);
                    return Begun::Ready(Step::Refresh(M::join(value), refresher));
                }
            }
            trace(cache, &key, "hit", started);
            return Begun::Ready(Step::Hit(M::join(value)));
        }
        Found::Stale { value, tags_entry } => {
            if crate::warm::counted(inner) {
                inner.observe.counters.count_get(plan.counts, Got::Stale);
                inner.tell(|events| events.get(call, GetResult::Stale));
            }
            trace(cache, &key, "stale hit", started);
            let tags = tags_entry.tags.renewed();
            return Begun::Ready(match inner.flights.try_lead(&key.repr, tags) {
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
    let counted = crate::warm::counted(inner);
    if counted {
        inner.observe.counters.count_get(plan.counts, Got::Miss);
    }
    let tags = tags();
    if !plan.single_flight && inner.tiers.remote.is_none() {
        // The call's one get event: this path decides it. Every other miss
        // goes through `miss`, which tells what it found (a remote hit, a
        // joined load, a miss), so telling here too would count it twice.
        if counted {
            inner.tell(|events| events.get(call, GetResult::Miss));
        }
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
        return Begun::Ready(Step::Load(Ticket::new(cache, lead)));
    }
    let call = MissCall {
        plan,
        key,
        tags,
        fail_safe,
        value_type: std::any::TypeId::of::<M::Value>(),
        decode: decode_for::<M::Value>,
        started,
    };
    Begun::Miss(Begin {
        cache,
        future: Box::pin(miss(cache, call)),
        _kind: Default::default(),
    })
}

/// A call of a disabled cache: a miss, and a load that stores nothing (the
/// cache has no tier) and joins no other caller's load.
#[cold]
fn disabled<M: ReturnKind<R>, R>(cache: &Cache, plan: Plan, key: Key) -> Begun<'_, M, R> {
    let inner = &cache.inner;
    if crate::warm::counted(inner) {
        inner.observe.counters.count_get(plan.counts, Got::Miss);
        inner.tell(|events| events.get(Call::new(plan.function, &key), GetResult::Miss));
    }
    let lead = Lead {
        key,
        plan,
        tags: Vec::new(),
        guard: None,
        fail_safe: None,
        remote_versions: None,
        lock: None,
    };
    Begun::Ready(Step::Load(Ticket::new(cache, lead)))
}

/// Logs a call's outcome when debug logging was on at its start.
#[inline(always)]
pub(crate) fn trace(cache: &Cache, key: &Key, outcome: &'static str, started: Option<Instant>) {
    if let Some(started) = started {
        trace_call(cache, key, outcome, started);
    }
}

#[cold]
fn trace_call(cache: &Cache, key: &Key, outcome: &'static str, started: Instant) {
    {
        tracing::debug!(
            key = %key.full(&cache.inner.config.namespace),
            outcome,
            elapsed_us = started.elapsed().as_micros() as u64,
            "cache call"
        );
    }
}

/// After an `#[invalidate]` function returned: invalidates `tags` when the
/// result is a success.
///
/// # Cancel safety
///
/// The invalidation starts on its first poll (the tags
/// are in force here at once and the send is detached), so dropping it
/// afterwards loses nothing (see [`Cache::invalidate_tags`]).
pub async fn invalidate_after<M: ReturnKind<R>, R>(cache: &Cache, result: &R, tags: Vec<String>) {
    if M::succeeded(result) {
        // The function's result stands either way. An invalidation the remote
        // tier did not confirm is in force here and queued for retry; the
        // cache counted it (`Stats::invalidation_failures`), and it is logged.
        if let Err(error) = cache.invalidate_tags(tags).await {
            tracing::warn!(namespace = %cache.inner.config.namespace, %error, "#[invalidate]: the remote tier did not confirm the invalidation; it is queued for retry");
        }
    }
}

/// Keeps `Step`'s type parameters without owning an `M`.
pub(crate) type Kind<M, R> = PhantomData<fn() -> (M, R)>;
