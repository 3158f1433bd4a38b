//! The origin side: a request forwarded upstream with hop-by-hop fields
//! dropped (RFC 9110 §7.6.1), `Host` set to the origin's and `Via` added
//! (§7.6.3); the origin's response with its own hop-by-hop fields dropped.
//! Bodies stream both ways.

use http::header::{HeaderName, HeaderValue, CONNECTION, HOST, VIA};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error};
use hyper_util::rt::TokioExecutor;

/// The fields that concern one connection only (RFC 9110 §7.6.1), besides
/// those a `Connection` field names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The origin and the pooled HTTP/1.1 client that reaches it.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
}

impl Upstream {
    /// A client for the origin at `scheme://authority`.
    pub fn new(scheme: Scheme, authority: Authority) -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        // An authority is made of characters a header value allows.
        let host = HeaderValue::from_str(authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Upstream {
            client,
            scheme,
            authority,
            host,
        }
    }

    /// Sends `request` to the origin; its response (body streaming) or the
    /// client's error (the cache layer may then serve a stale response).
    pub async fn forward(&self, request: Request<Incoming>) -> Result<Response<Incoming>, Error> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // Parts of valid URIs make a valid URI; were it not, the default
        // ("/", no authority) is refused by the client as an error.
        parts.uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .unwrap_or_default();
        // The origin sees itself named, as it would without the proxy.
        drop_hop_by_hop(&mut parts.headers);
        parts.headers.insert(HOST, self.host.clone());
        parts
            .headers
            .append(VIA, HeaderValue::from_static("1.1 http_proxy"));
        parts.version = http::Version::HTTP_11;
        let response = self
            .client
            .request(Request::from_parts(parts, body))
            .await?;
        let (mut head, body) = response.into_parts();
        drop_hop_by_hop(&mut head.headers);
        Ok(Response::from_parts(head, body))
    }
}

/// Removes the hop-by-hop fields and those `Connection` names.
pub fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .filter_map(|item| HeaderName::from_bytes(item.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("cache-control", HeaderValue::from_static("max-age=1"));
        drop_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("cache-control"));
    }
}
