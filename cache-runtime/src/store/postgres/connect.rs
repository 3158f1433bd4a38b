//! The builder's PostgreSQL tier: `.postgres(url)`, and the connection
//! `build()` makes: a PostgreSQL store and its backplane, connected now or
//! in the background.

use std::sync::Arc;
use std::time::Duration;

use super::pool::Shared;
use super::{PostgresBackplane, PostgresStore, DEFAULT_MAX_CONNECTIONS};
use crate::remote::deferred::{Connect, Deferred};
use crate::remote::store::{DynBackplane, DynStore};
use crate::{CacheBuilder, Error, Result};

impl CacheBuilder {
    /// A remote tier on PostgreSQL, `postgres://user:password@host:port/db`
    /// (or a `key=value` connection string): a PostgreSQL store (four tables
    /// in that database, created if missing) and its backplane
    /// (`LISTEN`/`NOTIFY`). With `.memory(..)` too, reads try memory, then
    /// PostgreSQL, then the function, and writes go to both
    /// (write-through); alone, every value lives in PostgreSQL only
    /// (storage-only). Replaces a [`redis`](Self::redis) or
    /// [`store`](Self::store) tier set before.
    ///
    /// [`build`](Self::build) fails for a malformed URL, never because the
    /// server is unreachable: the cache then connects in the background.
    /// TLS is not supported yet (`sslmode=require` fails to connect).
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.postgres = Some(url.into());
        self.store = None;
        #[cfg(feature = "redis")]
        {
            self.redis = None;
        }
        self
    }

    /// Connects to the PostgreSQL tier if one is set: its store, its
    /// backplane, and whether it is connected now (see [`connect`]).
    pub(crate) async fn connect_postgres(
        &self,
        timeout: Duration,
    ) -> Result<Option<(Box<dyn DynStore>, Arc<dyn DynBackplane>, bool)>> {
        match &self.postgres {
            None => Ok(None),
            Some(url) => connect(url, timeout).await.map(Some),
        }
    }
}

/// Builds the pool of `url` (a malformed URL is the caller's error) and
/// creates the tables; if that fails for a reason the server gave
/// (unreachable, refused, a wrong password), a store that keeps trying in
/// the background instead. `true` when connected now.
pub(crate) async fn connect(
    url: &str,
    timeout: Duration,
) -> Result<(Box<dyn DynStore>, Arc<dyn DynBackplane>, bool)> {
    let shared =
        Shared::new(url, timeout, DEFAULT_MAX_CONNECTIONS).map_err(|source| Error::Connect {
            url: super::redact::unparsable(url),
            source,
        })?;
    let shown = shared.shown.clone();
    // The backplane works on the pool whether the tables exist or not.
    let transport: Arc<dyn DynBackplane> = Arc::new(PostgresBackplane::new(Arc::clone(&shared)));
    let attempt: Connect = Arc::new(move || {
        let shared = Arc::clone(&shared);
        Box::pin(async move {
            let store: Box<dyn DynStore> = Box::new(PostgresStore::open(shared).await?);
            Ok(store)
        })
    });
    match attempt().await {
        Ok(store) => Ok((store, transport, true)),
        Err(error) => {
            let store = Deferred::start(attempt, &error, shown);
            Ok((Box::new(store), transport, false))
        }
    }
}
