//! Writing a loaded value.

use std::any::Any;
use std::sync::Arc;

use super::plan::Plan;
use crate::clock::now_millis;
use crate::key::Repr;
use crate::memory::Entry;
use crate::tags::TagSnapshot;
use crate::Cache;

/// Stores `value` under `key`, with the tag versions seen before the load began.
pub(crate) fn store(
    cache: &Cache,
    key: &Repr,
    value: Arc<dyn Any + Send + Sync>,
    plan: &Plan,
    tags: TagSnapshot,
    load_millis: u64,
) {
    let now = now_millis();
    let (fresh_until, stale_until, fail_safe_until) = plan.deadlines(now);
    cache.inner.memory.insert(
        key.clone(),
        Entry {
            value,
            fresh_until,
            stale_until,
            fail_safe_until,
            load_millis,
            tags,
        },
    );
}
