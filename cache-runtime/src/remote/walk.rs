//! The walk of `delete_matching`: on each node (the server, or every master
//! of a cluster) `SCAN` page by page, `UNLINK` what each page found. Every
//! round trip (finding the nodes, each page, each batch) runs under the
//! breaker and the remote timeout of its own, so a walk over many keys is
//! not cut short by a timeout meant for one operation. A round trip that
//! times out or loses its connection is tried again, up to the configured
//! retries: a page is read again from the same cursor, a batch unlinked
//! again (both are safe to repeat). A walk that cannot go on stops with
//! what it deleted so far.
//!
//! Cost: a node with `N` keys takes about `N / SCAN_COUNT` pages, whatever
//! the pattern matches (`SCAN` visits every key to test it), each one short
//! command on the server (well under a millisecond for 1,000 keys), between
//! which other clients' commands run.

use super::store::{DynStore, StoreError, StoreFuture};
use super::Remote;
use crate::stats::Counters;

/// Keys a `SCAN` page visits (its `COUNT`): short enough that a page is a
/// short command for the server (other clients wait at most that long), long
/// enough that a million keys take a thousand round trips.
pub(crate) const SCAN_COUNT: u32 = 1_000;

/// A walk that stopped before its end: the keys it had deleted, and why.
pub(crate) struct Stopped {
    pub(crate) deleted: u64,
    pub(crate) error: StoreError,
}

impl Remote {
    /// Deletes every key matching the glob `pattern` on every node; how many.
    pub(crate) async fn delete_matching(
        &self,
        counters: &Counters,
        pattern: &str,
    ) -> Result<u64, Stopped> {
        let nodes = self
            .step(counters, |store| store.scan_nodes())
            .await
            .map_err(|error| Stopped { deleted: 0, error })?;
        let mut deleted = 0;
        for node in &nodes {
            let mut cursor = 0;
            loop {
                let (next, keys) = self
                    .step(counters, |_| node.scan(cursor, pattern, SCAN_COUNT))
                    .await
                    .map_err(|error| Stopped { deleted, error })?;
                if !keys.is_empty() {
                    deleted += self
                        .step(counters, |_| node.unlink(&keys))
                        .await
                        .map_err(|error| Stopped { deleted, error })?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// One round trip of the walk: [`call`](Remote::call) (which retries a
    /// lost connection within its timeout), and again after a timeout, up to
    /// the configured retries, each with a timeout of its own.
    async fn step<'a, T>(
        &'a self,
        counters: &Counters,
        op: impl Fn(&'a dyn DynStore) -> StoreFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let mut timeouts = 0;
        loop {
            match self.call(counters, &op).await {
                Err(StoreError::Timeout) if timeouts < self.retries => {
                    timeouts += 1;
                    tracing::debug!("a round trip of delete_matching timed out; retrying");
                }
                outcome => return outcome,
            }
        }
    }
}
