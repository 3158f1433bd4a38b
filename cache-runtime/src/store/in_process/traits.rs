//! The store traits, implemented over the shared backend: each call counts,
//! meets its handle's faults, then runs atomically on the backend.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::faults::Link;
use super::{InProcessNode, InProcessStore, Op};
use crate::store::{
    Backplane, CounterStore, EntryStore, Fetch, Fetched, LockStore, ScanNode, ScanStore,
    StoreError, Subscription, TagStore,
};

impl EntryStore for InProcessStore {
    async fn fetch(&self, request: Fetch<'_>) -> Result<Fetched, StoreError> {
        self.enter(Op::Fetch).await?;
        let (entry, versions) = self.backend.fetch(
            &self.link.repaired,
            &request.entry_key(),
            request.tag_keys(),
        );
        Ok(Fetched::new(entry, versions))
    }

    async fn fetch_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.enter(Op::FetchMany).await?;
        Ok(self.backend.fetch_many(keys))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        self.enter(Op::Put).await?;
        self.backend.put_many(vec![(key.to_string(), bytes, ttl)]);
        Ok(())
    }

    async fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> Result<(), StoreError> {
        self.enter(Op::PutMany).await?;
        self.backend.put_many(items);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.enter(Op::Delete).await?;
        Ok(self.backend.delete(key))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.enter(Op::Ping).await
    }

    fn take_repairs(&self) -> u64 {
        // Per handle: each process reports the repairs it made.
        self.link
            .repaired
            .swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

impl TagStore for InProcessStore {
    async fn versions(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        self.enter(Op::Versions).await?;
        Ok(self.backend.versions(&self.link.repaired, tag_keys))
    }

    async fn bump(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        self.enter(Op::Bump).await?;
        Ok(self.backend.bump(&self.link.repaired, tag_keys))
    }
}

impl LockStore for InProcessStore {
    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.enter(Op::TryLock).await?;
        Ok(self.backend.try_lock(&self.link.repaired, key, token, ttl))
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.enter(Op::ExtendLock).await?;
        Ok(self.backend.extend_lock(key, token, ttl))
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        self.enter(Op::Unlock).await?;
        Ok(self.backend.unlock(key, token))
    }
}

impl CounterStore for InProcessStore {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.enter(Op::Increment).await?;
        self.backend.increment(key, delta)
    }
}

impl ScanStore for InProcessStore {
    type Node = InProcessNode;

    async fn scan_nodes(&self) -> Result<Vec<InProcessNode>, StoreError> {
        self.enter(Op::ScanNodes).await?;
        Ok((0..self.backend.nodes())
            .map(|index| InProcessNode {
                store: self.clone(),
                index,
            })
            .collect())
    }
}

impl ScanNode for InProcessNode {
    async fn scan(
        &self,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        self.store.enter(Op::Scan).await?;
        Ok(self.store.backend.scan(self.index, cursor, pattern, count))
    }

    async fn unlink(&self, keys: &[String]) -> Result<u64, StoreError> {
        self.store.enter(Op::Unlink).await?;
        Ok(self.store.backend.unlink(self.index, keys))
    }
}

impl Backplane for InProcessStore {
    async fn publish(&self, channel: &str, message: Vec<u8>) -> Result<(), StoreError> {
        self.enter(Op::Publish).await?;
        self.backend.publish(channel, message);
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, StoreError> {
        self.enter(Op::Subscribe).await?;
        // The epoch first: a partition that starts from here on ends it.
        let epoch = self.link.epoch();
        if self.link.partitioned() {
            return Err(StoreError::Connection(
                "partitioned from the store".to_string(),
            ));
        }
        let receiver = self.backend.subscribe(channel);
        let state = Listener {
            receiver,
            epoch,
            link: Arc::clone(&self.link),
        };
        Ok(Subscription::new(futures_util::stream::unfold(
            state,
            Listener::next,
        )))
    }
}

/// One subscription's state: its channel, and its handle's epoch and faults.
struct Listener {
    receiver: broadcast::Receiver<Vec<u8>>,
    epoch: watch::Receiver<u64>,
    link: Arc<Link>,
}

impl Listener {
    /// The next message to deliver, or `None` when the subscription ends
    /// (its handle's connection dropped, or it fell too far behind).
    async fn next(mut self) -> Option<(Vec<u8>, Self)> {
        loop {
            let message = tokio::select! {
                biased;
                _ = self.epoch.changed() => return None,
                received = self.receiver.recv() => received.ok()?,
            };
            let (lost, delay) = self.link.on_message();
            if lost {
                continue;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            return Some((message, self));
        }
    }
}
