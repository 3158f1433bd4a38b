//! The `remote_hit` paths: a `#[cached]` hit on a storage-only cache (no
//! memory tier) over the in-process store, so every call is one remote read
//! (`remote::read::read_one`) without a network: its instructions are as
//! deterministic as a memory hit's.
//!
//! As the memory paths: a `u64` argument cycling over `1..=1000`, all
//! warmed first, answered with a 100-byte `String`; `lock = "local"`.

use std::sync::OnceLock;

use cache_runtime::store::in_process::InProcessStore;
use cache_runtime::Cache;
use tokio::runtime::Runtime;

use crate::memory::{hits, value_for};

static UNTAGGED: OnceLock<Cache> = OnceLock::new();
static TAGGED: OnceLock<Cache> = OnceLock::new();

fn cache(cell: &'static OnceLock<Cache>) -> &'static Cache {
    cell.get().expect("built before the calls")
}

#[cache_runtime::cached(ttl = "10m", lock = "local", cache = cache(&UNTAGGED))]
async fn untagged_item(id: u64) -> String {
    value_for(id)
}

#[cache_runtime::cached(
    ttl = "10m",
    lock = "local",
    tags = ["item:{id}", "items"],
    cache = cache(&TAGGED)
)]
async fn tagged_item(id: u64) -> String {
    value_for(id)
}

/// A storage-only cache on a fresh in-process store.
fn init(rt: &Runtime, cell: &'static OnceLock<Cache>, name: &str) {
    let cache = rt.block_on(async {
        Cache::builder()
            .namespace(name)
            .store(InProcessStore::new())
            .metrics(false)
            .build()
            .await
            .expect("a storage-only cache builds")
    });
    assert!(cell.set(cache).is_ok(), "each path runs once per process");
}

/// `remote_hit`: a storage-only hit, no tags.
pub fn untagged(rt: &Runtime, calls: u64) {
    init(rt, &UNTAGGED, "remote");
    hits(rt, calls, untagged_item);
}

/// `remote_hit_tagged`: a storage-only hit of an entry with two tags, whose
/// versions are read with it (no backplane: no known-versions table).
pub fn tagged(rt: &Runtime, calls: u64) {
    init(rt, &TAGGED, "remote-tagged");
    hits(rt, calls, tagged_item);
}
