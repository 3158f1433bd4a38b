//! Why a store operation failed.

/// Why a remote store operation failed.
///
/// A store returns the variant that says what the flow may do next:
/// [`Connection`](Self::Connection) is retried (the store reconnects),
/// [`Backend`](Self::Backend) is not. [`Timeout`](Self::Timeout) and
/// [`Open`](Self::Open) are the cache's own verdicts (it bounds every call and
/// skips a failing store); a store may return `Timeout` for a limit of its own.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within the configured timeout.
    #[error("the remote store timed out")]
    Timeout,
    /// The circuit breaker is open: the store failed repeatedly and is skipped.
    #[error("the remote store is skipped: its circuit breaker is open")]
    Open,
    /// The store answered with an error (or an unexpected reply).
    #[error("remote store error: {0}")]
    Backend(String),
    /// The connection to the store failed (dropped, refused, reset): the
    /// client reconnects, and the operation may be retried
    /// ([`CacheBuilder::remote_retries`](crate::CacheBuilder::remote_retries)).
    #[error("remote store connection failed: {0}")]
    Connection(String),
}
