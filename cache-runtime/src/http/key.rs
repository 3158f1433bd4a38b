//! Keys and URI tags. Each part is length-prefixed, so no choice of method,
//! authority, path or query renders another request's key (`/a` + `?b` and
//! `/a?` + `b` stay apart); the memory tier compares whole keys, and a stored
//! response also records its identity, checked on every hit, so even a remote
//! key shortened to a hash cannot serve another URI's response.

use std::borrow::Cow;

use http::header::HOST;
use http::request::Parts;
use http::Uri;

/// Appends `part` as `{len}:{part}` (by hand: this runs on every request,
/// and the formatting machinery costs more than the rest of the key).
fn push(out: &mut String, part: &str) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = part.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
    out.push(':');
    out.push_str(part);
}

/// The request's authority: the URI's, else its `Host` header, lower-cased
/// (borrowed when it already is: no allocation on the usual request).
pub(crate) fn authority(parts: &Parts) -> Cow<'_, str> {
    let text = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map_or("", str::trim),
    };
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// The default identity of a request: authority, path and query (the method
/// is always GET: HEAD is answered from GET's response).
pub(crate) fn identity(authority: &str, uri: &Uri) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = String::with_capacity(authority.len() + path.len() + 16);
    out.push_str("GET ");
    push(&mut out, authority);
    push(&mut out, path);
    out
}

/// The identity of a request keyed by the user's key function.
pub(crate) fn custom_identity(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 10);
    out.push_str("custom ");
    push(&mut out, key);
    out
}

/// The cache key of the primary entry of an identity.
pub(crate) fn primary(identity: &str) -> String {
    let mut out = String::with_capacity(identity.len() + 5);
    out.push_str("http:");
    out.push_str(identity);
    out
}

/// The cache key of one variant (§4.1) of an identity.
pub(crate) fn variant(identity: &str, secondary: &str) -> String {
    let mut out = primary(identity);
    out.push_str("|vary ");
    out.push_str(secondary);
    out
}

/// The in-process single-flight key of an identity.
pub(crate) fn flight(identity: &str) -> String {
    format!("http-flight:{identity}")
}

/// The tag every stored response of a URI carries, so that invalidating the
/// URI (§4.4) drops all its variants at once. Hashed to keep tag names short
/// (a collision costs an extra invalidation, never a wrong response).
pub(crate) fn uri_tag(authority: &str, path_and_query: &str) -> String {
    let mut text = String::new();
    push(&mut text, authority);
    push(&mut text, path_and_query);
    format!(
        "http-uri:{:032x}",
        xxhash_rust::xxh3::xxh3_128(text.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cannot_be_shifted_to_collide() {
        let a = identity("h", &"/a?b".parse().unwrap());
        let b = identity("h", &"/a%3Fb".parse().unwrap());
        assert_ne!(a, b);
        assert_ne!(
            identity("h:1", &"/x".parse().unwrap()),
            identity(
                "h",
                &":1/x".parse().unwrap_or_else(|_| "/x".parse().unwrap())
            )
        );
        assert_ne!(
            custom_identity("GET 1:h1:/"),
            identity("h", &"/".parse().unwrap())
        );
        assert_ne!(uri_tag("ab", "/c"), uri_tag("a", "b/c"));
        assert_ne!(variant("x", "1:a"), primary("x"));
        assert_eq!(identity("h", &"/a".parse().unwrap()), "GET 1:h2:/a");
        let long = format!("/{}", "p".repeat(1233));
        assert_eq!(
            identity("", &long.parse().unwrap()),
            format!("GET 0:1234:{long}")
        );
        assert_eq!(primary("GET 1:h1:/"), "http:GET 1:h1:/");
    }

    #[test]
    fn authority_comes_from_the_uri_or_the_host_header() {
        let req = http::Request::get("/p")
            .header("host", "Example.COM")
            .body(())
            .unwrap();
        assert_eq!(authority(&req.into_parts().0), "example.com");
        let req = http::Request::get("http://a.test:8/p").body(()).unwrap();
        assert_eq!(authority(&req.into_parts().0), "a.test:8");
    }
}
