//! What is written: a response (and its variants' index) through the
//! cache's tiers, and the invalidation an unsafe method makes (§4.4).

use std::sync::Arc;

use http::header::{CONTENT_LOCATION, LOCATION};
use http::request::Parts;
use http::{Method, Request};

use super::respond::pass;
use super::{call_when_ready, path_and_query, Origin, OriginBody, Out, Requested};
use crate::http::conditional;
use crate::http::freshness::now_millis;
use crate::http::key;
use crate::http::stored::{HttpEntry, StoredResponse};
use crate::http::target;
use crate::http::vary::Vary;
use crate::http::Config;
use crate::Policy;

/// Writes a response (and, for a variant, its URI's index) through the
/// cache's tiers, tagged with its URI and its own tags. The entries live as
/// long as the response may still be used: fresh, stale within its windows,
/// or kept to be revalidated. Whether it was written.
pub(super) async fn store_response(
    config: &Config,
    target: &Requested,
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

/// A request with another method: sent on, and, when unsafe and
/// successful, its URIs invalidated.
pub(super) async fn write_request<S, B, R>(
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
    let response = call_when_ready(service, Request::from_parts(parts, body)).await?;
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

/// The path and query (normal form) of `named` (a `Location` or `Content-Location`) when it
/// names the same origin as the request: an absolute URI with the same
/// authority, an absolute path, or a relative path resolved against the
/// request's path.
pub(super) fn same_origin(authority: &str, base: &http::Uri, named: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
