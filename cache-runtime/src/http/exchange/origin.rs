//! One request to the origin: conditional on a stored validator, a stale
//! response on its failure, and its full answer stored (or streamed and
//! stored once it ended) or passed through.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::body::collect_within;
use super::outcome::{own_rule, OriginOutcome};
use super::respond::{empty, finish_response, pass, serve};
use super::revalidation::not_modified;
use super::store::store_response;
use super::{call_when_ready, CloneParts, Out, Requested};
use crate::http::cache_control::Directives;
use crate::http::conditional;
use crate::http::freshness::{self, now_millis, Fallback};
use crate::http::headers::{stored_fields, take_tags};
use crate::http::storable;
use crate::http::stored::{StaleRules, StoredResponse};
use crate::http::tee::Tee;
use crate::http::vary::{secondary, Vary};
use crate::http::Config;

/// A request the cache does not take part in, sent on as it is.
pub(super) async fn bypass<S, B, R>(
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
    let r = call_when_ready(service, Request::from_parts(parts, body)).await?;
    Ok(pass(config, r, &format!("fwd=bypass; detail={detail}")))
}

/// One request to the origin: conditional when a stored response has a
/// validator; the answer stored, freshened or passed through.
pub(super) async fn ask_origin<S, B, R>(
    config: &Arc<Config>,
    service: S,
    mut parts: Parts,
    body: B,
    target: &Requested,
    stored: Option<Arc<StoredResponse>>,
    fwd: &'static str,
) -> Result<(Out<R::Error>, OriginOutcome), S::Error>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Body<Data = Bytes> + Send + 'static,
{
    let client = parts.clone_without_extensions();
    if parts.method == Method::HEAD {
        // A HEAD that the stored GET response could not answer goes through;
        // when the origin fails, a stale one that allows it answers.
        let result = call_when_ready(service, Request::from_parts(parts, body)).await;
        let now = now_millis();
        let usable = stored.filter(|s| stale_on_error(config, s, now));
        let stale = |s: &StoredResponse, text: &str| {
            let text = format!("{fwd}; {text}detail=stale-if-error");
            Ok((serve(config, s, &client, now, &text), OriginOutcome::Pass))
        };
        return match (result, usable) {
            (Err(_), Some(s)) => stale(&s, ""),
            (Err(error), None) => Err(error),
            (Ok(r), Some(s)) if server_error(r.status()) => {
                stale(&s, &format!("fwd-status={}; ", r.status().as_u16()))
            }
            (Ok(r), _) => Ok((pass(config, r, fwd), OriginOutcome::Pass)),
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
    let result = call_when_ready(service, Request::from_parts(parts, body)).await;
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
                        OriginOutcome::Serve(s),
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
                OriginOutcome::Serve(s.clone()),
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
                OriginOutcome::Pass,
            ));
        }
    }
    let times = (request_time, response_time);
    Ok(full_response(config, &client, target, response, times, fwd).await)
}

/// Whether a stale `s` may answer a request the origin failed (an error,
/// or a [`server_error`]) at `now`: within its `stale-if-error` or the
/// layer's fail-safe, and not forbidden (`must-revalidate` and the like).
pub(super) fn stale_on_error(config: &Config, s: &StoredResponse, now: u64) -> bool {
    let stale_for = u64::try_from(-s.fresh_for(now)).unwrap_or(0);
    let window = s.stale.if_error.max(crate::clock::millis(config.fail_safe));
    !s.stale.never && stale_for < window
}

/// The statuses `stale-if-error` answers for (RFC 5861 §4).
pub(super) fn server_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// A full response from the origin: stored when it may be, and answered.
pub(super) async fn full_response<R>(
    config: &Arc<Config>,
    client: &Parts,
    target: &Requested,
    response: Response<R>,
    (request_time, response_time): (u64, u64),
    fwd: &'static str,
) -> (Out<R::Error>, OriginOutcome)
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
    let not_stored =
        |head: http::response::Parts, body: R, reason: &str, outcome: OriginOutcome| {
            let text = format!("{fwd}; detail={reason}");
            (
                pass(config, Response::from_parts(head, body), &text),
                outcome,
            )
        };
    let st = match checked {
        Ok(st) => st,
        Err(reason) => {
            // A server error starts no hit-for-miss: a failing origin keeps
            // its single flight.
            let outcome = if own_rule(reason, &target.cc) && !head.status.is_server_error() {
                OriginOutcome::Uncacheable
            } else {
                OriginOutcome::Pass
            };
            return not_stored(head, body, reason.detail(), outcome);
        }
    };
    let secondary_key = match &st.vary {
        Vary::Fields(fields) => match secondary(fields, &client.headers) {
            Some(k) => Some(k),
            None => return not_stored(head, body, "vary-too-large", OriginOutcome::Pass),
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
            let outcome = if head.status.is_server_error() {
                OriginOutcome::Pass
            } else {
                OriginOutcome::Uncacheable
            };
            return not_stored(head, body, "too-large", outcome);
        }
        None => {
            let text = format!("{fwd}; detail=streamed");
            let body = tee(config, target, template, body);
            return (
                pass(config, Response::from_parts(head, body), &text),
                OriginOutcome::Pass,
            );
        }
    }
    let bytes = match collect_within(body, config.max_body).await {
        Some(bytes) => bytes,
        None => {
            // The origin's body failed midway (or outgrew its length).
            let mut bad = Response::new(empty::<R::Error>());
            *bad.status_mut() = StatusCode::BAD_GATEWAY;
            return (
                finish_response(config, bad, &format!("{fwd}; detail=body-error")),
                OriginOutcome::Pass,
            );
        }
    };
    let response = StoredResponse {
        body: bytes,
        ..template
    };
    let (stored, kept) = store_response(config, target, response).await;
    let text = if kept {
        format!("{fwd}; stored")
    } else {
        fwd.to_string()
    };
    (
        serve(config, &stored, client, response_time, &text),
        OriginOutcome::Serve(stored),
    )
}

/// A streamed body that is stored, as `template` with it, once it ended
/// within the layer's `max_body` (without a runtime to store on, it only
/// streams).
pub(super) fn tee<R>(
    config: &Arc<Config>,
    target: &Requested,
    template: StoredResponse,
    body: R,
) -> Tee<R>
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
                store_response(&config, &target, response).await;
            });
        }) as Box<dyn FnOnce(Bytes) + Send>
    });
    Tee::new(body, limit, done)
}
