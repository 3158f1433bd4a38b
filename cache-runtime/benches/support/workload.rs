//! The Redis benches' workload: 64 tasks, each hitting its own key, through a
//! storage-only `#[cached]` function or raw redis-rs `GET`s of the same
//! 100 bytes.

use cache_runtime::{cached, Cache};
use redis::aio::ConnectionManager;

/// Concurrent tasks of the throughput benches, one key each.
pub const TASKS: usize = 64;

/// The 100-byte value every key holds.
pub fn value() -> String {
    "v".repeat(100)
}

/// The cached function: a 100-byte value with two tags.
#[cached(cache = cache, key = "item:{id}", tags = ["item:{id}", "items"], ttl = "1h")]
pub async fn item(cache: &Cache, id: u64) -> String {
    let _ = id;
    value()
}

/// A storage-only cache (namespace `bench`) holding every task's item, and a
/// raw connection on which `raw:item:{id}` holds the same 100 bytes.
pub async fn prepare(url: String) -> (Cache, ConnectionManager) {
    let cache = Cache::builder()
        .namespace("bench")
        .redis(url.clone())
        .build()
        .await
        .expect("cache");
    let client = redis::Client::open(url).expect("client");
    let mut raw = ConnectionManager::new(client)
        .await
        .expect("raw connection");
    for id in 0..TASKS {
        item(&cache, id as u64).await;
        let _: () = redis::cmd("SET")
            .arg(format!("raw:item:{id}"))
            .arg(value().into_bytes())
            .query_async(&mut raw)
            .await
            .expect("SET");
    }
    (cache, raw)
}

/// `TASKS` tasks, `per_task` raw GETs each, each building an owned `String`
/// like the cached function's result.
pub async fn raw_gets(raw: &ConnectionManager, per_task: usize) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|id| {
            let mut conn = raw.clone();
            let key = format!("raw:item:{id}");
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let bytes: Vec<u8> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    assert_eq!(bytes.len(), 100);
                    std::hint::black_box(String::from_utf8(bytes).expect("utf8"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// `TASKS` tasks, `per_task` cached hits each.
pub async fn cached_hits(cache: &Cache, per_task: usize) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|id| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    std::hint::black_box(item(&cache, id as u64).await);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}
