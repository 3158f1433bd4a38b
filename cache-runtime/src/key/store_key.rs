//! The names a remote store knows an entry, a tag's version counter and a
//! load's lock by (the grammar is in the [`key`](super) module's docs).
//!
//! A name is described by its parts and written straight into whatever buffer
//! needs it (a Redis command on the hit path), so a remote hit builds no
//! intermediate `String` per key. [`StoreKey::name`] gives the same bytes
//! as a `String`, shortened like every key.

use super::reserved::write_escaped;
use super::{shorten, Key, Repr, MAX_KEY_LEN};

/// The store name of an entry (`{namespace}:{key}`), of a tag's version
/// counter (`{namespace}#tag:{tag}`) or of the lock of an entry's load
/// (`{namespace}#load:{key}`). `#` keeps the last two apart from every entry.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StoreKey<'a> {
    Entry { namespace: &'a str, key: &'a Key },
    Tag { namespace: &'a str, tag: &'a str },
    Load { namespace: &'a str, key: &'a Key },
}

impl StoreKey<'_> {
    /// Feeds the unshortened name to `out`, piece by piece.
    fn pieces(&self, mut out: impl FnMut(&[u8])) {
        match *self {
            StoreKey::Entry { namespace, key } => {
                out(namespace.as_bytes());
                out(b":");
                entry_pieces(key, &mut out);
            }
            StoreKey::Load { namespace, key } => {
                out(namespace.as_bytes());
                out(b"#load:");
                entry_pieces(key, &mut out);
            }
            StoreKey::Tag { namespace, tag } => {
                out(namespace.as_bytes());
                out(b"#tag:");
                write_escaped(tag, &mut out);
            }
        }
    }
    /// The length of the unshortened name.
    fn raw_len(&self) -> usize {
        let mut len = 0;
        self.pieces(|piece| len += piece.len());
        len
    }

    /// Calls `f` with the name's bytes: assembled on the stack when it needs
    /// no shortening (the usual case, no allocation), else from
    /// [`name`](Self::name).
    // For stores that write names straight into their requests (Redis).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut buf = [0u8; MAX_KEY_LEN];
        let mut len = 0;
        let mut fits = true;
        self.pieces(|piece| {
            match buf.get_mut(len..len + piece.len()) {
                Some(room) if fits => room.copy_from_slice(piece),
                _ => fits = false,
            }
            len += piece.len();
        });
        if fits {
            f(&buf[..len])
        } else {
            f(self.name().as_bytes())
        }
    }

    /// The name, shortened with a hash if it is longer than [`MAX_KEY_LEN`].
    pub(crate) fn name(&self) -> String {
        let mut bytes = Vec::with_capacity(self.raw_len());
        self.pieces(|piece| bytes.extend_from_slice(piece));
        // Every piece is a whole `str` or ASCII, so the bytes are UTF-8.
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        shorten(text)
    }
}

/// The part of an entry's name after `{namespace}:`.
fn entry_pieces(key: &Key, out: &mut impl FnMut(&[u8])) {
    match &key.repr {
        Repr::Hashed { site, hash } => {
            write_escaped(site.name, out);
            if let Some(v) = site.version {
                out(b"#v");
                out(decimal(v, &mut [0; 20]).as_bytes());
            }
            out(b"#");
            out(&hex(hash.get()));
        }
        Repr::Text(text) => out(text.as_bytes()),
        // Never stored (such a call runs uncached); named for logs only.
        Repr::Invalid => out(b"#invalid"),
    }
}

/// `n` in decimal, written into the end of `buf`.
#[inline]
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // SAFETY: `buf[at..]` holds only ASCII digits, so it is UTF-8.
    unsafe { std::str::from_utf8_unchecked(&buf[at..]) }
}

/// `n` as 32 lowercase hex digits.
fn hex(n: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((n >> (124 - 4 * i)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_like_format() {
        for n in [0, 7, 10, 99, 12_345, u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string());
        }
        for n in [
            0u128,
            1,
            0xabc,
            u128::MAX,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ] {
            assert_eq!(hex(n).as_slice(), format!("{n:032x}").as_bytes());
        }
    }

    #[test]
    fn tag_names_match_the_documented_form() {
        let tag = StoreKey::Tag {
            namespace: "app",
            tag: "user:7",
        };
        assert_eq!(tag.name(), "app#tag:user:7");
        let odd = StoreKey::Tag {
            namespace: "app",
            tag: "a~b%#",
        };
        assert_eq!(odd.name(), "app#tag:a%7Eb%25%23");
    }

    #[test]
    fn default_keys_and_load_locks_have_their_own_marks() {
        static SITE: crate::private::Site = crate::private::Site {
            name: "users.get",
            version: Some(3),
            ..crate::private::Site::DEFAULT
        };
        static ODD: crate::private::Site = crate::private::Site {
            name: "a#v1~",
            ..crate::private::Site::DEFAULT
        };
        let key = Key {
            repr: Repr::Hashed {
                site: &SITE,
                hash: 0xab.into(),
            },
        };
        let hex = format!("{:032x}", 0xab);
        assert_eq!(key.full("app"), format!("app:users.get#v3#{hex}"));
        let odd = Key {
            repr: Repr::Hashed {
                site: &ODD,
                hash: 0xab.into(),
            },
        };
        assert_eq!(odd.full("app"), format!("app:a%23v1%7E#{hex}"));
        let load = StoreKey::Load {
            namespace: "app",
            key: &Key::manual("user:7"),
        };
        assert_eq!(load.name(), "app#load:user:7");
    }

    #[test]
    fn assembled_names_equal_their_strings_short_or_long() {
        let short = Key::rendered("user:7#v2".into());
        let long = Key::rendered("x".repeat(300).into());
        for key in [&short, &long] {
            let name = StoreKey::Entry {
                namespace: "app",
                key,
            };
            name.with_bytes(|bytes| assert_eq!(bytes, name.name().as_bytes()));
            assert!(name.name().len() <= MAX_KEY_LEN);
        }
        assert_eq!(
            StoreKey::Entry {
                namespace: "app",
                key: &short
            }
            .name(),
            "app:user:7#v2"
        );
    }
}
