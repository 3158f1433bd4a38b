//! A stored entry damaged in Redis is never served: single bits flipped in
//! the stored bytes of structs, strings and integers, read back through the
//! cache (the `#[cached]` read path and the manual `get`), against a real
//! server. Every flip is a miss counted as corruption, and the entry is good
//! again after the load that follows.

use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::RedisServer;
use integration_tests::storage_only;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    roles: Vec<String>,
    email: Option<String>,
    scores: Vec<u32>,
}

fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("user number {id}"),
        roles: vec!["admin".to_owned(), "ops".to_owned()],
        email: Some(format!("u{id}@example.com")),
        scores: vec![1, 200, 70_000, id as u32],
    }
}

/// The function's result is the same on every load, so any other value
/// served came from a damaged entry.
#[cached(cache = cache, key = "profile:{id}", tags = ["user:{id}", "users"], ttl = "1h")]
async fn get_profile(cache: &Cache, id: u64) -> Profile {
    profile(id)
}

/// The one key of `namespace` in Redis whose name ends with `suffix`.
fn stored_key(server: &RedisServer, namespace: &str, suffix: &str) -> String {
    let keys = server.cli(&["KEYS", &format!("{namespace}*{suffix}")]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert_eq!(keys.len(), 1, "keys ending {suffix:?}: {keys:?}");
    keys[0].to_owned()
}

/// What one kind of entry did under its flips.
#[derive(Debug, Default)]
struct Tally {
    flips: u64,
    served_different: u64,
    misses: u64,
}

/// Flips `flips` seeded single bits of the entry under `key` (restoring the
/// original bytes between flips), calling `read` after each: it returns
/// `Some(true)` for the original value, `Some(false)` for another value, and
/// `None` for a miss.
async fn flip_bits<F, Fut>(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    rng: &mut fastrand::Rng,
    flips: u64,
    mut read: F,
) -> Tally
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<bool>>,
{
    let original: Vec<u8> = conn.get(key).await.expect("GET the stored entry");
    assert!(!original.is_empty(), "{key} holds no entry");
    let mut tally = Tally::default();
    for _ in 0..flips {
        let bit = rng.usize(0..original.len() * 8);
        let mut damaged = original.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(&damaged)
            .arg("KEEPTTL")
            .query_async(conn)
            .await
            .expect("SET the damaged entry");
        tally.flips += 1;
        match read().await {
            Some(true) => {}
            Some(false) => tally.served_different += 1,
            None => tally.misses += 1,
        }
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(&original)
            .arg("KEEPTTL")
            .query_async(conn)
            .await
            .expect("SET the original entry back");
    }
    tally
}

#[tokio::test]
async fn a_flipped_bit_in_a_stored_entry_is_never_served() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "crc").await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test server");
    let mut rng = fastrand::Rng::with_seed(0xb17_f11b);

    // Structs through `#[cached]` (a storage-only cache reads Redis on
    // every call): a miss reloads the same value, so only a damaged entry
    // can give another.
    assert_eq!(get_profile(&cache, 7).await, profile(7));
    let key = stored_key(&server, "crc", "profile:7");
    let structs = flip_bits(&mut conn, &key, &mut rng, 500, || async {
        let before = cache.stats().loads;
        let got = get_profile(&cache, 7).await;
        let loaded = cache.stats().loads > before;
        match (got == profile(7), loaded) {
            (false, _) => Some(false),
            (true, true) => None,
            (true, false) => Some(true),
        }
    })
    .await;

    // The call reads Redis again once it holds the load's lock: a flip is
    // met once or twice.
    let after_structs = cache.stats().corrupt_entries;

    // Strings and integers through the manual API: one read each.
    let text = "a plain string of some length, stored as one CBOR text".to_owned();
    cache.set("text", text.clone()).await.unwrap();
    let key = stored_key(&server, "crc", "text");
    let strings = flip_bits(&mut conn, &key, &mut rng, 500, || async {
        cache
            .get::<String>("text")
            .await
            .unwrap()
            .map(|got| got == text)
    })
    .await;

    cache.set("number", 1_234_567_890_123u64).await.unwrap();
    let key = stored_key(&server, "crc", "number");
    let integers = flip_bits(&mut conn, &key, &mut rng, 500, || async {
        cache
            .get::<u64>("number")
            .await
            .unwrap()
            .map(|got| got == 1_234_567_890_123)
    })
    .await;

    let tallies = [
        ("structs", structs),
        ("strings", strings),
        ("integers", integers),
    ];
    eprintln!("{tallies:?}");
    let flips: u64 = tallies.iter().map(|(_, t)| t.flips).sum();
    let different: u64 = tallies.iter().map(|(_, t)| t.served_different).sum();
    assert_eq!(
        different, 0,
        "of {flips} single-bit flips, {different} served a different value: {tallies:?}"
    );
    assert!(
        (500..=1000).contains(&after_structs),
        "struct flips counted as corruption: {after_structs}"
    );
    for (what, tally) in &tallies {
        assert_eq!(tally.misses, tally.flips, "{what}: every flip is a miss");
    }
    let stats = cache.stats();
    assert_eq!(
        stats.corrupt_entries - after_structs,
        1000,
        "every flip is counted as corruption"
    );
    assert_eq!(
        stats.decode_errors, stats.corrupt_entries,
        "and as a decode error"
    );

    // Good again after the load that follows a corrupt read.
    let before = cache.stats().loads;
    let key = stored_key(&server, "crc", "profile:7");
    let mut damaged: Vec<u8> = conn.get(&key).await.unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x80;
    let _: () = conn.set(&key, &damaged).await.unwrap();
    assert_eq!(get_profile(&cache, 7).await, profile(7));
    assert_eq!(
        cache.stats().loads,
        before + 1,
        "the corrupt entry is a miss"
    );
    let stored: Vec<u8> = conn.get(&key).await.unwrap();
    assert_ne!(stored, damaged, "the load overwrote the corrupt entry");
    assert_eq!(get_profile(&cache, 7).await, profile(7));
    assert_eq!(cache.stats().loads, before + 1, "and it is a hit again");
}

#[tokio::test]
async fn an_entry_of_the_previous_format_is_a_miss_not_a_fault() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "old").await;
    cache.set("n", 5u64).await.unwrap();
    let key = stored_key(&server, "old", "n");
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // A version 1 entry as builds before the checksum wrote it: the same
    // header with version 1, the CBOR of 5, no checksum.
    let stored: Vec<u8> = conn.get(&key).await.unwrap();
    let mut v1 = stored[..stored.len() - 8].to_vec();
    v1[2] = 1;
    let _: () = conn.set(&key, &v1).await.unwrap();
    assert_eq!(cache.get::<u64>("n").await.unwrap(), None, "a miss");
    let stats = cache.stats();
    assert_eq!((stats.decode_errors, stats.corrupt_entries), (0, 0));
    assert_eq!(stats.store_errors, 0);
}
