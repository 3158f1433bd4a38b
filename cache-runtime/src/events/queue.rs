//! The listeners' queue: events copied out of the call, delivered in order
//! by one thread per cache, so that a slow listener never holds a caller or
//! a runtime worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use super::kinds::*;
use super::Listener;

/// Events a cache's queue holds at most: room for a burst of about a
/// second of a busy service's misses while a listener is slow. An event
/// takes about 100 bytes (more with its key), so a full queue stays near
/// 1 MB. Past it, events are dropped and counted (`Stats::events_dropped`).
pub(crate) const CAPACITY: usize = 10_000;

/// An event of a call, owning what it needs to outlive it.
pub(super) enum Owned {
    Get {
        function: Option<&'static str>,
        key: Option<String>,
        result: GetResult,
    },
    Load {
        function: Option<&'static str>,
        key: Option<String>,
        duration: Duration,
        outcome: LoadOutcome,
        background: bool,
    },
    Invalidate {
        tags: Vec<String>,
    },
    Evict {
        count: u64,
    },
    Fault {
        kind: FaultKind,
    },
    Refresh {
        function: Option<&'static str>,
        key: Option<String>,
        early: bool,
    },
    FailSafe {
        function: Option<&'static str>,
        key: Option<String>,
    },
    Coalesced {
        function: Option<&'static str>,
        key: Option<String>,
    },
    RemoteOp {
        duration: Duration,
        ok: bool,
    },
}

/// A listener, and whether it is still told of events: one that panicked is
/// not, so that it costs one panic (and one run of the panic hook), not one
/// per event.
pub(super) struct Slot {
    listener: Arc<dyn Listener>,
    /// `wants_gets`, asked once.
    gets: bool,
    off: AtomicBool,
}

impl Slot {
    pub(super) fn new(listener: Arc<dyn Listener>) -> Slot {
        Slot {
            gets: listener.wants_gets(),
            listener,
            off: AtomicBool::new(false),
        }
    }

    pub(super) fn wants_gets(&self) -> bool {
        self.gets
    }
}

/// Tells `event` to each listener of `slots` still on (gets to those that
/// want them); one that panics is turned off, logged once and counted.
pub(super) fn deliver(cache: &str, slots: &[Slot], event: &Owned, panics: &AtomicU64) {
    for slot in slots {
        if slot.off.load(Ordering::Relaxed) || (matches!(event, Owned::Get { .. }) && !slot.gets) {
            continue;
        }
        let listener = &*slot.listener;
        // The listener's state is its own: a panic leaves ours intact.
        let told = catch_unwind(AssertUnwindSafe(|| tell(cache, listener, event)));
        if told.is_err() && !slot.off.swap(true, Ordering::Relaxed) {
            panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                cache,
                "a cache event listener panicked: it is told of no more events"
            );
        }
    }
}

fn tell(cache: &str, listener: &dyn Listener, event: &Owned) {
    match event {
        Owned::Get {
            function,
            key,
            result,
        } => listener.on_get(&Get {
            cache,
            function: *function,
            key: key.as_deref(),
            result: *result,
        }),
        Owned::Load {
            function,
            key,
            duration,
            outcome,
            background,
        } => listener.on_load(&Load {
            cache,
            function: *function,
            key: key.as_deref(),
            duration: *duration,
            outcome: *outcome,
            background: *background,
        }),
        Owned::Invalidate { tags } => listener.on_invalidate(&Invalidate {
            cache,
            function: None,
            key: None,
            tags,
        }),
        Owned::Evict { count } => listener.on_evict(&Evict {
            cache,
            function: None,
            key: None,
            count: *count,
        }),
        Owned::Fault { kind } => listener.on_store_fault(&StoreFault {
            cache,
            function: None,
            key: None,
            kind: *kind,
        }),
        Owned::Refresh {
            function,
            key,
            early,
        } => listener.on_refresh(&Refresh {
            cache,
            function: *function,
            key: key.as_deref(),
            early: *early,
        }),
        Owned::FailSafe { function, key } => listener.on_fail_safe(&FailSafe {
            cache,
            function: *function,
            key: key.as_deref(),
        }),
        Owned::Coalesced { function, key } => listener.on_coalesced(&Coalesced {
            cache,
            function: *function,
            key: key.as_deref(),
        }),
        Owned::RemoteOp { duration, ok } => listener.on_remote_op(&RemoteOp {
            cache,
            function: None,
            key: None,
            duration: *duration,
            ok: *ok,
        }),
    }
}

/// The sending end of a cache's queue; its thread ends once this is
/// dropped (with the cache) and the queue is drained.
pub(super) struct Queue {
    sender: SyncSender<Owned>,
    dropped: AtomicU64,
}

impl Queue {
    /// Starts the thread that tells `slots` of the queue's events.
    pub(super) fn start(cache: &str, slots: Box<[Slot]>, panics: Arc<AtomicU64>) -> Queue {
        let (sender, receiver) = sync_channel(CAPACITY);
        let name = cache.to_string();
        let started = std::thread::Builder::new()
            .name("cache-events".into())
            .spawn(move || drain(&name, &slots, &receiver, &panics));
        if let Err(error) = started {
            // The receiver went with the closure: every event is dropped,
            // and counted.
            tracing::error!(cache, %error, "cannot start the cache's event thread: listeners are told nothing");
        }
        Queue {
            sender,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `event`, or drops and counts it when the queue is full.
    pub(super) fn send(&self, event: Owned) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(event)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn drain(cache: &str, slots: &[Slot], receiver: &Receiver<Owned>, panics: &AtomicU64) {
    while let Ok(event) = receiver.recv() {
        deliver(cache, slots, &event, panics);
    }
}
