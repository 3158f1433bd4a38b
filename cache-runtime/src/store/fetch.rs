//! What one read of the flow asks a store for, and what it gets back.

use crate::key::{Key, StoreKey};

/// One read: an entry and the version counters of the tags it was stored
/// with. [`EntryStore::fetch`](super::EntryStore::fetch) answers it in one
/// round trip where the store can, so that a hit costs one round trip.
///
/// Names are rendered on demand: [`entry_key`](Self::entry_key) and
/// [`tag_keys`](Self::tag_keys) give the store's names of the entry and of
/// each tag's counter, the same names [`EntryStore::put`](super::EntryStore::put)
/// and [`TagStore::versions`](super::TagStore::versions) are given.
#[derive(Clone, Copy)]
pub struct Fetch<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) key: &'a Key,
    pub(crate) tags: &'a [String],
}

impl std::fmt::Debug for Fetch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch")
            .field("entry_key", &self.entry_key())
            .field("tag_keys", &self.tag_keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Fetch<'a> {
    /// The store's name of the entry.
    pub fn entry_key(&self) -> String {
        self.entry().name()
    }

    /// The store's names of the tags' version counters, in the order whose
    /// versions [`Fetched::versions`] must follow.
    pub fn tag_keys(&self) -> impl ExactSizeIterator<Item = String> + 'a {
        let namespace = self.namespace;
        self.tags
            .iter()
            .map(move |tag| StoreKey::Tag { namespace, tag }.name())
    }

    /// How many tag versions the answer carries.
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// The entry's name, unrendered (a store of this crate writes it
    /// straight into its request).
    pub(crate) fn entry(&self) -> StoreKey<'a> {
        StoreKey::Entry {
            namespace: self.namespace,
            key: self.key,
        }
    }

    /// The tags' counter names, unrendered.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn tag_names(&self) -> impl Iterator<Item = StoreKey<'a>> + 'a {
        let namespace = self.namespace;
        self.tags
            .iter()
            .map(move |tag| StoreKey::Tag { namespace, tag })
    }
}

/// The answer to a [`Fetch`]: the entry's bytes (`None` when absent or
/// expired) and the current version of each tag, in the order of
/// [`Fetch::tag_keys`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fetched {
    /// The entry's bytes, as [`EntryStore::put`](super::EntryStore::put) stored them.
    pub entry: Option<Vec<u8>>,
    /// The tags' versions, one per [`Fetch::tag_keys`], created as
    /// [`TagStore::versions`](super::TagStore::versions) creates them.
    pub versions: Vec<u64>,
}

impl Fetched {
    /// An answer: the entry's bytes and the tags' versions.
    pub fn new(entry: Option<Vec<u8>>, versions: Vec<u64>) -> Self {
        Self { entry, versions }
    }
}
