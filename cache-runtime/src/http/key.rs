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
    out.push_str(crate::key::decimal(part.len() as u64, &mut [0; 20]));
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

/// What every primary key starts with.
const PRIMARY: &str = "http:";

/// A request's identity with its primary key's prefix before it, in one
/// allocation (a hit needs both, and nothing else).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Keyed(String);

impl Keyed {
    fn with_capacity(identity_len: usize) -> Keyed {
        let mut out = String::with_capacity(PRIMARY.len() + identity_len);
        out.push_str(PRIMARY);
        Keyed(out)
    }

    /// The primary key: [`primary`] of [`identity`](Keyed::identity).
    pub(crate) fn key(&self) -> &str {
        &self.0
    }

    /// The identity: what a stored response records and is checked by.
    pub(crate) fn identity(&self) -> &str {
        &self.0[PRIMARY.len()..]
    }
}

/// The default identity of a request: authority, path and query (the method
/// is always GET: HEAD is answered from GET's response).
pub(crate) fn identity(authority: &str, uri: &Uri) -> Keyed {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Keyed::with_capacity(authority.len() + path.len() + 16);
    out.0.push_str("GET ");
    push(&mut out.0, authority);
    push(&mut out.0, path);
    out
}

/// The identity of a request keyed by the user's key function.
pub(crate) fn custom_identity(key: &str) -> Keyed {
    let mut out = Keyed::with_capacity(key.len() + 10);
    out.0.push_str("custom ");
    push(&mut out.0, key);
    out
}

/// The cache key of the primary entry of an identity.
pub(crate) fn primary(identity: &str) -> String {
    let mut out = String::with_capacity(PRIMARY.len() + identity.len());
    out.push_str(PRIMARY);
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
        let a = identity("h", &"/a".parse().unwrap());
        assert_eq!(a.identity(), "GET 1:h2:/a");
        assert_eq!(a.key(), primary(a.identity()));
        assert_eq!(primary("GET 1:h1:/"), "http:GET 1:h1:/");
        let long = format!("/{}", "p".repeat(1233));
        let l = identity("", &long.parse().unwrap());
        assert_eq!(l.identity(), format!("GET 0:1234:{long}"));
        let c = custom_identity("k");
        assert_eq!((c.identity(), c.key()), ("custom 1:k", "http:custom 1:k"));
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
