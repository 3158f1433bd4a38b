//! Answers: a stored response served (304, ranges, HEAD), an origin
//! response passed on, and this cache's `Cache-Status` member.

use bytes::Bytes;
use http::header::{HeaderValue, AGE, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};

use super::Out;
use crate::http::conditional;
use crate::http::freshness::age_seconds;
use crate::http::headers::{Asks, CACHE_STATUS};
use crate::http::range::{self, Ranged};
use crate::http::rendered::Hit;
use crate::http::stored::StoredResponse;
use crate::http::{CacheBody, Config};

/// A stored response as the answer to `client`: 304 when the client's
/// validators match, the body left out for HEAD, with `Age` and `Cache-Status`.
pub(super) fn serve<E>(
    config: &Config,
    s: &StoredResponse,
    client: &Parts,
    now: u64,
    status: &str,
) -> Out<E> {
    serve_asked(config, s, client, Asks::of(&client.headers), now, status)
}

/// [`serve`], with the request's fields already looked at.
pub(super) fn serve_asked<E>(
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
pub(super) fn whole_seconds(millis: i128) -> i128 {
    let clamped = i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX });
    i128::from(clamped / 1000)
}

/// The answer to a `Range` GET from a stored 200 (RFC 9110 §14): a 206 with
/// `Content-Range`, or a 416; `None` when the request has no range this
/// serves (then the whole response is sent).
pub(super) fn ranged<E>(s: &StoredResponse, client: &Parts) -> Option<Out<E>> {
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
pub(super) fn pass<R>(config: &Config, response: Response<R>, status: &str) -> Out<R::Error>
where
    R: Body<Data = Bytes> + Send + 'static,
{
    let (mut head, body) = response.into_parts();
    head.headers.remove(crate::http::headers::CACHE_TAG);
    finish_response(
        config,
        Response::from_parts(head, body.boxed_unsync()),
        status,
    )
}

pub(super) fn finish_response<E>(config: &Config, mut response: Out<E>, status: &str) -> Out<E> {
    response
        .headers_mut()
        .remove(crate::http::headers::CACHE_TAG);
    status_header(config, response.headers_mut(), status);
    response
}

/// RFC 9111 §5.2.1.7: `only-if-cached` with nothing to serve.
pub(super) fn gateway_timeout<E>(config: &Config) -> Out<E> {
    let mut r = Response::new(empty::<E>());
    *r.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    status_header(config, r.headers_mut(), "fwd=miss; detail=only-if-cached");
    r
}

/// Appends this cache's member to `Cache-Status` (RFC 9211: the cache
/// nearest the client comes last).
pub(super) fn status_header(config: &Config, headers: &mut HeaderMap, status: &str) {
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

pub(super) fn full<E>(bytes: Bytes) -> CacheBody<E> {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(super) fn empty<E>() -> CacheBody<E> {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}
