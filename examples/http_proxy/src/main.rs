//! `http_proxy`: a caching reverse proxy. Requests reach the origin through
//! cache-runtime's [`CacheLayer`] (strict mode: no default TTL, no heuristic)
//! and a pooled hyper HTTP/1.1 client; bodies stream both ways.
//!
//! ```text
//! http_proxy --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000 [--redis URL]
//! ```

mod args;
mod forward;

use std::convert::Infallible;
use std::process::ExitCode;

use bytes::Bytes;
use cache_runtime::http::{CacheBody, CacheLayer};
use cache_runtime::Cache;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

use args::{Args, USAGE};
use forward::Upstream;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("http_proxy: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("http_proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn cache(args: &Args) -> Result<Cache, String> {
    let mut builder = Cache::builder().namespace("http_proxy").memory(10_000);
    // The environment first; the command line wins over it.
    builder = builder.env().map_err(|e| e.to_string())?;
    if let Some(ns) = &args.namespace {
        builder = builder.namespace(ns.clone());
    }
    if let Some(n) = args.memory {
        builder = builder.memory(n);
    }
    if let Some(url) = &args.redis {
        builder = builder.redis(url.clone());
    }
    builder.build().await.map_err(|e| e.to_string())
}

async fn run(args: Args) -> Result<(), String> {
    let cache = cache(&args).await?;
    let mut layer = CacheLayer::new(cache)
        .request_no_cache(args.request_no_cache)
        .cdn_cache_control(args.cdn_cache_control);
    if let Some(n) = args.max_body {
        layer = layer.max_body(n);
    }
    let upstream = Upstream::new(args.scheme.clone(), args.authority.clone());
    let origin = tower::service_fn(move |request: Request<Incoming>| {
        let upstream = upstream.clone();
        async move { upstream.forward(request).await }
    });
    let service = layer.layer(origin);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    // The address actually bound (port 0 picks one), for scripts to read.
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "http_proxy listening on http://{bound}, upstream http://{}",
        args.authority
    );
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors and the like: wait, then go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let service = service.clone();
                async move {
                    Ok::<_, Infallible>(match service.oneshot(request).await {
                        Ok(response) => response,
                        Err(error) => bad_gateway(&error),
                    })
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper_service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
}

/// The answer when the origin cannot be reached and nothing stale may be served.
fn bad_gateway<E>(error: &dyn std::error::Error) -> Response<CacheBody<E>> {
    let body = Full::new(Bytes::from(format!("upstream: {error}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
