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
/// are never ASCII, so a byte scan is exact).
#[inline]
pub(crate) fn is_clean(text: &str) -> bool {
    text.bytes()
        .all(|b| !b.is_ascii() || (RESERVED >> b) & 1 == 0)
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
