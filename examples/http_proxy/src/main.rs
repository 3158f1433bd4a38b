//! `http_proxy`: a caching reverse proxy. Requests reach the origin through
//! cache-runtime's [`CacheLayer`] (strict mode: no default TTL, no heuristic)
//! and a pooled hyper HTTP/1.1 client; bodies stream both ways.
//!
//! ```text
//! http_proxy --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000 [--redis URL]
//!            [--upstream-timeout 30s] [--public-host www.example.com]
//! ```
//!
//! The stack, outside in:
//!
//! 1. [`inbound::Inbound::prepare`]: the hop-by-hop fields (and those
//!    `Connection` names) and every client-sent forwarding field
//!    (`Forwarded`, `X-Forwarded-*`, `X-Original-URL`, `X-Rewrite-URL`, ...)
//!    are removed; the target becomes `http://UPSTREAM/path?query`, `Host`
//!    the upstream's; `X-Forwarded-For/-Host/-Proto` and `Forwarded` are set
//!    by the proxy; `Via` is appended to. So the cache keys by the origin
//!    actually fetched and by what the origin receives, never by the `Host`
//!    or the hop-by-hop fields a client sends.
//! 2. The [`CacheLayer`].
//! 3. [`tower::timeout::Timeout`] of `--upstream-timeout` (default 30 s)
//!    around the upstream client, inside the layer: a hung origin is an
//!    error the layer sees, so it serves a stale response that allows
//!    `stale-if-error`, else the proxy answers `504 Gateway Timeout`.
//! 4. [`forward::Upstream`]: the pooled client; the origin's hop-by-hop
//!    fields are dropped before the layer stores or forwards the response.
//!
//! Every response, stored or not, gains `Via: 1.1 http_proxy` after the
//! origin's own (RFC 9110 §7.6.3).

mod args;
mod forward;
mod inbound;

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
use tower::timeout::error::Elapsed;
use tower::{BoxError, Layer, ServiceExt};

use args::{Args, USAGE};
use forward::Upstream;
use inbound::Inbound;

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
    let upstream = Upstream::new();
    let origin = tower::service_fn(move |request: Request<Incoming>| {
        let upstream = upstream.clone();
        async move { upstream.forward(request).await }
    });
    // Inside the layer, so that it sees a timeout as the origin's error.
    let origin = tower::timeout::Timeout::new(origin, args.upstream_timeout);
    let service = layer.layer(origin);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    // The address actually bound (port 0 picks one), for scripts to read.
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let public_host = match args.public_host.clone() {
        Some(host) => host,
        None => bound
            .to_string()
            .parse()
            .map_err(|e| format!("the address {bound} as a host: {e}"))?,
    };
    let inbound = Inbound::new(args.scheme.clone(), args.authority.clone(), &public_host);
    println!(
        "http_proxy listening on http://{bound}, upstream http://{}",
        args.authority
    );
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
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
        let inbound = inbound.clone();
        tokio::spawn(async move {
            let hyper_service =
                hyper::service::service_fn(move |mut request: Request<Incoming>| {
                    let service = service.clone();
                    let prepared = inbound.prepare(&mut request, peer);
                    async move {
                        let mut response = match prepared {
                            Ok(()) => match service.oneshot(request).await {
                                Ok(response) => response,
                                Err(error) => upstream_error(&error),
                            },
                            Err(message) => answer(StatusCode::BAD_REQUEST, message),
                        };
                        inbound::via(&mut response);
                        Ok::<_, Infallible>(response)
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

/// The answer when the origin cannot be reached or timed out and nothing
/// stale may be served: `504` for `--upstream-timeout`, else `502`.
fn upstream_error<E>(error: &BoxError) -> Response<CacheBody<E>> {
    let status = if error.is::<Elapsed>() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    answer(status, format!("upstream: {error}"))
}

/// A response of the proxy's own: `status` with `message` as its body.
fn answer<E>(status: StatusCode, message: String) -> Response<CacheBody<E>> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}
