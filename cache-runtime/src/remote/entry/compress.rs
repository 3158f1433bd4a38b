//! Compression of an entry's payload (flag bit 0 of format version 3): the
//! LZ4 block format (`lz4_flex`, pure Rust), chosen by measurement
//! (BENCHMARKS.md, "Compression of remote entries"): on CBOR of user
//! records from 1 to 256 KiB it compresses 2.2 to 2.7 times at 260 to 510
//! MB/s and decompresses at 1.2 to 1.7 GB/s; zstd (level 1 and 3) saves a
//! further quarter of the bytes at half the compression speed and a third
//! of the decompression speed, and needs a C build.
//!
//! A compressed payload is the CBOR's length (`u32`, little-endian) and the
//! LZ4 block. Decompression never trusts that length: it is refused above
//! the cache's maximum entry size and above what LZ4 can produce from the
//! block's size (each byte of a block expands to at most [`MAX_RATIO`]
//! bytes) before the output buffer is allocated, and the codec must
//! produce exactly that many bytes, never writing past the buffer.

use super::EntryError;

/// The most bytes one byte of an LZ4 block can decode to: a match's length
/// grows by 255 per extra length byte. Looser claims are refused unread.
pub(crate) const MAX_RATIO: usize = 255;
/// Slack for the block's fixed parts (token, offset, last literals) on
/// tiny blocks.
const RATIO_SLACK: usize = 64;
/// Size of the CBOR length in front of the block.
pub(crate) const RAW_LEN_LEN: usize = 4;

/// The compressed form of `cbor` (length prefix, then the block) when
/// that is shorter than `cbor`; `None` when it would not save a byte or
/// `cbor` is too long for the `u32` prefix.
pub(crate) fn compress(cbor: &[u8]) -> Option<Vec<u8>> {
    let raw_len = u32::try_from(cbor.len()).ok()?;
    let bound = RAW_LEN_LEN + lz4_flex::block::get_maximum_output_size(cbor.len());
    let mut out = vec![0u8; bound];
    out[..RAW_LEN_LEN].copy_from_slice(&raw_len.to_le_bytes());
    let written = lz4_flex::block::compress_into(cbor, &mut out[RAW_LEN_LEN..]).ok()?;
    let total = RAW_LEN_LEN + written;
    if total >= cbor.len() {
        return None;
    }
    out.truncate(total);
    Some(out)
}

/// Splits a compressed payload into the CBOR's declared length and the
/// block, and checks the length against `max` (the maximum entry size) and
/// against what the block can hold, before anything is allocated.
pub(crate) fn split(stored: &[u8], max: usize) -> Result<(usize, &[u8]), EntryError> {
    let (len, block) = stored
        .split_first_chunk::<RAW_LEN_LEN>()
        .ok_or(EntryError::Truncated {
            field: "uncompressed length",
        })?;
    let raw_len = u32::from_le_bytes(*len) as usize;
    if raw_len > max {
        return Err(EntryError::InflatesPastMax { len: raw_len, max });
    }
    let possible = block
        .len()
        .saturating_mul(MAX_RATIO)
        .saturating_add(RATIO_SLACK);
    if raw_len > possible {
        return Err(EntryError::Decompress(format!(
            "claims {raw_len} bytes from a block of {}, more than LZ4 can produce",
            block.len()
        )));
    }
    Ok((raw_len, block))
}

/// Decompresses `block` into exactly `raw_len` bytes (bounded by
/// [`split`]); a block that fails, or yields another length, is
/// [`EntryError::Decompress`] (counted as corruption).
pub(crate) fn decompress(block: &[u8], raw_len: usize) -> Result<Vec<u8>, EntryError> {
    let mut out = vec![0u8; raw_len];
    let produced = lz4_flex::block::decompress_into(block, &mut out)
        .map_err(|e| EntryError::Decompress(e.to_string()))?;
    if produced != raw_len {
        return Err(EntryError::Decompress(format!(
            "the block decodes to {produced} bytes, the entry says {raw_len}"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_no_gain_is_none() {
        let cbor: Vec<u8> = b"user record, ".repeat(200);
        let packed = compress(&cbor).unwrap();
        assert!(packed.len() < cbor.len() / 5);
        let (raw_len, block) = split(&packed, usize::MAX).unwrap();
        assert_eq!(decompress(block, raw_len).unwrap(), cbor);
        // Random bytes do not shrink: stored as they are.
        let mut rng = fastrand::Rng::with_seed(7);
        let noise: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(4096).collect();
        assert!(compress(&noise).is_none());
        assert!(compress(&[]).is_none());
    }

    #[test]
    fn a_bomb_is_refused_before_allocating() {
        // Nine bytes claiming 4 GiB: refused by the ratio bound, and by the
        // maximum entry size, without allocating anything near it.
        let mut bomb = u32::MAX.to_le_bytes().to_vec();
        bomb.extend_from_slice(&[0x1f, 0, 0, 0, 0]);
        assert!(matches!(
            split(&bomb, usize::MAX).unwrap_err(),
            EntryError::Decompress(_)
        ));
        assert_eq!(
            split(&bomb, 16 << 20).unwrap_err(),
            EntryError::InflatesPastMax {
                len: u32::MAX as usize,
                max: 16 << 20
            }
        );
        // A genuine 1 MiB of zeros compresses to about 4 KiB; within the
        // ratio, but over a 64 KiB maximum: refused too.
        let zeros = compress(&vec![0u8; 1 << 20]).unwrap();
        assert!(split(&zeros, usize::MAX).is_ok());
        assert!(matches!(
            split(&zeros, 64 << 10).unwrap_err(),
            EntryError::InflatesPastMax { .. }
        ));
    }

    #[test]
    fn a_lying_length_or_a_broken_block_is_an_error() {
        let cbor = b"abcdabcdabcdabcdabcdabcdabcdabcd".repeat(10);
        let packed = compress(&cbor).unwrap();
        let (raw_len, block) = split(&packed, usize::MAX).unwrap();
        // Too short a buffer: the codec stops at its end.
        assert!(matches!(
            decompress(block, raw_len - 1).unwrap_err(),
            EntryError::Decompress(_)
        ));
        // Too long: fewer bytes produced than claimed.
        assert!(matches!(
            decompress(block, raw_len + 1).unwrap_err(),
            EntryError::Decompress(_)
        ));
        // Damaged blocks: an error or a wrong length, never a panic.
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..5_000 {
            let mut bad = block.to_vec();
            let at = rng.usize(..bad.len());
            bad[at] = rng.u8(..);
            bad.truncate(rng.usize(0..=bad.len()));
            let _ = decompress(&bad, raw_len);
        }
        assert!(matches!(
            split(&[1, 0], usize::MAX).unwrap_err(),
            EntryError::Truncated { .. }
        ));
    }
}
