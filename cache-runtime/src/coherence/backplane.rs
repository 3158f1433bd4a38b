//! The backplane: invalidations travel on a channel per namespace of the
//! cache's [`Backplane`](crate::store::Backplane) (Redis pub/sub), so other processes' memory tiers drop affected entries, and
//! their known tag versions rise, within milliseconds. Messages sent while a
//! subscriber is disconnected are lost, so a process trusts neither its
//! memory tier nor the tag versions it knows from a disconnect until it has
//! subscribed again, and then clears both.
//!
//! A message can also be lost while subscribed (its sender died between its
//! `INCR` and its `PUBLISH`, or the `PUBLISH` failed). So the memory tier is
//! trusted only for [`MAX_AGE_MS`] after the versions of every tag it holds
//! were last confirmed by Redis (`coherence::confirm`, a few times a second).
//!
//! A message is a hint, never an authority: the version it claims for a tag
//! is believed only a bounded step above what Redis was seen to hold, so a
//! forged or garbled message cannot lift a version out of reach of the real
//! invalidations that follow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{oneshot, Notify};

use super::key_writes::{self, WriteLog};
use super::known::{KnownVersions, MAX_AGE_MS};
use super::message::{channel, decode};
use super::outage::Outage;
use super::Host;
use crate::remote::store::DynBackplane;

/// A cache's side of the backplane.
pub(crate) struct Backplane {
    /// Identifies this cache's own messages.
    pub(crate) origin: u64,
    /// Whether messages arrive at all: `false` for a store without a
    /// backplane, whose memory tier is then kept current by the
    /// confirmations alone (`coherence::confirm`), and whose known versions are
    /// never trusted (every remote hit reads its tags' versions).
    listening: bool,
    subscribed: AtomicBool,
    /// The memory tier is trusted before this time (ms since the epoch):
    /// [`MAX_AGE_MS`] after tag versions were last confirmed; 0 while
    /// unsubscribed.
    memory_until: AtomicU64,
    /// Bumped by every loss of the subscription: a confirmation that began
    /// before one does not make memory trusted again.
    generation: AtomicU64,
    /// Wakes the confirmation task (a new subscription).
    pub(crate) confirm_now: Arc<Notify>,
    /// The numbers of writes by key heard since the last confirmation.
    pub(crate) writes: WriteLog,
    /// The tags' versions this process knows, trusted while subscribed.
    pub(crate) known: KnownVersions,
    /// The outage grace (`coherence::outage`).
    pub(crate) outage: Outage,
    shutdown: Arc<Notify>,
}

impl Backplane {
    /// Keeps the versions of up to `known_tags` tags.
    pub(crate) fn new(known_tags: usize) -> Self {
        Self {
            origin: fastrand::u64(..),
            listening: true,
            subscribed: AtomicBool::new(false),
            memory_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            confirm_now: Arc::new(Notify::new()),
            writes: WriteLog::default(),
            known: KnownVersions::new(known_tags),
            outage: Outage::new(super::outage::DEFAULT_GRACE),
            shutdown: Arc::new(Notify::new()),
        }
    }

    /// No messages will come (a store without a backplane): see `listening`.
    pub(crate) fn deaf(mut self) -> Self {
        self.listening = false;
        self
    }

    /// Whether messages arrive (a backplane is subscribed or being subscribed).
    pub(crate) fn listening(&self) -> bool {
        self.listening
    }

    /// Serves memory through an outage for `grace` (`coherence::outage`).
    pub(crate) fn outage_grace(mut self, grace: Duration) -> Self {
        self.outage = Outage::new(grace);
        self
    }

    /// Whether the backplane is subscribed, so that this process hears other
    /// processes' invalidations.
    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Whether the memory tier may be used at `now`: subscribed, and tag
    /// versions confirmed within the last [`MAX_AGE_MS`].
    #[inline]
    pub(crate) fn memory_trusted(&self, now: u64) -> bool {
        now < self.memory_until.load(Ordering::Acquire)
    }

    /// The subscription's generation, read before a confirmation is sent.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Redis confirmed every tag version held, in a read sent at `sent_at`
    /// during `generation`: memory is trusted until [`MAX_AGE_MS`] after it.
    pub(crate) fn confirmed(&self, generation: u64, sent_at: u64) {
        if (self.subscribed() || !self.listening) && self.generation() == generation {
            self.memory_until
                .fetch_max(sent_at.saturating_add(MAX_AGE_MS), Ordering::AcqRel);
            self.outage.current(sent_at);
            // A disconnect in between zeroes after bumping: undo ours.
            if self.generation() != generation {
                self.memory_until.store(0, Ordering::SeqCst);
            }
        }
    }

    fn lost(&self) -> bool {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.memory_until.store(0, Ordering::SeqCst);
        self.subscribed.swap(false, Ordering::AcqRel)
    }
}

impl Drop for Backplane {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}

/// Starts the subscriber task; resolves once the first subscription is up
/// (or after `wait`, whichever is first).
pub(crate) async fn start<H: Host>(inner: &Arc<H>, wait: Duration) {
    let (Some(backplane), Some(remote)) = (&inner.coherence().backplane, inner.remote()) else {
        return;
    };
    let Some(transport) = remote.backplane_handle() else {
        return;
    };
    let (ready, subscribed) = oneshot::channel();
    let shutdown = backplane.shutdown.clone();
    let task = subscriber(
        Arc::downgrade(inner),
        transport,
        channel(inner.namespace()),
        ready,
    );
    // `build()` checks for a runtime first; should there be none, the
    // backplane stays down (never trusted) instead of panicking.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: the cache's backplane is not started");
        return;
    };
    runtime.spawn(async move {
        tokio::select! {
            _ = task => {}
            _ = shutdown.notified() => {}
        }
    });
    let _ = tokio::time::timeout(wait, subscribed).await;
}

/// The longest pause between two attempts to subscribe again. Short: the
/// subscription coming back is how a process learns that Redis is back (its
/// queued invalidations are then retried at once, `crate::coherence::invalidation`),
/// and an attempt on a server that is down costs one refused connection.
const MAX_RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(250);

/// Subscribes through `transport` (Redis' goes through a cluster's nodes in
/// turn), subscribing again after each loss (the subscription's end).
async fn subscriber<H: Host>(
    cache: Weak<H>,
    transport: Arc<dyn DynBackplane>,
    channel: String,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Ok(mut messages) = transport.subscribe(&channel).await {
            backoff = Duration::from_millis(50);
            {
                let Some(inner) = cache.upgrade() else { return };
                // Invalidations may have been missed while unsubscribed.
                inner.clear_memory();
                if let Some(b) = &inner.coherence().backplane {
                    b.outage.current(crate::clock::now_millis());
                    if ready.is_none() {
                        tracing::info!(namespace = %inner.namespace(), "cache backplane subscribed again; memory tier emptied, used again once tag versions are confirmed");
                    }
                    b.known.set_trusted(true);
                    b.writes.reset();
                    b.subscribed.store(true, Ordering::Release);
                    // Memory is used again once versions are confirmed.
                    b.confirm_now.notify_one();
                }
                // Redis is back: queued invalidations go now.
                if let Some(remote) = inner.remote() {
                    remote.reconnected();
                }
            }
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            while let Some(message) = messages.next().await {
                let Some(inner) = cache.upgrade() else { return };
                apply(&*inner, &message);
            }
        }
        let Some(inner) = cache.upgrade() else { return };
        if let Some(b) = &inner.coherence().backplane {
            b.known.set_trusted(false);
            if b.lost() {
                inner.counters().fault(crate::events::FaultKind::Connection);
                tracing::warn!(namespace = %inner.namespace(), "cache backplane disconnected; memory tier not trusted until it reconnects (but for the outage grace while Redis is unreachable)");
            }
        }
        // Kept for the outage grace: unused while not trusted, and emptied
        // when the subscription is back.
        if inner
            .coherence()
            .backplane
            .as_ref()
            .is_none_or(|b| !b.outage.enabled())
        {
            inner.clear_memory();
        }
        drop(inner);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RESUBSCRIBE_BACKOFF);
    }
}

fn apply<H: Host>(inner: &H, payload: &[u8]) {
    let Some(message) = decode(payload) else {
        inner.counters().fault(crate::events::FaultKind::Decode);
        return;
    };
    let Some(backplane) = &inner.coherence().backplane else {
        return;
    };
    if backplane.origin == message.origin {
        return;
    }
    if let Some(write) = message.write {
        backplane.writes.heard(write);
    }
    if !message.keys.is_empty() || message.pattern.is_some() {
        key_writes::apply(inner, &message.keys, message.pattern.as_deref());
    }
    let with_versions = message.versions.len() == message.tags.len();
    for (i, tag) in message.tags.iter().enumerate() {
        let version = with_versions.then(|| message.versions[i]);
        inner.tags().heard(tag, version);
        backplane.known.heard(tag, version);
    }
}
