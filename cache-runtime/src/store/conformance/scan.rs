//! Checks of [`ScanStore`] and [`ScanNode`]: every key found, globs
//! matched exactly, unlink counted.

use std::collections::BTreeSet;
use std::time::Duration;

use super::support::{namespace, ok, same, walk};
use super::Connect;
use crate::store::{EntryStore, ScanNode, ScanStore};

const MINUTE: Duration = Duration::from_secs(60);

async fn put_all<S: EntryStore>(check: &str, store: &S, keys: &[String]) {
    let items = keys
        .iter()
        .map(|k| (k.clone(), b"x".to_vec(), MINUTE))
        .collect();
    ok(store.put_many(items).await, check, "put_many");
}

/// A walk of every node finds exactly the keys a pattern matches, for each
/// glob form of the contract: `*`, `?`, `[abc]` and `\` (a walk of 10 keys
/// a page, over 80 keys).
pub async fn scan_glob_forms<S: EntryStore + ScanStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "scan_glob_forms";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let named = [
        "k1", "k2", "k9", "k10", "k11", "ax1", "bx2", "cx3", "lit*", "litx", "a?b", "aXb",
    ];
    let mut keys: Vec<String> = named.iter().map(|k| format!("{ns}:{k}")).collect();
    keys.extend((0..68).map(|i| format!("{ns}:bulk:{i}")));
    put_all(CHECK, &one, &keys).await;

    let cases: [(&str, &[&str]); 5] = [
        ("k?", &["k1", "k2", "k9"]),
        ("[ab]x*", &["ax1", "bx2"]),
        (r"lit\*", &["lit*"]),
        (r"a\?b", &["a?b"]),
        ("k1*", &["k1", "k10", "k11"]),
    ];
    let all = walk(CHECK, &other, &format!("{ns}:*"), 10, async || {}).await;
    same_keys(
        CHECK,
        &format!("{ns}:*"),
        all,
        keys.iter().cloned().collect(),
    );
    for (pattern, want) in cases {
        let pattern = format!("{ns}:{pattern}");
        let found = walk(CHECK, &other, &pattern, 10, async || {}).await;
        let want = want.iter().map(|k| format!("{ns}:{k}")).collect();
        same_keys(CHECK, &pattern, found, want);
    }
}

/// Asserts a walk of `pattern` found exactly `want`, naming what it
/// missed and what it should not have found.
#[track_caller]
fn same_keys(check: &str, pattern: &str, found: Vec<String>, want: BTreeSet<String>) {
    let found: BTreeSet<String> = found.into_iter().collect();
    let missed: Vec<&String> = want.difference(&found).collect();
    let extra: Vec<&String> = found.difference(&want).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "conformance check `{check}`: a walk of `{pattern}` missed {} of {} keys (e.g. {:?}) and found {} it does not match (e.g. {:?})",
        missed.len(),
        want.len(),
        missed.first(),
        extra.len(),
        extra.first(),
    );
}

/// While a walk (5 keys a page) goes on, keys are added and others
/// deleted after every page: every key present for the whole walk is
/// found.
pub async fn scan_during_changes<S: EntryStore + ScanStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "scan_during_changes";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let stable: Vec<String> = (0..60).map(|i| format!("{ns}:stable:{i}")).collect();
    let mut doomed: Vec<String> = (0..30).map(|i| format!("{ns}:doomed:{i}")).collect();
    put_all(CHECK, &one, &stable).await;
    put_all(CHECK, &one, &doomed).await;
    let mut added = 0;
    let found = walk(CHECK, &other, &format!("{ns}:*"), 5, async || {
        if let Some(key) = doomed.pop() {
            ok(one.delete(&key).await, CHECK, "delete");
        }
        let key = format!("{ns}:added:{added}");
        ok(one.put(&key, b"x".to_vec(), MINUTE).await, CHECK, "put");
        added += 1;
    })
    .await;
    let found: BTreeSet<String> = found.into_iter().collect();
    let missed: Vec<&String> = stable.iter().filter(|k| !found.contains(*k)).collect();
    assert!(
        missed.is_empty(),
        "conformance check `{CHECK}`: a walk missed {} keys present all along, e.g. {:?}",
        missed.len(),
        missed.first()
    );
}

/// `unlink` of the keys a node's walk found deletes them and counts those
/// that existed: all of them once, none again.
pub async fn unlink_counts<S: EntryStore + ScanStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "unlink_counts";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let keys: Vec<String> = (0..30).map(|i| format!("{ns}:gone:{i}")).collect();
    put_all(CHECK, &one, &keys).await;
    let pattern = format!("{ns}:*");
    let nodes = ok(other.scan_nodes().await, CHECK, "scan_nodes");
    let (mut first, mut second) = (0, 0);
    for node in &nodes {
        let mut cursor = 0;
        let mut found = BTreeSet::new();
        loop {
            let (next, page) = ok(node.scan(cursor, &pattern, 10).await, CHECK, "scan");
            found.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let found: Vec<String> = found.into_iter().collect();
        first += ok(node.unlink(&found).await, CHECK, "unlink");
        second += ok(node.unlink(&found).await, CHECK, "unlink");
        let absent = [format!("{ns}:never")];
        same(
            CHECK,
            "unlink of an absent key",
            ok(node.unlink(&absent).await, CHECK, "unlink"),
            0,
        );
    }
    same(
        CHECK,
        "how many keys unlink deleted",
        first,
        keys.len() as u64,
    );
    same(CHECK, "unlink of keys already deleted", second, 0);
    let read = ok(one.fetch_many(&keys).await, CHECK, "fetch_many");
    assert!(
        read.iter().all(Option::is_none),
        "conformance check `{CHECK}`: unlinked keys can still be read"
    );
}
