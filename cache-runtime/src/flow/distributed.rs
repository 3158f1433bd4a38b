//! `lock = "distributed"`: one load per key across the processes that share
//! the remote tier. The process-local leader takes the key's lock, re-reads
//! (another process may have written meanwhile) and loads; the others poll
//! the remote tier with backoff until the value appears, or take the lock
//! over when its holder died (the lock expires: holders extend it while they
//! load). A lock key that can never expire (no TTL, or another type) is taken
//! over by the first poll (see `remote::lock`), so only a live holder is
//! waited for. Waiting is bounded; past it the caller loads without the lock.

use std::any::TypeId;
use std::time::{Duration, Instant};

use super::missed::{Lead, Missed};
use crate::remote::lock::{LockGuard, LOAD_LOCK_TTL};
use crate::remote::read::{read_one, DecodeFn, How, RemoteRead};
use crate::remote::Remote;
use crate::Cache;

/// How long a caller waits for another process's load before loading itself.
const MAX_WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn lead_across_processes(
    cache: &Cache,
    mut lead: Lead,
    decode: DecodeFn,
    value_type: TypeId,
) -> Missed {
    let inner = &cache.inner;
    let lock_key = Remote::load_lock_key(&inner.config.namespace, &lead.key);
    let deadline = Instant::now() + MAX_WAIT;
    let mut backoff = Duration::from_millis(5);
    let how = How {
        decode,
        refreshable: lead.plan.refreshable,
    };
    loop {
        let lock = match LockGuard::try_take(cache, lock_key.clone(), LOAD_LOCK_TTL).await {
            Ok(lock) => lock,
            // The remote tier fails: load without it.
            Err(_) => return Missed::Lead(lead),
        };
        let taken = lock.is_some();
        if !taken {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
        match read_one(cache, &lead.key, &lead.tags, None, how).await {
            RemoteRead::Fresh(value) if value.type_id() == value_type => {
                if let Some(lock) = lock {
                    let _ = lock.release().await;
                }
                if crate::warm::counted(inner) {
                    inner
                        .observe
                        .counters
                        .count_get(lead.plan.counts, crate::stats::Got::RemoteHit);
                }
                if let Some(guard) = lead.guard.take() {
                    guard.complete(Some(value.to_shared()));
                }
                return Missed::Value(value, crate::events::GetResult::Hit);
            }
            // The remote tier fails: load without it (with the versions
            // read before the lock).
            RemoteRead::Miss { failed: true, .. } => return Missed::Lead(lead),
            RemoteRead::Miss {
                versions,
                fail_safe,
                failed: false,
            } => {
                if versions.is_some() {
                    lead.remote_versions = versions;
                }
                lead.fail_safe = lead.fail_safe.take().or(fail_safe);
            }
            RemoteRead::Fresh(_) | RemoteRead::Stale(_) => {}
        }
        if taken {
            lead.lock = lock;
            return Missed::Lead(lead);
        }
        if Instant::now() >= deadline {
            tracing::warn!(key = %lock_key, "waited too long for another process's load; loading here");
            return Missed::Lead(lead);
        }
    }
}
