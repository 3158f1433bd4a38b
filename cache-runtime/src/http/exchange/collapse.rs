//! Going to the origin through the cache's single flight
//! ([`Cache::coalesce`](crate::Cache::coalesce)): one request per URI at a
//! time; the others share its outcome, and a stale response is revalidated
//! in the background by one request at most.

use std::sync::Arc;

use http::request::Parts;
use http::HeaderMap;

use super::origin::ask_origin;
use super::outcome::OriginOutcome;
use super::respond::serve;
use super::{Origin, OriginBody, Out, Requested};
use crate::http::freshness::now_millis;
use crate::http::key;
use crate::http::stored::StoredResponse;
use crate::http::vary::{secondary, Vary};
use crate::http::Config;

/// Remembers what a load found: an uncacheable answer marks the target
/// (its next requests are not coalesced), a stored one clears the mark.
pub(super) fn remember_outcome(config: &Config, target: &Requested, outcome: &OriginOutcome) {
    let u = &config.uncacheable;
    match outcome {
        OriginOutcome::Uncacheable => u.mark(
            &target.identity,
            now_millis(),
            crate::clock::millis(config.hit_for_miss),
        ),
        OriginOutcome::Serve(_) => u.clear(&target.identity),
        OriginOutcome::Pass => {}
    }
}

/// Goes to the origin for a request, through the cache's single flight: one
/// request per URI at a time reaches the origin; the others wait and share
/// its response when it was stored (and fits their `Vary`). A leader that
/// fails or is cancelled releases its waiters to retry; after a few
/// retries, each goes alone (`Cache::coalesce`'s rules).
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_coalesced<S, B, R>(
    config: Arc<Config>,
    service: S,
    parts: Parts,
    body: B,
    target: Requested,
    stored: Option<Arc<StoredResponse>>,
    fwd: &'static str,
) -> Result<Out<R::Error>, S::Error>
where
    S: Origin<B, R>,
    B: Send + 'static,
    R: OriginBody,
{
    // A target known to answer uncacheably goes to the origin at once: a
    // leader's answer could not be shared anyway (hit-for-miss).
    if config.uncacheable.marked(&target.identity, now_millis()) {
        let (response, outcome) =
            ask_origin(&config, service, parts, body, &target, stored, fwd).await?;
        remember_outcome(&config, &target, &outcome);
        return Ok(response);
    }
    // The request, taken by the load only if this request runs it; and the
    // load's own answer (the origin's response, with its body), which is
    // this request's alone: the others get the outcome.
    let mut request = Some((service, parts, body, stored));
    let mut answer = None;
    let (request_slot, answer_slot) = (&mut request, &mut answer);
    let (config_ref, target_ref) = (&config, &target);
    let load = move || async move {
        // `coalesce` calls the load at most once: the request is still here.
        let (service, parts, body, stored) = request_slot.take().expect("the load runs once");
        let (response, outcome) =
            ask_origin(config_ref, service, parts, body, target_ref, stored, fwd).await?;
        remember_outcome(config_ref, target_ref, &outcome);
        *answer_slot = Some(response);
        Ok(outcome)
    };
    let outcome = config
        .cache
        .coalesce(&key::flight(&target.identity), load)
        .await?;
    if let Some(response) = answer {
        return Ok(response); // This request went to the origin.
    }
    // Another request's outcome: served when it fits, else the origin, alone.
    // (A load that ran put its answer in place, or its error returned above:
    // with no answer, the load did not run and the request is still here.)
    let (service, parts, body, stored) = request.expect("the load did not run");
    if let OriginOutcome::Serve(s) = &outcome {
        if fits(s, &target.identity, &parts.headers) {
            let status = format!("{fwd}; collapsed");
            return Ok(serve(&config, s, &parts, now_millis(), &status));
        }
    }
    let (response, outcome) =
        ask_origin(&config, service, parts, body, &target, stored, fwd).await?;
    remember_outcome(&config, &target, &outcome);
    Ok(response)
}

/// Whether a response another request loaded answers this one.
pub(super) fn fits(s: &StoredResponse, identity: &str, request: &HeaderMap) -> bool {
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
pub(super) fn background_revalidation<S, B, R>(
    config: &Arc<Config>,
    service: S,
    parts: Parts,
    body: B,
    target: &Requested,
    stored: &Arc<StoredResponse>,
) where
    S: Origin<B, R>,
    B: Send + 'static,
    R: OriginBody,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let load = {
        let config = config.clone();
        let stored = stored.clone();
        let target = target.clone();
        async move {
            // The client has its answer; nothing to send, only to store.
            let (_, outcome) = ask_origin(
                &config,
                service,
                parts,
                body,
                &target,
                Some(stored),
                "fwd=stale",
            )
            .await?;
            remember_outcome(&config, &target, &outcome);
            Ok::<_, S::Error>(outcome)
        }
    };
    let key = key::flight(&target.identity);
    let Some(run) = config.cache.try_coalesce(&key, load) else {
        return; // A load of this URI is in progress already.
    };
    runtime.spawn(async move {
        // An error releases the waiters to retry; no one else is told.
        let _ = run.await;
    });
}
