//! The read's round trips to the store: the batch's fetch, and the second
//! one for tag versions; an answer out of the store's contract is a fault.

use crate::coherence::known::KnownVersions;
use crate::events::FaultKind;
use crate::remote::store::StoreError;
use crate::remote::Remote;
use crate::store::{Fetch, Fetched};
use crate::Cache;

/// One round trip for `requests`, answered in order. One request (every
/// `#[cached]` call) is a `fetch`, as the store's `fetch_batch` of one is.
pub(super) async fn fetch(
    cache: &Cache,
    remote: &Remote,
    requests: &[Fetch<'_>],
) -> Result<Vec<Fetched>, StoreError> {
    let counters = &cache.inner.observe.counters;
    let answers = match requests {
        [] => return Ok(Vec::new()),
        [one] => return Ok(vec![fetch_one(cache, remote, *one).await?]),
        _ => remote.call(counters, |s| s.fetch_batch(requests)).await?,
    };
    let matches = answers.len() == requests.len()
        && answers
            .iter()
            .zip(requests)
            .all(|(a, r)| a.versions.len() == r.tag_count());
    if matches {
        Ok(answers)
    } else {
        broken(cache, "a fetch's answer does not match its request")
    }
}

/// One round trip for one request (`read_one`'s, and a batch of one).
pub(super) async fn fetch_one(
    cache: &Cache,
    remote: &Remote,
    request: Fetch<'_>,
) -> Result<Fetched, StoreError> {
    let counters = &cache.inner.observe.counters;
    let answer = remote.call(counters, |s| s.fetch(request)).await?;
    if answer.versions.len() == request.tag_count() {
        Ok(answer)
    } else {
        broken(cache, "a fetch's answer does not match its request")
    }
}

/// The versions the second round trip read: of `names` (sorted), in order.
#[derive(Default)]
pub(super) struct Second {
    names: Vec<String>,
    versions: Vec<u64>,
}

impl Second {
    /// Reads the versions of `names` (sorted, without duplicates; one round
    /// trip), and teaches them to the known-versions table.
    pub(super) async fn read(
        cache: &Cache,
        remote: &Remote,
        known: Option<&KnownVersions>,
        names: Vec<String>,
    ) -> Result<Second, StoreError> {
        let inner = &cache.inner;
        let tag_keys: Vec<String> = names
            .iter()
            .map(|t| Remote::tag_key(&inner.config.namespace, t))
            .collect();
        let ticket = known.and_then(KnownVersions::ticket);
        let versions = remote
            .call(&inner.observe.counters, |s| s.versions(&tag_keys))
            .await?;
        if versions.len() != names.len() {
            return broken(cache, "a versions answer does not match its request");
        }
        if let (Some(known), Some(ticket)) = (known, ticket) {
            known.learn(&names, &versions, ticket);
        }
        Ok(Second { names, versions })
    }

    /// The versions of `tags`, in order; `None` unless all were read.
    pub(super) fn pick<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> Option<Vec<u64>> {
        tags.into_iter()
            .map(|tag| {
                let i = self.names.binary_search_by(|n| n.as_str().cmp(tag)).ok()?;
                self.versions.get(i).copied()
            })
            .collect()
    }
}

/// A store that answered out of its contract: a fault, and nothing read.
#[cold]
fn broken<T>(cache: &Cache, what: &str) -> Result<T, StoreError> {
    cache.inner.observe.counters.fault(FaultKind::Other);
    tracing::warn!("remote store: {what}");
    Err(StoreError::Backend(what.to_owned()))
}
