//! An in-process store with fault injection: the remote tier of a test.
//!
//! [`InProcessStore`] implements every store trait ([`EntryStore`],
//! [`TagStore`], [`LockStore`], [`CounterStore`], [`ScanStore`] and
//! [`Backplane`]) over memory, keeping each documented contract: TTLs on
//! tokio's clock (so `tokio::time::pause` drives them), versions never
//! handed out twice, locks with tokens, glob patterns walked by cursor over
//! one or several nodes, and a backplane over tokio broadcast channels.
//!
//! A handle is one process's connection: [`InProcessStore::connect`] gives
//! another one to the same backend (another process), while `clone` shares
//! the handle itself. Each handle has its own [`Faults`] (latency, errors,
//! timeouts, lost or delayed messages, a partition) and [`Counts`]; the
//! backend's faults (lost writes, a failover) affect all of them.
//!
//! ```
//! use std::time::Duration;
//! use cache_runtime::store::in_process::{InjectedFault, InProcessStore, Op};
//! use cache_runtime::store::{EntryStore, StoreError};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let one = InProcessStore::new();
//! let other = one.connect(); // a second process
//!
//! one.put("ns:k", b"v".to_vec(), Duration::from_secs(1)).await?;
//! assert_eq!(other.fetch_many(&["ns:k".into()]).await?, vec![Some(b"v".to_vec())]);
//!
//! // The first process loses its connection twice; the other does not.
//! one.faults().fail_next(2, InjectedFault::Connection);
//! assert!(matches!(one.ping().await, Err(StoreError::Connection(_))));
//! assert!(other.ping().await.is_ok());
//!
//! // TTLs run on tokio's clock (paused here).
//! tokio::time::sleep(Duration::from_secs(2)).await;
//! assert_eq!(other.fetch_many(&["ns:k".into()]).await?, vec![None]);
//! assert_eq!(other.counts().get(Op::FetchMany), 2);
//! # Ok::<(), StoreError>(()) }).unwrap();
//! ```
//!
//! [`EntryStore`]: crate::store::EntryStore
//! [`TagStore`]: crate::store::TagStore
//! [`LockStore`]: crate::store::LockStore
//! [`CounterStore`]: crate::store::CounterStore
//! [`ScanStore`]: crate::store::ScanStore
//! [`Backplane`]: crate::store::Backplane

mod backend;
mod faults;
pub(crate) mod glob;
mod ops;
mod traits;

use std::sync::Arc;

use backend::Backend;
use faults::{Link, Verdict};

pub use faults::{Faults, InjectedFault};
pub use ops::{Counts, Op};

use crate::store::StoreError;

/// One handle ("connection") to an in-process backend. See the
/// [module](self) docs.
///
/// `clone` shares this handle (its faults and counts);
/// [`connect`](Self::connect) opens another handle to the same backend.
#[derive(Debug, Clone)]
pub struct InProcessStore {
    backend: Arc<Backend>,
    link: Arc<Link>,
}

impl Default for InProcessStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessStore {
    /// A new, empty backend of one node, and a handle to it.
    pub fn new() -> Self {
        Self::with_nodes(1)
    }

    /// A new, empty backend whose keys are spread over `nodes` nodes (at
    /// least 1), each walked on its own by [`ScanStore`](crate::store::ScanStore)
    /// as a cluster's masters are.
    pub fn with_nodes(nodes: usize) -> Self {
        Self {
            backend: Arc::new(Backend::new(nodes)),
            link: Arc::default(),
        }
    }

    /// Another handle to the same backend, with faults and counts of its
    /// own: another process's view.
    pub fn connect(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            link: Arc::default(),
        }
    }

    /// The fault controls of this handle (and of the backend).
    pub fn faults(&self) -> Faults {
        Faults {
            link: Arc::clone(&self.link),
            backend: Arc::clone(&self.backend),
        }
    }

    /// The operations called through this handle (and its clones).
    pub fn counts(&self) -> Counts {
        self.link.tally.snapshot()
    }

    /// The operations called through every handle of the backend.
    pub fn backend_counts(&self) -> Counts {
        self.backend.tally.snapshot()
    }

    /// How many live keys (entries, counters, locks) the backend holds.
    pub fn key_count(&self) -> usize {
        self.backend.live_keys()
    }

    /// Counts `op`, then applies this handle's faults to it.
    async fn enter(&self, op: Op) -> Result<(), StoreError> {
        self.link.tally.add(op);
        self.backend.tally.add(op);
        let (latency, verdict) = self.link.decide(op);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Fail(error) => Err(error),
            Verdict::Hang => std::future::pending().await,
        }
    }
}

/// One node of an [`InProcessStore`], walked by cursor.
#[derive(Debug, Clone)]
pub struct InProcessNode {
    store: InProcessStore,
    index: usize,
}

#[cfg(test)]
mod tests;
