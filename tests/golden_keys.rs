//! Freezes the key format. If one of these fails, keys changed: every process
//! sharing a store with an older build would stop sharing entries. Change the
//! expected strings only on purpose, with a note in the changelog.
//!
//! Changed on purpose once, to make the key space injective (the grammar is in
//! `cache-runtime/src/key/mod.rs`): default keys were `{ns}:{name}[:v{N}]:{hash}`
//! and versioned template keys `{ns}:v{N}:{text}`, both of which a template
//! (`key = "v2:user:{id}"`, `key = "users.get:{h}"`) or a manual key could
//! render; they are now `{ns}:{name}[#v{N}]#{hash}` and `{ns}:{text}#v{N}`, with
//! `#` reserved. Unversioned template keys and shortened keys kept their
//! strings: they were safe once `~`, `#` and `%` are never left raw in values.

use cache_runtime::{cached, Cache};

async fn keys_after<F: std::future::Future>(cache: &Cache, call: F) -> Vec<String> {
    let before = cache.memory_keys();
    call.await;
    let mut new: Vec<String> = cache
        .memory_keys()
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    new.sort();
    new
}

#[cached(cache = cache, name = "users.get")]
async fn named(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(cache = cache, name = "users.get", version = 3)]
async fn named_v3(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(cache = cache)]
async fn default_name(cache: &Cache, id: u64, label: &str) -> String {
    format!("{id}{label}")
}

#[cached(cache = cache, key = "user:{id}")]
async fn templated(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(cache = cache, key = "user:{id}", version = 2)]
async fn templated_v2(cache: &Cache, id: u64) -> u64 {
    id + 1
}

#[cached(cache = cache, key = "pair:{a}:{b}")]
async fn pair(cache: &Cache, a: &str, b: &str) -> u8 {
    (a.len() + b.len()) as u8
}

#[cached(cache = cache, key = "long:{text}")]
async fn long(cache: &Cache, text: &str) -> usize {
    text.len()
}

#[tokio::test]
async fn key_strings_are_frozen() {
    let cache = Cache::builder()
        .namespace("golden")
        .memory(100)
        .build()
        .await
        .unwrap();
    let c = &cache;
    assert_eq!(
        keys_after(c, named(c, 7)).await,
        ["golden:users.get#8b8c62e3760c5dcfc47cb1ae35b2dcad"]
    );
    assert_eq!(
        keys_after(c, named_v3(c, 7)).await,
        ["golden:users.get#v3#8b8c62e3760c5dcfc47cb1ae35b2dcad"]
    );
    assert_eq!(
        keys_after(c, default_name(c, 7, "x")).await,
        ["golden:golden_keys::default_name#63e4681be72a0f7a5adfc9949e6cef98"]
    );
    assert_eq!(keys_after(c, templated(c, 7)).await, ["golden:user:7"]);
    assert_eq!(
        keys_after(c, templated_v2(c, 7)).await,
        ["golden:user:7#v2"]
    );
    assert_eq!(
        keys_after(c, pair(c, "a:b", "c%")).await,
        ["golden:pair:a%3Ab:c%25"]
    );
    let text = "x".repeat(300);
    assert_eq!(
        keys_after(c, long(c, &text)).await,
        [format!(
            "golden:long:{}~8afcd21f6e15347918bf32aaa33c2062",
            "x".repeat(188)
        )]
    );
}
