//! Cache keys: a rendered template, a manual key, or a function's identity plus
//! a stable hash of its arguments. In the memory tier a default key is kept as
//! its 128-bit hash (no string is built on a hit); the string form a store
//! sees is made only when needed (remote tier, listings, logs).
//!
//! # The grammar of store names
//!
//! ```text
//! name      = ns ":" entry                  an entry
//!           | ns "#tag:" esc(tag)           a tag's version counter
//!           | ns "#load:" entry             the lock of a load (lock = "distributed")
//!           | ns "#lock:" esc(lock name)    a lock taken through `Cache::lock`
//!           | ns "#counter:" esc(counter)   a counter of `Cache::increment`
//!           | short
//! entry     = text                          a template key; a manual key
//!           | text "#v" N                   a template key with `version = N`
//!           | esc(fn name) "#" H            a default key
//!           | esc(fn name) "#v" N "#" H     a default key with `version = N`
//! short     = the first 200 bytes of a name longer than 250, "~", H'
//! channel   = ns "#invalidations"           the backplane (a channel, not a key)
//! ns        = 1*64 (ALPHA / DIGIT / "-" / "_" / ".")      checked by `build()`
//! text      = a template's literal text with its values escaped, or esc(manual key)
//! N         = 1*DIGIT;  H = 32 hex digits (XXH3-128 of the arguments)
//! H'        = 32 hex digits (XXH3-128 of the whole long name)
//! ```
//!
//! Why no two of them meet:
//! - `%`, `#` and `~` are reserved ([`reserved`]): a template's literal text
//!   may not contain them (the macro says so at compile time), every value
//!   rendered into a template has them escaped (`%XX`, with `%` itself `%25`),
//!   and so does every string a caller gives the runtime (manual keys, tags,
//!   lock and counter names, function names). So `text` never contains `#` or
//!   `~`, and no name contains `~` unless it was shortened: a short name can
//!   never equal a name that was not shortened, whatever a caller writes.
//! - `ns` contains none of `:`, `#`, `~`, so the first `:` or `#` of a name
//!   ends its namespace, and what follows it (`:`, `#tag:`, `#load:`, `#lock:`,
//!   `#counter:`) is the space.
//! - Inside an entry the `#`s tell the forms apart: none (text), one followed
//!   by `v` and digits (a versioned template key), one followed by 32 hex
//!   digits (a default key; `v` is not a hex digit), or two.
//! - Within one template, different arguments render different text: values
//!   are escaped wherever they contain a character of the template's literal
//!   text, placeholders are always separated by literal text whose first
//!   character is escaped in the value before it, and `%` never occurs raw, so
//!   every `%` begins a three-character escape. Reading left to right, each
//!   value ends at the first raw occurrence of the next literal's first
//!   character, and decodes to exactly one value.
//! - A manual key is stored as `esc(key)`: `get("user:7")` reads what
//!   `key = "user:{id}"` stored for 7 (the intended sharing of the manual API
//!   and unversioned templates), but a manual key can never name a versioned,
//!   default or shortened entry, a tag, a lock or a counter, and two different
//!   manual keys never share an entry (`"a~b"` is `a%7Eb`, `"a%7Eb"` is `a%257Eb`).
//!
//! The remaining way for two keys to meet is a collision of XXH3-128 (default
//! keys, shortened names), which is not a cryptographic hash.

mod buf;
mod canonical;
mod hasher;
#[cfg(test)]
mod injective_tests;
mod namespace;
mod placeholder;
pub(crate) mod reserved;
mod store_key;
mod template;
mod text;

pub use hasher::{KeyArg, KeyHasher};
pub(crate) use namespace::check_namespace;
pub use placeholder::{Placeholder, RenderDirect, RenderDisplay, TemplateValue};
pub(crate) use store_key::StoreKey;
// The HTTP layer writes its keys' lengths with it too.
#[cfg(feature = "http")]
pub(crate) use store_key::decimal;
pub use template::Template;

use std::hash::{Hash, Hasher};

pub(crate) use text::KeyText;

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
    Hashed { site: &'static Site, hash: Hash128 },
    /// A rendered template or a key given to the manual API. Up to 23 bytes
    /// are kept inline: no allocation to build, clone or drop.
    Text(KeyText),
    /// The arguments could not be encoded; the call runs uncached.
    Invalid,
}

impl Key {
    /// A rendered template (escaped, and with its `#v{N}` already appended).
    pub(crate) fn rendered(text: KeyText) -> Key {
        Key {
            repr: Repr::Text(text),
        }
    }

    /// A key given by the user to the manual API: its reserved characters
    /// escaped (see the module docs), so it can only name an unversioned
    /// template's entry or another manual key's.
    pub(crate) fn manual(text: &str) -> Key {
        let text = match reserved::escaped(text) {
            std::borrow::Cow::Borrowed(clean) => KeyText::new(clean),
            std::borrow::Cow::Owned(escaped) => KeyText::from_string(escaped),
        };
        Key {
            repr: Repr::Text(text),
        }
    }

    /// What [`Key::manual`] of `text` would be, borrowed, when `text` has
    /// no reserved character (then escaping leaves it as it is); `None`
    /// when it has one. A lookup by it builds and frees no key. (Used by the
    /// HTTP layer's hits.)
    #[cfg(feature = "http")]
    #[inline]
    pub(crate) fn manual_borrowed(text: &str) -> Option<Borrowed<'_>> {
        reserved::is_clean(text).then(|| Borrowed {
            text,
            hash: KeyText::hash_str(text, text_seed()),
        })
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

/// A manual key's text, borrowed (see [`Key::manual_borrowed`]), with its
/// `hash64` computed.
#[cfg(feature = "http")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Borrowed<'a> {
    text: &'a str,
    hash: u64,
}

/// What an in-process map of keys can be asked by: a key, or a borrowed
/// manual key's text. Both hash as the key they name would (one word, its
/// `hash64`), so a lookup finds the same entry either way.
pub(crate) trait Lookup {
    /// The [`Repr::hash64`] of the key it names.
    fn hash64(&self) -> u64;
    /// Whether `stored` is the key it names.
    fn matches(&self, stored: &Repr) -> bool;
    /// The key it names, owned (for an event that carries it).
    fn to_key(&self) -> Key;
}

impl Lookup for Repr {
    #[inline]
    fn hash64(&self) -> u64 {
        Repr::hash64(self)
    }

    #[inline]
    fn matches(&self, stored: &Repr) -> bool {
        self == stored
    }

    fn to_key(&self) -> Key {
        Key { repr: self.clone() }
    }
}

impl Lookup for Key {
    #[inline]
    fn hash64(&self) -> u64 {
        self.repr.hash64()
    }

    #[inline]
    fn matches(&self, stored: &Repr) -> bool {
        self.repr == *stored
    }

    fn to_key(&self) -> Key {
        self.clone()
    }
}

#[cfg(feature = "http")]
impl Lookup for Borrowed<'_> {
    #[inline]
    fn hash64(&self) -> u64 {
        self.hash
    }

    /// Equal texts are equal keys whichever form they are kept in.
    #[inline]
    fn matches(&self, stored: &Repr) -> bool {
        matches!(stored, Repr::Text(text) if text.as_bytes() == self.text.as_bytes())
    }

    /// The text has no reserved character (see [`Key::manual_borrowed`]), so
    /// `Key::manual` names the same key.
    fn to_key(&self) -> Key {
        Key::manual(self.text)
    }
}

/// Keeps a key of at most [`MAX_KEY_LEN`] bytes: a longer one keeps its first
/// bytes (cut at a character boundary) and ends in `~` and the hash of the whole.
/// `~` occurs in no name that was not shortened (see the module docs), so a
/// shortened name never equals another name as it was written.
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
            Repr::Hashed { hash, .. } => hash.low(),
            Repr::Text(text) => text.hash64(text_seed()),
            Repr::Invalid => 0,
        }
    }
}

/// A default key's 128-bit hash, as two words: `u128`'s 16-byte alignment
/// would pad every memory entry (key and value) to a multiple of 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hash128([u64; 2]);

impl Hash128 {
    /// The hash, whole.
    #[inline]
    pub(crate) fn get(self) -> u128 {
        u128::from(self.0[0]) | (u128::from(self.0[1]) << 64)
    }

    /// Its low 64 bits.
    #[inline(always)]
    pub(crate) fn low(self) -> u64 {
        self.0[0]
    }
}

impl From<u128> for Hash128 {
    #[inline(always)]
    fn from(hash: u128) -> Hash128 {
        Hash128([hash as u64, (hash >> 64) as u64])
    }
}

impl std::fmt::Debug for Hash128 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.get())
    }
}

/// The per-process seed of text keys' hashes.
#[inline]
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
    fn manual_keys_escape_the_reserved_characters() {
        assert_eq!(Key::manual("user:7").full("app"), "app:user:7");
        assert_eq!(Key::manual("b#tag:t").full("app"), "app:b%23tag:t");
        assert_eq!(Key::manual("x~1%").full("app"), "app:x%7E1%25");
        assert_ne!(Key::manual("a~b"), Key::manual("a%7Eb"));
    }

    #[cfg(feature = "http")]
    #[test]
    fn a_borrowed_manual_key_names_the_key_it_borrows() {
        let long = "http:GET 10:bench.test5:/item".to_string();
        for text in [
            "",
            "user:7",
            "x".repeat(23).as_str(),
            long.as_str(),
            "é日本",
        ] {
            let key = Key::manual(text);
            let borrowed = Key::manual_borrowed(text).expect("clean");
            assert_eq!(Lookup::hash64(&borrowed), key.repr.hash64(), "{text:?}");
            assert!(borrowed.matches(&key.repr), "{text:?}");
            assert!(!borrowed.matches(&Key::manual(&format!("{text}.")).repr));
            assert!(!borrowed.matches(&Repr::Invalid));
        }
        assert!(Key::manual_borrowed("a%20b").is_none());
        assert!(Key::manual_borrowed("a~b").is_none());
    }
}
