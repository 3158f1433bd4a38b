//! A body streamed through to the client while a copy is kept: when it
//! ends, within a limit and without an error, the copy is handed on (to be
//! stored). Used for bodies whose length is unknown in advance (chunked).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// What receives the whole body once it ended.
pub(crate) type Done = Box<dyn FnOnce(Bytes) + Send>;

/// The body `inner`, copied up to `limit` bytes.
pub(crate) struct Tee<R> {
    inner: Pin<Box<R>>,
    copy: Option<Vec<u8>>,
    limit: usize,
    done: Option<Done>,
}

impl<R> Tee<R> {
    /// `done` is called once, with the body, if it ends within `limit`.
    pub(crate) fn new(inner: R, limit: usize, done: Option<Done>) -> Tee<R> {
        Tee {
            inner: Box::pin(inner),
            copy: done.as_ref().map(|_| Vec::new()),
            limit,
            done,
        }
    }
}

impl<R: Body<Data = Bytes>> Body for Tee<R> {
    type Data = Bytes;
    type Error = R::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, R::Error>>> {
        // Every field is Unpin (the inner body is boxed).
        let this = self.get_mut();
        match ready!(this.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let (Some(data), Some(copy)) = (frame.data_ref(), this.copy.as_mut()) {
                    if copy.len() + data.len() > this.limit {
                        this.copy = None; // Too large to store: only streamed.
                    } else {
                        copy.extend_from_slice(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                this.copy = None;
                Poll::Ready(Some(Err(error)))
            }
            None => {
                if let (Some(copy), Some(done)) = (this.copy.take(), this.done.take()) {
                    done(copy.into());
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not before the end was seen, so that the copy is handed on.
        self.copy.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::{Arc, Mutex};

    fn chunks(parts: &[&'static str]) -> impl Body<Data = Bytes, Error = std::io::Error> {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn run(parts: &[&'static str], limit: usize) -> (Bytes, Option<Bytes>) {
        let got = Arc::new(Mutex::new(None));
        let g = got.clone();
        let done: Done = Box::new(move |b| *g.lock().unwrap() = Some(b));
        let out = Tee::new(chunks(parts), limit, Some(done))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let copy = got.lock().unwrap().take();
        (out, copy)
    }

    #[tokio::test]
    async fn random_frames_are_copied_whole_up_to_exactly_the_limit() {
        let limit = 100_000;
        for len in [0, 1, limit / 2 + 1, limit - 1, limit, limit + 1, 2 * limit] {
            let data: Bytes = (0..len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into();
            for seed in 0..30 {
                let mut rng = fastrand::Rng::with_seed(seed);
                let (mut frames, mut at) = (Vec::new(), 0);
                while at < len {
                    let n = match rng.u8(..4) {
                        0 => 0,
                        1 => 1,
                        2 => rng.usize(1..4096),
                        _ => rng.usize(1..=len),
                    };
                    let end = (at + n).min(len);
                    frames.push(Ok::<_, std::io::Error>(Frame::data(data.slice(at..end))));
                    at = end;
                }
                let got = Arc::new(Mutex::new(None));
                let g = got.clone();
                let done: Done = Box::new(move |b| *g.lock().unwrap() = Some(b));
                let body = StreamBody::new(futures_util::stream::iter(frames));
                let out = Tee::new(body, limit, Some(done)).collect().await.unwrap();
                assert!(out.to_bytes() == data, "{len} {seed}: the client's bytes");
                let copy = got.lock().unwrap().take();
                let want = (len <= limit).then(|| data.clone());
                let lengths = (copy.as_ref().map(Bytes::len), want.as_ref().map(Bytes::len));
                assert!(copy == want, "{len} {seed}: (copy, want) {lengths:?}");
            }
        }
    }

    #[tokio::test]
    async fn the_client_gets_every_byte_and_the_copy_only_within_the_limit() {
        let (out, copy) = run(&["ab", "cd", "e"], 5).await;
        assert_eq!(out, "abcde");
        assert_eq!(copy.as_deref(), Some(&b"abcde"[..]));
        let (out, copy) = run(&["ab", "cd", "e"], 4).await;
        assert_eq!(out, "abcde");
        assert_eq!(copy, None);
    }
}
