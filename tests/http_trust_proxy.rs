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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response};
use axum::routing;
use axum::Router;
use http_body_util::BodyExt;
use integration_tests::redis_harness::{spawn_owned, RedisServer};

const HOST: &str = "shop.test";

/// What the origin saw: full answers and revalidations, and (for the gate)
/// requests in flight together.
#[derive(Clone, Default)]
struct Origin {
    full: Arc<AtomicUsize>,
    revalidated: Arc<AtomicUsize>,
    gate: Arc<Gate>,
}

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

/// As in tests/http_trust_share.rs: the request's `x-reply` fields make the
/// 200; with `If-None-Match: "v1"` the answer is a 304 with the
/// `x-reply-304` fields (`{user}` becomes the request's `x-user`). The body
/// names the call, the `x-token` bytes (hex) and the request's own body.
async fn reply(State(origin): State<Origin>, request: Request<Body>) -> Response<Body> {
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

async fn gated(State(origin): State<Origin>) -> Response<Body> {
    let gate = &origin.gate;
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

async fn origin() -> (SocketAddr, Origin) {
    let origin = Origin::default();
    let app = Router::new()
        .route("/gated", routing::get(gated))
        .route("/{*path}", routing::get(reply))
        .with_state(origin.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, origin)
}

/// The `http_proxy` binary, built (or found up to date) by cargo.
fn proxy_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "http_proxy", "--bin", "http_proxy"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit());
    let exe = std::env::current_exe().unwrap();
    if exe.components().any(|c| c.as_os_str() == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    assert!(out.status.success(), "cargo build -p http_proxy failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"compiler-artifact\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "http_proxy")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo named the http_proxy executable")
}

/// One proxy process, killed when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Proxy {
    fn start(binary: &PathBuf, upstream: SocketAddr, redis: Option<&str>) -> Proxy {
        let mut cmd = Command::new(binary);
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(["--upstream", &format!("http://{upstream}")])
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = redis {
            cmd.args(["--redis", url, "--namespace", "trust"]);
        }
        let mut child = spawn_owned(cmd).expect("http_proxy starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("http_proxy printed its address");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Proxy { child, addr }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    proxy: &Proxy,
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
    let binary = tokio::task::spawn_blocking(proxy_binary).await.unwrap();
    let redis = RedisServer::start();
    let (upstream, origin) = origin().await;
    let a = Proxy::start(&binary, upstream, Some(&redis.url()));
    let b = Proxy::start(&binary, upstream, Some(&redis.url()));

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
    let binary = tokio::task::spawn_blocking(proxy_binary).await.unwrap();
    let (upstream, _origin) = origin().await;
    let p = Proxy::start(&binary, upstream, None);
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
    let binary = tokio::task::spawn_blocking(proxy_binary).await.unwrap();
    let (upstream, origin) = origin().await;
    let p = Arc::new(Proxy::start(&binary, upstream, None));
    let gate = origin.gate.clone();
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
