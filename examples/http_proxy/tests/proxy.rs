//! The proxy binary between a real client and a real origin (both hyper, on
//! free loopback ports): caching, invalidation, forwarding, errors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

mod support;
use support::{free_port, proxy, TestClient};

/// What the origin saw: requests counted, the last one's headers and body.
#[derive(Default)]
struct Seen {
    count: AtomicUsize,
    last: Mutex<Option<(http::request::Parts, Bytes)>>,
}

/// An origin answering `GET /cached` with `max-age=60` and echoing bodies.
async fn origin() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let text = format!("{} {} #{n} {}", parts.method, parts.uri, body.len());
                        *s.last.lock().unwrap() = Some((parts, body));
                        let r = Response::builder()
                            .header("cache-control", "max-age=60")
                            .header("connection", "x-hop")
                            .header("x-hop", "1")
                            .body(Full::new(Bytes::from(text)))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn send(c: &TestClient, req: Request<Full<Bytes>>) -> (Response<()>, String) {
    let r = c.request(req).await.unwrap();
    let (head, body) = r.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(head, ()),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn caches_invalidates_forwards_and_reports_a_dead_origin() {
    let (up, seen) = origin().await;
    let p = proxy(up).await;
    let c: TestClient = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| {
        Request::get(format!("http://{}{path}", p.1))
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .body(Full::default())
            .unwrap()
    };

    let (r1, b1) = send(&c, get("/cached?q=1")).await;
    assert_eq!(b1, "GET /cached?q=1 #1 0");
    assert!(r1.headers().get("x-hop").is_none(), "hop-by-hop field kept");
    let (r2, b2) = send(&c, get("/cached?q=1")).await;
    assert_eq!(b2, b1, "served from the cache");
    assert!(r2.headers()["cache-status"]
        .to_str()
        .unwrap()
        .contains("hit"));
    assert_eq!(seen.count.load(Ordering::SeqCst), 1);
    {
        let last = seen.last.lock().unwrap();
        let (parts, _) = last.as_ref().unwrap();
        assert_eq!(parts.headers["host"], up.to_string());
        assert!(parts.headers.get("x-secret").is_none());
        assert_eq!(parts.headers["via"], "1.1 http_proxy");
    }

    // A POST streams its body upstream and invalidates the URI.
    let body = Bytes::from(vec![b'x'; 100_000]);
    let post = Request::post(format!("http://{}/cached?q=1", p.1))
        .body(Full::new(body))
        .unwrap();
    let (_, b3) = send(&c, post).await;
    assert_eq!(b3, "POST /cached?q=1 #2 100000");
    let (_, b4) = send(&c, get("/cached?q=1")).await;
    assert_eq!(b4, "GET /cached?q=1 #3 0", "the POST invalidated it");

    // Another origin that is not there: 502.
    let dead: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let p2 = proxy(dead).await;
    let (r5, _) = send(
        &c,
        Request::get(format!("http://{}/x", p2.1))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r5.status(), 502);
}
