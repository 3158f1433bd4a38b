//! One cache's resolved plans, one per `#[cached]` site used with it, indexed
//! by the site's number ([`PlanCache`](super::number::PlanCache)). A hit finds its
//! plan in three loads whatever the number of caches its function is used
//! with (a cache per tenant), allocating nothing; the table, its plans and
//! their counters go with the cache.
//!
//! Lock-free for readers: a plan is boxed and written before its pointer is
//! stored with `Release`, and read only after that pointer was loaded with
//! `Acquire`. Writers (a site's first call with this cache) take a lock. The
//! array grows by copying into one twice as long; older arrays stay until
//! the table drops, as a reader may still be in one.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::Plan;

/// A cache's plans by site number (see the module docs).
pub(crate) struct PlanTable {
    /// The length of `slots`, stored (`Release`) after `slots`: a reader
    /// that loads a length then finds an array at least that long.
    len: AtomicUsize,
    /// The newest array's first slot; null while `len` is 0.
    slots: AtomicPtr<AtomicPtr<Plan>>,
    /// The writers' lock, and the owner of every array made, the newest last.
    arrays: Mutex<Vec<Box<[AtomicPtr<Plan>]>>>,
}

impl Default for PlanTable {
    fn default() -> Self {
        Self {
            len: AtomicUsize::new(0),
            slots: AtomicPtr::new(std::ptr::null_mut()),
            arrays: Mutex::new(Vec::new()),
        }
    }
}

impl PlanTable {
    /// The plan of site number `index`, if this cache has resolved it
    /// (never for 0, the number of a site not numbered yet).
    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> Option<&Plan> {
        let len = self.len.load(Ordering::Acquire);
        if index >= len {
            return None;
        }
        let slots = self.slots.load(Ordering::Acquire);
        // SAFETY: `slots` was stored before a length of at least `len` was
        // (arrays only grow, see `remember`), so it has slot `index`; arrays
        // are freed only when the table is dropped, and `&self` borrows it.
        let plan = unsafe { &*slots.add(index) }.load(Ordering::Acquire);
        // SAFETY: a non-null slot holds a plan boxed and written before it
        // was stored with `Release`, never written again, and freed only
        // when the table is dropped.
        unsafe { plan.as_ref() }
    }

    /// The plan of site number `index`: the one already kept, or `make()`'s,
    /// kept from now on. `make` runs at most once, under the writers' lock.
    pub(crate) fn remember(&self, index: usize, make: impl FnOnce() -> Plan) -> Plan {
        let mut arrays = self.arrays.lock();
        // Under the lock: another caller may have kept it meanwhile.
        if let Some(plan) = self.get(index) {
            return *plan;
        }
        let len = self.len.load(Ordering::Relaxed);
        if index >= len {
            let grown = (index + 1).next_power_of_two().max(8);
            let old = arrays.last();
            let array: Box<[AtomicPtr<Plan>]> = (0..grown)
                .map(|i| {
                    let kept = old.and_then(|old| old.get(i));
                    AtomicPtr::new(kept.map_or(std::ptr::null_mut(), |s| s.load(Ordering::Relaxed)))
                })
                .collect();
            let first = array.as_ptr().cast_mut();
            // Moving the box into the list leaves its slots where they are.
            arrays.push(array);
            self.slots.store(first, Ordering::Release);
            self.len.store(grown, Ordering::Release);
        }
        let plan = make();
        if let Some(slot) = arrays.last().and_then(|array| array.get(index)) {
            slot.store(Box::into_raw(Box::new(plan)), Ordering::Release);
        }
        plan
    }

    /// Plans kept, for tests.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        let arrays = self.arrays.lock();
        arrays.last().map_or(0, |array| {
            array
                .iter()
                .filter(|slot| !slot.load(Ordering::Relaxed).is_null())
                .count()
        })
    }
}

impl Drop for PlanTable {
    fn drop(&mut self) {
        // The newest array holds every plan (each grow copied the older
        // ones'), so each is freed once.
        if let Some(array) = self.arrays.get_mut().last() {
            for slot in array.iter() {
                let plan = slot.load(Ordering::Relaxed);
                if !plan.is_null() {
                    // SAFETY: boxed in `remember`, stored in one slot of this
                    // array, and no reader is left (`&mut self`).
                    drop(unsafe { Box::from_raw(plan) });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::plan::tests::{is_plan, plan};

    #[test]
    fn every_site_number_finds_its_own_plan_as_the_table_grows() {
        let table = PlanTable::default();
        assert!(table.get(0).is_none());
        assert!(table.get(1).is_none());
        for index in (1..=300).rev().step_by(7).chain(1..=300) {
            let kept = table.remember(index, || plan(index as u64));
            assert!(is_plan(Some(&kept), index as u64), "site {index}");
        }
        for index in 1..=300 {
            assert!(is_plan(table.get(index), index as u64), "site {index}");
        }
        assert!(table.get(0).is_none(), "0 is never a site's number");
        assert!(table.get(100_000).is_none());
        assert_eq!(table.kept(), 300);
    }

    #[test]
    fn a_kept_plan_is_made_once() {
        let table = PlanTable::default();
        let mut made = 0;
        for _ in 0..3 {
            table.remember(5, || {
                made += 1;
                plan(5)
            });
        }
        assert_eq!(made, 1);
    }

    #[test]
    fn concurrent_readers_see_whole_plans_while_the_table_grows() {
        let table = PlanTable::default();
        std::thread::scope(|s| {
            for t in 0..4usize {
                let table = &table;
                s.spawn(move || {
                    for round in 0..200usize {
                        let index = 1 + (round * 4 + t) % 400;
                        table.remember(index, || plan(index as u64));
                        for other in 1..=400 {
                            if let Some(found) = table.get(other) {
                                assert!(is_plan(Some(found), other as u64), "site {other}");
                            }
                        }
                    }
                });
            }
        });
        for index in 1..=400 {
            assert!(is_plan(table.get(index), index as u64), "site {index}");
        }
    }
}
