//! The conformance suite against a store written outside the crate, on the
//! public interface only: `support_store.rs`'s `MapStore` and
//! `ChannelBackplane` (issue 17: "a store written outside the crate passes
//! the conformance suite"). They are two types, so the suite runs as
//! `run` and `run_backplane` (what `run_all` runs for a type that is both).
//! Each "connection" is a clone: clones share one backend.

#[path = "support_store.rs"]
mod support_store;

use std::time::{Duration, Instant};

use cache_runtime::store::conformance;
use support_store::{ChannelBackplane, MapStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_store_passes_the_suite() {
    let store = MapStore::default();
    let started = Instant::now();
    conformance::run(|| std::future::ready(store.clone())).await;
    let took = started.elapsed();
    println!("the suite took {took:?}");
    assert!(took < Duration::from_secs(10), "the suite took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_backplane_passes_the_suite() {
    let backplane = ChannelBackplane::default();
    conformance::run_backplane(|| std::future::ready(backplane.clone())).await;
}
