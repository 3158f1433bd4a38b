//! Each `#[cached]` site's number: its index in every cache's table of plans.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A `#[cached]` site's number, its index in each cache's table of plans
/// (`PlanTable`): 0 until the site is first used with a cache, then a number
/// of its own, never changed. The plans themselves live with each cache, so a hit through
/// any of many caches (a cache per tenant) finds its plan the same way, and a
/// dropped cache frees its plans and their counters.
///
/// A plain number rather than a memo of plans, so a site (a static) owns
/// nothing to free. (A `OnceLock` would need a destructor, which the
/// `..Site::DEFAULT` of generated statics cannot have.)
#[derive(Debug)]
pub struct PlanCache {
    index: AtomicUsize,
}

/// The next site number; 0 is never given (it means "not numbered yet").
static NEXT_SITE: AtomicUsize = AtomicUsize::new(1);

impl PlanCache {
    /// Not numbered yet.
    pub const fn new() -> Self {
        Self {
            index: AtomicUsize::new(0),
        }
    }

    /// The site's number, or 0 before its first plan: 0 finds no plan in
    /// any table (slot 0 is never filled), so the hit path needs no test
    /// of its own for it. Relaxed: the number is written once, and a plan
    /// is only read through the table's own `Acquire` loads.
    #[inline(always)]
    pub(crate) fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed)
    }

    /// The site's number, given now if it had none.
    pub(crate) fn number(&self) -> usize {
        let index = self.index();
        if index != 0 {
            return index;
        }
        let new = NEXT_SITE.fetch_add(1, Ordering::Relaxed);
        match self
            .index
            .compare_exchange(0, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => new,
            // Another thread numbered it first; `new` is left unused.
            Err(existing) => existing,
        }
    }
}

impl Default for PlanCache {
    fn default() -> Self {
        Self::new()
    }
}
