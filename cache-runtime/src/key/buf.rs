//! The bytes of a default key's canonical encoding, gathered for hashing.
//!
//! The first 16 bytes are packed into a `u128` rather than stored byte by byte:
//! the encoding of a typical key (`u64` argument: a tag byte and eight bytes)
//! is written in pieces, and XXH3 reads it back in overlapping 8-byte words. A
//! load that spans two earlier stores cannot be forwarded from the store
//! buffer, and that stall cost about a fifth of a memory hit (BENCHMARKS.md,
//! run 7). Kept in a register, the words are shifts, not loads.
//!
//! The bytes, and so the hash, are the same whichever way they are held.

/// Bytes gathered for hashing: up to 16 packed in `head`, up to 96 inline, the
/// rest on the heap.
pub(crate) struct Buf {
    /// Bytes `0..len` while `len <= HEAD`, little-endian.
    head: u128,
    /// Bytes `0..len` once `HEAD < len <= INLINE` (and `spill` is empty).
    inline: [u8; INLINE],
    len: usize,
    /// Every byte, once there were more than `INLINE`.
    spill: Vec<u8>,
}

const HEAD: usize = 16;
const INLINE: usize = 96;

impl Buf {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self {
            head: 0,
            inline: [0; INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Appends a fixed-size run. Generic over the length so that, inlined,
    /// the common case compiles to a shift and an or.
    #[inline(always)]
    pub(crate) fn put_array<const N: usize>(&mut self, bytes: [u8; N]) {
        if N > 0 && self.len + N <= HEAD {
            let mut wide = [0u8; HEAD];
            wide[..N].copy_from_slice(&bytes);
            // len < HEAD here, so the shift is below 128.
            self.head |= u128::from_le_bytes(wide) << (8 * self.len);
            self.len += N;
            return;
        }
        self.put(&bytes);
    }

    /// Appends any run of bytes.
    #[inline]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let end = self.len + bytes.len();
        if end <= HEAD {
            let mut wide = [0u8; HEAD];
            wide[..bytes.len()].copy_from_slice(bytes);
            self.head |= u128::from_le_bytes(wide) << (8 * self.len);
        } else if end <= INLINE && self.spill.is_empty() {
            if self.len <= HEAD {
                self.inline[..HEAD].copy_from_slice(&self.head.to_le_bytes());
            }
            self.inline[self.len..end].copy_from_slice(bytes);
        } else {
            if self.spill.is_empty() {
                let held = self.held();
                self.spill.reserve(end.max(2 * INLINE));
                self.spill.extend_from_slice(&held[..self.len]);
            }
            self.spill.extend_from_slice(bytes);
        }
        self.len = end;
    }

    /// The 128-bit XXH3 of the bytes.
    #[inline(always)]
    pub(crate) fn hash(&self) -> u128 {
        if self.len <= HEAD {
            let head = self.head.to_le_bytes();
            xxhash_rust::xxh3::xxh3_128(&head[..self.len])
        } else {
            xxhash_rust::xxh3::xxh3_128(self.slice())
        }
    }

    /// A copy of the bytes.
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        if self.len <= HEAD {
            self.head.to_le_bytes()[..self.len].to_vec()
        } else {
            self.slice().to_vec()
        }
    }

    /// The bytes once past the head.
    fn slice(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }

    /// The array holding the bytes before the first spill (head or inline).
    fn held(&self) -> [u8; INLINE] {
        let mut held = self.inline;
        if self.len <= HEAD {
            held[..HEAD].copy_from_slice(&self.head.to_le_bytes());
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting the same bytes into pieces gives the same bytes.
    #[test]
    fn pieces_of_any_size_cross_head_inline_and_spill_intact() {
        let all: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for step in [1, 3, 7, 8, 9, 15, 16, 17, 50, 95, 97, 300] {
            let mut buf = Buf::new();
            for piece in all.chunks(step) {
                buf.put(piece);
            }
            assert_eq!(buf.to_vec(), all, "pieces of {step}");
            assert_eq!(buf.hash(), xxhash_rust::xxh3::xxh3_128(&all), "{step}");
        }
    }

    #[test]
    fn arrays_and_slices_mix() {
        let mut buf = Buf::new();
        buf.put_array([1u8]);
        buf.put_array(2u64.to_le_bytes());
        buf.put(b"abcdefgh");
        buf.put_array([9u8; 8]);
        let mut want = vec![1u8];
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"abcdefgh");
        want.extend_from_slice(&[9u8; 8]);
        assert_eq!(buf.to_vec(), want);
        assert_eq!(buf.hash(), xxhash_rust::xxh3::xxh3_128(&want));
    }

    #[test]
    fn empty_is_the_hash_of_nothing() {
        let mut buf = Buf::new();
        buf.put(&[]);
        assert_eq!(buf.hash(), xxhash_rust::xxh3::xxh3_128(&[]));
    }
}
