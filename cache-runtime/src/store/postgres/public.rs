//! The public store: [`PostgresStore`] and how it connects
//! ([`PostgresOptions`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::pool::Shared;
use super::{schema, sweep, PostgresBackplane};
use crate::store::{Backplane, StoreError, Subscription};

/// Connections a store's pool holds at most, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// A PostgreSQL store: entries, tag versions, locks and counters in four
/// tables of the URL's database (created on first connect), over a pool of
/// connections, with its [backplane](Self::backplane) (`LISTEN`/`NOTIFY`).
/// The store behind [`CacheBuilder::postgres`](crate::CacheBuilder::postgres),
/// which connects in the background when the server is down at start-up;
/// this one connects when asked, and fails if it cannot.
///
/// It also implements [`Backplane`] itself, so that one value serves both.
///
/// ```no_run
/// use cache_runtime::store::postgres::PostgresStore;
/// use cache_runtime::Cache;
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app:secret@127.0.0.1:5433/app").await?;
/// let cache = Cache::builder()
///     .backplane(store.backplane())
///     .store(store)
///     .build()
///     .await?;
/// # drop(cache);
/// # Ok(())
/// # }
/// ```
pub struct PostgresStore {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shared.shown)
            .finish_non_exhaustive()
    }
}

/// How [`PostgresStore`] connects: a timeout and the pool's size. From
/// [`PostgresStore::options`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    timeout: Duration,
    max_connections: usize,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or a
    /// `key=value` connection string) and creates the tables if they are
    /// missing; with the default [options](Self::options).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::options().connect(url).await
    }

    /// Options to connect with: a timeout (250 ms by default, as
    /// [`CacheBuilder::remote_timeout`](crate::CacheBuilder::remote_timeout)'s)
    /// and the pool's size ([`DEFAULT_MAX_CONNECTIONS`]).
    pub fn options() -> PostgresOptions {
        PostgresOptions {
            timeout: crate::remote::DEFAULT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// A backplane over this store's database: `NOTIFY` through this
    /// store's pool, `LISTEN` on connections of its own. For
    /// [`CacheBuilder::backplane`](crate::CacheBuilder::backplane).
    pub fn backplane(&self) -> PostgresBackplane {
        PostgresBackplane::new(Arc::clone(&self.shared))
    }

    /// A store over `shared`'s pool once its tables exist (created now if
    /// missing, within twice the timeout), sweeping expired rows.
    pub(crate) async fn open(shared: Arc<Shared>) -> Result<Self, StoreError> {
        let create = async {
            let client = shared.client().await?;
            client
                .batch_execute(schema::CREATE)
                .await
                .map_err(|e| shared.error(e))
        };
        match tokio::time::timeout(shared.timeout * 2, create).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(StoreError::Timeout),
        }
        sweep::start(&shared);
        Ok(Self { shared })
    }
}

impl PostgresOptions {
    /// How long connecting, waiting for a pooled connection and creating
    /// the tables may take; the cache bounds every call with its own remote
    /// timeout besides.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most connections the pool holds (at least 1); a call waits
    /// for a free one at most the [timeout](Self::timeout).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// [`PostgresStore::connect`] with these options.
    pub async fn connect(&self, url: &str) -> Result<PostgresStore, StoreError> {
        let shared = Shared::new(url, self.timeout, self.max_connections)?;
        PostgresStore::open(shared).await
    }
}

/// The store's own [backplane](PostgresStore::backplane).
impl Backplane for PostgresStore {
    fn publish(
        &self,
        channel: &str,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let backplane = self.backplane();
        let channel = channel.to_string();
        async move { backplane.publish(&channel, message).await }
    }

    fn subscribe(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send {
        let backplane = self.backplane();
        let channel = channel.to_string();
        async move { backplane.subscribe(&channel).await }
    }
}
