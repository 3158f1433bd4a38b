//! Finding the stored response of a request: its URI's entry in memory or
//! the remote tier, or the variant its `Vary` fields select.

use std::sync::Arc;

use http::HeaderMap;

use crate::http::key;
use crate::http::stored::{HttpEntry, StoredResponse};
use crate::http::vary::secondary;
use crate::http::Config;
use crate::key::Key;

/// The stored response for a request: the URI's response, or the variant its
/// `Vary` fields select. The second value is the `fwd` of a miss.
pub(super) async fn find_stored(
    config: &Config,
    keyed: &key::Keyed,
    request: &HeaderMap,
    memory: Option<HttpEntry>,
) -> (Option<Arc<StoredResponse>>, &'static str) {
    let cache = &config.cache;
    let identity = keyed.identity();
    let primary = match memory {
        Some(entry) => Ok(Some(entry)),
        None => remote_entry(cache, &Key::manual(keyed.key())).await,
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
            match stored_entry(cache, &key::variant(identity, &sec)).await {
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
pub(super) async fn stored_entry(
    cache: &crate::Cache,
    key: &str,
) -> crate::Result<Option<HttpEntry>> {
    let key = Key::manual(key);
    if let Some(entry) = cache.get_now::<HttpEntry, _>(&key) {
        return Ok(Some(entry));
    }
    remote_entry(cache, &key).await
}

/// The remote tier's entry under `key` (after the memory tier missed).
pub(super) async fn remote_entry(
    cache: &crate::Cache,
    key: &Key,
) -> crate::Result<Option<HttpEntry>> {
    let found = Box::pin(crate::remote::read::read_many::<HttpEntry>(
        cache,
        std::slice::from_ref(key),
    ))
    .await?;
    Ok(found.into_iter().next().flatten())
}
