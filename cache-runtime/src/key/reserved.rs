//! The characters reserved by the key grammar (see the module docs of
//! [`key`](super)): `%` starts an escape, `#` marks the internal spaces
//! (versions, default keys, tags, locks, counters) and `~` marks a shortened
//! key. No text that comes from a caller (a template's value, a manual key, a
//! tag, a lock or counter name, a function's name) ever reaches a store name
//! with one of them raw: each is written `%XX` (uppercase hex of its byte),
//! like every other escaped character, and `%` itself is `%25`, so the
//! escaping is injective.

use std::borrow::Cow;

/// Bit `b` set: ASCII byte `b` is reserved. One shift and a test per byte.
pub(crate) const RESERVED: u128 = (1 << b'%') | (1 << b'#') | (1 << b'~');

/// Uppercase hex digits of escapes.
pub(crate) const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `text` has no reserved character (bytes of multi-byte characters
/// are never ASCII, so a byte scan is exact). Eight bytes at a time: every
/// lookup by a manual or HTTP key scans its whole text, and a byte loop was
/// most of the cost of building such a key.
#[inline]
pub(crate) fn is_clean(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 8 {
        return bytes.iter().all(|&b| is_clean_byte(b));
    }
    let mut at = 0;
    while at + 8 <= bytes.len() {
        if has_reserved(word(bytes, at)) {
            return false;
        }
        at += 8;
    }
    // The last (overlapping) word covers the bytes after the last whole one.
    at == bytes.len() || !has_reserved(word(bytes, bytes.len() - 8))
}

#[inline(always)]
fn is_clean_byte(b: u8) -> bool {
    !b.is_ascii() || (RESERVED >> b) & 1 == 0
}

/// The eight bytes of `bytes` from `at` (the caller keeps `at + 8` within).
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Whether one of the eight bytes of `w` is `%`, `#` or `~`: a byte equal
/// to `c` is a zero byte of `w ^ c…c`, and `(x - 0x01…) & !x & 0x80…` is
/// non-zero exactly when `x` has a zero byte.
#[inline(always)]
fn has_reserved(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let [a, b, c] = [b'%', b'#', b'~'].map(|r| w ^ (ONES * u64::from(r)));
    zero_in(a) | zero_in(b) | zero_in(c) != 0
}

/// Feeds `text` to `out` with its reserved characters escaped, in pieces:
/// no allocation.
pub(crate) fn write_escaped(text: &str, out: &mut impl FnMut(&[u8])) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii() && (RESERVED >> b) & 1 == 1 {
            out(&bytes[start..i]);
            out(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            start = i + 1;
        }
    }
    out(&bytes[start..]);
}

/// `text` with its reserved characters escaped; borrowed when it has none.
pub(crate) fn escaped(text: &str) -> Cow<'_, str> {
    if is_clean(text) {
        return Cow::Borrowed(text);
    }
    let mut bytes = Vec::with_capacity(text.len() + 8);
    write_escaped(text, &mut |piece| bytes.extend_from_slice(piece));
    // Only ASCII bytes were replaced, by ASCII, so the bytes are still UTF-8;
    // the lossy branch cannot run.
    Cow::Owned(
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of [`escaped`], for the tests: every `%XX` back to its byte.
    fn unescaped(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn the_word_scan_agrees_with_a_byte_scan() {
        let naive = |t: &str| t.bytes().all(is_clean_byte);
        let base = "abcdefghijklmnopqrstuvwxyz0123456789é日本";
        for len in (0..=base.len()).filter(|&l| base.is_char_boundary(l)) {
            let prefix = &base[..len];
            assert!(is_clean(prefix), "{prefix:?}");
            for at in (0..=len).filter(|&a| prefix.is_char_boundary(a)) {
                for r in ["%", "#", "~", "$", "\u{7f}", "\0", "ÿ"] {
                    let t = format!("{}{r}{}", &prefix[..at], &prefix[at..]);
                    assert_eq!(is_clean(&t), naive(&t), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(escaped("user:7/é"), Cow::Borrowed("user:7/é")));
    }

    #[test]
    fn reserved_characters_are_escaped_and_come_back() {
        assert_eq!(escaped("a%b#c~d"), "a%25b%23c%7Ed");
        for text in ["%", "%25", "#v2", "~", "x~0123", "日本#%~", "", "%%"] {
            let e = escaped(text);
            assert!(is_clean(&e.replace('%', "")), "{e}");
            assert_eq!(unescaped(&e), text);
        }
        assert_ne!(escaped("%23"), escaped("#"));
    }
}
