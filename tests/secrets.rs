//! No password of a Redis URL is ever shown: every URL form redis-rs reads
//! (and malformed or misspelled ones), through `build()` (an error, or a
//! degraded cache's health and logs), `env_from` errors and the builder's
//! `Debug`. The password is two distinctive halves, so a password cut by an
//! unencoded `@`, `/`, `?`, `#` or `&` is caught too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::{Cache, CacheBuilder};
use integration_tests::redis_harness::RedisServer;

/// The password's halves: neither may appear in anything shown.
const HALVES: [&str; 2] = ["Zq9Sec", "retXy"];

/// Every URL form, with `{pw}` for the whole password (`Zq9SecretXy`) and
/// `{tcp}` for an address nothing listens on.
const FORMS: &[&str] = &[
    "redis://:{pw}@{tcp}",
    "redis://user:{pw}@{tcp}/0",
    "redis://default:{pw}@{tcp}/",
    "rediss://:{pw}@{tcp}",
    "rediss://user:{pw}@{tcp}/#insecure",
    "valkey://:{pw}@{tcp}",
    "valkeys://user:{pw}@{tcp}",
    "redis://:Zq9Sec%40retXy@{tcp}",
    "redis://us%40er:Zq9Sec%2FretXy@{tcp}",
    "redis://:Zq9Sec%23ret%3FXy@{tcp}",
    "redis://:Zq9Sec@retXy@{tcp}",
    "redis://:Zq9Sec/retXy@{tcp}",
    "redis://:Zq9Sec?retXy@{tcp}",
    "redis://:Zq9Sec#retXy@{tcp}",
    "redis://:{pw}@{tcp}/abc",
    "redis://:{pw}@127.0.0.1:notaport",
    "redis://:{pw}@0.0.0.0:1",
    "redis://:{pw}@{tcp}/0?protocol=bogus",
    "redis://{pw}@{tcp}",
    "redis://{tcp}/?pass={pw}",
    "redis+unix:///nonexistent-zq/redis.sock?pass={pw}",
    "redis+unix:///nonexistent-zq/redis.sock?user=app&pass={pw}",
    "redis+unix:///nonexistent-zq/redis.sock?pass={pw}&user=app&db=2",
    "unix:///nonexistent-zq/redis.sock?pass={pw}",
    "unix:///nonexistent-zq/redis.sock?pass={pw}&db=abc",
    "unix:///nonexistent-zq/redis.sock?PASS={pw}",
    "unix:///nonexistent-zq/redis.sock?password={pw}",
    "valkey+unix:///nonexistent-zq/redis.sock?pass={pw}",
    "redis+unix:///nonexistent-zq/redis.sock?pass=Zq9Sec%26retXy",
    "redis+unix:///nonexistent-zq/redis.sock?pass=Zq9Sec@retXy",
    "redis+unix:///nonexistent-zq/redis.sock?pass=Zq9Sec#retXy",
    "redis+unix:///nonexistent-zq/redis.sock?p%61ss={pw}",
    "redis+unix:///nonexistent-zq/redis.sock?pass=Zq9Sec+retXy",
    "redis+unix:///nonexistent-zq/redis.sock?pass=Zq9Sec&retXy",
    "redis+unix://{pw}",
    "https://:{pw}@{tcp}",
    "redis:/:{pw}@{tcp}",
    // A server that answers, with the wrong password.
    "redis://:{pw}@{live}",
    "redis://default:{pw}@{live}",
    "redis+unix:///nonexistent-zq/redis.sock?pass={pw}&user=default",
];

#[path = "captured_logs.rs"]
mod captured_logs;

/// Every log line of this binary, DEBUG and above.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    captured_logs::global(tracing::Level::DEBUG)
}

/// The log written since `from` bytes.
fn logged_since(from: usize) -> (String, usize) {
    let logs = logs().lock().unwrap();
    (
        String::from_utf8_lossy(&logs[from..]).into_owned(),
        logs.len(),
    )
}

/// Builds that succeeded with the server unreachable (or refusing).
static DEGRADED: AtomicUsize = AtomicUsize::new(0);

fn quick(builder: CacheBuilder) -> CacheBuilder {
    builder
        .memory(10)
        .remote_timeout(Duration::from_millis(100))
}

/// What a user may see of a cache built with `builder`: the error, or the
/// health, the health report (Debug and JSON) and the cache's Debug.
async fn shown_by_build(builder: CacheBuilder, out: &mut Vec<String>) {
    match builder.build().await {
        Err(e) => out.push(format!("{e} / {e:?}")),
        Ok(cache) => {
            DEGRADED.fetch_add(1, Ordering::Relaxed);
            let health = cache.health().await;
            out.push(format!("{health:?}"));
            out.push(serde_json::to_string(&health).unwrap());
            let report = cache.health_report().await;
            out.push(format!("{report:?}"));
            out.push(serde_json::to_string(&report).unwrap());
            out.push(format!("{cache:?}"));
        }
    }
}

/// Everything shown for `url`: builds, env errors, builder Debug, logs.
async fn shown_for(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let builder = quick(Cache::builder()).redis(url);
    out.push(format!("{builder:?}"));
    shown_by_build(builder, &mut out).await;
    let seeds = [url.to_string(), "redis://127.0.0.1:1".to_string()];
    let cluster = quick(Cache::builder()).redis_cluster(seeds.clone());
    out.push(format!("{cluster:?}"));
    shown_by_build(cluster, &mut out).await;
    for (name, value) in [
        ("REDIS_URL", url.to_string()),
        ("REDIS_CLUSTER_URLS", seeds.join(",")),
    ] {
        match quick(Cache::builder()).env_from([(name, value.as_str())]) {
            Err(e) => out.push(format!("{e} / {e:?}")),
            Ok(builder) => {
                out.push(format!("{builder:?}"));
                shown_by_build(builder, &mut out).await;
            }
        }
    }
    out
}

fn leaks(text: &str) -> bool {
    HALVES.iter().any(|half| text.contains(half))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_url_form_shows_its_password() {
    let server = RedisServer::start_with_password("the-right-one");
    let live = format!("127.0.0.1:{}", server.port());
    let mut from = logged_since(0).1;
    let mut leaking = Vec::new();
    for form in FORMS {
        let url = form
            .replace("{pw}", "Zq9SecretXy")
            .replace("{tcp}", "127.0.0.1:1")
            .replace("{live}", &live);
        assert!(leaks(&url), "{url}: the form has no password in it");
        let mut shown = shown_for(&url).await;
        let (log, end) = logged_since(from);
        from = end;
        shown.push(log);
        if let Some(text) = shown.iter().find(|t| leaks(t)) {
            leaking.push(format!("{url}\n    shows: {text}"));
        }
    }
    // Background reconnects of the caches above log at DEBUG: a last look.
    let (late, _) = logged_since(from);
    assert!(!leaks(&late), "a late log line shows a password:\n{late}");
    let degraded = DEGRADED.load(Ordering::Relaxed);
    println!(
        "{} of {} URL forms show their password; {degraded} builds ran degraded",
        leaking.len(),
        FORMS.len()
    );
    // The health and log paths were taken, not only build errors.
    assert!(degraded >= FORMS.len(), "{degraded} degraded builds");
    let (all, _) = logged_since(0);
    assert!(all.contains("WARN"), "no warning logged:\n{all}");
    assert!(
        leaking.is_empty(),
        "{} of {} URL forms show their password:\n{}",
        leaking.len(),
        FORMS.len(),
        leaking.join("\n")
    );
}
