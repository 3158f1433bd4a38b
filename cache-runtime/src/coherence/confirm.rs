//! The periodic confirmation of tag versions that bounds how long a lost
//! backplane message can leave the memory tier stale; for a store without a
//! backplane, how other processes' invalidations are seen at all (within a
//! period and a round trip: well inside the contract's second).
//!
//! A few times a second, one read (an `MGET` per [`CHUNK`] tags) fetches the
//! remote version of every tag the memory tier, a load or a read holds. A tag
//! whose version moved without this process hearing of it (`TagSlot::confirm`)
//! drops the entries that carry it. The memory tier is used only while such a
//! round succeeded within the last `MAX_AGE_MS` (`Backplane::memory_trusted`):
//! while Redis is slow or away, reads go past memory to the remote tier, which
//! fails over to the function.
//!
//! The cost is one round trip per period and one key read per distinct tag
//! held, whatever the number of hits.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use super::key_writes;
use super::Host;
use crate::clock::now_millis;
use crate::remote::Remote;

/// How often tag versions are confirmed: well inside `MAX_AGE_MS`, so that
/// one slow round does not stop memory hits.
pub(crate) const PERIOD: Duration = Duration::from_millis(250);
/// Tags read per `MGET`.
const CHUNK: usize = 1024;

/// Starts confirming the tag versions of a cache with a memory tier and a
/// backplane; resolves after the first confirmation (or after `wait`).
pub(crate) async fn start<H: Host>(inner: &Arc<H>, wait: Duration) {
    if inner.coherence().backplane.is_none() || !inner.memory_enabled() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (first, confirmed) = oneshot::channel();
    handle.spawn(run(Arc::downgrade(inner), first));
    let _ = tokio::time::timeout(wait, confirmed).await;
}

async fn run<H: Host>(cache: Weak<H>, first: oneshot::Sender<()>) {
    let mut first = Some(first);
    loop {
        let Some(inner) = cache.upgrade() else { return };
        let Some(backplane) = &inner.coherence().backplane else {
            return;
        };
        if round(&*inner).await {
            if let Some(first) = first.take() {
                let _ = first.send(());
            }
        }
        // Woken early by a new subscription, so memory is used again soon.
        let wake = backplane.confirm_now.clone();
        drop(inner);
        let _ = tokio::time::timeout(PERIOD, wake.notified()).await;
    }
}

/// One confirmation; whether it succeeded.
async fn round<H: Host>(inner: &H) -> bool {
    let (Some(backplane), Some(remote)) = (&inner.coherence().backplane, inner.remote()) else {
        return false;
    };
    // Without a backplane there is nothing to wait for: these rounds are
    // what keeps memory current.
    if backplane.listening() && !backplane.subscribed() {
        return false;
    }
    let generation = backplane.generation();
    let sent_at = now_millis();
    // The write counter first: a number taken before this read and not
    // heard by the next round was lost.
    let counter = key_writes::counter_key(inner.namespace());
    match remote
        .call(inner.counters(), |s| s.counter_value(&counter))
        .await
    {
        Ok(value) => {
            let now = u64::try_from(value).unwrap_or(0);
            if !backplane.writes.confirm(now) {
                inner.clear_memory();
                tracing::warn!(namespace = %inner.namespace(), "a cache write message was lost; memory tier cleared");
            }
        }
        Err(_) => return false,
    }
    let slots = inner.tags().live();
    for chunk in slots.chunks(CHUNK) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|slot| Remote::tag_key(inner.namespace(), &slot.name))
            .collect();
        match remote.call(inner.counters(), |s| s.versions(&keys)).await {
            Ok(versions) if versions.len() == chunk.len() => {
                for (slot, version) in chunk.iter().zip(versions) {
                    slot.confirm(version);
                }
            }
            // Counted by `call`; memory stops being trusted when this goes on.
            _ => return false,
        }
    }
    backplane.confirmed(generation, sent_at);
    true
}
