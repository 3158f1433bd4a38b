//! A backplane subscription: the messages of one channel, as a stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

/// The messages published on a channel since [`Backplane::subscribe`]
/// returned, in the order the store delivers them. The stream ends when the
/// subscription is lost (a dropped connection): the cache then treats what
/// it holds in memory as possibly stale and subscribes again.
///
/// [`Backplane::subscribe`]: super::Backplane::subscribe
pub struct Subscription {
    messages: Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>,
}

impl Subscription {
    /// A subscription delivering the items of `messages`.
    ///
    /// ```
    /// use cache_runtime::store::Subscription;
    /// // E.g. from a channel a store's reader task feeds; the subscription
    /// // ends when the sender is dropped.
    /// let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    /// let messages = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    /// let subscription = Subscription::new(messages);
    /// # drop((sender, subscription));
    /// ```
    pub fn new(messages: impl Stream<Item = Vec<u8>> + Send + 'static) -> Self {
        Self {
            messages: Box::pin(messages),
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Vec<u8>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        self.messages.as_mut().poll_next(cx)
    }
}
