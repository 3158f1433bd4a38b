//! Two `http_proxy` processes (examples/http_proxy) on one Redis and one
//! namespace, in front of one origin, as two replicas behind a load
//! balancer: a response stored through one is served by the other without
//! reaching the origin; a `PUT` through one invalidates what the other
//! serves; a tag invalidated by a third cache is seen by both.
//!
//! The proxy binary is built by `cargo build -p http_proxy` (a no-op when
//! `cargo test --workspace` built it already), so this test also runs alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::get;
use axum::Router;
use cache_runtime::Cache;
use integration_tests::proxy_process::{Binaries, Process};
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;

/// The `Host` every request carries, as a load balancer in front of replicas
/// sends it (the proxies key responses by their upstream, not by it).
const HOST: &str = "shop.test";
/// How long an invalidation through one process may take to reach the other.
const PROPAGATION: Duration = Duration::from_millis(500);

/// The origin's request counts.
#[derive(Default)]
struct Counts {
    gets: AtomicUsize,
    writes: AtomicUsize,
}

/// An origin on a free loopback port: `GET /item` answers `item #N` (N
/// counts the GETs it saw), fresh for 60 s and tagged `items`; `PUT /item`
/// answers 204.
async fn origin() -> (SocketAddr, Arc<Counts>) {
    async fn item(State(counts): State<Arc<Counts>>) -> (HeaderMap, String) {
        let n = counts.gets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
        headers.insert("cache-tag", HeaderValue::from_static("items"));
        (headers, format!("item #{n}"))
    }
    async fn put(State(counts): State<Arc<Counts>>) -> axum::http::StatusCode {
        counts.writes.fetch_add(1, Ordering::SeqCst);
        axum::http::StatusCode::NO_CONTENT
    }
    let counts = Arc::new(Counts::default());
    let app = Router::new()
        .route("/item", get(item).put(put))
        .with_state(counts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, counts)
}

/// A response as the test reads it.
#[derive(Debug)]
struct Got {
    status: u16,
    cache_status: String,
    body: String,
}

impl Got {
    fn hit(&self) -> bool {
        self.cache_status.contains("hit")
    }
}

/// One HTTP/1.1 exchange on a new connection (plain std: the blocking
/// client keeps the test free of client-side caching or pooling).
fn send(proxy: &Process, method: &str, path: &str) -> Got {
    let mut stream = TcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let cache_status = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("cache-status"))
        .map(|(_, v)| v.trim().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Got {
        status,
        cache_status,
        body: body.to_string(),
    }
}

/// `send` off the runtime's threads (it blocks).
async fn fetch(proxy: &Arc<Process>) -> Got {
    let proxy = proxy.clone();
    tokio::task::spawn_blocking(move || send(&proxy, "GET", "/item"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxy_processes_share_responses_and_invalidations_through_redis() {
    let bins = Binaries::get().await;
    let redis = RedisServer::start();
    let (upstream, counts) = origin().await;
    let a = Arc::new(bins.proxy(
        upstream,
        &["--redis", &redis.url(), "--namespace", "replicas"],
    ));
    let b = Arc::new(bins.proxy(
        upstream,
        &["--redis", &redis.url(), "--namespace", "replicas"],
    ));
    let gets = || counts.gets.load(Ordering::SeqCst);

    // Stored through A, served by B from Redis: the origin saw one GET.
    let first = fetch(&a).await;
    assert_eq!((first.status, first.body.as_str()), (200, "item #1"));
    assert!(first.cache_status.contains("stored"), "{first:?}");
    let from_b = fetch(&b).await;
    assert!(from_b.hit(), "{from_b:?}");
    assert_eq!(from_b.body, "item #1");
    assert!(fetch(&a).await.hit());
    assert_eq!(gets(), 1, "B answered without the origin");

    // A PUT through B invalidates the URI in A too.
    let b2 = b.clone();
    let put = tokio::task::spawn_blocking(move || send(&b2, "PUT", "/item"))
        .await
        .unwrap();
    assert_eq!(put.status, 204, "{put:?}");
    assert_eq!(counts.writes.load(Ordering::SeqCst), 1);
    let took = within!(PROPAGATION, fetch(&a).await.body != "item #1");
    assert!(took.is_some(), "A still served item #1 after B's PUT");
    assert!(gets() >= 2, "A went to the origin again");

    // A tag invalidated by a third cache on the same Redis and namespace
    // reaches both: neither serves what it served before.
    // (Both serve a stored response first: B's may take a poll to be.)
    let from_a = fetch(&a).await;
    assert!(from_a.hit(), "{from_a:?}");
    let mut from_b = fetch(&b).await;
    let took = within!(PROPAGATION, {
        from_b = fetch(&b).await;
        from_b.hit()
    });
    assert!(took.is_some(), "B serves a stored response: {from_b:?}");
    let before = gets();
    let third = Cache::builder()
        .namespace("replicas")
        .redis(redis.url())
        .build()
        .await
        .unwrap();
    third.invalidate_tags(["items"]).await.unwrap();
    let took = within!(PROPAGATION, fetch(&a).await.body != from_a.body);
    assert!(took.is_some(), "A still served {:?}", from_a.body);
    let took = within!(PROPAGATION, fetch(&b).await.body != from_b.body);
    assert!(took.is_some(), "B still served {:?}", from_b.body);
    assert!(gets() > before, "the origin was asked again");
}
