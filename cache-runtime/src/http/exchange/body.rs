//! An origin body read whole, up to a limit.

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;

/// The body's data, at most `limit` bytes; `None` when it fails or is longer.
/// (Trailers, rare on a body of known length, are not kept.)
pub(super) async fn collect_within<R: Body<Data = Bytes>>(body: R, limit: usize) -> Option<Bytes> {
    let mut body = std::pin::pin!(body);
    // What the body says it holds, to copy into one allocation.
    let expected = usize::try_from(body.size_hint().lower()).map_or(limit, |n| n.min(limit));
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut copied = false;
    // The bytes received: counted once each (`first` is in `rest` too once
    // it was copied, so their lengths do not add up to it).
    let mut len: usize = 0;
    while let Some(frame) = body.as_mut().frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        len = len.checked_add(data.len())?;
        if len > limit {
            return None;
        }
        // One frame (the usual case) is kept as it is, without a copy.
        match &first {
            None => first = Some(data),
            Some(f) => {
                if !copied {
                    rest.reserve(expected.max(len));
                    rest.extend_from_slice(f);
                    copied = true;
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Some(if copied {
        rest.into()
    } else {
        first.unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    /// `data` in frames of seeded random sizes: empty, one byte, small, or
    /// any part of the whole.
    fn frames(data: &Bytes, seed: u64) -> Vec<Result<http_body::Frame<Bytes>, std::io::Error>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (mut out, mut at) = (Vec::new(), 0);
        while at < data.len() {
            let n = match rng.u8(..4) {
                0 => 0,
                1 => 1,
                2 => rng.usize(1..4096),
                _ => rng.usize(1..=data.len()),
            };
            let end = (at + n).min(data.len());
            out.push(Ok(http_body::Frame::data(data.slice(at..end))));
            at = end;
        }
        out
    }

    #[tokio::test]
    async fn collect_counts_each_byte_once_whatever_the_frames() {
        let limit = 100_000;
        for len in [
            0,
            1,
            limit / 2,
            limit / 2 + 1,
            limit - 1,
            limit,
            limit + 1,
            2 * limit,
        ] {
            let data: Bytes = (0..len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into();
            for seed in 0..50 {
                let body = StreamBody::new(futures_util::stream::iter(frames(&data, seed)));
                let got = collect_within(body, limit).await;
                let want = (len <= limit).then(|| data.clone());
                let lengths = (got.as_ref().map(Bytes::len), want.as_ref().map(Bytes::len));
                assert!(got == want, "{len} {seed}: (got, want) {lengths:?}");
            }
        }
        // A body that fails midway is no body.
        let failing = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("reset")),
        ];
        let body = StreamBody::new(futures_util::stream::iter(failing));
        assert_eq!(collect_within(body, limit).await, None);
    }
}
