//! The miss path: join the load of a key in progress, or lead it: read the
//! remote tier, and if that misses too, hand the load to the caller. Not
//! generic over the value type (it checks a `TypeId` and decodes through a
//! function pointer), so it is compiled once and boxed by `begin` without
//! bloating every caller's future.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use super::distributed::lead_across_processes;
use super::missed::{Lead, Missed};
use super::plan::Plan;
use super::trace;
use crate::clock::now_millis;
use crate::events::{Call, FaultKind, GetResult};
use crate::flight::{Join, LeadGuard};
use crate::key::Key;
use crate::remote::read::{read_one, DecodeFn, How, RemoteRead};
use crate::stats::Got;
use crate::tags::TagSnapshot;
use crate::value::{SharedValue, Value};
use crate::Cache;

/// What `miss` needs to know about the call.
pub(crate) struct MissCall {
    pub(crate) plan: Plan,
    pub(crate) key: Key,
    pub(crate) tags: Vec<String>,
    pub(crate) fail_safe: Option<SharedValue>,
    pub(crate) value_type: TypeId,
    pub(crate) decode: DecodeFn,
    pub(crate) started: Option<Instant>,
}

/// Tells the listeners what a call on the miss path found (its one get
/// event: a remote hit is a hit), where it is decided.
/// Tells the listeners of a get, unless it is a warm run's (not traffic).
pub(crate) fn told(cache: &Cache, plan: &Plan, key: &Key, result: GetResult) {
    let inner = &cache.inner;
    if crate::warm::counted(inner) {
        inner.tell(|events| events.get(Call::new(plan.function, key), result));
    }
}

pub(crate) async fn miss(cache: &Cache, call: MissCall) -> Missed {
    let inner = &cache.inner;
    let (decode, value_type) = (call.decode, call.value_type);
    let how = How {
        decode,
        refreshable: call.plan.refreshable,
    };
    // Storage-only, every hit reads the remote tier: a flight would only
    // spare reads of one key wanted by many callers at once, and costs every
    // hit its bookkeeping. So read first, and join the flight only on a miss.
    // With a memory tier, the flight's one read serves every waiter and fills
    // memory for the calls after them.
    // A miss read before the flight: its fail-safe value and tag versions.
    let mut earlier = None;
    if !inner.tiers.memory.is_enabled() {
        match read_one(cache, &call.key, &call.tags, None, how).await {
            miss @ RemoteRead::Miss { .. } => earlier = Some(miss),
            read => {
                // A hit, or a value of another type (read again below).
                let hit = match &read {
                    RemoteRead::Fresh(value) => value.type_id() == value_type,
                    RemoteRead::Stale(entry) => entry.value.type_id() == value_type,
                    RemoteRead::Miss { .. } => false,
                };
                if hit {
                    return match settle(cache, read, None, call) {
                        Settled::Done(missed) => missed,
                        Settled::Distributed(lead) => {
                            lead_distributed(cache, lead, decode, value_type).await
                        }
                    };
                }
            }
        }
    }
    // Before the flight and the read: an invalidation after this point makes
    // what they bring born invalid, and keeps later callers off the flight.
    let snapshot = inner.tags.snapshot(&call.tags);
    let guard = match join_flight(
        cache,
        &call.key,
        &call.plan,
        call.value_type,
        call.started,
        &snapshot,
    )
    .await
    {
        Ok(guard) => guard,
        Err(missed) => return missed,
    };
    // Another leader may have stored the value since our lookup.
    if let Some(entry) = inner.memory_get(&call.key.repr) {
        let usable = entry.value.type_id() == call.value_type
            && now_millis() < entry.fresh_until
            && entry.tags.is_current();
        if usable {
            drop(guard);
            trace(cache, &call.key, "hit after miss", call.started);
            told(cache, &call.plan, &call.key, GetResult::Miss);
            return Missed::Value(entry.value, GetResult::Miss);
        }
    }
    let read = match earlier {
        // Read again, now that no other load of the key runs here: one may
        // have ended since. Not when the remote tier failed (that costs a
        // second timeout), nor under the distributed lock (it reads again
        // once it holds the lock).
        Some(miss) if failed(&miss) || call.plan.distributed => miss,
        _ => read_one(cache, &call.key, &call.tags, Some(&snapshot), how).await,
    };
    match settle(cache, read, guard, call) {
        Settled::Done(missed) => missed,
        Settled::Distributed(lead) => lead_distributed(cache, lead, decode, value_type).await,
    }
}

/// Boxed: a rare path, kept out of every remote hit's future. Tells the
/// call's get event once the lock's re-read decided it.
fn lead_distributed<'a>(
    cache: &'a Cache,
    lead: Lead,
    decode: DecodeFn,
    value_type: TypeId,
) -> Pin<Box<dyn Future<Output = Missed> + Send + 'a>> {
    Box::pin(async move {
        let call = cache
            .inner
            .observe
            .get_events
            .then(|| (lead.plan, lead.key.clone()));
        let missed = lead_across_processes(cache, lead, decode, value_type).await;
        if let Some((plan, key)) = call {
            let result = match &missed {
                Missed::Value(_, result) => *result,
                Missed::Stale { .. } => GetResult::Stale,
                Missed::Lead(_) => GetResult::Miss,
            };
            told(cache, &plan, &key, result);
        }
        missed
    })
}

/// What [`settle`] decided.
enum Settled {
    Done(Missed),
    /// Load under the distributed lock.
    Distributed(Lead),
}

/// Acts on what the remote tier held: serves a hit of the caller's type, or
/// hands the load to the caller.
fn settle(cache: &Cache, read: RemoteRead, guard: Option<LeadGuard>, call: MissCall) -> Settled {
    let inner = &cache.inner;
    let MissCall {
        plan,
        key,
        tags,
        fail_safe,
        value_type,
        decode: _,
        started,
    } = call;
    match read {
        RemoteRead::Fresh(value) if value.type_id() == value_type => {
            if crate::warm::counted(inner) {
                inner
                    .observe
                    .counters
                    .count_get(plan.counts, Got::RemoteHit);
                told(cache, &plan, &key, GetResult::Hit);
            }
            trace(cache, &key, "remote hit", started);
            if let Some(guard) = guard {
                guard.complete(Some(value.to_shared()));
            }
            // Completing the flight dropped its copy unless someone waits, so
            // the value can usually be moved out instead of cloned.
            Settled::Done(Missed::Value(value, GetResult::Hit))
        }
        RemoteRead::Stale(entry) if entry.value.type_id() == value_type => {
            if crate::warm::counted(inner) {
                inner.observe.counters.count_get(plan.counts, Got::Stale);
                told(cache, &plan, &key, GetResult::Stale);
            }
            trace(cache, &key, "remote stale hit", started);
            // Waiters get the stale value now; the refresh leads a new flight.
            if let Some(guard) = guard {
                guard.complete(Some(entry.value.to_shared()));
            }
            let guard = inner.flights.try_lead(&key.repr, entry.tags.renewed());
            Settled::Done(Missed::Stale {
                entry,
                key,
                plan,
                guard,
            })
        }
        RemoteRead::Fresh(_) | RemoteRead::Stale(_) => {
            inner.observe.counters.fault(FaultKind::Decode);
            told(cache, &plan, &key, GetResult::Miss);
            Settled::Done(Missed::Lead(Lead {
                key,
                plan,
                tags,
                guard,
                fail_safe,
                remote_versions: None,
                lock: None,
            }))
        }
        RemoteRead::Miss {
            fail_safe: remote_fail_safe,
            versions,
            failed,
        } => {
            trace(cache, &key, "miss, load", started);
            // The lock's re-read would fail too: load here.
            let distributed = plan.distributed && !failed;
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
                Settled::Distributed(lead)
            } else {
                told(cache, &lead.plan, &lead.key, GetResult::Miss);
                Settled::Done(Missed::Lead(lead))
            }
        }
    }
}

/// Whether `read` is a miss because the remote tier was not read.
fn failed(read: &RemoteRead) -> bool {
    matches!(read, RemoteRead::Miss { failed: true, .. })
}

/// Joins the load of `key` in progress, or leads one: `Ok` with the guard
/// to lead with (`None` without single flight, or when an invalidation
/// overtook the load in progress), `Err` with another load's value.
async fn join_flight(
    cache: &Cache,
    key: &Key,
    plan: &Plan,
    value_type: TypeId,
    started: Option<Instant>,
    snapshot: &TagSnapshot,
) -> Result<Option<LeadGuard>, Missed> {
    if !plan.single_flight {
        return Ok(None);
    }
    let inner = &cache.inner;
    loop {
        match inner.flights.join(&key.repr, snapshot.clone()) {
            Join::Lead(guard) => return Ok(Some(guard)),
            Join::Alone => return Ok(None),
            Join::Wait(flight) => {
                inner.observe.counters.coalesced.incr();
                inner.tell(|events| events.coalesced(Call::new(plan.function, key)));
                // Boxed: waiting is rare, and keeps the hit's future small.
                if let Some(shared) = Box::pin(flight.wait()).await {
                    if (*shared).type_id() == value_type {
                        trace(cache, key, "miss, joined a load", started);
                        told(cache, plan, key, GetResult::Miss);
                        return Err(Missed::Value(Value::from_shared(shared), GetResult::Miss));
                    }
                }
                // The leader failed, was cancelled or panicked: try again,
                // and lead if nobody else does.
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
            decode: crate::remote::read::decode_for::<u8>,
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
