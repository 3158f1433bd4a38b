//! Cross-process checks through the [`Cache`]: two caches ("processes"),
//! each on its own connections to one backend, keep the promises the cache
//! makes about a shared store: one's writes are the other's hits, an
//! invalidation is seen elsewhere within a bound, one load runs across
//! instances, and an entry read before a bump is never served after it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::support::{eventually, joined, namespace, same};
use super::Connect;
use crate::store::{Backplane, Store};
use crate::{Cache, Policy};

/// How long another process may serve what was invalidated: about a second
/// even when the backplane message is lost (the cache confirms its tag
/// versions every 250 ms), with room for a slow machine.
pub const INVALIDATION_BOUND: Duration = Duration::from_millis(1500);

/// Two caches under one fresh namespace, each with a store connection and
/// a backplane connection of its own.
async fn two_caches<S: Store + Backplane>(
    check: &str,
    connect: &impl Connect<S>,
) -> (Cache, Cache) {
    let namespace = namespace();
    let mut caches = Vec::new();
    for _ in 0..2 {
        let built = Cache::builder()
            .namespace(namespace.clone())
            .memory(1_000)
            .store(connect.connect().await)
            .backplane(connect.connect().await)
            .build()
            .await;
        match built {
            Ok(cache) => caches.push(cache),
            Err(error) => panic!("conformance check `{check}`: building a cache failed: {error}"),
        }
    }
    let b = caches.pop();
    let a = caches.pop();
    match (a, b) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("two caches were built"),
    }
}

/// What `cache` serves under `key`, failing the check on an error.
async fn read(check: &str, cache: &Cache, key: &str) -> Option<u32> {
    match cache.get::<u32>(key).await {
        Ok(value) => value,
        Err(error) => panic!("conformance check `{check}`: get `{key}` failed: {error}"),
    }
}

/// Fails the check on an error of the cache.
#[track_caller]
fn done<T, E: std::fmt::Display>(check: &str, call: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("conformance check `{check}`: {call} failed: {error}"),
    }
}

/// What one cache writes (by `set` and by `get_or_load`), the other reads,
/// without loading it again.
pub async fn cache_shares_entries<S: Store + Backplane>(connect: &impl Connect<S>) {
    const CHECK: &str = "cache_shares_entries";
    let (a, b) = two_caches(CHECK, connect).await;
    done(CHECK, "set", a.set("set", 7u32).await);
    same(
        CHECK,
        "the other cache's read of a set",
        read(CHECK, &b, "set").await,
        Some(7),
    );

    let policy = Policy::new();
    let loaded = a
        .get_or_load("loaded", &policy, ["t"], || async { Ok::<_, String>(8u32) })
        .await;
    same(CHECK, "the first load", loaded, Ok(8));
    let again = b
        .get_or_load("loaded", &policy, ["t"], || async {
            Err::<u32, _>("loaded again: the other cache's entry was not shared".to_string())
        })
        .await;
    same(CHECK, "the other cache's get_or_load", again, Ok(8));
}

/// After `invalidate_tags` on one cache, the other (which held the entry in
/// memory) stops serving it within [`INVALIDATION_BOUND`] and never serves
/// it again; a value written after the invalidation replaces it.
///
/// Run it with a factory whose backplane loses every message to check the
/// bound without one (as `tests/conformance_in_process.rs` does).
pub async fn cache_invalidation_seen_elsewhere<S: Store + Backplane>(connect: &impl Connect<S>) {
    const CHECK: &str = "cache_invalidation_seen_elsewhere";
    let (a, b) = two_caches(CHECK, connect).await;
    let tags = ["shared-tag"];
    done(
        CHECK,
        "set_with",
        a.set_with("k", 1u32, &Policy::new(), tags).await,
    );
    same(
        CHECK,
        "the other cache's first read",
        read(CHECK, &b, "k").await,
        Some(1),
    );
    // Now in `b`'s memory tier: only an invalidation message or a
    // confirmation of the tag's version can take it out.
    done(CHECK, "invalidate_tags", a.invalidate_tags(tags).await);
    let gone = eventually(INVALIDATION_BOUND, async || {
        read(CHECK, &b, "k").await.is_none()
    })
    .await;
    assert!(
        gone,
        "conformance check `{CHECK}`: the other cache still served the invalidated value after {INVALIDATION_BOUND:?}"
    );
    for _ in 0..5 {
        same(
            CHECK,
            "a read after the invalidation was seen",
            read(CHECK, &b, "k").await,
            None,
        );
    }
    done(
        CHECK,
        "set_with",
        a.set_with("k", 2u32, &Policy::new(), tags).await,
    );
    let replaced = eventually(INVALIDATION_BOUND, async || {
        match read(CHECK, &b, "k").await {
            Some(1) => panic!("conformance check `{CHECK}`: the invalidated value came back"),
            got => got == Some(2),
        }
    })
    .await;
    assert!(
        replaced,
        "conformance check `{CHECK}`: the value written after the invalidation was not read within {INVALIDATION_BOUND:?}"
    );
}

/// Concurrent `get_or_load`s of one key on two caches run the loader once
/// (the distributed lock), and both answer its value.
pub async fn cache_loads_once_across_instances<S: Store + Backplane>(connect: &impl Connect<S>) {
    const CHECK: &str = "cache_loads_once_across_instances";
    let (a, b) = two_caches(CHECK, connect).await;
    let loads = Arc::new(AtomicU32::new(0));
    let load = |cache: Cache, loads: Arc<AtomicU32>| async move {
        cache
            .get_or_load("one", &Policy::new(), ["t"], || async move {
                let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
                // Long enough for the other cache to find the lock taken;
                // whatever the order, the count must stay 1.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, String>(n)
            })
            .await
    };
    let one = tokio::spawn(load(a, Arc::clone(&loads)));
    let other = tokio::spawn(load(b, Arc::clone(&loads)));
    let (one, other) = (joined(CHECK, one).await, joined(CHECK, other).await);
    same(CHECK, "the loader's runs", loads.load(Ordering::SeqCst), 1);
    same(CHECK, "the first cache's answer", one, Ok(1));
    same(CHECK, "the second cache's answer", other, Ok(1));
}

/// A value loaded while another cache invalidates its tag (the tag's
/// version read before the bump, the entry written after it) is returned to
/// its caller but never served afterwards: not by the cache that bumped,
/// and not by the one that loaded it once the bump reaches it.
pub async fn cache_versions_monotonic<S: Store + Backplane>(connect: &impl Connect<S>) {
    const CHECK: &str = "cache_versions_monotonic";
    let (a, b) = two_caches(CHECK, connect).await;
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let load = {
        let (a, started, release) = (a.clone(), Arc::clone(&started), Arc::clone(&release));
        tokio::spawn(async move {
            a.get_or_load("k", &Policy::new(), ["v"], || async move {
                started.notify_one();
                release.notified().await;
                Ok::<_, String>(1u32)
            })
            .await
        })
    };
    // The loader runs: the tag's version has been read.
    started.notified().await;
    done(CHECK, "invalidate_tags", b.invalidate_tags(["v"]).await);
    release.notify_one();
    same(
        CHECK,
        "the overtaken load's answer",
        joined(CHECK, load).await,
        Ok(1),
    );
    same(
        CHECK,
        "the bumping cache's read of an entry from before the bump",
        read(CHECK, &b, "k").await,
        None,
    );
    let gone = eventually(INVALIDATION_BOUND, async || {
        read(CHECK, &a, "k").await.is_none()
    })
    .await;
    assert!(
        gone,
        "conformance check `{CHECK}`: the loading cache served its pre-bump value after {INVALIDATION_BOUND:?}"
    );
}
