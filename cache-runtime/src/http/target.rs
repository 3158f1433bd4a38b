//! A request's target in normal form (RFC 3986 §6.2.2 and §6.2.3, as RFC
//! 9110 §4.2.3 applies them to `http` and `https`), so that equivalent
//! targets are one entry and an invalidation reaches every spelling:
//!
//! - case: the host is lower-cased, the hex digits of a percent-escape
//!   upper-cased (`%2f` → `%2F`);
//! - percent-encoding: an escaped unreserved character (`ALPHA DIGIT - . _
//!   ~`) is decoded (`%78` → `x`); a reserved one never is (`%2F` stays);
//!   a malformed escape (`%zz`, `%4`) is left as it is;
//! - path: dot segments removed (§5.2.4: `/a/./b`, `/a/c/../b` → `/a/b`),
//!   after the decoding (`/%2e%2e/` is a dot segment);
//! - scheme-based: an empty path is `/`, an empty query (`/x?`) is none, an
//!   empty port (`host:`) is none, and the scheme's default port (`:80` for
//!   `http`, `:443` for `https`) is dropped when the URI names its scheme
//!   (absolute form, HTTP/2); an origin-form HTTP/1.1 request does not say
//!   which scheme it came over, so its port is kept;
//! - a host's trailing dot (`example.com.`, a fully qualified name for the
//!   same DNS host) is dropped.
//!
//! The layer rewrites the request itself to this form before anything else
//! reads it, so the key, the URI's tag, the invalidation of an unsafe
//! method, the user's key and tag functions, and the inner service all see
//! one target: what is stored under a key is always the answer to that
//! key's request (were the inner service to see `/a/./b` while the key says
//! `/a/b`, a client could store an answer to the first for everyone asking
//! for the second). `localhost` and `127.0.0.1` stay apart (RFC 3986 does
//! not make them equivalent).
//!
//! The check is one pass over the bytes that allocates nothing; only a
//! target that is not already normal (rare) is copied. Every step is linear
//! in the target's length, whatever it holds.

use std::borrow::Cow;

use http::header::{HeaderValue, HOST};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::Uri;

/// Rewrites `parts`' target (path, query and authority: the URI's, else the
/// `Host` header's) to its normal form; nothing is touched, or allocated,
/// when it already is.
pub(crate) fn normalize(parts: &mut Parts) {
    if is_normal(&parts.uri, parts.headers.get(HOST)) {
        return;
    }
    // Owned: the URI is replaced below (this is the rare, slow path).
    let scheme = parts.uri.scheme_str().map(str::to_owned);
    let scheme = scheme.as_deref();
    let pq = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let new_pq = match path_and_query(pq) {
        Cow::Owned(s) => PathAndQuery::try_from(s).ok(),
        Cow::Borrowed(_) => None,
    };
    let new_authority = parts
        .uri
        .authority()
        .and_then(|a| match authority(a.as_str(), scheme) {
            Cow::Owned(s) => Authority::try_from(s).ok(),
            Cow::Borrowed(_) => None,
        });
    if new_pq.is_some() || new_authority.is_some() {
        let mut uri = parts.uri.clone().into_parts();
        if new_pq.is_some() {
            uri.path_and_query = new_pq;
        }
        if new_authority.is_some() {
            uri.authority = new_authority;
        }
        // Parts of a valid URI with valid replacements make a valid URI;
        // were it refused, the request keeps its target (the key is always
        // made from what the inner service is sent, so it stays consistent).
        if let Ok(uri) = Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
    if parts.uri.authority().is_none() {
        let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok());
        if let Some(Cow::Owned(normal)) = host.map(|h| authority(h.trim(), scheme)) {
            if let Ok(value) = HeaderValue::from_str(&normal) {
                parts.headers.insert(HOST, value);
            }
        }
    }
}

/// Whether the target of a request with `uri` and `host` is in normal form.
pub(crate) fn is_normal(uri: &Uri, host: Option<&HeaderValue>) -> bool {
    normal_authority(uri, host).is_some()
}

/// The authority of a request whose target (path, query, authority) is in
/// normal form, `None` when it is not: the URI's, else the first `Host`'s
/// (empty when there is none or it is not text). One pass over each part's
/// bytes, no allocation: this runs on every GET, the hit path included.
pub(crate) fn normal_authority<'a>(uri: &'a Uri, host: Option<&'a HeaderValue>) -> Option<&'a str> {
    let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    if !is_normal_path_and_query(pq) {
        return None;
    }
    let (text, bytes) = match (uri.authority(), host) {
        (Some(a), _) => (Some(a.as_str()), a.as_str().as_bytes()),
        (None, Some(h)) => (None, h.as_bytes()),
        (None, None) => return Some(""),
    };
    let (normal, ascii) = is_normal_authority_bytes(bytes, uri.scheme_str());
    if !normal {
        return None;
    }
    // A `Host` that is not ASCII (obs-text) is no authority, as ever
    // (`HeaderValue` holds no control bytes: ASCII is `to_str`'s text).
    let host = || {
        // SAFETY: `ascii` says every byte is below 0x80 (the one pass of
        // `is_normal_authority_bytes` over these very bytes), and ASCII is
        // valid UTF-8. (`from_utf8` would check again, on every GET.)
        ascii.then(|| unsafe { std::str::from_utf8_unchecked(bytes) })
    };
    Some(text.unwrap_or_else(|| host().unwrap_or("")))
}

/// What a byte of an authority may change, for [`is_normal_authority_bytes`].
const UPPER: u8 = 1;
const SPECIAL: u8 = 2; // `@` (userinfo) or `[` (an IP literal)
const COLON: u8 = 4;
const NOT_ASCII: u8 = 8;
static CLASS: [u8; 256] = {
    let mut class = [0; 256];
    let mut c = 0;
    while c < 256 {
        class[c] = match c as u8 {
            b'A'..=b'Z' => UPPER,
            b'@' | b'[' => SPECIAL,
            b':' => COLON,
            0x80..=0xff => NOT_ASCII,
            _ => 0,
        };
        c += 1;
    }
    class
};

/// Whether an authority's bytes are in normal form, and whether they are
/// ASCII: one branch-free pass over the bytes for the common `host[:port]`
/// (with `@` or an IP literal, the general check). It may answer `false`
/// for a normal authority (`...`), never `true` for one that is not: the
/// rewrite then finds nothing to change.
fn is_normal_authority_bytes(b: &[u8], scheme: Option<&str>) -> (bool, bool) {
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return (true, true);
    };
    let flags = b.iter().fold(0, |flags, &c| flags | CLASS[usize::from(c)]);
    let ascii = flags & NOT_ASCII == 0;
    // Spaces are trimmed; a trailing dot or an empty port dropped.
    if flags & UPPER != 0
        || first.is_ascii_whitespace()
        || last.is_ascii_whitespace()
        || matches!(last, b'.' | b':')
    {
        return (false, ascii);
    }
    if flags & SPECIAL != 0 {
        let general = std::str::from_utf8(b).is_ok_and(|t| is_normal_authority(t, scheme));
        return (general, ascii);
    }
    if flags & COLON == 0 {
        return (true, ascii);
    }
    let colon = b.iter().rposition(|&c| c == b':').unwrap_or(0);
    // `host.:port` is a trailing dot; the scheme's default port is dropped.
    let dot = colon > 0 && b[colon - 1] == b'.';
    let default = default_port(scheme).is_some_and(|p| &b[colon + 1..] == p.as_bytes());
    (!dot && !default, ascii)
}

/// The authority a request's key is made of, as it is: the URI's, else
/// the first `Host`'s (empty when there is none or it is not text).
pub(crate) fn authority_text<'a>(uri: &'a Uri, host: Option<&'a HeaderValue>) -> &'a str {
    match uri.authority() {
        Some(a) => a.as_str(),
        None => host.and_then(|h| h.to_str().ok()).map_or("", str::trim),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether an escape of `value` after `before` is decoded: an unreserved
/// character is, unless it is a hex digit after a bare `%` or `%` and one
/// hex digit (malformed escapes, left as they are), which it would turn
/// into a new escape (`%4%41` would become `%4A`, then `J`).
fn decodes(value: u8, before: &[u8]) -> bool {
    let makes_escape = value.is_ascii_hexdigit()
        && (before.ends_with(b"%") || matches!(before, [.., b'%', h] if h.is_ascii_hexdigit()));
    unreserved(value) && !makes_escape
}

/// The escape at `b[i..]` (`b[i]` is `%`): its value and whether it is
/// written as normal (upper-case hex), or `None` when malformed.
fn escape(b: &[u8], i: usize) -> Option<(u8, bool)> {
    let (h, l) = (*b.get(i + 1)?, *b.get(i + 2)?);
    let value = hex(h)? << 4 | hex(l)?;
    Some((value, !h.is_ascii_lowercase() && !l.is_ascii_lowercase()))
}

/// Whether a path and query is in normal form: one pass, no allocation.
pub(crate) fn is_normal_path_and_query(pq: &str) -> bool {
    let b = pq.as_bytes();
    match b.first() {
        // Empty, or a query without a path: the path is `/`.
        None | Some(b'?') => return false,
        Some(b'/') => {}
        // `*` (OPTIONS) and the like: no path to normalize.
        Some(_) => return true,
    }
    // The usual target has no escape, dot or query: nothing to look at.
    if !b.iter().any(|&c| matches!(c, b'%' | b'.' | b'?')) {
        return true;
    }
    // Where the current path segment starts (`None` once in the query).
    let mut segment = Some(1);
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        match (c, segment) {
            (b'/' | b'?', Some(start)) => {
                if is_dot_segment(&b[start..i]) {
                    return false;
                }
                if c == b'?' {
                    if i + 1 == b.len() {
                        return false; // An empty query.
                    }
                    segment = None;
                } else {
                    segment = Some(i + 1);
                }
            }
            (b'%', _) => {
                if let Some((value, upper)) = escape(b, i) {
                    if !upper || decodes(value, &b[..i]) {
                        return false;
                    }
                    i += 3; // Hex digits: neither `/` nor `?`.
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    segment.is_none_or(|start| !is_dot_segment(&b[start..]))
}

fn is_dot_segment(segment: &[u8]) -> bool {
    segment == b"." || segment == b".."
}

/// The normal form of a path and query (borrowed when it already is).
pub(crate) fn path_and_query(pq: &str) -> Cow<'_, str> {
    if is_normal_path_and_query(pq) {
        return Cow::Borrowed(pq);
    }
    let decoded = percent_normal(pq);
    // Decoding never makes a `?` (reserved), so the query starts where it did.
    let (path, query) = decoded.split_at(decoded.find('?').unwrap_or(decoded.len()));
    let mut out = String::with_capacity(decoded.len() + 1);
    if path.starts_with('/') {
        remove_dot_segments(path, &mut out);
    } else if path.is_empty() {
        out.push('/');
    } else {
        out.push_str(path);
    }
    if query.len() > 1 {
        out.push_str(query);
    }
    Cow::Owned(out)
}

/// `pq` with escaped unreserved characters decoded and the hex digits of
/// the other escapes upper-cased.
fn percent_normal(pq: &str) -> String {
    let b = pq.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = if b[i] == b'%' { escape(b, i) } else { None };
        match escaped {
            Some((value, _)) => {
                if decodes(value, &out) {
                    out.push(value);
                } else {
                    out.push(b'%');
                    out.extend_from_slice(b[i + 1..i + 3].to_ascii_uppercase().as_slice());
                }
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    // Only ASCII triples were replaced, by ASCII, in valid UTF-8: still
    // valid; were it not, the target is kept as it came.
    String::from_utf8(out).unwrap_or_else(|_| pq.to_string())
}

/// RFC 3986 §5.2.4 on an absolute path (starting with `/`), segment by
/// segment: `..` cuts the output back to its last `/` (each byte is cut at
/// most once, so the whole is linear).
fn remove_dot_segments(path: &str, out: &mut String) {
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => {}
            ".." => out.truncate(out.rfind('/').unwrap_or(0)),
            _ => {
                out.push('/');
                out.push_str(segment);
                continue;
            }
        }
        if last {
            out.push('/'); // `/a/.` and `/a/b/..` name the directory `/a/`.
        }
    }
    if out.is_empty() {
        out.push('/');
    }
}

/// `text` (an authority) as userinfo, host and port (`None`: no `:`).
fn split_authority(text: &str) -> (&str, &str, Option<&str>) {
    // `rposition`, not `rfind`: on a few bytes, memrchr's setup costs more
    // than the scan (this runs on every GET).
    let last = |s: &str, c: u8| s.bytes().rposition(|b| b == c);
    let at = last(text, b'@').map_or(0, |i| i + 1);
    let (userinfo, hostport) = text.split_at(at);
    if hostport.starts_with('[') {
        // An IP literal: its port follows the `]`.
        return match hostport.find(']') {
            Some(end) => {
                let (host, rest) = hostport.split_at(end + 1);
                (userinfo, host, rest.strip_prefix(':'))
            }
            None => (userinfo, hostport, None),
        };
    }
    match last(hostport, b':') {
        Some(i) => (userinfo, &hostport[..i], Some(&hostport[i + 1..])),
        None => (userinfo, hostport, None),
    }
}

/// The scheme's default port, when the scheme is known.
fn default_port(scheme: Option<&str>) -> Option<&'static str> {
    match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") => Some("80"),
        Some(s) if s.eq_ignore_ascii_case("https") => Some("443"),
        _ => None,
    }
}

/// What normalizing an authority changes: (lower-case, trailing dots, port).
fn authority_changes(text: &str, scheme: Option<&str>) -> (bool, bool, bool) {
    let (_, host, port) = split_authority(text);
    let upper = text.bytes().any(|b| b.is_ascii_uppercase());
    // Not an IP literal, nor only dots (nothing would be left).
    let dots = host.ends_with('.') && !host.starts_with('[') && host.bytes().any(|b| b != b'.');
    let port = port.is_some_and(|p| p.is_empty() || Some(p) == default_port(scheme));
    // A `]` without `[`, or text after an IP literal's `]`: malformed, only lower-cased.
    (upper, dots, port)
}

/// Whether an authority is in normal form: one pass, no allocation.
pub(crate) fn is_normal_authority(text: &str, scheme: Option<&str>) -> bool {
    authority_changes(text, scheme) == (false, false, false)
}

/// The normal form of an authority (borrowed when it already is).
pub(crate) fn authority<'a>(text: &'a str, scheme: Option<&str>) -> Cow<'a, str> {
    let (upper, dots, drop_port) = authority_changes(text, scheme);
    if !(upper || dots || drop_port) {
        return Cow::Borrowed(text);
    }
    let (userinfo, host, port) = split_authority(text);
    let host = if dots {
        host.trim_end_matches('.')
    } else {
        host
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(userinfo);
    out.push_str(host);
    if let (Some(port), false) = (port, drop_port) {
        out.push(':');
        out.push_str(port);
    }
    out.make_ascii_lowercase();
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(pq: &str) -> String {
        path_and_query(pq).into_owned()
    }

    #[test]
    fn equivalent_targets_have_one_form() {
        for spelling in [
            "/state/x",
            "/state/%78",
            "/state/./x",
            "/state/y/../x",
            "/state/x?",
            "/state/%2e/x",
            "/state/%2E%2E/state/x",
            "/./state/x",
            "/../state/x",
            "/state/y/z/../../x",
        ] {
            assert_eq!(n(spelling), "/state/x", "{spelling}");
        }
        assert_eq!(n("/a/b/c/./../../g"), "/a/g"); // RFC 3986 §5.4.2
        assert_eq!(n("/a/."), "/a/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/.."), "/");
        assert_eq!(n("/a//../b"), "/a/b");
        assert_eq!(n("/a?q=%7e%41"), "/a?q=~A");
        assert_eq!(n("/a?./.."), "/a?./..", "the query has no segments");
        assert_eq!(n(""), "/");
        assert_eq!(n("?q"), "/?q");
        assert_eq!(n("*"), "*");
    }

    #[test]
    fn reserved_and_malformed_escapes_are_not_decoded() {
        assert_eq!(n("/a%2Fb"), "/a%2Fb");
        assert_eq!(n("/a%2fb"), "/a%2Fb");
        assert_eq!(n("/a%3f?b%26c"), "/a%3F?b%26c");
        assert_eq!(n("/%25"), "/%25");
        assert_eq!(n("/%2541"), "/%2541", "decoded once, never twice");
        assert_eq!(n("/%zz/%4/%"), "/%zz/%4/%");
        // A decoded hex digit never completes a malformed escape.
        assert_eq!(n("/%4%41%42"), "/%4%41B");
        assert_eq!(n("/%%34%31"), "/%%341");
        assert_eq!(n("/%4%2e"), "/%4.");
        assert_eq!(n("/%c3%a9"), "/%C3%A9");
        assert_eq!(n("/é"), "/é");
    }

    #[test]
    fn normal_targets_are_borrowed() {
        for pq in [
            "/",
            "/a/b?c=d",
            "/a%2Fb",
            "/a%20b",
            "/%zz",
            "/a/.b/..c/...",
            "/a?",
        ] {
            let normal = pq != "/a?";
            assert_eq!(
                matches!(path_and_query(pq), Cow::Borrowed(_)),
                normal,
                "{pq}"
            );
        }
        assert!(matches!(authority("a.test:8080", None), Cow::Borrowed(_)));
        assert!(matches!(authority("[::1]:80", None), Cow::Borrowed(_)));
    }

    #[test]
    fn authorities_lose_case_trailing_dots_and_default_ports() {
        assert_eq!(authority("Example.COM", None), "example.com");
        assert_eq!(authority("example.com.", None), "example.com");
        assert_eq!(authority("127.0.0.1.:8080", None), "127.0.0.1:8080");
        assert_eq!(authority("example.com:", None), "example.com");
        assert_eq!(authority("a.test:80", Some("http")), "a.test");
        assert_eq!(authority("a.test:443", Some("https")), "a.test");
        assert_eq!(authority("a.test:443", Some("http")), "a.test:443");
        // Without a scheme the default port is not known: kept.
        assert_eq!(authority("a.test:80", None), "a.test:80");
        assert_eq!(authority("[::1]:80", Some("http")), "[::1]");
        assert_eq!(authority("[::1]", Some("http")), "[::1]");
        assert_eq!(authority(".", None), ".");
        assert_eq!(authority("u@H.test.:80", Some("http")), "u@h.test");
        // Not equivalent under RFC 3986: never merged.
        assert_ne!(
            authority("localhost:1", None),
            authority("127.0.0.1:1", None)
        );
    }

    #[test]
    fn a_request_is_rewritten_only_when_not_normal() {
        let mut parts = http::Request::get("/s/./%78?")
            .header("host", "Shop.Test.:8080")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(!is_normal(&parts.uri, parts.headers.get(HOST)));
        normalize(&mut parts);
        assert_eq!(parts.uri, "/s/x");
        assert_eq!(parts.headers[HOST], "shop.test:8080");
        assert!(is_normal(&parts.uri, parts.headers.get(HOST)));
        let mut parts = http::Request::get("HTTP://A.test:80/%7Ex")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        normalize(&mut parts);
        assert_eq!(parts.uri.to_string(), "http://a.test/~x");
    }

    /// A seeded generator of targets from the characters that matter.
    fn random_target(rng: &mut fastrand::Rng) -> String {
        const PIECES: [&str; 22] = [
            "/", "/", ".", "..", "%", "%2e", "%2E", "%2f", "%2F", "%7e", "%41", "%4", "%zz", "?",
            "a", "B", "~", "-", "%25", "%c3%a9", "é", "//",
        ];
        let len = rng.usize(0..24);
        // Origin-form targets start with `/`; an empty one, or a bare
        // query, gains it.
        let mut s = String::from(["/", "/", "?", ""][rng.usize(..4)]);
        for _ in 0..len {
            s.push_str(PIECES[rng.usize(..PIECES.len())]);
        }
        s
    }

    #[test]
    fn normalization_is_idempotent_and_its_output_is_normal() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_0016);
        for _ in 0..20_000 {
            let pq = random_target(&mut rng);
            let once = n(&pq);
            assert!(is_normal_path_and_query(&once), "{pq:?} -> {once:?}");
            assert_eq!(n(&once), once, "{pq:?}");
            assert!(matches!(path_and_query(&once), Cow::Borrowed(_)));
            let origin_form = pq.is_empty() || pq.starts_with(['/', '?']);
            assert!(!origin_form || once.starts_with('/'), "{pq:?} -> {once:?}");
            let path = once.split('?').next().unwrap_or("");
            assert!(
                !origin_form || !path.split('/').any(|s| s == "." || s == ".."),
                "{pq:?} -> {once:?}"
            );
            // What http::Uri accepted is still accepted.
            if PathAndQuery::try_from(pq.as_str()).is_ok() {
                assert!(PathAndQuery::try_from(once.as_str()).is_ok(), "{once:?}");
            }
            let host = format!(
                "{}{}",
                ["A.b", "a.b.", "[::1]", "x", "u@H.", "...", ""][rng.usize(..7)],
                ["", ":", ":80", ":443", ":8080"][rng.usize(..5)]
            );
            for scheme in [None, Some("http"), Some("https")] {
                // The hit path's byte check agrees with the general one.
                let (fast, _) = is_normal_authority_bytes(host.as_bytes(), scheme);
                assert!(!fast || is_normal_authority(&host, scheme), "{host:?}");
                let a = authority(&host, scheme).into_owned();
                assert!(is_normal_authority(&a, scheme), "{host:?} -> {a:?}");
                assert_eq!(authority(&a, scheme), a);
            }
        }
    }

    #[test]
    fn hostile_targets_are_linear() {
        // 200k dot segments, escapes and a long path: each well under a
        // second even in a debug build (quadratic would take minutes).
        let many_dots = "/a/..".repeat(200_000);
        let deep = format!("{}{}", "/a".repeat(200_000), "/..".repeat(200_000));
        let escapes = "%2e%2E%zz%4".repeat(100_000);
        let start = std::time::Instant::now();
        assert_eq!(n(&many_dots), "/");
        assert_eq!(n(&deep), "/");
        assert!(n(&format!("/{escapes}")).len() > 100_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
