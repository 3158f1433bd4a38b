//! What a trip to the origin came to, for the requests that waited for it.

use std::sync::Arc;

use crate::http::cache_control::Directives;
use crate::http::storable::NotStored;
use crate::http::stored::StoredResponse;

/// What a load shares with the requests that waited for it.
#[derive(Clone)]
pub(super) enum OriginOutcome {
    /// A stored response (just stored, freshened, or stale on an error).
    Serve(Arc<StoredResponse>),
    /// Nothing the waiters can use: each goes to the origin itself.
    Pass,
    /// The origin's answer may not be stored, by its own rules (`private`,
    /// `no-store`, `Set-Cookie`, ...): as `Pass`, and the target is
    /// remembered as uncacheable for a while (hit-for-miss).
    Uncacheable,
}

/// Whether a response is not stored by a rule of its own (so the target
/// is remembered as uncacheable), rather than because of this request
/// (its `Authorization`, its `no-store`, its fields too long to key on).
pub(super) fn own_rule(reason: NotStored, request: &Directives) -> bool {
    match reason {
        NotStored::Authorization => false,
        NotStored::NoStore => !request.no_store,
        _ => true,
    }
}
