//! The one remote read (`remote::read`): round trips per remote hit of the
//! manual API, counted on the in-process store's handle of the reading
//! process. Time is paused so that the background confirmation (a
//! `versions` read each second) cannot run inside a measured call.

use std::time::Duration;

use cache_runtime::store::in_process::{Counts, InProcessStore, Op};
use cache_runtime::{Cache, Policy};

/// The reads of a remote hit: entries and tag versions.
fn reads(counts: &Counts) -> u64 {
    counts.get(Op::Fetch) + counts.get(Op::FetchMany) + counts.get(Op::Versions)
}

/// A process with a backplane: `reader` over its own handle to `backend`.
async fn process(backend: &InProcessStore, backplane: bool) -> (Cache, InProcessStore) {
    let handle = backend.connect();
    let mut builder = Cache::builder().store(handle.clone()).namespace("one");
    if backplane {
        builder = builder.backplane(handle.clone());
    }
    let cache = builder.build().await.expect("cache builds");
    if backplane {
        // Subscribed: the known-versions table is trusted from now on.
        while cache.health().await.and_then(|h| h.backplane) != Some(true) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (cache, handle)
}

/// Round trips of `get(key)` in `cache` (a hit asserted).
async fn get_trips(cache: &Cache, handle: &InProcessStore, key: &str) -> u64 {
    let before = handle.counts();
    let got = cache.get::<u32>(key).await.expect("get");
    assert_eq!(got, Some(7), "{key} is a remote hit");
    reads(&handle.counts().since(&before))
}

#[tokio::test(start_paused = true)]
async fn an_untagged_get_hit_costs_one_round_trip() {
    let backend = InProcessStore::new();
    let (writer, _) = process(&backend, false).await;
    writer.set("a", 7u32).await.expect("set");
    let (reader, handle) = process(&backend, true).await;
    assert_eq!(get_trips(&reader, &handle, "a").await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_tagged_get_hit_costs_one_round_trip_once_its_tags_are_known() {
    let backend = InProcessStore::new();
    let (writer, _) = process(&backend, true).await;
    for key in ["t1", "t2", "t3"] {
        writer
            .set_with(key, 7u32, &Policy::ttl(Duration::from_secs(3600)), ["t"])
            .await
            .expect("set");
    }
    let (reader, handle) = process(&backend, true).await;
    // The first read learns the tag's version from the store.
    assert_eq!(get_trips(&reader, &handle, "t1").await, 2);
    // Known and confirmed: the entry alone.
    assert_eq!(get_trips(&reader, &handle, "t2").await, 1);
    // Invalidated by another process: once its message lands, the entry
    // (recorded with the old version) is no hit. Without the message the
    // known version would be trusted for at most a second, as the macro's.
    writer.invalidate_tags(["t"]).await.expect("invalidate");
    let mut polls = 0;
    while reader.get::<u32>("t3").await.expect("get").is_some() {
        polls += 1;
        assert!(polls < 1000, "the invalidation never reached the reader");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_tagged_get_hit_without_a_backplane_costs_two_round_trips() {
    let backend = InProcessStore::new();
    let (writer, _) = process(&backend, false).await;
    for key in ["u1", "u2"] {
        writer
            .set_with(key, 7u32, &Policy::ttl(Duration::from_secs(3600)), ["u"])
            .await
            .expect("set");
    }
    let (reader, handle) = process(&backend, false).await;
    assert_eq!(get_trips(&reader, &handle, "u1").await, 2);
    assert_eq!(get_trips(&reader, &handle, "u2").await, 2);
}

#[tokio::test(start_paused = true)]
async fn get_many_reads_every_entry_in_one_round_trip() {
    let backend = InProcessStore::new();
    let (writer, _) = process(&backend, false).await;
    let policy = Policy::ttl(Duration::from_secs(3600));
    writer
        .set_many([("m1", 7u32), ("m2", 7u32), ("m3", 7u32)], &policy)
        .await
        .expect("set_many");
    for key in ["n1", "n2", "n3", "n4"] {
        writer
            .set_with(key, 7u32, &policy, ["n"])
            .await
            .expect("set");
    }
    let (reader, handle) = process(&backend, true).await;
    let before = handle.counts();
    let got = reader
        .get_many::<u32, _>(&["m1", "absent", "m2", "m3"])
        .await
        .expect("get_many");
    assert_eq!(got, vec![Some(7), None, Some(7), Some(7)]);
    assert_eq!(reads(&handle.counts().since(&before)), 1);
    // Tagged: the first batch learns the tag, the next reads entries only.
    let before = handle.counts();
    let got = reader
        .get_many::<u32, _>(&["n1", "n2"])
        .await
        .expect("get_many");
    assert_eq!(got, vec![Some(7), Some(7)]);
    assert_eq!(reads(&handle.counts().since(&before)), 2);
    let before = handle.counts();
    let got = reader
        .get_many::<u32, _>(&["n3", "n4"])
        .await
        .expect("get_many");
    assert_eq!(got, vec![Some(7), Some(7)]);
    assert_eq!(reads(&handle.counts().since(&before)), 1);
}

/// `GET`s and `MGET`s the server has run: the reads of a remote hit.
fn redis_reads(server: &integration_tests::redis_harness::RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    integration_tests::command_calls(&stats, "get")
        + integration_tests::command_calls(&stats, "mget")
}

/// On Redis: a tagged `get` hit is one command once the tag is known (a
/// background confirmation or write-counter read, a few a second, may add a
/// few to the 200 measured), and `get_many` of many keys is one `MGET`.
#[tokio::test]
async fn on_redis_a_tagged_get_hit_is_one_command() {
    let server = integration_tests::redis_harness::RedisServer::start();
    let writer = integration_tests::storage_only(&server, "one").await;
    let policy = Policy::ttl(Duration::from_secs(3600));
    let keys: Vec<String> = (0..=200).map(|i| format!("r{i}")).collect();
    for key in &keys {
        writer
            .set_with(key, 7u32, &policy, ["r"])
            .await
            .expect("set");
    }
    let reader = integration_tests::storage_only(&server, "one").await;
    let started = std::time::Instant::now();
    while reader.health().await.and_then(|h| h.backplane) != Some(true) {
        assert!(started.elapsed() < Duration::from_secs(10), "no backplane");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reader.get::<u32>(&keys[0]).await.expect("get"), Some(7));
    let before = redis_reads(&server);
    for key in &keys[1..] {
        assert_eq!(reader.get::<u32>(key).await.expect("get"), Some(7));
    }
    let per_hit = (redis_reads(&server) - before) as f64 / 200.0;
    eprintln!("Redis reads per tagged get hit: {per_hit:.3}");
    assert!(per_hit < 1.1, "{per_hit} reads per hit");
    let before = redis_reads(&server);
    let got = reader
        .get_many::<u32, _>(&keys[1..])
        .await
        .expect("get_many");
    assert!(got.iter().all(|v| *v == Some(7)));
    let reads = redis_reads(&server) - before;
    eprintln!("Redis reads of a get_many of 200 tagged hits: {reads}");
    assert!(reads <= 2, "{reads} reads for one get_many");
}

/// An HTTP remote hit (a response stored with a tag by another process)
/// reads through the same path: one round trip once the tag is known.
#[tokio::test(start_paused = true)]
async fn an_http_remote_hit_costs_one_round_trip_once_its_tags_are_known() {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    let backend = InProcessStore::new();
    let (a, _) = process(&backend, true).await;
    let (b, handle) = process(&backend, true).await;
    let app = |cache: &Cache| {
        axum::Router::new()
            .route(
                "/{*path}",
                get(|| async {
                    (
                        [("cache-control", "max-age=600"), ("cache-tag", "h")],
                        "body",
                    )
                }),
            )
            .layer(cache_runtime::http::CacheLayer::new(cache.clone()))
    };
    let (app_a, app_b) = (app(&a), app(&b));
    let request = |path: &str| {
        Request::get(path)
            .header("host", "example.test")
            .body(Body::empty())
            .expect("request")
    };
    for path in ["/one", "/two"] {
        let response = app_a.clone().oneshot(request(path)).await.expect("served");
        assert!(response.status().is_success());
    }
    let mut trips = Vec::new();
    // Each response also carries a tag of its URI (for unsafe methods'
    // invalidations): the same URI twice, from a process without memory.
    for path in ["/one", "/one", "/two"] {
        let before = handle.counts();
        let response = app_b.clone().oneshot(request(path)).await.expect("served");
        let status = response
            .headers()
            .get("cache-status")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        assert!(status.contains("; hit"), "{path}: {status}");
        trips.push(reads(&handle.counts().since(&before)));
    }
    // The first hit learns the tags' versions; the second reads the entry
    // alone; another URI has a tag not known yet.
    assert_eq!(trips, vec![2, 1, 2]);
}
