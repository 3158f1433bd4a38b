//! `lock = "distributed"` and the lock API, against a real Redis: one load per
//! key across caches and across processes; a dead holder's lock is taken over.

use std::process::Command;
use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};
use integration_tests::redis_harness::RedisServer;
use integration_tests::{write_through, Calls};
use tokio::time::sleep;

static ACROSS: Calls = Calls::new();
#[cached(cache = cache, key = "cold", ttl = "1h")]
async fn cold(cache: &Cache) -> usize {
    let n = ACROSS.hit();
    sleep(Duration::from_millis(300)).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_caches_times_sixteen_tasks_load_once() {
    let server = RedisServer::start();
    let mut caches = Vec::new();
    for _ in 0..4 {
        caches.push(write_through(&server, "across").await);
    }
    let mut tasks = Vec::new();
    for cache in &caches {
        for _ in 0..16 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move { cold(&cache).await }));
        }
    }
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            0,
            "every caller got the one load's value"
        );
    }
    assert_eq!(ACROSS.get(), 1);
}

static ORPHAN: Calls = Calls::new();
#[cached(cache = cache, key = "orphan", ttl = "1h")]
async fn orphan(cache: &Cache) -> usize {
    ORPHAN.hit()
}

#[tokio::test]
async fn a_dead_holders_lock_is_taken_over_when_it_expires() {
    let server = RedisServer::start();
    let cache = write_through(&server, "dead").await;
    // A holder that died: it took the key's load lock and never released it.
    // (Written directly: a load's lock `{ns}#load:{key}` is apart from every
    // name `Cache::lock` can take.)
    let set = server.cli(&[
        "SET",
        "dead#load:orphan",
        "another-process",
        "NX",
        "PX",
        "600",
    ]);
    assert_eq!(set.trim(), "OK");
    let started = Instant::now();
    assert_eq!(orphan(&cache).await, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "it waited for the holder: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "and took over at expiry: {waited:?}"
    );
}

#[tokio::test]
async fn the_lock_api_excludes_extends_and_releases() {
    let server = RedisServer::start();
    let a = write_through(&server, "locks").await;
    let b = write_through(&server, "locks").await;
    let guard = a
        .lock("job", Duration::from_millis(300), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(b
        .try_lock("job", Duration::from_secs(1))
        .await
        .unwrap()
        .is_none());
    assert!(guard.extend(Duration::from_secs(2)).await.unwrap());
    sleep(Duration::from_millis(500)).await;
    assert!(
        b.try_lock("job", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none(),
        "extended past its first TTL"
    );
    assert!(guard.release().await.unwrap());
    let again = b.try_lock("job", Duration::from_secs(1)).await.unwrap();
    assert!(again.is_some(), "released");
    drop(again);
    sleep(Duration::from_millis(200)).await;

    let out = a
        .with_lock(
            "job",
            Duration::from_secs(1),
            Duration::from_secs(2),
            || async {
                assert!(b
                    .try_lock("job", Duration::from_secs(1))
                    .await
                    .unwrap()
                    .is_none());
                42
            },
        )
        .await
        .unwrap();
    assert_eq!(out, 42);
    assert!(b
        .try_lock("job", Duration::from_secs(1))
        .await
        .unwrap()
        .is_some());

    let memory_only = Cache::memory(10);
    assert!(memory_only
        .try_lock("x", Duration::from_secs(1))
        .await
        .is_err());
}

#[test]
fn four_processes_times_sixteen_tasks_load_once() {
    let server = RedisServer::start();
    let worker = env!("CARGO_BIN_EXE_cache-worker");
    let spawned: Vec<_> = (0..4)
        .map(|_| {
            Command::new(worker)
                .args([server.url().as_str(), "procs", "k2"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    for child in spawned {
        let out = child.wait_with_output().expect("worker output");
        assert!(out.status.success(), "worker failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let values: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(values.len(), 16, "{text}");
        assert!(
            values.iter().all(|v| *v == "1"),
            "every task got the one run: {text}"
        );
    }
    assert_eq!(
        server.cli(&["GET", "runs:k2"]).trim(),
        "1",
        "the function ran once in all"
    );
}
