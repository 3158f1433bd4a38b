//! The Redis store (feature `redis`, on by default): [`RedisStore`], a
//! [`Store`](crate::store::Store) over a standalone server or a Redis
//! Cluster, and its [`RedisBackplane`]. The builder's
//! [`redis`](crate::CacheBuilder::redis) and
//! [`redis_cluster`](crate::CacheBuilder::redis_cluster) use the same
//! store (connecting in the background if the server is down at start-up).
//!
//! A standalone server is reached through a connection manager
//! (reconnects by itself), a cluster through a cluster connection (follows
//! slot moves). Only multi-key reads differ: in a cluster an entry and its
//! tags' version keys sit in different slots, so they are read with
//! concurrent single-key `GET`s instead of one `MGET`: one round trip of
//! latency, one command per key.
//!
//! What faults leave behind is repaired where it is found: tag version keys
//! that are missing, of another type or not a version, and lock keys that
//! would never expire, or are of another type. Each replacement of a broken
//! key is logged at `warn` and counted in `store_errors` (through
//! [`EntryStore::take_repairs`]).
//!
//! Inside: URLs and their secrets (`redact`), TLS (`client`), the
//! builder's `.redis(..)` (`connect`), `REDIS_URL` (`env`), the tag
//! version scripts (`versions`), pattern walks (`scan`), the public type
//! (`public`).

mod backplane;
mod client;
mod connect;
mod env;
mod public;
mod redact;
mod scan;
mod versions;

pub(crate) use backplane::Publisher;
pub use backplane::RedisBackplane;
use client::cluster_builder;
pub(crate) use client::{backend, client, hide};
pub(crate) use connect::RedisTarget;
pub(crate) use env::apply as apply_env;
pub use public::{RedisNode, RedisOptions, RedisStore};
pub(crate) use redact::{redact, scrub};

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use std::sync::LazyLock;

use redis::{Client, RedisError, RedisWrite, Script, ToRedisArgs, Value};

use crate::key::StoreKey;
use crate::store::{
    CounterStore, EntryStore, Fetch, Fetched, LockStore, ScanStore, StoreError, TagStore,
};
use futures_util::future::Either;

pub(crate) struct Redis<C> {
    conn: C,
    cluster: bool,
    /// Clients for the backplane's pub/sub connection (a cluster's nodes).
    clients: Vec<Client>,
    /// Broken keys replaced since the counters last took them.
    repairs: AtomicU64,
}

impl Redis<ConnectionManager> {
    /// Connects and checks the connection (and credentials) with a PING.
    pub(crate) async fn connect(
        url: &str,
        root_ca: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client = client(url, root_ca)?;
        // No response timeout of redis-rs's own: every operation already runs
        // under `Remote::call`'s, and a second timer per command showed in
        // the remote hit's profile.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(client.clone(), config);
        Self::checked(connect, vec![client], false, timeout).await
    }
}

impl Redis<ClusterConnection> {
    /// Connects to a cluster through any of `urls` and checks it with a PING.
    /// With `rediss://` URLs every node is reached over TLS; with the `tls`
    /// feature, `root_ca` (PEM) is trusted instead of the system's roots.
    pub(crate) async fn connect_cluster(
        urls: &[String],
        root_ca: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        // `client` also rejects a root CA without the `tls` feature, or with a
        // `redis://` URL, and installs rustls' crypto provider.
        let mut clients = Vec::with_capacity(urls.len());
        for url in urls {
            clients.push(client(url, root_ca)?);
        }
        let builder = cluster_builder(urls, root_ca);
        let connect = async {
            let client = builder
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()?;
            client.get_async_connection().await
        };
        Self::checked(connect, clients, true, timeout).await
    }
}

impl<C: ConnectionLike + Send> Redis<C> {
    /// Awaits `connect` and checks the connection (and credentials) with a
    /// PING, within twice `timeout`. Errors never show the password of the
    /// first of `clients`.
    async fn checked(
        connect: impl Future<Output = Result<C, RedisError>>,
        clients: Vec<Client>,
        cluster: bool,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        // Every seed's password: a cluster's seeds may be written apart.
        let secrets: Vec<String> = clients
            .iter()
            .filter_map(|c| c.get_connection_info().redis_settings().password())
            .map(str::to_string)
            .collect();
        let connect = async {
            let mut conn = connect.await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        };
        match tokio::time::timeout(timeout * 2, connect).await {
            Ok(Ok(conn)) => Ok(Self {
                conn,
                cluster,
                clients,
                repairs: AtomicU64::new(0),
            }),
            Ok(Err(e)) => {
                let mut error = backend(e, None);
                for secret in &secrets {
                    error = match error {
                        StoreError::Backend(t) => StoreError::Backend(hide(t, secret)),
                        StoreError::Connection(t) => StoreError::Connection(hide(t, secret)),
                        other => other,
                    };
                }
                Err(error)
            }
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

impl<C: ConnectionLike + Clone + Send> Redis<C> {
    /// The values of `keys`: one MGET, or concurrent GETs across a cluster's slots.
    async fn values(&self, conn: &mut C, keys: &[String]) -> Result<Vec<Value>, StoreError> {
        if self.cluster {
            return get_each(conn, keys).await;
        }
        redis::cmd("MGET")
            .arg(keys)
            .query_async(conn)
            .await
            .map_err(|e| backend(e, None))
    }

    /// Runs single-key commands whose replies are not needed: one pipeline, or
    /// concurrently one by one across a cluster's slots.
    async fn run_all(&self, conn: &mut C, cmds: Vec<redis::Cmd>) -> Result<(), StoreError> {
        // Nothing to send: an empty pipeline is refused by the client
        // ("empty command"), and nothing is what was asked.
        if cmds.is_empty() {
            return Ok(());
        }
        if self.cluster {
            let each = cmds.into_iter().map(|cmd| {
                let mut conn = conn.clone();
                async move { cmd.query_async::<()>(&mut conn).await }
            });
            for result in join_all(each).await {
                result.map_err(|e| backend(e, None))?;
            }
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd).ignore();
        }
        pipe.query_async::<()>(conn)
            .await
            .map_err(|e| backend(e, None))
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> Redis<C> {
    /// Tag versions from `values` (read for the tag keys `keys(i)`); the keys
    /// that came back missing or broken are created or replaced by the
    /// repair script: a second round trip, only for them.
    async fn versions_of<K: ToRedisArgs + Sync>(
        &self,
        values: impl Iterator<Item = Value>,
        keys: impl Fn(usize) -> K,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::with_capacity(values.size_hint().0);
        // Empty on the hit path: no allocation.
        let mut broken = Vec::new();
        for (i, value) in values.enumerate() {
            match versions::parse(&value) {
                Some(version) => out.push(version),
                None => {
                    out.push(0);
                    broken.push(i);
                }
            }
        }
        if !broken.is_empty() {
            let names: Vec<K> = broken.iter().map(|&i| keys(i)).collect();
            // Boxed: a repair is rare, and its state inline would enlarge
            // every read's future (the hit's allocation and its move).
            let repaired = Box::pin(versions::run(
                &self.conn,
                self.cluster,
                &names,
                versions::Mode::Read,
                &self.repairs,
            ))
            .await?;
            for (i, version) in broken.into_iter().zip(repaired) {
                out[i] = version;
            }
        }
        Ok(out)
    }
}

/// GETs each key on its own, concurrently (keys in different cluster slots).
/// A key of another type reads as nil.
async fn get_each<C: ConnectionLike + Clone + Send, K: ToRedisArgs + Sync>(
    conn: &C,
    keys: &[K],
) -> Result<Vec<Value>, StoreError> {
    let gets = keys.iter().map(|key| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Value>(&mut conn)
                .await
        }
    });
    join_all(gets)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(Value::ServerError(_)) => Ok(Value::Nil),
            Ok(value) => Ok(value),
            // A key of another type reads as nil, as in an MGET: an entry
            // is a miss, a tag key is repaired.
            Err(e) if e.code() == Some("WRONGTYPE") => Ok(Value::Nil),
            Err(e) => Err(backend(e, None)),
        })
        .collect()
}

/// The entry among an MGET's (or GETs') values: the first.
fn entry_of(values: &mut impl Iterator<Item = Value>) -> Option<Vec<u8>> {
    match values.next() {
        Some(Value::BulkString(bytes)) => Some(bytes),
        _ => None,
    }
}

/// Names go into commands as they are, or shortened when too long.
impl ToRedisArgs for StoreKey<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        self.with_bytes(|bytes| out.write_arg(bytes));
    }
}

/// `SET key token NX PX ttl`, and when that fails because the key holds
/// something that would never go away by itself (a string without an expiry:
/// no holder of ours sets one; or another type), takes it over with our token
/// and TTL at once instead of letting waiters wait out their bound. 1: taken;
/// 0: held by someone; 2: taken over.
static TRY_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('PTTL', KEYS[1]) >= 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
"#,
    )
});

static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end")
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    )
});

/// `SET key bytes PX ttl`.
fn set_px(key: &str, bytes: Vec<u8>, ttl: Duration) -> redis::Cmd {
    let mut set = redis::cmd("SET");
    set.arg(key).arg(bytes).arg("PX").arg(millis(ttl));
    set
}

/// A TTL in milliseconds for `PX`: at least 1, at most about 100 years
/// (Redis refuses a `PX` that overflows its clock).
fn millis(d: Duration) -> u64 {
    crate::clock::millis(d).max(1)
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> EntryStore for Redis<C> {
    fn fetch(&self, keys: Fetch<'_>) -> impl Future<Output = Result<Fetched, StoreError>> + Send {
        // Three shapes of read, one future type (`Either`): the cache boxes
        // it once, as each was boxed before.
        let conn = self.conn.clone();
        if self.cluster {
            // Boxed: a cluster read is a GET per key already, and its state
            // inline would enlarge the standalone reads' future.
            return Either::Left(Box::pin(async move {
                let names: Vec<StoreKey<'_>> = std::iter::once(keys.entry())
                    .chain(keys.tag_names())
                    .collect();
                let mut values = get_each(&conn, &names).await?.into_iter();
                let entry = entry_of(&mut values);
                let versions = self.versions_of(values, |i| names[i + 1]).await?;
                Ok(Fetched { entry, versions })
            }));
        }
        if keys.tags.is_empty() {
            // The entry alone: one GET, the cheapest read there is.
            let mut cmd = redis::Cmd::with_capacity(2, 128);
            cmd.arg("GET").arg(keys.entry());
            return Either::Right(Either::Left(async move {
                let mut conn = conn;
                // The raw reply: an error reply (a key of another Redis type)
                // is a miss, as MGET reads it.
                match conn.req_packed_command(&cmd).await {
                    Ok(Value::BulkString(bytes)) => Ok(Fetched {
                        entry: Some(bytes),
                        versions: Vec::new(),
                    }),
                    // An error reply other than WRONGTYPE (NOPERM, a
                    // script error) is the store's error, not a miss.
                    Ok(Value::ServerError(e)) if e.code() != "WRONGTYPE" => {
                        Err(StoreError::Backend(e.to_string()))
                    }
                    Ok(_) => Ok(Fetched::default()),
                    Err(e) if e.code() == Some("WRONGTYPE") => Ok(Fetched::default()),
                    Err(e) => Err(backend(e, None)),
                }
            }));
        }
        // One MGET: the entry and its tag versions in one round trip. A key of
        // another Redis type reads as nil: an entry is a miss, a tag key is
        // repaired (a second round trip, only then). The names are written
        // straight into the command, sized up front.
        let mut cmd = redis::Cmd::with_capacity(2 + keys.tags.len(), 64 * (2 + keys.tags.len()));
        cmd.arg("MGET").arg(keys.entry());
        for tag in keys.tag_names() {
            cmd.arg(tag);
        }
        Either::Right(Either::Right(async move {
            let mut conn = conn;
            // As a `Value`: converting to `Vec<Value>` re-collects the array.
            let reply: Value = cmd
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            match reply {
                Value::Array(values) => {
                    let mut values = values.into_iter();
                    let entry = entry_of(&mut values);
                    let tag_key = |i: usize| StoreKey::Tag {
                        namespace: keys.namespace,
                        tag: &keys.tags[i],
                    };
                    let versions = self.versions_of(values, tag_key).await?;
                    Ok(Fetched { entry, versions })
                }
                other => Err(StoreError::Backend(format!(
                    "unexpected MGET reply: {other:?}"
                ))),
            }
        }))
    }

    fn fetch_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let values = self.values(&mut conn, keys).await?;
            Ok(values
                .into_iter()
                .map(|v| match v {
                    Value::BulkString(bytes) => Some(bytes),
                    _ => None,
                })
                .collect())
        }
    }

    fn fetch_batch(
        &self,
        requests: &[Fetch<'_>],
    ) -> impl Future<Output = Result<Vec<Fetched>, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            match requests {
                [] => return Ok(Vec::new()),
                // One request: `fetch`'s shapes (a lone GET when untagged).
                [one] => return Ok(vec![self.fetch(*one).await?]),
                _ => {}
            }
            // Every entry followed by its tags' counters: one MGET, or
            // concurrent GETs across a cluster's slots.
            let names: Vec<StoreKey<'_>> = requests
                .iter()
                .flat_map(|r| std::iter::once(r.entry()).chain(r.tag_names()))
                .collect();
            let values = if self.cluster {
                get_each(&conn, &names).await?
            } else {
                let mut cmd = redis::Cmd::with_capacity(1 + names.len(), 64 * (1 + names.len()));
                cmd.arg("MGET");
                for name in &names {
                    cmd.arg(name);
                }
                match cmd
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| backend(e, None))?
                {
                    Value::Array(values) => values,
                    other => {
                        return Err(StoreError::Backend(format!(
                            "unexpected MGET reply: {other:?}"
                        )))
                    }
                }
            };
            if values.len() != names.len() {
                return Err(StoreError::Backend(format!(
                    "MGET of {} keys answered {}",
                    names.len(),
                    values.len()
                )));
            }
            let mut values = values.into_iter();
            let mut entries = Vec::with_capacity(requests.len());
            let mut tag_values = Vec::new();
            let mut tag_names = Vec::new();
            for request in requests {
                entries.push(entry_of(&mut values));
                for name in request.tag_names() {
                    // Counted above: as many values as names.
                    tag_values.push(values.next().unwrap_or(Value::Nil));
                    tag_names.push(name);
                }
            }
            // Broken or missing counters of the whole batch: one repair.
            let mut versions = self
                .versions_of(tag_values.into_iter(), |i| tag_names[i])
                .await?
                .into_iter();
            Ok(requests
                .iter()
                .zip(entries)
                .map(|(request, entry)| Fetched {
                    entry,
                    versions: versions.by_ref().take(request.tag_count()).collect(),
                })
                .collect())
        }
    }

    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let mut conn = self.conn.clone();
        let set = set_px(key, bytes, ttl);
        async move {
            set.query_async::<()>(&mut conn)
                .await
                .map_err(|e| backend(e, None))
        }
    }

    fn put_many(
        &self,
        items: Vec<(String, Vec<u8>, Duration)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            let sets = items
                .into_iter()
                .map(|(key, bytes, ttl)| set_px(&key, bytes, ttl))
                .collect();
            self.run_all(&mut conn, sets).await
        }
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            let removed: u64 = redis::cmd("UNLINK")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(removed > 0)
        }
    }

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            redis::cmd("PING")
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| backend(e, None))
        }
    }

    fn take_repairs(&self) -> u64 {
        // A plain load first: the counter is nearly always 0, and a swap on
        // every call would write a cache line shared by every thread.
        if self.repairs.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.repairs.swap(0, Ordering::Relaxed)
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> TagStore for Redis<C> {
    fn versions(
        &self,
        tag_keys: &[String],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            if tag_keys.is_empty() {
                return Ok(Vec::new());
            }
            let values = self.values(&mut conn, tag_keys).await?;
            self.versions_of(values.into_iter(), |i| tag_keys[i].as_str())
                .await
        }
    }

    fn bump(
        &self,
        tag_keys: &[String],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send {
        // A script, not INCR: a missing key starts from a fresh base, not
        // 0, and a broken one is replaced (see `versions`).
        versions::run(
            &self.conn,
            self.cluster,
            tag_keys,
            versions::Mode::Bump,
            &self.repairs,
        )
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> LockStore for Redis<C> {
    fn try_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            let taken: i64 = TRY_LOCK
                .key(key)
                .arg(token)
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            if taken == 2 {
                self.repairs.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    key,
                    "a lock key without an expiry, or of another type, was taken over"
                );
            }
            Ok(taken != 0)
        }
    }

    fn extend_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            // Scripts are fine here: locks are off the hit path.
            let done: i64 = EXTEND
                .key(key)
                .arg(token)
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(done == 1)
        }
    }

    fn unlock(
        &self,
        key: &str,
        token: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            let done: i64 = UNLOCK
                .key(key)
                .arg(token)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(done == 1)
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> CounterStore for Redis<C> {
    fn increment(
        &self,
        key: &str,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            redis::cmd("INCRBY")
                .arg(key)
                .arg(delta)
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))
        }
    }

    fn value(&self, key: &str) -> impl Future<Output = Result<i64, StoreError>> + Send {
        let mut conn = self.conn.clone();
        async move {
            // A `GET`, not `INCRBY 0`: a counter no write made yet is not
            // created. What is not a number reads as 0 (the write log then
            // starts afresh).
            let bytes: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(bytes
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> ScanStore for Redis<C> {
    type Node = scan::Node<C>;

    fn scan_nodes(&self) -> impl Future<Output = Result<Vec<Self::Node>, StoreError>> + Send {
        let conn = self.conn.clone();
        async move {
            if self.cluster {
                return scan::masters(&self.clients, conn).await;
            }
            Ok(vec![scan::Node::Standalone(conn)])
        }
    }
}

impl<C: Clone> Redis<C> {
    /// The connection the backplane publishes on: the store's own.
    pub(crate) fn connection(&self) -> C {
        self.conn.clone()
    }

    /// The clients the backplane subscribes through (a cluster's seeds).
    fn clients(&self) -> Vec<Client> {
        self.clients.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    #[test]
    fn names_go_into_commands_as_their_strings() {
        let short = Key::manual("user:7");
        let long = Key::manual(&"x".repeat(400));
        for key in [&short, &long] {
            let entry = StoreKey::Entry {
                namespace: "app",
                key,
            };
            assert_eq!(entry.to_redis_args(), vec![entry.name().into_bytes()]);
        }
        let tag = StoreKey::Tag {
            namespace: "app",
            tag: "users",
        };
        assert_eq!(tag.to_redis_args(), vec![b"app#tag:users".to_vec()]);
        assert!(long.full("app").len() <= crate::key::MAX_KEY_LEN);
    }
}
