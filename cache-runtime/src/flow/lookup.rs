//! What the memory tier holds for a key, judged at one moment.

use std::any::Any;
use std::sync::Arc;

use super::plan::Plan;
use crate::memory::Entry;
use crate::tags::TagSnapshot;

pub(crate) enum Found<V> {
    /// Fresh; `early` (the entry's tags, renewed) when XFetch chose this
    /// call to refresh ahead of expiry.
    Fresh {
        value: V,
        early: Option<TagSnapshot>,
    },
    /// Past its TTL, inside the stale window.
    Stale { value: V, tags_entry: Entry },
    /// Expired, or stale without a way to refresh: a miss, with the old value
    /// kept for fail-safe when still inside that window.
    Miss {
        fail_safe: Option<Arc<dyn Any + Send + Sync>>,
    },
}

impl<V> Found<V> {
    /// Nothing usable, no fail-safe value.
    pub(crate) const fn absent() -> (Found<V>, bool) {
        (Found::Miss { fail_safe: None }, false)
    }
}

/// Judges `entry` at `now` under `plan`. Called under the memory shard's read
/// lock: it clones the value it returns and, only off the hit path, the entry.
#[inline]
pub(crate) fn judge_memory<V: Clone + 'static>(
    entry: &Entry,
    plan: &Plan,
    now: u64,
) -> (Found<V>, bool) {
    let Some(value) = entry.value.downcast_ref::<V>() else {
        // Another type under the same key (two functions sharing a template key).
        return (Found::Miss { fail_safe: None }, true);
    };
    if !entry.tags.is_current() {
        return (Found::Miss { fail_safe: None }, false);
    }
    if now < entry.fresh_until {
        let early =
            (plan.beta > 0.0 && xfetch(now, entry, plan.beta)).then(|| entry.tags.renewed());
        return (
            Found::Fresh {
                value: value.clone(),
                early,
            },
            false,
        );
    }
    if plan.refreshable && now < entry.stale_until {
        return (
            Found::Stale {
                value: value.clone(),
                tags_entry: entry.clone(),
            },
            false,
        );
    }
    let fail_safe = (now < entry.fail_safe_until).then(|| entry.value.to_shared());
    (Found::Miss { fail_safe }, false)
}

/// The value of `entry` if it is fresh at `now`, of type `V` and not
/// invalidated: [`judge_memory`]'s first outcome, without the rest.
#[inline(always)]
pub(crate) fn fresh_value<V: Clone + 'static>(entry: &Entry, now: u64) -> Option<V> {
    if now >= entry.fresh_until || !entry.tags.is_current() {
        return None;
    }
    entry.value.downcast_ref::<V>().cloned()
}

/// XFetch (Vattani et al., VLDB 2015): refresh early with a probability that
/// grows as expiry nears, scaled by how long the last load took.
fn xfetch(now: u64, entry: &Entry, beta: f64) -> bool {
    let u = 1.0 - fastrand::f64(); // in (0, 1]
    let gap = -(entry.load_millis.max(1) as f64) * beta * u.ln();
    now as f64 + gap >= entry.fresh_until as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fresh: u64, load_millis: u32) -> Entry {
        Entry {
            value: crate::memory::Value::new(1u8),
            fresh_until: fresh,
            stale_until: fresh,
            fail_safe_until: fresh,
            load_millis,
            tags: TagSnapshot::default(),
            weight: 0,
        }
    }

    #[test]
    fn xfetch_rarely_refreshes_far_from_expiry_and_mostly_near_it() {
        let far = (0..1000)
            .filter(|_| xfetch(0, &entry(1_000_000, 10), 1.0))
            .count();
        let near = (0..1000)
            .filter(|_| xfetch(999_995, &entry(1_000_000, 10), 1.0))
            .count();
        assert_eq!(far, 0);
        assert!(near > 500, "{near}");
    }
}
