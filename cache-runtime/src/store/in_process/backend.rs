//! The shared backend: one keyspace of entries, version counters, locks and
//! counters with TTLs on tokio's clock, as one Redis server (or a cluster of
//! `nodes` masters) would hold them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::glob;
use super::ops::Tally;
use crate::store::StoreError;

/// How many messages a channel buffers for a slow subscriber before that
/// subscriber is cut off (its subscription ends, as Redis drops a client
/// past its output buffer limit).
const CHANNEL_CAPACITY: usize = 1024;

/// A key's place in the keyspace: its hash first, so that a scan cursor (a
/// hash) stays valid while keys come and go.
type Place = (u64, String);

#[derive(Debug, Clone)]
enum Value {
    Bytes(Vec<u8>),
    Int(i64),
}

#[derive(Debug, Clone)]
struct Slot {
    value: Value,
    /// `None`: no TTL (a counter, or a lock left by a fault).
    expires: Option<Instant>,
}

impl Slot {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// The data, behind one mutex (operations are atomic, as on one server).
#[derive(Debug, Default)]
struct Data {
    keys: BTreeMap<Place, Slot>,
    /// The highest version ever handed out. A failover does not roll it
    /// back (it stands for the wall clock a real store uses), so a version
    /// is never handed out twice.
    version_clock: u64,
    /// Write operations still to be acknowledged and then forgotten.
    lose_next: u64,
    /// The state a lagging replica holds (see [`Backend::fail_over`]).
    replica: Option<BTreeMap<Place, Slot>>,
    /// Broken keys the running operation replaced (moved to its handle's
    /// count when it ends).
    repairs: u64,
}

/// The state every handle of one in-process store shares.
#[derive(Debug)]
pub(crate) struct Backend {
    nodes: usize,
    data: Mutex<Data>,
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
    pub(crate) tally: Tally,
}

fn place(key: &str) -> Place {
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()), key.to_string())
}

fn deadline(ttl: Duration) -> Instant {
    // At least 1 ms, as the contract says a TTL is.
    Instant::now() + ttl.max(Duration::from_millis(1))
}

impl Data {
    /// Runs a write operation; when a lost write is due, its effects on the
    /// keyspace are undone after it answered (the version clock stays).
    fn write<R>(&mut self, f: impl FnOnce(&mut Data) -> R) -> R {
        if self.lose_next == 0 {
            return f(self);
        }
        self.lose_next -= 1;
        let kept = self.keys.clone();
        let answer = f(self);
        self.keys = kept;
        answer
    }

    /// The live slot of `key`, dropping it if it expired.
    fn live(&mut self, key: &Place) -> Option<&mut Slot> {
        let now = Instant::now();
        if self.keys.get(key).is_some_and(|slot| !slot.live(now)) {
            self.keys.remove(key);
        }
        self.keys.get_mut(key)
    }

    fn fresh_version(&mut self, above: u64) -> u64 {
        self.version_clock = self.version_clock.max(above) + 1;
        self.version_clock
    }

    /// The version of `key`, creating a missing or broken counter above
    /// every version handed out before.
    fn version(&mut self, key: &str) -> u64 {
        let at = place(key);
        let current = match self.live(&at) {
            Some(Slot {
                value: Value::Int(n),
                ..
            }) if *n > 0 => {
                // A counter raised by `increment` hands out versions the
                // clock did not: the clock keeps up, so none comes back.
                let version = *n as u64;
                self.version_clock = self.version_clock.max(version);
                return version;
            }
            Some(_) => {
                self.repairs += 1;
                0
            }
            None => 0,
        };
        let version = self.fresh_version(current);
        self.keys.insert(at, counter(version));
        version
    }

    fn bump(&mut self, key: &str) -> u64 {
        let at = place(key);
        let old = match self.live(&at) {
            Some(Slot {
                value: Value::Int(n),
                ..
            }) if *n > 0 => *n as u64,
            Some(_) => {
                self.repairs += 1;
                0
            }
            None => 0,
        };
        let version = self.fresh_version(old);
        self.keys.insert(at, counter(version));
        version
    }

    fn bytes(&mut self, key: &str) -> Option<Vec<u8>> {
        match &self.live(&place(key))?.value {
            Value::Bytes(bytes) => Some(bytes.clone()),
            Value::Int(n) => Some(n.to_string().into_bytes()),
        }
    }
}

fn counter(version: u64) -> Slot {
    Slot {
        // Versions stay far below i64::MAX (one per bump).
        value: Value::Int(i64::try_from(version).unwrap_or(i64::MAX)),
        expires: None,
    }
}

impl Backend {
    pub(crate) fn new(nodes: usize) -> Self {
        Self {
            nodes: nodes.max(1),
            data: Mutex::default(),
            channels: Mutex::default(),
            tally: Tally::default(),
        }
    }

    pub(crate) fn nodes(&self) -> usize {
        self.nodes
    }

    fn node_of(&self, at: &Place) -> usize {
        (at.0 % self.nodes as u64) as usize
    }

    /// Runs `f` on the data; the broken keys it replaced are added to
    /// `repaired` (the calling handle's count: a store reports its own).
    fn repairing<R>(&self, repaired: &AtomicU64, f: impl FnOnce(&mut Data) -> R) -> R {
        let mut data = self.data.lock();
        let answer = f(&mut data);
        let repairs = std::mem::take(&mut data.repairs);
        if repairs > 0 {
            repaired.fetch_add(repairs, Ordering::Relaxed);
        }
        answer
    }

    pub(crate) fn fetch(
        &self,
        repaired: &AtomicU64,
        entry: &str,
        tags: impl Iterator<Item = String>,
    ) -> (Option<Vec<u8>>, Vec<u64>) {
        self.repairing(repaired, |data| {
            let bytes = data.bytes(entry);
            let versions = tags.map(|tag| data.version(&tag)).collect();
            (bytes, versions)
        })
    }

    pub(crate) fn fetch_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let mut data = self.data.lock();
        keys.iter().map(|key| data.bytes(key)).collect()
    }

    pub(crate) fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) {
        self.data.lock().write(|data| {
            for (key, bytes, ttl) in items {
                let slot = Slot {
                    value: Value::Bytes(bytes),
                    expires: Some(deadline(ttl)),
                };
                data.keys.insert(place(&key), slot);
            }
        });
    }

    pub(crate) fn delete(&self, key: &str) -> bool {
        let at = place(key);
        self.data
            .lock()
            .write(|data| data.live(&at).is_some() && data.keys.remove(&at).is_some())
    }

    pub(crate) fn versions(&self, repaired: &AtomicU64, keys: &[String]) -> Vec<u64> {
        self.repairing(repaired, |data| {
            keys.iter().map(|key| data.version(key)).collect()
        })
    }

    pub(crate) fn bump(&self, repaired: &AtomicU64, keys: &[String]) -> Vec<u64> {
        self.repairing(repaired, |data| {
            data.write(|data| keys.iter().map(|key| data.bump(key)).collect())
        })
    }

    pub(crate) fn try_lock(
        &self,
        repaired: &AtomicU64,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> bool {
        let at = place(key);
        self.repairing(repaired, |data| {
            data.write(|data| {
                match data.live(&at) {
                    Some(Slot { expires: None, .. }) => data.repairs += 1, // nobody's: take it over
                    Some(_) => return false,
                    None => {}
                }
                let slot = Slot {
                    value: Value::Bytes(token.as_bytes().to_vec()),
                    expires: Some(deadline(ttl)),
                };
                data.keys.insert(at, slot);
                true
            })
        })
    }

    pub(crate) fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> bool {
        let at = place(key);
        self.data.lock().write(|data| match data.live(&at) {
            Some(slot) if matches!(&slot.value, Value::Bytes(t) if t == token.as_bytes()) => {
                slot.expires = Some(deadline(ttl));
                true
            }
            _ => false,
        })
    }

    pub(crate) fn unlock(&self, key: &str, token: &str) -> bool {
        let at = place(key);
        self.data.lock().write(|data| {
            let held = data.live(&at).is_some_and(
                |slot| matches!(&slot.value, Value::Bytes(t) if t == token.as_bytes()),
            );
            if held {
                data.keys.remove(&at);
            }
            held
        })
    }

    pub(crate) fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let at = place(key);
        self.data.lock().write(|data| {
            let (old, expires) = match data.live(&at) {
                None => (0, None),
                Some(slot) => {
                    let old = match &slot.value {
                        Value::Int(n) => Some(*n),
                        Value::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
                    };
                    let old = old.ok_or_else(|| {
                        StoreError::Backend("value is not an integer".to_string())
                    })?;
                    (old, slot.expires)
                }
            };
            let new = old
                .checked_add(delta)
                .ok_or_else(|| StoreError::Backend("increment would overflow".to_string()))?;
            data.keys.insert(
                at,
                Slot {
                    value: Value::Int(new),
                    expires,
                },
            );
            Ok(new)
        })
    }

    /// One page of node `node`'s keys matching `pattern`, from `cursor` (a
    /// hash), visiting about `count` keys.
    pub(crate) fn scan(
        &self,
        node: usize,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> (u64, Vec<String>) {
        let data = self.data.lock();
        let now = Instant::now();
        let mut found = Vec::new();
        let mut visited = 0u32;
        let mut last = None;
        let start = (cursor, String::new());
        for (at, slot) in data.keys.range(start..) {
            if self.node_of(at) != node {
                continue;
            }
            // Never end a page between keys of one hash: the next cursor
            // starts after it.
            if visited >= count.max(1) && last != Some(at.0) {
                return (last.map_or(0, |h: u64| h.wrapping_add(1)), found);
            }
            visited += 1;
            last = Some(at.0);
            if slot.live(now) && glob::matches(pattern, &at.1) {
                found.push(at.1.clone());
            }
        }
        (0, found)
    }

    pub(crate) fn unlink(&self, node: usize, keys: &[String]) -> u64 {
        self.data.lock().write(|data| {
            let mut removed = 0;
            for key in keys {
                let at = place(key);
                if self.node_of(&at) == node && data.live(&at).is_some() {
                    data.keys.remove(&at);
                    removed += 1;
                }
            }
            removed
        })
    }

    pub(crate) fn live_keys(&self) -> usize {
        let now = Instant::now();
        self.data
            .lock()
            .keys
            .values()
            .filter(|slot| slot.live(now))
            .count()
    }

    pub(crate) fn lose_writes(&self, n: u64) {
        self.data.lock().lose_next = n;
    }

    pub(crate) fn checkpoint(&self) {
        let mut data = self.data.lock();
        data.replica = Some(data.keys.clone());
    }

    pub(crate) fn fail_over(&self) {
        let mut data = self.data.lock();
        data.keys = data.replica.take().unwrap_or_default();
    }

    pub(crate) fn publish(&self, channel: &str, message: Vec<u8>) {
        let mut channels = self.channels.lock();
        if let Some(sender) = channels.get(channel) {
            if sender.send(message).is_err() {
                // Nobody listens any more.
                channels.remove(channel);
            }
        }
    }

    pub(crate) fn subscribe(&self, channel: &str) -> broadcast::Receiver<Vec<u8>> {
        self.channels
            .lock()
            .entry(channel.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }
}
