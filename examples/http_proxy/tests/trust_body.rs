//! The proxy binary between a real client and a real origin (issue 16,
//! items 6 and 8): every spelling of a target is one entry that one
//! invalidation reaches; an origin's body within `--max-body`, arriving in
//! many frames of varied sizes, is served whole and stored, never a 502.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

mod support;
use support::{proxy, Proxy, TestClient};

/// The proxy's default `--max-body`: 1 MiB.
const LIMIT: usize = 1 << 20;

/// A small seeded generator (xorshift), so that the frames are the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// `len` bytes in frames of random sizes (empty, one byte, up to 200 kB),
/// with their length known, so the origin sends `Content-Length`.
struct Frames {
    data: Bytes,
    at: usize,
    rng: Rng,
}

fn content(len: usize, seed: u64) -> Bytes {
    (0..len)
        .map(|i| (i * 31 + seed as usize) as u8)
        .collect::<Vec<u8>>()
        .into()
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.at == this.data.len() {
            return Poll::Ready(None);
        }
        // The first frame of any size, then empty, tiny, small, large ones.
        let size = match this.rng.below(4) {
            _ if this.at == 0 => this.rng.below(this.data.len() as u64 + 1),
            0 => 0,
            1 => 1,
            2 => 1 + this.rng.below(4096),
            _ => 1 + this.rng.below(200_000),
        };
        let end = (this.at + size).min(this.data.len());
        let frame = this.data.slice(this.at..end);
        this.at = end;
        Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.at == self.data.len()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact((self.data.len() - self.at) as u64)
    }
}

/// What the origin saw.
#[derive(Default)]
struct Seen {
    version: AtomicUsize,
    gets: AtomicUsize,
    targets: Mutex<Vec<String>>,
}

/// `GET /body/{len}/{seed}`: `len` bytes in random frames, fresh for 60 s.
/// Any other GET: the current version (`v1`, ...), fresh for 60 s; a POST
/// moves the version on (naming `x-location` in `Location`).
async fn answer(
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    seen.targets.lock().unwrap().push(req.uri().to_string());
    let path = req.uri().path().to_string();
    if req.method() == http::Method::POST {
        seen.version.fetch_add(1, Ordering::SeqCst);
        let mut r = Response::builder().status(204);
        if let Some(l) = req.headers().get("x-location") {
            r = r.header("location", l);
        }
        return r.body(Full::default().boxed()).unwrap();
    }
    seen.gets.fetch_add(1, Ordering::SeqCst);
    let r = Response::builder().header("cache-control", "max-age=60");
    if let Some(rest) = path.strip_prefix("/body/") {
        let (len, seed) = rest.split_once('/').unwrap();
        let (len, seed): (usize, u64) = (len.parse().unwrap(), seed.parse().unwrap());
        let body = Frames {
            data: content(len, seed),
            at: 0,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        };
        return r.body(body.boxed()).unwrap();
    }
    let v = seen.version.load(Ordering::SeqCst) + 1;
    r.body(Full::new(Bytes::from(format!("v{v}"))).boxed())
        .unwrap()
}

async fn origin() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(answer(s, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// One request through the proxy: status, `Cache-Status`, body.
async fn send(
    c: &TestClient,
    p: &Proxy,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Bytes) {
    let mut r = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", p.1));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let response = c.request(r.body(Full::default()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let cs = response
        .headers()
        .get("cache-status")
        .map_or(String::new(), |v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, cs, body)
}

const SPELLINGS: [&str; 6] = [
    "/state/x",
    "/state/%78",
    "/state/./x",
    "/state/y/../x",
    "/state/x?",
    "/state/%2E%2e/state/x",
];

#[tokio::test]
async fn every_spelling_of_a_target_is_invalidated_through_the_proxy() {
    let (up, seen) = origin().await;
    let p = proxy(up).await;
    let c: TestClient = Client::builder(TokioExecutor::new()).build_http();
    let host = p.1.to_string();
    let hosts = [
        host.clone(),
        host.replace("127.0.0.1", "127.0.0.1."),
        format!("LocalHost:{}", p.1.port()),
        format!("localhost.:{}", p.1.port()),
    ];
    let read_all = || async {
        let mut out = Vec::new();
        for h in &hosts {
            for path in SPELLINGS {
                let (_, _, body) = send(&c, &p, "GET", path, &[("host", h)]).await;
                out.push(String::from_utf8_lossy(&body).into_owned());
            }
        }
        out
    };
    let before = read_all().await;
    assert!(before.iter().all(|b| b == "v1"), "{before:?}");
    let gets = seen.gets.load(Ordering::SeqCst);
    let targets = seen.targets.lock().unwrap().clone();

    for h in [&hosts[0], &hosts[2]] {
        send(&c, &p, "POST", "/state/x", &[("host", h)]).await;
    }
    let after = read_all().await;
    let old = after.iter().filter(|b| *b == "v1").count();
    assert_eq!(
        old,
        0,
        "{old} of {} still served v1: {after:?}",
        after.len()
    );
    // One entry per host (`localhost` and `127.0.0.1` are two hosts), and
    // the origin was sent the normal target.
    assert!(gets <= 2, "{gets}: {targets:?}");
    assert!(targets.iter().all(|t| t == "/state/x"), "{targets:?}");

    // Another spelling of the POST, and a Location naming the target.
    send(&c, &p, "POST", "/state/%78?", &[("host", &hosts[1])]).await;
    send(&c, &p, "POST", "/state/./x", &[("host", &hosts[3])]).await;
    assert!(read_all().await.iter().all(|b| b == "v5"));
    for h in [&hosts[0], &hosts[2]] {
        let at = [("host", h.as_str()), ("x-location", "/state/%2e/x")];
        send(&c, &p, "POST", "/other", &at).await;
    }
    assert!(read_all().await.iter().all(|b| b == "v7"));
}

#[tokio::test]
async fn bodies_within_the_limit_in_many_frames_are_stored_not_502() {
    let (up, seen) = origin().await;
    let p = proxy(up).await;
    let c: TestClient = Client::builder(TokioExecutor::new()).build_http();
    let sizes = [
        65_536,
        800_000,
        900_000,
        1_000_000,
        LIMIT - 1,
        LIMIT,
        LIMIT + 1,
    ];
    let mut wrong = Vec::new();
    for len in sizes {
        for seed in 1..=3u64 {
            let path = format!("/body/{len}/{seed}");
            let want = content(len, seed);
            let gets = seen.gets.load(Ordering::SeqCst);
            let (status, cs, body) = send(&c, &p, "GET", &path, &[]).await;
            if status != 200 || body != want {
                wrong.push(format!(
                    "{len}/{seed}: {status} {cs} ({} bytes)",
                    body.len()
                ));
                continue;
            }
            let (status, cs, body) = send(&c, &p, "GET", &path, &[]).await;
            assert_eq!((status, body.len()), (200, len));
            assert_eq!(body, want);
            let stored = cs.contains("hit");
            if stored != (len <= LIMIT) {
                wrong.push(format!("{len}/{seed}: second answer {cs}"));
            }
            let origin_saw = seen.gets.load(Ordering::SeqCst) - gets;
            assert_eq!(origin_saw, if len <= LIMIT { 1 } else { 2 }, "{len}/{seed}");
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}: {wrong:#?}",
        wrong.len(),
        sizes.len() * 3
    );
}
