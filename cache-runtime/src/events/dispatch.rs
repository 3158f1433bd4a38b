//! Hands events to a cache's listeners: the crate's own (metrics) on the
//! spot, the user's through the cache's queue (see `queue`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::kinds::*;
use super::queue::{deliver, Owned, Queue, Slot};
use super::Listener;
use crate::key::Key;

/// A cache's listeners; the cache holds one only when it has a listener.
pub(crate) struct Events {
    namespace: String,
    /// The crate's own listeners (metrics): quick, and told within the call.
    inline: Box<[Slot]>,
    /// The user's listeners, told by the queue's thread; `None` without any.
    queue: Option<Queue>,
    /// Whether any listener wants get events.
    gets: bool,
    /// Whether events carry keys (`CacheBuilder::event_keys`).
    keys: bool,
    /// Listeners turned off after a panic (`Stats::listener_panics`).
    panics: Arc<AtomicU64>,
}

/// Where an event of a call comes from.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) function: Option<&'static str>,
    pub(crate) key: Option<&'a Key>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(function: Option<&'static str>, key: &'a Key) -> Self {
        Call {
            function,
            key: Some(key),
        }
    }
}

impl Events {
    /// `None` when there is no listener at all. `user` listeners are told
    /// through a queue and a thread of their own; `inline` ones (the
    /// crate's) within the call.
    pub(crate) fn new(
        namespace: &str,
        user: Vec<Arc<dyn Listener>>,
        inline: Vec<Arc<dyn Listener>>,
        keys: bool,
    ) -> Option<Arc<Events>> {
        if user.is_empty() && inline.is_empty() {
            return None;
        }
        let inline: Box<[Slot]> = inline.into_iter().map(Slot::new).collect();
        let user: Box<[Slot]> = user.into_iter().map(Slot::new).collect();
        let gets = inline.iter().chain(user.iter()).any(Slot::wants_gets);
        let panics = Arc::new(AtomicU64::new(0));
        let queue = (!user.is_empty()).then(|| Queue::start(namespace, user, panics.clone()));
        Some(Arc::new(Events {
            namespace: namespace.to_string(),
            inline,
            queue,
            gets,
            keys,
            panics,
        }))
    }

    /// Whether any listener wants get events (the hit path asks).
    pub(crate) fn wants_gets(&self) -> bool {
        self.gets
    }

    /// Listeners turned off because they panicked.
    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.queue.as_ref().map_or(0, Queue::dropped)
    }

    /// Tells the inline listeners, and queues the event for the others.
    fn send(&self, event: Owned) {
        if !self.inline.is_empty() {
            deliver(&self.namespace, &self.inline, &event, &self.panics);
        }
        if let Some(queue) = &self.queue {
            queue.send(event);
        }
    }

    /// The call's key, rendered when events carry keys.
    fn key(&self, call: Call<'_>) -> Option<String> {
        match call.key {
            Some(key) if self.keys => Some(key.full(&self.namespace)),
            _ => None,
        }
    }

    pub(crate) fn get(&self, call: Call<'_>, result: GetResult) {
        if !self.gets {
            return;
        }
        self.send(Owned::Get {
            function: call.function,
            key: self.key(call),
            result,
        });
    }

    pub(crate) fn load(
        &self,
        call: Call<'_>,
        duration: Duration,
        outcome: LoadOutcome,
        background: bool,
    ) {
        self.send(Owned::Load {
            function: call.function,
            key: self.key(call),
            duration,
            outcome,
            background,
        });
    }

    pub(crate) fn invalidate(&self, tags: &[String]) {
        self.send(Owned::Invalidate {
            tags: tags.to_vec(),
        });
    }

    pub(crate) fn evict(&self, count: u64) {
        self.send(Owned::Evict { count });
    }

    pub(crate) fn fault(&self, kind: FaultKind) {
        self.send(Owned::Fault { kind });
    }

    pub(crate) fn refresh(&self, call: Call<'_>, early: bool) {
        self.send(Owned::Refresh {
            function: call.function,
            key: self.key(call),
            early,
        });
    }

    pub(crate) fn fail_safe(&self, call: Call<'_>) {
        self.send(Owned::FailSafe {
            function: call.function,
            key: self.key(call),
        });
    }

    pub(crate) fn coalesced(&self, call: Call<'_>) {
        self.send(Owned::Coalesced {
            function: call.function,
            key: self.key(call),
        });
    }

    pub(crate) fn remote_op(&self, duration: Duration, ok: bool) {
        self.send(Owned::RemoteOp { duration, ok });
    }
}
