//! A 304 from the origin: the stored response freshened by it (RFC 9111
//! §4.3.4), stored again when it still may be.

use std::sync::Arc;

use http::request::Parts;
use http::HeaderMap;

use super::outcome::{own_rule, OriginOutcome};
use super::respond::serve;
use super::store::store_response;
use super::{Out, Requested};
use crate::http::cache_control::Directives;
use crate::http::conditional;
use crate::http::freshness::{self, Fallback};
use crate::http::headers::take_tags;
use crate::http::key;
use crate::http::storable::{self, NotStored};
use crate::http::stored::{StaleRules, StoredResponse};
use crate::http::vary::{secondary, Vary};
use crate::http::Config;

/// A 304 about the stored response `s` (RFC 9111 §4.3.4), held to every
/// rule a new response is (§3): the freshened response is stored only when
/// a 200 with its fields would be, keyed by its own `Vary` (a new `Vary`
/// re-keys it to this request's variant). When it may not be stored, the
/// requesting client alone gets it (its `Set-Cookie` too); `private`,
/// `no-store` or a changed `Vary` also end the sharing of `s`: it is dropped.
pub(super) async fn not_modified<E>(
    config: &Config,
    client: &Parts,
    target: &Requested,
    s: &Arc<StoredResponse>,
    not_modified: &HeaderMap,
    (request_time, response_time): (u64, u64),
    text: String,
) -> (Out<E>, OriginOutcome) {
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
        return (
            serve(config, s, client, response_time, &text),
            OriginOutcome::Pass,
        );
    };
    match checked {
        Ok(secondary) => {
            response.secondary = secondary;
            let (stored, kept) = store_response(config, target, response).await;
            let text = if kept {
                format!("{text}; stored")
            } else {
                text
            };
            let answer = serve(config, &stored, client, response_time, &text);
            (answer, OriginOutcome::Serve(stored))
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
            let outcome = if own_rule(reason, &target.cc) {
                OriginOutcome::Uncacheable
            } else {
                OriginOutcome::Pass
            };
            (answer, outcome)
        }
    }
}

/// A stored response freshened by a 304, as the requesting client gets it,
/// and whether it may be stored.
pub(super) struct Freshened {
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
pub(super) fn freshen(
    config: &Config,
    client: &Parts,
    target: &Requested,
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
