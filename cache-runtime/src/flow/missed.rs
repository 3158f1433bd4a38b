//! How a miss ended, and the load a caller leads: what the miss path
//! (`slow`) and the distributed lock (`distributed`) hand back to `begin`.
//! Their own module, so those two depend on it and not on each other.

use super::plan::Plan;
use super::{Refresher, Step, Ticket};
use crate::events::GetResult;
use crate::flight::LeadGuard;
use crate::key::Key;
use crate::memory::Entry;
use crate::outcome::ReturnKind;
use crate::remote::lock::LockGuard;
use crate::value::{SharedValue, Value};
use crate::Cache;

/// How a miss ended.
pub(crate) enum Missed {
    /// A value of the caller's type: another caller's load or an entry
    /// stored meanwhile (`Miss`: the call missed), or a fresh remote entry
    /// (`Hit`).
    Value(Value, GetResult),
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
    pub(crate) fail_safe: Option<SharedValue>,
    pub(crate) remote_versions: Option<Vec<u64>>,
    /// The distributed lock, when this caller loads for every process.
    pub(crate) lock: Option<LockGuard>,
}

impl Missed {
    pub(crate) fn into_step<M: ReturnKind<R>, R>(self, cache: &Cache) -> Step<M, R> {
        match self {
            // Moved out when nobody else holds it (a storage-only hit).
            Missed::Value(value, _) => match value.take::<M::Value>() {
                Ok(value) => Step::Hit(M::join(value)),
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
