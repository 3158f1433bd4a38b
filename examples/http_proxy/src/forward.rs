//! The origin side: a request made ready by [`crate::inbound`] (absolute
//! URI naming the origin, hop-by-hop fields dropped, `Host`, forwarding
//! fields and `Via` set) sent upstream; the origin's response with its own
//! hop-by-hop fields dropped (RFC 9110 §7.6.1) before the cache stores it or
//! a client sees it. Bodies stream both ways.

use http::header::{HeaderName, CONNECTION};
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error};
use hyper_util::rt::TokioExecutor;

/// The fields that concern one connection only (RFC 9110 §7.6.1), besides
/// those a `Connection` field names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The pooled HTTP/1.1 client that reaches the origin.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
}

impl Upstream {
    /// A client for the origin (requests name it in their URI).
    pub fn new() -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Upstream { client }
    }

    /// Sends `request` (made by [`crate::inbound::Inbound::prepare`]) to the
    /// origin; its response (body streaming) or the client's error (the
    /// cache layer may then serve a stale response).
    pub async fn forward(&self, request: Request<Incoming>) -> Result<Response<Incoming>, Error> {
        let response = self.client.request(request).await?;
        let (mut head, body) = response.into_parts();
        drop_hop_by_hop(&mut head.headers);
        Ok(Response::from_parts(head, body))
    }
}

/// Removes the hop-by-hop fields and those `Connection` names (its items
/// read as bytes: a name is a token, and a value that is not text still
/// names the tokens it holds).
pub fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|item| HeaderName::from_bytes(item.trim_ascii()).ok())
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
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("trailer", HeaderValue::from_static("x-sum"));
        h.insert("cache-control", HeaderValue::from_static("max-age=1"));
        drop_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("cache-control"));
    }
}
