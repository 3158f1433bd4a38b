//! One request through the layer: look up what is stored, serve it fresh (or
//! stale where allowed), or go to the origin through the cache's single
//! flight, store what may be stored, and invalidate on unsafe methods.
//!
//! This file holds [`handle`] and a request's early decisions (a fresh hit
//! from memory, a bypass, a target to normalize); each later step has a file:
//!
//! - `read`: a GET or HEAD past memory: hit, stale-while-revalidate, or the origin;
//! - `lookup`: the stored response and its variant, from memory or the remote tier;
//! - `collapse`: to the origin through [`Cache::coalesce`](crate::Cache::coalesce)
//!   (one request per URI), and the background revalidation;
//! - `origin`: one request to the origin, and its full answer (stored, streamed
//!   or passed);
//! - `revalidation`: a 304 freshening the stored response;
//! - `store`: what is written, and the invalidation of unsafe methods;
//! - `respond`: stored responses served (304, ranges), passed ones, `Cache-Status`;
//! - `body`: an origin body read whole within a limit.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body::Body;
use tower::Service;

use super::cache_control::Directives;
use super::freshness::now_millis;
use super::future::ResponseFuture;
use super::headers::Asks;
use super::key;
use super::stored::{HttpEntry, StoredResponse};
use super::target;
use super::{CacheBody, Config};
use crate::key::Key;

mod body;
mod collapse;
mod lookup;
mod origin;
mod outcome;
mod read;
mod respond;
mod revalidation;
mod store;

use origin::bypass;
use read::read_request;
use respond::serve_asked;
use store::write_request;

type Out<E> = Response<CacheBody<E>>;

/// What a request is, for the cache.
#[derive(Clone)]
struct Requested {
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
        return ResponseFuture::boxed(write_request(
            config.clone(),
            take_ready(inner),
            parts,
            body,
        ));
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
            let (config, service) = (config.clone(), take_ready(inner));
            ResponseFuture::boxed(
                async move { bypass(&config, service, parts, body, detail).await },
            )
        }
        Early::Read(looked) => ResponseFuture::boxed(read_request(
            config.clone(),
            take_ready(inner),
            parts,
            body,
            looked,
        )),
    }
}

/// The inner service polled ready, for this request; its clone waits for
/// the next (a hit uses neither, and leaves the ready one in place).
/// Calls a service that may not have been polled ready (the one handed to
/// `call_when_ready` was; a clone for a background revalidation was not).
pub(super) async fn call_when_ready<S, B, R>(
    mut service: S,
    request: Request<B>,
) -> Result<Response<R>, S::Error>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

fn take_ready<S: Clone>(inner: &mut S) -> S {
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

fn path_and_query(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
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
