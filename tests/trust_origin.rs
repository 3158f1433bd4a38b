//! The origin of the sharing tests, through the layer (http_trust_share.rs)
//! and through the proxy (http_trust_proxy.rs): each includes this file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response};
use http_body_util::BodyExt;

/// What the origin was asked: full answers (200) and revalidations (304).
#[derive(Clone, Default)]
pub struct Origin {
    pub full: Arc<AtomicUsize>,
    pub revalidated: Arc<AtomicUsize>,
}

/// The origin: the request's `x-reply` fields are the 200's fields; with
/// `If-None-Match: "v1"` it answers 304 with the `x-reply-304` fields, where
/// `{user}` becomes the request's `x-user` (as a login sets its session
/// cookie). The body names the call, the `x-token` bytes (hex) and the
/// request's own body.
pub async fn reply(State(origin): State<Origin>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let user = headers
        .get("x-user")
        .map_or("", |u| u.to_str().unwrap())
        .to_string();
    let fields = |name: &str| -> Vec<(String, String)> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                let (k, v) = v.to_str().unwrap().split_once(": ").unwrap();
                (k.to_string(), v.replace("{user}", &user))
            })
            .collect()
    };
    if headers.get("if-none-match").is_some_and(|v| v == "\"v1\"") {
        origin.revalidated.fetch_add(1, Ordering::SeqCst);
        let mut r = Response::builder().status(304);
        for (k, v) in fields("x-reply-304") {
            r = r.header(k, v);
        }
        return r.body(Body::empty()).unwrap();
    }
    let n = origin.full.fetch_add(1, Ordering::SeqCst) + 1;
    let token: String = headers
        .get("x-token")
        .map(|t| t.as_bytes().iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default();
    let content = body.collect().await.unwrap().to_bytes();
    let mut r = Response::builder();
    for (k, v) in fields("x-reply") {
        r = r.header(k, v);
    }
    r.body(Body::from(format!(
        "call {n} token [{token}] content [{}]",
        String::from_utf8_lossy(&content)
    )))
    .unwrap()
}
