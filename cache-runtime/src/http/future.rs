//! The future a [`CacheService`](super::CacheService) returns: already
//! complete on a fresh hit from memory (answered inside `call`, so a hit
//! allocates no future and clones no inner service), else the boxed work of
//! the request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of one request through a [`CacheService`](super::CacheService).
///
/// It resolves to the response (from the cache or the inner service) or to
/// the inner service's error.
pub struct ResponseFuture<T, E>(State<T, E>);

enum State<T, E> {
    /// Answered already; `None` once taken.
    Ready(Option<Result<T, E>>),
    Boxed(Pin<Box<dyn Future<Output = Result<T, E>> + Send>>),
}

impl<T, E> ResponseFuture<T, E> {
    /// A future that is complete with `output`.
    pub(crate) fn ready(output: Result<T, E>) -> Self {
        ResponseFuture(State::Ready(Some(output)))
    }

    /// The future of work still to do.
    pub(crate) fn boxed(future: impl Future<Output = Result<T, E>> + Send + 'static) -> Self {
        ResponseFuture(State::Boxed(Box::pin(future)))
    }
}

// Nothing is pinned structurally: a ready output is moved out by value, and
// the boxed future is pinned by its box.
impl<T, E> Unpin for ResponseFuture<T, E> {}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            // Polled again after completion (a caller's mistake): it never
            // completes twice, and does not panic either.
            State::Ready(output) => output.take().map_or(Poll::Pending, Poll::Ready),
            State::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            State::Ready(_) => "ready",
            State::Boxed(_) => "boxed",
        };
        f.debug_tuple("ResponseFuture").field(&state).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn a_ready_future_completes_once_and_a_boxed_one_runs() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut ready = ResponseFuture::<u8, ()>::ready(Ok(1));
        assert_eq!(Pin::new(&mut ready).poll(&mut cx), Poll::Ready(Ok(1)));
        assert_eq!(Pin::new(&mut ready).poll(&mut cx), Poll::Pending);
        let mut boxed = ResponseFuture::<u8, ()>::boxed(async { Err(()) });
        assert_eq!(Pin::new(&mut boxed).poll(&mut cx), Poll::Ready(Err(())));
        assert_eq!(format!("{ready:?}"), "ResponseFuture(\"ready\")");
    }
}
