//! What the Redis benches share: their own `redis-server`, and the workload
//! both measure (a storage-only `#[cached]` hit against a raw `GET`).

mod server;
mod workload;

pub use server::Server;
#[allow(unused_imports)] // each bench uses its own part of the workload
pub use workload::{cached_hits, item, prepare, raw_gets, value, TASKS};

/// The runtime the Redis benches run on: multi-threaded, two workers (one
/// per core of the machine they were written for).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
