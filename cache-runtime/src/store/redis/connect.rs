//! The builder's Redis tier: `.redis(url)`, `.redis_cluster(urls)` and
//! `.redis_tls_root_ca(pem)`, and the connection `build()` makes: a Redis
//! store and its backplane, connected now or in the background.

use std::sync::Arc;
use std::time::Duration;

use super::{client, redact, Publisher, Redis, RedisBackplane};
use crate::remote::deferred::{Connect, Deferred};
use crate::remote::store::{DynBackplane, DynStore};
use crate::{CacheBuilder, Error, Result};

/// Where the Redis tier is.
pub(crate) enum RedisTarget {
    Standalone(String),
    Cluster(Vec<String>),
}

impl CacheBuilder {
    /// A remote tier on a standalone Redis server,
    /// `redis://[user:password@]host:port[/db]`: a Redis [store](Self::store)
    /// and its [backplane](Self::backplane) (pub/sub). With `.memory(..)`
    /// too, reads try memory, then Redis, then the function, and writes go
    /// to both (write-through); alone, every value lives in Redis only
    /// (storage-only).
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(RedisTarget::Standalone(url.into()));
        self.store = None;
        #[cfg(feature = "postgres")]
        {
            self.postgres = None;
        }
        self
    }

    /// A remote tier on a Redis Cluster, reached through any of `urls` (the
    /// client discovers the rest): a Redis store and its backplane, as
    /// [`redis`](Self::redis), in the same modes.
    /// The URLs share one password (or ACL user) and one scheme: with
    /// `rediss://` (feature `tls`) every node is reached over TLS, see
    /// [`redis_tls_root_ca`](Self::redis_tls_root_ca) for a private CA.
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_cluster<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.redis = Some(RedisTarget::Cluster(
            urls.into_iter().map(Into::into).collect(),
        ));
        self.store = None;
        #[cfg(feature = "postgres")]
        {
            self.postgres = None;
        }
        self
    }

    /// Trusts this CA certificate (PEM) for `rediss://` URLs, instead of the
    /// system's roots (e.g. a private CA): the server of
    /// [`redis`](Self::redis), or every node of
    /// [`redis_cluster`](Self::redis_cluster). Needs the `tls` feature;
    /// without it, or with a `redis://` URL, `build()` returns an error.
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca = Some(pem.into());
        self
    }

    /// Connects to the Redis tier if one is set: its store, its backplane,
    /// and whether it is connected now (see [`connect`]).
    pub(crate) async fn connect_redis(
        &self,
        timeout: Duration,
    ) -> Result<Option<(Box<dyn DynStore>, Arc<dyn DynBackplane>, bool)>> {
        match &self.redis {
            None => Ok(None),
            Some(target) => connect(target, self.root_ca.as_deref(), timeout)
                .await
                .map(Some),
        }
    }
}

/// Connects to `target` once; if that fails for a reason the server gave
/// (unreachable, refused, a wrong password), a store that connects in the
/// background instead. The clients are for the backplane; `true` when
/// connected now. Fails only when a URL or the TLS settings are unusable.
pub(crate) async fn connect(
    target: &RedisTarget,
    root_ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<(Box<dyn DynStore>, Arc<dyn DynBackplane>, bool)> {
    let (urls, shown) = match target {
        RedisTarget::Standalone(url) => (vec![url.clone()], redact(url)),
        RedisTarget::Cluster(urls) => (
            urls.clone(),
            urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(","),
        ),
    };
    // What needs no server is checked first: these errors are the caller's.
    if let Err(source) = check_root_ca(root_ca) {
        return Err(Error::Connect { url: shown, source });
    }
    let mut clients = Vec::with_capacity(urls.len());
    for url in &urls {
        let client = client(url, root_ca).map_err(|source| Error::Connect {
            url: shown.clone(),
            source,
        })?;
        clients.push(client);
    }
    let cluster = matches!(target, RedisTarget::Cluster(_));
    let root_ca = root_ca.map(<[u8]>::to_vec);
    // The backplane publishes on the store's connection once there is one.
    let publisher = Arc::new(std::sync::OnceLock::new());
    let transport: Arc<dyn DynBackplane> =
        Arc::new(RedisBackplane::new(clients, publisher.clone()));
    let attempt: Connect = Arc::new(move || {
        let (urls, root_ca, publisher) = (urls.clone(), root_ca.clone(), publisher.clone());
        Box::pin(async move {
            let store: Box<dyn DynStore> = if cluster {
                let store = Redis::connect_cluster(&urls, root_ca.as_deref(), timeout).await?;
                let _ = publisher.set(Publisher::Cluster(store.connection()));
                Box::new(store)
            } else {
                let url = urls.first().map_or("", String::as_str);
                let store = Redis::connect(url, root_ca.as_deref(), timeout).await?;
                let _ = publisher.set(Publisher::Standalone(store.connection()));
                Box::new(store)
            };
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

/// Refuses a root CA without a certificate: the client would take it as an
/// empty list and trust nothing (a mistake, not an outage).
pub(super) fn check_root_ca(root_ca: Option<&[u8]>) -> Result<(), crate::StoreError> {
    if root_ca.is_some_and(|pem| !contains(pem, b"-----BEGIN CERTIFICATE-----")) {
        return Err(crate::StoreError::Backend(
            "the TLS root CA holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(())
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
