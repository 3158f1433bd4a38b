//! `origin`: a minimal origin for throughput runs of `http_proxy`
//! (scripts/http-bench.sh), fast enough not to be what is measured, and the
//! upstream of the proxy's end-to-end tests (tests/proxy_trust.rs).
//!
//! ```text
//! origin --listen 127.0.0.1:9000 [--body BYTES]
//! ```
//!
//! `GET /cached` answers `Cache-Control: max-age=60`; any path not listed
//! below `Cache-Control: no-store`. Both carry the same body of `--body`
//! bytes (default 1024). It prints `origin listening on http://ADDR` once
//! bound (port 0 picks a free one).
//!
//! The test endpoints, each fresh for 60 s unless said otherwise:
//!
//! - `/whoami`: `origin http://ADDR`, the origin's own address.
//! - `/reflect`: the request's `Host`, `Via` and forwarding fields
//!   (`X-Forwarded-*`, `Forwarded`, `X-Original-URL`, `X-Rewrite-URL`), one
//!   `name: value` line each, **without** `Vary`: what a careless origin
//!   that builds links from them does.
//! - `/lang`: `language: TAG` (the first tag of `Accept-Language`, else
//!   `default`), with `Vary: Accept-Language`.
//! - `/hop`: `hop`, with hop-by-hop fields (`Connection: X-Hop`, `X-Hop`,
//!   `Keep-Alive`) and `Via: 1.1 backend`.
//! - `/hang`: never answers.
//! - `/stale-if-error`: the first request is answered (body `stale-if-error`)
//!   with `Cache-Control: max-age=1, stale-if-error=60`; every later one
//!   hangs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const USAGE: &str = "usage: origin --listen 127.0.0.1:9000 [--body BYTES]";

/// The request fields `/reflect` echoes.
const REFLECTED: [&str; 11] = [
    "host",
    "via",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
];

fn parse(mut args: impl Iterator<Item = String>) -> Result<(SocketAddr, usize), String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 9000).into();
    let mut body = 1024;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value}: {e}"))?
            }
            "--body" => body = value.parse().map_err(|e| format!("--body {value}: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((listen, body))
}

/// What every connection shares.
struct Origin {
    bound: SocketAddr,
    body: Bytes,
    /// Whether `/stale-if-error` answered already.
    answered: AtomicBool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, size) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("origin: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("origin: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let bound = match listener.local_addr() {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("origin: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("origin listening on http://{bound}");
    let origin = Arc::new(Origin {
        bound,
        body: Bytes::from(vec![b'x'; size]),
        answered: AtomicBool::new(false),
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: wait, then go on.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let origin = origin.clone();
                async move { Ok::<_, Infallible>(origin.answer(&request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Origin {
    async fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let fresh = "max-age=60";
        let (cache_control, body, extra): (&str, Bytes, Vec<(&str, String)>) =
            match request.uri().path() {
                "/cached" => (fresh, self.body.clone(), vec![]),
                "/whoami" => (
                    fresh,
                    format!("origin http://{}", self.bound).into(),
                    vec![],
                ),
                "/reflect" => (fresh, reflect(request.headers()).into(), vec![]),
                "/lang" => {
                    let tag = request
                        .headers()
                        .get("accept-language")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split([',', ';']).next())
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .unwrap_or("default");
                    let vary = ("vary", "accept-language".to_string());
                    (fresh, format!("language: {tag}").into(), vec![vary])
                }
                "/hop" => {
                    let extra = vec![
                        ("connection", "x-hop".to_string()),
                        ("x-hop", "secret".to_string()),
                        ("keep-alive", "timeout=5".to_string()),
                        ("via", "1.1 backend".to_string()),
                    ];
                    (fresh, Bytes::from_static(b"hop"), extra)
                }
                "/hang" => std::future::pending().await,
                "/stale-if-error" => {
                    if self.answered.swap(true, Ordering::SeqCst) {
                        std::future::pending().await
                    }
                    let cc = "max-age=1, stale-if-error=60";
                    (cc, Bytes::from_static(b"stale-if-error"), vec![])
                }
                _ => ("no-store", self.body.clone(), vec![]),
            };
        let mut response = Response::new(Full::new(body));
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        for (name, value) in extra {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// `/reflect`'s body: each reflected field present, `name: value` a line
/// (a field's several lines joined by `, `, as one field).
fn reflect(headers: &HeaderMap) -> String {
    let mut out = String::new();
    for name in REFLECTED {
        let values: Vec<_> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        if !values.is_empty() {
            out.push_str(&format!("{name}: {}\n", values.join(", ")));
        }
    }
    out
}
