//! Header fields a shared cache never stores (RFC 9111 §3.1: hop-by-hop
//! fields and those `Connection` names), and the layer's own: `Cache-Tag`
//! (turned into tags, and removed from every response that leaves) and
//! `Cache-Status` (RFC 9211).

use http::header::{
    HeaderName, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, HOST, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue};

/// The response header that tags a stored response.
pub(crate) const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
/// RFC 9211's header.
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// The most tags taken from one `Cache-Tag`.
pub(crate) const MAX_TAGS: usize = 64;
/// The longest tag taken.
pub(crate) const MAX_TAG_LEN: usize = 256;

/// Whether `name` is never stored: hop-by-hop, named by `Connection` in
/// `headers`, or the layer's own.
pub(crate) fn is_unstored(name: &HeaderName, headers: &HeaderMap) -> bool {
    const HOP: [&str; 4] = [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    ];
    if [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE].contains(name)
        || HOP.contains(&name.as_str())
        || *name == CACHE_TAG
        || *name == CACHE_STATUS
        || *name == http::header::AGE
    {
        return true;
    }
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes().split(|c| *c == b',').any(|item| {
            item.trim_ascii()
                .eq_ignore_ascii_case(name.as_str().as_bytes())
        })
    })
}

/// Whether `headers` has any of `names`. Most requests have few fields and
/// none of the names asked about: comparing a small map's names costs less
/// than hashing each name for a lookup.
pub(crate) fn has_any(headers: &HeaderMap, names: &[HeaderName]) -> bool {
    if headers.keys_len() <= 8 {
        headers.keys().any(|k| names.contains(k))
    } else {
        names.iter().any(|n| headers.contains_key(n))
    }
}

/// The request fields a GET or HEAD branches on, found in one pass: most
/// requests have a few fields and, of these, only `Host`, so comparing a
/// small map's names costs less than hashing each name for a lookup.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Asks<'a> {
    /// The first `Host`.
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) cache_control: bool,
    /// `If-Match`, `If-Unmodified-Since` or `If-Range`: sent to the origin.
    pub(crate) precondition: bool,
    /// `If-None-Match` or `If-Modified-Since`: answered from what is stored.
    pub(crate) validator: bool,
    pub(crate) range: bool,
    /// A `Content-Length` other than 0, or a `Transfer-Encoding`: the
    /// request has content (RFC 9110 §6.4.1).
    pub(crate) content: bool,
}

impl<'a> Asks<'a> {
    pub(crate) fn of(headers: &'a HeaderMap) -> Asks<'a> {
        // Bounded by values, not names: the pass visits every value.
        if headers.len() > 8 {
            return Asks {
                host: headers.get(HOST),
                cache_control: headers.contains_key(CACHE_CONTROL),
                precondition: has_any(headers, &[IF_MATCH, IF_UNMODIFIED_SINCE, IF_RANGE]),
                validator: has_any(headers, &[IF_NONE_MATCH, IF_MODIFIED_SINCE]),
                range: headers.contains_key(RANGE),
                content: headers.contains_key(TRANSFER_ENCODING)
                    || headers.get_all(CONTENT_LENGTH).iter().any(nonzero),
            };
        }
        let mut asks = Asks::default();
        for (name, value) in headers {
            if *name == HOST {
                asks.host = asks.host.or(Some(value));
            } else if *name == CACHE_CONTROL {
                asks.cache_control = true;
            } else if *name == IF_MATCH || *name == IF_UNMODIFIED_SINCE || *name == IF_RANGE {
                asks.precondition = true;
            } else if *name == IF_NONE_MATCH || *name == IF_MODIFIED_SINCE {
                asks.validator = true;
            } else if *name == RANGE {
                asks.range = true;
            } else if *name == CONTENT_LENGTH {
                asks.content |= nonzero(value);
            } else if *name == TRANSFER_ENCODING {
                asks.content = true;
            }
        }
        asks
    }
}

/// Whether a `Content-Length` announces content: anything but digits that
/// are all `0` (a malformed length counts as content, to be safe).
fn nonzero(value: &HeaderValue) -> bool {
    let v = value.as_bytes().trim_ascii();
    v.is_empty() || v.iter().any(|b| *b != b'0')
}

/// The header fields of a response as stored.
pub(crate) fn stored_fields(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_unstored(name, headers) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The tags of a `Cache-Tag` (comma-separated; bounded in count and length,
/// an over-long tag is skipped) and removes the header.
pub(crate) fn take_tags(headers: &mut HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for value in headers.get_all(CACHE_TAG) {
        for item in value.as_bytes().split(|c| *c == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || item.len() > MAX_TAG_LEN || tags.len() >= MAX_TAGS {
                continue;
            }
            let tag = String::from_utf8_lossy(item).into_owned();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    headers.remove(CACHE_TAG);
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_not_stored() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-private-hop"),
        );
        h.insert("x-private-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        h.insert("cache-tag", HeaderValue::from_static("a"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let s = stored_fields(&h);
        assert_eq!(s.len(), 1);
        assert!(s.contains_key("x-kept"));
    }

    #[test]
    fn has_any_finds_a_name_in_small_and_large_maps() {
        let mut h = HeaderMap::new();
        h.insert("range", HeaderValue::from_static("bytes=0-1"));
        assert!(has_any(&h, &[http::header::IF_MATCH, http::header::RANGE]));
        assert!(!has_any(&h, &[http::header::IF_MATCH]));
        for i in 0..20 {
            h.insert(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        assert!(has_any(&h, &[http::header::RANGE]));
        assert!(!has_any(&h, &[http::header::IF_MATCH]));
        assert!(!has_any(&HeaderMap::new(), &[http::header::RANGE]));
    }

    #[test]
    fn asks_finds_the_same_fields_in_small_and_large_maps() {
        let mut h = HeaderMap::new();
        h.append("host", HeaderValue::from_static("a"));
        h.append("host", HeaderValue::from_static("b"));
        let small = Asks::of(&h);
        assert_eq!(small.host.map(HeaderValue::as_bytes), Some(&b"a"[..]));
        assert!(!small.cache_control && !small.precondition && !small.validator && !small.range);
        for (name, value) in [
            ("cache-control", "no-cache"),
            ("if-range", "\"x\""),
            ("if-modified-since", "x"),
            ("range", "bytes=0-1"),
        ] {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let flags = |a: Asks<'_>| {
            let host = a.host.map(|v| v.as_bytes().to_vec());
            (host, a.cache_control, a.precondition, a.validator, a.range)
        };
        let small = flags(Asks::of(&h));
        assert_eq!(small, (Some(b"a".to_vec()), true, true, true, true));
        for i in 0..20 {
            h.insert(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        assert_eq!(flags(Asks::of(&h)), small);
        assert_eq!(
            flags(Asks::of(&HeaderMap::new())),
            (None, false, false, false, false)
        );
    }

    #[test]
    fn tags_are_taken_and_the_header_removed() {
        let mut h = HeaderMap::new();
        h.append("cache-tag", HeaderValue::from_static("user:7, users,,"));
        h.append("cache-tag", HeaderValue::from_static("users, x"));
        assert_eq!(take_tags(&mut h), vec!["user:7", "users", "x"]);
        assert!(!h.contains_key("cache-tag"));
        let long = "a".repeat(MAX_TAG_LEN + 1);
        let many = (0..100)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        h.append(
            "cache-tag",
            HeaderValue::from_str(&format!("{long},{many}")).unwrap(),
        );
        let tags = take_tags(&mut h);
        assert_eq!(tags.len(), MAX_TAGS);
        assert!(!tags.contains(&long));
    }
}
