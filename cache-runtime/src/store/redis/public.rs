//! The Redis store as a public [`Store`](crate::store::Store): what
//! `.redis(url)` builds, for [`CacheBuilder::store`](crate::CacheBuilder::store),
//! a test, or a wrapper of one's own. One type for a standalone server and a
//! cluster: each call goes to the connection's own implementation (`Redis`,
//! in `mod.rs`) without a box, through `Either`.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::Either;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;

use super::connect::check_root_ca;
use super::scan::Node;
use super::{Publisher, Redis, RedisBackplane};
use crate::store::{
    Backplane, CounterStore, EntryStore, Fetch, Fetched, LockStore, ScanNode, ScanStore,
    StoreError, Subscription, TagStore,
};

/// A Redis store: a standalone server (reconnecting by itself) or a Redis
/// Cluster (following slot moves), with its [backplane](Self::backplane)
/// (pub/sub). The store behind [`CacheBuilder::redis`](crate::CacheBuilder::redis)
/// and [`redis_cluster`](crate::CacheBuilder::redis_cluster), which
/// connect in the background when the server is down at start-up; this one
/// connects when asked, and fails if it cannot.
///
/// It also implements [`Backplane`] itself (publishing on its connection,
/// subscribing on connections of its own), so that one value serves both.
///
/// ```no_run
/// use cache_runtime::store::redis::RedisStore;
/// use cache_runtime::Cache;
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6380").await?;
/// let cache = Cache::builder()
///     .backplane(store.backplane())
///     .store(store)
///     .build()
///     .await?;
///
/// // A cluster, with a one-second connection timeout:
/// let cluster = RedisStore::options()
///     .timeout(std::time::Duration::from_secs(1))
///     .connect_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .await?;
/// # drop((cache, cluster));
/// # Ok(())
/// # }
/// ```
pub struct RedisStore {
    conn: Conn,
    backplane: RedisBackplane,
}

/// A standalone server's connection or a cluster's.
enum Conn {
    Standalone(Redis<ConnectionManager>),
    Cluster(Redis<ClusterConnection>),
}

/// How [`RedisStore`] connects: a timeout and, for `rediss://` URLs, a root
/// CA. From [`RedisStore::options`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    timeout: Duration,
    root_ca: Option<Vec<u8>>,
}

impl RedisStore {
    /// Connects to a standalone server,
    /// `redis://[user:password@]host:port[/db]` (`rediss://` with the `tls`
    /// feature), and checks the connection and credentials with a `PING`;
    /// with the default [options](Self::options).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::options().connect(url).await
    }

    /// Connects to a Redis Cluster through any of `urls` (the client finds
    /// the other nodes) and checks it with a `PING`; with the default
    /// [options](Self::options). The URLs share one password (or ACL user)
    /// and one scheme.
    pub async fn connect_cluster<I, S>(urls: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::options().connect_cluster(urls).await
    }

    /// Options to connect with: a timeout (250 ms by default, as
    /// [`CacheBuilder::remote_timeout`](crate::CacheBuilder::remote_timeout)'s)
    /// and a TLS root CA.
    pub fn options() -> RedisOptions {
        RedisOptions {
            timeout: crate::remote::DEFAULT_TIMEOUT,
            root_ca: None,
        }
    }

    /// A backplane over this store's server or cluster: `PUBLISH` on this
    /// store's connection, `SUBSCRIBE` on connections of its own. For
    /// [`CacheBuilder::backplane`](crate::CacheBuilder::backplane).
    pub fn backplane(&self) -> RedisBackplane {
        self.backplane.clone()
    }

    /// A store over `conn`, with a backplane publishing on it.
    fn new(conn: Conn) -> Self {
        let (clients, publisher) = match &conn {
            Conn::Standalone(r) => (r.clients(), Publisher::Standalone(r.connection())),
            Conn::Cluster(r) => (r.clients(), Publisher::Cluster(r.connection())),
        };
        let set = Arc::new(OnceLock::new());
        let _ = set.set(publisher);
        Self {
            conn,
            backplane: RedisBackplane::new(clients, set),
        }
    }
}

impl RedisOptions {
    /// How long connecting (and a cluster's replies) may take; the cache
    /// bounds every call with its own remote timeout besides.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts this CA certificate (PEM) for `rediss://` URLs instead of the
    /// system's roots. Needs the `tls` feature: without it, or with a
    /// `redis://` URL, connecting fails.
    pub fn tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca = Some(pem.into());
        self
    }

    /// [`RedisStore::connect`] with these options.
    pub async fn connect(&self, url: &str) -> Result<RedisStore, StoreError> {
        check_root_ca(self.root_ca.as_deref())?;
        let redis = Redis::connect(url, self.root_ca.as_deref(), self.timeout).await?;
        Ok(RedisStore::new(Conn::Standalone(redis)))
    }

    /// [`RedisStore::connect_cluster`] with these options.
    pub async fn connect_cluster<I, S>(&self, urls: I) -> Result<RedisStore, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        check_root_ca(self.root_ca.as_deref())?;
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        if urls.is_empty() {
            return Err(StoreError::Backend("no Redis Cluster URL".into()));
        }
        let redis = Redis::connect_cluster(&urls, self.root_ca.as_deref(), self.timeout).await?;
        Ok(RedisStore::new(Conn::Cluster(redis)))
    }
}

/// `$call` on the standalone or the cluster connection, as one future type.
macro_rules! each {
    ($conn:expr, $r:ident => $call:expr) => {
        match $conn {
            Conn::Standalone($r) => Either::Left($call),
            Conn::Cluster($r) => Either::Right($call),
        }
    };
}

impl EntryStore for RedisStore {
    fn fetch(
        &self,
        request: Fetch<'_>,
    ) -> impl Future<Output = Result<Fetched, StoreError>> + Send {
        each!(&self.conn, r => r.fetch(request))
    }

    fn fetch_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>> + Send {
        each!(&self.conn, r => r.fetch_many(keys))
    }

    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        each!(&self.conn, r => r.put(key, bytes, ttl))
    }

    fn put_many(
        &self,
        items: Vec<(String, Vec<u8>, Duration)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        each!(&self.conn, r => r.put_many(items))
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        each!(&self.conn, r => r.delete(key))
    }

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        each!(&self.conn, r => r.ping())
    }

    fn take_repairs(&self) -> u64 {
        match &self.conn {
            Conn::Standalone(r) => r.take_repairs(),
            Conn::Cluster(r) => r.take_repairs(),
        }
    }
}

impl TagStore for RedisStore {
    fn versions(
        &self,
        tag_keys: &[String],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send {
        each!(&self.conn, r => r.versions(tag_keys))
    }

    fn bump(
        &self,
        tag_keys: &[String],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send {
        each!(&self.conn, r => r.bump(tag_keys))
    }
}

impl LockStore for RedisStore {
    fn try_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        each!(&self.conn, r => r.try_lock(key, token, ttl))
    }

    fn extend_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        each!(&self.conn, r => r.extend_lock(key, token, ttl))
    }

    fn unlock(
        &self,
        key: &str,
        token: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        each!(&self.conn, r => r.unlock(key, token))
    }
}

impl CounterStore for RedisStore {
    fn increment(
        &self,
        key: &str,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        each!(&self.conn, r => r.increment(key, delta))
    }

    fn value(&self, key: &str) -> impl Future<Output = Result<i64, StoreError>> + Send {
        each!(&self.conn, r => r.value(key))
    }
}

/// One part of a [`RedisStore`] walked by `SCAN`: the server, or one master
/// of a cluster.
pub struct RedisNode(Either<Node<ConnectionManager>, Node<ClusterConnection>>);

impl ScanStore for RedisStore {
    type Node = RedisNode;

    async fn scan_nodes(&self) -> Result<Vec<RedisNode>, StoreError> {
        Ok(match &self.conn {
            Conn::Standalone(r) => r
                .scan_nodes()
                .await?
                .into_iter()
                .map(|n| RedisNode(Either::Left(n)))
                .collect(),
            Conn::Cluster(r) => r
                .scan_nodes()
                .await?
                .into_iter()
                .map(|n| RedisNode(Either::Right(n)))
                .collect(),
        })
    }
}

impl ScanNode for RedisNode {
    fn scan(
        &self,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> impl Future<Output = Result<(u64, Vec<String>), StoreError>> + Send {
        match &self.0 {
            Either::Left(n) => Either::Left(n.scan(cursor, pattern, count)),
            Either::Right(n) => Either::Right(n.scan(cursor, pattern, count)),
        }
    }

    fn unlink(&self, keys: &[String]) -> impl Future<Output = Result<u64, StoreError>> + Send {
        match &self.0 {
            Either::Left(n) => Either::Left(n.unlink(keys)),
            Either::Right(n) => Either::Right(n.unlink(keys)),
        }
    }
}

/// The store's own [backplane](RedisStore::backplane).
impl Backplane for RedisStore {
    fn publish(
        &self,
        channel: &str,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.backplane.publish(channel, message)
    }

    fn subscribe(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send {
        self.backplane.subscribe(channel)
    }
}
