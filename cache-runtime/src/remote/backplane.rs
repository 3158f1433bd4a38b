//! The backplane: invalidations travel on a Redis pub/sub channel per
//! namespace, so other processes' memory tiers drop affected entries, and
//! their known tag versions rise, within milliseconds. Messages sent while a
//! subscriber is disconnected are lost, so a process trusts neither its
//! memory tier nor the tag versions it knows from a disconnect until it has
//! subscribed again, and then clears both.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{oneshot, Notify};

use super::known::KnownVersions;
use crate::cache::Inner;

/// One message: who sent it, the tags it invalidates and their new versions
/// (in the same order; absent from messages of earlier builds, which makes
/// receivers forget those tags' versions instead).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Message {
    origin: u64,
    tags: Vec<String>,
    #[serde(default)]
    versions: Vec<u64>,
}

pub(crate) fn encode(origin: u64, tags: &[String], versions: &[u64]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let message = Message {
        origin,
        tags: tags.to_vec(),
        versions: versions.to_vec(),
    };
    ciborium::into_writer(&message, &mut out).ok()?;
    Some(out)
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Message> {
    ciborium::from_reader(bytes).ok()
}

/// The channel of a namespace.
pub(crate) fn channel(namespace: &str) -> String {
    format!("{namespace}#invalidations")
}

/// A cache's side of the backplane.
pub(crate) struct Backplane {
    /// Identifies this cache's own messages.
    pub(crate) origin: u64,
    trusted: AtomicBool,
    /// The tags' versions this process knows, trusted while subscribed.
    pub(crate) known: KnownVersions,
    shutdown: Arc<Notify>,
}

impl Backplane {
    /// Keeps the versions of up to `known_tags` tags.
    pub(crate) fn new(known_tags: usize) -> Self {
        Self {
            origin: fastrand::u64(..),
            trusted: AtomicBool::new(false),
            known: KnownVersions::new(known_tags),
            shutdown: Arc::new(Notify::new()),
        }
    }

    /// Whether the memory tier may be trusted: subscribed since it was last
    /// cleared.
    #[inline]
    pub(crate) fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }
}

impl Drop for Backplane {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}

/// Starts the subscriber task; resolves once the first subscription is up
/// (or after `wait`, whichever is first).
pub(crate) async fn start(inner: &Arc<Inner>, clients: Vec<redis::Client>, wait: Duration) {
    let Some(backplane) = &inner.backplane else {
        return;
    };
    let (ready, subscribed) = oneshot::channel();
    let shutdown = backplane.shutdown.clone();
    let task = subscriber(
        Arc::downgrade(inner),
        clients,
        channel(&inner.namespace),
        ready,
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = task => {}
            _ = shutdown.notified() => {}
        }
    });
    let _ = tokio::time::timeout(wait, subscribed).await;
}

/// Subscribes through `clients` in turn (a cluster's nodes: PUBLISH reaches
/// every node of a cluster), resubscribing after each disconnect.
async fn subscriber(
    cache: Weak<Inner>,
    clients: Vec<redis::Client>,
    channel: String,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    let mut next = 0usize;
    loop {
        let Some(client) = clients.get(next % clients.len().max(1)) else {
            return;
        };
        next = next.wrapping_add(1);
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                backoff = Duration::from_millis(50);
                {
                    let Some(inner) = cache.upgrade() else { return };
                    // Invalidations may have been missed while unsubscribed.
                    inner.memory.clear();
                    if let Some(b) = &inner.backplane {
                        b.known.set_trusted(true);
                        b.trusted.store(true, Ordering::Release);
                    }
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(inner) = cache.upgrade() else { return };
                    apply(&inner, message.get_payload_bytes());
                }
            }
        }
        let Some(inner) = cache.upgrade() else { return };
        if let Some(b) = &inner.backplane {
            b.known.set_trusted(false);
            if b.trusted.swap(false, Ordering::AcqRel) {
                inner.counters.store_errors.incr();
                tracing::warn!(namespace = %inner.namespace, "cache backplane disconnected; memory tier not trusted until it reconnects");
            }
        }
        inner.memory.clear();
        drop(inner);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn apply(inner: &Inner, payload: &[u8]) {
    let Some(message) = decode(payload) else {
        inner.counters.decode_errors.incr();
        return;
    };
    let Some(backplane) = &inner.backplane else {
        return;
    };
    if backplane.origin == message.origin {
        return;
    }
    let with_versions = message.versions.len() == message.tags.len();
    for (i, tag) in message.tags.iter().enumerate() {
        inner.tags.invalidate(tag);
        let version = with_versions.then(|| message.versions[i]);
        backplane.known.heard(tag, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_rejected() {
        let bytes = encode(7, &["a".into(), "b:c".into()], &[3, 4]).unwrap();
        let m = decode(&bytes).unwrap();
        assert_eq!(
            (m.origin, m.tags, m.versions),
            (7, vec!["a".to_string(), "b:c".to_string()], vec![3, 4])
        );
        assert!(decode(b"\xff\x00garbage").is_none());
    }

    #[test]
    fn messages_without_versions_still_decode() {
        #[derive(serde::Serialize)]
        struct Before {
            origin: u64,
            tags: Vec<String>,
        }
        let mut bytes = Vec::new();
        let before = Before {
            origin: 1,
            tags: vec!["a".into()],
        };
        ciborium::into_writer(&before, &mut bytes).unwrap();
        let m = decode(&bytes).unwrap();
        assert_eq!((m.tags, m.versions), (vec!["a".to_string()], vec![]));
    }
}
