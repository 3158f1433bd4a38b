//! `origin`: a minimal origin for throughput runs of `http_proxy`
//! (scripts/http-bench.sh), fast enough not to be what is measured.
//!
//! ```text
//! origin --listen 127.0.0.1:9000 [--body BYTES]
//! ```
//!
//! `GET /cached` answers `Cache-Control: max-age=60`; any other path
//! `Cache-Control: no-store`. Both carry the same body of `--body` bytes
//! (default 1024). It prints `origin listening on http://ADDR` once bound
//! (port 0 picks a free one).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const USAGE: &str = "usage: origin --listen 127.0.0.1:9000 [--body BYTES]";

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
    match listener.local_addr() {
        Ok(bound) => println!("origin listening on http://{bound}"),
        Err(error) => {
            eprintln!("origin: {error}");
            return ExitCode::FAILURE;
        }
    }
    let body = Bytes::from(vec![b'x'; size]);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: wait, then go on.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let cache_control = if request.uri().path() == "/cached" {
                    "max-age=60"
                } else {
                    "no-store"
                };
                let mut response = Response::new(Full::new(body.clone()));
                let headers = response.headers_mut();
                headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
