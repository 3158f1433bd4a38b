//! Nothing meant for one client reaches another through the HTTP layer
//! (issue 16, items 1, 2, 3 and 10), on a real axum Router as the origin:
//! a `304` is held to the rules of a new response (its `Set-Cookie` goes to
//! the requesting client only, `private` / `no-store` end the sharing, a new
//! `Vary` re-keys), in foreground and background revalidation, in memory and
//! across two layers on one Redis; `Vary` compares bytes; a GET with a body
//! is never stored nor answered from the store; and an uncacheable target is
//! remembered (hit-for-miss), so concurrent requests for it reach the origin
//! together instead of queueing behind one.
//!
//! Each test counts the leaks over its rounds and asserts none, so that its
//! message gives the count (the "before" counts of the report come from it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use cache_runtime::http::CacheLayer;
use cache_runtime::Cache;
use http_body_util::BodyExt;
use integration_tests::redis_harness::RedisServer;
use tower::ServiceExt;

#[path = "trust_origin.rs"]
mod trust_origin;
use trust_origin::{reply, Origin};

fn app(cache: &Cache, origin: &Origin) -> Router {
    Router::new()
        .route("/{*path}", get(reply))
        .with_state(origin.clone())
        .layer(CacheLayer::new(cache.clone()))
}

struct Got {
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .map_or("", |v| v.to_str().unwrap())
    }
    /// Answered from the store (fresh or stale).
    fn hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }
    fn cookies(&self) -> String {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn req(path: &str, headers: &[(&str, &[u8])]) -> Request<Body> {
    let mut r = Request::get(path).header("host", "example.test");
    for (k, v) in headers {
        r = r.header(*k, HeaderValue::from_bytes(v).unwrap());
    }
    r.body(Body::empty()).unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> Got {
    let response = app.clone().oneshot(request).await.unwrap();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Got {
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A stored response that is stale at once and revalidated with `"v1"`;
/// `extra` adds to its `Cache-Control`.
fn stale_page(cc: &'static str, on_304: &[&'static str]) -> Vec<(&'static str, &'static [u8])> {
    let mut h: Vec<(&str, &[u8])> = vec![("x-reply", cc.as_bytes()), ("x-reply", b"etag: \"v1\"")];
    for f in on_304 {
        h.push(("x-reply-304", f.as_bytes()));
    }
    h
}

fn with_user<'a>(base: &[(&'a str, &'a [u8])], user: &'a str) -> Vec<(&'a str, &'a [u8])> {
    let mut h = base.to_vec();
    h.push(("x-user", user.as_bytes()));
    h
}

const ROUNDS: usize = 3;

/// Item 1, foreground: alice's request revalidates; the origin's 304 sets
/// her session cookie. She gets it; bob, next, never does.
async fn cookie_in_a_304(seed: &Router, alice: &Router, bob: &Router, prefix: &str) -> usize {
    let page = stale_page(
        "cache-control: max-age=0",
        &["set-cookie: sid={user}", "cache-control: max-age=60"],
    );
    let mut leaks = 0;
    for round in 0..ROUNDS {
        let path = format!("/{prefix}-cookie-{round}");
        send(seed, req(&path, &page)).await;
        let a = send(alice, req(&path, &with_user(&page, "alice"))).await;
        assert_eq!(a.cookies(), "sid=alice", "{}", a.cache_status());
        let b = send(bob, req(&path, &with_user(&page, "bob"))).await;
        if b.cookies().contains("alice") {
            leaks += 1;
        }
    }
    leaks
}

#[tokio::test]
async fn a_304_setting_a_cookie_reaches_only_its_client() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin);
    let leaks = cookie_in_a_304(&app, &app, &app, "fg").await;
    assert_eq!(leaks, 0, "bob got alice's cookie {leaks}/{ROUNDS}");
}

/// Item 1, background (stale-while-revalidate): alice is answered stale, her
/// request revalidates in the background and the 304 sets her cookie; bob,
/// after the revalidation ended, never gets it.
#[tokio::test]
async fn a_304_in_background_revalidation_is_not_shared() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin);
    let page = stale_page(
        "cache-control: max-age=0, stale-while-revalidate=60",
        &["set-cookie: sid={user}", "cache-control: max-age=60"],
    );
    let mut leaks = 0;
    for round in 0..ROUNDS {
        let path = format!("/bg-{round}");
        send(&app, req(&path, &page)).await;
        let before = origin.revalidated.load(Ordering::SeqCst);
        let a = send(&app, req(&path, &with_user(&page, "alice"))).await;
        assert!(a.cache_status().contains("stale-while-revalidate"));
        // Bob asks until the first revalidation is over: either its result
        // was stored (a fresh hit), or bob's own request started the next
        // one (a background revalidation starts only after the last ended).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let b = send(&app, req(&path, &with_user(&page, "bob"))).await;
            if b.cookies().contains("alice") {
                leaks += 1;
                break;
            }
            let fresh_hit = b.hit() && !b.cache_status().contains("stale");
            if fresh_hit || origin.revalidated.load(Ordering::SeqCst) >= before + 2 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no revalidation");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(leaks, 0, "bob got alice's cookie {leaks}/{ROUNDS}");
}

/// Item 1: a 304 that says `private` or `no-store` ends the sharing: bob's
/// next request is not answered from the store.
#[tokio::test]
async fn a_304_saying_private_or_no_store_ends_the_sharing() {
    let mut counts = Vec::new();
    for cc in [
        "cache-control: private, max-age=60",
        "cache-control: no-store, max-age=60",
    ] {
        let (cache, origin) = (Cache::memory(100), Origin::default());
        let app = app(&cache, &origin);
        let page = stale_page("cache-control: max-age=0", &[cc]);
        let mut leaks = 0;
        for round in 0..ROUNDS {
            let path = format!("/private-{round}");
            send(&app, req(&path, &page)).await;
            let a = send(&app, req(&path, &with_user(&page, "alice"))).await;
            assert!(a.cache_status().contains("fwd-status=304"));
            let b = send(&app, req(&path, &with_user(&page, "bob"))).await;
            if b.hit() {
                leaks += 1;
            }
        }
        counts.push(format!("{cc}: bob served from the store {leaks}/{ROUNDS}"));
    }
    assert!(counts.iter().all(|c| c.ends_with(" 0/3")), "{counts:?}");
}

/// Item 1: a 304 that adds `Vary: X-User` re-keys the stored response to
/// alice's variant: alice is served it, bob is not.
#[tokio::test]
async fn a_304_adding_vary_rekeys_the_response() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin);
    let page = stale_page(
        "cache-control: max-age=0",
        &["vary: x-user", "cache-control: max-age=60"],
    );
    let (mut leaks, mut alice_hits) = (0, 0);
    for round in 0..ROUNDS {
        let path = format!("/vary-{round}");
        send(&app, req(&path, &page)).await;
        send(&app, req(&path, &with_user(&page, "alice"))).await;
        if send(&app, req(&path, &with_user(&page, "alice")))
            .await
            .hit()
        {
            alice_hits += 1;
        }
        if send(&app, req(&path, &with_user(&page, "bob"))).await.hit() {
            leaks += 1;
        }
    }
    assert_eq!(leaks, 0, "bob served alice's variant {leaks}/{ROUNDS}");
    assert_eq!(alice_hits, ROUNDS, "alice's variant is stored");
}

async fn redis_cache(url: &str) -> Cache {
    Cache::builder()
        .namespace("trust")
        .memory(100)
        .redis(url)
        .build()
        .await
        .unwrap()
}

/// Item 1 across two layers on one Redis (two processes behind a load
/// balancer): what A stores after alice's 304 is what B serves to bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_is_held_to_the_rules_across_two_layers_on_one_redis() {
    let server = RedisServer::start();
    let (a, b) = (
        redis_cache(&server.url()).await,
        redis_cache(&server.url()).await,
    );
    let origin = Origin::default();
    let (app_a, app_b) = (app(&a, &origin), app(&b, &origin));
    let leaks = cookie_in_a_304(&app_a, &app_a, &app_b, "redis").await;
    assert_eq!(leaks, 0, "bob (on B) got alice's cookie {leaks}/{ROUNDS}");

    let page = stale_page(
        "cache-control: max-age=0",
        &["cache-control: private, max-age=60"],
    );
    let mut shared = 0;
    for round in 0..ROUNDS {
        let path = format!("/redis-private-{round}");
        send(&app_a, req(&path, &page)).await;
        send(&app_a, req(&path, &with_user(&page, "alice"))).await;
        if send(&app_b, req(&path, &with_user(&page, "bob")))
            .await
            .hit()
        {
            shared += 1;
        }
    }
    assert_eq!(
        shared, 0,
        "B served the private 304's response {shared}/{ROUNDS}"
    );
}

/// Item 2: `Vary` values that differ only in bytes that are not UTF-8 are
/// different variants, and such a variant survives the round trip through
/// Redis (another layer finds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_compares_header_bytes_not_their_lossy_text() {
    let server = RedisServer::start();
    let (a, b) = (
        redis_cache(&server.url()).await,
        redis_cache(&server.url()).await,
    );
    let origin = Origin::default();
    let (app_a, app_b) = (app(&a, &origin), app(&b, &origin));
    let fields: [(&str, &[u8]); 2] = [
        ("x-reply", b"cache-control: max-age=60"),
        ("x-reply", b"vary: x-token"),
    ];
    let token = |t: &'static [u8]| {
        let mut h = fields.to_vec();
        h.push(("x-token", t));
        h
    };
    let (mut shared, mut round_trips) = (0, 0);
    for round in 0..5 {
        let path = format!("/token-{round}");
        let first = send(&app_a, req(&path, &token(b"tok\xff\xfe\x80"))).await;
        assert!(first.body.contains("[746f6bfffe80]"), "{}", first.body);
        let other = send(&app_a, req(&path, &token(b"tok\xc0\xc1\x90"))).await;
        if other.hit() || !other.body.contains("[746f6bc0c190]") {
            shared += 1;
        }
        let again = send(&app_b, req(&path, &token(b"tok\xff\xfe\x80"))).await;
        if again.hit() && again.body == first.body {
            round_trips += 1;
        }
    }
    assert_eq!(shared, 0, "another token's variant served {shared}/5");
    assert_eq!(round_trips, 5, "the variant read back from Redis");
}

/// Item 3: a GET with content (a body, with or without `Content-Length`)
/// is passed through: never stored for a plain GET, never answered from
/// the store.
#[tokio::test]
async fn a_get_with_a_body_is_neither_stored_nor_served_from_the_store() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin);
    let fresh: [(&str, &[u8]); 1] = [("x-reply", b"cache-control: max-age=60")];
    let fat = |path: &str, length: bool| {
        let mut r = req(path, &fresh);
        if length {
            r.headers_mut()
                .insert("content-length", HeaderValue::from_static("4"));
        }
        *r.body_mut() = Body::from("EVIL");
        r
    };
    let (mut poisoned, mut answered) = (0, 0);
    for round in 0..5 {
        let path = format!("/fat-{round}");
        let f = send(&app, fat(&path, round % 2 == 0)).await;
        assert!(f.body.contains("content [EVIL]"), "{}", f.body);
        let plain = send(&app, req(&path, &fresh)).await;
        if plain.body.contains("EVIL") {
            poisoned += 1;
        }
        // Now stored by the plain GET: a GET with a body still goes on.
        let f = send(&app, fat(&path, round % 2 == 1)).await;
        if f.hit() || !f.body.contains("content [EVIL]") {
            answered += 1;
        }
    }
    assert_eq!(
        poisoned, 0,
        "a plain GET got the body-GET's answer {poisoned}/5"
    );
    assert_eq!(
        answered, 0,
        "a body-GET answered from the store {answered}/5"
    );
    // A GET whose body is empty is cached as usual.
    let mut r = req("/empty", &fresh);
    r.headers_mut()
        .insert("content-length", HeaderValue::from_static("0"));
    send(&app, r).await;
    assert!(send(&app, req("/empty", &fresh)).await.hit());
}

/// An origin for item 10: every request waits at a gate until `want`
/// requests are at the origin together (or 2 s pass), then answers with
/// `cache-control` as set.
#[derive(Clone)]
struct Gate {
    want: Arc<AtomicUsize>,
    arrived: tokio::sync::watch::Sender<usize>,
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    timeouts: Arc<AtomicUsize>,
    cc: Arc<std::sync::Mutex<&'static str>>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            want: Arc::new(AtomicUsize::new(1)),
            arrived: tokio::sync::watch::channel(0).0,
            in_flight: Arc::default(),
            most: Arc::default(),
            timeouts: Arc::default(),
            cc: Arc::new(std::sync::Mutex::new("private, max-age=60")),
        }
    }

    /// Starts a wave of `want` requests.
    fn expect(&self, want: usize) {
        self.want.store(want, Ordering::SeqCst);
        self.arrived.send_replace(0);
        self.most.store(0, Ordering::SeqCst);
    }
}

async fn gated(State(gate): State<Gate>) -> Response<Body> {
    let now = gate.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    gate.most.fetch_max(now, Ordering::SeqCst);
    gate.arrived.send_modify(|n| *n += 1);
    let want = gate.want.load(Ordering::SeqCst);
    let mut rx = gate.arrived.subscribe();
    let all = rx.wait_for(|n| *n >= want);
    if tokio::time::timeout(Duration::from_secs(2), all)
        .await
        .is_err()
    {
        gate.timeouts.fetch_add(1, Ordering::SeqCst);
    }
    gate.in_flight.fetch_sub(1, Ordering::SeqCst);
    let cc = *gate.cc.lock().unwrap();
    Response::builder()
        .status(StatusCode::OK)
        .header("cache-control", cc)
        .body(Body::from("gated"))
        .unwrap()
}

/// Item 10: once a target answered uncacheably, concurrent requests for it
/// reach the origin together (not one, then the rest). Paused time: the
/// gate's 2 s timeout only passes when requests queue.
#[tokio::test(start_paused = true)]
async fn an_uncacheable_target_is_not_coalesced_once_known() {
    const N: usize = 20;
    let gate = Gate::new();
    let app = Router::new()
        .route("/private", get(gated))
        .with_state(gate.clone())
        .layer(CacheLayer::new(Cache::memory(100)));
    let private = || {
        Request::get("/private")
            .header("host", "example.test")
            .body(Body::empty())
            .unwrap()
    };
    // The first answer tells the layer the target is uncacheable.
    let first = send(&app, private()).await;
    assert!(first.cache_status().contains("detail=private"));

    gate.expect(N);
    let started = tokio::time::Instant::now();
    let wave: Vec<_> = (0..N)
        .map(|_| tokio::spawn(send_owned(app.clone(), private())))
        .collect();
    for r in wave {
        r.await.unwrap();
    }
    let most = gate.most.load(Ordering::SeqCst);
    let timeouts = gate.timeouts.load(Ordering::SeqCst);
    let waited = started.elapsed();
    assert_eq!(
        (most, timeouts),
        (N, 0),
        "{most}/{N} at the origin together, {timeouts} gate timeouts, {waited:?} (paused time)"
    );

    // The target turns cacheable: stored, then served, and coalesced again.
    *gate.cc.lock().unwrap() = "max-age=60";
    gate.expect(1);
    let stored = send(&app, private()).await;
    assert!(
        stored.cache_status().contains("stored"),
        "{}",
        stored.cache_status()
    );
    assert!(send(&app, private()).await.hit());
}

async fn send_owned(app: Router, request: Request<Body>) -> Got {
    send(&app, request).await
}
