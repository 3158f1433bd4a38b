//! The `http_hit` path: `CacheLayer` answering a fresh response from memory.
//!
//! As `benches/http_layer.rs` variant (b), without axum: the origin is a
//! `service_fn` returning 1 KiB with `Cache-Control: max-age=60`; each call
//! sends a request through a clone of the service and collects the body.

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use cache_runtime::http::CacheLayer;
use cache_runtime::Cache;
use http::header::CACHE_CONTROL;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

/// The 1 KiB every response carries.
static BODY: [u8; 1024] = [b'x'; 1024];

async fn origin(_: Request<Empty<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .header(CACHE_CONTROL, "max-age=60")
        .body(Full::new(Bytes::from_static(&BODY)))
        .expect("a valid response"))
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("/item")
        .header("host", "bench.test")
        .body(Empty::new())
        .expect("a valid request")
}

/// One request through a clone of `service`; the body's length.
async fn once<S, B>(service: &S) -> usize
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = service
        .clone()
        .oneshot(request())
        .await
        .expect("infallible");
    let body = response.into_body().collect().await.expect("a full body");
    body.to_bytes().len()
}

/// Stores the response with a first request, checks the next is a hit,
/// then makes `calls` requests.
pub fn run(rt: &Runtime, calls: u64) {
    let cache = rt.block_on(async {
        Cache::builder()
            .namespace("http")
            .memory(10_000)
            .metrics(false)
            .build()
            .await
            .expect("a memory cache builds")
    });
    let service = CacheLayer::new(cache).layer(tower::service_fn(origin));
    rt.block_on(async {
        assert_eq!(once(&service).await, BODY.len());
        let hit = service
            .clone()
            .oneshot(request())
            .await
            .expect("infallible");
        let status = hit.headers()["cache-status"].to_str().unwrap_or("");
        assert!(status.contains("hit"), "not a hit: {status}");
    });
    crate::measured(&mut || {
        rt.block_on(async {
            for _ in 0..calls {
                black_box(once(black_box(&service)).await);
            }
        })
    });
}
