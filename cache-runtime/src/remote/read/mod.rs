//! The one remote read: every read of entries from the remote tier goes
//! through [`read`] (the `#[cached]` macro's miss path with one key through
//! [`read_one`]; the manual API's `get`, `get_many`, `get_or_load` and the
//! HTTP layer through [`read_many`]). It reads a batch of keys in one
//! [`fetch_batch`](crate::store::EntryStore::fetch_batch), checks what comes
//! back (`judge`: size, checksum, format, the tag versions each entry
//! recorded), promotes valid entries to memory, and never trusts an entry
//! whose tags it could not check.
//!
//! A key may come with the tags its caller knows before reading (the
//! macro's rendered tags), or without (the tags are in the entry's header).
//! What a hit costs, in round trips to the store:
//! - tags known to the caller: **one**. The entry is read with its tags'
//!   versions in the same fetch, or alone when this process's known-versions
//!   table (`remote::known`, kept by the backplane, confirmed within a
//!   second) vouches for them; only if the entry then recorded other
//!   versions than those known is a second one, `versions`, read.
//! - tags from the header: **one** for an entry without tags, or while the
//!   known-versions table holds every tag and they match the entries';
//!   otherwise **two**, the second one `versions` for every tag at once.
//!
//! A read that fails (a timeout, a fault, an open breaker) is a miss marked
//! `failed`, carrying the versions it can still vouch for (none needed for
//! no tags; those of the known-versions table), so the load's value is
//! still written through; a tag whose version was never read is not guessed
//! (a guess could resurrect an invalidated value), and such a load skips the
//! remote write (`flow::store`).

mod judge;
mod many;

use std::collections::HashMap;

pub(crate) use judge::{decode_for, DecodeFn};
use judge::{judge_tagged, serve, Found, Judged};
pub(crate) use many::read_many;

use crate::events::FaultKind;
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::remote::entry::Header;
use crate::remote::known::{KnownVersions, Versions};
use crate::remote::store::StoreError;
use crate::remote::Remote;
use crate::store::{Fetch, Fetched};
use crate::tags::{Observed, TagSnapshot};
use crate::value::SharedValue;
use crate::Cache;

/// One key to read.
pub(crate) struct Want<'a> {
    pub(crate) key: &'a Key,
    /// The entry's tags, when the caller knows them before reading (the
    /// macro's call); `None`: the entry's header says them.
    pub(crate) tags: Option<&'a [String]>,
    /// With `tags`: their local versions taken before the caller looked for
    /// a flight. With a memory tier and none given, one is taken before the
    /// request is sent, so an invalidation while it travels makes the entry
    /// born invalid.
    pub(crate) snapshot: Option<&'a TagSnapshot>,
}

/// How a read decodes and serves what it finds.
#[derive(Clone, Copy)]
pub(crate) struct How {
    pub(crate) decode: DecodeFn,
    /// Whether an entry past its freshness but within its stale window is
    /// served stale (the function's `stale`); keys without known tags are
    /// only ever served fresh.
    pub(crate) refreshable: bool,
}

/// What the remote tier held under one key.
pub(crate) enum RemoteRead {
    /// A fresh value (also put in memory, when the cache has a memory tier).
    Fresh(Value),
    /// A stale entry (also put in memory), to serve while one refresh runs.
    Stale(Entry),
    Miss {
        /// An expired entry's value still within its fail-safe window.
        fail_safe: Option<SharedValue>,
        /// The tags' versions to write the loaded entry with; `None` when
        /// they could not be read nor vouched for (the load then skips the
        /// remote tier).
        versions: Option<Vec<u64>>,
        /// The remote tier was not read: it failed, is absent, or an
        /// invalidation of one of the tags awaits it.
        failed: bool,
    },
}

impl RemoteRead {
    /// Read, and nothing usable there.
    fn missed(versions: Option<&[u64]>) -> Self {
        RemoteRead::Miss {
            fail_safe: None,
            versions: versions.map(<[u64]>::to_vec),
            failed: false,
        }
    }

    /// Not read; `vouched`: the versions a write may still use.
    fn unread(vouched: Option<Vec<u64>>) -> Self {
        RemoteRead::Miss {
            fail_safe: None,
            versions: vouched,
            failed: true,
        }
    }
}

/// What a batch read found, in the order of its keys, and the store's
/// error if a round trip failed (the keys it left unread are `failed`).
pub(crate) struct Reads {
    pub(crate) reads: Vec<RemoteRead>,
    pub(crate) error: Option<StoreError>,
}

/// What the read asks the store for one key.
enum Ask<'w> {
    /// The caller's `tags`: their versions are read with the entry, unless
    /// `known` has them (none needed for no tags, or the known-versions
    /// table's).
    Tagged {
        tags: &'w [String],
        snapshot: Option<TagSnapshot>,
        known: Option<Versions>,
    },
    /// The tags are in the entry's header.
    Header,
    /// Not read: an invalidation of one of the tags awaits the remote tier,
    /// which may still hold what this process invalidated.
    Skipped,
}

impl Ask<'_> {
    /// What a write may use when this key's read failed.
    fn vouched(&self) -> Option<Vec<u64>> {
        match self {
            Ask::Tagged { known, .. } => known.as_ref().map(|v| v.as_slice().to_vec()),
            Ask::Header | Ask::Skipped => None,
        }
    }
}

/// Reads one key whose caller knows its `tags` (the macro's miss path).
pub(crate) async fn read_one(
    cache: &Cache,
    key: &Key,
    tags: &[String],
    snapshot: Option<&TagSnapshot>,
    how: How,
) -> RemoteRead {
    let want = Want {
        key,
        tags: Some(tags),
        snapshot,
    };
    // Boxed: the batch's state would make the miss future, itself boxed on
    // every remote hit, outgrow malloc's per-thread cache (see `flow::slow`).
    let mut read = Box::pin(read(cache, std::slice::from_ref(&want), how)).await;
    read.reads.pop().unwrap_or(RemoteRead::unread(None))
}

/// Reads `wants` from the remote tier (see the module's docs). Without a
/// remote tier, every key is unread.
pub(crate) async fn read(cache: &Cache, wants: &[Want<'_>], how: How) -> Reads {
    let inner = &cache.inner;
    let unread = |asks: &[Ask<'_>], error| Reads {
        reads: asks
            .iter()
            .map(|a| RemoteRead::unread(a.vouched()))
            .collect(),
        error,
    };
    let Some(remote) = &inner.remote else {
        let reads = wants.iter().map(|_| RemoteRead::unread(None)).collect();
        return Reads { reads, error: None };
    };
    let known = inner.backplane.as_ref().map(|b| &b.known);
    let asks: Vec<Ask<'_>> = wants.iter().map(|want| ask(cache, known, want)).collect();
    let requests: Vec<Fetch<'_>> = wants
        .iter()
        .zip(&asks)
        .filter_map(|(want, ask)| {
            let tags = match ask {
                Ask::Skipped => return None,
                Ask::Tagged {
                    tags, known: None, ..
                } => tags,
                Ask::Tagged { .. } | Ask::Header => &[][..],
            };
            Some(Fetch {
                namespace: &inner.namespace,
                key: want.key,
                tags,
            })
        })
        .collect();
    // Before the request: a message heard while it travels may be newer
    // than its answer.
    let asks_versions = requests.iter().any(|r| r.tag_count() > 0);
    let ticket = known
        .filter(|_| asks_versions)
        .and_then(KnownVersions::ticket);
    let answers = match fetch(cache, remote, &requests).await {
        Ok(answers) => answers,
        Err(error) => return unread(&asks, Some(error)),
    };
    let max = remote.max_entry();
    let found: Vec<Found<'_>> = answers
        .iter()
        .zip(&requests)
        .map(|(answer, r)| Found::decode(cache, r.key, answer.entry.as_deref(), max))
        .collect();
    let mut reads: Vec<Option<RemoteRead>> = wants.iter().map(|_| None).collect();
    // Tagged keys whose entry recorded other versions than those known, and
    // header keys with a fresh tagged entry: (key, answer) indices.
    let (mut again, mut headed) = (Vec::new(), Vec::new());
    let now = crate::clock::now_millis();
    let mut j = 0;
    for (i, (want, ask)) in wants.iter().zip(&asks).enumerate() {
        if let Ask::Skipped = ask {
            reads[i] = Some(RemoteRead::unread(None));
            continue;
        }
        // `fetch` checked there is one answer per request, and the
        // requests are the asks not skipped, in order.
        let (answer, found) = (&answers[j], &found[j]);
        j += 1;
        match ask {
            Ask::Tagged {
                tags,
                snapshot,
                known: vouched,
            } => {
                let versions = match vouched {
                    Some(versions) => versions.as_slice(),
                    None => {
                        if let (Some(known), Some(ticket)) = (known, ticket) {
                            known.learn(tags, &answer.versions, ticket);
                        }
                        &answer.versions
                    }
                };
                let snapshot = snapshot.as_ref();
                reads[i] = match judge_tagged(cache, want.key, how, tags, snapshot, found, versions)
                {
                    Judged::Read(read) => Some(read),
                    Judged::NotCurrent if vouched.is_none() => {
                        Some(RemoteRead::missed(Some(versions)))
                    }
                    Judged::NotCurrent => {
                        again.push((i, j - 1));
                        None
                    }
                };
            }
            Ask::Header => match found {
                Found::Entry(header, _) if now < header.fresh_until && !header.tags.is_empty() => {
                    headed.push((i, j - 1));
                }
                Found::Entry(header, payload) if now < header.fresh_until => {
                    let read = serve(
                        cache,
                        want.key,
                        how,
                        header,
                        payload,
                        |_| TagSnapshot::default(),
                        None,
                    );
                    reads[i] = Some(read);
                }
                _ => reads[i] = Some(RemoteRead::missed(None)),
            },
            Ask::Skipped => {}
        }
    }
    // The header keys' tags, and a snapshot of them before their versions
    // are read: an invalidation while they travel makes the promoted
    // entries born invalid.
    let mut names: Vec<String> = Vec::new();
    for &(_, j) in &headed {
        if let Found::Entry(header, _) = &found[j] {
            names.extend(header.tags.iter().map(|(name, _)| name.to_string()));
        }
    }
    names.sort();
    names.dedup();
    let local = inner.tags.snapshot(&names);
    let entries = || {
        headed.iter().filter_map(|&(_, j)| match &found[j] {
            Found::Entry(header, _) => Some(header),
            _ => None,
        })
    };
    let pending = !names.is_empty() && inner.tags.any_pending(&names);
    // The versions this process knows, when it trusts them all and every
    // entry recorded them: no second round trip for the header keys.
    let from_known = (!names.is_empty() && !pending)
        .then(|| known.and_then(|k| k.versions(&names, crate::clock::now_millis())))
        .flatten()
        .and_then(|versions| {
            if local.observe(&names, versions.as_slice()) == Observed::Outdated {
                return None;
            }
            let current: HashMap<&str, u64> = names
                .iter()
                .map(String::as_str)
                .zip(versions.as_slice().iter().copied())
                .collect();
            entries().all(|h| valid(&current, h)).then_some(current)
        });
    let header_asks = !names.is_empty() && !pending && from_known.is_none();
    // The second round trip: every tag still to be read, at once.
    let mut second: Vec<String> = if header_asks {
        names.clone()
    } else {
        Vec::new()
    };
    for &(i, _) in &again {
        if let Ask::Tagged { tags, .. } = &asks[i] {
            second.extend(tags.iter().cloned());
        }
    }
    second.sort();
    second.dedup();
    let mut error = None;
    let read_again = match second.is_empty() {
        true => HashMap::new(),
        // Boxed: the rare second round trip stays out of every hit's future.
        false => match Box::pin(versions(cache, remote, known, &second)).await {
            Ok(versions) => second.iter().map(String::as_str).zip(versions).collect(),
            Err(failed) => {
                error = Some(failed);
                HashMap::new()
            }
        },
    };
    for (i, j) in again {
        let Ask::Tagged { tags, snapshot, .. } = &asks[i] else {
            continue;
        };
        let versions: Option<Vec<u64>> = tags
            .iter()
            .map(|t| read_again.get(t.as_str()).copied())
            .collect();
        reads[i] = Some(match versions {
            Some(versions) => {
                let snapshot = snapshot.as_ref();
                match judge_tagged(
                    cache,
                    wants[i].key,
                    how,
                    tags,
                    snapshot,
                    &found[j],
                    &versions,
                ) {
                    Judged::Read(read) => read,
                    Judged::NotCurrent => RemoteRead::missed(Some(&versions)),
                }
            }
            None => RemoteRead::unread(asks[i].vouched()),
        });
    }
    // Header keys: valid only against versions read or known, never while
    // one of their tags awaits an invalidation, nor against versions older
    // than this process saw.
    let current = match from_known {
        Some(current) => current,
        None if header_asks => {
            let versions: Option<Vec<u64>> = names
                .iter()
                .map(|n| read_again.get(n.as_str()).copied())
                .collect();
            match versions {
                Some(versions) if local.observe(&names, &versions) == Observed::Current => {
                    names.iter().map(String::as_str).zip(versions).collect()
                }
                // Not read (the error), or older than versions seen here.
                _ => HashMap::new(),
            }
        }
        None => HashMap::new(),
    };
    for (i, j) in headed {
        let Found::Entry(header, payload) = &found[j] else {
            continue;
        };
        reads[i] = Some(if valid(&current, header) {
            let tags: Vec<&str> = header.tags.iter().map(|(n, _)| n.as_ref()).collect();
            serve(
                cache,
                wants[i].key,
                how,
                header,
                payload,
                |_| local.only(&tags),
                None,
            )
        } else {
            RemoteRead::missed(None)
        });
    }
    let reads = reads
        .into_iter()
        .map(|read| read.unwrap_or(RemoteRead::unread(None)))
        .collect();
    Reads { reads, error }
}

/// What to ask the store for `want`.
fn ask<'w>(cache: &Cache, known: Option<&KnownVersions>, want: &Want<'w>) -> Ask<'w> {
    let inner = &cache.inner;
    let Some(tags) = want.tags else {
        return Ask::Header;
    };
    if inner.tags.any_pending(tags) {
        return Ask::Skipped;
    }
    let snapshot = match want.snapshot {
        Some(snapshot) => Some(snapshot.clone()),
        None if inner.memory.is_enabled() => Some(inner.tags.snapshot(tags)),
        None => None,
    };
    let known = if tags.is_empty() {
        Some(Versions::default())
    } else {
        known.and_then(|k| k.versions(tags, crate::clock::now_millis()))
    };
    Ask::Tagged {
        tags,
        snapshot,
        known,
    }
}

/// Whether every tag version `header` recorded is in `current`.
fn valid(current: &HashMap<&str, u64>, header: &Header<'_>) -> bool {
    header
        .tags
        .iter()
        .all(|(name, version)| current.get(name.as_ref()) == Some(version))
}

/// One round trip for `requests`, answered in order. One request (every
/// `#[cached]` call) is a `fetch`, as the store's `fetch_batch` of one is.
async fn fetch(
    cache: &Cache,
    remote: &Remote,
    requests: &[Fetch<'_>],
) -> Result<Vec<Fetched>, StoreError> {
    let counters = &cache.inner.counters;
    let answers = match requests {
        [] => return Ok(Vec::new()),
        [one] => vec![remote.call(counters, |s| s.fetch(*one)).await?],
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

/// The versions of `tags` (one round trip), learnt by the known-versions table.
async fn versions(
    cache: &Cache,
    remote: &Remote,
    known: Option<&KnownVersions>,
    tags: &[String],
) -> Result<Vec<u64>, StoreError> {
    let inner = &cache.inner;
    let tag_keys: Vec<String> = tags
        .iter()
        .map(|t| Remote::tag_key(&inner.namespace, t))
        .collect();
    let ticket = known.and_then(KnownVersions::ticket);
    let versions = remote
        .call(&inner.counters, |s| s.versions(&tag_keys))
        .await?;
    if versions.len() != tags.len() {
        return broken(cache, "a versions answer does not match its request");
    }
    if let (Some(known), Some(ticket)) = (known, ticket) {
        known.learn(tags, &versions, ticket);
    }
    Ok(versions)
}

/// A store that answered out of its contract: a fault, and nothing read.
#[cold]
fn broken<T>(cache: &Cache, what: &str) -> Result<T, StoreError> {
    cache.inner.counters.fault(FaultKind::Other);
    tracing::warn!("remote store: {what}");
    Err(StoreError::Backend(what.to_owned()))
}
