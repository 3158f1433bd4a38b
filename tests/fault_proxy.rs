//! A fault-injecting TCP proxy between caches and Redis, for the chaos test.
//!
//! [`FaultProxy::start`] listens on a free `127.0.0.1` port and forwards every
//! connection to an upstream address (a harness `RedisServer`). On command it
//! can:
//!
//! * [`reset_all`](FaultProxy::reset_all): close every open connection at
//!   once (both directions shut down: the client reads EOF or a reset, as when
//!   a server or a NAT drops it); new connections work again right away;
//! * [`blackhole`](FaultProxy::blackhole) / [`heal`](FaultProxy::heal): a
//!   silent partition: bytes in both directions are swallowed (requests time
//!   out, published messages are lost) and new connections are accepted but
//!   go nowhere; healing closes every connection that lost bytes, since its
//!   protocol stream is broken;
//! * [`set_delay`](FaultProxy::set_delay): hold every chunk for a while
//!   before forwarding it (a slow link).
//!
//! Plain threads, no async runtime: the proxy works under any test and keeps
//! forwarding while the test's own runtime is busy. Every connection costs
//! two threads, which the chaos test's few hundred connections can afford.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// One proxied connection: both of its sockets, so a reset can close them.
struct Link {
    client: TcpStream,
    upstream: TcpStream,
    /// Set when a blackhole swallowed some of its bytes.
    broken: Arc<AtomicBool>,
}

impl Link {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

#[derive(Default)]
struct Shared {
    links: Mutex<HashMap<u64, Link>>,
    next_id: AtomicU64,
    blackholed: AtomicBool,
    /// Microseconds each forwarded chunk waits.
    delay_us: AtomicU64,
    stopping: AtomicBool,
    /// Connections accepted so far (for tests of the proxy itself).
    accepted: AtomicU64,
}

impl Shared {
    fn links(&self) -> MutexGuard<'_, HashMap<u64, Link>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A TCP proxy on a free loopback port that injects faults on command;
/// stops (closing every connection) when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts forwarding a free `127.0.0.1` port to `upstream`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test machine).
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("fault proxy: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fault proxy: no local address: {e}"))
            .port();
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || accept_loop(&listener, upstream, &accept_shared))
            .unwrap_or_else(|e| panic!("fault proxy: cannot start a thread: {e}"));
        FaultProxy { port, shared }
    }

    /// Starts a proxy in front of `127.0.0.1:upstream_port`.
    pub fn to_port(upstream_port: u16) -> FaultProxy {
        Self::start(SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)))
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/` for a Redis behind the proxy (no password).
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Closes every open connection now; later connections are forwarded.
    pub fn reset_all(&self) {
        let links: Vec<Link> = self.shared.links().drain().map(|(_, l)| l).collect();
        for link in &links {
            link.close();
        }
    }

    /// Starts a silent partition: bytes are swallowed until [`heal`](Self::heal).
    pub fn blackhole(&self) {
        self.shared.blackholed.store(true, Ordering::SeqCst);
    }

    /// Ends a partition; closes the connections that lost bytes in it.
    pub fn heal(&self) {
        self.shared.blackholed.store(false, Ordering::SeqCst);
        let broken: Vec<Link> = {
            let mut links = self.shared.links();
            let ids: Vec<u64> = links
                .iter()
                .filter(|(_, l)| l.broken.load(Ordering::SeqCst))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| links.remove(id)).collect()
        };
        for link in &broken {
            link.close();
        }
    }

    /// Holds every forwarded chunk for `delay` (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_us.store(us, Ordering::SeqCst);
    }

    /// Connections open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.shared.links().len()
    }

    /// Connections accepted since the start.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stopping`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        self.reset_all();
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        // A failed upstream connect (Redis killed) closes the client: what a
        // refused connection looks like through a proxy.
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        if let Err(e) = spawn_link(client, server, shared) {
            eprintln!("fault proxy: cannot forward a connection: {e}");
        }
    }
}

fn spawn_link(client: TcpStream, server: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let broken = Arc::new(AtomicBool::new(false));
    shared.links().insert(
        id,
        Link {
            client: client.try_clone()?,
            upstream: server.try_clone()?,
            broken: broken.clone(),
        },
    );
    let pumps = [(client.try_clone()?, server.try_clone()?), (server, client)];
    for (from, to) in pumps {
        let (shared, broken) = (shared.clone(), broken.clone());
        thread::Builder::new()
            .name("fault-proxy-pump".into())
            .spawn(move || {
                pump(from, to, &shared, &broken);
                // One direction ended: end the other too, and forget the link.
                if let Some(link) = shared.links().remove(&id) {
                    link.close();
                }
            })?;
    }
    Ok(())
}

fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, broken: &AtomicBool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if shared.blackholed.load(Ordering::SeqCst) {
            broken.store(true, Ordering::SeqCst);
            continue;
        }
        let delay = shared.delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            thread::sleep(Duration::from_micros(delay));
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
