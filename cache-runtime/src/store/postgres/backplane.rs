//! PostgreSQL's backplane: `NOTIFY` through the store's pool, `LISTEN` on a
//! connection of its own per subscription.
//!
//! Channels are identifiers, 63 bytes at most, and `LISTEN` takes no bound
//! parameter: the cache's channel name is hashed into a fixed-form
//! identifier (`cache_` and 32 hex digits), so nothing from a namespace is
//! written into SQL. Payloads are text: messages travel hex-encoded, so
//! one is at most [`MAX_MESSAGE`] bytes (NOTIFY's limit is 8000); a longer
//! one is refused, and the cache's confirmation of tag versions covers it
//! within a second, as for any lost message.
//!
//! A subscription ends when its connection does (a server restart): the
//! cache subscribes again, on a new connection, with a backoff.

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::pool::Shared;
use super::sql;
use crate::store::{Backplane, StoreError, Subscription};

/// The longest message: NOTIFY's 8000-byte payload, hex-encoded.
pub const MAX_MESSAGE: usize = 3999;

/// Messages buffered for a subscriber that is slow to read.
const BUFFER: usize = 1024;

/// PostgreSQL's [`Backplane`] (`LISTEN`/`NOTIFY`), from
/// [`PostgresStore::backplane`](super::PostgresStore::backplane); clones
/// share the store's pool.
#[derive(Clone)]
pub struct PostgresBackplane {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PostgresBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackplane")
            .field("url", &self.shared.shown)
            .finish()
    }
}

impl PostgresBackplane {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// The identifier `channel` is sent on.
fn identifier(channel: &str) -> String {
    format!(
        "cache_{:032x}",
        xxhash_rust::xxh3::xxh3_128(channel.as_bytes())
    )
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let value = |d: u8| (d as char).to_digit(16);
    digits
        .chunks(2)
        .map(|pair| Some((value(pair[0])? * 16 + value(pair[1])?) as u8))
        .collect()
}

impl Backplane for PostgresBackplane {
    fn publish(
        &self,
        channel: &str,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let channel = identifier(channel);
        async move {
            if message.len() > MAX_MESSAGE {
                return Err(StoreError::Backend(format!(
                    "a backplane message of {} bytes is over NOTIFY's limit ({MAX_MESSAGE})",
                    message.len()
                )));
            }
            let payload = hex(&message);
            let client = self.shared.client().await?;
            let statement = client
                .prepare_cached(sql::NOTIFY)
                .await
                .map_err(|e| self.shared.error(e))?;
            client
                .execute(&statement, &[&channel, &payload])
                .await
                .map_err(|e| self.shared.error(e))?;
            Ok(())
        }
    }

    fn subscribe(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send {
        let channel = identifier(channel);
        async move {
            let (client, mut connection) = self
                .shared
                .config
                .connect(NoTls)
                .await
                .map_err(|e| self.shared.error(e))?;
            let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(BUFFER);
            // The connection's task: drives it (the LISTEN below needs it)
            // and forwards notifications until the connection or the
            // subscription ends.
            tokio::spawn(async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if let Some(bytes) = unhex(n.payload()) {
                                    if sender.send(bytes).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Some(Ok(_)) => {}
                            // Closed or failed: the subscription ends.
                            Some(Err(_)) | None => return,
                        },
                        () = sender.closed() => return,
                    }
                }
            });
            // The identifier is ours (hex digits): nothing to escape.
            client
                .batch_execute(&format!("LISTEN {channel}"))
                .await
                .map_err(|e| self.shared.error(e))?;
            // The client lives as long as the subscription: dropping it
            // closes the connection, which ends the task.
            let messages = futures_util::stream::unfold(
                (receiver, client),
                |(mut receiver, client)| async move {
                    let message = receiver.recv().await?;
                    Some((message, (receiver, client)))
                },
            );
            Ok(Subscription::new(messages))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_channels_travel_as_plain_text() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        let id = identifier("cache:app\"; DROP TABLE x;--");
        assert!(id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }
}
