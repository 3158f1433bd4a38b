//! A client's request made into the request the cache keys and the origin
//! receives, before the cache layer sees it: nothing a client may forge
//! decides what is stored for another.
//!
//! - The hop-by-hop fields, and those `Connection` names, are removed
//!   (RFC 9110 §7.6.1): `Accept-Language: en` with `Connection:
//!   Accept-Language` reaches the origin without the language, so it must
//!   not be keyed with it.
//! - The target becomes the upstream's absolute URI and `Host` the
//!   upstream's authority: the cache keys by the origin actually fetched,
//!   never by the `Host` the client claims (proxies with different upstreams
//!   on one Redis keep apart).
//! - Every forwarding field a client sent is dropped and the proxy sets its
//!   own (`X-Forwarded-For/-Host/-Proto`, `Forwarded`, RFC 7239): an origin
//!   that reflects them without `Vary` cannot be made to store a page built
//!   for `evil.example`. The proxy is the first hop it trusts: whatever a
//!   proxy in front of it claimed is not passed on.
//! - `Via` is appended to (RFC 9110 §7.6.3), on the request here and on
//!   every response by [`via`].

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderName, HeaderValue, HOST, VIA};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version};

use crate::forward::drop_hop_by_hop;

/// The fields by which a client, or a proxy before this one, tells the
/// origin where the request came from or what to do instead: never passed
/// on (those in [`Inbound::prepare`] are set anew).
const FORWARDING: [&str; 18] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-real-ip",
    "x-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The `Via` entry of this proxy on responses (the origin answers HTTP/1.1).
const RESPONSE_VIA: &str = "1.1 http_proxy";

/// How requests are made into upstream requests.
#[derive(Clone, Debug)]
pub struct Inbound {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    /// `X-Forwarded-Host`'s value.
    public_host: HeaderValue,
    /// `Forwarded`'s `host=` parameter (quoted when it must be).
    forwarded_host: String,
}

impl Inbound {
    /// Requests for the origin at `scheme://authority`, on behalf of the
    /// site called `public_host`.
    pub fn new(scheme: Scheme, authority: Authority, public_host: &Authority) -> Inbound {
        Inbound {
            scheme,
            host: authority_value(&authority),
            authority,
            public_host: authority_value(public_host),
            forwarded_host: forwarded_value(public_host.as_str()),
        }
    }

    /// Makes the request from `peer` into the upstream request; `Err` when
    /// its target cannot name the upstream (answered 400).
    pub fn prepare<B>(&self, request: &mut Request<B>, peer: SocketAddr) -> Result<(), String> {
        let path = match request.uri().path_and_query() {
            Some(p) if p.as_str().starts_with('/') => p.clone(),
            Some(p) => return Err(format!("the target {p} is not a path")),
            None => http::uri::PathAndQuery::from_static("/"),
        };
        *request.uri_mut() = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| e.to_string())?;
        let received = match request.version() {
            Version::HTTP_10 => "1.0 http_proxy",
            _ => "1.1 http_proxy",
        };
        let headers = request.headers_mut();
        drop_hop_by_hop(headers);
        for name in FORWARDING {
            headers.remove(name);
        }
        // The origin sees itself named, as it would without the proxy.
        headers.insert(HOST, self.host.clone());
        let ip = peer.ip().to_canonical();
        let forwarded = format!(
            "for={};host={};proto=http",
            forwarded_for(ip),
            self.forwarded_host
        );
        let set = [
            ("x-forwarded-for", ip.to_string()),
            ("x-forwarded-proto", "http".to_string()),
            ("forwarded", forwarded),
        ];
        for (name, value) in set {
            // An address, `http` and quoted tokens: always valid values.
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        headers.insert(
            HeaderName::from_static("x-forwarded-host"),
            self.public_host.clone(),
        );
        headers.append(VIA, HeaderValue::from_static(received));
        *request.version_mut() = Version::HTTP_11;
        Ok(())
    }
}

/// Appends this proxy to the response's `Via` (after the origin's own).
pub fn via<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .append(VIA, HeaderValue::from_static(RESPONSE_VIA));
}

/// An authority as a header value (its characters are all allowed in one).
fn authority_value(authority: &Authority) -> HeaderValue {
    HeaderValue::from_str(authority.as_str())
        .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// `Forwarded`'s `for=` value: an IPv4 address is a token, an IPv6 one is
/// bracketed and quoted (RFC 7239 §6).
fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// A `Forwarded` parameter value: a token as is, else quoted (an authority
/// with a port has a `:`; an authority holds no `"` nor `\`).
fn forwarded_value(text: &str) -> String {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !text.is_empty() && text.chars().all(tchar) {
        text.to_string()
    } else {
        format!("\"{text}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(public: &str) -> Inbound {
        Inbound::new(
            Scheme::HTTP,
            Authority::from_static("127.0.0.1:9000"),
            &public.parse().unwrap(),
        )
    }

    fn prepared(request: Request<()>, peer: &str) -> Request<()> {
        let mut request = request;
        inbound("www.test")
            .prepare(&mut request, peer.parse().unwrap())
            .unwrap();
        request
    }

    #[test]
    fn the_target_and_host_name_the_upstream_whatever_the_client_says() {
        let r = prepared(
            Request::get("http://evil.test/a?b")
                .header("host", "evil.test")
                .body(())
                .unwrap(),
            "10.0.0.1:5",
        );
        assert_eq!(r.uri(), "http://127.0.0.1:9000/a?b");
        assert_eq!(r.headers()["host"], "127.0.0.1:9000");
        let r = prepared(Request::get("/x").body(()).unwrap(), "10.0.0.1:5");
        assert_eq!(r.uri(), "http://127.0.0.1:9000/x");
    }

    #[test]
    fn forwarding_fields_are_the_proxys_own() {
        let r = prepared(
            Request::get("/")
                .header("x-forwarded-for", "6.6.6.6")
                .header("x-forwarded-host", "evil")
                .header("forwarded", "for=6.6.6.6")
                .header("x-original-url", "/admin")
                .header("x-rewrite-url", "/admin")
                .header("x-http-method-override", "DELETE")
                .header("via", "1.0 before")
                .body(())
                .unwrap(),
            "[::ffff:10.0.0.1]:5",
        );
        let h = r.headers();
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-host"], "www.test");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["forwarded"], "for=10.0.0.1;host=www.test;proto=http");
        for gone in ["x-original-url", "x-rewrite-url", "x-http-method-override"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        let via: Vec<_> = h.get_all("via").iter().collect();
        assert_eq!(via, ["1.0 before", "1.1 http_proxy"]);
    }

    #[test]
    fn connection_named_fields_go_before_the_cache_sees_them() {
        let r = prepared(
            Request::get("/")
                .header("accept-language", "en")
                .header("connection", "Accept-Language")
                .header("keep-alive", "timeout=5")
                .header("trailer", "x")
                .body(())
                .unwrap(),
            "10.0.0.1:5",
        );
        for gone in ["accept-language", "connection", "keep-alive", "trailer"] {
            assert!(!r.headers().contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn forwarded_quotes_what_is_not_a_token() {
        assert_eq!(forwarded_value("www.test"), "www.test");
        assert_eq!(forwarded_value("127.0.0.1:8080"), "\"127.0.0.1:8080\"");
        assert_eq!(forwarded_for("::1".parse().unwrap()), "\"[::1]\"");
        let mut r = Request::get("/").body(()).unwrap();
        inbound("127.0.0.1:8080")
            .prepare(&mut r, "[::1]:5".parse().unwrap())
            .unwrap();
        assert_eq!(
            r.headers()["forwarded"],
            "for=\"[::1]\";host=\"127.0.0.1:8080\";proto=http"
        );
        assert_eq!(r.headers()["x-forwarded-for"], "::1");
    }

    #[test]
    fn an_asterisk_target_is_refused() {
        let mut r = Request::options("*").body(()).unwrap();
        assert!(inbound("w")
            .prepare(&mut r, "1.2.3.4:5".parse().unwrap())
            .is_err());
    }
}
