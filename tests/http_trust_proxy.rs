//! Nothing meant for one client reaches another through the `http_proxy`
//! example (issue 16, items 1, 2, 3 and 10), with raw HTTP/1.1 clients and a
//! real axum origin: a `304`'s `Set-Cookie` goes to the requesting client
//! only (across two proxies on one Redis, and in background revalidation),
//! a `304` saying `private` ends the sharing, `Vary` compares bytes, a GET
//! with a body is neither stored nor answered from the store, and concurrent
//! requests for an uncacheable target reach the origin together.
//!
//! Each test counts the leaks over its rounds and asserts none, so that its
//! message gives the count (the "before" counts of the report come from it).
//! The proxy binary is built by `cargo build -p http_proxy`, as in
//! tests/http_proxy.rs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::Response;
use axum::routing;
use axum::Router;
use integration_tests::proxy_process::{Binaries, Process};
use integration_tests::redis_harness::RedisServer;

const HOST: &str = "shop.test";

#[path = "trust_origin.rs"]
mod trust_origin;
use trust_origin::{reply, Origin};

/// Item 10's gate: `/gated` waits until `want` requests arrived (or 5 s),
/// counting the most in flight at once.
#[derive(Default)]
struct Gate {
    want: AtomicUsize,
    arrived: AtomicUsize,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    timeouts: AtomicUsize,
    notify: tokio::sync::Notify,
}

async fn gated(State(gate): State<Arc<Gate>>) -> Response<Body> {
    let now = gate.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    gate.most.fetch_max(now, Ordering::SeqCst);
    let arrived = {
        let notified = gate.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let n = gate.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= gate.want.load(Ordering::SeqCst) {
            gate.notify.notify_waiters();
            true
        } else {
            tokio::time::timeout(Duration::from_secs(5), notified)
                .await
                .is_ok()
        }
    };
    if !arrived {
        gate.timeouts.fetch_add(1, Ordering::SeqCst);
    }
    gate.in_flight.fetch_sub(1, Ordering::SeqCst);
    Response::builder()
        .header("cache-control", "private, max-age=60")
        .body(Body::from("gated"))
        .unwrap()
}

async fn origin() -> (SocketAddr, Origin, Arc<Gate>) {
    let (origin, gate) = (Origin::default(), Arc::new(Gate::default()));
    let app = Router::new()
        .route("/gated", routing::get(gated).with_state(gate.clone()))
        .route("/{*path}", routing::get(reply))
        .with_state(origin.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, origin, gate)
}

/// A proxy in front of `upstream`; with `redis`, on that Redis in the
/// namespace `trust`.
fn proxy(bins: &Binaries, upstream: SocketAddr, redis: Option<&str>) -> Process {
    match redis {
        Some(url) => bins.proxy(upstream, &["--redis", url, "--namespace", "trust"]),
        None => bins.proxy(upstream, &[]),
    }
}

#[derive(Debug)]
struct Got {
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn all(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn hit(&self) -> bool {
        self.all("cache-status").contains("; hit")
    }
}

/// One HTTP/1.1 GET on a new connection: `fields` are raw header lines'
/// names and values (any bytes a header value may hold), `content` a body
/// sent with `Content-Length`.
fn exchange(addr: SocketAddr, path: &str, fields: &[(&str, &[u8])], content: &[u8]) -> Got {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out =
        format!("GET {path} HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n").into_bytes();
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !content.is_empty() {
        out.extend_from_slice(format!("content-length: {}\r\n", content.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(content);
    stream.write_all(&out).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Got {
        headers,
        body: body.to_string(),
    }
}

/// [`exchange`] off the runtime's threads (it blocks).
async fn get(
    proxy: &Process,
    path: &str,
    fields: &[(&'static str, &'static [u8])],
    user: Option<&'static str>,
) -> Got {
    let (addr, path) = (proxy.addr, path.to_string());
    let mut fields = fields.to_vec();
    if let Some(u) = user {
        fields.push(("x-user", u.as_bytes()));
    }
    tokio::task::spawn_blocking(move || exchange(addr, &path, &fields, b""))
        .await
        .unwrap()
}

fn stale_page(cc: &'static str, on_304: &[&'static str]) -> Vec<(&'static str, &'static [u8])> {
    let mut h: Vec<(&str, &[u8])> = vec![("x-reply", cc.as_bytes()), ("x-reply", b"etag: \"v1\"")];
    for f in on_304 {
        h.push(("x-reply-304", f.as_bytes()));
    }
    h
}

const ROUNDS: usize = 3;

/// Item 1 across two proxies on one Redis: alice revalidates through A and
/// the origin's 304 sets her cookie; bob, through B, never gets it. A 304
/// saying `private` ends the sharing for B too. And item 1 in background
/// revalidation (stale-while-revalidate) on one proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_reaches_only_its_client_through_two_proxies_on_one_redis() {
    let bins = Binaries::get().await;
    let redis = RedisServer::start();
    let (upstream, origin, _gate) = origin().await;
    let a = proxy(&bins, upstream, Some(&redis.url()));
    let b = proxy(&bins, upstream, Some(&redis.url()));

    let page = stale_page(
        "cache-control: max-age=0",
        &["set-cookie: sid={user}", "cache-control: max-age=60"],
    );
    let mut cookie_leaks = 0;
    for round in 0..ROUNDS {
        let path = format!("/cookie-{round}");
        get(&a, &path, &page, None).await;
        let alice = get(&a, &path, &page, Some("alice")).await;
        assert_eq!(alice.all("set-cookie"), "sid=alice", "{alice:?}");
        let bob = get(&b, &path, &page, Some("bob")).await;
        if bob.all("set-cookie").contains("alice") {
            cookie_leaks += 1;
        }
    }

    let private = stale_page(
        "cache-control: max-age=0",
        &["cache-control: private, max-age=60"],
    );
    let mut private_shared = 0;
    for round in 0..ROUNDS {
        let path = format!("/private-{round}");
        get(&a, &path, &private, None).await;
        get(&a, &path, &private, Some("alice")).await;
        if get(&b, &path, &private, Some("bob")).await.hit() {
            private_shared += 1;
        }
    }

    let swr = stale_page(
        "cache-control: max-age=0, stale-while-revalidate=60",
        &["set-cookie: sid={user}", "cache-control: max-age=60"],
    );
    let mut background_leaks = 0;
    for round in 0..ROUNDS {
        let path = format!("/background-{round}");
        get(&a, &path, &swr, None).await;
        let before = origin.revalidated.load(Ordering::SeqCst);
        get(&a, &path, &swr, Some("alice")).await;
        // Until the first revalidation is over: its result stored (a fresh
        // hit), or bob's request started the next one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let bob = get(&a, &path, &swr, Some("bob")).await;
            if bob.all("set-cookie").contains("alice") {
                background_leaks += 1;
                break;
            }
            let fresh_hit = bob.hit() && !bob.all("cache-status").contains("stale");
            if fresh_hit || origin.revalidated.load(Ordering::SeqCst) >= before + 2 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no revalidation");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(
        (cookie_leaks, private_shared, background_leaks),
        (0, 0, 0),
        "bob got alice's cookie {cookie_leaks}/{ROUNDS} (across proxies), \
         the private 304's response {private_shared}/{ROUNDS}, \
         alice's cookie after background revalidation {background_leaks}/{ROUNDS}"
    );
}

/// Items 2 and 3 through one proxy: two tokens that differ in non-UTF-8
/// bytes are two variants; a GET with a body does not poison plain GETs
/// and is not answered from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_bytes_and_bodies_of_gets_through_the_proxy() {
    let bins = Binaries::get().await;
    let (upstream, _origin, _gate) = origin().await;
    let p = proxy(&bins, upstream, None);
    let addr = p.addr;
    let varied: [(&str, &[u8]); 2] = [
        ("x-reply", b"cache-control: max-age=60"),
        ("x-reply", b"vary: x-token"),
    ];
    let fresh: [(&str, &[u8]); 1] = [("x-reply", b"cache-control: max-age=60")];
    let (mut shared, mut poisoned, mut answered) = (0, 0, 0);
    for round in 0..5 {
        let path = format!("/token-{round}");
        let (path2, v) = (path.clone(), varied);
        let other = tokio::task::spawn_blocking(move || {
            let mut one = v.to_vec();
            one.push(("x-token", b"tok\xff\xfe\x80"));
            let first = exchange(addr, &path2, &one, b"");
            assert!(first.body.contains("[746f6bfffe80]"), "{first:?}");
            let mut two = v.to_vec();
            two.push(("x-token", b"tok\xc0\xc1\x90"));
            exchange(addr, &path2, &two, b"")
        })
        .await
        .unwrap();
        if other.hit() || !other.body.contains("[746f6bc0c190]") {
            shared += 1;
        }

        let path = format!("/fat-{round}");
        let (plain, fat_again) = tokio::task::spawn_blocking(move || {
            let fat = exchange(addr, &path, &fresh, b"EVIL");
            assert!(fat.body.contains("content [EVIL]"), "{fat:?}");
            let plain = exchange(addr, &path, &fresh, b"");
            let fat_again = exchange(addr, &path, &fresh, b"EVIL");
            (plain, fat_again)
        })
        .await
        .unwrap();
        if plain.body.contains("EVIL") {
            poisoned += 1;
        }
        if fat_again.hit() || !fat_again.body.contains("content [EVIL]") {
            answered += 1;
        }
    }
    assert_eq!(
        (shared, poisoned, answered),
        (0, 0, 0),
        "another token's variant served {shared}/5; a plain GET got the \
         body-GET's answer {poisoned}/5; a body-GET answered from the store {answered}/5"
    );
}

/// Item 10 through the proxy: once `/gated` answered `private`, N
/// concurrent requests for it are at the origin together (the gate opens
/// when all N arrived; before the fix one went alone and timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_an_uncacheable_target_reach_the_origin_together() {
    const N: usize = 20;
    let bins = Binaries::get().await;
    let (upstream, _origin, gate) = origin().await;
    let p = Arc::new(proxy(&bins, upstream, None));
    gate.want.store(1, Ordering::SeqCst);
    let first = get(&p, "/gated", &[], None).await;
    assert!(first.all("cache-status").contains("private"), "{first:?}");

    gate.arrived.store(0, Ordering::SeqCst);
    gate.most.store(0, Ordering::SeqCst);
    gate.want.store(N, Ordering::SeqCst);
    let wave: Vec<_> = (0..N)
        .map(|_| {
            let addr = p.addr;
            tokio::task::spawn_blocking(move || exchange(addr, "/gated", &[], b""))
        })
        .collect();
    for r in wave {
        assert_eq!(r.await.unwrap().body, "gated");
    }
    let most = gate.most.load(Ordering::SeqCst);
    let timeouts = gate.timeouts.load(Ordering::SeqCst);
    assert_eq!(
        (most, timeouts),
        (N, 0),
        "{most}/{N} at the origin together, {timeouts} gate timeouts"
    );
}
