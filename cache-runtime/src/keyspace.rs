//! Atomic counters and deletion by pattern, scoped to the cache's namespace.

pub(crate) mod counters;
pub(crate) mod glob;

use crate::coherence::key_writes::{self, KeyWrite};
use crate::{Cache, Result};

impl Cache {
    /// Adds `delta` to the counter `key` (created at 0) and returns the new
    /// value. Atomic across every process sharing the remote tier (`INCRBY`);
    /// without one, across this process. Counters live apart from cached
    /// values: read them with [`counter`](Self::counter).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::memory(10);
    /// assert_eq!(cache.increment("visits", 1).await?, 1);
    /// assert_eq!(cache.increment("visits", 5).await?, 6);
    /// assert_eq!(cache.decrement("visits", 2).await?, 4);
    /// assert_eq!(cache.counter("visits").await?, 4);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. The `INCRBY` is sent on the first
    /// poll and is not retried: dropped after that, the counter may have moved
    /// without the caller learning its value (nothing is left locked or
    /// pending).
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let inner = &self.inner;
        match &inner.tiers.remote {
            Some(remote) => {
                let full = counter_key(&inner.config.namespace, key);
                Ok(remote
                    .call_once(&inner.observe.counters, |s| s.increment(&full, delta))
                    .await?)
            }
            None => {
                let mut map = inner.tiers.local_counters.lock();
                let value = map.entry(key.to_string()).or_insert(0);
                *value = value.wrapping_add(delta);
                Ok(*value)
            }
        }
    }

    /// Subtracts `delta` from the counter `key`; the new value.
    ///
    /// # Cancel safety
    ///
    /// As [`increment`](Self::increment): dropped after its
    /// first poll, the counter may have moved without the caller learning it.
    pub async fn decrement(&self, key: &str, delta: i64) -> Result<i64> {
        self.increment(key, delta.wrapping_neg()).await
    }

    /// The counter `key` (0 if it was never incremented).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn counter(&self, key: &str) -> Result<i64> {
        self.increment(key, 0).await
    }

    /// Deletes every entry whose key (inside this namespace) matches
    /// `pattern`, where `*` matches any run of characters and every other
    /// character stands for itself: other glob characters are escaped, and the
    /// pattern is anchored to the namespace, so it never reaches outside it
    /// (nor its tags' counters, locks or counters). The pattern is written like
    /// a manual key (`%`, `#`, `~` escaped the same way); a `*` also matches
    /// default, versioned and shortened keys (`"*"` deletes every entry).
    /// Uses `SCAN` and `UNLINK`, never `KEYS`. Returns how many were deleted
    /// from the remote tier (from memory without one).
    ///
    /// The walk visits every key of the remote tier (every master of a
    /// cluster), 1,000 per `SCAN` page, and unlinks each page's matches in
    /// one batch: about `N / 1000` round trips for `N` keys, however few
    /// match. The remote timeout bounds each round trip, not the walk; a
    /// round trip that times out or loses its connection is tried again, up
    /// to [`remote_retries`](crate::CacheBuilder::remote_retries). Between
    /// the pages other clients' commands run: each page is a short command
    /// for the server.
    ///
    /// # Errors
    ///
    /// [`Error::DeleteIncomplete`](crate::Error::DeleteIncomplete) when the
    /// walk stopped before its end (a round trip failed after its retries,
    /// or the circuit breaker is open): it says how many keys were deleted,
    /// and matching keys may remain.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::memory(10);
    /// cache.set("user:1", 1u8).await?;
    /// cache.set("user:2", 2u8).await?;
    /// cache.set("order:1", 3u8).await?;
    /// assert_eq!(cache.delete_matching("user:*").await?, 2);
    /// assert_eq!(cache.get::<u8>("order:1").await?, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// The memory tier's matching entries go on the first
    /// poll; the remote tier's are deleted page by page as the walk proceeds,
    /// so a drop midway leaves those on the pages (and masters) not reached
    /// yet, and an `UNLINK` batch in flight may or may not apply. The message
    /// to other processes may not go (they clear their memory tier at their
    /// next confirmation, within about a second, since the write's number is
    /// never heard). Calling it again finishes the job: it is idempotent, and
    /// walks again from the first page.
    pub async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        let inner = &self.inner;
        let removed_memory =
            glob::forget_matching(&inner.tiers.memory, &inner.config.namespace, pattern);
        let Some(remote) = &inner.tiers.remote else {
            return Ok(removed_memory);
        };
        let store_pattern = format!(
            "{}{}",
            escape_glob(&format!("{}:", inner.config.namespace), false),
            escape_glob(&crate::key::reserved::escaped(pattern), true)
        );
        let seq = key_writes::reserve(&*self.inner).await;
        let removed = remote
            .delete_matching(&inner.observe.counters, &store_pattern)
            .await;
        // Published whatever the outcome: other processes drop what this one
        // may have deleted.
        key_writes::publish(&*self.inner, seq, KeyWrite::Pattern(pattern)).await;
        removed.map_err(|stopped| crate::Error::DeleteIncomplete {
            deleted: stopped.deleted,
            source: stopped.error,
        })
    }
}

/// `{namespace}#counter:{key}`, the key's reserved characters escaped.
pub(crate) fn counter_key(namespace: &str, key: &str) -> String {
    crate::key::shorten(format!(
        "{namespace}#counter:{}",
        crate::key::reserved::escaped(key)
    ))
}

/// Escapes Redis glob characters; keeps `*` as a wildcard when `star` is set.
fn escape_glob(text: &str, star: bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '*' if star => out.push('*'),
            '*' | '?' | '[' | ']' | '\\' | '^' | '-' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_glob_characters_are_escaped() {
        assert_eq!(escape_glob("u?[a-z]\\*", true), "u\\?\\[a\\-z\\]\\\\*");
        assert_eq!(escape_glob("ns*:", false), "ns\\*:");
    }
}
