//! The tables, created on first connect if they are missing.
//!
//! Entries and locks are `UNLOGGED`: no write-ahead log for what is a cache
//! (a crash empties them, which a cache survives). Tag versions and counters
//! are logged: a tag counter lost would come back at the clock anyway (see
//! `sql::VERSIONS`), but counters are the application's numbers. Keys are
//! `bytea`: byte order (no collation), any byte. Concurrent first connects
//! from many processes take an advisory lock so that `CREATE ... IF NOT
//! EXISTS` does not race.

/// One simple-query batch: one implicit transaction.
pub(super) const CREATE: &str = "
SELECT pg_advisory_xact_lock(7236110458204930593);
CREATE UNLOGGED TABLE IF NOT EXISTS cache_runtime_entries (
    key bytea PRIMARY KEY,
    value bytea NOT NULL,
    expires_at int8 NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_runtime_entries_expiry ON cache_runtime_entries (expires_at);
CREATE TABLE IF NOT EXISTS cache_runtime_tags (
    key bytea PRIMARY KEY,
    version int8 NOT NULL
);
CREATE UNLOGGED TABLE IF NOT EXISTS cache_runtime_locks (
    key bytea PRIMARY KEY,
    token bytea NOT NULL,
    expires_at int8 NOT NULL
);
CREATE TABLE IF NOT EXISTS cache_runtime_counters (
    key bytea PRIMARY KEY,
    value int8 NOT NULL
);
";
