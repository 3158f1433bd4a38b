//! The HTTP layer on a real axum Router: what is stored and served (RFC 9111
//! as a shared cache), what never is, tags, invalidation, revalidation,
//! stale serving, single flight, and random headers that must not panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use cache_runtime::http::CacheLayer;
use cache_runtime::Cache;
use http_body_util::BodyExt;
use integration_tests::redis_harness::RedisServer;
use tower::ServiceExt;

/// An origin whose answer the test sets per request through `x-reply-*`
/// request headers (a status, header fields), counting its calls.
#[derive(Clone, Default)]
struct Origin {
    calls: Arc<AtomicUsize>,
}

impl Origin {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn reply(State(origin): State<Origin>, headers: HeaderMap) -> Response<Body> {
    let n = origin.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(ms) = headers.get("x-delay-ms") {
        let ms: u64 = ms.to_str().unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut response = Response::builder();
    // `x-reply: name: value` lines become the response's fields; `x-status`
    // its status; `x-status-after: N=S` the status from call N on.
    for value in headers.get_all("x-reply") {
        let (name, value) = value.to_str().unwrap().split_once(": ").unwrap();
        response = response.header(name, value);
    }
    let mut status: u16 = headers
        .get("x-status")
        .map_or(200, |s| s.to_str().unwrap().parse().unwrap());
    if let Some(after) = headers.get("x-status-after") {
        let (from, s) = after.to_str().unwrap().split_once('=').unwrap();
        if n >= from.parse().unwrap() {
            status = s.parse().unwrap();
        }
    }
    // Revalidation: answer 304 when the request's validator matches.
    if headers.get("x-answer-304").is_some() && headers.get("if-none-match").is_some() {
        let mut r = Response::builder().status(304);
        for value in headers.get_all("x-reply-304") {
            let (name, value) = value.to_str().unwrap().split_once(": ").unwrap();
            r = r.header(name, value);
        }
        return r.body(Body::empty()).unwrap();
    }
    let cookie = headers
        .get("cookie")
        .map(|c| c.to_str().unwrap().to_string())
        .unwrap_or_default();
    response
        .status(status)
        .body(Body::from(format!("call {n} cookie [{cookie}]")))
        .unwrap()
}

fn app(cache: &Cache, origin: &Origin, layer: impl FnOnce(CacheLayer) -> CacheLayer) -> Router {
    Router::new()
        .route("/{*path}", get(reply).post(reply).delete(reply))
        .with_state(origin.clone())
        .layer(layer(CacheLayer::new(cache.clone())))
}

/// A request to `path` whose origin answer carries `reply` fields.
fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "example.test");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Body::empty()).unwrap()
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .map_or("", |v| v.to_str().unwrap())
    }
    fn hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }
}

async fn send(app: &Router, request: Request<Body>) -> Got {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

const FRESH: (&str, &str) = ("x-reply", "cache-control: max-age=60");

#[tokio::test]
async fn a_fresh_response_is_stored_and_served_with_age() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let first = send(&app, req("GET", "/a", &[FRESH])).await;
    assert_eq!(first.status, 200);
    assert!(
        first.cache_status().contains("fwd=uri-miss; stored"),
        "{}",
        first.cache_status()
    );
    let second = send(&app, req("GET", "/a", &[FRESH])).await;
    assert!(second.hit(), "{}", second.cache_status());
    assert_eq!(second.body, "call 1 cookie []");
    assert_eq!(second.headers["age"], "0");
    assert_eq!(second.headers["cache-control"], "max-age=60");
    // HEAD is answered from the stored GET response, without a body.
    let head = send(&app, req("HEAD", "/a", &[])).await;
    assert!(head.hit());
    assert_eq!(head.body, "");
    // Another path, another query: other entries.
    send(&app, req("GET", "/a?x=1", &[FRESH])).await;
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn age_counts_what_the_origin_said_and_the_time_stored() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    send(&app, req("GET", "/aged", &[FRESH, ("x-reply", "age: 30")])).await;
    let got = send(&app, req("GET", "/aged", &[])).await;
    assert!(got.hit());
    let age: u64 = got.headers["age"].to_str().unwrap().parse().unwrap();
    assert!((30..=31).contains(&age), "{age}");
}

#[tokio::test]
async fn without_freshness_only_the_layers_ttl_stores() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let strict = app(&cache, &origin, |l| l);
    send(&strict, req("GET", "/plain", &[])).await;
    let again = send(&strict, req("GET", "/plain", &[])).await;
    assert!(again.cache_status().contains("detail=no-freshness"));
    assert_eq!(origin.calls(), 2);
    let with_ttl = app(&cache, &origin, |l| l.ttl(Duration::from_secs(60)));
    send(&with_ttl, req("GET", "/plain", &[])).await;
    assert!(send(&with_ttl, req("GET", "/plain", &[])).await.hit());
    // Not a status a cache may guess about.
    send(&with_ttl, req("GET", "/302", &[("x-status", "302")])).await;
    send(&with_ttl, req("GET", "/302", &[("x-status", "302")])).await;
    assert_eq!(origin.calls(), 5);
}

#[tokio::test]
async fn set_cookie_private_and_no_store_are_never_stored() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l.ttl(Duration::from_secs(60)));
    for (path, field) in [
        ("/cookie", "set-cookie: session=secret"),
        ("/private", "cache-control: private, max-age=60"),
        ("/nostore", "cache-control: no-store, max-age=60"),
        ("/public-cookie", "set-cookie: s=1"),
    ] {
        let extra = if path == "/public-cookie" {
            ("x-reply", "cache-control: public, max-age=60")
        } else {
            ("x-none", "")
        };
        let before = origin.calls();
        let first = send(&app, req("GET", path, &[("x-reply", field), extra])).await;
        let second = send(&app, req("GET", path, &[("x-reply", field), extra])).await;
        assert!(!second.hit(), "{path}: {}", second.cache_status());
        assert_eq!(origin.calls(), before + 2, "{path}");
        assert_ne!(first.body, second.body, "{path}");
    }
    // A request's no-store: its response is not stored either.
    send(
        &app,
        req("GET", "/rq", &[FRESH, ("cache-control", "no-store")]),
    )
    .await;
    assert!(!send(&app, req("GET", "/rq", &[FRESH])).await.hit());
}

#[tokio::test]
async fn authorization_is_stored_only_where_the_response_allows_it() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l.ttl(Duration::from_secs(60)));
    let auth = ("authorization", "Bearer alice");
    send(&app, req("GET", "/me", &[auth, FRESH])).await;
    let other = send(
        &app,
        req("GET", "/me", &[("authorization", "Bearer bob"), FRESH]),
    )
    .await;
    assert!(
        !other.hit(),
        "max-age alone does not share an authorized response"
    );
    assert_eq!(origin.calls(), 2);
    let public = ("x-reply", "cache-control: public, max-age=60");
    send(&app, req("GET", "/shared", &[auth, public])).await;
    assert!(send(
        &app,
        req("GET", "/shared", &[("authorization", "Bearer bob")])
    )
    .await
    .hit());
}

#[tokio::test]
async fn vary_on_cookie_keeps_users_apart_and_vary_star_is_never_served() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let vary = ("x-reply", "vary: Cookie");
    let alice = send(
        &app,
        req("GET", "/v", &[FRESH, vary, ("cookie", "user=alice")]),
    )
    .await;
    let bob = send(
        &app,
        req("GET", "/v", &[FRESH, vary, ("cookie", "user=bob")]),
    )
    .await;
    assert!(!bob.hit(), "{}", bob.cache_status());
    assert!(bob.body.contains("user=bob"));
    let alice2 = send(&app, req("GET", "/v", &[("cookie", "user=alice")])).await;
    assert!(alice2.hit());
    assert_eq!(alice2.body, alice.body);
    let bob2 = send(&app, req("GET", "/v", &[("cookie", "user=bob")])).await;
    assert_eq!(bob2.body, bob.body);
    let nobody = send(&app, req("GET", "/v", &[FRESH, vary])).await;
    assert!(!nobody.hit() && nobody.body.contains("cookie []"));
    assert_eq!(origin.calls(), 3);

    let star = ("x-reply", "vary: *");
    send(&app, req("GET", "/star", &[FRESH, star])).await;
    let again = send(&app, req("GET", "/star", &[FRESH, star])).await;
    assert!(again.cache_status().contains("detail=vary-star"));
    assert_eq!(origin.calls(), 5);
}

#[tokio::test]
async fn cache_tags_tag_the_response_and_never_leave() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| {
        l.tags(|req| vec![format!("path:{}", req.uri.path())])
    });
    let tagged = ("x-reply", "cache-tag: user:7, users");
    let first = send(&app, req("GET", "/u/7", &[FRESH, tagged])).await;
    assert!(first.headers.get("cache-tag").is_none());
    let hit = send(&app, req("GET", "/u/7", &[])).await;
    assert!(hit.hit() && hit.headers.get("cache-tag").is_none());
    // Not stored, still stripped.
    let private = ("x-reply", "cache-control: private");
    let passed = send(&app, req("GET", "/p", &[private, tagged])).await;
    assert!(passed.headers.get("cache-tag").is_none());
    cache.invalidate_tags(["user:7"]).await.unwrap();
    assert!(!send(&app, req("GET", "/u/7", &[FRESH, tagged])).await.hit());
    assert!(send(&app, req("GET", "/u/7", &[])).await.hit());
    // The layer's own tags.
    cache.invalidate_tags(["path:/u/7"]).await.unwrap();
    assert!(!send(&app, req("GET", "/u/7", &[FRESH])).await.hit());
    assert_eq!(origin.calls(), 4);
}

#[tokio::test]
async fn unsafe_methods_invalidate_their_uri_and_same_origin_locations() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let vary = ("x-reply", "vary: accept");
    for path in ["/items/1", "/items/2", "/items/3", "/other"] {
        send(&app, req("GET", path, &[FRESH, vary, ("accept", "a")])).await;
        send(&app, req("GET", path, &[FRESH, vary, ("accept", "b")])).await;
        assert!(send(&app, req("GET", path, &[("accept", "b")])).await.hit());
    }
    let posted = send(
        &app,
        req(
            "POST",
            "/items/1",
            &[
                ("x-reply", "location: /items/2"),
                ("x-reply", "content-location: http://elsewhere.test/other"),
            ],
        ),
    )
    .await;
    assert_eq!(posted.status, 200);
    for path in ["/items/1", "/items/2"] {
        for accept in ["a", "b"] {
            let got = send(&app, req("GET", path, &[FRESH, vary, ("accept", accept)])).await;
            assert!(!got.hit(), "{path} {accept}: every variant is invalidated");
        }
    }
    assert!(send(&app, req("GET", "/items/3", &[("accept", "a")]))
        .await
        .hit());
    assert!(
        send(&app, req("GET", "/other", &[("accept", "a")]))
            .await
            .hit(),
        "another origin"
    );
    // A failed unsafe request invalidates nothing.
    send(&app, req("DELETE", "/items/3", &[("x-status", "500")])).await;
    assert!(send(&app, req("GET", "/items/3", &[("accept", "a")]))
        .await
        .hit());
}

#[tokio::test]
async fn conditional_requests_are_answered_304_from_a_fresh_response() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let etag = ("x-reply", "etag: W/\"v1\"");
    let modified = ("x-reply", "last-modified: Sun, 06 Nov 1994 08:49:37 GMT");
    send(&app, req("GET", "/c", &[FRESH, etag, modified])).await;
    let nm = send(
        &app,
        req("GET", "/c", &[("if-none-match", "\"v0\", \"v1\"")]),
    )
    .await;
    assert_eq!(nm.status, 304);
    assert_eq!(nm.body, "");
    assert_eq!(nm.headers["etag"], "W/\"v1\"");
    assert!(nm.headers.contains_key("age"));
    let other = send(&app, req("GET", "/c", &[("if-none-match", "\"v2\"")])).await;
    assert_eq!(other.status, 200);
    let since = send(
        &app,
        req(
            "GET",
            "/c",
            &[("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")],
        ),
    )
    .await;
    assert_eq!(since.status, 304);
    let older = send(
        &app,
        req(
            "GET",
            "/c",
            &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")],
        ),
    )
    .await;
    assert_eq!(older.status, 200);
    // A client's validators on a miss do not reach the origin: the full
    // response is stored and the client still gets its 304.
    let first = send(
        &app,
        req("GET", "/c2", &[FRESH, etag, ("if-none-match", "W/\"v1\"")]),
    )
    .await;
    assert_eq!(first.status, 304);
    assert!(send(&app, req("GET", "/c2", &[]))
        .await
        .body
        .starts_with("call"));
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn a_stale_response_is_revalidated_and_a_304_freshens_it() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    // Age 10 with max-age 10: stale on arrival, no waiting needed.
    let stale = [
        ("x-reply", "cache-control: max-age=10"),
        ("x-reply", "age: 10"),
        ("x-reply", "etag: \"e1\""),
        ("x-reply", "x-version: 1"),
        ("x-answer-304", "1"),
        ("x-reply-304", "cache-control: max-age=60"),
        ("x-reply-304", "x-version: 2"),
    ];
    let first = send(&app, req("GET", "/r", &stale)).await;
    assert_eq!(first.body, "call 1 cookie []");
    let second = send(&app, req("GET", "/r", &stale)).await;
    assert!(
        second.cache_status().contains("fwd=stale; fwd-status=304"),
        "{}",
        second.cache_status()
    );
    assert_eq!(second.status, 200);
    assert_eq!(
        second.body, "call 1 cookie []",
        "the stored body, revalidated"
    );
    assert_eq!(second.headers["x-version"], "2", "freshened fields");
    assert_eq!(second.headers["cache-control"], "max-age=60");
    let third = send(&app, req("GET", "/r", &stale)).await;
    assert!(
        third.hit(),
        "fresh again after the 304: {}",
        third.cache_status()
    );
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_revalidates_once_in_the_background() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let swr = [
        (
            "x-reply",
            "cache-control: max-age=1, stale-while-revalidate=60",
        ),
        ("x-reply", "age: 1"),
    ];
    send(&app, req("GET", "/swr", &swr)).await;
    let mut served = Vec::new();
    for _ in 0..5 {
        served.push(send(&app, req("GET", "/swr", &[])).await);
    }
    assert!(served
        .iter()
        .all(|g| g.body == "call 1 cookie []" && g.hit()));
    // One background request, within a bounded wait.
    for _ in 0..200 {
        if origin.calls() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(origin.calls(), 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        origin.calls(),
        2,
        "revalidated once, not once per stale hit"
    );
}

#[tokio::test]
async fn stale_if_error_serves_stale_and_must_revalidate_never_does() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let sie = [
        ("x-reply", "cache-control: max-age=1, stale-if-error=60"),
        ("x-reply", "age: 1"),
        ("x-status-after", "2=503"),
    ];
    send(&app, req("GET", "/sie", &sie)).await;
    let got = send(&app, req("GET", "/sie", &sie)).await;
    assert_eq!(got.status, 200);
    assert!(got
        .cache_status()
        .contains("fwd-status=503; detail=stale-if-error"));
    let strict = [
        (
            "x-reply",
            "cache-control: max-age=1, stale-if-error=60, must-revalidate",
        ),
        ("x-reply", "age: 1"),
        ("x-status-after", "4=503"),
    ];
    send(&app, req("GET", "/mr", &strict)).await;
    let got = send(&app, req("GET", "/mr", &strict)).await;
    assert_eq!(got.status, 503, "must-revalidate: never stale");
    // The layer's fail_safe acts as stale-if-error for responses without it.
    let layered = app_with_fail_safe(&cache, &origin);
    let plain = [
        ("x-reply", "cache-control: max-age=1"),
        ("x-reply", "age: 1"),
        ("x-status-after", "6=500"),
    ];
    send(&layered, req("GET", "/fs", &plain)).await;
    assert_eq!(send(&layered, req("GET", "/fs", &plain)).await.status, 200);
}

fn app_with_fail_safe(cache: &Cache, origin: &Origin) -> Router {
    app(cache, origin, |l| l.fail_safe(Duration::from_secs(60)))
}

#[tokio::test]
async fn request_no_cache_does_not_bypass_unless_configured() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    send(&app, req("GET", "/nc", &[FRESH])).await;
    assert!(
        send(&app, req("GET", "/nc", &[("cache-control", "no-cache")]))
            .await
            .hit()
    );
    assert!(
        send(&app, req("GET", "/nc", &[("cache-control", "max-age=0")]))
            .await
            .hit()
    );
    let honouring = self::app(&cache, &origin, |l| l.request_no_cache(true));
    let got = send(
        &honouring,
        req("GET", "/nc", &[FRESH, ("cache-control", "no-cache")]),
    )
    .await;
    assert!(!got.hit());
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn large_and_streamed_bodies_pass_through_uncached() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l.max_body(10));
    send(&app, req("GET", "/big", &[FRESH])).await;
    let got = send(&app, req("GET", "/big", &[FRESH])).await;
    assert!(got.cache_status().contains("detail=too-large"));
    assert_eq!(got.body, "call 2 cookie []");

    // A body of unknown length streams through and is never read whole.
    let streamed = Router::new()
        .route(
            "/s",
            get(|| async {
                let chunks = futures_util::stream::iter(
                    (0..3).map(|i| Ok::<_, std::io::Error>(format!("chunk{i}"))),
                );
                Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(Body::from_stream(chunks))
                    .unwrap()
            }),
        )
        .layer(CacheLayer::new(cache.clone()));
    let got = send(&streamed, req("GET", "/s", &[])).await;
    assert_eq!(got.body, "chunk0chunk1chunk2");
    assert!(got.cache_status().contains("detail=streamed"));
}

#[tokio::test]
async fn concurrent_misses_reach_the_origin_once() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let requests = (0..10).map(|_| send(&app, req("GET", "/sf", &[FRESH, ("x-delay-ms", "100")])));
    let got = futures_util::future::join_all(requests).await;
    assert_eq!(origin.calls(), 1);
    assert!(got.iter().all(|g| g.body == "call 1 cookie []"));
    assert_eq!(
        got.iter()
            .filter(|g| g.cache_status().contains("collapsed"))
            .count(),
        9
    );
    // Not storable: the waiters go to the origin themselves, not one by one
    // behind each other's leader.
    let private = ("x-reply", "cache-control: private");
    let requests =
        (0..5).map(|_| send(&app, req("GET", "/sf-p", &[private, ("x-delay-ms", "100")])));
    let started = std::time::Instant::now();
    futures_util::future::join_all(requests).await;
    assert_eq!(origin.calls(), 6);
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_collapsed_request_never_gets_another_users_variant() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let vary = ("x-reply", "vary: cookie");
    let requests = ["user=a", "user=b", "user=a", "user=c"].map(|cookie| {
        let app = app.clone();
        async move {
            let r = req(
                "GET",
                "/vc",
                &[FRESH, vary, ("cookie", cookie), ("x-delay-ms", "50")],
            );
            (cookie, send(&app, r).await)
        }
    });
    for (cookie, got) in futures_util::future::join_all(requests).await {
        assert!(
            got.body.ends_with(&format!("cookie [{cookie}]")),
            "{cookie}: {}",
            got.body
        );
    }
}

#[tokio::test]
async fn route_layer_keeps_route_parameters_even_in_background_revalidation() {
    let cache = Cache::memory(100);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(move |Path(id): Path<u32>| {
                let calls = counted.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Response::builder()
                        .header("cache-control", "max-age=1, stale-while-revalidate=60")
                        .header("age", "1")
                        .body(Body::from(format!("user {id}")))
                        .unwrap()
                }
            }),
        )
        .route_layer(CacheLayer::new(cache.clone()));
    assert_eq!(send(&app, req("GET", "/users/7", &[])).await.body, "user 7");
    let stale = send(&app, req("GET", "/users/7", &[])).await;
    assert!(stale.hit() && stale.body == "user 7");
    for _ in 0..200 {
        if calls.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the background request reached the handler"
    );
    assert_eq!(send(&app, req("GET", "/users/8", &[])).await.body, "user 8");
}

/// Seeded random header bytes on requests and responses: the layer never
/// panics, always answers, and never stores what it could not parse.
#[tokio::test]
async fn random_cache_control_and_vary_pass_through_without_panic() {
    let (cache, origin) = (Cache::memory(1000), Origin::default());
    let app = app(&cache, &origin, |l| l.ttl(Duration::from_secs(60)));
    let mut rng = fastrand::Rng::with_seed(0x5eed_9111);
    let alphabet: &[u8] =
        b"max-age=0123456789,; \t\"\\*=s-maxagepublicprivateno-storevaryCookie\x80\xfe";
    for i in 0..400 {
        let mut random = |max: usize| -> Vec<u8> {
            let len = rng.usize(0..max);
            (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect()
        };
        let request_cc = random(if i % 50 == 0 { 9000 } else { 120 });
        let response_cc = random(120);
        let response_vary = random(60);
        let mut r = Request::builder()
            .uri(format!("/fuzz/{}", i % 7))
            .header("host", "f.test");
        if let Ok(v) = axum::http::HeaderValue::from_bytes(&request_cc) {
            r = r.header("cache-control", v);
        }
        for (name, bytes) in [("cache-control", &response_cc), ("vary", &response_vary)] {
            let mut line = format!("{name}: ").into_bytes();
            line.extend_from_slice(bytes);
            if let Ok(v) = axum::http::HeaderValue::from_bytes(&line) {
                if v.to_str().is_ok() {
                    r = r.header("x-reply", v);
                }
            }
        }
        let got = send(&app, r.body(Body::empty()).unwrap()).await;
        assert!(
            got.status.is_success() || got.status == 304 || got.status == 504,
            "{}",
            got.status
        );
        assert!(got.headers.contains_key("cache-status"));
    }
    // A request with a huge Cache-Control is passed through, not served.
    send(&app, req("GET", "/huge", &[FRESH])).await;
    let huge = "max-age=1,".repeat(1000);
    let got = send(&app, req("GET", "/huge", &[("cache-control", &huge)])).await;
    assert!(got
        .cache_status()
        .contains("fwd=bypass; detail=malformed-request"));
}

/// Two caches on one Redis, as two processes behind a load balancer: one
/// stores, the other serves; a POST through one invalidates both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caches_share_responses_and_invalidations_through_redis() {
    let server = RedisServer::start();
    let build = || async {
        Cache::builder()
            .namespace("http")
            .memory(100)
            .redis(server.url())
            .build()
            .await
            .unwrap()
    };
    let (a, b) = (build().await, build().await);
    let origin = Origin::default();
    let (app_a, app_b) = (app(&a, &origin, |l| l), app(&b, &origin, |l| l));
    send(
        &app_a,
        req("GET", "/shared", &[FRESH, ("x-reply", "cache-tag: t1")]),
    )
    .await;
    let from_b = send(&app_b, req("GET", "/shared", &[])).await;
    assert!(from_b.hit(), "{}", from_b.cache_status());
    assert_eq!(from_b.body, "call 1 cookie []");
    send(&app_b, req("POST", "/shared", &[])).await;
    let mut seen = false;
    let tagged = [FRESH, ("x-reply", "cache-tag: t1")];
    for _ in 0..200 {
        if !send(&app_a, req("GET", "/shared", &tagged)).await.hit() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the other process saw the invalidation");
    // A tag invalidated in one is seen in the other.
    assert!(send(&app_b, req("GET", "/shared", &[])).await.hit());
    a.invalidate_tags(["t1"]).await.unwrap();
    let mut seen = false;
    for _ in 0..200 {
        if !send(&app_b, req("GET", "/shared", &[FRESH])).await.hit() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen);
}

// Conformance fixes found by the cache-tests suite (scripts/cache-tests.sh).

#[tokio::test]
async fn cdn_cache_control_replaces_cache_control_when_obeyed() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let targeted = [
        ("x-reply", "cache-control: no-store"),
        ("x-reply", "cdn-cache-control: max-age=60"),
    ];
    // RFC 9213 §2.2: a valid targeted field replaces Cache-Control.
    let obeyed = app(&cache, &origin, |l| l.cdn_cache_control(true));
    send(&obeyed, req("GET", "/cdn", &targeted)).await;
    assert!(send(&obeyed, req("GET", "/cdn", &targeted)).await.hit());
    let short = [
        ("x-reply", "cache-control: max-age=3600"),
        ("x-reply", "cdn-cache-control: private"),
    ];
    send(&obeyed, req("GET", "/cdn-private", &short)).await;
    assert!(!send(&obeyed, req("GET", "/cdn-private", &short))
        .await
        .hit());
    // An invalid one (a string where seconds go) is ignored.
    let invalid = [
        ("x-reply", "cache-control: no-store"),
        ("x-reply", "cdn-cache-control: max-age=\"60\""),
    ];
    send(&obeyed, req("GET", "/cdn-invalid", &invalid)).await;
    assert!(!send(&obeyed, req("GET", "/cdn-invalid", &invalid))
        .await
        .hit());
    // Off by default: the field means nothing.
    let plain = app(&Cache::memory(100), &origin, |l| l);
    send(&plain, req("GET", "/cdn", &targeted)).await;
    assert!(!send(&plain, req("GET", "/cdn", &targeted)).await.hit());
}

#[tokio::test]
async fn ranges_are_served_from_a_stored_complete_response() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    // Nothing stored: the range goes to the origin, and is not stored.
    let first = send(&app, req("GET", "/r", &[FRESH, ("range", "bytes=0-3")])).await;
    assert!(first.cache_status().contains("detail=range"));
    send(&app, req("GET", "/r", &[FRESH])).await; // "call 2 cookie []", stored
    let part = send(&app, req("GET", "/r", &[FRESH, ("range", "bytes=0-3")])).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, "call");
    assert_eq!(part.headers["content-range"], "bytes 0-3/16");
    assert_eq!(part.headers["content-length"], "4");
    let suffix = send(&app, req("GET", "/r", &[("range", "bytes=-2")])).await;
    assert_eq!(suffix.body, "[]");
    let beyond = send(&app, req("GET", "/r", &[("range", "bytes=99-")])).await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.headers["content-range"], "bytes */16");
    // Several ranges are ignored (RFC 9110 §14.2): the whole 200.
    let many = send(&app, req("GET", "/r", &[("range", "bytes=0-1,4-5")])).await;
    assert_eq!(
        (many.status, many.body.as_str()),
        (StatusCode::OK, "call 2 cookie []")
    );
    assert_eq!(origin.calls(), 2);
}

async fn chunked(State(origin): State<Origin>) -> Response<Body> {
    let n = origin.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let parts: Vec<Result<String, std::io::Error>> =
        vec![Ok(format!("call {n}, ")), Ok("in parts".to_string())];
    Response::builder()
        .header("cache-control", "max-age=60")
        .body(Body::from_stream(futures_util::stream::iter(parts)))
        .unwrap()
}

#[tokio::test]
async fn a_body_of_unknown_length_streams_and_is_stored_once_it_ended() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let layer = |max| CacheLayer::new(cache.clone()).max_body(max);
    let router = |max| {
        Router::new()
            .route("/{*path}", get(chunked))
            .with_state(origin.clone())
            .layer(layer(max))
    };
    let app = router(1024);
    let first = send(&app, req("GET", "/chunked", &[])).await;
    assert_eq!(first.body, "call 1, in parts");
    assert!(first.cache_status().contains("detail=streamed"));
    // Stored by a task once the body ended: soon after, a hit.
    let stored = integration_tests::within!(Duration::from_secs(5), {
        send(&app, req("GET", "/chunked", &[])).await.hit()
    });
    assert!(stored.is_some(), "the streamed body was stored");
    // (A request made before the first copy was stored streamed and stored
    // its own: the origin may have been called more than once meanwhile.)
    let calls = origin.calls();
    let hit = send(&app, req("GET", "/chunked", &[])).await;
    assert!(hit.hit());
    let stored_from = (1..=calls).map(|n| format!("call {n}, in parts"));
    assert!(
        stored_from.into_iter().any(|b| b == hit.body),
        "{}",
        hit.body
    );
    assert_eq!(hit.headers["content-length"], "16");
    assert_eq!(send(&app, req("GET", "/chunked", &[])).await.body, hit.body);
    assert_eq!(origin.calls(), calls);
    // Over max_body: streamed whole, never stored.
    let small = router(10);
    let a = send(&small, req("GET", "/chunked-big", &[])).await;
    assert_eq!(a.body.len(), 16);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!send(&small, req("GET", "/chunked-big", &[])).await.hit());
}

#[tokio::test]
async fn header_forms_other_caches_read_are_read() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let twice = |path: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let app = app.clone();
        async move {
            send(&app, req("GET", path, &headers)).await;
            send(&app, req("GET", path, &headers)).await.hit()
        }
    };
    // `Age: 7200, 0`: the first member counts, so max-age=3600 is stale.
    let age = vec![
        ("x-reply", "cache-control: max-age=3600"),
        ("x-reply", "age: 7200, 0"),
    ];
    assert!(!twice("/age", age).await);
    // An Expires right but for its weekday and case.
    let expires = vec![("x-reply", "expires: MON, 18 AUG 2050 02:01:18 gmt")];
    assert!(twice("/expires", expires).await);
    // Not one with another defect (a two-digit year).
    let bad = vec![("x-reply", "expires: Thu, 18 Aug 50 02:01:18 GMT")];
    assert!(!twice("/expires-bad", bad).await);
    // must-understand with a status the cache knows overrides no-store.
    let mu = vec![(
        "x-reply",
        "cache-control: max-age=60, must-understand, no-store",
    )];
    assert!(twice("/must-understand", mu).await);
    // Language tags are case-insensitive for Vary.
    let vary = [FRESH, ("x-reply", "vary: accept-language")];
    send(
        &app,
        req(
            "GET",
            "/lang",
            &[vary[0], vary[1], ("accept-language", "en, de")],
        ),
    )
    .await;
    let other_case = send(&app, req("GET", "/lang", &[("accept-language", "eN, De")])).await;
    assert!(other_case.hit(), "{}", other_case.cache_status());
}

#[tokio::test]
async fn a_304_naming_another_representation_serves_the_stored_one_unchanged() {
    let (cache, origin) = (Cache::memory(100), Origin::default());
    let app = app(&cache, &origin, |l| l);
    let stale = [
        ("x-reply", "cache-control: max-age=10"),
        ("x-reply", "age: 10"),
        ("x-reply", "etag: \"e1\""),
        ("x-answer-304", "1"),
        ("x-reply-304", "etag: \"other\""),
        ("x-reply-304", "cache-control: max-age=60"),
    ];
    send(&app, req("GET", "/other", &stale)).await;
    let second = send(&app, req("GET", "/other", &stale)).await;
    // Never a 304 to a request that was not conditional.
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, "call 1 cookie []");
    assert_eq!(
        second.headers["etag"], "\"e1\"",
        "not updated from that 304"
    );
    assert!(second.cache_status().contains("detail=other-validator"));
    // Nor freshened: the next request revalidates again.
    send(&app, req("GET", "/other", &stale)).await;
    assert_eq!(origin.calls(), 3);
}
