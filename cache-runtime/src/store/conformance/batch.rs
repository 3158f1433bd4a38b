//! Checks of [`EntryStore::fetch_batch`]: many reads at once.

use std::time::Duration;

use super::support::{key, namespace, ok, request, same};
use super::Connect;
use crate::store::{EntryStore, Fetched, TagStore};

const MINUTE: Duration = Duration::from_secs(60);

/// `fetch_batch` answers one [`Fetched`] per request, in order, each what
/// `fetch` answers for it (from another connection): entries present and
/// absent, with and without tags, tags shared between requests, a request
/// repeated; no requests, no answers.
pub async fn fetch_batch_as_fetch<S: EntryStore + TagStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "fetch_batch_as_fetch";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let ns = namespace();
    let (a, b, absent) = (key("a"), key("b"), key("absent"));
    let a_tags = ["x", "y"].map(String::from);
    let absent_tags = ["y", "z"].map(String::from);
    let requests = [
        request(&ns, &a, &a_tags),
        request(&ns, &b, &[]),
        request(&ns, &absent, &absent_tags),
        request(&ns, &a, &a_tags),
    ];
    for (request, bytes) in [(requests[0], b"entry a"), (requests[1], b"entry b")] {
        ok(
            one.put(&request.entry_key(), bytes.to_vec(), MINUTE).await,
            CHECK,
            "put",
        );
    }
    // Versions that differ between the tags, so that an answer in another
    // order shows.
    let y: Vec<String> = requests[0].tag_keys().skip(1).collect();
    ok(one.bump(&y).await, CHECK, "bump");

    let batch = ok(other.fetch_batch(&requests).await, CHECK, "fetch_batch");
    let mut want = Vec::new();
    for request in requests {
        want.push(ok(other.fetch(request).await, CHECK, "fetch"));
    }
    same(CHECK, "fetch_batch against fetch of each", &batch, &want);
    same(
        CHECK,
        "the entries fetch_batch read",
        &batch.iter().map(|f| f.entry.clone()).collect::<Vec<_>>(),
        &vec![
            Some(b"entry a".to_vec()),
            Some(b"entry b".to_vec()),
            None,
            Some(b"entry a".to_vec()),
        ],
    );
    for (i, request) in requests.iter().enumerate() {
        same(
            CHECK,
            &format!("the number of versions of request {i}"),
            batch[i].versions.len(),
            request.tag_count(),
        );
    }
    let one_request = ok(
        other.fetch_batch(&requests[..1]).await,
        CHECK,
        "fetch_batch",
    );
    same(
        CHECK,
        "fetch_batch of one request",
        &one_request,
        &want[..1].to_vec(),
    );
    let untagged = [requests[1], request(&ns, &absent, &[])];
    let read = ok(other.fetch_batch(&untagged).await, CHECK, "fetch_batch");
    same(
        CHECK,
        "fetch_batch of requests without tags",
        &read,
        &vec![
            Fetched::new(Some(b"entry b".to_vec()), Vec::new()),
            Fetched::new(None, Vec::new()),
        ],
    );
    let none = ok(other.fetch_batch(&[]).await, CHECK, "fetch_batch");
    same(CHECK, "fetch_batch of no requests", &none, &Vec::new());
}
