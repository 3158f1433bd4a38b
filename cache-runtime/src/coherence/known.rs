//! Tag versions known in this process, kept current by the backplane, so a
//! remote hit can read its entry alone (one `GET`) instead of the entry and
//! its tags' version counters (one `MGET` of several keys).
//!
//! A version is learnt from a reply that read it (or from our own `INCR`),
//! and raised by every invalidation heard on the backplane. It is trusted
//! only while the backplane is subscribed, and only for [`MAX_AGE_MS`] after
//! Redis last confirmed it, which bounds how long a lost message (a process
//! that dies between its `INCR` and its `PUBLISH`) can go unnoticed.
//!
//! Knowledge is only ever dropped or raised, never lowered, and never gained
//! from a reply that may be older than a message heard while it travelled:
//! every message and every change of trust bumps `seq`, and a reply may add a
//! tag not known yet only if `seq` did not move since its request was sent.
//! Both sides do their part under the tag's shard lock, so either the reply
//! lands first (and the message raises it) or the message does (and the reply
//! sees the bump). A tag that is not known is read from Redis: forgetting is
//! always safe.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::clock::now_millis;

/// How long a learnt version is trusted without Redis confirming it again.
pub(crate) const MAX_AGE_MS: u64 = 1_000;

/// Default number of tags whose versions a cache keeps.
pub(crate) const DEFAULT_CAPACITY: usize = 16_384;

const SHARDS: usize = 16;

type Hasher = quick_cache::DefaultHashBuilder;

#[derive(Debug, Clone, Copy)]
struct Known {
    version: u64,
    /// When a read that confirmed `version` was sent (ms since the epoch).
    confirmed_at: u64,
}

type Shard = HashMap<Box<str>, Known, Hasher>;

/// The tag versions one cache knows.
pub(crate) struct KnownVersions {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    hasher: Hasher,
    /// Bumped by every message heard and every change of trust.
    seq: AtomicU64,
    trusted: AtomicBool,
    /// Tells this instance's copies in [`RECENT`] from another's.
    id: u64,
    /// Bumped after every change to the shards: a thread's copy made at an
    /// older stamp is stale.
    stamp: AtomicU64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The most entries a thread copies, per instance, before starting afresh.
const RECENT_CAPACITY: usize = 1024;

/// One thread's copy of what an instance knew at `stamp`.
struct Recent {
    id: u64,
    stamp: u64,
    known: HashMap<Box<str>, Known, Hasher>,
}

thread_local! {
    /// Read-locking a shard on every hit made its lock word bounce between
    /// cores (a tag such as `users` is in every hit); each thread reads its
    /// own copy instead, checked against the instance's stamp.
    static RECENT: RefCell<Vec<Recent>> = const { RefCell::new(Vec::new()) };
}

/// Taken before a request whose reply may teach versions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    seq: u64,
    sent_at: u64,
}

impl KnownVersions {
    /// Keeps the versions of up to about `capacity` tags; 0 keeps none, so
    /// every remote hit reads its tags' versions from Redis.
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard,
            hasher: Hasher::default(),
            seq: AtomicU64::new(0),
            trusted: AtomicBool::new(false),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            stamp: AtomicU64::new(0),
        }
    }

    /// After a change to the shards: threads' copies are stale.
    fn changed(&self) {
        self.stamp.fetch_add(1, Ordering::Release);
    }

    /// What `tag` is known at, as copied by this thread.
    fn lookup(&self, tag: &str, recent: &mut Recent) -> Option<Known> {
        if let Some(known) = recent.known.get(tag) {
            return Some(*known);
        }
        let known = *self.shard(tag).read().get(tag)?;
        if recent.known.len() >= RECENT_CAPACITY {
            recent.known.clear();
        }
        recent.known.insert(tag.into(), known);
        Some(known)
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.per_shard > 0
    }

    fn shard(&self, tag: &str) -> &RwLock<Shard> {
        let hash = self.hasher.hash_one(tag);
        // The high bits: the shard's map places entries by the low ones.
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    /// Before sending a request whose reply may teach versions; `None` while
    /// nothing may be learnt (disabled, or the backplane is down).
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        if !self.is_enabled() || !self.trusted.load(Ordering::SeqCst) {
            return None;
        }
        Some(Ticket {
            seq: self.seq.load(Ordering::SeqCst),
            sent_at: now_millis(),
        })
    }

    /// The versions of every one of `tags`, when all are known and were
    /// confirmed less than [`MAX_AGE_MS`] before `now`.
    pub(crate) fn versions(&self, tags: &[String], now: u64) -> Option<Versions> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        // Loaded before any shard is read: a change made meanwhile leaves
        // the copy at an older stamp.
        let stamp = self.stamp.load(Ordering::Acquire);
        RECENT.with(|recent| {
            let mut all = recent.borrow_mut();
            let index = match all.iter().position(|r| r.id == self.id) {
                Some(index) => index,
                None => {
                    // Caches come and go: keep a thread's copies few.
                    if all.len() >= 8 {
                        all.clear();
                    }
                    all.push(Recent {
                        id: self.id,
                        stamp,
                        known: HashMap::default(),
                    });
                    all.len() - 1
                }
            };
            let recent = &mut all[index];
            if recent.stamp != stamp {
                recent.known.clear();
                recent.stamp = stamp;
            }
            let mut out = Versions::with_capacity(tags.len());
            for tag in tags {
                let known = self.lookup(tag, recent)?;
                if now.saturating_sub(known.confirmed_at) >= MAX_AGE_MS {
                    return None;
                }
                out.push(known.version);
            }
            Some(out)
        })
    }

    /// Learns `versions` (in the order of `tags`) from a reply to a request
    /// sent with `ticket`. Unparsable versions (`u64::MAX`) are not learnt.
    pub(crate) fn learn(&self, tags: &[String], versions: &[u64], ticket: Ticket) {
        for (tag, &version) in tags.iter().zip(versions) {
            if version == u64::MAX {
                continue;
            }
            let mut shard = self.shard(tag).write();
            if let Some(known) = shard.get_mut(tag.as_str()) {
                // Known since before this reply's request, or learnt from a
                // request sent after it: raising is always safe.
                if version >= known.version {
                    known.version = version;
                    known.confirmed_at = known.confirmed_at.max(ticket.sent_at);
                    self.changed();
                }
                continue;
            }
            // A message heard (or trust lost) since the request was sent may
            // have been newer than this reply.
            if self.seq.load(Ordering::SeqCst) != ticket.seq {
                continue;
            }
            if shard.len() >= self.per_shard {
                let now = now_millis();
                shard.retain(|_, k| now.saturating_sub(k.confirmed_at) < MAX_AGE_MS);
                if shard.len() >= self.per_shard {
                    shard.clear();
                }
            }
            shard.insert(
                tag.as_str().into(),
                Known {
                    version,
                    confirmed_at: ticket.sent_at,
                },
            );
            self.changed();
        }
    }

    /// A message heard on the backplane: `tag` was invalidated, and is now at
    /// `version` when the sender said so (older senders do not).
    pub(crate) fn heard(&self, tag: &str, version: Option<u64>) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        let mut shard = self.shard(tag).write();
        let Some(known) = shard.get_mut(tag) else {
            // Most messages name tags this process never read: threads'
            // copies stay good.
            return;
        };
        match version {
            // A step no real invalidation takes (a forged or garbled
            // message, a recreated key): forget, and ask Redis next time.
            Some(version) if crate::tags::believable_step(known.version, version) => {
                known.version = version;
            }
            Some(version) if version <= known.version => return,
            _ => {
                shard.remove(tag);
            }
        }
        self.changed();
    }

    /// Forgets `tags` (an invalidation whose outcome is unknown).
    pub(crate) fn forget(&self, tags: &[String]) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        for tag in tags {
            self.shard(tag).write().remove(tag.as_str());
        }
        self.changed();
    }

    /// The backplane (re)subscribed (`true`) or lost its subscription
    /// (`false`). Either way everything known is dropped: messages may have
    /// been missed.
    pub(crate) fn set_trusted(&self, trusted: bool) {
        if !trusted {
            self.trusted.store(false, Ordering::SeqCst);
        }
        self.seq.fetch_add(1, Ordering::SeqCst);
        for shard in self.shards.iter() {
            shard.write().clear();
        }
        self.changed();
        if trusted {
            self.trusted.store(true, Ordering::SeqCst);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

/// Tag versions in the order of a call's tags: inline for up to
/// [`Versions::INLINE`] tags, so a remote hit does not allocate for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Versions {
    Few {
        len: u8,
        items: [u64; Versions::INLINE],
    },
    Many(Vec<u64>),
}

impl Default for Versions {
    fn default() -> Self {
        Versions::with_capacity(0)
    }
}

impl Versions {
    const INLINE: usize = 4;

    fn with_capacity(n: usize) -> Versions {
        if n <= Self::INLINE {
            Versions::Few {
                len: 0,
                items: [0; Self::INLINE],
            }
        } else {
            Versions::Many(Vec::with_capacity(n))
        }
    }

    fn push(&mut self, version: u64) {
        match self {
            Versions::Few { len, items } if usize::from(*len) < Self::INLINE => {
                items[usize::from(*len)] = version;
                *len += 1;
            }
            Versions::Few { len, items } => {
                let mut all = items[..usize::from(*len)].to_vec();
                all.push(version);
                *self = Versions::Many(all);
            }
            Versions::Many(all) => all.push(version),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u64] {
        match self {
            Versions::Few { len, items } => &items[..usize::from(*len)],
            Versions::Many(all) => all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn seen(known: &KnownVersions, tags: &[String]) -> Option<Vec<u64>> {
        known
            .versions(tags, now_millis())
            .map(|v| v.as_slice().to_vec())
    }

    #[test]
    fn versions_spill_past_the_inline_ones() {
        let mut v = Versions::with_capacity(2);
        for i in 0..7 {
            v.push(i);
        }
        assert_eq!(v.as_slice(), &[0, 1, 2, 3, 4, 5, 6]);
        let mut v = Versions::with_capacity(9);
        v.push(1);
        assert_eq!(v.as_slice(), &[1]);
    }

    fn trusted(capacity: usize) -> KnownVersions {
        let known = KnownVersions::new(capacity);
        known.set_trusted(true);
        known
    }

    #[test]
    fn learnt_versions_are_known_until_they_age() {
        let known = trusted(100);
        let t = tags(&["a", "b"]);
        assert_eq!(seen(&known, &t), None);
        let ticket = known.ticket().unwrap();
        known.learn(&t, &[3, 0], ticket);
        assert_eq!(seen(&known, &t), Some(vec![3, 0]));
        assert_eq!(seen(&known, &tags(&["a", "c"])), None);
        assert_eq!(
            known
                .versions(&t, ticket.sent_at + MAX_AGE_MS)
                .map(|v| v.as_slice().to_vec()),
            None
        );
        assert_eq!(seen(&known, &[]), Some(vec![]));
    }

    #[test]
    fn nothing_is_known_or_learnt_without_trust() {
        let known = KnownVersions::new(100);
        assert!(known.ticket().is_none());
        let on = trusted(100);
        let ticket = on.ticket().unwrap();
        on.learn(&tags(&["a"]), &[1], ticket);
        on.set_trusted(false);
        assert_eq!(seen(&on, &tags(&["a"])), None);
        assert!(on.ticket().is_none());
        // A reply to a request sent before the disconnect teaches nothing
        // after the resubscription either.
        on.set_trusted(true);
        on.learn(&tags(&["a"]), &[1], ticket);
        assert_eq!(seen(&on, &tags(&["a"])), None);
        assert!(!KnownVersions::new(0).is_enabled());
        assert!(KnownVersions::new(0).ticket().is_none());
    }

    #[test]
    fn a_reply_older_than_a_message_never_lowers_or_adds() {
        let known = trusted(100);
        let t = tags(&["a"]);
        // Known tag: the message raises it, the late reply cannot lower it.
        known.learn(&t, &[1], known.ticket().unwrap());
        let before = known.ticket().unwrap();
        known.heard("a", Some(2));
        known.learn(&t, &[1], before);
        assert_eq!(seen(&known, &t), Some(vec![2]));
        // Unknown tag: a message heard while the request travelled keeps the
        // reply from adding it at all.
        let before = known.ticket().unwrap();
        known.heard("b", Some(5));
        known.learn(&tags(&["b"]), &[4], before);
        assert_eq!(seen(&known, &tags(&["b"])), None);
    }

    #[test]
    fn a_bump_to_the_servers_clock_is_followed_not_forgotten() {
        let known = trusted(100);
        let t = tags(&["a"]);
        let now_micros = now_millis() * 1000;
        let idle = now_micros - 3_600_000_000;
        known.learn(&t, &[idle], known.ticket().unwrap());
        // An invalidation an hour after the last one moves the version by an
        // hour of microseconds: still known, at the new version.
        known.heard("a", Some(now_micros));
        assert_eq!(seen(&known, &t), Some(vec![now_micros]));
        // A claim far past the clock is not: forgotten, read from Redis.
        known.heard("a", Some(now_micros + 3_600_000_000));
        assert_eq!(seen(&known, &t), None);
    }

    #[test]
    fn messages_without_versions_and_failed_bumps_forget() {
        let known = trusted(100);
        let t = tags(&["a", "b"]);
        known.learn(&t, &[1, 1], known.ticket().unwrap());
        known.heard("a", None);
        assert_eq!(seen(&known, &tags(&["a"])), None);
        assert_eq!(seen(&known, &tags(&["b"])), Some(vec![1]));
        known.forget(&tags(&["b"]));
        assert_eq!(seen(&known, &tags(&["b"])), None);
    }

    #[test]
    fn a_threads_copy_follows_every_change() {
        let known = trusted(100);
        let other = trusted(100);
        let t = tags(&["a"]);
        known.learn(&t, &[1], known.ticket().unwrap());
        other.learn(&t, &[7], other.ticket().unwrap());
        assert_eq!(seen(&known, &t), Some(vec![1]), "copied now");
        assert_eq!(seen(&other, &t), Some(vec![7]), "each instance its own");
        known.heard("a", Some(2));
        assert_eq!(seen(&known, &t), Some(vec![2]));
        known.learn(&t, &[3], known.ticket().unwrap());
        assert_eq!(seen(&known, &t), Some(vec![3]));
        known.forget(&t);
        assert_eq!(seen(&known, &t), None);
        known.learn(&t, &[4], known.ticket().unwrap());
        assert_eq!(seen(&known, &t), Some(vec![4]));
        known.set_trusted(false);
        known.set_trusted(true);
        assert_eq!(seen(&known, &t), None);
        assert_eq!(seen(&other, &t), Some(vec![7]));
    }

    #[test]
    fn an_implausible_message_forgets_instead_of_raising() {
        let known = trusted(100);
        let t = tags(&["a"]);
        known.learn(&t, &[5], known.ticket().unwrap());
        known.heard("a", Some(u64::MAX - 1));
        assert_eq!(seen(&known, &t), None);
        known.learn(&t, &[6], known.ticket().unwrap());
        known.heard("a", Some(3));
        assert_eq!(
            seen(&known, &t),
            Some(vec![6]),
            "an old message changes nothing"
        );
    }

    #[test]
    fn unparsable_versions_are_not_learnt() {
        let known = trusted(100);
        known.learn(&tags(&["a"]), &[u64::MAX], known.ticket().unwrap());
        assert_eq!(seen(&known, &tags(&["a"])), None);
    }

    #[test]
    fn capacity_is_bounded() {
        let known = trusted(64);
        for i in 0..10_000 {
            known.learn(&[format!("t{i}")], &[1], known.ticket().unwrap());
        }
        assert!(known.len() <= 64 + SHARDS, "{}", known.len());
        let last = [format!("t{}", 9_999)];
        assert_eq!(seen(&known, &last), Some(vec![1]));
    }

    #[test]
    fn concurrent_messages_never_leave_an_old_version() {
        // A reader learns version `v` from requests "sent" before a writer's
        // message raising the tag to `v + 1`; whatever the interleaving, once
        // the message is heard the tag is never known below it.
        let known = std::sync::Arc::new(trusted(100));
        let t = tags(&["hot"]);
        for v in 0..2_000u64 {
            let ticket = known.ticket().unwrap();
            let reader = {
                let known = known.clone();
                let t = t.clone();
                std::thread::spawn(move || known.learn(&t, &[v], ticket))
            };
            known.heard("hot", Some(v + 1));
            reader.join().unwrap();
            if let Some(versions) = seen(&known, &t) {
                assert!(versions[0] > v, "{versions:?} after {}", v + 1);
            }
        }
    }
}
