//! The Redis implementation of the remote tier (standalone server, through a
//! `ConnectionManager` that reconnects by itself).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::LazyLock;

use redis::{Client, RedisError, Script, Value};

use super::store::{Fetched, RemoteStore, StoreError, StoreFuture};

pub(crate) struct RedisStore {
    conn: ConnectionManager,
    client: Client,
}

/// `url` with any password replaced, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_string(),
        },
        None => "<unparsable url>".to_string(),
    }
}

fn backend(error: RedisError, secret: Option<&str>) -> StoreError {
    let mut text = error.to_string();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    StoreError::Backend(text)
}

impl RedisStore {
    /// Connects and checks the connection (and credentials) with a PING.
    pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|e| backend(e, None))?;
        let kept = client.clone();
        let secret = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_string);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connect = async {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        };
        match tokio::time::timeout(timeout * 2, connect).await {
            Ok(Ok(conn)) => Ok(Self { conn, client: kept }),
            Ok(Err(e)) => Err(backend(e, secret.as_deref())),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

impl RedisStore {
    /// A client for the backplane's own pub/sub connection.
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }
}

static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end")
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    )
});

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn version_of(value: &Value) -> u64 {
    match value {
        Value::Nil => 0,
        Value::Int(n) => *n as u64,
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            // A version that does not parse matches no recorded version.
            .unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

impl RemoteStore for RedisStore {
    fn fetch<'a>(&'a self, key: &'a str, tag_keys: &'a [String]) -> StoreFuture<'a, Fetched> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            // One MGET: the entry and its tag versions in one round trip. A key
            // of another Redis type reads as nil, i.e. a miss.
            let values: Vec<Value> = redis::cmd("MGET")
                .arg(key)
                .arg(tag_keys)
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            let mut values = values.into_iter();
            let entry = match values.next() {
                Some(Value::BulkString(bytes)) => Some(bytes),
                _ => None,
            };
            Ok(Fetched {
                entry,
                versions: values.map(|v| version_of(&v)).collect(),
            })
        })
    }

    fn versions<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, Vec<u64>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            if tag_keys.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Value> = redis::cmd("MGET")
                .arg(tag_keys)
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(values.iter().map(version_of).collect())
        })
    }

    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| backend(e, None))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let removed: u64 = redis::cmd("UNLINK")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(removed > 0)
        })
    }

    fn bump<'a>(&'a self, tag_keys: &'a [String]) -> StoreFuture<'a, ()> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for key in tag_keys {
                pipe.cmd("INCR").arg(key).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| backend(e, None))
        })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(set.is_some())
        })
    }

    fn extend_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            // Scripts are fine here: locks are off the hit path.
            let done: i64 = EXTEND
                .key(key)
                .arg(token)
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(done == 1)
        })
    }

    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let done: i64 = UNLOCK
                .key(key)
                .arg(token)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(e, None))?;
            Ok(done == 1)
        })
    }

    fn publish<'a>(&'a self, channel: &'a str, message: Vec<u8>) -> StoreFuture<'a, ()> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| backend(e, None))
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| backend(e, None))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:7000/"),
            "redis://:***@127.0.0.1:7000/"
        );
        assert_eq!(
            redact("redis://app:s3cret@host:1/0"),
            "redis://app:***@host:1/0"
        );
        assert_eq!(redact("redis://127.0.0.1:7000"), "redis://127.0.0.1:7000");
    }

    #[test]
    fn versions_parse_or_match_nothing() {
        assert_eq!(version_of(&Value::Nil), 0);
        assert_eq!(version_of(&Value::BulkString(b"42".to_vec())), 42);
        assert_eq!(version_of(&Value::BulkString(b"x".to_vec())), u64::MAX);
    }
}
