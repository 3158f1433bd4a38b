//! `loom` models of two concurrent protocols of the runtime, explored over
//! every interleaving. Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg cache_loom" cargo test -p cache-runtime --release --test loom_models
//! ```
//!
//! These are models, not the code itself: `flight.rs` and `remote/known.rs`
//! use `parking_lot` and `tokio::sync::Notify`, which loom cannot drive, and
//! swapping them behind `cfg(cache_loom)` would touch every line of those files.
//! Each model copies its file's protocol step for step (what is read and
//! written under which lock, in which order), with a comment naming the
//! function it mirrors; a change to either protocol must be made here too.
//!
//! The cfg is `cache_loom`, not the usual `loom`: dependencies of the crate's
//! dev-dependencies (event-listener, under moka) switch to loom's types
//! under `cfg(loom)` and then do not build.
#![cfg(cache_loom)]

use std::collections::HashMap;

use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex, RwLock};
use loom::thread;

// ---------------------------------------------------------------------------
// Single flight (flight.rs)

/// `Flight`: the leader's result, `Some(None)` for "retry". The real waiter
/// enables a `Notify` before checking the result; a condition variable
/// checked under the result's lock gives the same no-lost-wakeup guarantee.
struct Flight {
    result: Mutex<Option<Option<u64>>>,
    ready: Condvar,
}

/// `Pending`: one load in progress; its flight is made by the first waiter.
struct Pending {
    id: u64,
    flight: Option<Arc<Flight>>,
}

struct Flights {
    /// One shard: the model has one key.
    shard: Mutex<Option<Pending>>,
    next_id: AtomicU64,
    /// The stored entry (the memory tier), read before joining a flight.
    stored: Mutex<Option<u64>>,
    /// Loads that ran to the end.
    loads: AtomicUsize,
}

enum Join {
    Lead(u64),
    Wait(Arc<Flight>),
}

impl Flights {
    /// `Flights::join`.
    fn join(&self) -> Join {
        let mut shard = self.shard.lock().unwrap();
        if let Some(pending) = shard.as_mut() {
            let flight = pending.flight.get_or_insert_with(|| {
                Arc::new(Flight {
                    result: Mutex::new(None),
                    ready: Condvar::new(),
                })
            });
            return Join::Wait(flight.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        *shard = Some(Pending { id, flight: None });
        Join::Lead(id)
    }

    /// `LeadGuard::finish`: take the pending load out of the map, then
    /// publish the result to whoever joined it.
    fn finish(&self, id: u64, result: Option<u64>) {
        let flight = {
            let mut shard = self.shard.lock().unwrap();
            match shard.take() {
                Some(pending) if pending.id == id => pending.flight,
                other => {
                    *shard = other;
                    None
                }
            }
        };
        if let Some(flight) = flight {
            *flight.result.lock().unwrap() = Some(result);
            flight.ready.notify_all();
        }
    }

    /// `Flight::wait`.
    fn wait(flight: &Flight) -> Option<u64> {
        let mut result = flight.result.lock().unwrap();
        loop {
            if let Some(r) = *result {
                return r;
            }
            result = flight.ready.wait(result).unwrap();
        }
    }

    /// The read path around the flight (flow/slow.rs): memory first, then join
    /// or lead.
    /// A leader with `cancel` drops its load without a value once.
    fn get(&self, mut cancel: bool) -> u64 {
        loop {
            if let Some(v) = *self.stored.lock().unwrap() {
                return v;
            }
            match self.join() {
                Join::Lead(id) => {
                    // flow/slow.rs reads again once it leads: a load that
                    // completed between the first read and the join stored
                    // its value already.
                    if let Some(v) = *self.stored.lock().unwrap() {
                        self.finish(id, Some(v));
                        return v;
                    }
                    if cancel {
                        // Dropped or panicked: `Drop for LeadGuard`.
                        cancel = false;
                        self.finish(id, None);
                        continue;
                    }
                    self.loads.fetch_add(1, Ordering::SeqCst);
                    // Stored before completing, so a caller that finds no
                    // flight finds the entry.
                    *self.stored.lock().unwrap() = Some(42);
                    self.finish(id, Some(42));
                    return 42;
                }
                Join::Wait(flight) => match Self::wait(&flight) {
                    Some(v) => return v,
                    None => continue,
                },
            }
        }
    }
}

fn flights() -> Arc<Flights> {
    Arc::new(Flights {
        shard: Mutex::new(None),
        next_id: AtomicU64::new(0),
        stored: Mutex::new(None),
        loads: AtomicUsize::new(0),
    })
}

/// Explores interleavings with at most `PREEMPTIONS` forced switches per
/// execution: three threads with unbounded preemption did not finish in
/// minutes, and bugs of this kind show within a few (loom's guidance).
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(PREEMPTIONS);
    builder.check(f);
}

const PREEMPTIONS: usize = 3;

#[test]
fn single_flight_runs_one_load_and_nobody_hangs() {
    model(|| {
        let f = flights();
        let others: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                thread::spawn(move || f.get(false))
            })
            .collect();
        assert_eq!(f.get(false), 42);
        for t in others {
            assert_eq!(t.join().unwrap(), 42);
        }
        assert_eq!(f.loads.load(Ordering::SeqCst), 1, "exactly one load ran");
        assert!(f.shard.lock().unwrap().is_none(), "no flight left behind");
    });
}

#[test]
fn a_cancelled_leader_hands_the_load_to_a_waiter() {
    model(|| {
        let f = flights();
        let waiter = {
            let f = f.clone();
            thread::spawn(move || f.get(false))
        };
        // This caller cancels its first lead (if it leads at all).
        assert_eq!(f.get(true), 42);
        assert_eq!(waiter.join().unwrap(), 42);
        assert_eq!(f.loads.load(Ordering::SeqCst), 1);
        assert!(f.shard.lock().unwrap().is_none());
    });
}

// ---------------------------------------------------------------------------
// Known tag versions (remote/known.rs)

/// `KnownVersions` for one tag, with the store's counter beside it.
struct Known {
    shard: RwLock<HashMap<&'static str, u64>>,
    seq: AtomicU64,
    /// The tag's counter in Redis.
    redis: AtomicU64,
}

impl Known {
    /// `KnownVersions::ticket`.
    fn ticket(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// `KnownVersions::learn` of one tag.
    fn learn(&self, version: u64, ticket: u64) {
        let mut shard = self.shard.write().unwrap();
        if let Some(known) = shard.get_mut("t") {
            if version >= *known {
                *known = version;
            }
            return;
        }
        if self.seq.load(Ordering::SeqCst) != ticket {
            return;
        }
        shard.insert("t", version);
    }

    /// `KnownVersions::heard` with a version.
    fn heard(&self, version: u64) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        let mut shard = self.shard.write().unwrap();
        if let Some(known) = shard.get_mut("t") {
            if version > *known {
                *known = version;
            }
        }
    }

    fn known(&self) -> Option<u64> {
        self.shard.read().unwrap().get("t").copied()
    }
}

/// A reader learns the tag from a reply while another process invalidates
/// it and its message arrives: once both are done, what is known is never
/// older than Redis (else hits would be served on an old version).
fn known_model(known_before: Option<u64>) {
    model(move || {
        let k = Arc::new(Known {
            shard: RwLock::new(HashMap::new()),
            seq: AtomicU64::new(0),
            redis: AtomicU64::new(5),
        });
        if let Some(v) = known_before {
            k.shard.write().unwrap().insert("t", v);
        }
        let reader = {
            let k = k.clone();
            thread::spawn(move || {
                let ticket = k.ticket();
                let read = k.redis.load(Ordering::SeqCst);
                k.learn(read, ticket);
            })
        };
        // The other process: INCR, then its message is heard here.
        let new = k.redis.fetch_add(1, Ordering::SeqCst) + 1;
        k.heard(new);
        reader.join().unwrap();
        if let Some(v) = k.known() {
            assert!(
                v >= k.redis.load(Ordering::SeqCst),
                "known version {v} is older than Redis"
            );
        }
    });
}

#[test]
fn a_reply_never_teaches_a_version_older_than_a_message() {
    known_model(None);
}

#[test]
fn a_known_version_is_only_raised() {
    known_model(Some(5));
}
