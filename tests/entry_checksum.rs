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

mod http_layer {
    //! The HTTP layer's stored responses are entries of the same format:
    //! flipped bits in one are never served either.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Request, Response};
    use axum::routing::get;
    use axum::Router;
    use cache_runtime::http::CacheLayer;
    use http_body_util::BodyExt;
    use integration_tests::redis_harness::RedisServer;
    use integration_tests::storage_only;
    use redis::AsyncCommands;
    use tower::ServiceExt;

    async fn origin(State(calls): State<Arc<AtomicUsize>>) -> Response<Body> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        Response::builder()
            .header("cache-control", "max-age=600")
            .header("content-type", "text/plain")
            .body(Body::from(format!(
                "response number {n}, a body of some length"
            )))
            .unwrap()
    }

    /// Status, the fields a client sees of the origin's, and the body.
    async fn fetch(app: &Router) -> (u16, String, String, String) {
        let request = Request::builder()
            .uri("/page")
            .header("host", "example.test")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let field = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        };
        let head = (
            response.status().as_u16(),
            field("cache-control"),
            field("content-type"),
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            head.0,
            head.1,
            head.2,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_flipped_bit_in_a_stored_response_is_never_served() {
        let server = RedisServer::start();
        let cache = storage_only(&server, "crc-http").await;
        let calls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/page", get(origin))
            .with_state(calls.clone())
            .layer(CacheLayer::new(cache.clone()));
        let original = fetch(&app).await;
        assert_eq!(fetch(&app).await, original, "a hit");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        // The stored response: the entry (magic "CE") with the body in it.
        let keys: Vec<String> = conn.keys("crc-http*").await.unwrap();
        let mut stored = Vec::new();
        for key in keys {
            if let Ok(bytes) = conn.get::<_, Vec<u8>>(&key).await {
                if bytes.starts_with(b"CE")
                    && bytes
                        .windows(original.3.len())
                        .any(|w| w == original.3.as_bytes())
                {
                    stored.push((key, bytes));
                }
            }
        }
        assert_eq!(stored.len(), 1, "{stored:?}");
        let (key, bytes) = stored.pop().unwrap();

        let mut rng = fastrand::Rng::with_seed(0x4177_b175);
        let (mut different, mut misses, flips) = (0, 0, 300);
        for _ in 0..flips {
            let bit = rng.usize(0..bytes.len() * 8);
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(&damaged)
                .arg("KEEPTTL")
                .query_async(&mut conn)
                .await
                .unwrap();
            let before = calls.load(Ordering::SeqCst);
            let got = fetch(&app).await;
            if calls.load(Ordering::SeqCst) > before {
                misses += 1;
            } else if got != original {
                different += 1;
            }
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(&bytes)
                .arg("KEEPTTL")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        assert_eq!(
            different, 0,
            "of {flips} flips, {different} served a different response ({misses} misses)"
        );
        assert_eq!(misses, flips, "every flip is a miss");
        assert_eq!(cache.stats().corrupt_entries, flips as u64);
    }
}
