//! Checks of [`EntryStore`]: entries by key with a TTL, and `fetch`.

use std::time::Duration;

use super::support::{key, namespace, ok, request, same, PROMPT};
use super::Connect;
use crate::store::{EntryStore, TagStore};

const MINUTE: Duration = Duration::from_secs(60);

/// `fetch` returns the entry and its tags' current versions, in the order
/// of [`Fetch::tag_keys`](crate::store::Fetch::tag_keys), from any
/// connection; after a bump it returns the new version.
pub async fn fetch_reads_entry_and_versions<S: EntryStore + TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "fetch_reads_entry_and_versions";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let entry = key("entry");
    let tags = ["first", "second", "third"].map(String::from);
    let fetch = request(&ns, &entry, &tags);
    let tag_keys: Vec<String> = fetch.tag_keys().collect();

    // Make the versions strictly increasing along the tags, so that an
    // answer in another order shows.
    let mut read = ok(one.versions(&tag_keys).await, CHECK, "versions");
    for i in 1..read.len() {
        let mut bumps = 0;
        while read[i] <= read[i - 1] {
            read[i] = ok(one.bump(&tag_keys[i..=i]).await, CHECK, "bump")[0];
            bumps += 1;
            assert!(
                bumps < 1000,
                "conformance check `{CHECK}`: 1000 bumps did not raise a version"
            );
        }
    }

    let bytes = b"conformance entry \x00\xff".to_vec();
    ok(
        one.put(&fetch.entry_key(), bytes.clone(), MINUTE).await,
        CHECK,
        "put",
    );
    for (who, store) in [("the writer", &one), ("another connection", &other)] {
        let fetched = ok(store.fetch(fetch).await, CHECK, "fetch");
        same(
            CHECK,
            &format!("the entry {who} fetched"),
            &fetched.entry,
            &Some(bytes.clone()),
        );
        same(
            CHECK,
            &format!("the versions {who} fetched (in the order of tag_keys)"),
            &fetched.versions,
            &read,
        );
    }

    let bumped = ok(other.bump(&tag_keys[..1]).await, CHECK, "bump")[0];
    let fetched = ok(one.fetch(fetch).await, CHECK, "fetch");
    same(
        CHECK,
        "the first version fetched after a bump",
        fetched.versions[0],
        bumped,
    );
}

/// A fetch of an absent entry answers `None`, with one version per tag
/// (created as `versions` creates them), and none without tags.
pub async fn fetch_absent<S: EntryStore + TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "fetch_absent";
    let store = connect.connect().await;
    let ns = namespace();
    let entry = key("never-written");
    let tags = ["a", "b"].map(String::from);
    let fetch = request(&ns, &entry, &tags);
    let fetched = ok(store.fetch(fetch).await, CHECK, "fetch");
    same(CHECK, "the entry of an absent key", &fetched.entry, &None);
    same(
        CHECK,
        "how many versions",
        fetched.versions.len(),
        fetch.tag_count(),
    );
    let tag_keys: Vec<String> = fetch.tag_keys().collect();
    let read = ok(store.versions(&tag_keys).await, CHECK, "versions");
    same(
        CHECK,
        "versions read after the fetch created them",
        &read,
        &fetched.versions,
    );

    let untagged = request(&ns, &entry, &[]);
    let fetched = ok(store.fetch(untagged).await, CHECK, "fetch");
    same(CHECK, "the entry of an absent key", &fetched.entry, &None);
    same(
        CHECK,
        "the versions of no tags",
        &fetched.versions,
        &Vec::new(),
    );
}

/// An entry past its TTL is absent (to `fetch` and `fetch_many`); one with
/// a longer TTL is still there.
pub async fn entry_expires<S: EntryStore + TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "entry_expires";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let (short, long) = (key("short"), key("long"));
    let (short, long) = (request(&ns, &short, &[]), request(&ns, &long, &[]));
    let ttl = Duration::from_millis(250);
    ok(
        one.put(&short.entry_key(), b"s".to_vec(), ttl).await,
        CHECK,
        "put",
    );
    ok(
        one.put(&long.entry_key(), b"l".to_vec(), MINUTE).await,
        CHECK,
        "put",
    );
    let fetched = ok(other.fetch(short).await, CHECK, "fetch");
    same(
        CHECK,
        "an entry just written",
        &fetched.entry,
        &Some(b"s".to_vec()),
    );

    let keys = vec![short.entry_key(), long.entry_key()];
    let gone = super::support::eventually(ttl + PROMPT, async || {
        ok(other.fetch_many(&keys).await, CHECK, "fetch_many")[0].is_none()
    })
    .await;
    assert!(
        gone,
        "conformance check `{CHECK}`: an entry with a TTL of 250 ms was still there after {:?}",
        ttl + PROMPT
    );
    let fetched = ok(other.fetch(short).await, CHECK, "fetch");
    same(CHECK, "an expired entry, fetched", &fetched.entry, &None);
    // Gone means gone for every call: a delete finds nothing to remove.
    same(
        CHECK,
        "delete of an expired entry (whether it existed)",
        ok(one.delete(&short.entry_key()).await, CHECK, "delete"),
        false,
    );
    let fetched = ok(other.fetch(long).await, CHECK, "fetch");
    same(
        CHECK,
        "an entry with a TTL of a minute",
        &fetched.entry,
        &Some(b"l".to_vec()),
    );
}

/// `put` replaces what was there; `delete` removes it and says whether it
/// existed; both seen from another connection.
pub async fn put_overwrite_delete<S: EntryStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "put_overwrite_delete";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let k = vec![format!("{}:entry", namespace())];
    ok(
        one.put(&k[0], b"first".to_vec(), MINUTE).await,
        CHECK,
        "put",
    );
    ok(
        other.put(&k[0], b"second".to_vec(), MINUTE).await,
        CHECK,
        "put",
    );
    let read = ok(one.fetch_many(&k).await, CHECK, "fetch_many");
    same(
        CHECK,
        "an overwritten entry",
        &read,
        &vec![Some(b"second".to_vec())],
    );
    same(
        CHECK,
        "delete of an entry that exists",
        ok(one.delete(&k[0]).await, CHECK, "delete"),
        true,
    );
    let read = ok(other.fetch_many(&k).await, CHECK, "fetch_many");
    same(CHECK, "a deleted entry", &read, &vec![None]);
    same(
        CHECK,
        "delete of an absent entry",
        ok(other.delete(&k[0]).await, CHECK, "delete"),
        false,
    );
}

/// `fetch_many` answers one item per key, in order, `None` for an absent
/// key (a key asked twice answered twice); no keys, no items.
pub async fn fetch_many_in_order<S: EntryStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "fetch_many_in_order";
    let store = connect.connect().await;
    let ns = namespace();
    let [a, b, absent] = ["a", "b", "absent"].map(|k| format!("{ns}:{k}"));
    ok(store.put(&a, b"A".to_vec(), MINUTE).await, CHECK, "put");
    ok(store.put(&b, b"B".to_vec(), MINUTE).await, CHECK, "put");
    let keys = vec![b.clone(), absent, a.clone(), b];
    let read = ok(store.fetch_many(&keys).await, CHECK, "fetch_many");
    let want = vec![
        Some(b"B".to_vec()),
        None,
        Some(b"A".to_vec()),
        Some(b"B".to_vec()),
    ];
    same(CHECK, "fetch_many of [b, absent, a, b]", &read, &want);
    let read = ok(store.fetch_many(&[]).await, CHECK, "fetch_many");
    same(CHECK, "fetch_many of no keys", &read, &Vec::new());
}

/// `put_many` stores every item, each with its TTL; no items is fine.
pub async fn put_many_stores_each<S: EntryStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "put_many_stores_each";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let items: Vec<(String, Vec<u8>, Duration)> = (0..5)
        .map(|i| {
            (
                format!("{ns}:{i}"),
                vec![i as u8; i + 1],
                MINUTE + Duration::from_secs(i as u64),
            )
        })
        .collect();
    ok(one.put_many(items.clone()).await, CHECK, "put_many");
    ok(one.put_many(Vec::new()).await, CHECK, "put_many of nothing");
    let keys: Vec<String> = items.iter().map(|(k, ..)| k.clone()).collect();
    let read = ok(other.fetch_many(&keys).await, CHECK, "fetch_many");
    let want: Vec<Option<Vec<u8>>> = items.into_iter().map(|(_, bytes, _)| Some(bytes)).collect();
    same(CHECK, "the entries put_many stored", &read, &want);
}

/// `ping` succeeds on a healthy store.
pub async fn ping_answers<S: EntryStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "ping_answers";
    ok(connect.connect().await.ping().await, CHECK, "ping");
}
