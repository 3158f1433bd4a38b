//! HTTP response caching: a [`tower::Layer`] that stores and serves responses
//! as a shared cache does under RFC 9111, on a [`Cache`]'s tiers, tags and
//! single flight (cargo feature `http`).
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{Layer, Service};
//! use cache_runtime::{http::CacheLayer, Cache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = Cache::memory(1_000);
//! let origin = tower::service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("cache-control", "max-age=60")
//!             .header("cache-tag", "users")
//!             .body(Full::new(Bytes::from("hello")))
//!             .unwrap(),
//!     )
//! });
//! let mut service = CacheLayer::new(cache.clone())
//!     .ttl(Duration::from_secs(10))
//!     .layer(origin);
//! let get = || Request::get("http://example.test/").body(Full::default()).unwrap();
//! let first = service.call(get()).await.unwrap();
//! assert!(first.headers()["cache-status"].to_str().unwrap().contains("stored"));
//! assert!(first.headers().get("cache-tag").is_none()); // never leaves
//! let second = service.call(get()).await.unwrap();
//! assert!(second.headers()["cache-status"].to_str().unwrap().contains("hit"));
//! assert_eq!(second.headers()["age"], "0");
//! assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), "hello");
//! cache.invalidate_tags(["users"]).await.unwrap(); // the next GET goes to the origin
//! # }
//! ```

mod cache_control;
mod conditional;
mod date;
mod exchange;
mod freshness;
mod future;
mod headers;
mod hit_for_miss;
mod key;
mod range;
mod rendered;
mod storable;
mod stored;
mod target;
mod tee;
mod vary;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use tower::{Layer, Service};

use crate::Cache;

pub use future::ResponseFuture;

/// The body of the responses a [`CacheService`] returns: the stored bytes, or
/// the inner service's body streamed through.
pub type CacheBody<E> = UnsyncBoxBody<Bytes, E>;

type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;
type TagsFn = dyn Fn(&Parts) -> Vec<String> + Send + Sync;

/// The default largest body stored: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// How long, by default, a stale response with a validator is kept to be
/// revalidated (a 304 then spares sending the body again).
pub const DEFAULT_KEEP: Duration = Duration::from_secs(600);
/// How long, by default, a target whose answer could not be stored is
/// remembered, so that requests for it are not coalesced (hit-for-miss).
pub const DEFAULT_HIT_FOR_MISS: Duration = Duration::from_secs(10);

/// A [`tower::Layer`] that caches responses in a [`Cache`] as a shared cache
/// (RFC 9111): on axum, `Router::layer(CacheLayer::new(cache.clone()))` or
/// `route_layer`.
///
/// What is stored: responses to `GET` with a final status, explicit
/// freshness (`s-maxage`, `max-age`, `Expires`) or, when the status allows a
/// cache to choose one, the layer's [`ttl`](CacheLayer::ttl); a body of known
/// length up to [`max_body`](CacheLayer::max_body). What never is: `no-store`,
/// `private`, a response that sets a cookie, `Vary: *`, a response to a
/// request with `Authorization` unless it says `public`, `s-maxage` or
/// `must-revalidate`, any exchange whose `Cache-Control` or `Vary` is
/// malformed or too large (it passes through uncached), and a `GET` with
/// content (a `Content-Length` other than 0, a `Transfer-Encoding`, or a
/// body that neither says it ended nor has an exact size hint of 0): it
/// passes through, never answered from the store nor stored.
///
/// Nothing meant for one client reaches another: a `304` that freshens a
/// stored response is held to the same rules as a new response (RFC 9111
/// §4.3.4 with §3), in foreground and background revalidation. Its
/// `Set-Cookie` goes only to the client whose request revalidated (the
/// merged response is then not stored); `private` or `no-store` in it delete
/// the stored response; a changed `Vary` re-keys it to that client's variant
/// (or deletes it when it cannot be keyed). `Vary` compares request fields
/// byte for byte (values that are not UTF-8 included).
///
/// A target whose answer could not be stored by its own rules is remembered
/// for [`hit_for_miss`](CacheLayer::hit_for_miss): its requests then go to
/// the origin at once, not coalesced behind one another.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{http::CacheLayer, Cache};
///
/// let layer = CacheLayer::new(Cache::memory(1_000))
///     .ttl(Duration::from_secs(60))             // for responses without freshness
///     .stale(Duration::from_secs(30))           // stale-while-revalidate by default
///     .fail_safe(Duration::from_secs(3600))     // stale-if-error by default
///     .max_body(256 * 1024)
///     .tags(|req| vec![format!("path:{}", req.uri.path())]);
/// # let _ = layer;
/// ```
///
/// # Timeouts
///
/// The layer serves `stale-if-error` (or its [`fail_safe`](CacheLayer::fail_safe))
/// when the inner service fails: returns an `Err`, or a 500, 502, 503 or 504.
/// A hung origin never fails by itself: put a `tower::timeout` *inside* the
/// layer, around the origin, so that it becomes an error the layer answers
/// (a timeout outside the layer would cancel the request, stale response
/// and all). Requests that waited for the same URI share that answer.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{timeout::TimeoutLayer, Service, ServiceBuilder, ServiceExt};
/// use cache_runtime::{http::CacheLayer, Cache};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// // Answers once (stale at once, stale-if-error for a minute), then hangs.
/// let origin = tower::service_fn(move |_req: Request<Full<Bytes>>| {
///     let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///     async move {
///         if n > 0 {
///             std::future::pending::<()>().await;
///         }
///         Ok::<_, std::convert::Infallible>(
///             Response::builder()
///                 .header("cache-control", "max-age=1, stale-if-error=60")
///                 .header("age", "1")
///                 .body(Full::new(Bytes::from("hello")))
///                 .unwrap(),
///         )
///     }
/// });
/// let mut service = ServiceBuilder::new()
///     .layer(CacheLayer::new(Cache::memory(1_000)))
///     .layer(TimeoutLayer::new(Duration::from_millis(100))) // errors: tower::BoxError
///     .service(origin);
/// let get = || Request::get("http://example.test/").body(Full::default()).unwrap();
/// service.ready().await.unwrap().call(get()).await.unwrap();
/// // The origin hangs: after 100 ms, the stale response.
/// let stale = service.ready().await.unwrap().call(get()).await.unwrap();
/// let status = stale.headers()["cache-status"].to_str().unwrap();
/// assert!(status.contains("detail=stale-if-error"), "{status}");
/// # }
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    config: Arc<Config>,
}

pub(crate) struct Config {
    pub(crate) cache: Cache,
    pub(crate) ttl: Option<Duration>,
    pub(crate) heuristic: Option<f64>,
    pub(crate) stale: Duration,
    pub(crate) fail_safe: Duration,
    pub(crate) max_body: usize,
    pub(crate) keep: Duration,
    pub(crate) key: Option<Arc<KeyFn>>,
    pub(crate) tags: Option<Arc<TagsFn>>,
    pub(crate) request_no_cache: bool,
    pub(crate) status_name: Option<String>,
    pub(crate) targeted: bool,
    pub(crate) hit_for_miss: Duration,
    /// The targets that answered uncacheably (hit-for-miss).
    pub(crate) uncacheable: Arc<hit_for_miss::Uncacheable>,
}

impl CacheLayer {
    /// A layer storing responses in `cache`, in strict mode: only responses
    /// with explicit freshness are stored, nothing is served stale beyond
    /// what their `Cache-Control` allows.
    pub fn new(cache: Cache) -> CacheLayer {
        CacheLayer {
            config: Arc::new(Config {
                cache,
                ttl: None,
                heuristic: None,
                stale: Duration::ZERO,
                fail_safe: Duration::ZERO,
                max_body: DEFAULT_MAX_BODY,
                keep: DEFAULT_KEEP,
                key: None,
                tags: None,
                request_no_cache: false,
                status_name: Some("cache-runtime".to_string()),
                targeted: false,
                hit_for_miss: DEFAULT_HIT_FOR_MISS,
                uncacheable: Arc::default(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> CacheLayer {
        // A layer is configured before it is cloned onto services; a clone
        // made earlier keeps its own configuration.
        let config = match Arc::get_mut(&mut self.config) {
            Some(config) => config,
            None => {
                self.config = Arc::new(self.config.copy());
                match Arc::get_mut(&mut self.config) {
                    Some(config) => config,
                    // Just made, so not shared: unreachable; leave it unchanged.
                    None => return self,
                }
            }
        };
        change(config);
        self
    }

    /// How long a response without explicit freshness (`s-maxage`,
    /// `max-age`, `Expires`) is fresh, for statuses that allow a cache to
    /// choose (200, 203, 204, 301, 404, ...; RFC 9110 §15.1) or `public`.
    /// Unset: such responses are not stored.
    pub fn ttl(self, ttl: Duration) -> CacheLayer {
        self.with(|c| c.ttl = Some(ttl))
    }

    /// Heuristic freshness (RFC 9111 §4.2.2) for responses without explicit
    /// freshness and without a [`ttl`](CacheLayer::ttl): `fraction` of the
    /// time since `Last-Modified` (0.1 is usual). Off by default.
    pub fn heuristic(self, fraction: f64) -> CacheLayer {
        self.with(|c| c.heuristic = Some(fraction))
    }

    /// Past freshness, serve a stale response for up to `stale` while one
    /// background revalidation runs, as if it said `stale-while-revalidate`
    /// (a response's own directive wins when longer). Never for responses
    /// that say `no-cache`, `must-revalidate`, `proxy-revalidate` or `s-maxage`.
    pub fn stale(self, stale: Duration) -> CacheLayer {
        self.with(|c| c.stale = stale)
    }

    /// Past freshness, serve a stale response for up to `fail_safe` when the
    /// origin fails (an error or a 500, 502, 503 or 504), as if it said
    /// `stale-if-error`. Same exceptions as [`stale`](CacheLayer::stale).
    pub fn fail_safe(self, fail_safe: Duration) -> CacheLayer {
        self.with(|c| c.fail_safe = fail_safe)
    }

    /// The largest body stored, in bytes (default [`DEFAULT_MAX_BODY`]). A
    /// larger body, or one whose length is not known before it is read
    /// (streamed), passes through uncached and is never buffered.
    pub fn max_body(self, bytes: usize) -> CacheLayer {
        self.with(|c| c.max_body = bytes)
    }

    /// How long a stale response with `ETag` or `Last-Modified` is kept to be
    /// revalidated (default [`DEFAULT_KEEP`]).
    pub fn keep_for_revalidation(self, keep: Duration) -> CacheLayer {
        self.with(|c| c.keep = keep)
    }

    /// The key of a request, instead of its authority, path and query;
    /// `None` passes the request through uncached. The key is escaped: no
    /// key collides with another or with a default key.
    pub fn key<F>(self, key: F) -> CacheLayer
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.with(|c| c.key = Some(Arc::new(key)))
    }

    /// Tags for the response to a request, added to those of its `Cache-Tag`
    /// header; [`Cache::invalidate_tags`] drops the responses they tag.
    pub fn tags<F>(self, tags: F) -> CacheLayer
    where
        F: Fn(&Parts) -> Vec<String> + Send + Sync + 'static,
    {
        self.with(|c| c.tags = Some(Arc::new(tags)))
    }

    /// Whether a request's `Cache-Control: no-cache` (or `max-age`,
    /// `min-fresh`) makes the layer revalidate a fresh stored response. Off
    /// by default: a client must not be able to bypass the server's cache at
    /// will.
    pub fn request_no_cache(self, honour: bool) -> CacheLayer {
        self.with(|c| c.request_no_cache = honour)
    }

    /// Whether a response's `CDN-Cache-Control` (RFC 9213) is obeyed: when
    /// present and valid, its directives replace those of `Cache-Control`
    /// for this cache (`CDN-Cache-Control: max-age=3600` with
    /// `Cache-Control: no-store` is stored for an hour). Off by default; on
    /// for a cache that acts as a CDN (the `http_proxy` example).
    pub fn cdn_cache_control(self, obey: bool) -> CacheLayer {
        self.with(|c| c.targeted = obey)
    }

    /// How long a target whose answer could not be stored (`private`,
    /// `no-store`, a `Set-Cookie`, no freshness, too large, ...) is
    /// remembered as such (default [`DEFAULT_HIT_FOR_MISS`]; zero: never):
    /// meanwhile its requests go to the origin at once, each on its own,
    /// instead of waiting for one of them whose answer they could not share
    /// (Varnish's hit-for-miss). An answer that is stored ends it at once;
    /// a server error (5xx) starts none, so a failing origin still sees one
    /// request per target at a time.
    pub fn hit_for_miss(self, remember: Duration) -> CacheLayer {
        self.with(|c| c.hit_for_miss = remember)
    }

    /// The cache's name in the `Cache-Status` header (RFC 9211) of every
    /// response, `None` for no header (default `cache-runtime`).
    pub fn cache_status(self, name: Option<&str>) -> CacheLayer {
        let name = name.map(str::to_string);
        self.with(|c| c.status_name = name)
    }
}

impl Config {
    fn copy(&self) -> Config {
        Config {
            cache: self.cache.clone(),
            ttl: self.ttl,
            heuristic: self.heuristic,
            stale: self.stale,
            fail_safe: self.fail_safe,
            max_body: self.max_body,
            keep: self.keep,
            key: self.key.clone(),
            tags: self.tags.clone(),
            request_no_cache: self.request_no_cache,
            status_name: self.status_name.clone(),
            targeted: self.targeted,
            hit_for_miss: self.hit_for_miss,
            uncacheable: Arc::default(),
        }
    }
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("CacheLayer")
            .field("cache", &c.cache)
            .field("ttl", &c.ttl)
            .field("stale", &c.stale)
            .field("fail_safe", &c.fail_safe)
            .field("max_body", &c.max_body)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service a [`CacheLayer`] wraps around an inner service.
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for CacheService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send + 'static,
{
    type Response = Response<CacheBody<ResBody::Error>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        exchange::handle(&self.config, &mut self.inner, request)
    }
}
