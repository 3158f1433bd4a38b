//! Conditional requests. A client's `If-None-Match` (weak comparison, RFC
//! 9110 §13.1.2) or `If-Modified-Since` that a stored response satisfies is
//! answered 304 (§13.2.2's order); a stale stored response is revalidated
//! with its `ETag` / `Last-Modified` (RFC 9111 §4.3.1), and a 304 from the
//! origin freshens its header fields (§4.3.4, §3.2).

use http::header::{
    HeaderName, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE,
    DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::HeaderMap;

use super::freshness::http_date;
use super::headers::is_unstored;

/// An entity-tag: whether it is weak, and its opaque tag without quotes.
type EntityTag = (bool, Vec<u8>);

/// The entity-tags of an `If-None-Match` list; `None` for `*`. Malformed
/// items are skipped (they match nothing).
fn entity_tags(headers: &HeaderMap, name: HeaderName) -> Option<Vec<EntityTag>> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let mut rest = value.as_bytes();
        loop {
            rest = rest.trim_ascii_start();
            if let Some(r) = rest.strip_prefix(b",") {
                rest = r;
                continue;
            }
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix(b"*") {
                if r.trim_ascii_start().is_empty() || r.trim_ascii_start().starts_with(b",") {
                    return None;
                }
            }
            match parse_tag(rest) {
                Some((tag, r)) => {
                    out.push(tag);
                    rest = r;
                }
                // Skip to the next comma outside a tag.
                None => match rest.iter().position(|c| *c == b',') {
                    Some(i) => rest = &rest[i + 1..],
                    None => break,
                },
            }
        }
    }
    Some(out)
}

/// One entity-tag, and the rest.
fn parse_tag(b: &[u8]) -> Option<(EntityTag, &[u8])> {
    let (weak, b) = match b.strip_prefix(b"W/") {
        Some(r) => (true, r),
        None => (false, b),
    };
    let body = b.strip_prefix(b"\"")?;
    let end = body.iter().position(|c| *c == b'"')?;
    Some(((weak, body[..end].to_vec()), &body[end + 1..]))
}

/// The stored response's `ETag`, parsed.
fn stored_tag(headers: &HeaderMap) -> Option<EntityTag> {
    let v = headers.get(ETAG)?;
    let (tag, rest) = parse_tag(v.as_bytes().trim_ascii())?;
    rest.trim_ascii().is_empty().then_some(tag)
}

/// Whether a client's conditional GET is satisfied by a stored response with
/// `stored` header fields: its answer is then 304.
pub(crate) fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    if request.contains_key(IF_NONE_MATCH) {
        let Some(tags) = entity_tags(request, IF_NONE_MATCH) else {
            return true; // `*`: any current representation.
        };
        let Some((_, mine)) = stored_tag(stored) else {
            return false;
        };
        // Weak comparison: the opaque tags are equal, whatever `W/`.
        return tags.iter().any(|(_, t)| *t == mine);
    }
    let Some(since) = http_date(request, IF_MODIFIED_SINCE) else {
        return false;
    };
    match http_date(stored, LAST_MODIFIED).or_else(|| http_date(stored, DATE)) {
        Some(modified) => modified <= since,
        None => false,
    }
}

/// The header fields of a 304 made from a stored response (RFC 9110 §15.4.5).
pub(crate) fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY] {
        for v in stored.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

/// Whether the stored response can be revalidated (it has a validator).
pub(crate) fn has_validator(stored: &HeaderMap) -> bool {
    stored.contains_key(ETAG) || stored.contains_key(LAST_MODIFIED)
}

/// Makes `request` (a client's GET) the revalidation of a stored response:
/// the client's own validators out, the stored ones in.
pub(crate) fn make_conditional(request: &mut HeaderMap, stored: &HeaderMap) {
    request.remove(IF_NONE_MATCH);
    request.remove(IF_MODIFIED_SINCE);
    if let Some(tag) = stored.get(ETAG) {
        request.insert(IF_NONE_MATCH, tag.clone());
    }
    if let Some(modified) = stored.get(LAST_MODIFIED) {
        request.insert(IF_MODIFIED_SINCE, modified.clone());
    }
}

/// Whether a 304 from the origin is about the stored response (§4.3.4): a
/// strong `ETag` in the 304 must be the stored one; without one, the stored
/// `Last-Modified` must agree if both have it.
pub(crate) fn selects(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    if let Some(v) = not_modified.get(ETAG) {
        let Some((weak, tag)) = parse_tag(v.as_bytes().trim_ascii()).map(|(t, _)| t) else {
            return false;
        };
        return match stored_tag(stored) {
            Some((stored_weak, mine)) => {
                mine == tag && (weak || !stored_weak || weak == stored_weak)
            }
            None => false,
        };
    }
    match (stored.get(LAST_MODIFIED), not_modified.get(LAST_MODIFIED)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The stored header fields updated from a 304 (§3.2): each field the 304
/// carries replaces the stored one, except `Content-Length`, what is never
/// stored, and the fields that describe the stored bytes themselves
/// (`Content-Encoding`, `Content-Range`, `Content-MD5`): §3.2 lets a cache
/// keep those "to assure integrity of the stored response", since the body
/// it serves is the one they were sent with.
pub(crate) fn freshen(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in not_modified {
        let describes_body =
            *name == CONTENT_ENCODING || *name == CONTENT_RANGE || name.as_str() == "content-md5";
        if *name == CONTENT_LENGTH || describes_body || is_unstored(name, not_modified) {
            continue;
        }
        if !replaced.contains(&name) {
            out.remove(name);
            replaced.push(name);
        }
        out.append(name.clone(), value.clone());
    }
    out
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

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let stored = map(&[("etag", "W/\"v1\"")]);
        assert!(not_modified(&map(&[("if-none-match", "\"v1\"")]), &stored));
        assert!(not_modified(
            &map(&[("if-none-match", "\"x\", W/\"v1\"")]),
            &stored
        ));
        assert!(not_modified(&map(&[("if-none-match", "*")]), &stored));
        assert!(!not_modified(&map(&[("if-none-match", "\"v2\"")]), &stored));
        assert!(!not_modified(
            &map(&[("if-none-match", "\"a,b\"")]),
            &map(&[("etag", "\"a\"")])
        ));
        assert!(not_modified(
            &map(&[("if-none-match", "junk, \"a,b\"")]),
            &map(&[("etag", "\"a,b\"")])
        ));
        // If-None-Match takes precedence over If-Modified-Since.
        let both = map(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", "Sun, 06 Nov 2094 08:49:37 GMT"),
        ]);
        assert!(!not_modified(&both, &stored));
    }

    #[test]
    fn if_modified_since_compares_last_modified_or_date() {
        let stored = map(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert!(not_modified(
            &map(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &map(&[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &map(&[("if-modified-since", "garbage")]),
            &stored
        ));
        let dated = map(&[("date", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert!(not_modified(
            &map(&[("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")]),
            &dated
        ));
    }

    #[test]
    fn revalidation_sends_the_stored_validators() {
        let stored = map(&[
            ("etag", "\"s\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let mut req = map(&[("if-none-match", "\"client\""), ("accept", "x")]);
        make_conditional(&mut req, &stored);
        assert_eq!(req.get("if-none-match").unwrap(), "\"s\"");
        assert_eq!(
            req.get("if-modified-since").unwrap(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(req.get("accept").unwrap(), "x");
    }

    #[test]
    fn a_304_freshens_the_stored_fields() {
        let stored = map(&[
            ("etag", "\"s\""),
            ("cache-control", "max-age=1"),
            ("content-length", "5"),
            ("x-a", "old"),
        ]);
        let nm = map(&[
            ("cache-control", "max-age=60"),
            ("content-length", "0"),
            ("x-b", "new"),
            ("connection", "close"),
        ]);
        let h = freshen(&stored, &nm);
        assert_eq!(h.get("cache-control").unwrap(), "max-age=60");
        assert_eq!(h.get("content-length").unwrap(), "5");
        assert_eq!(h.get("x-a").unwrap(), "old");
        assert_eq!(h.get("x-b").unwrap(), "new");
        assert!(h.get("connection").is_none());
        assert!(selects(&stored, &nm));
        assert!(selects(&stored, &map(&[("etag", "\"s\"")])));
        assert!(!selects(&stored, &map(&[("etag", "\"other\"")])));
    }

    #[test]
    fn a_304_leaves_the_fields_that_describe_the_stored_bytes() {
        let stored = map(&[
            ("etag", "\"s\""),
            ("content-encoding", "gzip"),
            ("content-md5", "a"),
        ]);
        let nm = map(&[
            ("content-encoding", "br"),
            ("content-md5", "b"),
            ("content-range", "bytes 0-1/2"),
            ("content-type", "text/html"),
        ]);
        let h = freshen(&stored, &nm);
        assert_eq!(h["content-encoding"], "gzip");
        assert_eq!(h["content-md5"], "a");
        assert!(h.get("content-range").is_none());
        assert_eq!(h["content-type"], "text/html");
    }

    #[test]
    fn a_304_carries_the_fields_rfc_9110_names() {
        let stored = map(&[
            ("etag", "\"s\""),
            ("content-type", "text/plain"),
            ("vary", "a"),
        ]);
        let h = not_modified_headers(&stored);
        assert!(h.contains_key("etag") && h.contains_key("vary"));
        assert!(!h.contains_key("content-type"));
    }
}
