//! The PostgreSQL store (feature `postgres`): [`PostgresStore`], a
//! [`Store`](crate::store::Store) over one database, and its
//! [`PostgresBackplane`] (`LISTEN`/`NOTIFY`). The builder's
//! [`postgres`](crate::CacheBuilder::postgres) uses the same store
//! (connecting in the background if the server is down at start-up).
//!
//! Four tables, created on first connect (`CREATE ... IF NOT EXISTS`):
//!
//! | table | holds | |
//! |---|---|---|
//! | `cache_runtime_entries` | key, bytes, expiry (ms, server clock) | `UNLOGGED`; expired rows swept in the background, a few thousand at a time |
//! | `cache_runtime_tags` | key, version | a version is never handed out twice: created at the clock (µs), bumped to the larger of old + 1 and the clock |
//! | `cache_runtime_locks` | key, token, expiry | `UNLOGGED`; take, extend and release are single conditional statements |
//! | `cache_runtime_counters` | key, value | one upsert per increment |
//!
//! A hit is one prepared statement: the entry, and its tags' versions when
//! it has tags. Every key and value is a bound parameter; no name from a
//! namespace or a key is written into SQL. Deletion by pattern walks the
//! entries in key order on the primary key (no table lock). Errors, logs and
//! `Debug` never show the password.
//!
//! Inside: the statements (`sql`), the tables (`schema`), the pool and its
//! errors (`pool`), what may be shown of a URL (`redact`), one file per
//! part of the interface (`entries`, `tags`, `locks`, `counters`, `scan`),
//! the sweep (`sweep`), the backplane, the public type (`public`), the
//! builder's `.postgres(url)` (`connect`) and `CACHE_POSTGRES_URL` (`env`).

mod backplane;
mod connect;
mod counters;
mod entries;
mod env;
mod locks;
mod pool;
mod public;
mod redact;
mod scan;
mod schema;
mod sql;
mod sweep;
mod tags;

pub use backplane::{PostgresBackplane, MAX_MESSAGE};
pub(crate) use env::apply as apply_env;
pub use public::{PostgresOptions, PostgresStore, DEFAULT_MAX_CONNECTIONS};
pub(crate) use redact::{shown as redacted_config, unparsable};
pub use scan::PostgresNode;
