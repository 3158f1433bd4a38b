//! The events a [`Listener`](super::Listener) receives: small structs that
//! borrow from the call, so an event costs nothing to build. Every one names
//! the cache (its namespace); those of a call name its `#[cached]` function
//! (`None` for the manual API) and, with
//! [`CacheBuilder::event_keys`](crate::CacheBuilder::event_keys), its key.

use std::time::Duration;

/// What a get found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GetResult {
    /// A fresh value, from memory or the remote tier.
    Hit,
    /// A stale value, served while a background refresh runs.
    Stale,
    /// Nothing usable: the function runs, or the caller waits for a load.
    Miss,
}

/// How a run of the function (or a loader) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoadOutcome {
    /// It returned a value.
    Ok,
    /// It returned an `Err`, or it panicked.
    Error,
}

/// What went wrong with the remote tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// An operation ran past the remote timeout.
    Timeout,
    /// The connection was refused, dropped or reset.
    Connection,
    /// The circuit breaker is open: the operation was skipped.
    BreakerOpen,
    /// Bytes from the store (an entry, a backplane message) did not decode.
    Decode,
    /// A stored entry failed its checksum (damaged in the store), or its
    /// value's `Deserialize` panicked: never served. Also counted in
    /// [`Stats::decode_errors`](crate::Stats::decode_errors).
    Corrupt,
    /// Anything else: an error reply, no tokio runtime, arguments that did
    /// not serialize into a key.
    Other,
    /// An entry over the maximum entry size
    /// ([`CacheBuilder::max_entry_bytes`](crate::CacheBuilder::max_entry_bytes)):
    /// a value whose encoding stopped at the bound and was not written to
    /// the remote tier (the caller still got it), or an entry read from it
    /// that was longer and not decoded (a miss). Counted in
    /// [`Stats::oversized_entries`](crate::Stats::oversized_entries) only:
    /// not a fault of the store, so not in `store_errors` nor in health.
    Oversized,
    /// An entry written for another shape of the stored type (a field
    /// added, renamed or retyped; a variant added): a miss, never decoded.
    /// Counted in [`Stats::schema_mismatches`](crate::Stats::schema_mismatches)
    /// only: a deploy that changed the type causes these, not a fault of
    /// the store.
    SchemaMismatch,
}

impl FaultKind {
    /// A short lowercase name: `timeout`, `connection`, `breaker_open`,
    /// `decode`, `corrupt`, `other`, `oversized` or `schema_mismatch` (the `kind` label of the
    /// `metrics` feature; `decode`, `corrupt` and `oversized` are counted
    /// under names of their own).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Timeout => "timeout",
            FaultKind::Connection => "connection",
            FaultKind::BreakerOpen => "breaker_open",
            FaultKind::Decode => "decode",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Other => "other",
            FaultKind::Oversized => "oversized",
            FaultKind::SchemaMismatch => "schema_mismatch",
        }
    }
}

impl GetResult {
    /// `hit`, `stale` or `miss` (the `result` label of `cache_gets_total`).
    pub fn as_str(self) -> &'static str {
        match self {
            GetResult::Hit => "hit",
            GetResult::Stale => "stale",
            GetResult::Miss => "miss",
        }
    }
}

impl LoadOutcome {
    /// `ok` or `error` (the `outcome` label of `cache_loads_total`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadOutcome::Ok => "ok",
            LoadOutcome::Error => "error",
        }
    }
}

/// A call looked for its value.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Get<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// The `#[cached]` function's `name`; `None` for the manual API.
    pub function: Option<&'a str>,
    /// The full key, with [`event_keys`](crate::CacheBuilder::event_keys).
    pub key: Option<&'a str>,
    /// What it found.
    pub result: GetResult,
}

/// The function (or a loader) ran to fill the cache.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Load<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// The `#[cached]` function's `name`; `None` for the manual API.
    pub function: Option<&'a str>,
    /// The full key, with [`event_keys`](crate::CacheBuilder::event_keys)
    /// (`None` for a batch load of several keys).
    pub key: Option<&'a str>,
    /// How long it ran.
    pub duration: Duration,
    /// How it ended.
    pub outcome: LoadOutcome,
    /// Whether it was a background refresh (the caller had its answer).
    pub background: bool,
}

/// One [`Cache::invalidate_tags`](crate::Cache::invalidate_tags) call
/// (or `#[invalidate]` function's success).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Invalidate<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// Always `None` today: invalidations are not attributed to a function.
    pub function: Option<&'a str>,
    /// Always `None`: an invalidation names tags, not keys.
    pub key: Option<&'a str>,
    /// The tags invalidated.
    pub tags: &'a [String],
}

/// The memory tier dropped entries to make room.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Evict<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// Always `None`: evictions are the tier's, not a function's.
    pub function: Option<&'a str>,
    /// Always `None`.
    pub key: Option<&'a str>,
    /// Entries dropped by one insert (usually 1).
    pub count: u64,
}

/// The remote tier (or the cache's configuration) failed an operation; the
/// call went on without it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StoreFault<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// Always `None`: faults are seen below the calls.
    pub function: Option<&'a str>,
    /// Always `None`.
    pub key: Option<&'a str>,
    /// What went wrong.
    pub kind: FaultKind,
}

/// A background refresh started (stale-while-revalidate or refresh-ahead).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Refresh<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// The `#[cached]` function's `name`.
    pub function: Option<&'a str>,
    /// The full key, with [`event_keys`](crate::CacheBuilder::event_keys).
    pub key: Option<&'a str>,
    /// Started early by `refresh_ahead`, not by a stale hit.
    pub early: bool,
}

/// A failed load was answered with an expired value under `fail_safe`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FailSafe<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// The `#[cached]` function's `name`.
    pub function: Option<&'a str>,
    /// The full key, with [`event_keys`](crate::CacheBuilder::event_keys).
    pub key: Option<&'a str>,
}

/// A caller waits for another caller's load of the same key instead of
/// running the function.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Coalesced<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// The `#[cached]` function's `name`; `None` for the manual API.
    pub function: Option<&'a str>,
    /// The full key, with [`event_keys`](crate::CacheBuilder::event_keys).
    pub key: Option<&'a str>,
}

/// One operation on the remote tier ended (retries included).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RemoteOp<'a> {
    /// The cache's namespace.
    pub cache: &'a str,
    /// Always `None`: operations are seen below the calls.
    pub function: Option<&'a str>,
    /// Always `None`.
    pub key: Option<&'a str>,
    /// How long it took, until its answer or its fault.
    pub duration: Duration,
    /// Whether it succeeded.
    pub ok: bool,
}
