//! A store and a backplane written against the public interface only
//! (`cache_runtime::store`), as an application would write its own: a
//! `HashMap` behind a mutex, shared by every cache given a clone (the
//! processes of a test), and a backplane over tokio broadcast channels.
//! Included by the tests that need one (`#[path]`), so a conformance suite
//! can run against it too.

#![allow(dead_code)] // each including test uses a part

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::store::{
    Backplane, CounterStore, EntryStore, Fetch, Fetched, LockStore, ScanNode, ScanStore,
    StoreError, Subscription, TagStore,
};
use tokio::sync::broadcast;

#[derive(Default)]
struct Data {
    /// Entries and locks: bytes and when they expire.
    bytes: HashMap<String, (Vec<u8>, Instant)>,
    /// Tag versions and counters.
    numbers: HashMap<String, i64>,
}

/// The shared store: clones share one map.
#[derive(Clone, Default)]
pub struct MapStore {
    data: Arc<Mutex<Data>>,
    /// Round trips served: what a test counts.
    pub calls: Arc<AtomicU64>,
}

impl MapStore {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Live bytes under `key`.
    fn live(data: &Data, key: &str) -> Option<Vec<u8>> {
        data.bytes
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(bytes, _)| bytes.clone())
    }

    /// A tag's version, created at 1 (this store never loses one, so it
    /// never hands one out twice), bumped by `bump`.
    fn version(data: &mut Data, key: &str, bump: bool) -> u64 {
        let n = data.numbers.entry(key.to_string()).or_insert(1);
        *n += i64::from(bump);
        *n as u64
    }

    /// How many entries whose key starts with `prefix` are live.
    pub fn count(&self, prefix: &str) -> usize {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.bytes
            .iter()
            .filter(|(k, (_, until))| k.starts_with(prefix) && *until > Instant::now())
            .count()
    }
}

impl EntryStore for MapStore {
    async fn fetch(&self, request: Fetch<'_>) -> Result<Fetched, StoreError> {
        let mut data = self.data();
        let entry = Self::live(&data, &request.entry_key());
        let versions = request
            .tag_keys()
            .map(|t| Self::version(&mut data, &t, false))
            .collect();
        Ok(Fetched::new(entry, versions))
    }

    async fn fetch_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let data = self.data();
        Ok(keys.iter().map(|k| Self::live(&data, k)).collect())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let until = Instant::now() + ttl;
        self.data().bytes.insert(key.to_string(), (bytes, until));
        Ok(())
    }

    async fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut data = self.data();
        for (key, bytes, ttl) in items {
            data.bytes.insert(key, (bytes, now + ttl));
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut data = self.data();
        let live = Self::live(&data, key).is_some();
        data.bytes.remove(key);
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl TagStore for MapStore {
    async fn versions(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        let mut data = self.data();
        Ok(tag_keys
            .iter()
            .map(|t| Self::version(&mut data, t, false))
            .collect())
    }

    async fn bump(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        let mut data = self.data();
        Ok(tag_keys
            .iter()
            .map(|t| Self::version(&mut data, t, true))
            .collect())
    }
}

impl LockStore for MapStore {
    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut data = self.data();
        if Self::live(&data, key).is_some() {
            return Ok(false);
        }
        let until = Instant::now() + ttl;
        data.bytes
            .insert(key.to_string(), (token.as_bytes().to_vec(), until));
        Ok(true)
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut data = self.data();
        let held = Self::live(&data, key).is_some_and(|t| t == token.as_bytes());
        if held {
            let until = Instant::now() + ttl;
            data.bytes
                .insert(key.to_string(), (token.as_bytes().to_vec(), until));
        }
        Ok(held)
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let mut data = self.data();
        let held = Self::live(&data, key).is_some_and(|t| t == token.as_bytes());
        if held {
            data.bytes.remove(key);
        }
        Ok(held)
    }
}

impl CounterStore for MapStore {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let mut data = self.data();
        let n = data.numbers.entry(key.to_string()).or_insert(0);
        *n += delta;
        Ok(*n)
    }
}

impl ScanStore for MapStore {
    type Node = MapStore;

    async fn scan_nodes(&self) -> Result<Vec<MapStore>, StoreError> {
        Ok(vec![self.clone()])
    }
}

/// The whole map is one node, walked in one page.
impl ScanNode for MapStore {
    async fn scan(
        &self,
        _cursor: u64,
        pattern: &str,
        _count: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let now = Instant::now();
        let data = self.data();
        // Live keys only: one past its TTL is gone, as Redis' SCAN skips it.
        let keys = data
            .bytes
            .iter()
            .filter(|(k, (_, until))| *until > now && glob(pattern.as_bytes(), k.as_bytes()))
            .map(|(k, _)| k.clone())
            .collect();
        Ok((0, keys))
    }

    async fn unlink(&self, keys: &[String]) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut data = self.data();
        // A key past its TTL did not exist: removed, not counted.
        Ok(keys
            .iter()
            .filter(|k| data.bytes.remove(*k).is_some_and(|(_, until)| until > now))
            .count() as u64)
    }
}

/// Redis' glob: `*`, `?`, `[abc]` (and `[^a]`, `[a-c]`), `\` escaping.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().position(|&c| c == b']') else {
                return false;
            };
            let Some((&c, tail)) = text.split_first() else {
                return false;
            };
            let (negate, set) = match &rest[..end] {
                [b'^', set @ ..] => (true, set),
                set => (false, set),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&rest[end + 1..], tail)
        }
        Some((b'\\', [escaped, rest @ ..])) => {
            text.first() == Some(escaped) && glob(rest, &text[1..])
        }
        Some((&c, rest)) => text.first() == Some(&c) && glob(rest, &text[1..]),
    }
}

/// A backplane over tokio broadcast channels, one per channel name; clones
/// share them.
#[derive(Clone, Default)]
pub struct ChannelBackplane {
    channels: Arc<Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>>,
}

impl ChannelBackplane {
    fn sender(&self, channel: &str) -> broadcast::Sender<Vec<u8>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(channel.to_string())
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }
}

impl Backplane for ChannelBackplane {
    async fn publish(&self, channel: &str, message: Vec<u8>) -> Result<(), StoreError> {
        // No subscriber is no error: nobody is there to miss it.
        let _ = self.sender(channel).send(message);
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, StoreError> {
        let receiver = self.sender(channel).subscribe();
        // A receiver that lagged lost messages: the subscription ends (lost).
        let messages = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.ok().map(|m| (m, receiver))
        });
        Ok(Subscription::new(messages))
    }
}

#[cfg(test)]
#[test]
fn globs_match_as_redis_does() {
    assert!(glob(b"app:*", b"app:users:1"));
    assert!(glob(b"a?c", b"abc"));
    assert!(!glob(b"a?c", b"ac"));
    assert!(glob(b"a[bc]d", b"acd"));
    assert!(glob(b"a[^b]d", b"acd"));
    assert!(glob(b"a\\*", b"a*"));
    assert!(!glob(b"a\\*", b"ab"));
}
