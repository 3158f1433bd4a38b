//! Default keys: the function's identity and a stable 128-bit hash (XXH3) of
//! the canonical encoding of its arguments. Never `std::hash` with a random
//! state: the same arguments give the same key in every process and build.

use serde::Serialize;

use super::buf::Buf;
use super::canonical;
use super::{Key, Repr};
use crate::private::Site;

/// An argument hashed into a default key: anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is part of the default cache key, so it must implement `serde::Serialize`",
    label = "hashed into the key of this #[cached] function",
    note = "derive `serde::Serialize` for it, list the parameter in `skip(..)`, or give a `key = \"..\"` template"
)]
pub trait KeyArg: Serialize {}
impl<T: Serialize + ?Sized> KeyArg for T {}

/// Accumulates a default key's inputs; built by generated code.
pub struct KeyHasher {
    buf: Buf,
    failed: bool,
}

impl KeyHasher {
    /// Starts an empty key.
    #[inline(always)]
    pub fn new() -> Self {
        Self {
            buf: Buf::new(),
            failed: false,
        }
    }

    /// Adds a type to the identity (type parameters of generic functions, `Self`).
    #[inline]
    pub fn type_name(&mut self, name: &str) {
        // Tagged so a type name can never read as an argument.
        self.buf.put(&[0xFF]);
        self.buf.put(&(name.len() as u64).to_le_bytes());
        self.buf.put(name.as_bytes());
    }

    /// Adds one argument.
    #[inline(always)]
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) {
        if canonical::encode(&mut self.buf, value).is_err() {
            self.failed = true;
        }
    }

    /// The key of `site` for the arguments given. Borrows the hasher and is
    /// always inlined, so its buffer is never copied.
    #[inline(always)]
    pub fn finish(&self, site: &'static Site) -> Key {
        if self.failed {
            return Key {
                repr: Repr::Invalid,
            };
        }
        Key {
            repr: Repr::Hashed {
                site,
                hash: self.buf.hash().into(),
            },
        }
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SITE: Site = Site {
        name: "tests::f",
        ..Site::DEFAULT
    };

    fn key_of(args: &[&str]) -> Key {
        let mut h = KeyHasher::new();
        for a in args {
            h.arg(a);
        }
        h.finish(&SITE)
    }

    #[test]
    fn same_arguments_same_key() {
        assert_eq!(key_of(&["a", "b"]), key_of(&["a", "b"]));
        assert_ne!(key_of(&["a:b", "c"]), key_of(&["a", "b:c"]));
    }

    #[test]
    fn failing_serialize_gives_invalid_key() {
        struct Bad;
        impl Serialize for Bad {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let mut h = KeyHasher::new();
        h.arg(&Bad);
        assert!(!h.finish(&SITE).is_valid());
    }
}
