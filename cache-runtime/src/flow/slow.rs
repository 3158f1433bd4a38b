//! The miss path: join the load of a key in progress, or lead it: read the
//! remote tier, and if that misses too, hand the load to the caller. Not
//! generic over the value type (it checks a `TypeId` and decodes through a
//! function pointer), so it is compiled once and boxed by `begin` without
//! bloating every caller's future.

use std::any::TypeId;
use std::sync::Arc;
use std::time::Instant;

use super::distributed::lead_across_processes;
use super::plan::Plan;
use super::remote_read::{read, DecodeFn, RemoteRead, Shared};
use super::{trace, Refresher, Step, Ticket};
use crate::clock::now_millis;
use crate::flight::{Join, LeadGuard};
use crate::key::Key;
use crate::memory::Entry;
use crate::outcome::ReturnKind;
use crate::remote::lock::LockGuard;
use crate::Cache;

/// How a miss ended.
pub(crate) enum Missed {
    /// A value of the caller's type: another caller's load, an entry stored
    /// meanwhile, or a fresh remote entry.
    Value(Shared),
    /// A stale remote entry: served, refreshed in the background by whoever
    /// holds `guard`.
    Stale {
        entry: Entry,
        key: Key,
        plan: Plan,
        guard: Option<LeadGuard>,
    },
    /// The caller runs the function.
    Lead(Lead),
}

pub(crate) struct Lead {
    pub(crate) key: Key,
    pub(crate) plan: Plan,
    pub(crate) tags: Vec<String>,
    pub(crate) guard: Option<LeadGuard>,
    pub(crate) fail_safe: Option<Shared>,
    pub(crate) remote_versions: Option<Vec<u64>>,
    /// The distributed lock, when this caller loads for every process.
    pub(crate) lock: Option<LockGuard>,
}

impl Missed {
    pub(crate) fn into_step<M: ReturnKind<R>, R>(self, cache: &Cache) -> Step<M, R> {
        match self {
            Missed::Value(shared) => match shared.downcast::<M::Value>() {
                // Moved out when nobody else holds it (a storage-only hit).
                Ok(value) => Step::Hit(M::join(
                    Arc::try_unwrap(value).unwrap_or_else(|value| (*value).clone()),
                )),
                // `miss` checked the type; unreachable, but degrade rather than panic.
                Err(_) => Step::Load(Ticket::uncached(cache)),
            },
            Missed::Stale {
                entry,
                key,
                plan,
                guard,
            } => match entry.value.downcast_ref::<M::Value>() {
                Some(value) => {
                    let value = M::join(value.clone());
                    match guard {
                        Some(guard) => Step::Refresh(
                            value,
                            Refresher::new(cache, key, plan, guard, Some(entry)),
                        ),
                        None => Step::Hit(value),
                    }
                }
                None => Step::Load(Ticket::uncached(cache)),
            },
            Missed::Lead(lead) => Step::Load(Ticket::new(cache, lead)),
        }
    }
}

/// What `miss` needs to know about the call.
pub(crate) struct MissCall {
    pub(crate) plan: Plan,
    pub(crate) key: Key,
    pub(crate) tags: Vec<String>,
    pub(crate) fail_safe: Option<Shared>,
    pub(crate) value_type: TypeId,
    pub(crate) decode: DecodeFn,
    pub(crate) started: Option<Instant>,
}

pub(crate) async fn miss(cache: &Cache, call: MissCall) -> Missed {
    let inner = &cache.inner;
    let MissCall {
        plan,
        key,
        tags,
        fail_safe,
        value_type,
        decode,
        started,
    } = call;
    let guard = if plan.single_flight {
        loop {
            match inner.flights.join(&key.repr) {
                Join::Lead(guard) => break Some(guard),
                Join::Wait(flight) => {
                    inner.counters.coalesced.incr();
                    // Boxed: waiting is rare, and keeps the hit's future small.
                    if let Some(shared) = Box::pin(flight.wait()).await {
                        if (*shared).type_id() == value_type {
                            trace(cache, &key, "miss, joined a load", started);
                            return Missed::Value(shared);
                        }
                    }
                    // The leader failed, was cancelled or panicked: try again,
                    // and lead if nobody else does.
                }
            }
        }
    } else {
        None
    };
    // Another leader may have stored the value since our lookup.
    if let Some(entry) = inner.memory_get(&key.repr) {
        let usable = entry.value.type_id() == value_type
            && now_millis() < entry.fresh_until
            && entry.tags.is_current();
        if usable {
            drop(guard);
            trace(cache, &key, "hit after miss", started);
            return Missed::Value(entry.value.to_shared());
        }
    }
    match read(cache, &key, &tags, &plan, decode).await {
        RemoteRead::Fresh(value) if (*value).type_id() == value_type => {
            inner.counters.remote_hits.incr();
            trace(cache, &key, "remote hit", started);
            if let Some(guard) = guard {
                guard.complete(Some(value.clone()));
            }
            // Completing the flight dropped its copy unless someone waits, so
            // the value can usually be moved out instead of cloned.
            Missed::Value(value)
        }
        RemoteRead::Stale(entry) if entry.value.type_id() == value_type => {
            inner.counters.stale_hits.incr();
            trace(cache, &key, "remote stale hit", started);
            // Waiters get the stale value now; the refresh leads a new flight.
            if let Some(guard) = guard {
                guard.complete(Some(entry.value.to_shared()));
            }
            let guard = inner.flights.try_lead(&key.repr);
            Missed::Stale {
                entry,
                key,
                plan,
                guard,
            }
        }
        RemoteRead::Fresh(_) | RemoteRead::Stale(_) => {
            inner.counters.decode_errors.incr();
            Missed::Lead(Lead {
                key,
                plan,
                tags,
                guard,
                fail_safe,
                remote_versions: None,
                lock: None,
            })
        }
        RemoteRead::Miss {
            fail_safe: remote_fail_safe,
            versions,
        } => {
            trace(cache, &key, "miss, load", started);
            let distributed = plan.distributed && versions.is_some();
            let lead = Lead {
                key,
                plan,
                tags,
                guard,
                fail_safe: fail_safe.or(remote_fail_safe),
                remote_versions: versions,
                lock: None,
            };
            if distributed {
                // Boxed: a rare path, kept out of every remote hit's future.
                Box::pin(lead_across_processes(cache, lead, decode, value_type)).await
            } else {
                Missed::Lead(lead)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    /// The miss future is boxed on every remote hit. Kept under 1 KiB, the
    /// allocation stays in malloc's per-thread cache: above it, remote hits
    /// on several threads contended for the allocator's arena lock.
    #[test]
    fn the_boxed_miss_future_stays_under_a_kilobyte() {
        let cache = Cache::memory(10);
        let call = MissCall {
            plan: Plan::from_policy(&Policy::default(), &cache, false),
            key: Key::manual("k"),
            tags: Vec::new(),
            fail_safe: None,
            value_type: TypeId::of::<u8>(),
            decode: super::super::decode_shared::<u8>,
            started: None,
        };
        let future = miss(&cache, call);
        assert!(
            std::mem::size_of_val(&future) <= 1024,
            "{} bytes",
            std::mem::size_of_val(&future)
        );
    }
}
