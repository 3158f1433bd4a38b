//! A tour of cache-runtime with no set-up: `cargo run --example quickstart`.
//!
//! Shows a miss then a hit, a stale hit refreshed in the background, a tag
//! invalidation, a failure answered by fail-safe, and the stats.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cache_runtime::{cached, invalidate, Cache, Policy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    version: u32,
}

static DB_READS: AtomicU32 = AtomicU32::new(0);
static DB_DOWN: AtomicBool = AtomicBool::new(false);
/// Names changed by `rename_user`; other users are named `user-{id}`.
static RENAMED: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());

/// Pretends to read a user from a slow database.
async fn read_user_from_db(id: u64) -> Result<User, String> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    if DB_DOWN.load(Ordering::SeqCst) {
        return Err("database unreachable".into());
    }
    let version = DB_READS.fetch_add(1, Ordering::SeqCst) + 1;
    let renamed = RENAMED.lock().map_err(|_| "database poisoned")?;
    let name = match renamed.iter().find(|(user, _)| *user == id) {
        Some((_, name)) => name.clone(),
        None => format!("user-{id}"),
    };
    Ok(User { id, name, version })
}

/// Fresh for 1 s; then served stale for up to 2 s while one refresh runs; and
/// served for up to 1 min past expiry if the database fails.
#[cached(ttl = "1s", stale = "2s", fail_safe = "1m", key = "user:{id}", tags = ["user:{id}", "users"])]
async fn get_user(id: u64) -> Result<User, String> {
    read_user_from_db(id).await
}

/// Renaming a user invalidates its tag once the update succeeded.
#[invalidate(tags = ["user:{id}"])]
async fn rename_user(id: u64, name: &str) -> Result<(), String> {
    let mut renamed = RENAMED.lock().map_err(|_| "database poisoned")?;
    renamed.retain(|(user, _)| *user != id);
    renamed.push((id, name.to_owned()));
    println!("    (database: user {id} renamed to {name})");
    Ok(())
}

async fn timed(label: &str, id: u64) {
    let start = Instant::now();
    let user = get_user(id).await;
    println!("{label:<48} {user:?}  in {:?}", start.elapsed());
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cache::builder()
        .namespace("quickstart")
        .default_ttl(Duration::from_secs(60))
        .memory(10_000)
        .profile("user-profile", Policy::ttl(Duration::from_secs(1800)))
        .build()
        .await?;
    cache_runtime::install(cache.clone())?;

    println!("1. miss, then hit");
    timed("   first call runs the function (miss):", 7).await;
    timed("   second call is served from memory (hit):", 7).await;

    println!("2. stale-while-revalidate");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    timed("   after the TTL: stale value, at once:", 7).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    timed("   the background refresh has replaced it:", 7).await;

    println!("3. tag invalidation");
    rename_user(7, "ada").await?;
    timed("   after #[invalidate]: a miss again:", 7).await;

    println!("4. fail-safe");
    DB_DOWN.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    timed("   database down, value stale: served stale:", 7).await;
    // The background refresh fails; once past the stale window, the next call
    // loads in the foreground, fails, and fail-safe answers.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    timed("   past the stale window, load fails: fail-safe:", 7).await;
    DB_DOWN.store(false, Ordering::SeqCst);

    let s = cache.stats();
    println!("5. stats");
    println!(
        "   hits {} | misses {} | stale hits {} | loads {} | load errors {} | fail-safe serves {} | refreshes {} | store errors {}",
        s.hits, s.misses, s.stale_hits, s.loads, s.load_errors, s.fail_safe_serves, s.refreshes, s.store_errors
    );
    Ok(())
}
