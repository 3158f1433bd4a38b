//! The conformance suite: the checks every store runs (feature
//! `conformance`).
//!
//! A store author calls [`run`] (and [`run_backplane`] for a
//! [`Backplane`], or [`run_all`] for both) from a test, with a factory
//! that opens a **new connection to the same backend** on each call: two
//! connections stand for two processes, so the checks cover what one process
//! writes and another reads. Each check is also a public function of its own
//! (e.g. [`bump_concurrent_distinct`]), so a failure names what broke and a
//! store can run one check alone. A check panics, with a message saying
//! which contract failed, as a test assertion does.
//!
//! Every check writes under a random namespace of its own
//! (`conformance-<hex>`), so suites may run concurrently against one server;
//! they leave their keys behind (entries with TTLs of at most a minute,
//! tag counters and test counters without one). Two checks wait for TTLs to
//! pass (about 300 ms each, on the store's own clock); the whole suite
//! takes well under five seconds against a local server. Do not run it
//! under tokio's paused time unless the store's clock is tokio's (as
//! [`InProcessStore`](super::in_process::InProcessStore)'s is).
//!
//! ```
//! use cache_runtime::store::{conformance, in_process::InProcessStore};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let store = InProcessStore::with_nodes(3);
//! conformance::run_all(|| std::future::ready(store.connect())).await;
//! # });
//! ```
//!
//! The checks:
//!
//! | check | contract |
//! |---|---|
//! | [`fetch_reads_entry_and_versions`] | `fetch` = the entry and the current versions, in the order of `tag_keys`, seen from another connection |
//! | [`fetch_absent`] | an absent entry is `None`; its tags' counters are created as `versions` creates them |
//! | [`entry_expires`] | an entry past its TTL is absent (to `delete` too); a longer one stays |
//! | [`put_overwrite_delete`] | `put` replaces, `delete` removes and says whether it existed |
//! | [`fetch_many_in_order`] | `fetch_many` answers in the order asked, `None` for absent keys |
//! | [`fetch_batch_as_fetch`] | `fetch_batch` answers each request in order as `fetch` does |
//! | [`put_many_stores_each`] | `put_many` stores every item |
//! | [`ping_answers`] | `ping` succeeds on a healthy store |
//! | [`versions_created_and_stable`] | `versions` creates missing counters and reads the same values until a bump |
//! | [`bump_above_reads`] | a bump is above every version read, and is what is read next |
//! | [`bump_concurrent_distinct`] | concurrent bumps from two connections never hand out a version twice |
//! | [`versions_survive_loss`] | a counter lost (deleted) comes back above every version handed out |
//! | [`broken_counter_replaced`] | a counter overwritten with no number reads no lower than before, through `fetch` too |
//! | [`lock_exclusive`] | of concurrent `try_lock`s, exactly one wins |
//! | [`lock_tokens`] | only the holder's token extends or releases a lock |
//! | [`lock_expires`] | a lock past its TTL is free; an extended one is not |
//! | [`increment_counts`] | `increment` from absent, negative deltas, across connections |
//! | [`increment_concurrent`] | concurrent increments are atomic (no lost update) |
//! | [`value_reads_counter`] | `value` reads 0 for an absent key, then what `increment` wrote, changing nothing |
//! | [`scan_glob_forms`] | `scan` over every node finds exactly the keys of `*`, `?`, `[..]` and `\` patterns |
//! | [`scan_during_changes`] | a key present for the whole walk is found while others come and go |
//! | [`unlink_counts`] | `unlink` deletes and counts the keys that existed |
//! | [`publish_reaches_other_connection`] | a message reaches another connection's subscriber |
//! | [`publish_reaches_every_subscriber`] | every subscriber of the channel (the publisher's own too), and none of another channel |
//! | [`subscription_end_is_clean`] | a dropped subscription leaves the connection working; subscribing again works |
//!
//! Cross-process checks through two [`Cache`](crate::Cache)s on one
//! backend ([`run_cache`], about two seconds):
//!
//! | check | promise |
//! |---|---|
//! | [`cache_shares_entries`] | one cache's `set` and `get_or_load` are the other's hits |
//! | [`cache_invalidation_seen_elsewhere`] | after `invalidate_tags`, the other cache stops serving the value within [`INVALIDATION_BOUND`], for good |
//! | [`cache_loads_once_across_instances`] | concurrent `get_or_load`s on two caches run the loader once |
//! | [`cache_versions_monotonic`] | a value loaded across a bump of its tag is never served after it |

mod backplane;
mod batch;
mod cache;
mod counters;
mod entries;
mod locks;
mod scan;
mod support;
mod tags;

use std::future::Future;

pub use backplane::{
    publish_reaches_every_subscriber, publish_reaches_other_connection, subscription_end_is_clean,
};
pub use batch::fetch_batch_as_fetch;
pub use cache::{
    cache_invalidation_seen_elsewhere, cache_loads_once_across_instances, cache_shares_entries,
    cache_versions_monotonic, INVALIDATION_BOUND,
};
pub use counters::{increment_concurrent, increment_counts, value_reads_counter};
pub use entries::{
    entry_expires, fetch_absent, fetch_many_in_order, fetch_reads_entry_and_versions, ping_answers,
    put_many_stores_each, put_overwrite_delete,
};
pub use locks::{lock_exclusive, lock_expires, lock_tokens};
pub use scan::{scan_during_changes, scan_glob_forms, unlink_counts};
pub use tags::{
    broken_counter_replaced, bump_above_reads, bump_concurrent_distinct,
    versions_created_and_stable, versions_survive_loss,
};

use super::{Backplane, Store};

/// Opens a new connection to the store under test, to the same backend
/// each time. Implemented for every `Fn() -> impl Future<Output = S>`, e.g.
/// `|| std::future::ready(store.connect())` or
/// `|| async { MyStore::connect(URL).await.unwrap() }`.
pub trait Connect<S> {
    /// A new connection.
    fn connect(&self) -> impl Future<Output = S>;
}

impl<S, F, Fut> Connect<S> for F
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    fn connect(&self) -> impl Future<Output = S> {
        self()
    }
}

/// Runs every check of a [`Store`] (all but the backplane's), in turn.
pub async fn run<S: Store>(connect: impl Connect<S>) {
    store_checks(&connect).await;
}

async fn store_checks<S: Store>(c: &impl Connect<S>) {
    fetch_reads_entry_and_versions(c).await;
    fetch_absent(c).await;
    entry_expires(c).await;
    put_overwrite_delete(c).await;
    fetch_many_in_order(c).await;
    fetch_batch_as_fetch(c).await;
    put_many_stores_each(c).await;
    ping_answers(c).await;
    versions_created_and_stable(c).await;
    bump_above_reads(c).await;
    bump_concurrent_distinct(c).await;
    versions_survive_loss(c).await;
    broken_counter_replaced(c).await;
    lock_exclusive(c).await;
    lock_tokens(c).await;
    lock_expires(c).await;
    increment_counts(c).await;
    increment_concurrent(c).await;
    value_reads_counter(c).await;
    scan_glob_forms(c).await;
    scan_during_changes(c).await;
    unlink_counts(c).await;
}

/// Runs every check of a [`Backplane`], in turn.
pub async fn run_backplane<B: Backplane>(connect: impl Connect<B>) {
    backplane_checks(&connect).await;
}

async fn backplane_checks<B: Backplane>(c: &impl Connect<B>) {
    publish_reaches_other_connection(c).await;
    publish_reaches_every_subscriber(c).await;
    subscription_end_is_clean(c).await;
}

/// [`run`] and [`run_backplane`], for a store that is both.
pub async fn run_all<S: Store + Backplane>(connect: impl Connect<S>) {
    store_checks(&connect).await;
    backplane_checks(&connect).await;
}

/// Runs the cross-process checks through two [`Cache`](crate::Cache)s, in
/// turn (a factory of connections that are both store and backplane).
pub async fn run_cache<S: Store + Backplane>(connect: impl Connect<S>) {
    cache_shares_entries(&connect).await;
    cache_invalidation_seen_elsewhere(&connect).await;
    cache_loads_once_across_instances(&connect).await;
    cache_versions_monotonic(&connect).await;
}
