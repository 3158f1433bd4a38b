//! A GET or HEAD that memory did not answer fresh: the stored response
//! found (remote tier, variant), then a hit, a stale answer with a
//! background revalidation, or the origin.

use std::sync::Arc;

use http::header::RANGE;
use http::request::Parts;

use super::collapse::{background_revalidation, fetch_coalesced};
use super::lookup::find_stored;
use super::origin::bypass;
use super::respond::{gateway_timeout, serve};
use super::{
    fresh_enough, path_and_query, wants_newer, CloneParts, Looked, Origin, OriginBody, Out,
    Requested,
};
use crate::http::freshness::now_millis;
use crate::http::key;
use crate::http::Config;

pub(super) async fn read_request<S, B, R>(
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
    let (stored, miss) = find_stored(&config, &keyed, &parts.headers, memory).await;
    // A fresh hit (from the remote tier, or a variant) is answered before
    // the URI's tag and the layer's tags, needed only to store, are computed.
    if let Some(stored) = &stored {
        if fresh_enough(&config, &cc, stored, now) {
            return Ok(serve(&config, stored, &parts, now, "hit"));
        }
    }
    let authority = key::authority(&parts);
    let target = Requested {
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
        return Box::pin(fetch_coalesced(
            config, service, parts, body, target, None, miss,
        ))
        .await;
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
    Box::pin(fetch_coalesced(
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
