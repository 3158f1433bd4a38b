//! The read path's fault tests, deterministic: the in-process store with
//! injected faults, tokio's paused time, and barriers (the store's own call
//! counts, `Notify`) instead of the `sleep`s that decide order in the Redis
//! versions (tests/invalidation_faults.rs, tests/tags.rs,
//! tests/single_flight.rs), which stay.
//!
//! Every test runs on one thread with paused time: timers fire in a fixed
//! order and the clock moves only when every task waits, so a bound on
//! tokio's clock ("seen within 1.3 s") is the same on every run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::store::in_process::{InProcessNode, InProcessStore, InjectedFault, Op};
use cache_runtime::store::{
    CounterStore, EntryStore, Fetch, Fetched, LockStore, ScanStore, StoreError, TagStore,
};
use cache_runtime::{Cache, Error, Policy};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// One process: its cache and its handles on the store (shared with the
/// cache, so faults injected here hit the cache's calls).
struct Process {
    cache: Cache,
    store: InProcessStore,
    bus: InProcessStore,
}

async fn process(backend: &InProcessStore, ns: &str, memory: bool, timeout: Duration) -> Process {
    let (store, bus) = (backend.connect(), backend.connect());
    let builder = Cache::builder()
        .namespace(ns)
        .store(store.clone())
        .backplane(bus.clone())
        .remote_timeout(timeout)
        // The breaker is on the wall clock; keep it closed.
        .breaker(1_000, Duration::from_millis(200));
    let builder = if memory {
        builder.memory(1000)
    } else {
        builder
    };
    let cache = builder.build().await.expect("an in-process store connects");
    Process { cache, store, bus }
}

/// The "database": the value a load returns.
#[derive(Clone, Default)]
struct Db(Arc<AtomicU64>);

impl Db {
    fn new() -> Db {
        Db(Arc::new(AtomicU64::new(1)))
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `item:1`, tagged `item:1`, loaded from `db`.
async fn item(cache: &Cache, db: &Db) -> u64 {
    let db = db.clone();
    cache
        .get_or_load("item:1", &Policy::new(), ["item:1"], || async move {
            Ok::<_, String>(db.get())
        })
        .await
        .expect("the load does not fail")
}

/// Waits (on tokio's clock, 1 ms at a time) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

/// The in-process store with its `fetch` replies held at a gate: while
/// the gate is closed a fetch runs on the backend at once (it sees the
/// versions of that moment) but its reply waits, as a frozen Redis runs the
/// queued read before the later `INCR` and answers both on thaw.
#[derive(Clone)]
struct HeldReplies {
    inner: InProcessStore,
    open: Arc<watch::Sender<bool>>,
    held: Arc<AtomicU64>,
}

impl HeldReplies {
    fn new(inner: InProcessStore) -> HeldReplies {
        HeldReplies {
            inner,
            open: Arc::new(watch::Sender::new(true)),
            held: Arc::default(),
        }
    }
    fn close(&self) {
        self.open.send_replace(false);
    }
    fn open(&self) {
        self.open.send_replace(true);
    }
    /// Replies held so far (the barrier: a read has been answered).
    fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }
}

impl EntryStore for HeldReplies {
    async fn fetch(&self, request: Fetch<'_>) -> Result<Fetched, StoreError> {
        let reply = self.inner.fetch(request).await;
        let mut open = self.open.subscribe();
        if !*open.borrow_and_update() {
            self.held.fetch_add(1, Ordering::SeqCst);
            let _ = open.wait_for(|open| *open).await;
        }
        reply
    }
    async fn fetch_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.fetch_many(keys).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        self.inner.put(key, bytes, ttl).await
    }
    async fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> Result<(), StoreError> {
        self.inner.put_many(items).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn take_repairs(&self) -> u64 {
        self.inner.take_repairs()
    }
}

impl TagStore for HeldReplies {
    async fn versions(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        self.inner.versions(tag_keys).await
    }
    async fn bump(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        self.inner.bump(tag_keys).await
    }
}

impl LockStore for HeldReplies {
    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.try_lock(key, token, ttl).await
    }
    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.extend_lock(key, token, ttl).await
    }
    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        self.inner.unlock(key, token).await
    }
}

impl CounterStore for HeldReplies {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, delta).await
    }
}

impl ScanStore for HeldReplies {
    type Node = InProcessNode;
    async fn scan_nodes(&self) -> Result<Vec<InProcessNode>, StoreError> {
        self.inner.scan_nodes().await
    }
}

/// As tests/invalidation_faults.rs's test of the same name, where Redis is
/// frozen and `sleep`s order the read, the invalidation and the thaw: the
/// read's reply (the entry and versions from before the invalidation) is
/// held at a gate, the invalidation starts once it is held, and the gate
/// opens once the invalidation is confirmed.
#[tokio::test(start_paused = true)]
async fn a_read_in_flight_during_an_invalidation_never_serves_the_old_value_after_it() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_secs(3);
    let held = HeldReplies::new(backend.connect());
    let x = Cache::builder()
        .namespace("racing")
        .memory(1000)
        .store(held.clone())
        .backplane(backend.connect())
        .remote_timeout(timeout)
        .breaker(1_000, Duration::from_millis(200))
        .build()
        .await
        .expect("an in-process store connects");
    let y = process(&backend, "racing", true, timeout).await;
    let db = Db::new();
    assert_eq!(item(&y.cache, &db).await, 1, "y stores version 1");

    held.close();
    let reader = {
        let (cache, db) = (x.clone(), db.clone());
        tokio::spawn(async move { item(&cache, &db).await })
    };
    until("x's read is answered (and held)", || held.held() >= 1).await;
    db.bump();
    let bumps = backend.backend_counts().get(Op::Bump);
    let invalidator = {
        let x = x.clone();
        tokio::spawn(async move { x.invalidate_tags(["item:1"]).await })
    };
    until("the store has the invalidation", || {
        backend.backend_counts().get(Op::Bump) > bumps
    })
    .await;
    held.open();
    // Its caller may get either value (the reply is from before the
    // invalidation, which is already in force here); what counts is after.
    let _ = reader.await.expect("reader");
    invalidator
        .await
        .expect("invalidator")
        .expect("the store confirms the invalidation");

    for _ in 0..100 {
        assert_eq!(item(&x, &db).await, 2, "a read after the invalidation");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// As tests/invalidation_faults.rs's
/// `an_unconfirmed_invalidation_holds_locally_and_reaches_redis_later`:
/// the store stops answering (every call hangs until the cache's timeout)
/// during an invalidation; it is queued, in force locally, and lands once
/// the store answers again.
#[tokio::test(start_paused = true)]
async fn an_unconfirmed_invalidation_holds_locally_and_reaches_the_store_later() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_millis(150);
    let through = process(&backend, "frozen", true, timeout).await;
    let storage = process(&backend, "frozen", false, timeout).await;
    let other = process(&backend, "frozen", false, Duration::from_secs(2)).await;
    let db = Db::new();
    assert_eq!(item(&through.cache, &db).await, 1);
    assert_eq!(
        item(&storage.cache, &db).await,
        1,
        "read back from the store"
    );

    for p in [&through, &storage] {
        p.store.faults().time_out_next(u64::MAX);
    }
    db.bump();
    for p in [&through, &storage] {
        let started = Instant::now();
        let error = p
            .cache
            .invalidate_tags(["item:1"])
            .await
            .expect_err("the store does not answer");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(error, Error::InvalidationQueued { tags: 1, .. }),
            "{error:?}"
        );
        assert!(p.cache.stats().pending_invalidations >= 1);
        assert_eq!(p.cache.stats().invalidation_failures, 1);
    }
    // The store still holds version 1; neither process serves it.
    for p in [&through, &storage] {
        assert_eq!(item(&p.cache, &db).await, 2);
        assert_eq!(item(&p.cache, &db).await, 2);
    }

    for p in [&through, &storage] {
        p.store.faults().clear();
    }
    until("the queues drain", || {
        through.cache.stats().pending_invalidations == 0
            && storage.cache.stats().pending_invalidations == 0
    })
    .await;
    assert_eq!(
        through
            .cache
            .flush_invalidations(Duration::from_secs(1))
            .await,
        0
    );
    assert_eq!(
        item(&other.cache, &db).await,
        2,
        "the invalidation reached the store"
    );
}

/// The store refuses the bump a few times (connection errors): the queued
/// invalidation is retried until it lands, with no help from the test.
#[tokio::test(start_paused = true)]
async fn a_failed_invalidation_is_retried_until_it_lands() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_millis(150);
    let a = process(&backend, "retried", true, timeout).await;
    let b = process(&backend, "retried", false, timeout).await;
    let db = Db::new();
    assert_eq!(item(&a.cache, &db).await, 1);

    a.store
        .faults()
        .fail_next_of(Op::Bump, 3, InjectedFault::Connection);
    db.bump();
    let error = a
        .cache
        .invalidate_tags(["item:1"])
        .await
        .expect_err("refused");
    assert!(
        matches!(error, Error::InvalidationQueued { tags: 1, .. }),
        "{error:?}"
    );
    assert_eq!(item(&a.cache, &db).await, 2, "in force here at once");
    assert_eq!(item(&b.cache, &db).await, 1, "not yet in the store");

    until("the retried invalidation lands", || {
        a.cache.stats().pending_invalidations == 0
    })
    .await;
    assert!(
        a.store.counts().get(Op::Bump) >= 4,
        "three refusals, then a bump"
    );
    assert_eq!(item(&b.cache, &db).await, 2, "the other process sees it");
}

/// As tests/invalidation_faults.rs's
/// `a_lost_message_leaves_memory_stale_for_about_a_second_at_most`: the
/// other process's backplane loses the message; its memory tier drops the
/// entry by confirming the tag's version, within 1.3 s of tokio's clock.
#[tokio::test(start_paused = true)]
async fn a_lost_message_leaves_memory_stale_for_about_a_second_at_most() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_millis(250);
    let a = process(&backend, "lostmsg", true, timeout).await;
    let b = process(&backend, "lostmsg", true, timeout).await;
    let db = Db::new();
    assert_eq!(item(&b.cache, &db).await, 1);
    assert_eq!(item(&b.cache, &db).await, 1);
    assert!(b.cache.stats().hits >= 1, "served from memory");

    b.bus.faults().drop_messages(u64::MAX);
    db.bump();
    a.cache
        .invalidate_tags(["item:1"])
        .await
        .expect("confirmed");
    let took = seen_within(&b.cache, &db, 2).await;
    println!("seen after {took:?} of tokio's clock");
    assert!(took < Duration::from_millis(1300), "seen after {took:?}");
}

/// A message held back for longer than the confirmation takes is no worse
/// than a lost one.
#[tokio::test(start_paused = true)]
async fn a_delayed_message_leaves_memory_stale_for_about_a_second_at_most() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_millis(250);
    let a = process(&backend, "delayed", true, timeout).await;
    let b = process(&backend, "delayed", true, timeout).await;
    let db = Db::new();
    assert_eq!(item(&b.cache, &db).await, 1);

    b.bus.faults().delay_messages(Duration::from_secs(30));
    db.bump();
    a.cache
        .invalidate_tags(["item:1"])
        .await
        .expect("confirmed");
    let took = seen_within(&b.cache, &db, 2).await;
    println!("seen after {took:?} of tokio's clock");
    assert!(took < Duration::from_millis(1300), "seen after {took:?}");
}

/// How long (on tokio's clock) until `cache` serves `want`, reading every
/// 5 ms; fails past 3 s.
async fn seen_within(cache: &Cache, db: &Db, want: u64) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if item(cache, db).await == want {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{want} was not served within 3 s");
}

/// As tests/invalidation_faults.rs's (and tests/tags.rs's) load overtaken
/// by an invalidation, with a remote tier and a distributed lock: the early
/// load is held by a barrier instead of a 200 ms sleep; the later caller is
/// known to be waiting when the store has counted its lock attempt.
#[tokio::test(start_paused = true)]
async fn a_load_overtaken_by_an_invalidation_is_not_joined_or_served() {
    let backend = InProcessStore::new();
    let p = process(&backend, "overtaken", true, Duration::from_millis(250)).await;
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let early = {
        let (cache, started, release) = (p.cache.clone(), started.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("item:1", &Policy::new(), ["item:1"], || async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, String>(1u64)
                })
                .await
        })
    };
    started.notified().await;
    p.cache
        .invalidate_tags(["item:1"])
        .await
        .expect("confirmed");
    let locks = p.store.counts().get(Op::TryLock);
    let late = {
        let cache = p.cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("item:1", &Policy::new(), ["item:1"], || async {
                    Ok::<_, String>(2u64)
                })
                .await
        })
    };
    until("the later caller tries the lock", || {
        p.store.counts().get(Op::TryLock) > locks
    })
    .await;
    release.notify_one();
    assert_eq!(
        early.await.expect("early"),
        Ok(1),
        "the early caller's own value"
    );
    assert_eq!(
        late.await.expect("late"),
        Ok(2),
        "never handed the early value"
    );
    let db = Db(Arc::new(AtomicU64::new(3)));
    assert_eq!(
        item(&p.cache, &db).await,
        2,
        "the early load was born invalid"
    );
}

/// The memory-only form (tests/tags.rs's
/// `invalidation_during_a_load_is_not_lost`), ordered by barriers.
#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_memory_load_is_not_lost() {
    let cache = Cache::memory(100);
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let early = {
        let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("report", &Policy::new(), ["report"], || async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, String>(1u64)
                })
                .await
        })
    };
    started.notified().await;
    cache
        .invalidate_tags(["report"])
        .await
        .expect("memory only");
    let late = cache
        .get_or_load("report", &Policy::new(), ["report"], || async {
            Ok::<_, String>(2u64)
        })
        .await;
    assert_eq!(late, Ok(2), "a caller after the invalidation does not join");
    release.notify_one();
    assert_eq!(early.await.expect("early"), Ok(1));
    let again = cache
        .get_or_load("report", &Policy::new(), ["report"], || async {
            Ok::<_, String>(3u64)
        })
        .await;
    assert_ne!(again, Ok(1), "the early entry was born invalid");
}

/// A read that times out (the store never answers it) becomes a load after
/// the remote timeout of tokio's clock.
#[tokio::test(start_paused = true)]
async fn a_read_that_times_out_loads_after_the_remote_timeout() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_millis(100);
    let a = process(&backend, "timeout", true, timeout).await;
    let db = Db::new();
    a.store.faults().time_out_next_of(Op::Fetch, 1);
    let started = Instant::now();
    assert_eq!(item(&a.cache, &db).await, 1);
    let took = started.elapsed();
    println!("loaded after {took:?} of tokio's clock");
    assert!(took >= timeout && took < timeout * 3, "took {took:?}");
    assert_eq!(a.cache.stats().loads, 1);
    db.bump();
    assert_eq!(item(&a.cache, &db).await, 1, "a memory hit");
}

/// A process that holds the distributed load lock is cancelled mid-load:
/// the lock is released in the background and another process's waiting
/// caller loads, well within the lock's TTL; nothing waits on the wall
/// clock.
#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_over_to_another_process() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_millis(250);
    let a = process(&backend, "handover", true, timeout).await;
    let b = process(&backend, "handover", true, timeout).await;
    let started = Arc::new(Notify::new());
    let leader = {
        let (cache, started) = (a.cache.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("item:1", &Policy::new(), ["item:1"], || async move {
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok::<_, String>(1u64)
                })
                .await
        })
    };
    started.notified().await;
    let locks = b.store.counts().get(Op::TryLock);
    let waiter = {
        let cache = b.cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("item:1", &Policy::new(), ["item:1"], || async {
                    Ok::<_, String>(2u64)
                })
                .await
        })
    };
    until("the other process finds the lock taken", || {
        b.store.counts().get(Op::TryLock) > locks
    })
    .await;
    let cancelled = Instant::now();
    leader.abort();
    assert_eq!(waiter.await.expect("waiter"), Ok(2));
    let took = cancelled.elapsed();
    println!("handed over after {took:?} of tokio's clock");
    assert!(
        took < Duration::from_millis(500),
        "handed over after {took:?}"
    );
    assert!(
        a.store.counts().get(Op::Unlock) >= 1,
        "the lock was released"
    );
}

/// As tests/invalidation_faults.rs's
/// `a_refused_invalidation_keeps_redis_entries_out_until_it_lands` (an ACL
/// that refuses `INCR`): the store answers reads but refuses every bump;
/// until the invalidation lands, neither the storage-only nor the
/// write-through process serves the store's entry.
#[tokio::test(start_paused = true)]
async fn a_refused_invalidation_keeps_store_entries_out_until_it_lands() {
    let backend = InProcessStore::new();
    let timeout = Duration::from_millis(250);
    let storage = process(&backend, "refused", false, timeout).await;
    let through = process(&backend, "refused", true, timeout).await;
    let db = Db::new();
    assert_eq!(item(&storage.cache, &db).await, 1, "stored at version 1");
    assert_eq!(item(&through.cache, &db).await, 1);

    for p in [&storage, &through] {
        p.store
            .faults()
            .fail_next_of(Op::Bump, u64::MAX, InjectedFault::Backend);
    }
    db.bump();
    for p in [&storage, &through] {
        let error = p
            .cache
            .invalidate_tags(["item:1"])
            .await
            .expect_err("refused");
        assert!(
            matches!(error, Error::InvalidationQueued { .. }),
            "{error:?}"
        );
    }
    for _ in 0..3 {
        assert_eq!(item(&storage.cache, &db).await, 2, "storage-only");
        assert_eq!(item(&through.cache, &db).await, 2, "write-through");
    }
    for p in [&storage, &through] {
        p.store.faults().clear();
    }
    until("the queued invalidations land", || {
        storage.cache.stats().pending_invalidations == 0
            && through.cache.stats().pending_invalidations == 0
    })
    .await;
    assert_eq!(item(&storage.cache, &db).await, 2);
}

/// As tests/invalidation_faults.rs's `an_invalidation_survives_a_redis_restart`
/// (the server killed, then restarted on its port): the process is cut off
/// from the store (every call refused), invalidates, and the queued
/// invalidation lands once the partition heals.
#[tokio::test(start_paused = true)]
async fn an_invalidation_survives_a_partition() {
    let backend = InProcessStore::new();
    let p = process(&backend, "partition", true, Duration::from_millis(150)).await;
    let other = process(&backend, "partition", false, Duration::from_millis(150)).await;
    let db = Db::new();
    assert_eq!(item(&p.cache, &db).await, 1);

    p.store.faults().partition();
    p.bus.faults().partition();
    db.bump();
    let error = p
        .cache
        .invalidate_tags(["item:1"])
        .await
        .expect_err("cut off");
    assert!(
        matches!(error, Error::InvalidationQueued { .. }),
        "{error:?}"
    );
    assert_eq!(p.cache.stats().invalidation_failures, 1);
    assert_eq!(item(&p.cache, &db).await, 2, "in force here at once");
    assert_eq!(item(&other.cache, &db).await, 1, "not yet in the store");

    p.store.faults().heal();
    p.bus.faults().heal();
    until("the queued invalidation lands", || {
        p.cache.stats().pending_invalidations == 0
    })
    .await;
    assert_eq!(
        item(&other.cache, &db).await,
        2,
        "the other process sees it"
    );
}
