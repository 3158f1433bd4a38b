//! Distributed locks: `SET key token NX PX ttl` to take, a compare-and-delete
//! script to release (only the holder's token releases), a compare-and-pexpire
//! script to extend. A holder that dies leaves the lock to expire, and a waiter
//! takes over. A lock key that would never expire (a string without a TTL,
//! which no holder of ours leaves, or a key of another type) has no live
//! holder: the store's take attempt replaces it at once, logged and counted in
//! `store_errors`, instead of making every waiter wait out its bound. Used by
//! the read path for `lock = "distributed"` and offered to users as
//! [`LockGuard`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::remote::Remote;
use crate::{Cache, Error, Result, StoreError};

/// How long a load's lock lives without extension; extended every third of it.
pub(crate) const LOAD_LOCK_TTL: Duration = Duration::from_secs(2);

/// A held distributed lock. Release it with [`release`](Self::release);
/// dropping it releases it in the background (or it expires at its TTL).
///
/// ```no_run
/// # async fn f(cache: cache_runtime::Cache) -> Result<(), cache_runtime::Error> {
/// use std::time::Duration;
/// let guard = cache.lock("nightly-report", Duration::from_secs(30), Duration::from_secs(5)).await?;
/// // ... only one process at a time gets here ...
/// guard.extend(Duration::from_secs(30)).await?;
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
pub struct LockGuard {
    cache: Cache,
    key: Arc<str>,
    token: Arc<str>,
    released: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn remote(cache: &Cache) -> Result<&Remote> {
    cache.inner.tiers.remote.as_ref().ok_or_else(|| {
        Error::Config(
            "distributed locks need a remote tier: call .redis(url) on the builder".into(),
        )
    })
}

fn new_token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl LockGuard {
    /// Tries once to take the lock stored at `key` (a full store key).
    pub(crate) async fn try_take(
        cache: &Cache,
        key: String,
        ttl: Duration,
    ) -> Result<Option<LockGuard>> {
        let remote = remote(cache)?;
        // Made before the attempt: dropped while the `SET` is in flight
        // (the caller's future was cancelled), it releases in the background
        // whatever the `SET` may have taken, instead of leaving a lock that
        // nobody holds until its TTL.
        let mut guard = LockGuard {
            cache: cache.clone(),
            key: key.into(),
            token: new_token().into(),
            released: false,
        };
        let taken = remote
            .call(&cache.inner.observe.counters, |s| {
                s.try_lock(&guard.key, &guard.token, ttl)
            })
            .await;
        match taken {
            Ok(true) => Ok(Some(guard)),
            outcome => {
                // Not taken, or failed (a timed-out `SET` that landed
                // expires at its TTL, as before): nothing to release.
                guard.released = true;
                outcome?;
                Ok(None)
            }
        }
    }

    /// The lock's key in the store.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Extends the lock to `ttl` from now; `false` if it was lost (expired and
    /// taken by someone else).
    ///
    /// # Cancel safety
    ///
    /// Dropped after its first poll, the lock's TTL may or
    /// may not have been extended; the guard still holds the lock either way.
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        let remote = remote(&self.cache)?;
        Ok(remote
            .call(&self.cache.inner.observe.counters, |s| {
                s.extend_lock(&self.key, &self.token, ttl)
            })
            .await?)
    }

    /// Releases the lock; `false` if it had already expired.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before the reply, the guard's
    /// drop releases the lock in the background, so it is never left held
    /// until its TTL.
    pub async fn release(mut self) -> Result<bool> {
        let remote = remote(&self.cache)?;
        let released = remote
            .call(&self.cache.inner.observe.counters, |s| {
                s.unlock(&self.key, &self.token)
            })
            .await;
        // Only now: a release dropped before its reply leaves the guard's
        // drop to release in the background.
        self.released = true;
        Ok(released?)
    }

    /// Extends the lock every third of `ttl` until the returned handle drops.
    pub(crate) fn keep_alive(&self, ttl: Duration) -> KeepAlive {
        let cache = self.cache.clone();
        let (key, token) = (self.key.clone(), self.token.clone());
        let task = tokio::runtime::Handle::try_current().ok().map(|handle| {
            handle.spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let Some(remote) = cache.inner.tiers.remote.as_ref() else {
                        return;
                    };
                    let extended = remote
                        .call(&cache.inner.observe.counters, |s| {
                            s.extend_lock(&key, &token, ttl)
                        })
                        .await;
                    if !matches!(extended, Ok(true)) {
                        return;
                    }
                }
            })
        });
        KeepAlive(task)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Cancelled or unwinding holder: release in the background; without a
        // runtime the lock simply expires at its TTL.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let cache = self.cache.clone();
            let (key, token) = (self.key.clone(), self.token.clone());
            handle.spawn(async move {
                if let Some(remote) = cache.inner.tiers.remote.as_ref() {
                    let _ = remote
                        .call(&cache.inner.observe.counters, |s| s.unlock(&key, &token))
                        .await;
                }
            });
        }
    }
}

/// Stops a lock's extension task when dropped.
pub(crate) struct KeepAlive(Option<tokio::task::JoinHandle<()>>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl Cache {
    /// Takes the distributed lock `name` (in this cache's namespace) for `ttl`,
    /// waiting up to `wait` for a holder to release it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while an attempt to take the lock
    /// is in flight, whatever that attempt may have taken is released in the
    /// background; no lock is left held without a guard.
    pub async fn lock(&self, name: &str, ttl: Duration, wait: Duration) -> Result<LockGuard> {
        let key = Remote::lock_key(self.namespace(), name);
        // A `wait` past what `Instant` holds (e.g. `Duration::MAX`) waits forever.
        let deadline = Instant::now().checked_add(wait);
        let mut backoff = Duration::from_millis(5);
        loop {
            if let Some(guard) = LockGuard::try_take(self, key.clone(), ttl).await? {
                return Ok(guard);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(Error::Store(StoreError::Backend(format!(
                    "lock `{name}` is held elsewhere"
                ))));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    /// Takes the distributed lock `name` for `ttl` if nobody holds it.
    ///
    /// # Cancel safety
    ///
    /// As [`lock`](Self::lock): dropped in flight, a lock the
    /// attempt may have taken is released in the background.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockGuard>> {
        LockGuard::try_take(self, Remote::lock_key(self.namespace(), name), ttl).await
    }

    /// Runs `work` while holding the lock `name` (kept alive while it runs),
    /// then releases it.
    ///
    /// # Cancel safety
    ///
    /// Dropped while waiting, as [`lock`](Self::lock);
    /// dropped while `work` runs, `work` is dropped, the lock stops being
    /// extended and is released in the background.
    pub async fn with_lock<T, F, Fut>(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let guard = self.lock(name, ttl, wait).await?;
        let keep_alive = guard.keep_alive(ttl);
        let out = work().await;
        drop(keep_alive);
        guard.release().await?;
        Ok(out)
    }
}
