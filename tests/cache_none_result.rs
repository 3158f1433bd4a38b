//! `cache_none = false` on `Result<Option<T>, E>`, the shape of a database
//! lookup: `Ok(None)` is returned and not stored (the function runs again),
//! `Ok(Some(_))` is stored, `Err` never is. In a memory cache, and with the
//! in-process store as the remote tier (storage only and write-through), where
//! a second cache over the same store shows what reached the remote tier.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::store::in_process::InProcessStore;
use cache_runtime::{cached, Cache};

/// The function's runs, per test (each test has its own counter).
struct Lookup {
    runs: AtomicUsize,
}

impl Lookup {
    const fn new() -> Self {
        Self {
            runs: AtomicUsize::new(0),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A lookup: id 0 is an error, odd ids are absent, even ids are found.
fn find(lookup: &Lookup, id: u64) -> Result<Option<String>, String> {
    lookup.runs.fetch_add(1, Ordering::SeqCst);
    match id {
        0 => Err("db down".to_owned()),
        id if id % 2 == 1 => Ok(None),
        id => Ok(Some(format!("user {id}"))),
    }
}

static MEMORY: Lookup = Lookup::new();
#[cached(cache = cache, key = "user:{id}", ttl = "1h", cache_none = false)]
async fn find_in_memory(cache: &Cache, id: u64) -> Result<Option<String>, String> {
    find(&MEMORY, id)
}

static DEFAULT: Lookup = Lookup::new();
#[cached(cache = cache, key = "user:{id}", ttl = "1h")]
async fn find_storing_none(cache: &Cache, id: u64) -> Result<Option<String>, String> {
    find(&DEFAULT, id)
}

static REMOTE: Lookup = Lookup::new();
#[cached(cache = cache, key = "user:{id}", ttl = "1h", cache_none = false)]
async fn find_remote(cache: &Cache, id: u64) -> Result<Option<String>, String> {
    find(&REMOTE, id)
}

#[tokio::test]
async fn ok_none_is_not_stored_in_memory() {
    let cache = Cache::memory(100);
    assert_eq!(find_in_memory(&cache, 1).await, Ok(None));
    assert_eq!(find_in_memory(&cache, 1).await, Ok(None));
    assert_eq!(MEMORY.runs(), 2, "Ok(None) was stored");

    assert_eq!(find_in_memory(&cache, 2).await, Ok(Some("user 2".into())));
    assert_eq!(find_in_memory(&cache, 2).await, Ok(Some("user 2".into())));
    assert_eq!(MEMORY.runs(), 3, "Ok(Some) was not stored");

    assert_eq!(find_in_memory(&cache, 0).await, Err("db down".into()));
    assert_eq!(find_in_memory(&cache, 0).await, Err("db down".into()));
    assert_eq!(MEMORY.runs(), 5, "an Err was stored");
}

/// Without `cache_none = false`, `Ok(None)` is stored, as before.
#[tokio::test]
async fn ok_none_is_stored_by_default() {
    let cache = Cache::memory(100);
    assert_eq!(find_storing_none(&cache, 1).await, Ok(None));
    assert_eq!(find_storing_none(&cache, 1).await, Ok(None));
    assert_eq!(DEFAULT.runs(), 1);
}

#[tokio::test]
async fn ok_none_is_not_stored_in_the_remote_tier() {
    let store = InProcessStore::new();
    let build = |memory: bool| {
        let mut builder = Cache::builder()
            .namespace("cache-none-result")
            .store(store.connect());
        if memory {
            builder = builder.memory(100);
        }
        builder.build()
    };
    let storage_only = build(false).await.expect("build storage-only");
    let write_through = build(true).await.expect("build write-through");

    assert_eq!(find_remote(&storage_only, 1).await, Ok(None));
    assert_eq!(find_remote(&storage_only, 1).await, Ok(None));
    assert_eq!(find_remote(&write_through, 1).await, Ok(None));
    assert_eq!(REMOTE.runs(), 3, "Ok(None) reached the store");

    assert_eq!(
        find_remote(&storage_only, 2).await,
        Ok(Some("user 2".into()))
    );
    assert_eq!(
        find_remote(&storage_only, 2).await,
        Ok(Some("user 2".into()))
    );
    // The other cache reads it from the shared store.
    assert_eq!(
        find_remote(&write_through, 2).await,
        Ok(Some("user 2".into()))
    );
    assert_eq!(REMOTE.runs(), 4, "Ok(Some) was not stored in the store");
}
