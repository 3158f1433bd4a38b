//! What the package's end-to-end tests (proxy.rs, trust_body.rs) share: the
//! `http_proxy` binary started in front of an upstream, killed when dropped,
//! and the client type they send requests with. (A folder, so that cargo
//! does not take it for a test of its own.)

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;

/// A running `http_proxy` and the address it listens on.
pub struct Proxy(pub Child, pub SocketAddr);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The proxy (memory only) in front of `upstream`, once it accepts
/// connections (up to 10 s).
pub async fn proxy(upstream: SocketAddr) -> Proxy {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut proxy = Proxy(
        Command::new(env!("CARGO_BIN_EXE_http_proxy"))
            .args(["--listen", &addr.to_string()])
            .args(["--upstream", &format!("http://{upstream}")])
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        addr,
    );
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return proxy;
        }
        if let Ok(Some(status)) = proxy.0.try_wait() {
            panic!("the proxy exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the proxy did not start");
}

/// The client the tests send requests through the proxy with.
pub type TestClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;
