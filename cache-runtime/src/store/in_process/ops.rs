//! Operations counted per kind, so a test can say "one fetch per hit".

use std::sync::atomic::{AtomicU64, Ordering};

/// One kind of store operation: a method of the store traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`EntryStore::fetch`](crate::store::EntryStore::fetch).
    Fetch,
    /// [`EntryStore::fetch_many`](crate::store::EntryStore::fetch_many).
    FetchMany,
    /// [`EntryStore::put`](crate::store::EntryStore::put).
    Put,
    /// [`EntryStore::put_many`](crate::store::EntryStore::put_many).
    PutMany,
    /// [`EntryStore::delete`](crate::store::EntryStore::delete).
    Delete,
    /// [`EntryStore::ping`](crate::store::EntryStore::ping).
    Ping,
    /// [`TagStore::versions`](crate::store::TagStore::versions).
    Versions,
    /// [`TagStore::bump`](crate::store::TagStore::bump).
    Bump,
    /// [`LockStore::try_lock`](crate::store::LockStore::try_lock).
    TryLock,
    /// [`LockStore::extend_lock`](crate::store::LockStore::extend_lock).
    ExtendLock,
    /// [`LockStore::unlock`](crate::store::LockStore::unlock).
    Unlock,
    /// [`CounterStore::increment`](crate::store::CounterStore::increment).
    Increment,
    /// [`ScanStore::scan_nodes`](crate::store::ScanStore::scan_nodes).
    ScanNodes,
    /// [`ScanNode::scan`](crate::store::ScanNode::scan).
    Scan,
    /// [`ScanNode::unlink`](crate::store::ScanNode::unlink).
    Unlink,
    /// [`Backplane::publish`](crate::store::Backplane::publish).
    Publish,
    /// [`Backplane::subscribe`](crate::store::Backplane::subscribe).
    Subscribe,
}

impl Op {
    /// Every kind, in declaration order.
    pub const ALL: [Op; 17] = [
        Op::Fetch,
        Op::FetchMany,
        Op::Put,
        Op::PutMany,
        Op::Delete,
        Op::Ping,
        Op::Versions,
        Op::Bump,
        Op::TryLock,
        Op::ExtendLock,
        Op::Unlock,
        Op::Increment,
        Op::ScanNodes,
        Op::Scan,
        Op::Unlink,
        Op::Publish,
        Op::Subscribe,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Live counters, one per [`Op`] (crate-internal; read as [`Counts`]).
#[derive(Debug, Default)]
pub(crate) struct Tally([AtomicU64; Op::ALL.len()]);

impl Tally {
    pub(crate) fn add(&self, op: Op) {
        self.0[op.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counts {
        Counts(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

/// How many operations of each kind were called (faulted ones included:
/// a call counts when it is made, as a round trip would).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([u64; Op::ALL.len()]);

impl Counts {
    /// How many calls of `op`.
    pub fn get(&self, op: Op) -> u64 {
        self.0[op.index()]
    }

    /// How many calls of every kind together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The calls made since `earlier` (a snapshot taken before).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts(std::array::from_fn(|i| {
            self.0[i].saturating_sub(earlier.0[i])
        }))
    }
}
