//! Hands events to a cache's listeners.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::kinds::*;
use super::Listener;
use crate::key::Key;

/// A cache's listeners; the cache holds one only when it has a listener.
pub(crate) struct Events {
    namespace: String,
    /// Every listener.
    all: Box<[Slot]>,
    /// The listeners told of gets (those that want them: not the metrics
    /// listener, which counts gets from the per-function counters).
    gets: Box<[Slot]>,
    /// Whether events carry keys (`CacheBuilder::event_keys`).
    keys: bool,
    /// Listeners turned off after a panic (`Stats::listener_panics`).
    panics: Arc<AtomicU64>,
}

/// A listener, and whether it is still told of events: one that panicked is
/// not, so that it costs one panic (and one run of the panic hook), not one
/// per event.
#[derive(Clone)]
struct Slot {
    listener: Arc<dyn Listener>,
    off: Arc<AtomicBool>,
}

/// Where an event of a call comes from.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) function: Option<&'a str>,
    pub(crate) key: Option<&'a Key>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(function: Option<&'a str>, key: &'a Key) -> Self {
        Call {
            function,
            key: Some(key),
        }
    }
}

impl Events {
    /// `None` when there is no listener at all.
    pub(crate) fn new(
        namespace: &str,
        listeners: Vec<Arc<dyn Listener>>,
        keys: bool,
    ) -> Option<Arc<Events>> {
        if listeners.is_empty() {
            return None;
        }
        let all: Box<[Slot]> = listeners
            .into_iter()
            .map(|listener| Slot {
                listener,
                off: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        let gets = all
            .iter()
            .filter(|s| s.listener.wants_gets())
            .cloned()
            .collect();
        Some(Arc::new(Events {
            namespace: namespace.to_string(),
            all,
            gets,
            keys,
            panics: Arc::default(),
        }))
    }

    /// Whether any listener wants get events (the hit path asks).
    pub(crate) fn wants_gets(&self) -> bool {
        !self.gets.is_empty()
    }

    /// Listeners turned off because they panicked.
    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        0
    }

    /// Calls `tell` on each of `listeners` still on; one that panics is
    /// turned off, logged once and counted.
    fn each(&self, listeners: &[Slot], tell: impl Fn(&dyn Listener)) {
        for slot in listeners {
            if slot.off.load(Ordering::Relaxed) {
                continue;
            }
            // The listener's state is its own: a panic leaves ours intact.
            if catch_unwind(AssertUnwindSafe(|| tell(&*slot.listener))).is_err()
                && !slot.off.swap(true, Ordering::Relaxed)
            {
                self.panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    cache = %self.namespace,
                    "a cache event listener panicked: it is told of no more events"
                );
            }
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
        if self.gets.is_empty() {
            return;
        }
        let key = self.key(call);
        let event = Get {
            cache: &self.namespace,
            function: call.function,
            key: key.as_deref(),
            result,
        };
        self.each(&self.gets, |l| l.on_get(&event));
    }

    pub(crate) fn load(
        &self,
        call: Call<'_>,
        duration: Duration,
        outcome: LoadOutcome,
        background: bool,
    ) {
        let key = self.key(call);
        let event = Load {
            cache: &self.namespace,
            function: call.function,
            key: key.as_deref(),
            duration,
            outcome,
            background,
        };
        self.each(&self.all, |l| l.on_load(&event));
    }

    pub(crate) fn invalidate(&self, tags: &[String]) {
        let event = Invalidate {
            cache: &self.namespace,
            function: None,
            key: None,
            tags,
        };
        self.each(&self.all, |l| l.on_invalidate(&event));
    }

    pub(crate) fn evict(&self, count: u64) {
        let event = Evict {
            cache: &self.namespace,
            function: None,
            key: None,
            count,
        };
        self.each(&self.all, |l| l.on_evict(&event));
    }

    pub(crate) fn fault(&self, kind: FaultKind) {
        let event = StoreFault {
            cache: &self.namespace,
            function: None,
            key: None,
            kind,
        };
        self.each(&self.all, |l| l.on_store_fault(&event));
    }

    pub(crate) fn refresh(&self, call: Call<'_>, early: bool) {
        let key = self.key(call);
        let event = Refresh {
            cache: &self.namespace,
            function: call.function,
            key: key.as_deref(),
            early,
        };
        self.each(&self.all, |l| l.on_refresh(&event));
    }

    pub(crate) fn fail_safe(&self, call: Call<'_>) {
        let key = self.key(call);
        let event = FailSafe {
            cache: &self.namespace,
            function: call.function,
            key: key.as_deref(),
        };
        self.each(&self.all, |l| l.on_fail_safe(&event));
    }

    pub(crate) fn coalesced(&self, call: Call<'_>) {
        let key = self.key(call);
        let event = Coalesced {
            cache: &self.namespace,
            function: call.function,
            key: key.as_deref(),
        };
        self.each(&self.all, |l| l.on_coalesced(&event));
    }

    pub(crate) fn remote_op(&self, duration: Duration, ok: bool) {
        let event = RemoteOp {
            cache: &self.namespace,
            function: None,
            key: None,
            duration,
            ok,
        };
        self.each(&self.all, |l| l.on_remote_op(&event));
    }
}
