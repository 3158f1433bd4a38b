//! Checks of [`TagStore`]: versions created, raised, never handed out twice.

use std::collections::HashSet;
use std::sync::Arc;

use super::support::{joined, namespace, ok, same, two};
use super::Connect;
use crate::store::{EntryStore, TagStore};

/// Names of tag counters under a fresh namespace, as a `Fetch` names them.
fn tag_keys(names: &[&str]) -> Vec<String> {
    let ns = namespace();
    names.iter().map(|t| format!("{ns}#tag:{t}")).collect()
}

/// `versions` creates missing counters and reads the same values again
/// (from any connection) until a bump; a key asked twice reads the same.
pub async fn versions_created_and_stable<S: TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "versions_created_and_stable";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let keys = tag_keys(&["x", "y"]);
    let first = ok(one.versions(&keys).await, CHECK, "versions");
    same(CHECK, "how many versions", first.len(), keys.len());
    let again = ok(one.versions(&keys).await, CHECK, "versions");
    same(CHECK, "versions read again", &again, &first);
    let elsewhere = ok(other.versions(&keys).await, CHECK, "versions");
    same(
        CHECK,
        "versions read by another connection",
        &elsewhere,
        &first,
    );
    let twice = ok(
        one.versions(&[keys[0].clone(), keys[0].clone()]).await,
        CHECK,
        "versions",
    );
    same(
        CHECK,
        "one counter asked twice",
        &twice,
        &vec![first[0], first[0]],
    );
    same(
        CHECK,
        "versions of no tags",
        &ok(one.versions(&[]).await, CHECK, "versions"),
        &Vec::new(),
    );
}

/// A bump answers, in order, versions above every version read of each
/// counter, and they are what `versions` reads next; a second bump is
/// above the first.
pub async fn bump_above_reads<S: TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "bump_above_reads";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let keys = tag_keys(&["p", "q", "r"]);
    let read = ok(one.versions(&keys).await, CHECK, "versions");
    let bumped = ok(other.bump(&keys).await, CHECK, "bump");
    same(
        CHECK,
        "how many versions a bump answers",
        bumped.len(),
        keys.len(),
    );
    for (i, (new, old)) in bumped.iter().zip(&read).enumerate() {
        assert!(
            new > old,
            "conformance check `{CHECK}`: bump of tag {i} answered {new}, not above the version read before ({old})"
        );
    }
    let now = ok(one.versions(&keys).await, CHECK, "versions");
    same(
        CHECK,
        "versions read after a bump (in order)",
        &now,
        &bumped,
    );
    let again = ok(one.bump(&keys[1..2]).await, CHECK, "bump")[0];
    assert!(
        again > bumped[1],
        "conformance check `{CHECK}`: a second bump answered {again}, not above the first ({})",
        bumped[1]
    );
    let none = ok(one.bump(&[]).await, CHECK, "bump");
    same(CHECK, "a bump of no tags", &none, &Vec::new());
}

/// Bumps of one counter from two connections at once (4 tasks each, 25
/// bumps per task): no version is answered twice, each task sees its
/// versions increase, and the counter ends at or above the highest.
pub async fn bump_concurrent_distinct<S: TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "bump_concurrent_distinct";
    const TASKS: usize = 8;
    const BUMPS: usize = 25;
    let (one, other) = two(connect).await;
    let key = Arc::new(tag_keys(&["hot"]));
    let start = ok(one.versions(&key).await, CHECK, "versions")[0];
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(if task % 2 == 0 { &one } else { &other });
        let key = Arc::clone(&key);
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(BUMPS);
            for _ in 0..BUMPS {
                seen.push(store.bump(&key).await.map(|v| v[0]));
            }
            seen
        }));
    }
    let mut all = HashSet::new();
    let mut highest = start;
    for task in tasks {
        let seen = joined(CHECK, task).await;
        let mut last = start;
        for version in seen {
            let version = ok(version, CHECK, "bump");
            assert!(
                version > last,
                "conformance check `{CHECK}`: a task's bump answered {version} after {last}"
            );
            assert!(
                all.insert(version),
                "conformance check `{CHECK}`: version {version} was handed out twice"
            );
            last = version;
            highest = highest.max(version);
        }
    }
    let end = ok(one.versions(&key).await, CHECK, "versions")[0];
    assert!(
        end >= highest,
        "conformance check `{CHECK}`: the counter reads {end}, below the highest bump ({highest})"
    );
}

/// A counter that is lost (here: deleted, as an eviction or a failover
/// loses it) comes back at a version above every one handed out before;
/// the next bump is above that.
pub async fn versions_survive_loss<S: EntryStore + TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "versions_survive_loss";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let keys = tag_keys(&["lost"]);
    ok(one.versions(&keys).await, CHECK, "versions");
    let mut handed = 0;
    for _ in 0..3 {
        handed = ok(one.bump(&keys).await, CHECK, "bump")[0];
    }
    // A store that keeps counters apart from entries may not delete it:
    // then the counter simply reads on.
    let deleted = ok(one.delete(&keys[0]).await, CHECK, "delete of the counter");
    let back = ok(other.versions(&keys).await, CHECK, "versions")[0];
    if deleted {
        assert!(
            back > handed,
            "conformance check `{CHECK}`: a lost counter came back at {back}, not above {handed} handed out before: an entry recorded then would be valid again"
        );
    } else {
        assert!(
            back >= handed,
            "conformance check `{CHECK}`: the counter went back from {handed} to {back}"
        );
    }
    let next = ok(other.bump(&keys).await, CHECK, "bump")[0];
    assert!(
        next > back && next > handed,
        "conformance check `{CHECK}`: a bump after the loss answered {next} (read {back}, handed out {handed})"
    );
}

/// A counter that is broken (here: overwritten with bytes that are no
/// number, as a fault or a stray write leaves it) reads, through `fetch`
/// and `versions`, at a version no lower than any handed out before (above
/// them once replaced), and the next bump is above it; the store does not
/// fail.
pub async fn broken_counter_replaced<S: EntryStore + TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "broken_counter_replaced";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let tags = ["broken".to_string()];
    let entry = super::support::key("entry");
    let fetch = super::support::request(&ns, &entry, &tags);
    let keys: Vec<String> = fetch.tag_keys().collect();
    let mut handed = 0;
    for _ in 0..3 {
        handed = ok(one.bump(&keys).await, CHECK, "bump")[0];
    }
    let minute = std::time::Duration::from_secs(60);
    ok(
        one.put(&keys[0], b"not a version".to_vec(), minute).await,
        CHECK,
        "put over the counter",
    );
    let fetched = ok(other.fetch(fetch).await, CHECK, "fetch of a broken counter").versions[0];
    assert!(
        fetched >= handed,
        "conformance check `{CHECK}`: a broken counter read {fetched} through fetch, below {handed} handed out before"
    );
    let read = ok(other.versions(&keys).await, CHECK, "versions")[0];
    same(
        CHECK,
        "versions after fetch replaced the counter",
        read,
        fetched,
    );
    let next = ok(one.bump(&keys).await, CHECK, "bump")[0];
    assert!(
        next > read && next > handed,
        "conformance check `{CHECK}`: a bump of a replaced counter answered {next} (read {read}, handed out {handed})"
    );
}
