//! The counters of a cache without a remote tier.

use std::collections::HashMap;

use parking_lot::{Mutex, MutexGuard};

/// Counters of a cache without a remote tier, by key.
#[derive(Default)]
pub(crate) struct LocalCounters(Mutex<HashMap<String, i64>>);

impl LocalCounters {
    /// The counters, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        self.0.lock()
    }
}
