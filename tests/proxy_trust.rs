//! The `http_proxy` example between a raw client and real `origin` processes
//! (both binaries of examples/http_proxy): nothing one client sends decides
//! what another is served (issue 16, items 4, 5, 7, 9, 11).
//!
//! - hop-by-hop fields, and those `Connection` names, are gone before the
//!   cache keys the request (RFC 9110 §7.6.1) and from every response;
//! - the key's authority is the upstream actually fetched, never the
//!   client's `Host` (two proxies with different upstreams on one Redis);
//! - the proxy sets the forwarding fields itself: a client's
//!   `X-Forwarded-*`, `Forwarded`, `X-Original-URL` never reach the origin;
//! - a hung origin is answered `504` within `--upstream-timeout`;
//! - `Via` on requests and responses (RFC 9110 §7.6.3).
//!
//! The binaries are built by `cargo build -p http_proxy` (a no-op when the
//! workspace's build made them already), so this test also runs alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use integration_tests::proxy_process::{Binaries, Process};
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;

/// A response as the test reads it.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    took: Duration,
}

impl Got {
    /// Every value of `name`, joined by `, ` as one field.
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn hit(&self) -> bool {
        self.header("cache-status").contains("hit")
    }
}

/// One `GET path` with `headers` (a `Host` among them replaces the
/// default: the proxy's address) on a new connection, read to its end or
/// for at most `limit`: a plain std client, so nothing between the test
/// and the proxy caches, pools or rewrites.
fn get(proxy: SocketAddr, path: &str, headers: &[(&str, &str)], limit: Duration) -> Got {
    let start = Instant::now();
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("host: {proxy}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0; 8192];
    // Until the response is complete: `Connection` may name other fields,
    // so the proxy need not close; a Content-Length tells where it ends.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no complete answer to GET {path} within {limit:?} ({e}); got {:?}",
                String::from_utf8_lossy(&raw)
            ),
        }
        if complete(&raw) {
            break;
        }
    }
    let took = start.elapsed();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Got {
        status,
        headers,
        body: body.to_string(),
        took,
    }
}

/// Whether `raw` holds a whole response with a `Content-Length`.
fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|len| body.len() >= len)
}

/// [`get`] off the runtime's threads (it blocks).
async fn fetch(proxy: &Process, path: &str, headers: &[(&str, &str)]) -> Got {
    fetch_within(proxy, path, headers, Duration::from_secs(10)).await
}

async fn fetch_within(
    proxy: &Process,
    path: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> Got {
    let addr = proxy.addr;
    let path = path.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        get(addr, &path, &headers, limit)
    })
    .await
    .unwrap()
}

/// Item 4: `Connection: Accept-Language` with `Accept-Language: en` sends
/// the origin no `Accept-Language`, so its default answer must not be
/// stored as the `en` variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_named_by_connection_are_gone_before_the_cache_keys_the_request() {
    let bins = Binaries::get().await;
    let origin = bins.origin();
    let proxy = bins.proxy(origin.addr, &[]);

    let hop = [("accept-language", "en"), ("connection", "accept-language")];
    let first = fetch(&proxy, "/lang", &hop).await;
    assert_eq!(first.body, "language: default", "{first:?}");
    let en = fetch(&proxy, "/lang", &[("accept-language", "en")]).await;
    assert_eq!(en.body, "language: en", "the en variant: {en:?}");
    let en = fetch(&proxy, "/lang", &[("accept-language", "en")]).await;
    assert!(en.hit(), "{en:?}");
    assert_eq!(en.body, "language: en");
    // The request without the field is the variant the first one stored.
    let plain = fetch(&proxy, "/lang", &[]).await;
    assert!(plain.hit(), "{plain:?}");
    assert_eq!(plain.body, "language: default");

    // The standard hop-by-hop set is dropped too (Keep-Alive, TE, ...).
    let reflected = fetch(
        &proxy,
        "/reflect",
        &[("keep-alive", "timeout=5"), ("te", "trailers")],
    )
    .await;
    assert!(!reflected.body.contains("keep-alive"), "{reflected:?}");

    // A response's hop-by-hop fields are neither forwarded nor stored.
    for round in 0..2 {
        let r = fetch(&proxy, "/hop", &[]).await;
        assert_eq!(r.body, "hop");
        assert_eq!(r.hit(), round == 1, "{r:?}");
        assert_eq!(r.header("x-hop"), "", "{r:?}");
        assert_eq!(r.header("keep-alive"), "", "{r:?}");
    }
}

/// Item 5: proxies A and B on one Redis and namespace, in front of
/// different origins. A request to B with a forged `Host` naming A's site
/// must not store origin B's page where A reads its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_host_cannot_store_into_another_upstreams_entries() {
    let bins = Binaries::get().await;
    let redis = RedisServer::start();
    let url = redis.url();
    let shared = ["--redis", url.as_str(), "--namespace", "shared"];
    let (origin_a, origin_b) = (bins.origin(), bins.origin());
    let a = bins.proxy(origin_a.addr, &shared);
    let b = bins.proxy(origin_b.addr, &shared);
    let site_a = a.addr.to_string();

    let forged = fetch(&b, "/whoami", &[("host", &site_a)]).await;
    assert_eq!(forged.body, format!("origin http://{}", origin_b.addr));
    // Its entry reached Redis before A is asked (the write is in the
    // background of the response).
    let stored = within!(Duration::from_secs(5), redis.dbsize() > 0);
    assert!(stored.is_some(), "B stored nothing in Redis");

    let from_a = fetch(&a, "/whoami", &[("host", &site_a)]).await;
    assert_eq!(
        from_a.body,
        format!("origin http://{}", origin_a.addr),
        "A served another origin's page: {from_a:?}"
    );
    // Whatever the client calls the site, each proxy serves its origin's.
    for host in [site_a.as_str(), "anything.test", "b.example:1"] {
        let r = fetch(&b, "/whoami", &[("host", host)]).await;
        assert_eq!(r.body, format!("origin http://{}", origin_b.addr));
        let r = fetch(&a, "/whoami", &[("host", host)]).await;
        assert_eq!(r.body, format!("origin http://{}", origin_a.addr));
    }
}

/// Item 7: the forwarding fields a client sends are replaced or dropped,
/// so an origin that reflects them without `Vary` cannot be made to store
/// a poisoned page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_forwarding_fields_never_reach_the_origin() {
    let bins = Binaries::get().await;
    let origin = bins.origin();
    let proxy = bins.proxy(origin.addr, &["--public-host", "www.example.test"]);

    let evil = [
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "gopher"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-port", "6666"),
        ("x-real-ip", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6;host=evil.example;proto=gopher"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
    ];
    let first = fetch(&proxy, "/reflect", &evil).await;
    for bad in ["evil", "gopher", "6.6.6.6", "6666", "/admin", "DELETE"] {
        assert!(
            !first.body.contains(bad),
            "{bad} reached the origin:\n{}",
            first.body
        );
    }
    let expected = format!(
        "host: {}\nvia: 1.1 http_proxy\n\
         forwarded: for=127.0.0.1;host=www.example.test;proto=http\n\
         x-forwarded-for: 127.0.0.1\n\
         x-forwarded-host: www.example.test\n\
         x-forwarded-proto: http\n",
        origin.addr
    );
    assert_eq!(first.body, expected);
    let second = fetch(&proxy, "/reflect", &[]).await;
    assert!(second.hit(), "{second:?}");
    assert_eq!(second.body, expected);
}

/// Item 11: `Via` on the response too (RFC 9110 §7.6.3), after the
/// origin's own, on a miss and on a hit; the request's `Via` is appended
/// to as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_the_proxys_via() {
    let bins = Binaries::get().await;
    let origin = bins.origin();
    let proxy = bins.proxy(origin.addr, &[]);

    let miss = fetch(&proxy, "/hop", &[]).await;
    assert_eq!(
        miss.header("via"),
        "1.1 backend, 1.1 http_proxy",
        "{miss:?}"
    );
    let hit = fetch(&proxy, "/hop", &[]).await;
    assert!(hit.hit(), "{hit:?}");
    assert_eq!(hit.header("via"), "1.1 backend, 1.1 http_proxy", "{hit:?}");
    let plain = fetch(&proxy, "/whoami", &[]).await;
    assert_eq!(plain.header("via"), "1.1 http_proxy", "{plain:?}");

    let reflected = fetch(&proxy, "/reflect", &[("via", "1.0 client-proxy")]).await;
    assert!(
        reflected
            .body
            .contains("via: 1.0 client-proxy, 1.1 http_proxy\n"),
        "{}",
        reflected.body
    );
}

/// Item 9: a hung origin, nothing stored: `504` once `--upstream-timeout`
/// has passed, not a hang; the proxy goes on answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_origin_is_answered_504_within_the_upstream_timeout() {
    let bins = Binaries::get().await;
    let origin = bins.origin();
    let proxy = bins.proxy(origin.addr, &["--upstream-timeout", "1s"]);

    let hung = fetch(&proxy, "/hang", &[]).await;
    assert_eq!(hung.status, 504, "{hung:?}");
    assert!(hung.took >= Duration::from_millis(900), "{hung:?}");
    assert!(hung.took < Duration::from_secs(5), "{hung:?}");
    assert!(hung.header("via").contains("http_proxy"), "{hung:?}");
    let ok = fetch(&proxy, "/whoami", &[]).await;
    assert_eq!(ok.status, 200);
}

/// Item 9 with the layer's `stale-if-error`: a stale entry that allows it
/// is served when the hung origin times out, within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_origin_with_a_stale_if_error_entry_serves_it_within_the_timeout() {
    let bins = Binaries::get().await;
    let origin = bins.origin();
    let proxy = bins.proxy(origin.addr, &["--upstream-timeout", "1s"]);

    let first = fetch(&proxy, "/stale-if-error", &[]).await;
    assert_eq!((first.status, first.body.as_str()), (200, "stale-if-error"));
    assert!(first.header("cache-status").contains("stored"), "{first:?}");
    // `max-age=1`: stale once a second has passed (a deadline, not an
    // ordering of events).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let stale = fetch(&proxy, "/stale-if-error", &[]).await;
    assert_eq!(
        (stale.status, stale.body.as_str()),
        (200, "stale-if-error"),
        "{stale:?}"
    );
    assert!(
        stale.header("cache-status").contains("stale-if-error"),
        "{stale:?}"
    );
    assert!(stale.took < Duration::from_secs(5), "{stale:?}");
}
