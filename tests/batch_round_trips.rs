//! Batches in one round trip (issue 19, item 4): `get_many`, `set_many` and
//! `get_many_or_load` of 100 keys, counted on the in-process store's handle
//! of the calling process. Time is paused: injected latency then costs
//! virtual time only, and no background confirmation runs inside a call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::store::in_process::{Counts, InProcessStore, Op};
use cache_runtime::{Cache, Policy};
use tokio::sync::{oneshot, Notify};

/// Round trips that read entries or tag versions.
fn reads(c: &Counts) -> u64 {
    c.get(Op::Fetch) + c.get(Op::FetchMany) + c.get(Op::Versions)
}

/// Round trips that write entries.
fn writes(c: &Counts) -> u64 {
    c.get(Op::Put) + c.get(Op::PutMany)
}

/// A process (memory and the shared store) over its own handle to `backend`.
async fn process(backend: &InProcessStore) -> (Cache, InProcessStore) {
    let handle = backend.connect();
    let cache = Cache::builder()
        .memory(1000)
        .store(handle.clone())
        .namespace("batch")
        .build()
        .await
        .expect("cache builds");
    (cache, handle)
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

/// 100 keys: the even ones stored by another process, the odd ones nowhere.
async fn half_stored() -> (Cache, InProcessStore, Vec<String>) {
    let backend = InProcessStore::new();
    let (writer, _) = process(&backend).await;
    let all = keys(100);
    let even = all.iter().step_by(2).map(|k| (k.clone(), 7u32));
    writer
        .set_many(even, &Policy::new())
        .await
        .expect("set_many");
    let (cache, handle) = process(&backend).await;
    (cache, handle, all)
}

fn loader_of(
    calls: &Arc<AtomicUsize>,
) -> impl FnOnce(Vec<String>) -> std::future::Ready<Result<HashMap<String, u32>, String>> {
    let calls = calls.clone();
    move |missing: Vec<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(missing.into_iter().map(|k| (k, 9)).collect()))
    }
}

#[tokio::test(start_paused = true)]
async fn get_many_or_load_reads_once_loads_once_and_writes_once() {
    let (cache, handle, all) = half_stored().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let before = handle.counts();
    let got = cache
        .get_many_or_load(&all, &Policy::new(), loader_of(&calls))
        .await
        .expect("loads");
    let spent = handle.counts().since(&before);
    let want: Vec<Option<u32>> = (0..100)
        .map(|i| Some(if i % 2 == 0 { 7 } else { 9 }))
        .collect();
    assert_eq!(got, want);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one loader call");
    assert_eq!(reads(&spent), 1, "one read round trip: {spent:?}");
    assert_eq!(writes(&spent), 1, "one write round trip: {spent:?}");
    assert_eq!(spent.total(), 2, "nothing else: {spent:?}");
    // Now all in memory: no round trip, no load.
    let before = handle.counts();
    let again = cache
        .get_many_or_load(&all, &Policy::new(), loader_of(&calls))
        .await
        .expect("hits");
    assert_eq!(again, want);
    assert_eq!(handle.counts().since(&before).total(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn get_many_or_load_of_100_keys_costs_a_few_round_trips_of_latency() {
    let (cache, handle, all) = half_stored().await;
    handle.faults().latency(Duration::from_millis(3));
    let calls = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    cache
        .get_many_or_load(&all, &Policy::new(), loader_of(&calls))
        .await
        .expect("loads");
    let took = started.elapsed();
    // Two round trips (a read and a write) of 3 ms, not 150.
    assert!(took <= Duration::from_millis(9), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn get_many_and_set_many_cost_one_round_trip() {
    let (cache, handle, all) = half_stored().await;
    let before = handle.counts();
    let got = cache.get_many::<u32, _>(&all).await.expect("get_many");
    let spent = handle.counts().since(&before);
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), 50);
    assert_eq!(reads(&spent), 1, "{spent:?}");
    assert_eq!(spent.total(), 1, "{spent:?}");
    let before = handle.counts();
    let items = all.iter().map(|k| (k.clone(), 1u32));
    cache
        .set_many(items, &Policy::new())
        .await
        .expect("set_many");
    let spent = handle.counts().since(&before);
    assert_eq!(writes(&spent), 1, "{spent:?}");
    // And the key-write sequence number other processes order by.
    assert_eq!(spent.get(Op::Increment), 1, "{spent:?}");
    assert_eq!(spent.total(), 2, "{spent:?}");
}

/// A single `get_or_load` of a key the batch is loading waits for the
/// batch's load instead of loading the key a second time.
#[tokio::test(start_paused = true)]
async fn a_single_load_joins_the_batch_flight() {
    let (cache, _handle, all) = half_stored().await;
    let (started_tx, started_rx) = oneshot::channel();
    let release = Arc::new(Notify::new());
    let batch = {
        let (cache, all, release) = (cache.clone(), all.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_many_or_load(&all, &Policy::new(), |missing: Vec<String>| async move {
                    let _ = started_tx.send(());
                    release.notified().await;
                    Ok::<_, String>(missing.into_iter().map(|k| (k, 9u32)).collect())
                })
                .await
        })
    };
    started_rx.await.expect("the batch loader runs");
    let single_loads = Arc::new(AtomicUsize::new(0));
    let single = {
        let (cache, single_loads) = (cache.clone(), single_loads.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("k1", &Policy::new(), [] as [&str; 0], || async move {
                    single_loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(1u32)
                })
                .await
        })
    };
    // The single call waits on the batch's flight before the batch ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cache.stats().coalesced == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never coalesced");
        tokio::task::yield_now().await;
    }
    release.notify_one();
    let got = batch.await.expect("batch task").expect("batch");
    assert_eq!(got[1], Some(9));
    assert_eq!(single.await.expect("single task"), Ok(9));
    assert_eq!(single_loads.load(Ordering::SeqCst), 0);
}

/// The other way round: a batch waits for a single load already running.
#[tokio::test(start_paused = true)]
async fn the_batch_joins_a_running_single_load() {
    let (cache, _handle, all) = half_stored().await;
    let (started_tx, started_rx) = oneshot::channel();
    let release = Arc::new(Notify::new());
    let single = {
        let (cache, release) = (cache.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("k1", &Policy::new(), [] as [&str; 0], || async move {
                    let _ = started_tx.send(());
                    release.notified().await;
                    Ok::<_, String>(1u32)
                })
                .await
        })
    };
    started_rx.await.expect("the single loader runs");
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let batch = {
        let (cache, all, asked) = (cache.clone(), all.clone(), asked.clone());
        tokio::spawn(async move {
            cache
                .get_many_or_load(&all, &Policy::new(), |missing: Vec<String>| async move {
                    asked.lock().unwrap().extend(missing.iter().cloned());
                    Ok::<_, String>(missing.into_iter().map(|k| (k, 9u32)).collect())
                })
                .await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cache.stats().coalesced == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never coalesced");
        tokio::task::yield_now().await;
    }
    release.notify_one();
    assert_eq!(single.await.expect("single task"), Ok(1));
    let got = batch.await.expect("batch task").expect("batch");
    assert_eq!(got[1], Some(1));
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 49, "every odd key but k1");
    assert!(!asked.contains(&"k1".to_string()));
}

/// A batch of 100 keys (50 stored, 50 loaded) against 100 sequential
/// `get_or_load`s of the same shape, through `proxy` (holding every chunk
/// 3 ms) to a real server; `build` makes a process's cache. Wall time,
/// measured: the batch is a few round trips, the sequential calls at least
/// 100. Returns (batch, sequential).
async fn batch_against_sequential<B, F>(
    proxy: &integration_tests::fault_proxy::FaultProxy,
    build: B,
) -> (Duration, Duration)
where
    B: Fn() -> F,
    F: std::future::Future<Output = Cache>,
{
    let (writer, batch_reader, single_reader) = (build().await, build().await, build().await);
    for cache in [&writer, &batch_reader, &single_reader] {
        // Connected before anything is timed.
        cache.set("warm", 0u32).await.expect("the server answers");
    }
    let batch_keys: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    let single_keys: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
    for all in [&batch_keys, &single_keys] {
        let even = all.iter().step_by(2).map(|k| (k.clone(), 7u32));
        writer
            .set_many(even, &Policy::new())
            .await
            .expect("set_many");
    }
    proxy.set_delay(Duration::from_millis(3));

    let started = std::time::Instant::now();
    let got = batch_reader
        .get_many_or_load(
            &batch_keys,
            &Policy::new(),
            |missing: Vec<String>| async move {
                Ok::<_, String>(missing.into_iter().map(|k| (k, 9u32)).collect())
            },
        )
        .await
        .expect("batch");
    let batch = started.elapsed();
    assert!(got.iter().all(Option::is_some));

    let started = std::time::Instant::now();
    for key in &single_keys {
        let v: Result<u32, String> = single_reader
            .get_or_load(key, &Policy::new(), [] as [&str; 0], || async { Ok(9) })
            .await;
        v.expect("single");
    }
    let sequential = started.elapsed();
    proxy.set_delay(Duration::ZERO);
    assert!(
        sequential >= Duration::from_millis(300),
        "100 round trips of at least 3 ms: {sequential:?}"
    );
    assert!(batch * 10 < sequential, "batch {batch:?} vs {sequential:?}");
    (batch, sequential)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_batch_is_a_few_round_trips_not_one_per_key() {
    use integration_tests::fault_proxy::FaultProxy;
    use integration_tests::redis_harness::RedisServer;
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let url = proxy.redis_url();
    let build = || async {
        Cache::builder()
            .namespace("rb")
            .memory(1000)
            .redis(&url)
            .build()
            .await
            .expect("cache builds")
    };
    let (batch, sequential) = batch_against_sequential(&proxy, build).await;
    println!("redis, +3 ms per chunk: get_many_or_load of 100 keys {batch:?}, 100 get_or_load {sequential:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_batch_is_a_few_round_trips_not_one_per_key() {
    use integration_tests::fault_proxy::FaultProxy;
    use integration_tests::pg_harness::PgDatabase;
    let db = PgDatabase::start();
    let proxy = FaultProxy::to_port(db.port());
    let url = db
        .url()
        .replace(&format!(":{}/", db.port()), &format!(":{}/", proxy.port()));
    let build = || async {
        Cache::builder()
            .namespace("pb")
            .memory(1000)
            .postgres(&url)
            .build()
            .await
            .expect("cache builds")
    };
    let (batch, sequential) = batch_against_sequential(&proxy, build).await;
    println!("postgres, +3 ms per chunk: get_many_or_load of 100 keys {batch:?}, 100 get_or_load {sequential:?}");
}
