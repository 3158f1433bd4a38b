//! Redis' backplane: `PUBLISH` on the store's own connection, `SUBSCRIBE`
//! on a pub/sub connection of its own, through each seed in turn (a
//! cluster's nodes: `PUBLISH` reaches every node of a cluster), so that a
//! node that is down is skipped at the next subscription.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::Client;

use super::backend;
use crate::store::{Backplane, StoreError, Subscription};

/// The connection `PUBLISH` goes on: the store's, once it is connected.
#[derive(Clone)]
pub(crate) enum Publisher {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Redis' [`Backplane`]: `PUBLISH` on the store's connection, `SUBSCRIBE`
/// on a pub/sub connection of its own through each seed in turn. From
/// [`RedisStore::backplane`](super::RedisStore::backplane); clones share
/// the connection.
pub struct RedisBackplane {
    clients: Vec<Client>,
    /// The seed the next subscription goes through.
    next: AtomicUsize,
    /// Set when the store connects (at once, or in the background:
    /// `remote::deferred`); until then a publication fails as a connection
    /// fault, as the store's operations do.
    publisher: Arc<OnceLock<Publisher>>,
}

impl Clone for RedisBackplane {
    fn clone(&self) -> Self {
        Self {
            clients: self.clients.clone(),
            next: AtomicUsize::new(self.next.load(Ordering::Relaxed)),
            publisher: Arc::clone(&self.publisher),
        }
    }
}

impl RedisBackplane {
    /// A backplane over `clients`, publishing once `publisher` is set.
    pub(crate) fn new(clients: Vec<Client>, publisher: Arc<OnceLock<Publisher>>) -> Self {
        Self {
            clients,
            next: AtomicUsize::new(0),
            publisher,
        }
    }
}

impl Backplane for RedisBackplane {
    fn publish(
        &self,
        channel: &str,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let publisher = self.publisher.get().cloned();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        async move {
            let outcome = match publisher {
                Some(Publisher::Standalone(mut conn)) => cmd.query_async::<()>(&mut conn).await,
                Some(Publisher::Cluster(mut conn)) => cmd.query_async::<()>(&mut conn).await,
                None => {
                    return Err(StoreError::Connection(
                        "not connected since start-up".into(),
                    ))
                }
            };
            outcome.map_err(|e| backend(e, None))
        }
    }

    fn subscribe(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send {
        let next = self.next.fetch_add(1, Ordering::Relaxed);
        let client = self.clients.get(next % self.clients.len().max(1)).cloned();
        async move {
            let client = client.ok_or_else(|| StoreError::Backend("no Redis URL".into()))?;
            let mut pubsub = client
                .get_async_pubsub()
                .await
                .map_err(|e| backend(e, None))?;
            pubsub
                .subscribe(channel)
                .await
                .map_err(|e| backend(e, None))?;
            let messages = pubsub
                .into_on_message()
                .map(|message| message.get_payload_bytes().to_vec());
            Ok(Subscription::new(messages))
        }
    }
}
