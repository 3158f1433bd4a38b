//! The miss path: join the load of a key in progress, or lead a new one. Not
//! generic over the value type (it checks a `TypeId`), so it is compiled once
//! and boxed by `begin` without bloating every caller's future.

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::Instant;

use super::plan::Plan;
use super::{trace, Step, Ticket};
use crate::clock::now_millis;
use crate::flight::{Join, LeadGuard};
use crate::key::Key;
use crate::outcome::ReturnKind;
use crate::Cache;

type Shared = Arc<dyn Any + Send + Sync>;

/// How a miss ended.
pub(crate) enum Missed {
    /// A value of the caller's type: another caller's load, or an entry stored
    /// between the lookup and taking the lead.
    Value(Shared),
    /// The caller leads the load.
    Lead {
        key: Key,
        plan: Plan,
        tags: Vec<String>,
        guard: LeadGuard,
        fail_safe: Option<Shared>,
    },
}

impl Missed {
    pub(crate) fn into_step<M: ReturnKind<R>, R>(self, cache: &Cache) -> Step<M, R> {
        match self {
            Missed::Value(shared) => match shared.downcast_ref::<M::Value>() {
                Some(value) => Step::Hit(M::join(value.clone())),
                // `miss` checked the type; unreachable, but degrade rather than panic.
                None => Step::Load(Ticket::uncached(cache)),
            },
            Missed::Lead {
                key,
                plan,
                tags,
                guard,
                fail_safe,
            } => Step::Load(Ticket::new(cache, key, plan, tags, Some(guard), fail_safe)),
        }
    }
}

pub(crate) async fn miss(
    cache: &Cache,
    plan: Plan,
    key: Key,
    tags: Vec<String>,
    fail_safe: Option<Shared>,
    value_type: TypeId,
    started: Option<Instant>,
) -> Missed {
    let inner = &cache.inner;
    loop {
        match inner.flights.join(&key.repr) {
            Join::Lead(guard) => {
                // Another leader may have stored the value since our lookup.
                if let Some(entry) = inner.memory.get(&key.repr) {
                    let usable = (*entry.value).type_id() == value_type
                        && now_millis() < entry.fresh_until
                        && entry.tags.is_current();
                    if usable {
                        drop(guard);
                        trace(cache, &key, "hit after miss", started);
                        return Missed::Value(entry.value.clone());
                    }
                }
                trace(cache, &key, "miss, load", started);
                return Missed::Lead {
                    key,
                    plan,
                    tags,
                    guard,
                    fail_safe,
                };
            }
            Join::Wait(flight) => {
                inner.counters.coalesced.incr();
                if let Some(shared) = flight.wait().await {
                    if (*shared).type_id() == value_type {
                        trace(cache, &key, "miss, joined a load", started);
                        return Missed::Value(shared);
                    }
                }
                // The leader failed, was cancelled or panicked: try again, and
                // lead if nobody else does.
            }
        }
    }
}
