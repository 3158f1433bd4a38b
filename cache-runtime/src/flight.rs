//! Single flight: concurrent misses of one key run one load. The first caller
//! leads; the others wait for its value. A leader that is dropped (cancelled) or
//! unwinds (panics) without a value releases the flight, and the waiters retry:
//! one of them becomes the new leader, so nobody hangs and not all fail.
//!
//! A flight keeps the tag snapshot its leader took before it began. A caller
//! joins it only while that snapshot is current: once an invalidation has
//! overtaken a load, callers that come after it never wait for (and are
//! never handed) the value that load began before the invalidation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::key::Repr;
use crate::tags::TagSnapshot;
use crate::value::SharedValue;

/// What a flight hands its waiters: the leader's value, or `None` when they
/// must retry.
pub(crate) type FlightResult = Option<SharedValue>;

/// One load in progress.
pub(crate) struct Flight {
    notify: Notify,
    result: Mutex<Option<FlightResult>>,
}

impl Flight {
    /// Waits until the leader is done; its value, or `None` to retry.
    pub(crate) async fn wait(&self) -> FlightResult {
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
    /// A load of the key runs, but an invalidation overtook it: the caller
    /// loads on its own, outside the flight.
    Alone,
}

const SHARDS: usize = 64;

/// A load in progress. Its [`Flight`] is made by the first waiter: a leader
/// nobody waits for (a remote hit, most loads) allocates nothing.
struct Pending {
    /// Tells this load from a later one of the same key.
    id: u64,
    flight: Option<Arc<Flight>>,
    /// The leader's tags, as they were before it began.
    tags: TagSnapshot,
}

// ahash (randomly seeded per cache, via quick_cache) instead of std's
// SipHash: a remote hit passes through here, and SipHash showed in its
// profile. Each key is hashed once per operation: the hash picks the shard
// and is reused by the shard's map through `Prehashed`.
type FastState = quick_cache::DefaultHashBuilder;
type Shard = Mutex<HashMap<Prehashed, Pending, BuildHasherDefault<PassThrough>>>;

/// A key with its hash, so the map does not hash it again.
#[derive(PartialEq, Eq)]
struct Prehashed {
    hash: u64,
    key: Repr,
}

impl Hash for Prehashed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Hands `Prehashed`'s hash to the map as it is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

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

    fn prehash(&self, key: &Repr) -> Prehashed {
        Prehashed {
            hash: self.hasher.hash_one(key),
            key: key.clone(),
        }
    }

    fn shard(&self, key: &Prehashed) -> &Shard {
        // The high bits: the map uses the low ones to place entries.
        &self.shards[(key.hash >> 58) as usize % SHARDS]
    }

    /// Joins the load of `key`, or leads a new one with `tags` (the
    /// caller's snapshot, taken before it looked for a flight).
    pub(crate) fn join(self: &Arc<Self>, key: &Repr, tags: TagSnapshot) -> Join {
        let key = self.prehash(key);
        let mut shard = self.shard(&key).lock();
        if let Some(pending) = shard.get_mut(&key) {
            if !pending.tags.is_current() {
                return Join::Alone;
            }
            let flight = pending.flight.get_or_insert_with(|| {
                Arc::new(Flight {
                    notify: Notify::new(),
                    result: Mutex::new(None),
                })
            });
            return Join::Wait(flight.clone());
        }
        Join::Lead(self.lead_locked(&mut shard, key, tags))
    }

    /// Leads a new load of `key` with `tags` unless one is in progress.
    pub(crate) fn try_lead(self: &Arc<Self>, key: &Repr, tags: TagSnapshot) -> Option<LeadGuard> {
        let key = self.prehash(key);
        let mut shard = self.shard(&key).lock();
        if shard.contains_key(&key) {
            return None;
        }
        Some(self.lead_locked(&mut shard, key, tags))
    }

    // `Repr` reaches a `Site` whose plan cache is mutable, but neither its
    // `Hash` nor its `Eq` reads that cache, so keys never change under the map.
    #[allow(clippy::mutable_key_type)]
    fn lead_locked(
        self: &Arc<Self>,
        shard: &mut HashMap<Prehashed, Pending, BuildHasherDefault<PassThrough>>,
        key: Prehashed,
        tags: TagSnapshot,
    ) -> LeadGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kept = Prehashed {
            hash: key.hash,
            key: key.key.clone(),
        };
        shard.insert(
            kept,
            Pending {
                id,
                flight: None,
                tags,
            },
        );
        LeadGuard {
            flights: self.clone(),
            key,
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
    key: Prehashed,
    id: u64,
    done: bool,
}

impl LeadGuard {
    /// Ends the flight with `result`: a value for the waiters, or `None` to make
    /// them retry. Call after the value is stored, so a caller who finds no
    /// flight finds the entry.
    pub(crate) fn complete(mut self, result: FlightResult) {
        self.end(result);
    }

    /// Removes the flight and hands `result` to its waiters, once.
    fn end(&mut self, result: FlightResult) {
        if self.done {
            return;
        }
        self.done = true;
        let flight = {
            let mut shard = self.flights.shard(&self.key).lock();
            // Only the leader removes its own entry, so the key still holds
            // it; checked anyway, and anything else is put back.
            match shard.remove_entry(&self.key) {
                Some((_, pending)) if pending.id == self.id => pending.flight,
                Some((key, other)) => {
                    shard.insert(key, other);
                    None
                }
                None => None,
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
        self.end(None);
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
        let Join::Lead(guard) = flights.join(&key("a"), TagSnapshot::default()) else {
            panic!("first caller must lead")
        };
        let Join::Wait(flight) = flights.join(&key("a"), TagSnapshot::default()) else {
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
        let Join::Lead(guard) = flights.join(&key("a"), TagSnapshot::default()) else {
            panic!()
        };
        let Join::Wait(flight) = flights.join(&key("a"), TagSnapshot::default()) else {
            panic!()
        };
        drop(guard);
        assert!(flight.wait().await.is_none());
        assert!(matches!(
            flights.join(&key("a"), TagSnapshot::default()),
            Join::Lead(_)
        ));
    }

    #[test]
    fn many_keys_lead_and_complete_independently() {
        let flights = Flights::new();
        // More keys than shards: several share a shard.
        let guards: Vec<_> = (0..200)
            .map(|i| {
                flights
                    .try_lead(&key(&format!("k{i}")), TagSnapshot::default())
                    .expect("free key")
            })
            .collect();
        assert_eq!(flights.in_progress(), 200);
        for (i, guard) in guards.into_iter().enumerate() {
            assert!(flights
                .try_lead(&key(&format!("k{i}")), TagSnapshot::default())
                .is_none());
            guard.complete(None);
            assert!(flights
                .try_lead(&key(&format!("k{i}")), TagSnapshot::default())
                .is_some());
        }
        assert_eq!(flights.in_progress(), 0);
    }

    #[test]
    fn a_load_overtaken_by_an_invalidation_is_not_joined() {
        let reg = crate::tags::TagRegistry::new();
        let flights = Flights::new();
        let Join::Lead(_guard) = flights.join(&key("a"), reg.snapshot(&["t"])) else {
            panic!()
        };
        assert!(matches!(
            flights.join(&key("a"), reg.snapshot(&["t"])),
            Join::Wait(_)
        ));
        reg.invalidate("t");
        assert!(matches!(
            flights.join(&key("a"), reg.snapshot(&["t"])),
            Join::Alone
        ));
    }

    #[test]
    fn try_lead_refuses_while_in_progress() {
        let flights = Flights::new();
        let g = flights.try_lead(&key("a"), TagSnapshot::default());
        assert!(g.is_some());
        assert!(flights
            .try_lead(&key("a"), TagSnapshot::default())
            .is_none());
        drop(g);
        assert!(flights
            .try_lead(&key("a"), TagSnapshot::default())
            .is_some());
    }
}
