//! Tag versions: invalidating a tag bumps one counter, whatever the number of
//! entries that carry it (O(1)). An entry records the version of each of its
//! tags when its load (or its remote read) began, and is valid only while
//! they are all current, so an invalidation during a load or a read makes
//! the entry born invalid.
//!
//! With a remote tier, each tag also remembers the highest version Redis was
//! seen to hold ([`TagSlot::observe`]). A reply that shows a newer version
//! bumps the local one (an invalidation this process did not hear of); a
//! reply older than what was seen is not used at all. And an invalidation
//! that Redis has not confirmed yet keeps its tags *pending*: every snapshot
//! taken meanwhile is never current, so nothing carrying them is served from
//! this process until Redis has it (`crate::coherence::invalidation`).
//!
//! The registry holds tags weakly: a tag lives as long as some entry, load,
//! read or pending invalidation carries it. A tag nobody carries has nothing
//! to invalidate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// A recorded version that no tag ever reaches: an entry made while one of
/// its tags had an unconfirmed invalidation is never current.
const NEVER: u64 = u64::MAX;
/// [`TagSlot::remote`] before any reply named the tag.
const UNKNOWN: u64 = u64::MAX;
/// [`TagSlot::remote`] of a tag that entries carry without a remote version
/// (the remote tier failed while they loaded): the first version seen bumps.
const DIRTY: u64 = u64::MAX - 1;

/// The most a backplane message may raise a version above the one Redis was
/// seen to hold. Real invalidations move a tag by one each; a larger claim
/// (a forged or garbled message, or a tag key that was recreated) is not
/// believed, and the next reply from Redis tells the truth.
pub(crate) const MAX_HEARD_STEP: u64 = 1 << 20;

/// How far ahead of this machine's clock a heard version (microseconds of
/// the server's clock) may be: clocks of servers and clients differ.
const MAX_CLOCK_AHEAD_MICROS: u64 = 60_000_000;

/// Whether a backplane message's claim that a tag moved from `seen` to
/// `version` is believable: a step of at most [`MAX_HEARD_STEP`], or, since
/// a bump sets the version to at least the server's clock in microseconds
/// (the Redis store's `versions` module), a version not beyond this machine's clock
/// plus [`MAX_CLOCK_AHEAD_MICROS`], when `seen` is such a clock reading
/// too (a store whose versions count from 0 keeps the bounded step). A
/// forged or garbled claim lifts a tag no further than that, and the next
/// confirmation from Redis corrects it.
pub(crate) fn believable_step(seen: u64, version: u64) -> bool {
    /// 2001-09-09 in microseconds: versions below are not clock readings.
    const CLOCK_VERSIONS_FROM: u64 = 1_000_000_000_000_000;
    if version <= seen {
        return false;
    }
    if version - seen <= MAX_HEARD_STEP {
        return true;
    }
    if seen < CLOCK_VERSIONS_FROM {
        return false;
    }
    let now_micros = crate::clock::now_millis().saturating_mul(1000);
    version <= now_micros.saturating_add(MAX_CLOCK_AHEAD_MICROS)
}

/// One tag's version counter.
#[derive(Debug)]
pub(crate) struct TagSlot {
    pub(crate) name: Box<str>,
    version: AtomicU64,
    /// The highest remote version seen, or [`UNKNOWN`] / [`DIRTY`].
    remote: AtomicU64,
    /// Invalidations of this tag that the remote tier has not confirmed.
    pending: AtomicU32,
}

/// What a remote reply's version of a tag says about the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// As new as anything seen (older entries may have been invalidated).
    Current,
    /// Older than a version seen before: the reply was overtaken.
    Outdated,
}

impl TagSlot {
    fn new(name: &str) -> TagSlot {
        TagSlot {
            name: name.into(),
            version: AtomicU64::new(0),
            remote: AtomicU64::new(UNKNOWN),
            pending: AtomicU32::new(0),
        }
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The version a snapshot records now: [`NEVER`] while an invalidation
    /// is pending. The version is read first: an invalidation that marks the
    /// tag pending after that read also bumps it, so the snapshot is old.
    fn recorded(&self) -> u64 {
        let version = self.version();
        if self.pending.load(Ordering::SeqCst) > 0 {
            NEVER
        } else {
            version
        }
    }

    /// Every entry recorded at the current version becomes invalid.
    fn bump(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// A remote reply says the tag is at `version`: newer than seen before
    /// means an invalidation happened that this process may not have heard
    /// of, so entries recorded so far are dropped.
    pub(crate) fn observe(&self, version: u64) -> Observed {
        if version >= DIRTY {
            // Not a version (unparsable): nothing read with it is trusted.
            return Observed::Outdated;
        }
        let mut seen = self.remote.load(Ordering::SeqCst);
        loop {
            let bump = match seen {
                UNKNOWN => false,
                DIRTY => true,
                seen if version > seen => true,
                seen if version == seen => return Observed::Current,
                _ => return Observed::Outdated,
            };
            match self.remote.compare_exchange_weak(
                seen,
                version,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    if bump {
                        self.bump();
                    }
                    return Observed::Current;
                }
                Err(now) => seen = now,
            }
        }
    }

    /// The periodic confirmation read `version`: any change from what was
    /// seen (higher: a lost message; lower: the key was reset) drops the
    /// entries recorded so far.
    pub(crate) fn confirm(&self, version: u64) {
        if version >= DIRTY {
            self.remote.store(DIRTY, Ordering::SeqCst);
            self.bump();
            return;
        }
        let seen = self.remote.swap(version, Ordering::SeqCst);
        if seen != version && seen != UNKNOWN {
            self.bump();
        }
    }

    /// Entries are about to carry this tag without a remote version.
    pub(crate) fn mark_dirty(&self) {
        let _ = self
            .remote
            .compare_exchange(UNKNOWN, DIRTY, Ordering::SeqCst, Ordering::SeqCst);
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
                .map(|(slot, _)| (slot.clone(), slot.recorded()))
                .collect(),
        )
    }

    /// A remote reply read `versions` of `tags` (in that order): raises what
    /// each tag has seen, and says whether the reply is as new as everything
    /// seen before. Tags not in the snapshot are skipped.
    pub(crate) fn observe(&self, tags: &[String], versions: &[u64]) -> Observed {
        let mut observed = Observed::Current;
        for (tag, &version) in tags.iter().zip(versions) {
            if let Some((slot, _)) = self.iter().find(|(slot, _)| *slot.name == **tag) {
                if slot.observe(version) == Observed::Outdated {
                    observed = Observed::Outdated;
                }
            }
        }
        observed
    }

    /// The part of the snapshot for `names` (those it holds), in their order.
    pub(crate) fn only<S: AsRef<str>>(&self, names: &[S]) -> TagSnapshot {
        TagSnapshot::from_vec(
            names
                .iter()
                .filter_map(|n| self.iter().find(|(slot, _)| *slot.name == *n.as_ref()))
                .cloned()
                .collect(),
        )
    }

    /// Entries of these tags are stored without remote versions.
    pub(crate) fn mark_dirty(&self) {
        self.iter().for_each(|(slot, _)| slot.mark_dirty());
    }
}

/// The version counters of one cache's tags.
pub(crate) struct TagRegistry {
    inner: Mutex<Registry>,
    /// Tags with unconfirmed invalidations, summed over all of them: reads
    /// look for pending tags only while this is not zero.
    pending: AtomicUsize,
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
            pending: AtomicUsize::new(0),
        }
    }

    /// Snapshots the current versions of `names` (creating tags not seen
    /// yet); a tag with a pending invalidation is recorded as never current.
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
            let version = slot.recorded();
            out.push((slot, version));
        }
        TagSnapshot::from_vec(out)
    }

    /// Invalidates a tag: every entry carrying it becomes a miss. Returns whether
    /// any entry, load or read carried it.
    pub(crate) fn invalidate(&self, name: &str) -> bool {
        let slot = self.inner.lock().slots.get(name).and_then(Weak::upgrade);
        match slot {
            Some(slot) => {
                slot.bump();
                true
            }
            None => false,
        }
    }

    /// Another process invalidated `name`, at `version` if its message said
    /// so: entries carrying it are dropped, and the version is believed only
    /// a bounded step above the one Redis was seen to hold (see
    /// [`MAX_HEARD_STEP`]).
    pub(crate) fn heard(&self, name: &str, version: Option<u64>) {
        let slot = self.inner.lock().slots.get(name).and_then(Weak::upgrade);
        let Some(slot) = slot else { return };
        slot.bump();
        let Some(version) = version else { return };
        let mut seen = slot.remote.load(Ordering::SeqCst);
        while seen < DIRTY && believable_step(seen, version) {
            match slot.remote.compare_exchange_weak(
                seen,
                version,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
    }

    /// Invalidates `names` until [`TagRegistry::confirmed`] is called with
    /// the slots returned: entries carrying them are invalid now, and those
    /// made meanwhile are born invalid.
    pub(crate) fn begin_pending<S: AsRef<str>>(&self, names: &[S]) -> Vec<Arc<TagSlot>> {
        let slots: Vec<Arc<TagSlot>> = {
            let mut reg = self.inner.lock();
            names.iter().map(|n| reg.slot(n.as_ref())).collect()
        };
        for slot in &slots {
            self.pending.fetch_add(1, Ordering::SeqCst);
            slot.pending.fetch_add(1, Ordering::SeqCst);
            slot.bump();
        }
        slots
    }

    /// The remote tier confirmed the invalidation of `slots` (from
    /// [`TagRegistry::begin_pending`]) at `versions`.
    pub(crate) fn confirmed(&self, slots: &[Arc<TagSlot>], versions: &[u64]) {
        for (i, slot) in slots.iter().enumerate() {
            if let Some(&version) = versions.get(i) {
                slot.observe(version);
            }
            slot.pending.fetch_sub(1, Ordering::SeqCst);
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether any of `names` has an invalidation the remote tier has not
    /// confirmed; one atomic load while none has.
    #[inline]
    pub(crate) fn any_pending(&self, names: &[String]) -> bool {
        if names.is_empty() || self.pending.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let reg = self.inner.lock();
        names.iter().any(|name| {
            reg.slots
                .get(name.as_str())
                .and_then(Weak::upgrade)
                .is_some_and(|slot| slot.pending.load(Ordering::SeqCst) > 0)
        })
    }

    /// Every tag some entry, load or read carries now.
    pub(crate) fn live(&self) -> Vec<Arc<TagSlot>> {
        self.inner
            .lock()
            .slots
            .values()
            .filter_map(Weak::upgrade)
            .collect()
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
        let slot = Arc::new(TagSlot::new(name));
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

    fn names(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn pending_tags_make_every_snapshot_old_until_confirmed() {
        let reg = TagRegistry::new();
        let before = reg.snapshot(&["a", "b"]);
        let slots = reg.begin_pending(&["a"]);
        assert!(!before.is_current());
        assert!(reg.any_pending(&names(&["b", "a"])));
        assert!(!reg.any_pending(&names(&["b"])));
        // Made while pending: never current, even after the confirmation.
        let during = reg.snapshot(&["a", "b"]);
        assert!(!during.is_current());
        assert!(!during.renewed().is_current());
        reg.confirmed(&slots, &[7]);
        assert!(!during.is_current());
        assert!(!reg.any_pending(&names(&["a"])));
        assert!(reg.snapshot(&["a", "b"]).is_current());
        // A pending invalidation keeps its tag alive while nothing else does.
        drop((before, during));
        let slots = reg.begin_pending(&["lonely"]);
        assert!(reg.any_pending(&names(&["lonely"])));
        reg.confirmed(&slots, &[1]);
    }

    #[test]
    fn a_newer_remote_version_drops_entries_and_an_older_reply_is_outdated() {
        let reg = TagRegistry::new();
        let t = names(&["a"]);
        let first = reg.snapshot(&t);
        // First sight of the tag: nothing to drop.
        assert_eq!(first.observe(&t, &[4]), Observed::Current);
        assert!(first.is_current());
        assert_eq!(first.observe(&t, &[4]), Observed::Current);
        assert!(first.is_current());
        // Redis moved on without a message reaching us.
        let second = reg.snapshot(&t);
        assert_eq!(second.observe(&t, &[5]), Observed::Current);
        assert!(!first.is_current() && !second.is_current());
        // A slow reply from before that.
        let third = reg.snapshot(&t);
        assert_eq!(third.observe(&t, &[4]), Observed::Outdated);
        assert_eq!(third.observe(&t, &[u64::MAX]), Observed::Outdated);
        assert!(third.is_current());
    }

    #[test]
    fn entries_without_remote_versions_are_dropped_at_the_first_version_seen() {
        let reg = TagRegistry::new();
        let t = names(&["a"]);
        let unversioned = reg.snapshot(&t);
        unversioned.mark_dirty();
        let reader = reg.snapshot(&t);
        assert_eq!(reader.observe(&t, &[2]), Observed::Current);
        assert!(!unversioned.is_current());
    }

    #[test]
    fn a_message_raises_the_seen_version_only_a_bounded_step() {
        let reg = TagRegistry::new();
        let t = names(&["a"]);
        let snap = reg.snapshot(&t);
        snap.observe(&t, &[10]);
        reg.heard("a", Some(u64::MAX - 3));
        assert!(!snap.is_current(), "a message always drops entries");
        // Not believed: Redis's real next version is still current.
        let next = reg.snapshot(&t);
        assert_eq!(next.observe(&t, &[11]), Observed::Current);
        reg.heard("a", Some(12));
        let after = reg.snapshot(&t);
        assert_eq!(after.observe(&t, &[11]), Observed::Outdated);
        assert_eq!(after.observe(&t, &[12]), Observed::Current);
        assert!(
            after.is_current(),
            "a believed message spares the next read a bump"
        );
    }

    #[test]
    fn clock_sized_steps_are_believed_up_to_a_minute_ahead() {
        let now_micros = crate::clock::now_millis() * 1000;
        let idle = now_micros - 3_600_000_000; // bumped an hour ago
                                               // A bump sets the version to the server's clock: a step far over
                                               // MAX_HEARD_STEP, believed.
        assert!(believable_step(idle, now_micros));
        assert!(believable_step(idle, now_micros + 30_000_000));
        // Not beyond the clock plus a minute, nor backwards, nor from a
        // counter that counts from 0.
        assert!(!believable_step(idle, now_micros + 120_000_000));
        assert!(!believable_step(idle, idle));
        assert!(!believable_step(idle, idle - 1));
        assert!(!believable_step(10, now_micros));
        assert!(believable_step(10, 10 + MAX_HEARD_STEP));
        // Through the registry: the next read of that version is current.
        let reg = TagRegistry::new();
        let t = names(&["a"]);
        reg.snapshot(&t).observe(&t, &[idle]);
        reg.heard("a", Some(now_micros));
        let after = reg.snapshot(&t);
        assert_eq!(after.observe(&t, &[now_micros]), Observed::Current);
        assert!(after.is_current(), "no second drop for the same bump");
    }

    #[test]
    fn confirmation_drops_entries_on_any_change() {
        let reg = TagRegistry::new();
        let t = names(&["a"]);
        let snap = reg.snapshot(&t);
        snap.observe(&t, &[3]);
        let slot = &reg.live()[0];
        slot.confirm(3);
        assert!(snap.is_current());
        slot.confirm(9);
        assert!(!snap.is_current());
        let snap = reg.snapshot(&t);
        slot.confirm(1);
        assert!(!snap.is_current(), "a key reset also drops");
    }
}
