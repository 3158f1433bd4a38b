//! What the checks share: fresh namespaces, requests, waiting, and turning
//! a store's error into a failed check.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::key::Key;
use crate::store::{Fetch, ScanNode, ScanStore, StoreError};

/// How long a check waits for what should be prompt (a message, a TTL to
/// pass beyond its length).
pub(super) const PROMPT: Duration = Duration::from_secs(2);

/// A namespace no other check (or suite) uses.
pub(super) fn namespace() -> String {
    format!("conformance-{:016x}", fastrand::u64(..))
}

/// A read of entry `key` with `tags`, under `namespace`.
pub(super) fn request<'a>(namespace: &'a str, key: &'a Key, tags: &'a [String]) -> Fetch<'a> {
    Fetch {
        namespace,
        key,
        tags,
    }
}

/// An entry's key, as the manual API names it.
pub(super) fn key(text: &str) -> Key {
    Key::manual(text)
}

/// The answer, or a failed check saying which call failed.
#[track_caller]
pub(super) fn ok<T>(result: Result<T, StoreError>, check: &str, call: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("conformance check `{check}`: {call} failed: {error}"),
    }
}

/// What a spawned task answered, failing the check if it panicked.
pub(super) async fn joined<T>(check: &str, task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(error) => panic!("conformance check `{check}`: a task failed: {error}"),
    }
}

/// Asserts two values are equal, naming the check and what differs.
#[track_caller]
pub(super) fn same<T: PartialEq + Debug>(check: &str, what: &str, got: T, want: T) {
    assert!(
        got == want,
        "conformance check `{check}`: {what}: got {got:?}, want {want:?}"
    );
}

/// Every key matching `pattern` on every node of `store`, walking each by
/// cursor `count` at a time, with `between` called after every page.
pub(super) async fn walk<S: ScanStore>(
    check: &str,
    store: &S,
    pattern: &str,
    count: u32,
    mut between: impl AsyncFnMut(),
) -> Vec<String> {
    let nodes = ok(store.scan_nodes().await, check, "scan_nodes");
    assert!(
        !nodes.is_empty(),
        "conformance check `{check}`: scan_nodes returned no node"
    );
    let mut found = Vec::new();
    for node in &nodes {
        let mut cursor = 0;
        let mut pages = 0;
        loop {
            let (next, keys) = ok(node.scan(cursor, pattern, count).await, check, "scan");
            found.extend(keys);
            between().await;
            if next == 0 {
                break;
            }
            cursor = next;
            pages += 1;
            assert!(
                pages < 100_000,
                "conformance check `{check}`: a walk of `{pattern}` never ended"
            );
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Two connections to the same backend, shared with spawned tasks.
pub(super) async fn two<S>(connect: &impl super::Connect<S>) -> (Arc<S>, Arc<S>) {
    (
        Arc::new(connect.connect().await),
        Arc::new(connect.connect().await),
    )
}

/// Waits until `done` holds, polling every 25 ms on tokio's clock; false
/// if it did not within `limit`.
pub(super) async fn eventually(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let start = tokio::time::Instant::now();
    loop {
        if done().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
