//! One request through the layer: look up what is stored, serve it fresh (or
//! stale where allowed), or go to the origin through the cache's single
//! flight, store what may be stored, and invalidate on unsafe methods.

use std::any::Any;
use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    HeaderValue, AGE, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LOCATION, RANGE,
};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use tower::Service;

use super::cache_control::Directives;
use super::conditional;
use super::freshness::{self, age_seconds, now_millis, Fallback};
use super::future::ResponseFuture;
use super::headers::{stored_fields, take_tags, Asks, CACHE_STATUS};
use super::key;
use super::range::{self, Ranged};
use super::rendered::Hit;
use super::storable::{self, NotStored};
use super::stored::{HttpEntry, StaleRules, StoredResponse};
use super::target;
use super::tee::Tee;
use super::vary::{secondary, Vary};
use super::{CacheBody, Config};
use crate::flight::Join;
use crate::key::Key;
use crate::tags::TagSnapshot;
use crate::Policy;

type Out<E> = Response<CacheBody<E>>;

/// What a load shares with the requests that waited for it.
enum Shared {
    /// A stored response (just stored, freshened, or stale on an error).
    Serve(Arc<StoredResponse>),
    /// Nothing the waiters can use: each goes to the origin itself.
    Pass,
    /// The origin's answer may not be stored, by its own rules (`private`,
    /// `no-store`, `Set-Cookie`, ...): as `Pass`, and the target is
    /// remembered as uncacheable for a while (hit-for-miss).
    Uncacheable,
}

/// Remembers what a load found: an uncacheable answer marks the target
/// (its next requests are not coalesced), a stored one clears the mark.
fn remember(config: &Config, target: &Target, shared: &Shared) {
    let u = &config.uncacheable;
    match shared {
        Shared::Uncacheable => u.mark(
            &target.identity,
            now_millis(),
            crate::clock::millis(config.hit_for_miss),
        ),
        Shared::Serve(_) => u.clear(&target.identity),
        Shared::Pass => {}
    }
}

/// What a request is, for the cache.
#[derive(Clone)]
struct Target {
    identity: String,
    uri_tag: String,
    /// Tags from the layer's tag function.
    tags: Vec<String>,
    cc: Directives,
}

/// What a GET or HEAD was found to be before anything is awaited.
enum Early<E> {
    /// A fresh hit from memory, answered.
    Hit(Out<E>),
    /// Sent on as it is, for this reason.
    Bypass(&'static str),
    /// Looked up in memory; the rest needs the remote tier or the origin.
    Read(Looked),
    /// Its target is not in normal form: to be rewritten, then looked at
    /// again (a rewritten target is taken as it is, so this never comes
    /// twice; were it to, the request would be bypassed for this reason).
    Normalize(&'static str),
}

/// A request's directives and key, and what the memory tier holds under it
/// (`None`: nothing, so only the remote tier is asked next).
struct Looked {
    cc: Directives,
    keyed: key::Keyed,
    memory: Option<HttpEntry>,
}

/// The inner service of a request whose work is boxed as a `Send` future
/// (the bounds the exchange's async steps share, written once).
pub(crate) trait Origin<B, R>:
    Service<Request<B>, Response = Response<R>, Future: Send + 'static, Error: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S, B, R> Origin<B, R> for S where
    S: Service<Request<B>, Response = Response<R>, Future: Send + 'static, Error: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// The origin's response body, as those steps hold it across awaits.
pub(crate) trait OriginBody:
    Body<Data = Bytes, Error: Send + 'static> + Send + 'static
{
}

impl<R> OriginBody for R where R: Body<Data = Bytes, Error: Send + 'static> + Send + 'static {}

/// The future of one request. A fresh hit from memory is answered here,
/// without a future to box or a clone of the inner service; other requests
/// box their work, reads and writes apart, and a read boxes its rarer paths
/// (to the origin, bypassed).
pub(crate) fn handle<S, B, R>(
    config: &Arc<Config>,
    inner: &mut S,
    request: Request<B>,
) -> ResponseFuture<Out<R::Error>, S::Error>
where
    S: Origin<B, R>,
    B: Body + Send + 'static,
    R: OriginBody,
{
    let (mut parts, body) = request.into_parts();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        // Its target in normal form, so that it invalidates every spelling.
        target::normalize(&mut parts);
        return ResponseFuture::boxed(write(config.clone(), ready(inner), parts, body));
    }
    // A body that may hold data (its headers are looked at in `early`):
    // one call on the usual empty body, which says it has ended.
    let content = !body.is_end_stream() && body.size_hint().exact() != Some(0);
    let mut found = early(config, &parts, content, false);
    if let Early::Normalize(_) = found {
        // Rare: rewritten once, then looked at as it is.
        target::normalize(&mut parts);
        found = early(config, &parts, content, true);
    }
    match found {
        Early::Hit(response) => ResponseFuture::ready(Ok(response)),
        // (`Normalize` is never the answer for a rewritten target.)
        Early::Bypass(detail) | Early::Normalize(detail) => {
            let (config, service) = (config.clone(), ready(inner));
            ResponseFuture::boxed(
                async move { bypass(&config, service, parts, body, detail).await },
            )
        }
        Early::Read(looked) => {
            ResponseFuture::boxed(read(config.clone(), ready(inner), parts, body, looked))
        }
    }
}

/// The inner service polled ready, for this request; its clone waits for
/// the next (a hit uses neither, and leaves the ready one in place).
fn ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// The directives, preconditions and key of a GET or HEAD, and its memory
/// lookup: all a fresh hit needs, and nothing awaited. A target not in
/// normal form (the check is a scan that allocates nothing) is first
/// rewritten by the caller (`Normalize`), for the key and the inner service
/// alike; once `normalized`, the target is taken as it is.
fn early<E>(config: &Config, parts: &Parts, content: bool, normalized: bool) -> Early<E> {
    let asks = Asks::of(&parts.headers);
    // A GET with content is not the request a stored response answers, and
    // its answer may depend on the content (RFC 9110 §9.3.1): sent on, and
    // its response not stored.
    if content || asks.content {
        return Early::Bypass("request-content");
    }
    let authority = match target::normal_authority(&parts.uri, asks.host) {
        Some(authority) => authority,
        None if !normalized => return Early::Normalize("target"),
        None => target::authority_text(&parts.uri, asks.host),
    };
    let cc = if asks.cache_control {
        let Ok(cc) = Directives::of(&parts.headers) else {
            return Early::Bypass("malformed-request");
        };
        cc
    } else {
        Directives::default()
    };
    // Preconditions other than the two a cache answers go to the origin as
    // they are; a `Range` is answered from a fresh stored response only.
    if asks.precondition {
        return Early::Bypass("precondition");
    }
    let keyed = match &config.key {
        None => key::identity(authority, &parts.uri),
        Some(f) => match f(parts) {
            Some(k) => key::custom_identity(&k),
            None => return Early::Bypass("key"),
        },
    };
    let memory = match Key::manual_borrowed(keyed.key()) {
        Some(key) => config.cache.get_now::<HttpEntry, _>(&key),
        None => config
            .cache
            .get_now::<HttpEntry, _>(&Key::manual(keyed.key())),
    };
    if let Some(HttpEntry::Response(stored)) = &memory {
        if stored.identity == keyed.identity() && stored.secondary.is_none() {
            let now = now_millis();
            if fresh_enough(config, &cc, stored, now) {
                return Early::Hit(serve_asked(config, stored, parts, asks, now, "hit"));
            }
        }
    }
    Early::Read(Looked { cc, keyed, memory })
}

/// Whether `stored` is fresh and answers the request as it is: no
/// `no-cache` of its own, and (when the layer obeys them) none of the
/// request's `no-cache`, `max-age` or `min-fresh` asks for a newer one.
fn fresh_enough(config: &Config, cc: &Directives, stored: &StoredResponse, now: u64) -> bool {
    let fresh_for = stored.fresh_for(now);
    fresh_for > 0 && !stored.stale.no_cache && !wants_newer(config, cc, stored, now, fresh_for)
}

/// Whether the request's directives ask for a newer response than `stored`.
fn wants_newer(
    config: &Config,
    cc: &Directives,
    stored: &StoredResponse,
    now: u64,
    fresh_for: i128,
) -> bool {
    config.request_no_cache
        && (cc.no_cache
            || cc
                .max_age
                .is_some_and(|s| stored.age(now) > s.saturating_mul(1000))
            || cc
                .min_fresh
                .is_some_and(|s| fresh_for < i128::from(s.saturating_mul(1000))))
}

/// A request with another method: sent on, and, when unsafe and
/// successful, its URIs invalidated.
async fn write<S, B, R>(
    config: Arc<Config>,
    service: S,
    parts: Parts,
    body: B,
) -> Result<Out<R::Error>, S::Error>
where
    S: Origin<B, R>,
    B: Send + 'static,
    R: OriginBody,
{
    let method = parts.method.clone();
    let safe = method == Method::OPTIONS || method == Method::TRACE;
    let authority = key::authority(&parts).into_owned();
    let uri = parts.uri.clone();
    let response = call(service, Request::from_parts(parts, body)).await?;
    let status = response.status();
    // §4.4: a non-error response to an unsafe method invalidates its target
    // and the same-origin URIs in Location and Content-Location, before the
    // response leaves (so this process never serves them again).
    if !safe && (status.is_success() || status.is_redirection()) {
        let mut tags = vec![key::uri_tag(&authority, path_and_query(&uri))];
        for name in [LOCATION, CONTENT_LOCATION] {
            if let Some(target) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
                if let Some(pq) = same_origin(&authority, &uri, target) {
                    tags.push(key::uri_tag(&authority, &pq));
                }
            }
        }
        if let Err(error) = config.cache.invalidate_tags(&tags).await {
            tracing::warn!(%error, "http cache: the invalidation of an unsafe request's URIs is queued");
        }
    }
    Ok(pass(&config, response, "fwd=method"))
}

async fn read<S, B, R>(
    config: Arc<Config>,
    service: S,
    parts: Parts,
    body: B,
    looked: Looked,
) -> Result<Out<R::Error>, S::Error>
where
    S: Origin<B, R>,
    B: Send + 'static,
    R: OriginBody,
{
    let Looked { cc, keyed, memory } = looked;
    let now = now_millis();
    let (stored, miss) = lookup(&config, &keyed, &parts.headers, memory).await;
    // A fresh hit (from the remote tier, or a variant) is answered before
    // the URI's tag and the layer's tags, needed only to store, are computed.
    if let Some(stored) = &stored {
        if fresh_enough(&config, &cc, stored, now) {
            return Ok(serve(&config, stored, &parts, now, "hit"));
        }
    }
    let authority = key::authority(&parts);
    let target = Target {
        uri_tag: key::uri_tag(&authority, path_and_query(&parts.uri)),
        tags: config.tags.as_ref().map(|f| f(&parts)).unwrap_or_default(),
        identity: keyed.identity().to_string(),
        cc,
    };
    let ranged = parts.headers.contains_key(RANGE);
    let Some(stored) = stored else {
        if target.cc.only_if_cached {
            return Ok(gateway_timeout(&config));
        }
        if ranged {
            // The origin's 206 is not stored (nothing to combine it with).
            return Box::pin(bypass(&config, service, parts, body, "range")).await;
        }
        return Box::pin(fetch(config, service, parts, body, target, None, miss)).await;
    };
    let fresh_for = stored.fresh_for(now);
    let client_wants_newer = wants_newer(&config, &target.cc, &stored, now, fresh_for);
    if ranged {
        return Box::pin(bypass(&config, service, parts, body, "range")).await;
    }
    let stale_for = u64::try_from(-fresh_for).unwrap_or(0);
    let may_serve_stale = fresh_for <= 0 && !stored.stale.never && !client_wants_newer;
    let window = stored
        .stale
        .while_revalidate
        .max(crate::clock::millis(config.stale));
    if may_serve_stale && stale_for < window {
        // The original request (its extensions too: axum's route parameters
        // live there) goes to the origin; a copy is answered.
        let client = parts.clone_without_extensions();
        background_revalidation(&config, service, parts, body, &target, &stored);
        let status = "hit; detail=stale-while-revalidate";
        return Ok(serve(&config, &stored, &client, now, status));
    }
    if target.cc.only_if_cached {
        return Ok(gateway_timeout(&config));
    }
    let stale = Some(stored);
    Box::pin(fetch(
        config,
        service,
        parts,
        body,
        target,
        stale,
        "fwd=stale",
    ))
    .await
}

/// A request the cache does not take part in, sent on as it is.
async fn bypass<S, B, R>(
    config: &Config,
    service: S,
    parts: Parts,
    body: B,
    detail: &str,
) -> Result<Out<R::Error>, S::Error>
where
    S: Service<Request<B>, Response = Response<R>>,
    R: Body<Data = Bytes> + Send + 'static,
{
    let r = call(service, Request::from_parts(parts, body)).await?;
    Ok(pass(config, r, &format!("fwd=bypass; detail={detail}")))
}

/// The stored response for a request: the URI's response, or the variant its
/// `Vary` fields select. The second value is the `fwd` of a miss.
async fn lookup(
    config: &Config,
    keyed: &key::Keyed,
    request: &HeaderMap,
    memory: Option<HttpEntry>,
) -> (Option<Arc<StoredResponse>>, &'static str) {
    let cache = &config.cache;
    let identity = keyed.identity();
    let primary = match memory {
        Some(entry) => Ok(Some(entry)),
        None => remote(cache, &Key::manual(keyed.key())).await,
    };
    // A fault of the store reads as a miss (the cache counted it).
    match primary {
        Ok(Some(HttpEntry::Response(s))) if s.identity == identity && s.secondary.is_none() => {
            (Some(s), "")
        }
        Ok(Some(HttpEntry::Variants(fields))) => {
            let Some(sec) = secondary(&fields, request) else {
                return (None, "fwd=vary-miss");
            };
            match get(cache, &key::variant(identity, &sec)).await {
                Ok(Some(HttpEntry::Response(s)))
                    if s.identity == identity && s.secondary.as_deref() == Some(sec.as_str()) =>
                {
                    (Some(s), "")
                }
                _ => (None, "fwd=vary-miss"),
            }
        }
        _ => (None, "fwd=uri-miss"),
    }
}

/// `Cache::get` for the layer's entries: the memory tier first, and only
/// when it misses the remote tier's future, boxed apart, so that a hit
/// neither builds nor moves it.
async fn get(cache: &crate::Cache, key: &str) -> crate::Result<Option<HttpEntry>> {
    let key = Key::manual(key);
    if let Some(entry) = cache.get_now::<HttpEntry, _>(&key) {
        return Ok(Some(entry));
    }
    remote(cache, &key).await
}

/// The remote tier's entry under `key` (after the memory tier missed).
async fn remote(cache: &crate::Cache, key: &Key) -> crate::Result<Option<HttpEntry>> {
    let found = Box::pin(cache.remote_many::<HttpEntry>(std::slice::from_ref(key))).await?;
    Ok(found.into_iter().next().flatten())
}

/// Goes to the origin for a request, through the cache's single flight: one
/// request per URI at a time reaches the origin; the others wait and share
/// its response when it was stored (and fits their `Vary`).
#[allow(clippy::too_many_arguments)]
async fn fetch<S, B, R>(
    config: Arc<Config>,
    service: S,
    parts: Parts,
    body: B,
    target: Target,
    stored: Option<Arc<StoredResponse>>,
    fwd: &'static str,
) -> Result<Out<R::Error>, S::Error>
where
    S: Origin<B, R>,
    B: Send + 'static,
    R: OriginBody,
{
    let flight = Key::manual(&key::flight(&target.identity));
    let flights = config.cache.inner.flights.clone();
    // A target known to answer uncacheably goes to the origin at once: a
    // leader's answer could not be shared anyway (hit-for-miss).
    let tries = if config.uncacheable.marked(&target.identity, now_millis()) {
        0
    } else {
        3
    };
    // A leader that fails or is cancelled releases its waiters to retry; a
    // few retries, then each goes alone.
    for _ in 0..tries {
        match flights.join(&flight.repr, TagSnapshot::default()) {
            Join::Lead(guard) => {
                let (response, shared) =
                    origin(&config, service, parts, body, &target, stored, fwd).await?;
                remember(&config, &target, &shared);
                guard.complete(Some(Arc::new(shared) as Arc<dyn Any + Send + Sync>));
                return Ok(response);
            }
            Join::Alone => break,
            Join::Wait(waiting) => {
                let Some(shared) = waiting.wait().await else {
                    continue;
                };
                if let Some(Shared::Serve(s)) = shared.downcast_ref::<Shared>() {
                    if fits(s, &target.identity, &parts.headers) {
                        let status = format!("{fwd}; collapsed");
                        return Ok(serve(&config, s, &parts, now_millis(), &status));
                    }
                }
                break;
            }
        }
    }
    let (response, shared) = origin(&config, service, parts, body, &target, stored, fwd).await?;
    remember(&config, &target, &shared);
    Ok(response)
}

/// Whether a response another request loaded answers this one.
fn fits(s: &StoredResponse, identity: &str, request: &HeaderMap) -> bool {
    if s.identity != identity {
        return false;
    }
    match (&s.secondary, Vary::of(&s.headers)) {
        (None, Ok(Vary::None)) => true,
        (Some(sec), Ok(Vary::Fields(f))) => secondary(&f, request).as_deref() == Some(sec),
        _ => false,
    }
}

/// Starts one background revalidation of a stale stored response, unless
/// one already runs (or there is no runtime to run it on).
fn background_revalidation<S, B, R>(
    config: &Arc<Config>,
    service: S,
    parts: Parts,
    body: B,
    target: &Target,
    stored: &Arc<StoredResponse>,
) where
    S: Origin<B, R>,
    B: Send + 'static,
    R: OriginBody,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let flight = Key::manual(&key::flight(&target.identity));
    let Some(guard) = config
        .cache
        .inner
        .flights
        .try_lead(&flight.repr, TagSnapshot::default())
    else {
        return; // A load of this URI is in progress already.
    };
    let config = config.clone();
    let stored = stored.clone();
    let target = target.clone();
    runtime.spawn(async move {
        // The client has its answer; nothing to send, only to store.
        if let Ok((_, shared)) = origin(
            &config,
            service,
            parts,
            body,
            &target,
            Some(stored),
            "fwd=stale",
        )
        .await
        {
            remember(&config, &target, &shared);
            guard.complete(Some(Arc::new(shared) as Arc<dyn Any + Send + Sync>));
        }
    });
}

/// One request to the origin: conditional when a stored response has a
/// validator; the answer stored, freshened or passed through.
async fn origin<S, B, R>(
    config: &Arc<Config>,
    service: S,
    mut parts: Parts,
    body: B,
    target: &Target,
    stored: Option<Arc<StoredResponse>>,
    fwd: &'static str,
) -> Result<(Out<R::Error>, Shared), S::Error>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Body<Data = Bytes> + Send + 'static,
{
    let client = parts.clone_without_extensions();
    if parts.method == Method::HEAD {
        // A HEAD that the stored GET response could not answer goes through;
        // when the origin fails, a stale one that allows it answers.
        let result = call(service, Request::from_parts(parts, body)).await;
        let now = now_millis();
        let usable = stored.filter(|s| stale_on_error(config, s, now));
        let stale = |s: &StoredResponse, text: &str| {
            let text = format!("{fwd}; {text}detail=stale-if-error");
            Ok((serve(config, s, &client, now, &text), Shared::Pass))
        };
        return match (result, usable) {
            (Err(_), Some(s)) => stale(&s, ""),
            (Err(error), None) => Err(error),
            (Ok(r), Some(s)) if server_error(r.status()) => {
                stale(&s, &format!("fwd-status={}; ", r.status().as_u16()))
            }
            (Ok(r), _) => Ok((pass(config, r, fwd), Shared::Pass)),
        };
    }
    let validated = stored;
    match &validated {
        Some(s) if conditional::has_validator(&s.headers) => {
            conditional::make_conditional(&mut parts.headers, &s.headers)
        }
        // The origin's full answer is stored, and the client's own
        // validators are then checked against it here.
        _ => {
            parts.headers.remove(IF_NONE_MATCH);
            parts.headers.remove(IF_MODIFIED_SINCE);
        }
    }
    let request_time = now_millis();
    let result = call(service, Request::from_parts(parts, body)).await;
    let response_time = now_millis();
    let on_error = |s: &Arc<StoredResponse>| stale_on_error(config, s, response_time);
    let response = match result {
        Ok(r) => r,
        Err(error) => {
            return match validated {
                Some(s) if on_error(&s) => {
                    let status = format!("{fwd}; detail=stale-if-error");
                    Ok((
                        serve(config, &s, &client, response_time, &status),
                        Shared::Serve(s),
                    ))
                }
                _ => Err(error),
            };
        }
    };
    let status = response.status();
    if let Some(s) = &validated {
        if server_error(status) && on_error(s) {
            let text = format!(
                "{fwd}; fwd-status={}; detail=stale-if-error",
                status.as_u16()
            );
            return Ok((
                serve(config, s, &client, response_time, &text),
                Shared::Serve(s.clone()),
            ));
        }
        if status == StatusCode::NOT_MODIFIED
            && conditional::selects(&s.headers, response.headers())
        {
            let times = (request_time, response_time);
            let text = format!("{fwd}; fwd-status=304");
            return Ok(
                not_modified(config, &client, target, s, response.headers(), times, text).await,
            );
        }
        if status == StatusCode::NOT_MODIFIED && conditional::has_validator(&s.headers) {
            // A 304 whose validators name another representation updates
            // nothing (RFC 9111 §4.3.4). Yet the request named only the
            // stored response's validators, so the origin holds that one
            // current (RFC 9110 §13.1.2): it is served as stored, unchanged,
            // and a 304 never reaches a client that did not ask for one.
            let text = format!("{fwd}; fwd-status=304; detail=other-validator");
            return Ok((
                serve(config, s, &client, response_time, &text),
                Shared::Pass,
            ));
        }
    }
    let times = (request_time, response_time);
    Ok(full_response(config, &client, target, response, times, fwd).await)
}

/// Whether a stale `s` may answer a request the origin failed (an error,
/// or a [`server_error`]) at `now`: within its `stale-if-error` or the
/// layer's fail-safe, and not forbidden (`must-revalidate` and the like).
fn stale_on_error(config: &Config, s: &StoredResponse, now: u64) -> bool {
    let stale_for = u64::try_from(-s.fresh_for(now)).unwrap_or(0);
    let window = s.stale.if_error.max(crate::clock::millis(config.fail_safe));
    !s.stale.never && stale_for < window
}

/// The statuses `stale-if-error` answers for (RFC 5861 §4).
fn server_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// A full response from the origin: stored when it may be, and answered.
async fn full_response<R>(
    config: &Arc<Config>,
    client: &Parts,
    target: &Target,
    response: Response<R>,
    (request_time, response_time): (u64, u64),
    fwd: &'static str,
) -> (Out<R::Error>, Shared)
where
    R: Body<Data = Bytes> + Send + 'static,
{
    let (mut head, body) = response.into_parts();
    let mut tags = take_tags(&mut head.headers);
    let fallback = Fallback {
        ttl: config.ttl,
        heuristic: config.heuristic,
    };
    let lifetime = |cc: &Directives| {
        freshness::lifetime(cc, &head.headers, head.status, response_time, fallback)
    };
    let checked = storable::check(
        &client.headers,
        &target.cc,
        head.status,
        &head.headers,
        config.targeted,
        lifetime,
    );
    let not_stored = |head: http::response::Parts, body: R, reason: &str, shared: Shared| {
        let text = format!("{fwd}; detail={reason}");
        (
            pass(config, Response::from_parts(head, body), &text),
            shared,
        )
    };
    let st = match checked {
        Ok(st) => st,
        Err(reason) => {
            // A server error starts no hit-for-miss: a failing origin keeps
            // its single flight.
            let shared = if own_rule(reason, &target.cc) && !head.status.is_server_error() {
                Shared::Uncacheable
            } else {
                Shared::Pass
            };
            return not_stored(head, body, reason.detail(), shared);
        }
    };
    let secondary_key = match &st.vary {
        Vary::Fields(fields) => match secondary(fields, &client.headers) {
            Some(k) => Some(k),
            None => return not_stored(head, body, "vary-too-large", Shared::Pass),
        },
        _ => None,
    };
    tags.extend(target.tags.iter().cloned());
    let template = StoredResponse {
        identity: target.identity.clone(),
        secondary: secondary_key,
        status: head.status.as_u16(),
        initial_age: freshness::initial_age(&head.headers, request_time, response_time),
        headers: stored_fields(&head.headers),
        body: Bytes::new(),
        response_time,
        lifetime: lifetime(&st.cc).unwrap_or(0),
        stale: StaleRules::of(&st.cc),
        tags,
        hit_headers: Default::default(),
    };
    // A body whose length is known and within the limit is read here; one
    // of unknown length (chunked) streams to the client as it comes, a copy
    // is kept, and it is stored once it ended within the limit.
    match body.size_hint().exact() {
        Some(n) if n <= config.max_body as u64 => {}
        Some(_) => {
            let shared = if head.status.is_server_error() {
                Shared::Pass
            } else {
                Shared::Uncacheable
            };
            return not_stored(head, body, "too-large", shared);
        }
        None => {
            let text = format!("{fwd}; detail=streamed");
            let body = tee(config, target, template, body);
            return (
                pass(config, Response::from_parts(head, body), &text),
                Shared::Pass,
            );
        }
    }
    let bytes = match collect(body, config.max_body).await {
        Some(bytes) => bytes,
        None => {
            // The origin's body failed midway (or outgrew its length).
            let mut bad = Response::new(empty::<R::Error>());
            *bad.status_mut() = StatusCode::BAD_GATEWAY;
            return (
                finish(config, bad, &format!("{fwd}; detail=body-error")),
                Shared::Pass,
            );
        }
    };
    let response = StoredResponse {
        body: bytes,
        ..template
    };
    let (stored, kept) = store(config, target, response).await;
    let text = if kept {
        format!("{fwd}; stored")
    } else {
        fwd.to_string()
    };
    (
        serve(config, &stored, client, response_time, &text),
        Shared::Serve(stored),
    )
}

/// A streamed body that is stored, as `template` with it, once it ended
/// within the layer's `max_body` (without a runtime to store on, it only
/// streams).
fn tee<R>(config: &Arc<Config>, target: &Target, template: StoredResponse, body: R) -> Tee<R>
where
    R: Body<Data = Bytes> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().ok();
    let limit = config.max_body;
    let config = config.clone();
    let target = target.clone();
    let done = runtime.map(|runtime| {
        Box::new(move |bytes: Bytes| {
            let response = StoredResponse {
                body: bytes,
                ..template
            };
            runtime.spawn(async move {
                store(&config, &target, response).await;
            });
        }) as Box<dyn FnOnce(Bytes) + Send>
    });
    Tee::new(body, limit, done)
}

/// Whether a response is not stored by a rule of its own (so the target
/// is remembered as uncacheable), rather than because of this request
/// (its `Authorization`, its `no-store`, its fields too long to key on).
fn own_rule(reason: NotStored, request: &Directives) -> bool {
    match reason {
        NotStored::Authorization => false,
        NotStored::NoStore => !request.no_store,
        _ => true,
    }
}

/// A 304 about the stored response `s` (RFC 9111 §4.3.4), held to every
/// rule a new response is (§3): the freshened response is stored only when
/// a 200 with its fields would be, keyed by its own `Vary` (a new `Vary`
/// re-keys it to this request's variant). When it may not be stored, the
/// requesting client alone gets it (its `Set-Cookie` too); `private`,
/// `no-store` or a changed `Vary` also end the sharing of `s`: it is dropped.
async fn not_modified<E>(
    config: &Config,
    client: &Parts,
    target: &Target,
    s: &Arc<StoredResponse>,
    not_modified: &HeaderMap,
    (request_time, response_time): (u64, u64),
    text: String,
) -> (Out<E>, Shared) {
    let Some(Freshened {
        mut response,
        checked,
        ends_sharing,
    }) = freshen(
        config,
        client,
        target,
        s,
        not_modified,
        request_time,
        response_time,
    )
    else {
        // Fields that cannot be used: the stored response as it is.
        return (serve(config, s, client, response_time, &text), Shared::Pass);
    };
    match checked {
        Ok(secondary) => {
            response.secondary = secondary;
            let (stored, kept) = store(config, target, response).await;
            let text = if kept {
                format!("{text}; stored")
            } else {
                text
            };
            let answer = serve(config, &stored, client, response_time, &text);
            (answer, Shared::Serve(stored))
        }
        Err(reason) => {
            if ends_sharing {
                let key = match &s.secondary {
                    Some(sec) => key::variant(&s.identity, sec),
                    None => key::primary(&s.identity),
                };
                // A failed remote delete is counted by the cache; this
                // process's memory tier dropped it either way.
                if let Err(error) = config.cache.delete(&key).await {
                    tracing::warn!(%error, "http cache: a response a 304 made unshareable was not deleted from the remote tier");
                }
            }
            let text = format!("{text}; detail={}", reason.detail());
            let answer = serve(config, &response, client, response_time, &text);
            let shared = if own_rule(reason, &target.cc) {
                Shared::Uncacheable
            } else {
                Shared::Pass
            };
            (answer, shared)
        }
    }
}

/// A stored response freshened by a 304, as the requesting client gets it,
/// and whether it may be stored.
struct Freshened {
    response: StoredResponse,
    /// Its secondary key (for the `Vary` it now has), or why it may not be
    /// stored.
    checked: Result<Option<String>, NotStored>,
    /// Whether the stored response may no longer be shared either
    /// (`private`, `no-store`, a changed `Vary`).
    ends_sharing: bool,
}

/// The stored response freshened by a 304 (§4.3.4), checked as a new
/// response to `client` would be; `None` when the new header fields cannot
/// be used (then the old response is served as it is).
fn freshen(
    config: &Config,
    client: &Parts,
    target: &Target,
    s: &StoredResponse,
    not_modified: &HeaderMap,
    request_time: u64,
    response_time: u64,
) -> Option<Freshened> {
    let mut incoming = not_modified.clone();
    let new_tags = take_tags(&mut incoming);
    let headers = conditional::freshen(&s.headers, &incoming);
    let cc = Directives::of_response(&headers, config.targeted).ok()?;
    let status = s.status();
    let fallback = Fallback {
        ttl: config.ttl,
        heuristic: config.heuristic,
    };
    let lifetime = freshness::lifetime(&cc, &headers, status, response_time, fallback);
    let vary_changed = Vary::of(&headers) != Vary::of(&s.headers);
    let checked = storable::check(
        &client.headers,
        &target.cc,
        status,
        &headers,
        config.targeted,
        |_| lifetime,
    )
    .and_then(|st| match &st.vary {
        // Too long to key on: not stored (and, below, not shared).
        Vary::Fields(fields) => secondary(fields, &client.headers)
            .map(Some)
            .ok_or(NotStored::Malformed),
        _ => Ok(None),
    });
    Some(Freshened {
        ends_sharing: cc.private || cc.no_store || vary_changed,
        checked,
        response: StoredResponse {
            identity: s.identity.clone(),
            secondary: s.secondary.clone(),
            status: s.status,
            initial_age: freshness::initial_age(&incoming, request_time, response_time),
            headers,
            body: s.body.clone(),
            response_time,
            lifetime: lifetime.unwrap_or(0),
            stale: StaleRules::of(&cc),
            tags: if new_tags.is_empty() {
                s.tags.clone()
            } else {
                new_tags
            },
            hit_headers: Default::default(),
        },
    })
}

/// Writes a response (and, for a variant, its URI's index) through the
/// cache's tiers, tagged with its URI and its own tags. The entries live as
/// long as the response may still be used: fresh, stale within its windows,
/// or kept to be revalidated. Whether it was written.
async fn store(
    config: &Config,
    target: &Target,
    response: StoredResponse,
) -> (Arc<StoredResponse>, bool) {
    let now = now_millis();
    let fresh = u64::try_from(response.fresh_for(now).max(0)).unwrap_or(0);
    let windows = response
        .stale
        .while_revalidate
        .max(response.stale.if_error)
        .max(crate::clock::millis(config.stale))
        .max(crate::clock::millis(config.fail_safe));
    let windows = if response.stale.never { 0 } else { windows };
    let keep = if conditional::has_validator(&response.headers) {
        crate::clock::millis(config.keep)
    } else {
        0
    };
    let retention = fresh.saturating_add(windows.max(keep));
    let response = Arc::new(response);
    if retention == 0 {
        return (response, false);
    }
    let policy = Policy::ttl(std::time::Duration::from_millis(retention))
        .stale(std::time::Duration::ZERO)
        .fail_safe(std::time::Duration::ZERO);
    let mut tags = Vec::with_capacity(response.tags.len() + 1);
    tags.push(target.uri_tag.clone());
    tags.extend(response.tags.iter().cloned());
    let cache = &config.cache;
    let primary = key::primary(&target.identity);
    // `set_with` reports no error: a failed remote write is counted by the cache.
    match (&response.secondary, Vary::of(&response.headers)) {
        (Some(sec), Ok(Vary::Fields(fields))) => {
            let index = HttpEntry::Variants(Arc::new(fields));
            let index_policy = Policy::ttl(std::time::Duration::from_millis(
                retention.max(crate::clock::millis(config.keep)),
            ))
            .stale(std::time::Duration::ZERO)
            .fail_safe(std::time::Duration::ZERO);
            let _ = cache
                .set_with(&primary, index, &index_policy, [target.uri_tag.as_str()])
                .await;
            let variant = key::variant(&target.identity, sec);
            let entry = HttpEntry::Response(response.clone());
            let _ = cache.set_with(&variant, entry, &policy, &tags).await;
        }
        _ => {
            let entry = HttpEntry::Response(response.clone());
            let _ = cache.set_with(&primary, entry, &policy, &tags).await;
        }
    }
    (response, true)
}

/// A stored response as the answer to `client`: 304 when the client's
/// validators match, the body left out for HEAD, with `Age` and `Cache-Status`.
fn serve<E>(config: &Config, s: &StoredResponse, client: &Parts, now: u64, status: &str) -> Out<E> {
    serve_asked(config, s, client, Asks::of(&client.headers), now, status)
}

/// [`serve`], with the request's fields already looked at.
fn serve_asked<E>(
    config: &Config,
    s: &StoredResponse,
    client: &Parts,
    asks: Asks<'_>,
    now: u64,
    status: &str,
) -> Out<E> {
    let age = age_seconds(s.age(now));
    let ttl = whole_seconds(s.fresh_for(now));
    let answered = if asks.validator
        && conditional::not_modified(&client.headers, &s.headers)
        && s.status().is_success()
    {
        let mut r = Response::new(empty::<E>());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        *r.headers_mut() = conditional::not_modified_headers(&s.headers);
        Some(r)
    } else if asks.range {
        ranged(s, client)
    } else {
        None
    };
    if let Some(mut r) = answered {
        r.headers_mut().insert(AGE, HeaderValue::from(age));
        status_header(config, r.headers_mut(), &format!("{status}; ttl={ttl}"));
        return r;
    }
    let body = if client.method == Method::HEAD {
        empty::<E>()
    } else {
        full::<E>(s.body.clone())
    };
    let mut r = Response::new(body);
    *r.status_mut() = s.status();
    if status == "hit" {
        // The common case: the same headers for every hit within a second.
        let name = config.status_name.as_deref();
        // A stored body is whole: its length is known (RFC 9110 §8.6), but
        // a 204 or a 1xx never has one.
        let status = s.status();
        let length = (!status.is_informational() && status != StatusCode::NO_CONTENT)
            .then_some(s.body.len());
        let hit = Hit {
            age,
            ttl,
            name,
            length,
        };
        *r.headers_mut() = s.hit_headers.get(&s.headers, hit);
    } else {
        *r.headers_mut() = s.headers.clone();
        r.headers_mut().insert(AGE, HeaderValue::from(age));
        status_header(config, r.headers_mut(), &format!("{status}; ttl={ttl}"));
    }
    r
}

/// Whole seconds of milliseconds, toward zero, in 64 bits (an `i128`
/// division is a call to a slow helper, and every hit makes one).
fn whole_seconds(millis: i128) -> i128 {
    let clamped = i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX });
    i128::from(clamped / 1000)
}

/// The answer to a `Range` GET from a stored 200 (RFC 9110 §14): a 206 with
/// `Content-Range`, or a 416; `None` when the request has no range this
/// serves (then the whole response is sent).
fn ranged<E>(s: &StoredResponse, client: &Parts) -> Option<Out<E>> {
    let header = client.headers.get(RANGE)?;
    if client.method != Method::GET || s.status != 200 {
        return None;
    }
    let len = s.body.len() as u64;
    let mut headers = s.headers.clone();
    let (status, body, content_range) = match range::select(header.as_bytes(), len) {
        Ranged::Whole => return None,
        Ranged::Part(start, end) => {
            // Within the body: select keeps start <= end < len.
            let part = s.body.slice(start as usize..=end as usize);
            let text = format!("bytes {start}-{end}/{len}");
            (StatusCode::PARTIAL_CONTENT, part, text)
        }
        Ranged::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            Bytes::new(),
            format!("bytes */{len}"),
        ),
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    // Made of digits, `-`, `/` and a space: a valid header value.
    headers.insert(CONTENT_RANGE, HeaderValue::from_str(&content_range).ok()?);
    let mut r = Response::new(full::<E>(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    Some(r)
}

/// An origin response sent on as it is, less its `Cache-Tag`.
fn pass<R>(config: &Config, response: Response<R>, status: &str) -> Out<R::Error>
where
    R: Body<Data = Bytes> + Send + 'static,
{
    let (mut head, body) = response.into_parts();
    head.headers.remove(super::headers::CACHE_TAG);
    finish(
        config,
        Response::from_parts(head, body.boxed_unsync()),
        status,
    )
}

fn finish<E>(config: &Config, mut response: Out<E>, status: &str) -> Out<E> {
    response.headers_mut().remove(super::headers::CACHE_TAG);
    status_header(config, response.headers_mut(), status);
    response
}

/// RFC 9111 §5.2.1.7: `only-if-cached` with nothing to serve.
fn gateway_timeout<E>(config: &Config) -> Out<E> {
    let mut r = Response::new(empty::<E>());
    *r.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    status_header(config, r.headers_mut(), "fwd=miss; detail=only-if-cached");
    r
}

/// Appends this cache's member to `Cache-Status` (RFC 9211: the cache
/// nearest the client comes last).
fn status_header(config: &Config, headers: &mut HeaderMap, status: &str) {
    if let Some(name) = &config.status_name {
        let text = if status.is_empty() {
            name.clone()
        } else {
            format!("{name}; {status}")
        };
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append(CACHE_STATUS, v);
        }
    }
}

/// The body's data, at most `limit` bytes; `None` when it fails or is longer.
/// (Trailers, rare on a body of known length, are not kept.)
async fn collect<R: Body<Data = Bytes>>(body: R, limit: usize) -> Option<Bytes> {
    let mut body = std::pin::pin!(body);
    // What the body says it holds, to copy into one allocation.
    let expected = usize::try_from(body.size_hint().lower()).map_or(limit, |n| n.min(limit));
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut copied = false;
    // The bytes received: counted once each (`first` is in `rest` too once
    // it was copied, so their lengths do not add up to it).
    let mut len: usize = 0;
    while let Some(frame) = body.as_mut().frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        len = len.checked_add(data.len())?;
        if len > limit {
            return None;
        }
        // One frame (the usual case) is kept as it is, without a copy.
        match &first {
            None => first = Some(data),
            Some(f) => {
                if !copied {
                    rest.reserve(expected.max(len));
                    rest.extend_from_slice(f);
                    copied = true;
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Some(if copied {
        rest.into()
    } else {
        first.unwrap_or_default()
    })
}

fn full<E>(bytes: Bytes) -> CacheBody<E> {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty<E>() -> CacheBody<E> {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Calls a service that may not have been polled ready (the one handed to
/// `call` was; a clone for a background revalidation was not).
async fn call<S, B, R>(mut service: S, request: Request<B>) -> Result<Response<R>, S::Error>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

fn path_and_query(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The path and query (normal form) of `named` (a `Location` or `Content-Location`) when it
/// names the same origin as the request: an absolute URI with the same
/// authority, an absolute path, or a relative path resolved against the
/// request's path.
fn same_origin(authority: &str, base: &http::Uri, named: &str) -> Option<String> {
    let named = named.trim();
    if named.is_empty() || named.starts_with("//") {
        return None;
    }
    // A fragment is not part of the named.
    let named = named.split('#').next().unwrap_or("");
    if let Ok(uri) = named.parse::<http::Uri>() {
        if let Some(a) = uri.authority() {
            // The request's authority read under the named scheme, so that
            // `http://h:80/x` names a request to `h`.
            let scheme = uri.scheme_str();
            let same =
                target::authority(a.as_str(), scheme) == target::authority(authority, scheme);
            return same.then(|| target::path_and_query(path_and_query(&uri)).into_owned());
        }
    }
    if named.starts_with('/') {
        return Some(target::path_and_query(named).into_owned());
    }
    if named.contains(':') {
        return None; // Another scheme.
    }
    let path = base.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    // Dot segments (`../x`) resolve in the normal form.
    Some(target::path_and_query(&format!("{dir}{named}")).into_owned())
}

/// `Parts` has no `Clone` (its extensions may not be): the fields a stored
/// response is chosen and answered by.
trait CloneParts {
    fn clone_without_extensions(&self) -> Parts;
}

impl CloneParts for Parts {
    fn clone_without_extensions(&self) -> Parts {
        let mut request = Request::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request.into_parts().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    /// `data` in frames of seeded random sizes: empty, one byte, small, or
    /// any part of the whole.
    fn frames(data: &Bytes, seed: u64) -> Vec<Result<http_body::Frame<Bytes>, std::io::Error>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (mut out, mut at) = (Vec::new(), 0);
        while at < data.len() {
            let n = match rng.u8(..4) {
                0 => 0,
                1 => 1,
                2 => rng.usize(1..4096),
                _ => rng.usize(1..=data.len()),
            };
            let end = (at + n).min(data.len());
            out.push(Ok(http_body::Frame::data(data.slice(at..end))));
            at = end;
        }
        out
    }

    #[tokio::test]
    async fn collect_counts_each_byte_once_whatever_the_frames() {
        let limit = 100_000;
        for len in [
            0,
            1,
            limit / 2,
            limit / 2 + 1,
            limit - 1,
            limit,
            limit + 1,
            2 * limit,
        ] {
            let data: Bytes = (0..len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into();
            for seed in 0..50 {
                let body = StreamBody::new(futures_util::stream::iter(frames(&data, seed)));
                let got = collect(body, limit).await;
                let want = (len <= limit).then(|| data.clone());
                let lengths = (got.as_ref().map(Bytes::len), want.as_ref().map(Bytes::len));
                assert!(got == want, "{len} {seed}: (got, want) {lengths:?}");
            }
        }
        // A body that fails midway is no body.
        let failing = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("reset")),
        ];
        let body = StreamBody::new(futures_util::stream::iter(failing));
        assert_eq!(collect(body, limit).await, None);
    }

    #[test]
    fn same_origin_locations_resolve_and_others_do_not() {
        let base: http::Uri = "/a/b?x".parse().unwrap();
        assert_eq!(same_origin("h", &base, "/c"), Some("/c".into()));
        assert_eq!(same_origin("h", &base, "c?d"), Some("/a/c?d".into()));
        assert_eq!(same_origin("h", &base, "http://H/c"), Some("/c".into()));
        assert_eq!(same_origin("h", &base, "http://other/c"), None);
        assert_eq!(same_origin("h", &base, "//other/c"), None);
        assert_eq!(same_origin("h", &base, "mailto:x"), None);
        assert_eq!(same_origin("h", &base, "../c/./%64"), Some("/c/d".into()));
        assert_eq!(same_origin("h", &base, "/c?#f"), Some("/c".into()));
        assert_eq!(same_origin("h", &base, "http://H.:80/c"), Some("/c".into()));
        assert_eq!(same_origin("h:80", &base, "http://h/c"), Some("/c".into()));
        assert_eq!(same_origin("h", &base, "http://h:81/c"), None);
    }
}
