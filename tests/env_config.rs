//! Configuration from the environment (`Cache::from_env`, `CacheBuilder::env`
//! and `env_from`), the disabled switch, remote retries after a connection
//! fault, and `Stats` / `Health` as JSON.
//!
//! Only `from_env_reads_the_process_environment` reads the process's
//! environment, and only in child processes it starts with the variables
//! set: no test here calls `set_var`, so none can race another.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::{cached, Cache, Policy, StoreError};
use integration_tests::redis_harness::RedisServer;
use integration_tests::Calls;

/// Set in the child processes of `from_env_reads_the_process_environment`:
/// which scenario the child checks.
const CHILD: &str = "ENV_CONFIG_CHILD";

/// Runs this test binary's test `name` alone in a child process with only
/// `vars` in its environment; panics with its output unless it passed.
fn run_child(name: &str, scenario: &str, vars: &[(&str, String)]) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env_clear()
        .env(CHILD, scenario)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // "1 passed": the child really ran the test, not a filtered-out nothing.
    assert!(
        output.status.success() && text.contains("1 passed"),
        "child scenario {scenario} failed:\n{text}"
    );
}

#[tokio::test]
async fn from_env_reads_the_process_environment() {
    match std::env::var(CHILD).ok().as_deref() {
        None => {}
        Some(scenario) => return child(scenario).await,
    }
    let name = "from_env_reads_the_process_environment";
    run_child(name, "defaults", &[]);
    run_child(
        name,
        "malformed",
        &[("CACHE_DEFAULT_TTL", "soon".to_string())],
    );
    let server = RedisServer::start_with_password("p4ssw0rd-env");
    run_child(
        name,
        "storage-only",
        &[
            ("REDIS_URL", server.url()),
            ("CACHE_NAMESPACE", "fromenv".to_string()),
            ("CACHE_MEMORY_CAPACITY", "0".to_string()),
            ("CACHE_DEFAULT_TTL", "90s".to_string()),
        ],
    );
    // The child wrote through the variables' namespace, with their TTL.
    let keys = server.cli(&["KEYS", "fromenv:*"]);
    let key = keys
        .lines()
        .next()
        .expect("the child's entry in Redis")
        .trim();
    let ttl: i64 = server.cli(&["PTTL", key]).trim().parse().expect("a PTTL");
    assert!((80_000..=90_000).contains(&ttl), "PTTL {ttl}");
}

/// The checks of one child scenario, with the variables set by the parent.
async fn child(scenario: &str) {
    match scenario {
        "defaults" => {
            let cache = Cache::from_env().await.expect("nothing set is fine");
            assert_eq!(cache.namespace(), "cache");
            assert!(cache.health().await.is_none(), "no remote tier");
            cache.set("k", 1u32).await.unwrap();
            assert_eq!(cache.memory_len(), 1, "a memory tier");
            assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
        }
        "malformed" => {
            let error = Cache::from_env().await.expect_err("soon is no duration");
            let text = error.to_string();
            assert!(
                text.contains("CACHE_DEFAULT_TTL") && text.contains("soon"),
                "{text}"
            );
        }
        "storage-only" => {
            let cache = Cache::from_env().await.expect("connects to REDIS_URL");
            assert_eq!(cache.namespace(), "fromenv");
            cache.set("k", 7u32).await.unwrap();
            assert_eq!(cache.memory_len(), 0, "CACHE_MEMORY_CAPACITY=0");
            assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(7));
            assert!(cache.health().await.expect("a remote tier").connected);
        }
        other => panic!("unknown scenario {other}"),
    }
}

static DISABLED_CALLS: Calls = Calls::new();
#[cached(cache = cache, key = "n:{n}")]
async fn counted(cache: &Cache, n: u32) -> u32 {
    DISABLED_CALLS.hit();
    n * 2
}

#[tokio::test]
async fn cache_disabled_runs_every_call_and_stores_nothing() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .memory(100)
        .redis(server.url())
        .env_from([("CACHE_DISABLED", "true")])
        .unwrap()
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(counted(&cache, 4).await, 8);
    }
    assert_eq!(DISABLED_CALLS.get(), 3, "every call ran its function");

    cache.set("manual", 1u32).await.unwrap();
    assert_eq!(cache.get::<u32>("manual").await.unwrap(), None);
    let loads = Calls::new();
    for _ in 0..2 {
        let v: Result<u32, ()> = cache
            .get_or_load("loaded", &Policy::new(), ["t"], || async {
                loads.hit();
                Ok(5)
            })
            .await;
        assert_eq!(v, Ok(5));
    }
    assert_eq!(loads.get(), 2);
    cache.invalidate_tags(["t"]).await.unwrap();

    assert_eq!(cache.memory_len(), 0);
    assert_eq!(server.dbsize(), 0, "nothing reached Redis");
    assert!(cache.health().await.is_none(), "no remote tier was built");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.hit_ratio()), (0, 0.0));
    assert!(stats.misses >= 5 && stats.loads >= 3, "{stats:?}");

    // The same settings, enabled: the function runs once.
    let enabled = Cache::builder()
        .memory(100)
        .redis(server.url())
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(counted(&enabled, 5).await, 10);
    }
    assert_eq!(DISABLED_CALLS.get(), 4);
    assert!(server.dbsize() > 0);
}

static BARRIER_CALLS: Calls = Calls::new();
#[cached(cache = cache, key = "same")]
async fn meets(cache: &Cache, barrier: Arc<tokio::sync::Barrier>) -> u32 {
    BARRIER_CALLS.hit();
    barrier.wait().await;
    1
}

#[tokio::test]
async fn a_disabled_cache_joins_no_other_callers_load() {
    let cache = Cache::builder().memory(100).enabled(false).build().await;
    let cache = cache.expect("a disabled cache needs no tier");
    // Both calls must run at once to pass the barrier: joined, they would hang.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let both = futures_util::future::join(
        meets(&cache, barrier.clone()),
        meets(&cache, barrier.clone()),
    );
    let done = tokio::time::timeout(Duration::from_secs(10), both).await;
    assert_eq!(done.expect("the calls did not wait for each other"), (1, 1));
    assert_eq!(BARRIER_CALLS.get(), 2);
    // No tier at all is fine when disabled, and from the variables too.
    let off = Cache::builder()
        .env_from([("CACHE_MEMORY_CAPACITY", "0"), ("CACHE_DISABLED", "yes")])
        .unwrap()
        .build()
        .await;
    assert!(off.is_ok());
}

static PROFILE_CALLS: Calls = Calls::new();
#[cached(cache = cache, key = "p:{n}", profile = "user-profile")]
async fn profiled(cache: &Cache, n: u32) -> u32 {
    PROFILE_CALLS.hit();
    n
}

#[tokio::test]
async fn a_profile_variable_names_the_profile_of_cached() {
    // Without the profile, the call runs uncached every time (and counts it).
    let without = Cache::builder().memory(100).build().await.unwrap();
    profiled(&without, 1).await;
    profiled(&without, 1).await;
    assert_eq!(PROFILE_CALLS.get(), 2);
    assert_eq!(without.stats().store_errors, 2);

    let cache = Cache::builder()
        .memory(100)
        .env_from([("CACHE_PROFILE_USER_PROFILE", "ttl=1d,stale=1m")])
        .unwrap()
        .build()
        .await
        .unwrap();
    profiled(&cache, 1).await;
    profiled(&cache, 1).await;
    assert_eq!(PROFILE_CALLS.get(), 3, "the second call was a hit");
    assert_eq!(cache.stats().store_errors, 0);
}

#[tokio::test]
async fn variables_win_over_earlier_calls_and_later_calls_win_over_them() {
    let vars = [("CACHE_NAMESPACE", "from-env")];
    let env_wins = Cache::builder()
        .namespace("from-code")
        .memory(10)
        .env_from(vars)
        .unwrap();
    assert_eq!(env_wins.build().await.unwrap().namespace(), "from-env");
    let code_wins = Cache::builder()
        .memory(10)
        .env_from(vars)
        .unwrap()
        .namespace("from-code");
    assert_eq!(code_wins.build().await.unwrap().namespace(), "from-code");
    // Unset (or empty) variables change nothing.
    let kept = Cache::builder()
        .namespace("from-code")
        .memory(10)
        .env_from([("CACHE_NAMESPACE", "")])
        .unwrap();
    assert_eq!(kept.build().await.unwrap().namespace(), "from-code");
}

#[tokio::test]
async fn a_redis_password_never_shows_in_an_error() {
    const SECRET: &str = "hunter2-never-shown";
    for (name, value) in [
        (
            "REDIS_URL",
            format!("redis://admin:{SECRET}@127.0.0.1:notaport/"),
        ),
        (
            "REDIS_URL",
            format!("redis:/admin:{SECRET}@127.0.0.1:6380/"),
        ),
        ("REDIS_URL", format!("http://:{SECRET}@127.0.0.1:6380/")),
        (
            "REDIS_CLUSTER_URLS",
            format!("redis://127.0.0.1:7000,redis://:{SECRET}@127.0.0.1:x"),
        ),
    ] {
        let error = Cache::builder()
            .env_from([(name, value.as_str())])
            .expect_err("a malformed URL");
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(text.contains(name), "{text}");
            assert!(!text.contains(SECRET), "{name}={value}: {text}");
        }
    }
    // Well formed but unreachable: the cache starts without it (the
    // contract's "Availability"), and its health's reason hides it too.
    let port = RedisServer::start().port();
    let url = format!("redis://admin:{SECRET}@127.0.0.1:{port}/");
    let cache = Cache::builder()
        .remote_timeout(Duration::from_secs(2))
        .env_from([("REDIS_URL", url.as_str())])
        .unwrap()
        .build()
        .await
        .expect("starts without the server");
    let text = integration_tests::not_connected_because(&cache).await;
    let report = format!("{:?}", cache.health_report().await);
    assert!(
        !text.contains(SECRET) && !report.contains(SECRET),
        "{report}"
    );
}

#[tokio::test]
async fn stats_and_health_serialize_to_json() {
    let cache = Cache::memory(10);
    cache.set("k", 1u32).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    assert_eq!(cache.get::<u32>("absent").await.unwrap(), None);
    let json = serde_json::to_value(cache.stats()).unwrap();
    assert_eq!(json["hits"], 1);
    assert_eq!(json["misses"], 1);
    assert_eq!(json["hit_ratio"], 0.5);
    for field in [
        "remote_hits",
        "stale_hits",
        "loads",
        "load_errors",
        "store_errors",
        "refreshes",
        "early_refreshes",
        "fail_safe_serves",
        "coalesced",
        "evictions",
        "invalidations",
        "decode_errors",
        "corrupt_entries",
        "oversized_entries",
        "schema_mismatches",
        "invalidation_failures",
        "pending_invalidations",
    ] {
        assert!(json[field].is_u64(), "{field} in {json}");
    }

    let server = RedisServer::start();
    let remote = integration_tests::write_through(&server, "json").await;
    let health = remote.health().await.expect("a remote tier");
    let json = serde_json::to_value(health).unwrap();
    assert_eq!(json["connected"], true);
    assert!(
        json["ping_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{json}"
    );
    assert_eq!(json["breaker"], "closed");
    assert!(json["backplane"].is_boolean(), "{json}");
    assert_eq!(json["pending_invalidations"], 0);
}

/// A storage-only cache on `server` with `retries`, and no background task
/// that could find a killed connection before the test does.
async fn storage(server: &RedisServer, retries: &str) -> Cache {
    Cache::builder()
        .redis(server.url())
        .known_tag_versions(0)
        .env_from([("CACHE_REMOTE_RETRIES", retries)])
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// Kills the cache's connections (the `SKIPME` default spares `cli`'s own).
fn kill_clients(server: &RedisServer) {
    let killed: u32 = server
        .cli(&["CLIENT", "KILL", "TYPE", "normal"])
        .trim()
        .parse()
        .expect("a count of killed clients");
    assert!(killed >= 1, "the cache's connection was killed");
}

#[tokio::test]
async fn a_retry_rides_over_a_killed_connection() {
    let server = RedisServer::start();
    let cache = storage(&server, "1").await;
    cache.set("k", 1u32).await.unwrap();
    let errors = cache.stats().store_errors;
    for _ in 0..3 {
        kill_clients(&server);
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    }
    assert_eq!(
        cache.stats().store_errors,
        errors,
        "no fault reached the caller"
    );
}

#[tokio::test]
async fn without_retries_a_killed_connection_fails_one_call() {
    let server = RedisServer::start();
    let cache = storage(&server, "0").await;
    cache.set("k", 1u32).await.unwrap();
    let errors = cache.stats().store_errors;
    kill_clients(&server);
    let failed = cache.get::<u32>("k").await;
    assert!(
        matches!(
            failed,
            Err(cache_runtime::Error::Store(StoreError::Connection(_)))
        ),
        "{failed:?}"
    );
    assert_eq!(cache.stats().store_errors, errors + 1);
    // The client reconnected meanwhile.
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
}

/// The count of `kind` error replies the server sent (`INFO errorstats`).
fn error_replies(server: &RedisServer, kind: &str) -> u64 {
    let info = server.cli(&["INFO", "errorstats"]);
    info.lines()
        .find(|l| l.starts_with(&format!("errorstat_{kind}:")))
        .and_then(|l| l.split("count=").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_error_reply_is_not_retried() {
    let server = RedisServer::start_with_acl_user("app", "app-pw");
    let cache = storage(&server, "5").await;
    cache.set("k", 1u32).await.unwrap();
    server.cli(&["ACL", "SETUSER", "app", "-mget", "-get"]);
    assert!(cache.get::<u32>("k").await.is_err(), "NOPERM");
    assert_eq!(error_replies(&server, "NOPERM"), 1, "asked once");
}
