//! The connection pool and what its errors mean to the cache.
//!
//! deadpool connects lazily and replaces a connection that closed (a
//! server restart), so an outage needs no reconnection logic here. Its
//! three timeouts (waiting for a free connection, creating one, checking one
//! before reuse) are the store's timeout: no call waits on the pool forever,
//! even without the cache's own timeout around it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, QueueMode, RecyclingMethod, Runtime,
    TimeoutType,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use super::redact::{scrub, shown, unparsable};
use crate::store::StoreError;

/// What every part of a store shares: the pool, the parsed configuration
/// (for the backplane's own connections), and what errors may show.
pub(crate) struct Shared {
    pub(super) pool: Pool,
    pub(super) config: Config,
    /// The URL as given, only to scrub its password from error texts.
    url: String,
    /// The URL as shown: no password.
    pub(super) shown: String,
    pub(super) timeout: Duration,
    /// A statement found a table missing (dropped, or lost with the
    /// transaction that created it when the server crashed): the next
    /// connection handed out creates the tables again first.
    schema_lost: AtomicBool,
}

impl Shared {
    /// Parses `url` (a `postgres://` URL or a `key=value` string) and builds
    /// a pool of at most `max` connections; nothing is connected yet.
    pub(crate) fn new(url: &str, timeout: Duration, max: usize) -> Result<Arc<Self>, StoreError> {
        let mut config = parse(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("cache-runtime");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A closed connection is dropped; an open one is not
                // pinged first (a round trip on every call).
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max.max(1))
            // The most recently returned connection first: a light load
            // keeps reusing one warm server process (FIFO, the default,
            // woke every idle backend in turn: a slower hit).
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        Ok(Arc::new(Self {
            pool,
            shown: shown(&config),
            config,
            url: url.to_string(),
            timeout,
            schema_lost: AtomicBool::new(false),
        }))
    }

    /// A connection from the pool (the tables created again first if a
    /// statement found one missing).
    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        // One relaxed load on the hit path; the flag is nearly always off.
        if self.schema_lost.load(Ordering::Relaxed) {
            client
                .batch_execute(super::schema::CREATE)
                .await
                .map_err(|e| self.error(e))?;
            if self.schema_lost.swap(false, Ordering::Relaxed) {
                tracing::warn!(url = %self.shown, "the cache's PostgreSQL tables were missing: created again");
            }
        }
        Ok(client)
    }

    /// A client error as the cache reads it, without the password.
    pub(super) fn error(&self, error: tokio_postgres::Error) -> StoreError {
        if error.code() == Some(&SqlState::UNDEFINED_TABLE) {
            self.schema_lost.store(true, Ordering::Relaxed);
        }
        let connection = is_connection(&error);
        let text = scrub(&error.to_string(), &self.url, Some(&self.config));
        let text = match error.as_db_error() {
            // The server's own words ("relation ... does not exist"), not
            // only "db error".
            Some(db) => scrub(
                &format!("{text}: {}", db.message()),
                &self.url,
                Some(&self.config),
            ),
            None => text,
        };
        if connection {
            StoreError::Connection(text)
        } else {
            StoreError::Backend(text)
        }
    }

    fn pool_error(&self, error: PoolError) -> StoreError {
        match error {
            PoolError::Backend(e) => self.error(e),
            // No free connection in time: the pool is busy, not broken.
            PoolError::Timeout(TimeoutType::Wait) => StoreError::Timeout,
            PoolError::Timeout(_) => StoreError::Connection(format!(
                "no connection to {} within {:?}",
                self.shown, self.timeout
            )),
            other => {
                StoreError::Connection(scrub(&other.to_string(), &self.url, Some(&self.config)))
            }
        }
    }
}

/// Whether `error` lost the connection (retried by the cache) rather than
/// being the server's answer.
fn is_connection(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08: connection exception; 57P01-03: the server shutting
        // down or restarting under us.
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        // No SQLSTATE: I/O, a closed socket, a protocol fault.
        None => error.as_db_error().is_none(),
    }
}

/// The configuration in `url`, or an error that shows no password.
pub(crate) fn parse(url: &str) -> Result<Config, StoreError> {
    url.parse::<Config>().map_err(|e| {
        StoreError::Backend(format!(
            "{} is not a PostgreSQL URL (postgres://user:password@host:port/db): {}",
            unparsable(url),
            scrub(&e.to_string(), url, None)
        ))
    })
}
