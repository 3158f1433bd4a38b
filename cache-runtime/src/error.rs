//! The error type of the runtime's fallible operations.

/// What went wrong in a cache operation that reports errors.
///
/// The `#[cached]` path never returns these to the caller: a fault of the cache
/// makes the function run uncached, and the fault is counted in [`crate::Stats`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`crate::install`] was called after a cache had already been installed.
    #[error("a global cache is already installed; call cache_runtime::install once, at start-up")]
    AlreadyInstalled,
    /// A `profile = ".."` names no policy registered with [`crate::CacheBuilder::profile`].
    #[error("unknown cache profile `{0}`; register it with Cache::builder().profile(\"{0}\", Policy::ttl(..))")]
    UnknownProfile(String),
    /// The builder's settings contradict each other or are missing.
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// The remote tier's address or TLS settings are unusable (a malformed
    /// URL, a root CA without the `tls` feature); the message never
    /// contains a password. A server that cannot be reached is not an
    /// error: see [`CacheBuilder::build`](crate::CacheBuilder::build).
    #[error("cannot connect to the remote cache at {url}: {source}")]
    Connect {
        /// The store's URL, password redacted.
        url: String,
        /// What failed.
        source: crate::StoreError,
    },
    /// An invalidation that the remote tier did not confirm: it is applied in
    /// this process and queued, and retried in the background until the
    /// remote tier confirms it.
    #[error("invalidation of {tags} tag(s) applied in this process and queued for retry: the remote tier did not confirm it ({source})")]
    InvalidationQueued {
        /// How many tags the invalidation named.
        tags: usize,
        /// Why the remote tier did not confirm it.
        source: crate::StoreError,
    },
    /// [`Cache::delete_matching`](crate::Cache::delete_matching) stopped
    /// before the end of its walk (a round trip failed after its retries, or
    /// the circuit breaker opened): `deleted` keys were deleted from the
    /// remote tier, and matching keys may remain. Calling it again finishes
    /// the job.
    #[error("delete_matching stopped after deleting {deleted} key(s) from the remote tier; matching keys may remain, call it again ({source})")]
    DeleteIncomplete {
        /// Keys the remote tier confirmed deleted before the walk stopped
        /// (a batch in flight then may have been deleted too, unconfirmed).
        deleted: u64,
        /// Why it stopped.
        source: crate::StoreError,
    },
    /// A remote operation failed (timeout, open circuit breaker, store error).
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
