//! What a shared cache may store (RFC 9111 §3), decided before the body is
//! read: a final status it understands; no `no-store`, no `private`; a
//! request with `Authorization` only when the response allows it; never a
//! response that sets a cookie; never `Vary: *`; and a freshness lifetime or
//! a validator to revalidate with.

use http::header::{AUTHORIZATION, ETAG, LAST_MODIFIED, SET_COOKIE};
use http::{HeaderMap, StatusCode};

use super::cache_control::Directives;
use super::vary::Vary;

/// Why a response is not stored (the `detail` of its `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    Status,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryAny,
    Malformed,
    NoFreshness,
}

impl NotStored {
    pub(crate) fn detail(self) -> &'static str {
        match self {
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::Authorization => "authorization",
            NotStored::SetCookie => "set-cookie",
            NotStored::VaryAny => "vary-star",
            NotStored::Malformed => "malformed",
            NotStored::NoFreshness => "no-freshness",
        }
    }
}

/// A response the cache may store, with its parsed parts.
pub(crate) struct Storable {
    pub(crate) cc: Directives,
    pub(crate) vary: Vary,
}

/// Whether the response to a GET with `request` headers and `request_cc` may
/// be stored; `lifetime` is its freshness lifetime, if it has one;
/// `targeted`: `CDN-Cache-Control` is obeyed (RFC 9213).
pub(crate) fn check(
    request: &HeaderMap,
    request_cc: &Directives,
    status: StatusCode,
    response: &HeaderMap,
    targeted: bool,
    lifetime: impl FnOnce(&Directives) -> Option<u64>,
) -> Result<Storable, NotStored> {
    // Final statuses only; 206 and 304 need a stored response to combine with.
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    let cc = Directives::of_response(response, targeted).map_err(|_| NotStored::Malformed)?;
    // §5.2.2.3: `must-understand` stores a response only for a status whose
    // caching rules the cache implements, and then overrides `no-store`
    // (which is there for caches that do not know the status).
    if cc.must_understand && !understood(status) {
        return Err(NotStored::Status);
    }
    if (cc.no_store && !cc.must_understand) || request_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    // §3.5: a shared cache stores a response to an authenticated request only
    // when the response says it is meant to be shared.
    if request.contains_key(AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    // Another user's session must never be replayed (whatever the directives).
    if response.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    let vary = Vary::of(response).map_err(|_| NotStored::Malformed)?;
    if vary == Vary::Any {
        return Err(NotStored::VaryAny);
    }
    let validator = response.contains_key(ETAG) || response.contains_key(LAST_MODIFIED);
    match lifetime(&cc) {
        Some(_) => {}
        // Stored to revalidate on every use: a 304 spares the body.
        None if cc.no_cache && validator => {}
        None => return Err(NotStored::NoFreshness),
    }
    Ok(Storable { cc, vary })
}

/// The statuses whose caching this layer implements (§5.2.2.3): the final
/// ones it stores without combining (not 206).
fn understood(status: StatusCode) -> bool {
    status != StatusCode::PARTIAL_CONTENT && super::freshness::heuristically_cacheable(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn run(
        req: &[(&'static str, &'static str)],
        res: &[(&'static str, &'static str)],
    ) -> Result<(), NotStored> {
        let req = map(req);
        let rcc = Directives::of(&req).unwrap();
        let lifetime = |cc: &Directives| cc.s_maxage.or(cc.max_age).map(|s| s * 1000);
        check(&req, &rcc, StatusCode::OK, &map(res), false, lifetime).map(|_| ())
    }

    #[test]
    fn the_rules_of_section_3() {
        let fresh = ("cache-control", "max-age=60");
        assert_eq!(run(&[], &[fresh]), Ok(()));
        assert_eq!(run(&[], &[]), Err(NotStored::NoFreshness));
        assert_eq!(
            run(&[], &[("cache-control", "max-age=60, no-store")]),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            run(&[("cache-control", "no-store")], &[fresh]),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            run(&[], &[("cache-control", "private, max-age=60")]),
            Err(NotStored::Private)
        );
        assert_eq!(
            run(&[], &[fresh, ("set-cookie", "s=1")]),
            Err(NotStored::SetCookie)
        );
        assert_eq!(
            run(
                &[],
                &[
                    ("cache-control", "public, max-age=60"),
                    ("set-cookie", "s=1")
                ]
            ),
            Err(NotStored::SetCookie)
        );
        assert_eq!(run(&[], &[fresh, ("vary", "*")]), Err(NotStored::VaryAny));
        assert_eq!(
            run(&[], &[("cache-control", "max-age=60, x y")]),
            Err(NotStored::Malformed)
        );
        assert_eq!(
            run(&[], &[("cache-control", "no-cache"), ("etag", "\"a\"")]),
            Ok(())
        );
    }

    #[test]
    fn must_understand_overrides_no_store_for_understood_statuses_only() {
        let res = map(&[("cache-control", "max-age=60, must-understand, no-store")]);
        let (req, d) = (HeaderMap::new(), Directives::default());
        let check_status = |s| check(&req, &d, s, &res, false, |_| Some(1)).map(|_| ());
        assert_eq!(check_status(StatusCode::OK), Ok(()));
        assert_eq!(
            check_status(StatusCode::from_u16(299).unwrap()),
            Err(NotStored::Status)
        );
    }

    #[test]
    fn authorization_needs_the_response_to_allow_sharing() {
        let auth = ("authorization", "Bearer x");
        assert_eq!(
            run(&[auth], &[("cache-control", "max-age=60")]),
            Err(NotStored::Authorization)
        );
        for allowed in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            let cc = Box::leak(allowed.to_string().into_boxed_str());
            assert_eq!(run(&[auth], &[("cache-control", cc)]), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn non_final_and_partial_statuses_are_not_stored() {
        let req = HeaderMap::new();
        let res = map(&[("cache-control", "max-age=60")]);
        let d = Directives::default();
        for status in [
            StatusCode::PARTIAL_CONTENT,
            StatusCode::NOT_MODIFIED,
            StatusCode::CONTINUE,
        ] {
            let r = check(&req, &d, status, &res, false, |_| Some(1));
            assert!(matches!(r, Err(NotStored::Status)));
        }
    }
}
