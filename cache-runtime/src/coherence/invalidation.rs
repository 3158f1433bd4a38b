//! Durable invalidation: an invalidation is applied in this process at once,
//! and reaches the remote tier however long that takes.
//!
//! `invalidate_tags` marks its tags pending (`TagRegistry::begin_pending`:
//! every entry carrying them is invalid here, and nothing read or loaded
//! meanwhile is trusted), then bumps their counters in the remote tier. When
//! that fails (timeout, reset, open breaker, an error reply) the invalidation
//! is queued, and one background task retries the queue in order, with
//! backoff, until the remote tier confirms it; only then are its tags no
//! longer pending. A timed-out bump may have landed: bumping again is
//! harmless (a counter that moves twice invalidates the same entries).
//! The retry task also wakes as soon as the remote tier is back (the
//! breaker's `back` notification: a success after failures, or the
//! backplane subscribing again), instead of waiting out its backoff.
//!
//! Once its tags are pending, an invalidation must finish whatever happens
//! to the caller's future: the send runs as a task on the runtime
//! ([`Started`]), and a send that is itself dropped queues the invalidation,
//! so a tag is never left pending with nothing on the way to confirm it.
//!
//! The queue lives in the process. When the last handle of a cache is
//! dropped with invalidations still queued, a task keeps retrying them for
//! up to [`DROP_FLUSH`] while the runtime runs; `Cache::flush_invalidations`
//! waits for the queue at shutdown. What is still queued when the process
//! exits is lost: other processes then serve the entries it covered until
//! they expire.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{message, Handle, Host};
use crate::remote::store::StoreError;
use crate::remote::Remote;
use crate::tags::TagSlot;

/// How long the last handle's drop keeps retrying queued invalidations.
pub(crate) const DROP_FLUSH: Duration = Duration::from_secs(5);
/// The first and the longest pause between two retries.
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Queued invalidations sent together in one retry.
const BATCH: usize = 64;

/// One invalidation the remote tier has not confirmed.
struct Queued {
    names: Vec<String>,
    /// Holds the tags pending (and alive) until confirmed.
    slots: Vec<Arc<TagSlot>>,
}

/// A cache's queue of unconfirmed invalidations.
#[derive(Default)]
pub(crate) struct Invalidations {
    queue: Mutex<VecDeque<Queued>>,
    /// Tags queued now (for stats and health).
    queued_tags: AtomicUsize,
    /// Whether the retry task runs.
    retrying: AtomicBool,
    /// Woken when the queue empties.
    emptied: Notify,
    /// Set once the last handle's drop started flushing.
    drop_flush: AtomicBool,
}

impl Invalidations {
    /// Tags whose invalidation waits for the remote tier.
    pub(crate) fn pending(&self) -> usize {
        self.queued_tags.load(Ordering::SeqCst)
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }
}

/// Invalidates `names`: here at once, in the remote tier now or later.
/// `Err` when the remote tier did not confirm it; it is then queued.
pub(crate) async fn invalidate<C: Handle>(cache: &C, names: Vec<String>) -> Result<(), StoreError> {
    let inner = &**cache.host();
    for name in &names {
        inner.counters().invalidations.incr();
        tracing::debug!(namespace = %inner.namespace(), tag = %name, "cache tag invalidated");
    }
    inner.tell_invalidate(&names);
    if inner.remote().is_none() {
        for name in &names {
            inner.tags().invalidate(name);
        }
        return Ok(());
    }
    if names.is_empty() {
        return Ok(());
    }
    let slots = inner.tags().begin_pending(&names);
    let started = Started {
        cache: Some(cache.clone()),
        queued: Some(Queued { names, slots }),
    };
    // From here on the invalidation is in force and must reach the remote
    // tier whatever happens to the caller's future: the send runs detached,
    // on the runtime, and the caller only waits for its outcome. Dropping
    // this future leaves the task running; a task that is itself dropped
    // (the runtime shuts down) queues the invalidation in its drop.
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn(started.run()).await {
            Ok(outcome) => outcome,
            // The task panicked or was cancelled: `Started`'s drop queued it.
            Err(_) => Err(StoreError::Backend(
                "the invalidation's task ended early; it is queued for retry".into(),
            )),
        },
        // `send` itself fails at once without a runtime (`Remote::admit`).
        Err(_) => started.run().await,
    }
}

/// An invalidation whose tags are pending here: sent, and on failure (or
/// when dropped before it finished) queued, so its tags never stay pending
/// without a send or a retry on the way.
struct Started<C: Handle> {
    /// `None` once finished.
    cache: Option<C>,
    queued: Option<Queued>,
}

impl<C: Handle> Started<C> {
    async fn run(mut self) -> Result<(), StoreError> {
        let (Some(cache), Some(queued)) = (&self.cache, &self.queued) else {
            return Ok(());
        };
        let inner = &**cache.host();
        let Some(remote) = inner.remote() else {
            return Ok(());
        };
        let outcome = send(inner, remote, &queued.names, &queued.slots).await;
        if outcome.is_ok() {
            self.queued = None;
        }
        // Queues a failed send (see `Drop`).
        drop(self);
        outcome
    }
}

impl<C: Handle> Drop for Started<C> {
    fn drop(&mut self) {
        let (Some(cache), Some(queued)) = (self.cache.take(), self.queued.take()) else {
            return;
        };
        let inner = &**cache.host();
        inner.counters().invalidation_failures.incr();
        inner
            .coherence()
            .invalidations
            .queued_tags
            .fetch_add(queued.names.len(), Ordering::SeqCst);
        inner
            .coherence()
            .invalidations
            .queue
            .lock()
            .push_back(queued);
        start_retrying(inner, Arc::downgrade(cache.host()));
        // Dropping `cache` here may be the last handle: `on_drop` then
        // keeps the queue draining for `DROP_FLUSH`.
    }
}

/// Bumps `names` in the remote tier, and on success ends their pending
/// state here, learns their new versions and tells other processes.
async fn send<H: Host>(
    inner: &H,
    remote: &Remote,
    names: &[String],
    slots: &[Arc<TagSlot>],
) -> Result<(), StoreError> {
    let tag_keys: Vec<String> = names
        .iter()
        .map(|t| Remote::tag_key(inner.namespace(), t))
        .collect();
    let known = inner.coherence().backplane.as_ref().map(|b| &b.known);
    let ticket = known.and_then(|k| k.ticket());
    let versions = match remote.call(inner.counters(), |s| s.bump(&tag_keys)).await {
        Ok(versions) => versions,
        Err(error) => {
            // The INCRs may have run: stop trusting what we knew.
            if let Some(known) = known {
                known.forget(names);
            }
            return Err(error);
        }
    };
    if let (Some(known), Some(ticket)) = (known, ticket) {
        known.learn(names, &versions, ticket);
    }
    inner.tags().confirmed(slots, &versions);
    let origin = inner.coherence().backplane.as_ref().map_or(0, |b| b.origin);
    if let Some(message) = message::encode(origin, names, &versions) {
        let channel = message::channel(inner.namespace());
        // Redis has the invalidation: a lost message costs other processes
        // at most the confirmation bound (1 s), so this is counted, not returned.
        let _ = remote.publish(inner.counters(), &channel, message).await;
    }
    Ok(())
}

/// Starts the retry task unless it runs. Without a tokio runtime the queue
/// waits for the next invalidation made under one.
fn start_retrying<H: Host>(inner: &H, cache: Weak<H>) {
    if inner
        .coherence()
        .invalidations
        .retrying
        .swap(true, Ordering::SeqCst)
    {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(retry(cache));
        }
        Err(_) => {
            inner
                .coherence()
                .invalidations
                .retrying
                .store(false, Ordering::SeqCst);
            inner.counters().fault(crate::events::FaultKind::Other);
            tracing::warn!("no tokio runtime to retry queued cache invalidations in");
        }
    }
}

/// Retries the queue in order until it is empty or the cache is gone.
async fn retry<H: Host>(cache: Weak<H>) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u32;
    // Woken when the remote tier is back (a call succeeded after failures,
    // the backplane subscribed again), so that the queue does not wait out
    // a backoff grown during an outage.
    let back = match cache.upgrade() {
        Some(inner) => inner.remote().map(|r| r.back()),
        None => return,
    };
    loop {
        match &back {
            Some(back) => tokio::select! {
                _ = tokio::time::sleep(jitter(backoff)) => {}
                _ = back.notified() => backoff = FIRST_BACKOFF,
            },
            None => tokio::time::sleep(jitter(backoff)).await,
        }
        let Some(inner) = cache.upgrade() else { return };
        let Some(remote) = inner.remote() else { return };
        let (names, slots, count) = {
            let queue = inner.coherence().invalidations.queue.lock();
            let batch: Vec<&Queued> = queue.iter().take(BATCH).collect();
            let names: Vec<String> = batch.iter().flat_map(|q| q.names.clone()).collect();
            let slots: Vec<Arc<TagSlot>> = batch.iter().flat_map(|q| q.slots.clone()).collect();
            (names, slots, batch.len())
        };
        if count > 0 {
            match send(&*inner, remote, &names, &slots).await {
                Ok(()) => {
                    let mut queue = inner.coherence().invalidations.queue.lock();
                    let sent = count.min(queue.len());
                    queue.drain(..sent);
                    drop(queue);
                    inner
                        .coherence()
                        .invalidations
                        .queued_tags
                        .fetch_sub(names.len(), Ordering::SeqCst);
                    if failures > 0 {
                        tracing::info!(
                            namespace = %inner.namespace(),
                            tags = names.len(),
                            "queued cache invalidations reached the remote tier"
                        );
                    }
                    backoff = FIRST_BACKOFF;
                    failures = 0;
                }
                Err(error) => {
                    // Once, then every 32nd failure: a long outage logs little.
                    if failures.is_multiple_of(32) {
                        tracing::warn!(
                            namespace = %inner.namespace(),
                            queued = inner.coherence().invalidations.pending(),
                            %error,
                            "queued cache invalidations still wait for the remote tier; retrying"
                        );
                    }
                    failures = failures.saturating_add(1);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        if inner.coherence().invalidations.is_empty() {
            inner
                .coherence()
                .invalidations
                .retrying
                .store(false, Ordering::SeqCst);
            inner.coherence().invalidations.emptied.notify_waiters();
            // An invalidation queued after the check above but before the
            // flag was cleared found the task running: take it up again.
            if inner.coherence().invalidations.is_empty()
                || inner
                    .coherence()
                    .invalidations
                    .retrying
                    .swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }
}

/// `d` spread by up to a quarter either way, so that processes cut off
/// together do not retry in step.
fn jitter(d: Duration) -> Duration {
    let quarter = d.as_micros() as u64 / 4;
    let spread = fastrand::u64(0..=quarter.saturating_mul(2));
    (d + Duration::from_micros(spread)).saturating_sub(Duration::from_micros(quarter))
}

/// Waits until every queued invalidation of `inner` reached the remote
/// tier, or `timeout` passed; the number of tags still queued (0: all sent).
pub(crate) async fn flush<H: Host>(inner: &Arc<H>, timeout: Duration) -> usize {
    let invalidations = &inner.coherence().invalidations;
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let emptied = invalidations.emptied.notified();
        tokio::pin!(emptied);
        emptied.as_mut().enable();
        if invalidations.is_empty() {
            return 0;
        }
        start_retrying(&**inner, Arc::downgrade(inner));
        let wait = deadline.map_or(Duration::from_millis(100), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100))
        });
        if wait.is_zero() {
            return invalidations.pending();
        }
        let _ = tokio::time::timeout(wait, emptied).await;
    }
}

/// Called when a handle of `cache` is dropped: the last one, with
/// invalidations queued, keeps the cache alive for [`DROP_FLUSH`] more so
/// that the queue can drain.
pub(crate) fn on_drop<C: Handle>(cache: &C) {
    let inner = cache.host();
    if Arc::strong_count(inner) != 1 || inner.coherence().invalidations.pending() == 0 {
        return;
    }
    // Once: the flush task's own handle is the last one when it ends.
    if inner
        .coherence()
        .invalidations
        .drop_flush
        .swap(true, Ordering::SeqCst)
    {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::error!(
            namespace = %inner.namespace(),
            tags = inner.coherence().invalidations.pending(),
            "cache dropped outside a tokio runtime with invalidations the remote tier never confirmed"
        );
        return;
    };
    let keep = cache.clone();
    handle.spawn(async move {
        let left = flush(keep.host(), DROP_FLUSH).await;
        if left > 0 {
            tracing::error!(
                namespace = %keep.host().namespace(),
                tags = left,
                "cache dropped with invalidations the remote tier never confirmed; other processes serve what they covered until it expires"
            );
        }
        // Dropping `keep` (the last handle) ends here: the flag is set.
        drop(keep);
    });
}
