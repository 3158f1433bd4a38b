//! The nodes of a pattern walk on Redis (see `remote::walk`): the server
//! itself, or each master of a cluster, one `SCAN` page or one `UNLINK`
//! batch per call.
//!
//! `SCAN` runs per node in a cluster (a cluster connection would send it to
//! one node only), on a connection to that node. The keys it finds sit in
//! many slots, which one multi-key `UNLINK` refuses (`CROSSSLOT`, even on one
//! node), and so does a cluster pipeline: in a cluster they go as concurrent
//! single-key `UNLINK`s through the cluster connection (one round trip of
//! latency), which sends each to its slot's owner and follows a slot that
//! moved.

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Client, Value};

use super::backend;
use crate::store::{ScanNode, StoreError};

/// One `SCAN cursor MATCH pattern COUNT count` page on `conn`.
async fn page<C: ConnectionLike + Send>(
    mut conn: C,
    cursor: u64,
    pattern: &str,
    count: u32,
) -> Result<(u64, Vec<String>), StoreError> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count)
        .query_async(&mut conn)
        .await
        .map_err(|e| backend(e, None))
}

/// One node of a walk: a standalone server (`SCAN` and one multi-key
/// `UNLINK` per batch on the store's own connection), or one master of a
/// cluster (`SCAN` on a connection to it, `UNLINK` through the cluster
/// connection: see the module's note).
pub(crate) enum Node<C> {
    Standalone(C),
    Master {
        node: MultiplexedConnection,
        cluster: C,
    },
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> ScanNode for Node<C> {
    async fn scan(
        &self,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        match self {
            Node::Standalone(conn) => page(conn.clone(), cursor, pattern, count).await,
            Node::Master { node, .. } => page(node.clone(), cursor, pattern, count).await,
        }
    }

    async fn unlink(&self, keys: &[String]) -> Result<u64, StoreError> {
        match self {
            Node::Standalone(conn) => {
                let mut conn = conn.clone();
                redis::cmd("UNLINK")
                    .arg(keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| backend(e, None))
            }
            Node::Master { cluster, .. } => {
                let each = join_all(keys.iter().map(|key| {
                    let mut conn = cluster.clone();
                    async move {
                        redis::cmd("UNLINK")
                            .arg(key)
                            .query_async::<u64>(&mut conn)
                            .await
                    }
                }))
                .await;
                let mut removed = 0;
                for one in each {
                    removed += one.map_err(|e| backend(e, None))?;
                }
                Ok(removed)
            }
        }
    }
}

/// Every master among the cluster's `clients` (asked concurrently, one round
/// trip each, `ROLE`). A node that cannot be asked fails the whole search:
/// a walk that skipped a master would leave its keys behind.
pub(super) async fn masters<C: ConnectionLike + Clone + Send + Sync + 'static>(
    clients: &[Client],
    cluster: C,
) -> Result<Vec<Node<C>>, StoreError> {
    let asked = join_all(clients.iter().map(|client| async move {
        let mut node = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| backend(e, None))?;
        let role: Value = redis::cmd("ROLE")
            .query_async(&mut node)
            .await
            .map_err(|e| backend(e, None))?;
        let master = matches!(&role, Value::Array(items)
            if matches!(items.first(), Some(Value::BulkString(b)) if b == b"master"));
        Ok::<_, StoreError>(master.then_some(node))
    }))
    .await;
    let mut nodes = Vec::new();
    for node in asked {
        if let Some(node) = node? {
            nodes.push(Node::Master {
                node,
                cluster: cluster.clone(),
            });
        }
    }
    Ok(nodes)
}
