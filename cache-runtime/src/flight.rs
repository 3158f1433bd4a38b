//! Single flight: concurrent misses of one key run one load. The first caller
//! leads; the others wait for its value. A leader that is dropped (cancelled) or
//! unwinds (panics) without a value releases the flight, and the waiters retry:
//! one of them becomes the new leader, so nobody hangs and not all fail.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::key::Repr;

/// A load's shared result: the value, or `None` when the waiters must retry.
pub(crate) type Shared = Option<Arc<dyn Any + Send + Sync>>;

/// One load in progress.
pub(crate) struct Flight {
    notify: Notify,
    result: Mutex<Option<Shared>>,
}

impl Flight {
    /// Waits until the leader is done; its value, or `None` to retry.
    pub(crate) async fn wait(&self) -> Shared {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a completion in between still wakes us.
            notified.as_mut().enable();
            if let Some(result) = self.result.lock().as_ref() {
                return result.clone();
            }
            notified.await;
        }
    }
}

/// Whether the caller leads the load of a key or waits for another's.
pub(crate) enum Join {
    Lead(LeadGuard),
    Wait(Arc<Flight>),
}

const SHARDS: usize = 64;

/// A load in progress. Its [`Flight`] is made by the first waiter: a leader
/// nobody waits for (a remote hit, most loads) allocates nothing.
struct Pending {
    /// Tells this load from a later one of the same key.
    id: u64,
    flight: Option<Arc<Flight>>,
}

// ahash (randomly seeded per map, via quick_cache) instead of std's SipHash:
// a remote hit passes through here, and SipHash showed in its profile.
type FastState = quick_cache::DefaultHashBuilder;
type Shard = Mutex<HashMap<Repr, Pending, FastState>>;

/// The loads in progress of one cache.
pub(crate) struct Flights {
    shards: Box<[Shard]>,
    hasher: FastState,
    next_id: AtomicU64,
}

impl Flights {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            hasher: Default::default(),
            next_id: AtomicU64::new(0),
        })
    }

    fn shard(&self, key: &Repr) -> &Shard {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Joins the load of `key`, or leads a new one.
    pub(crate) fn join(self: &Arc<Self>, key: &Repr) -> Join {
        let mut shard = self.shard(key).lock();
        if let Some(pending) = shard.get_mut(key) {
            let flight = pending.flight.get_or_insert_with(|| {
                Arc::new(Flight {
                    notify: Notify::new(),
                    result: Mutex::new(None),
                })
            });
            return Join::Wait(flight.clone());
        }
        Join::Lead(self.lead_locked(&mut shard, key))
    }

    /// Leads a new load of `key` unless one is in progress.
    pub(crate) fn try_lead(self: &Arc<Self>, key: &Repr) -> Option<LeadGuard> {
        let mut shard = self.shard(key).lock();
        if shard.contains_key(key) {
            return None;
        }
        Some(self.lead_locked(&mut shard, key))
    }

    // `Repr` reaches a `Site` whose plan cache is mutable, but neither its
    // `Hash` nor its `Eq` reads that cache, so keys never change under the map.
    #[allow(clippy::mutable_key_type)]
    fn lead_locked(
        self: &Arc<Self>,
        shard: &mut HashMap<Repr, Pending, FastState>,
        key: &Repr,
    ) -> LeadGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        shard.insert(key.clone(), Pending { id, flight: None });
        LeadGuard {
            flights: self.clone(),
            key: key.clone(),
            id,
            done: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn in_progress(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The leader's hold on a flight. Completing it (or dropping it) removes the
/// flight and wakes the waiters.
pub(crate) struct LeadGuard {
    flights: Arc<Flights>,
    key: Repr,
    id: u64,
    done: bool,
}

impl LeadGuard {
    /// Ends the flight with `result`: a value for the waiters, or `None` to make
    /// them retry. Call after the value is stored, so a caller who finds no
    /// flight finds the entry.
    pub(crate) fn complete(mut self, result: Shared) {
        self.finish(result);
    }

    fn finish(&mut self, result: Shared) {
        if self.done {
            return;
        }
        self.done = true;
        let flight = {
            let mut shard = self.flights.shard(&self.key).lock();
            match shard.get(&self.key) {
                Some(pending) if pending.id == self.id => {
                    shard.remove(&self.key).and_then(|pending| pending.flight)
                }
                _ => None,
            }
        };
        // Waiters hold the flight; it was taken out of the map above, so no
        // new waiter can join it after this result is set.
        if let Some(flight) = flight {
            *flight.result.lock() = Some(result);
            flight.notify.notify_waiters();
        }
    }
}

impl Drop for LeadGuard {
    fn drop(&mut self) {
        // Cancelled or unwinding without a value: let a waiter take over.
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Repr {
        Repr::Text(s.into())
    }

    #[tokio::test]
    async fn waiters_get_the_leaders_value() {
        let flights = Flights::new();
        let Join::Lead(guard) = flights.join(&key("a")) else {
            panic!("first caller must lead")
        };
        let Join::Wait(flight) = flights.join(&key("a")) else {
            panic!("second caller must wait")
        };
        let waiter = tokio::spawn(async move { flight.wait().await });
        tokio::task::yield_now().await;
        guard.complete(Some(Arc::new(5u32)));
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.downcast_ref::<u32>(), Some(&5));
        assert_eq!(flights.in_progress(), 0);
    }

    #[tokio::test]
    async fn dropped_leader_releases_waiters_to_retry() {
        let flights = Flights::new();
        let Join::Lead(guard) = flights.join(&key("a")) else {
            panic!()
        };
        let Join::Wait(flight) = flights.join(&key("a")) else {
            panic!()
        };
        drop(guard);
        assert!(flight.wait().await.is_none());
        assert!(matches!(flights.join(&key("a")), Join::Lead(_)));
    }

    #[test]
    fn try_lead_refuses_while_in_progress() {
        let flights = Flights::new();
        let g = flights.try_lead(&key("a"));
        assert!(g.is_some());
        assert!(flights.try_lead(&key("a")).is_none());
        drop(g);
        assert!(flights.try_lead(&key("a")).is_some());
    }
}
