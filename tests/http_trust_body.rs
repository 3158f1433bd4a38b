//! The HTTP layer (issue 16, items 6, 8 and 9): equivalent targets are one
//! entry and one invalidation; a body within `max_body` is stored whatever
//! frames it arrives in; a failing or timed-out origin is answered with a
//! stale response that allows it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, Response, StatusCode, Uri};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use cache_runtime::http::{CacheLayer, DEFAULT_MAX_BODY};
use cache_runtime::Cache;
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

/// An origin that ignores the path: every GET answers the current version
/// (`v1`, `v2`, ...) fresh for 60 s; a POST moves the version on (and, with
/// `x-location`, names that URI in `Location`). It records each target it
/// was sent.
#[derive(Clone, Default)]
struct Versions {
    version: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn versioned(
    State(o): State<Versions>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let host = headers.get("host").map_or("", |h| h.to_str().unwrap());
    o.seen
        .lock()
        .unwrap()
        .push(format!("{method} {host} {uri}"));
    if method == axum::http::Method::POST {
        o.version.fetch_add(1, Ordering::SeqCst);
        let mut r = Response::builder().status(StatusCode::NO_CONTENT);
        if let Some(location) = headers.get("x-location") {
            r = r.header("location", location);
        }
        return r.body(Body::empty()).unwrap();
    }
    o.gets.fetch_add(1, Ordering::SeqCst);
    let v = o.version.load(Ordering::SeqCst) + 1;
    Response::builder()
        .header("cache-control", "max-age=60")
        .body(Body::from(format!("v{v}")))
        .unwrap()
}

fn versions_app(cache: &Cache, origin: &Versions) -> Router {
    Router::new()
        .route("/{*path}", any(versioned))
        .with_state(origin.clone())
        .layer(CacheLayer::new(cache.clone()))
}

async fn send(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> (String, String) {
    let mut r = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(r.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response
        .headers()
        .get("cache-status")
        .map_or(String::new(), |v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8_lossy(&body).into_owned(), status)
}

/// The spellings of `/state/x` the issue measured, and a few more.
const SPELLINGS: [&str; 8] = [
    "/state/x",
    "/state/%78",
    "/state/./x",
    "/state/y/../x",
    "/state/x?",
    "/state/%2e/x",
    "/state/%2E%2E/state/x",
    "/./state/../state/x",
];

/// Each spelling's body, on Host `host`.
async fn bodies(app: &Router, host: &str) -> Vec<String> {
    let mut out = Vec::new();
    for path in SPELLINGS {
        out.push(send(app, "GET", path, &[("host", host)]).await.0);
    }
    out
}

#[tokio::test]
async fn equivalent_targets_are_one_entry_and_one_invalidation() {
    let (cache, origin) = (Cache::memory(1_000), Versions::default());
    let app = versions_app(&cache, &origin);
    let before = bodies(&app, "shop.test").await;
    assert!(before.iter().all(|b| b == "v1"), "{before:?}");
    let gets = origin.gets.load(Ordering::SeqCst);
    let seen = origin.seen.lock().unwrap().clone();

    send(&app, "POST", "/state/x", &[("host", "shop.test")]).await;
    let after = bodies(&app, "shop.test").await;
    let old = after.iter().filter(|b| *b == "v1").count();
    assert_eq!(
        old,
        0,
        "{old} of {} spellings still served v1: {after:?}",
        after.len()
    );
    assert_eq!(gets, 1, "one entry for all");
    // The inner service was sent the normal target, as the key says.
    assert_eq!(seen, ["GET shop.test /state/x"]);

    // An unsafe request through another spelling invalidates the same entry.
    send(&app, "POST", "/state/y/../%78?", &[("host", "shop.test")]).await;
    assert!(bodies(&app, "shop.test").await.iter().all(|b| b == "v3"));
    // So does a Location naming it, in any spelling.
    let at = [("host", "shop.test"), ("x-location", "/state/./%78")];
    send(&app, "POST", "/other", &at).await;
    assert!(bodies(&app, "shop.test").await.iter().all(|b| b == "v4"));
    let at = [("host", "shop.test"), ("x-location", "../state/%78")];
    send(&app, "POST", "/a/b", &at).await;
    assert!(bodies(&app, "shop.test").await.iter().all(|b| b == "v5"));

    // The reserved `/` escaped is another resource, never decoded.
    let slash = send(&app, "GET", "/state%2Fx", &[("host", "shop.test")]).await;
    assert!(!slash.1.contains("hit"), "{slash:?}");
}

#[tokio::test]
async fn host_spellings_are_one_entry_and_one_invalidation() {
    let (cache, origin) = (Cache::memory(1_000), Versions::default());
    let app = versions_app(&cache, &origin);
    // The Host header's case and trailing dot, and an absolute URI's
    // default port: one host.
    let hosts = ["shop.test:8080", "Shop.TEST:8080", "shop.test.:8080"];
    let absolute = [
        "http://shop.test/p",
        "http://SHOP.test:80/p",
        "http://shop.test.:80/p",
    ];
    let read = |app: Router| async move {
        let mut out = Vec::new();
        for host in hosts {
            out.push(send(&app, "GET", "/p", &[("host", host)]).await.0);
        }
        for uri in absolute {
            out.push(send(&app, "GET", uri, &[]).await.0);
        }
        out
    };
    assert!(read(app.clone()).await.iter().all(|b| b == "v1"));
    let gets = origin.gets.load(Ordering::SeqCst);
    send(&app, "POST", "/p", &[("host", "shop.test:8080")]).await;
    send(&app, "POST", "http://shop.test/p", &[]).await;
    let after = read(app.clone()).await;
    let old = after.iter().filter(|b| *b != "v3").count();
    assert_eq!(
        old,
        0,
        "{old} of {} spellings still served v1: {after:?}",
        after.len()
    );
    assert_eq!(gets, 2, "one entry per host");
    // `localhost` and `127.0.0.1` are different hosts (RFC 3986).
    let a = send(&app, "GET", "/p", &[("host", "localhost:1")]).await;
    let b = send(&app, "GET", "/p", &[("host", "127.0.0.1:1")]).await;
    assert!(
        a.1.contains("stored") && b.1.contains("stored"),
        "{a:?} {b:?}"
    );
}

/// A body of `data` that arrives in frames of seeded random sizes (some
/// empty, some of one byte, some large), yielding `Pending` now and then as
/// a socket would; its exact length known (`Content-Length`) or not
/// (chunked).
struct Frames {
    data: Bytes,
    at: usize,
    rng: fastrand::Rng,
    exact: bool,
}

impl Frames {
    fn new(len: usize, seed: u64, exact: bool) -> Frames {
        Frames {
            data: content(len, seed),
            at: 0,
            rng: fastrand::Rng::with_seed(seed),
            exact,
        }
    }
}

/// `len` bytes that differ with `seed` (a slice of one pattern made once).
fn content(len: usize, seed: u64) -> Bytes {
    static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        let n = 2 * DEFAULT_MAX_BODY + 1024;
        (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
    });
    let at = seed as usize % 1000;
    pattern.slice(at..at + len)
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.at == this.data.len() {
            return Poll::Ready(None);
        }
        if this.rng.u8(..) < 40 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // The first frame of any size (a socket's first read may hold
        // most of a body); then empty, tiny, small and large ones.
        let size = match this.rng.u8(..4) {
            _ if this.at == 0 => this.rng.usize(..=this.data.len()),
            0 => 0,
            1 => 1,
            2 => this.rng.usize(1..4096),
            _ => this.rng.usize(1..200_000),
        };
        let end = (this.at + size).min(this.data.len());
        let frame = this.data.slice(this.at..end);
        this.at = end;
        Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.exact && self.at == self.data.len()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.exact {
            http_body::SizeHint::with_exact((self.data.len() - self.at) as u64)
        } else {
            http_body::SizeHint::default()
        }
    }
}

/// `GET /{len}/{seed}/{exact}`: a body of `len` bytes in random frames.
fn frames_origin(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Body>,
    Response = Response<Frames>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |request: Request<Body>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let path = request.uri().path().to_string();
        async move {
            let mut p = path.trim_start_matches('/').split('/');
            let len: usize = p.next().unwrap().parse().unwrap();
            let seed: u64 = p.next().unwrap().parse().unwrap();
            let exact = p.next() == Some("exact");
            let r = Response::builder()
                .header("cache-control", "max-age=60")
                .body(Frames::new(len, seed, exact))
                .unwrap();
            Ok::<_, Infallible>(r)
        }
    })
}

#[tokio::test]
async fn bodies_within_the_limit_in_many_frames_are_stored_and_never_502() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service = CacheLayer::new(Cache::memory(1_000)).layer(frames_origin(calls.clone()));
    let limit = DEFAULT_MAX_BODY;
    let sizes = [
        0,
        1,
        65_536,
        524_289,
        800_000,
        900_000,
        1_000_000,
        limit - 1,
        limit,
        limit + 1,
        2 * limit,
    ];
    let mut wrong = Vec::new();
    for exact in [true, false] {
        for len in sizes {
            for seed in 0..4u64 {
                let kind = if exact { "exact" } else { "chunked" };
                let uri = format!("http://frames.test/{len}/{seed}/{kind}");
                let get = || Request::get(uri.as_str()).body(Body::empty()).unwrap();
                let want = Frames::new(len, seed, exact).data;
                let r = service.ready().await.unwrap().call(get()).await.unwrap();
                let status = r.status();
                let cs = r.headers()["cache-status"].to_str().unwrap().to_string();
                let body = r.into_body().collect().await.unwrap().to_bytes();
                if status != 200 || body != want {
                    wrong.push(format!(
                        "{len} {seed} {kind}: {status} {cs} ({} bytes)",
                        body.len()
                    ));
                    continue;
                }
                let calls_before = calls.load(Ordering::SeqCst);
                if len > limit {
                    // Over the limit: streamed whole, never stored (decided
                    // before the body's end, which the client has read).
                    let again = service.ready().await.unwrap().call(get()).await.unwrap();
                    let cs = again.headers()["cache-status"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    assert!(!cs.contains("hit"), "over the limit, stored: {cs}");
                    let body = again.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, want, "{len} {seed} {kind}");
                    assert!(calls.load(Ordering::SeqCst) > calls_before);
                    continue;
                }
                // Within the limit: stored (a streamed body by a task once
                // it ended) and then served whole from the cache.
                let hit = integration_tests::within!(Duration::from_secs(5), {
                    let r = service.ready().await.unwrap().call(get()).await.unwrap();
                    let hit = r.headers()["cache-status"]
                        .to_str()
                        .unwrap()
                        .contains("hit");
                    let body = r.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, want, "{len} {seed} {kind}");
                    hit
                });
                if hit.is_none() {
                    wrong.push(format!("{len} {seed} {kind}: never stored ({cs})"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}: {wrong:#?}",
        wrong.len(),
        2 * sizes.len() * 4
    );
}

/// An origin whose first answer is stored, stale at once, with
/// `cache-control` as given; every later call hangs (never answers) while
/// `hang` is set, else answers `503`.
fn hanging_origin(
    cache_control: &'static str,
    hang: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + 'static {
    tower::service_fn(move |_request: Request<Body>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let hang = hang.load(Ordering::SeqCst);
        async move {
            if n > 0 && hang {
                std::future::pending::<()>().await;
            }
            let status = if n == 0 { 200 } else { 503 };
            let r = Response::builder()
                .status(status)
                .header("cache-control", cache_control)
                .header("age", "1")
                .header("etag", "\"e\"")
                .body(Body::from(format!("answer {n}")))
                .unwrap();
            Ok::<_, Infallible>(r)
        }
    })
}

/// The layer over `tower::timeout::Timeout` over the origin: a hung origin
/// is an error after `TIMEOUT`.
const TIMEOUT: Duration = Duration::from_millis(200);

async fn call_within<S>(service: &mut S, method: &str) -> Result<(u16, String, String), String>
where
    S: Service<Request<Body>, Response = Response<cache_runtime::http::CacheBody<axum::Error>>>,
    S::Error: std::fmt::Display,
{
    let request = Request::builder()
        .method(method)
        .uri("http://hang.test/p")
        .body(Body::empty())
        .unwrap();
    let answer = async {
        let r = service.ready().await?.call(request).await?;
        let cs = r.headers()["cache-status"].to_str().unwrap().to_string();
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        Ok::<_, S::Error>((status, cs, String::from_utf8_lossy(&body).into_owned()))
    };
    // The test's own bound: a hang fails here instead of hanging the test.
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(got)) => Ok(got),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer in 10 s".to_string()),
    }
}

#[tokio::test]
async fn a_timed_out_origin_is_answered_with_stale_if_error() {
    let (hang, calls) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let origin = hanging_origin("max-age=1, stale-if-error=60", hang.clone(), calls.clone());
    let mut service =
        CacheLayer::new(Cache::memory(100)).layer(tower::timeout::Timeout::new(origin, TIMEOUT));
    assert_eq!(
        call_within(&mut service, "GET").await.unwrap().2,
        "answer 0"
    );
    for method in ["GET", "HEAD", "GET"] {
        let answer = call_within(&mut service, method).await;
        let (status, cs, body) = answer.unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(status, 200, "{method} {cs}");
        assert!(cs.contains("detail=stale-if-error"), "{method} {cs}");
        let want = if method == "HEAD" { "" } else { "answer 0" };
        assert_eq!(body, want);
    }
    // A 5xx is answered the same way.
    hang.store(false, Ordering::SeqCst);
    let (status, cs, _) = call_within(&mut service, "HEAD").await.unwrap();
    assert_eq!((status, cs.contains("fwd-status=503")), (200, true), "{cs}");
}

#[tokio::test]
async fn concurrent_requests_behind_a_timed_out_leader_get_the_stale_response() {
    let (hang, calls) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let origin = hanging_origin("max-age=1, stale-if-error=60", hang, calls.clone());
    let service =
        CacheLayer::new(Cache::memory(100)).layer(tower::timeout::Timeout::new(origin, TIMEOUT));
    let mut first = service.clone();
    call_within(&mut first, "GET").await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let mut s = service.clone();
            tokio::spawn(async move { call_within(&mut s, "GET").await })
        })
        .collect();
    for task in tasks {
        let (status, _, body) = task.await.unwrap().unwrap();
        assert_eq!((status, body.as_str()), (200, "answer 0"));
    }
}

#[tokio::test]
async fn the_layers_fail_safe_answers_a_timed_out_origin_and_nothing_stale_is_an_error() {
    let (hang, calls) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let origin = hanging_origin("max-age=1", hang.clone(), calls.clone());
    let mut service = CacheLayer::new(Cache::memory(100))
        .fail_safe(Duration::from_secs(60))
        .layer(tower::timeout::Timeout::new(origin.clone(), TIMEOUT));
    call_within(&mut service, "GET").await.unwrap();
    let (status, cs, body) = call_within(&mut service, "GET").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "answer 0"), "{cs}");
    assert!(cs.contains("detail=stale-if-error"), "{cs}");

    // Without stale-if-error nor fail_safe: the timeout's error, promptly.
    let calls = Arc::new(AtomicUsize::new(0));
    let origin = hanging_origin("max-age=1", hang, calls);
    let mut strict =
        CacheLayer::new(Cache::memory(100)).layer(tower::timeout::Timeout::new(origin, TIMEOUT));
    call_within(&mut strict, "GET").await.unwrap();
    let error = call_within(&mut strict, "GET").await.unwrap_err();
    assert!(error.contains("timed out"), "{error}");
}
