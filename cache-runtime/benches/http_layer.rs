//! The HTTP layer's hit against the handler it caches, measured in
//! alternation: one axum handler returning 1 KiB with `Cache-Control:
//! max-age=60`, called through a cloned `Router` with `oneshot` and its body
//! collected, (a) bare, (b) behind our `CacheLayer` answering from memory,
//! (c) behind `axum-response-cache` answering from its own cache.
//!
//! Rounds of every variant in turn, rotating the order (see `hit_ratio.rs`
//! for why: one variant's time drifts on this small shared machine); each
//! variant's median, the medians of the per-round differences and ratios.
//!
//! `CARGO_TARGET_DIR=target/bench cargo bench -p cache-runtime --features http --bench http_layer`
//! (about 20 s; `RATIO_ROUNDS` for more or fewer rounds; `HTTP_LAYER_ONLY=1`
//! runs only variant (b), for a profiler).

mod rounds;

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::CACHE_CONTROL;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use cache_runtime::http::CacheLayer;
use cache_runtime::Cache;
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Calls per variant per round (about 10-20 ms).
const CALLS: u32 = 10_000;

const NAMES: [&str; 3] = [
    "(a) bare handler",
    "(b) cache-runtime CacheLayer hit",
    "(c) axum-response-cache hit",
];
const BARE: usize = 0;
const OURS: usize = 1;
const THEIRS: usize = 2;

/// The 1 KiB every response carries.
static BODY: [u8; 1024] = [b'x'; 1024];

async fn handler() -> impl axum::response::IntoResponse {
    ([(CACHE_CONTROL, "max-age=60")], &BODY[..])
}

fn routes() -> Router {
    Router::new().route("/item", get(handler))
}

fn request() -> Request<Body> {
    Request::get("/item")
        .header("host", "bench.test")
        .body(Body::empty())
        .expect("a valid request")
}

/// One request through `app`; the body's length (checked once in `main`).
async fn once(app: &Router) -> usize {
    let response = app.clone().oneshot(request()).await.expect("infallible");
    let body = response.into_body().collect().await.expect("a full body");
    body.to_bytes().len()
}

fn ns_per_call(rt: &Runtime, app: &Router) -> f64 {
    let took: Duration = rt.block_on(async {
        let start = Instant::now();
        for _ in 0..CALLS {
            black_box(once(black_box(app)).await);
        }
        start.elapsed()
    });
    took.as_nanos() as f64 / f64::from(CALLS)
}

fn main() {
    if !rounds::selected("http_layer") {
        return;
    }
    let wanted = rounds::wanted(30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cache = rt.block_on(async { Cache::memory(10_000) });
    // `with_state` turns the handlers into services once, as `axum::serve`
    // does; without it the Router rebuilds them (and their layers) per call.
    let apps: [Router; 3] = [
        routes().with_state(()),
        routes().layer(CacheLayer::new(cache)).with_state(()),
        routes()
            .layer(axum_response_cache::CacheLayer::with_lifespan(
                Duration::from_secs(60),
            ))
            .with_state(()),
    ];
    // The first call stores; every later one of (b) and (c) is a hit.
    rt.block_on(async {
        for app in &apps {
            assert_eq!(once(app).await, BODY.len());
        }
        let hit = apps[OURS].clone().oneshot(request()).await.expect("ok");
        let status = hit.headers()["cache-status"].to_str().unwrap_or("");
        assert!(status.contains("hit"), "not a hit: {status}");
    });
    // For a profiler (callgrind): only one variant, a few rounds.
    if let Some(only) = std::env::var("HTTP_LAYER_ONLY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let app: &Router = &apps[only];
        let ns: Vec<f64> = (0..wanted).map(|_| ns_per_call(&rt, app)).collect();
        println!("http_layer: {} only: {ns:.1?} ns/request", NAMES[only]);
        return;
    }
    for app in &apps {
        ns_per_call(&rt, app); // warm-up round
    }
    let rounds: Vec<[f64; 3]> = (0..wanted)
        .map(|round| {
            let mut r = [0.0; 3];
            for which in rounds::order(round, apps.len()) {
                r[which] = ns_per_call(&rt, &apps[which]);
            }
            r
        })
        .collect();
    println!("http_layer: {wanted} rounds of {CALLS} requests per variant, 1 thread, 1 KiB body");
    let spread = |f: &dyn Fn(&[f64; 3]) -> f64| rounds::spread(rounds.iter().map(f));
    for (i, name) in NAMES.iter().enumerate() {
        let s = spread(&|r| r[i]);
        println!(
            "http_layer: {name:34} median {:7.1} ns/request (quartiles {:.1}-{:.1})",
            s.median, s.low_quartile, s.high_quartile
        );
    }
    let extra = spread(&|r| r[OURS] - r[BARE]);
    println!(
        "http_layer: (b) - (a): median {:.1} ns (quartiles {:.1}-{:.1}; target at most 1500)",
        extra.median, extra.low_quartile, extra.high_quartile
    );
    for (name, f) in [
        ("(b) / (a)", (OURS, BARE)),
        ("(c) / (a)", (THEIRS, BARE)),
        ("(b) / (c)", (OURS, THEIRS)),
    ] {
        let s = spread(&|r| r[f.0] / r[f.1]);
        println!(
            "http_layer: {name}: median {:.3} (quartiles {:.3}-{:.3})",
            s.median, s.low_quartile, s.high_quartile
        );
    }
}
