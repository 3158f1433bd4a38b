//! Tag versions: invalidating a tag bumps one counter, whatever the number of
//! entries that carry it (O(1)). An entry records the version of each of its
//! tags when its load began, and is valid only while they are all current, so
//! an invalidation during a load makes the loaded entry born invalid.
//!
//! The registry holds tags weakly: a tag lives as long as some entry (or load in
//! progress) carries it. A tag nobody carries has nothing to invalidate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// One tag's version counter.
#[derive(Debug)]
pub(crate) struct TagSlot {
    pub(crate) name: Box<str>,
    version: AtomicU64,
}

impl TagSlot {
    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// The tags of an entry with the versions they had when its load began.
/// Shared, so that copying an entry out of the memory tier (stale hits,
/// refreshes) costs a reference count, not an allocation; `None` for no tags.
#[derive(Debug, Default, Clone)]
pub(crate) struct TagSnapshot(Option<Arc<[TagAt]>>);

/// A tag and the version it had.
type TagAt = (Arc<TagSlot>, u64);

impl TagSnapshot {
    fn from_vec(tags: Vec<TagAt>) -> TagSnapshot {
        TagSnapshot((!tags.is_empty()).then(|| tags.into()))
    }

    fn iter(&self) -> std::slice::Iter<'_, TagAt> {
        self.0.as_deref().unwrap_or_default().iter()
    }

    /// Whether no tag of the entry was invalidated since the snapshot.
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        match &self.0 {
            None => true,
            Some(tags) => tags.iter().all(|(slot, v)| slot.version() == *v),
        }
    }

    /// The tag names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.iter().map(|(slot, _)| slot.name.to_string()).collect()
    }

    /// The same tags at their current versions (a refresh's new snapshot).
    pub(crate) fn renewed(&self) -> TagSnapshot {
        TagSnapshot::from_vec(
            self.iter()
                .map(|(slot, _)| (slot.clone(), slot.version()))
                .collect(),
        )
    }
}

/// The version counters of one cache's tags.
pub(crate) struct TagRegistry {
    inner: Mutex<Registry>,
}

struct Registry {
    slots: HashMap<Box<str>, Weak<TagSlot>>,
    prune_at: usize,
}

const MIN_PRUNE_AT: usize = 1024;

impl TagRegistry {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Registry {
                slots: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }

    /// Snapshots the current versions of `names` (creating tags not seen yet).
    pub(crate) fn snapshot<S: AsRef<str>>(&self, names: &[S]) -> TagSnapshot {
        if names.is_empty() {
            return TagSnapshot::default();
        }
        let mut reg = self.inner.lock();
        let mut out: Vec<TagAt> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            if out.iter().any(|(s, _)| &*s.name == name) {
                continue;
            }
            let slot = reg.slot(name);
            let version = slot.version();
            out.push((slot, version));
        }
        TagSnapshot::from_vec(out)
    }

    /// Invalidates a tag: every entry carrying it becomes a miss. Returns whether
    /// any entry or load carried it.
    pub(crate) fn invalidate(&self, name: &str) -> bool {
        let slot = self.inner.lock().slots.get(name).and_then(Weak::upgrade);
        match slot {
            Some(slot) => {
                slot.version.fetch_add(1, Ordering::AcqRel);
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().slots.len()
    }
}

impl Registry {
    fn slot(&mut self, name: &str) -> Arc<TagSlot> {
        if let Some(slot) = self.slots.get(name).and_then(Weak::upgrade) {
            return slot;
        }
        let slot = Arc::new(TagSlot {
            name: name.into(),
            version: AtomicU64::new(0),
        });
        self.slots.insert(name.into(), Arc::downgrade(&slot));
        if self.slots.len() >= self.prune_at {
            self.slots.retain(|_, weak| weak.strong_count() > 0);
            self.prune_at = (self.slots.len() * 2).max(MIN_PRUNE_AT);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_makes_snapshots_old() {
        let reg = TagRegistry::new();
        let snap = reg.snapshot(&["a", "b"]);
        assert!(snap.is_current());
        assert!(reg.invalidate("b"));
        assert!(!snap.is_current());
        assert!(snap.renewed().is_current());
    }

    #[test]
    fn unknown_tags_invalidate_nothing() {
        let reg = TagRegistry::new();
        assert!(!reg.invalidate("nobody"));
    }

    #[test]
    fn dead_tags_are_pruned() {
        let reg = TagRegistry::new();
        for i in 0..5000 {
            drop(reg.snapshot(&[format!("t{i}")]));
        }
        assert!(reg.len() < 2 * MIN_PRUNE_AT, "{}", reg.len());
        let kept = reg.snapshot(&["kept"]);
        for i in 0..5000 {
            drop(reg.snapshot(&[format!("u{i}")]));
        }
        assert!(reg.invalidate("kept"));
        assert!(!kept.is_current());
    }
}
