//! The text of a rendered or manual key, kept inline up to [`INLINE`] bytes.
//!
//! Inline text lives in three words, zero-padded, with its length in the
//! last byte, so two inline keys compare word by word and hash as three
//! words: a template-key hit used to spend a fifth of its time in
//! `SmolStr`'s construction, its byte comparison and a general-purpose hash
//! (BENCHMARKS.md, run 9). Equal texts always have the same form (inline
//! exactly when they fit), so comparing and hashing the form is exact.

use std::fmt;
use std::sync::Arc;

/// Bytes of text kept inline.
pub(crate) const INLINE: usize = 23;

/// A key's text.
#[derive(Clone)]
pub(crate) enum KeyText {
    Inline(Inline),
    Heap(Arc<str>),
}

/// Inline text: its bytes, zero-padded, then its length. The length's type
/// leaves values above [`INLINE`] free, so `KeyText` is 24 bytes, like the
/// `SmolStr` it replaces (keys are kept in every memory entry).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Inline {
    lo: u64,
    mid: u64,
    hi: [u8; 7],
    len: Len,
}

impl Inline {
    /// The 24 bytes as three words.
    #[inline(always)]
    fn words(&self) -> [u64; 3] {
        // SAFETY: `Inline` is `repr(C)`, 24 bytes with no padding, aligned
        // for `u64` (its first field is one); every byte is initialized.
        unsafe { std::ptr::read((self as *const Inline).cast::<[u64; 3]>()) }
    }
}

impl PartialEq for Inline {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        self.words() == other.words()
    }
}

impl Eq for Inline {}

macro_rules! lengths {
    ($($n:ident = $v:literal),*) => {
        /// A length from 0 to [`INLINE`].
        #[derive(Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        enum Len { $($n = $v),* }
        const LENS: [Len; INLINE + 1] = [$(Len::$n),*];
    };
}
lengths!(
    L0 = 0,
    L1 = 1,
    L2 = 2,
    L3 = 3,
    L4 = 4,
    L5 = 5,
    L6 = 6,
    L7 = 7,
    L8 = 8,
    L9 = 9,
    L10 = 10,
    L11 = 11,
    L12 = 12,
    L13 = 13,
    L14 = 14,
    L15 = 15,
    L16 = 16,
    L17 = 17,
    L18 = 18,
    L19 = 19,
    L20 = 20,
    L21 = 21,
    L22 = 22,
    L23 = 23
);

impl KeyText {
    /// The text of `s`.
    pub(crate) fn new(s: &str) -> KeyText {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            KeyText::inline(bytes, s.len())
        } else {
            KeyText::Heap(s.into())
        }
    }

    /// Inline text: `bytes[..len]` holds it, zeros follow. A `len` above
    /// [`INLINE`] is cut to it (callers never pass one).
    #[inline(always)]
    pub(crate) fn inline(bytes: [u8; INLINE], len: usize) -> KeyText {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_ne_bytes(w)
        };
        let mut hi = [0u8; 7];
        hi.copy_from_slice(&bytes[16..]);
        KeyText::Inline(Inline {
            lo: word(0),
            mid: word(8),
            hi,
            len: LENS[len.min(INLINE)],
        })
    }

    /// The text of `s`, kept in its allocation when it is too long to inline.
    pub(crate) fn from_string(s: String) -> KeyText {
        if s.len() <= INLINE {
            KeyText::new(&s)
        } else {
            KeyText::Heap(s.into())
        }
    }

    /// The text's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline(inline) => {
                // SAFETY: `Inline` is `repr(C)` with no padding: 24 bytes,
                // the text first; `len <= INLINE`; the slice borrows `self`.
                unsafe {
                    std::slice::from_raw_parts(
                        (inline as *const Inline).cast::<u8>(),
                        inline.len as usize,
                    )
                }
            }
            KeyText::Heap(text) => text.as_bytes(),
        }
    }

    /// The text.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: only whole `&str`s are stored (`new`, `from_string`, and
        // `inline`, which `Template` fills with whole `&str`s only).
        unsafe { std::str::from_utf8_unchecked(self.as_bytes()) }
    }

    /// [`hash64`](KeyText::hash64) of the text `s` would be kept as,
    /// without keeping it.
    #[cfg(feature = "http")]
    #[inline]
    pub(crate) fn hash_str(s: &str, seed: u64) -> u64 {
        if s.len() <= INLINE {
            KeyText::new(s).hash64(seed)
        } else {
            xxhash_rust::xxh3::xxh3_64_with_seed(s.as_bytes(), seed)
        }
    }

    /// A 64-bit hash under `seed`: three multiply-folds for inline text (a
    /// keyed mix in the manner of foldhash), XXH3 for longer text.
    #[inline]
    pub(crate) fn hash64(&self, seed: u64) -> u64 {
        match self {
            KeyText::Inline(inline) => {
                let [lo, mid, last] = inline.words();
                let a = fold(lo ^ seed, mid ^ K0);
                let b = fold(last ^ seed.rotate_left(32), a ^ K1);
                fold(b, K2 ^ seed)
            }
            KeyText::Heap(text) => xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), seed),
        }
    }
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;

/// The folded 128-bit product of `a` and `b`.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl PartialEq for KeyText {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyText::Inline(a), KeyText::Inline(b)) => a == b,
            (KeyText::Heap(a), KeyText::Heap(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for KeyText {}

impl From<&str> for KeyText {
    fn from(s: &str) -> KeyText {
        KeyText::new(s)
    }
}

impl From<String> for KeyText {
    fn from(s: String) -> KeyText {
        KeyText::from_string(s)
    }
}

impl fmt::Display for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_are_equal_in_either_construction_and_hash_alike() {
        for s in [
            "",
            "a",
            "item:42",
            "user:a%3Ab",
            "x".repeat(23).as_str(),
            "é~",
        ] {
            let a = KeyText::new(s);
            let b = KeyText::from_string(s.to_string());
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            let c = KeyText::inline(bytes, s.len());
            assert_eq!(a.as_str(), s);
            assert!(a == b && b == c, "{s:?}");
            assert_eq!(a.hash64(7), c.hash64(7));
        }
        let long = "y".repeat(24);
        assert!(matches!(KeyText::new(&long), KeyText::Heap(_)));
        assert_eq!(KeyText::new(&long), KeyText::from_string(long.clone()));
        assert_eq!(KeyText::new(&long).as_str(), long);
    }

    #[test]
    fn a_key_text_is_as_small_as_a_smol_str() {
        assert_eq!(std::mem::size_of::<KeyText>(), 24);
        assert_eq!(std::mem::size_of::<Inline>(), 24);
    }

    #[test]
    fn different_texts_differ_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let a = KeyText::new(&format!("item:{i}"));
            assert_ne!(
                a,
                KeyText::new(&format!("item:{i}\0")),
                "a trailing zero byte is text"
            );
            assert!(seen.insert(a.hash64(99)), "{i}");
        }
        assert_ne!(KeyText::new("ab"), KeyText::new("ab\0"));
        assert_ne!(KeyText::new("a").hash64(1), KeyText::new("a").hash64(2));
    }
}
