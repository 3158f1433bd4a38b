//! Two builds of one application that store different shapes of a type under
//! the same key (a field renamed, a tuple widened) share a store: each reads
//! the other's entry as a clean miss, counted in `Stats::schema_mismatches`
//! (not as a decode error nor as corruption), loads, and overwrites it;
//! never a decode error, never a value with a field silently defaulted.
//! Two `Cache`s over one in-process store stand for the two builds, and once
//! over a real Redis. The last test: an entry compressed by one cache
//! (`compress_above`) is read by a cache without the setting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use cache_runtime::store::in_process::InProcessStore;
use cache_runtime::{cached, Cache, Policy};
use integration_tests::redis_harness::RedisServer;
use serde::{Deserialize, Serialize};

/// The stored type, as the older build has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV1 {
    id: u64,
    name: String,
}

/// The newer build's: `name` renamed, with a default. Without the
/// fingerprint the older entry decoded as a `UserV2` with an empty
/// `full_name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV2 {
    id: u64,
    #[serde(default)]
    full_name: String,
}

/// Loads by (build, id): each test uses its own id, so the tests of this
/// file, which run in parallel, do not see each other's loads.
static LOADS: LazyLock<Mutex<HashMap<(u8, u64), u64>>> = LazyLock::new(Default::default);

fn count_load(build: u8, id: u64) {
    *LOADS.lock().unwrap().entry((build, id)).or_default() += 1;
}

fn loads(build: u8, id: u64) -> u64 {
    LOADS
        .lock()
        .unwrap()
        .get(&(build, id))
        .copied()
        .unwrap_or(0)
}

#[cached(name = "users.get", cache = cache, key = "user:{id}", ttl = "1h")]
async fn user_v1(cache: &Cache, id: u64) -> UserV1 {
    count_load(1, id);
    UserV1 {
        id,
        name: "ann (v1)".into(),
    }
}

#[cached(name = "users.get", cache = cache, key = "user:{id}", ttl = "1h")]
async fn user_v2(cache: &Cache, id: u64) -> UserV2 {
    count_load(2, id);
    UserV2 {
        id,
        full_name: "Ann Example (v2)".into(),
    }
}

async fn over(store: &InProcessStore, memory: bool) -> Cache {
    let builder = Cache::builder().namespace("schema").store(store.connect());
    let builder = if memory { builder.memory(100) } else { builder };
    builder.build().await.unwrap()
}

/// The renamed field, on caches built by `make` (all on one store).
async fn renamed_field_is_a_clean_miss<F, Fut>(make: F, id: u64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Cache>,
{
    let old = make().await;
    let new = make().await;
    let v1 = loads(1, id);
    let v2 = loads(2, id);

    // The older build stores its entry.
    assert_eq!(user_v1(&old, id).await.name, "ann (v1)");
    assert_eq!(loads(1, id), v1 + 1);

    // The newer build reads it: a clean miss, its own load, counted apart.
    let got = user_v2(&new, id).await;
    assert_eq!(
        got.full_name, "Ann Example (v2)",
        "the older entry was served as a UserV2 with its renamed field defaulted"
    );
    assert_eq!(loads(2, id), v2 + 1);
    // Counted per read of the entry: the miss reads it again under the
    // distributed lock.
    let stats = new.stats();
    assert!(stats.schema_mismatches >= 1, "{stats:?}");
    assert_eq!(
        (stats.decode_errors, stats.corrupt_entries),
        (0, 0),
        "{stats:?}"
    );

    // It overwrote the entry: a third process of the newer build hits it.
    let third = make().await;
    assert_eq!(user_v2(&third, id).await, got);
    assert_eq!(loads(2, id), v2 + 1);
    assert_eq!(third.stats().schema_mismatches, 0);
    assert_eq!(third.stats().remote_hits, 1);

    // And a fresh process of the older build misses it in turn.
    let fourth = make().await;
    assert_eq!(user_v1(&fourth, id).await.name, "ann (v1)");
    assert_eq!(loads(1, id), v1 + 2);
    assert!(fourth.stats().schema_mismatches >= 1);
    assert_eq!(fourth.stats().decode_errors, 0);
}

#[tokio::test]
async fn a_renamed_field_with_a_default_is_a_clean_miss_in_process() {
    let store = InProcessStore::new();
    renamed_field_is_a_clean_miss(|| over(&store, true), 1).await;
}

#[tokio::test]
async fn a_renamed_field_is_a_clean_miss_storage_only() {
    let store = InProcessStore::new();
    renamed_field_is_a_clean_miss(|| over(&store, false), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_field_with_a_default_is_a_clean_miss_on_redis() {
    let server = RedisServer::start();
    let url = server.url();
    let make = || async {
        Cache::builder()
            .namespace("schema")
            .memory(100)
            .redis(&url)
            .build()
            .await
            .unwrap()
    };
    renamed_field_is_a_clean_miss(make, 3).await;
}

/// The manual API, a tuple widened: without the fingerprint, a decode error
/// (the CBOR array is one element short); with it, a schema mismatch.
#[tokio::test]
async fn a_widened_tuple_is_a_clean_miss_through_the_manual_api() {
    let store = InProcessStore::new();
    let old = over(&store, true).await;
    let new = over(&store, true).await;
    let policy = Policy::new();
    let pair: Result<(u64, String), ()> = old
        .get_or_load("pair", &policy, [] as [&str; 0], || async {
            Ok((7, "seven".to_owned()))
        })
        .await;
    assert_eq!(pair, Ok((7, "seven".to_owned())));

    let loads = AtomicU64::new(0);
    let triple: Result<(u64, String, bool), ()> = new
        .get_or_load("pair", &policy, [] as [&str; 0], || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok((8, "eight".to_owned(), true))
        })
        .await;
    assert_eq!(triple, Ok((8, "eight".to_owned(), true)));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stats = new.stats();
    assert!(stats.schema_mismatches >= 1, "{stats:?}");
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    // `get` of the older type on a fresh cache: a miss, counted the same.
    let fresh = over(&store, false).await;
    assert_eq!(fresh.get::<(u64, String)>("pair").await.unwrap(), None);
    assert_eq!(fresh.stats().schema_mismatches, 1);
    assert_eq!(
        fresh.get::<(u64, String, bool)>("pair").await.unwrap(),
        Some((8, "eight".to_owned(), true))
    );
}

/// Compression is the writer's setting: a reader without it decompresses.
#[tokio::test]
async fn a_compressed_entry_is_read_by_a_cache_without_the_setting() {
    let store = InProcessStore::new();
    let writer = Cache::builder()
        .namespace("schema")
        .store(store.connect())
        .compress_above(1024)
        .build()
        .await
        .unwrap();
    let reader = over(&store, false).await;
    let users: Vec<UserV1> = (0..200)
        .map(|id| UserV1 {
            id,
            name: format!("user number {id}"),
        })
        .collect();
    writer.set("users", users.clone()).await.unwrap();
    assert_eq!(
        reader.get::<Vec<UserV1>>("users").await.unwrap(),
        Some(users)
    );
    let stats = reader.stats();
    assert_eq!(
        (stats.decode_errors, stats.schema_mismatches),
        (0, 0),
        "{stats:?}"
    );
}
