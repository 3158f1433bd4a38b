//! Cache keys: a rendered template, or a function's identity plus a stable hash
//! of its arguments. In the memory tier a hashed key is kept as its 128-bit hash
//! (no string is built on a hit); the readable string form
//! `{namespace}:{name}:{hash}` or `{namespace}:{template}` is made only when
//! needed (remote tier, listings, logs).

mod buf;
mod canonical;
mod hasher;
mod placeholder;
mod store_key;
mod template;

pub use hasher::{KeyArg, KeyHasher};
pub use placeholder::{Placeholder, RenderDirect, RenderDisplay, TemplateValue};
pub(crate) use store_key::StoreKey;
pub use template::Template;

use std::hash::{Hash, Hasher};

use smol_str::SmolStr;

use crate::private::Site;

/// Keys longer than this are shortened with a hash, keeping a readable prefix.
pub(crate) const MAX_KEY_LEN: usize = 250;
const KEPT_PREFIX: usize = 200;

/// The key of one entry, within a cache's namespace.
#[derive(Clone, Debug)]
pub struct Key {
    pub(crate) repr: Repr,
}

#[derive(Clone, Debug)]
pub(crate) enum Repr {
    /// Default key: the function's identity and the hash of its arguments.
    Hashed { site: &'static Site, hash: u128 },
    /// A rendered template or a key given to the manual API. Up to 23 bytes
    /// are kept inline: no allocation to build, clone or drop.
    Text(SmolStr),
    /// The arguments could not be encoded; the call runs uncached.
    Invalid,
}

impl Key {
    pub(crate) fn text(version: Option<u64>, text: SmolStr) -> Key {
        let text = match version {
            Some(v) => smol_str::format_smolstr!("v{v}:{text}"),
            None => text,
        };
        Key {
            repr: Repr::Text(text),
        }
    }

    /// A key given by the user to the manual API.
    pub(crate) fn manual(text: &str) -> Key {
        Key {
            repr: Repr::Text(text.into()),
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        !matches!(self.repr, Repr::Invalid)
    }

    /// The readable key as a store sees it: `{namespace}:{..}`, at most
    /// [`MAX_KEY_LEN`] bytes.
    pub(crate) fn full(&self, namespace: &str) -> String {
        StoreKey::Entry {
            namespace,
            key: self,
        }
        .name()
    }
}

/// Keeps a key of at most [`MAX_KEY_LEN`] bytes: a longer one keeps its first
/// bytes (cut at a character boundary) and ends in `~` and the hash of the whole.
pub(crate) fn shorten(key: String) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let mut cut = KEPT_PREFIX;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    format!("{}~{hash:032x}", &key[..cut])
}

impl Repr {
    /// The key's 64-bit hash for in-process maps, computed once per lookup:
    /// a default key's own hash, or a text key's XXH3 under a seed chosen per
    /// process (so that chosen keys cannot be made to collide). Its `Hash`
    /// writes exactly this, so a lookup can pass it precomputed.
    #[inline]
    pub(crate) fn hash64(&self) -> u64 {
        match self {
            Repr::Hashed { hash, .. } => *hash as u64,
            Repr::Text(text) => xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), text_seed()),
            Repr::Invalid => 0,
        }
    }
}

/// The per-process seed of text keys' hashes.
fn text_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u64))
}

impl PartialEq for Repr {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Repr::Hashed { site: a, hash: x }, Repr::Hashed { site: b, hash: y }) => {
                x == y && (std::ptr::eq(*a, *b) || (a.name == b.name && a.version == b.version))
            }
            (Repr::Text(a), Repr::Text(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Repr {}

impl Hash for Repr {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One word, whatever the key: see `hash64`. (A default key's 128-bit
        // hash already covers its arguments; its low half is enough.)
        state.write_u64(self.hash64());
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.repr == other.repr
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.repr.hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_kept() {
        assert_eq!(shorten("ns:user:7".into()), "ns:user:7");
    }

    #[test]
    fn long_keys_are_shortened_with_readable_prefix() {
        let long = format!("ns:{}", "é".repeat(200));
        let short = shorten(long.clone());
        assert!(short.len() <= MAX_KEY_LEN, "{}", short.len());
        assert!(short.starts_with("ns:éé"));
        let other = shorten(format!("{long}x"));
        assert_ne!(short, other);
    }

    #[test]
    fn versions_prefix_template_keys() {
        let k = Key::text(Some(3), "user:7".into());
        assert_eq!(k.full("app"), "app:v3:user:7");
        assert_eq!(Key::text(None, "user:7".into()).full("app"), "app:user:7");
    }
}
