//! A worker process for the cross-process tests: `cache-worker <redis-url>
//! <namespace> <key>` runs 16 concurrent calls of a cached function on a cold
//! key and prints what each got. The function counts its runs in Redis.

use std::time::Duration;

use cache_runtime::{cached, Cache};

#[cached(cache = cache, key = "cold:{key}", ttl = "1h")]
async fn cold(cache: &Cache, counter: &redis::Client, key: &str) -> u64 {
    let mut conn = counter
        .get_multiplexed_async_connection()
        .await
        .expect("worker's counter connection");
    let runs: u64 = redis::cmd("INCR")
        .arg(format!("runs:{key}"))
        .query_async(&mut conn)
        .await
        .expect("INCR");
    tokio::time::sleep(Duration::from_millis(300)).await;
    runs
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, namespace, key] = args.as_slice() else {
        eprintln!("usage: cache-worker <redis-url> <namespace> <key>");
        std::process::exit(2);
    };
    let cache = Cache::builder()
        .namespace(namespace.as_str())
        .memory(100)
        .redis(url.as_str())
        .build()
        .await
        .expect("worker cache");
    let counter = redis::Client::open(url.as_str()).expect("counter client");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, counter, key) = (cache.clone(), counter.clone(), key.clone());
            tokio::spawn(async move { cold(&cache, &counter, &key).await })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.expect("task").to_string());
    }
    println!("{}", got.join(" "));
}
