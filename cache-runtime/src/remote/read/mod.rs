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

mod header;
mod judge;
mod many;
mod trips;

use header::HeaderTags;
pub(crate) use judge::{decode_for, DecodeFn};
use judge::{judge_tagged, serve, Found, Judged};
pub(crate) use many::read_many;
use trips::Second;

use crate::coherence::known::{KnownVersions, Versions};
use crate::key::Key;
use crate::memory::{Entry, Value};
use crate::remote::entry::Header;
use crate::remote::store::StoreError;
use crate::store::Fetch;
use crate::tags::TagSnapshot;
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
///
/// The same read as [`read`] with one [`Want`], step for step, without its
/// batch: no vector of asks, requests, answers, finds or reads, and the
/// caller's snapshot borrowed, not cloned; this is every storage-only hit's
/// path, and a batch of one cost it about 40 % more instructions.
pub(crate) async fn read_one(
    cache: &Cache,
    key: &Key,
    tags: &[String],
    snapshot: Option<&TagSnapshot>,
    how: How,
) -> RemoteRead {
    // Memory only: no box to make (a memory miss with single flight comes
    // through here).
    if cache.inner.tiers.remote.is_none() {
        return RemoteRead::unread(None);
    }
    // Boxed: the read's state would make the miss future, itself boxed on
    // every remote hit, outgrow malloc's per-thread cache (see `flow::slow`).
    Box::pin(read_one_boxed(cache, key, tags, snapshot, how)).await
}

/// [`read_one`]'s read, in a future of its own.
async fn read_one_boxed(
    cache: &Cache,
    key: &Key,
    tags: &[String],
    snapshot: Option<&TagSnapshot>,
    how: How,
) -> RemoteRead {
    let inner = &cache.inner;
    let Some(remote) = &inner.tiers.remote else {
        return RemoteRead::unread(None);
    };
    // As `ask`, `Ask::Skipped`.
    if inner.tags.any_pending(tags) {
        return RemoteRead::unread(None);
    }
    let taken;
    let snapshot = match snapshot {
        Some(snapshot) => Some(snapshot),
        None if inner.tiers.memory.is_enabled() => {
            taken = inner.tags.snapshot(tags);
            Some(&taken)
        }
        None => None,
    };
    let known = inner.coherence.backplane.as_ref().map(|b| &b.known);
    let vouched = if tags.is_empty() {
        Some(Versions::default())
    } else {
        known.and_then(|k| k.versions(tags, crate::clock::now_millis()))
    };
    let request = Fetch {
        namespace: &inner.config.namespace,
        key,
        tags: if vouched.is_none() { tags } else { &[] },
    };
    // Before the request: a message heard while it travels may be newer
    // than its answer.
    let ticket = known
        .filter(|_| request.tag_count() > 0)
        .and_then(KnownVersions::ticket);
    let answer = match trips::fetch_one(cache, remote, request).await {
        Ok(answer) => answer,
        Err(_) => return RemoteRead::unread(vouched.map(|v| v.as_slice().to_vec())),
    };
    let found = Found::decode(cache, key, answer.entry.as_deref(), remote.max_entry());
    let versions = match &vouched {
        Some(versions) => versions.as_slice(),
        None => {
            if let (Some(known), Some(ticket)) = (known, ticket) {
                known.learn(tags, &answer.versions, ticket);
            }
            &answer.versions
        }
    };
    match judge_tagged(cache, key, how, tags, snapshot, &found, versions) {
        Judged::Read(read) => read,
        Judged::NotCurrent if vouched.is_none() => RemoteRead::missed(Some(versions)),
        Judged::NotCurrent => {
            // Boxed: the rare second round trip stays out of every hit's future.
            Box::pin(read_again(
                cache, remote, known, key, how, tags, snapshot, &found, vouched,
            ))
            .await
        }
    }
}

/// The second round trip of [`read_one`], as [`read`]'s `again`: the entry
/// recorded other versions than the known ones vouched; read its tags'.
#[allow(clippy::too_many_arguments)] // `read`'s state for one key, borrowed
async fn read_again(
    cache: &Cache,
    remote: &crate::remote::Remote,
    known: Option<&KnownVersions>,
    key: &Key,
    how: How,
    tags: &[String],
    snapshot: Option<&TagSnapshot>,
    found: &Found<'_>,
    vouched: Option<Versions>,
) -> RemoteRead {
    let mut names = tags.to_vec();
    names.sort();
    names.dedup();
    let second = if names.is_empty() {
        Second::default()
    } else {
        Second::read(cache, remote, known, names)
            .await
            .unwrap_or_default()
    };
    match second.pick(tags.iter().map(String::as_str)) {
        Some(versions) => match judge_tagged(cache, key, how, tags, snapshot, found, &versions) {
            Judged::Read(read) => read,
            Judged::NotCurrent => RemoteRead::missed(Some(&versions)),
        },
        None => RemoteRead::unread(vouched.map(|v| v.as_slice().to_vec())),
    }
}

/// Reads `wants` from the remote tier (see the module's docs). Without a
/// remote tier, every key is unread.
pub(crate) async fn read(cache: &Cache, wants: &[Want<'_>], how: How) -> Reads {
    let inner = &cache.inner;
    let Some(remote) = &inner.tiers.remote else {
        let reads = wants.iter().map(|_| RemoteRead::unread(None)).collect();
        return Reads { reads, error: None };
    };
    let known = inner.coherence.backplane.as_ref().map(|b| &b.known);
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
                namespace: &inner.config.namespace,
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
    let answers = match trips::fetch(cache, remote, &requests).await {
        Ok(answers) => answers,
        Err(error) => {
            let reads = asks
                .iter()
                .map(|a| RemoteRead::unread(a.vouched()))
                .collect();
            return Reads {
                reads,
                error: Some(error),
            };
        }
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
                    let untagged = |_| TagSnapshot::default();
                    let read = serve(cache, want.key, how, header, payload, untagged, None);
                    reads[i] = Some(read);
                }
                _ => reads[i] = Some(RemoteRead::missed(None)),
            },
            Ask::Skipped => {}
        }
    }
    let headers: Vec<&Header<'_>> = headed
        .iter()
        .filter_map(|&(_, j)| found[j].header())
        .collect();
    let mut header_tags = HeaderTags::new(cache, known, &headers);
    // The second round trip, when needed: every tag still to be read, at once.
    let mut names: Vec<String> = header_tags.to_read().to_vec();
    for &(i, _) in &again {
        if let Ask::Tagged { tags, .. } = &asks[i] {
            names.extend(tags.iter().cloned());
        }
    }
    names.sort();
    names.dedup();
    let mut error = None;
    let second = if names.is_empty() {
        Second::default()
    } else {
        // Boxed: the rare second round trip stays out of every hit's future.
        match Box::pin(Second::read(cache, remote, known, names)).await {
            Ok(second) => second,
            Err(failed) => {
                error = Some(failed);
                Second::default()
            }
        }
    };
    for (i, j) in again {
        let Ask::Tagged { tags, snapshot, .. } = &asks[i] else {
            continue;
        };
        reads[i] = Some(match second.pick(tags.iter().map(String::as_str)) {
            Some(versions) => {
                let snapshot = snapshot.as_ref();
                let found = &found[j];
                match judge_tagged(cache, wants[i].key, how, tags, snapshot, found, &versions) {
                    Judged::Read(read) => read,
                    Judged::NotCurrent => RemoteRead::missed(Some(&versions)),
                }
            }
            None => RemoteRead::unread(asks[i].vouched()),
        });
    }
    header_tags.read(&second);
    for (i, j) in headed {
        let Found::Entry(header, payload) = &found[j] else {
            continue;
        };
        reads[i] = Some(if header_tags.valid(header) {
            let snapshot = |_| header_tags.snapshot(header);
            serve(cache, wants[i].key, how, header, payload, snapshot, None)
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
        None if inner.tiers.memory.is_enabled() => Some(inner.tags.snapshot(tags)),
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
