//! The tags of entries read without knowing them beforehand (the manual
//! API's and the HTTP layer's): what their headers record, and the current
//! versions to check them against, from the known-versions table when it
//! vouches for every one, else read in the batch's second round trip.

use super::trips::Second;
use crate::clock::now_millis;
use crate::coherence::known::KnownVersions;
use crate::remote::entry::Header;
use crate::tags::{Observed, TagSnapshot};
use crate::Cache;

/// The tags of a batch's fresh tagged entries, sorted, and their versions.
pub(super) struct HeaderTags {
    names: Vec<String>,
    /// Taken before the versions are read: an invalidation while they
    /// travel makes the promoted entries born invalid.
    local: TagSnapshot,
    /// The current versions of `names`, in order, once known; `None` while
    /// not (never while one of them awaits an invalidation: the store may
    /// still hold what this process invalidated).
    current: Option<Vec<u64>>,
    /// Whether `current` must be read from the store.
    to_read: bool,
}

impl HeaderTags {
    /// The tags `headers` record; their versions from the known-versions
    /// table when it trusts them all, they are not older than this process
    /// saw, and every entry recorded them.
    pub(super) fn new(
        cache: &Cache,
        known: Option<&KnownVersions>,
        headers: &[&Header<'_>],
    ) -> Self {
        let mut names: Vec<String> = headers
            .iter()
            .flat_map(|h| h.tags.iter().map(|(name, _)| name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        let inner = &cache.inner;
        let local = inner.tags.snapshot(&names);
        let mut tags = HeaderTags {
            names,
            local,
            current: None,
            to_read: false,
        };
        if tags.names.is_empty() || inner.tags.any_pending(&tags.names) {
            return tags;
        }
        if let Some(versions) = known.and_then(|k| k.versions(&tags.names, now_millis())) {
            if tags.local.observe(&tags.names, versions.as_slice()) == Observed::Current {
                tags.current = Some(versions.as_slice().to_vec());
                if headers.iter().all(|h| tags.valid(h)) {
                    return tags;
                }
                tags.current = None;
            }
        }
        tags.to_read = true;
        tags
    }

    /// The tags whose versions the second round trip must read.
    pub(super) fn to_read(&self) -> &[String] {
        if self.to_read {
            &self.names
        } else {
            &[]
        }
    }

    /// Takes the versions the second round trip read, unless it failed or
    /// they are older than versions this process saw.
    pub(super) fn read(&mut self, second: &Second) {
        if !self.to_read {
            return;
        }
        let versions = second.pick(self.names.iter().map(String::as_str));
        self.current = versions.filter(|v| self.local.observe(&self.names, v) == Observed::Current);
    }

    /// Whether every tag version `header` recorded is current.
    pub(super) fn valid(&self, header: &Header<'_>) -> bool {
        let Some(current) = &self.current else {
            return header.tags.is_empty();
        };
        header.tags.iter().all(|(name, version)| {
            self.names
                .binary_search_by(|n| n.as_str().cmp(name))
                .ok()
                .and_then(|i| current.get(i))
                == Some(version)
        })
    }

    /// What the memory entry made from `header`'s entry records.
    pub(super) fn snapshot(&self, header: &Header<'_>) -> TagSnapshot {
        let tags: Vec<&str> = header.tags.iter().map(|(n, _)| n.as_ref()).collect();
        self.local.only(&tags)
    }
}
