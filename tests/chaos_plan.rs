//! The chaos test's schedules and event log, shared by the test (`chaos.rs`)
//! and its worker processes (`chaos_worker.rs`): both derive the same
//! operations from a seed, so a failing schedule is reproduced from its seed
//! alone, and both speak the same one-line event format.
//!
//! A *schedule* is one namespace, one mode, and a few dozen timed operations
//! per worker over [`WINDOW_MS`]; a *batch* runs [`batch_size`] schedules at
//! once in every worker, under one fault plan.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long one schedule's operations are spread over; longer than the 1 s
/// bound on cross-process staleness, so that bound is checked.
pub const WINDOW_MS: u64 = 1_600;
/// Items (tags) per schedule: few, so operations collide.
pub const ITEMS: u32 = 3;
/// Operations per worker per schedule.
pub const OPS_PER_WORKER: usize = 36;
/// The cross-process staleness bound the contract promises, in µs.
pub const BOUND_US: u64 = 1_000_000;

/// Schedules per batch, unless `CHAOS_BATCH` says otherwise.
pub fn batch_size() -> u64 {
    std::env::var("CHAOS_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(10)
}

/// Microseconds since the Unix epoch: comparable across processes on one
/// machine (an `Instant` is not).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// SplitMix64: small, seedable, the same in every process and build.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`, decorrelated by `stream` (e.g. a worker index).
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// How a schedule's caches are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// `.memory` alone: nothing shared, so only check (a) applies.
    Memory,
    /// `.redis` alone, with the default known tag versions.
    Storage,
    /// `.redis` alone, `.known_tag_versions(0)`.
    StorageKnown0,
    /// `.memory` and `.redis`.
    WriteThrough,
    /// `.memory` and `.redis`, `.known_tag_versions(0)`.
    WriteThroughKnown0,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 5] = [
        Mode::Memory,
        Mode::Storage,
        Mode::StorageKnown0,
        Mode::WriteThrough,
        Mode::WriteThroughKnown0,
    ];

    /// The mode of a schedule.
    pub fn of(seed: u64) -> Mode {
        let i = Rng::new(seed, 0x6d6f6465).below(Mode::ALL.len() as u64);
        Mode::ALL[usize::try_from(i).unwrap_or(0)]
    }

    /// Whether the caches of the workers share a store (checks (b) apply).
    pub fn shared(self) -> bool {
        self != Mode::Memory
    }

    /// Whether the cache has a memory tier.
    pub fn memory(self) -> bool {
        matches!(
            self,
            Mode::Memory | Mode::WriteThrough | Mode::WriteThroughKnown0
        )
    }

    /// The `known_tag_versions` setting, `None` for the default.
    pub fn known_tags(self) -> Option<usize> {
        matches!(self, Mode::StorageKnown0 | Mode::WriteThroughKnown0).then_some(0)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Memory => "memory",
            Mode::Storage => "storage",
            Mode::StorageKnown0 => "storage/known0",
            Mode::WriteThrough => "write-through",
            Mode::WriteThroughKnown0 => "write-through/known0",
        })
    }
}

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Call the cached function; its load sleeps `before_ms`, reads the
    /// database, then sleeps `after_ms`.
    Read {
        /// Sleep before the database read.
        before_ms: u64,
        /// Sleep after it.
        after_ms: u64,
    },
    /// Bump the database version, then `invalidate_tags`.
    Write,
    /// Bump the database version, then the tag's counter in Redis directly,
    /// with no backplane message: an invalidation whose message was lost.
    External,
}

/// One timed operation of a worker in a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// Milliseconds after the batch's start.
    pub at_ms: u64,
    /// The item (tag `item:{item}`).
    pub item: u32,
    /// What it does.
    pub kind: OpKind,
}

/// The operations of `worker` in schedule `seed`, in time order.
pub fn ops(seed: u64, worker: u64) -> Vec<Op> {
    let mode = Mode::of(seed);
    let mut rng = Rng::new(seed, worker + 1);
    let mut ops: Vec<Op> = (0..OPS_PER_WORKER)
        .map(|_| {
            let at_ms = rng.below(WINDOW_MS);
            let item = u32::try_from(rng.below(u64::from(ITEMS))).unwrap_or(0);
            let roll = rng.below(100);
            let kind = if roll < 66 || (!mode.shared() && roll >= 90) {
                OpKind::Read {
                    before_ms: rng.below(25),
                    after_ms: rng.below(25),
                }
            } else if roll < 90 {
                OpKind::Write
            } else {
                OpKind::External
            };
            Op { at_ms, item, kind }
        })
        .collect();
    ops.sort_by_key(|op| op.at_ms);
    ops
}

/// A fault the test process injects during a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Close every connection of one worker's proxy.
    Reset,
    /// Swallow one worker's traffic for `ms`, then close its connections.
    Blackhole {
        /// How long.
        ms: u64,
    },
    /// Delay one worker's traffic by `delay_ms` for `ms`.
    Delay {
        /// Added to each chunk.
        delay_ms: u64,
        /// How long.
        ms: u64,
    },
    /// SIGKILL the cache's Redis and restart it empty on the same port.
    KillRestart,
    /// SIGSTOP the cache's Redis for `ms`.
    Freeze {
        /// How long.
        ms: u64,
    },
    /// `CLIENT KILL TYPE pubsub`: every subscriber drops; messages published
    /// until it resubscribes are lost.
    KillPubsub,
}

impl FaultKind {
    /// Whether the fault hits one worker's link (else the server, so all).
    pub fn per_worker(self) -> bool {
        matches!(
            self,
            FaultKind::Reset | FaultKind::Blackhole { .. } | FaultKind::Delay { .. }
        )
    }
}

/// A planned fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Milliseconds after the batch's start.
    pub at_ms: u64,
    /// What.
    pub kind: FaultKind,
    /// The worker whose link it hits (per-worker faults only).
    pub worker: u64,
}

/// The faults of the batch that starts with schedule `first_seed`: up to
/// three, in the first 60% of the window, so later reads see recovery.
pub fn faults(first_seed: u64, workers: u64) -> Vec<Fault> {
    let mut rng = Rng::new(first_seed, 0x0066_6175_6c74);
    let count = rng.below(4);
    let mut out: Vec<Fault> = (0..count)
        .map(|_| {
            let at_ms = rng.below(WINDOW_MS * 6 / 10);
            let worker = rng.below(workers);
            let kind = match rng.below(6) {
                0 => FaultKind::Reset,
                1 => FaultKind::Blackhole {
                    ms: 100 + rng.below(400),
                },
                2 => FaultKind::Delay {
                    delay_ms: 20 + rng.below(80),
                    ms: 100 + rng.below(400),
                },
                3 => FaultKind::KillRestart,
                4 => FaultKind::Freeze {
                    ms: 100 + rng.below(400),
                },
                _ => FaultKind::KillPubsub,
            };
            Fault {
                at_ms,
                kind,
                worker,
            }
        })
        .collect();
    out.sort_by_key(|f| f.at_ms);
    out
}

/// One line of a worker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A read: the cached call's start and end, and the version it returned.
    Read {
        /// Schedule seed.
        seed: u64,
        /// Worker index.
        worker: u64,
        /// Item.
        item: u32,
        /// When the call started (µs since the epoch).
        start: u64,
        /// When it returned.
        end: u64,
        /// The version it returned.
        value: u64,
    },
    /// A write: the database version it wrote, and its invalidation's outcome.
    Write {
        /// Schedule seed.
        seed: u64,
        /// Worker index.
        worker: u64,
        /// Item.
        item: u32,
        /// The database version after the write.
        version: u64,
        /// When `invalidate_tags` returned.
        end: u64,
        /// Whether it returned `Ok`.
        ok: bool,
    },
    /// An external invalidation (no message) that Redis confirmed.
    External {
        /// Schedule seed.
        seed: u64,
        /// Worker index.
        worker: u64,
        /// Item.
        item: u32,
        /// The database version after the write.
        version: u64,
        /// When Redis confirmed the tag's `INCR`.
        end: u64,
    },
    /// A cached call that returned an error, panicked or hung: check (c).
    Failed {
        /// Schedule seed.
        seed: u64,
        /// Worker index.
        worker: u64,
        /// What happened.
        what: String,
    },
}

impl Event {
    /// The schedule the event belongs to.
    pub fn seed(&self) -> u64 {
        match self {
            Event::Read { seed, .. }
            | Event::Write { seed, .. }
            | Event::External { seed, .. }
            | Event::Failed { seed, .. } => *seed,
        }
    }

    /// Parses a line written by `Display`; `None` for anything else.
    pub fn parse(line: &str) -> Option<Event> {
        let mut f = line.split(' ');
        let tag = f.next()?;
        let mut num = || f.next()?.parse::<u64>().ok();
        Some(match tag {
            "R" => Event::Read {
                seed: num()?,
                worker: num()?,
                item: u32::try_from(num()?).ok()?,
                start: num()?,
                end: num()?,
                value: num()?,
            },
            "W" => Event::Write {
                seed: num()?,
                worker: num()?,
                item: u32::try_from(num()?).ok()?,
                version: num()?,
                end: num()?,
                ok: num()? == 1,
            },
            "X" => Event::External {
                seed: num()?,
                worker: num()?,
                item: u32::try_from(num()?).ok()?,
                version: num()?,
                end: num()?,
            },
            "E" => {
                let mut rest = line.splitn(4, ' ').skip(1);
                Event::Failed {
                    seed: rest.next()?.parse().ok()?,
                    worker: rest.next()?.parse().ok()?,
                    what: rest.next().unwrap_or("").to_owned(),
                }
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Read {
                seed,
                worker,
                item,
                start,
                end,
                value,
            } => write!(f, "R {seed} {worker} {item} {start} {end} {value}"),
            Event::Write {
                seed,
                worker,
                item,
                version,
                end,
                ok,
            } => write!(
                f,
                "W {seed} {worker} {item} {version} {end} {}",
                u8::from(*ok)
            ),
            Event::External {
                seed,
                worker,
                item,
                version,
                end,
            } => write!(f, "X {seed} {worker} {item} {version} {end}"),
            Event::Failed { seed, worker, what } => {
                let what = what.replace('\n', " ");
                write!(f, "E {seed} {worker} {what}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let events = [
            Event::Read {
                seed: 1,
                worker: 2,
                item: 0,
                start: 10,
                end: 20,
                value: 3,
            },
            Event::Write {
                seed: 1,
                worker: 0,
                item: 2,
                version: 4,
                end: 30,
                ok: false,
            },
            Event::External {
                seed: 9,
                worker: 1,
                item: 1,
                version: 5,
                end: 40,
            },
            Event::Failed {
                seed: 9,
                worker: 1,
                what: "read item 1: timed out".into(),
            },
        ];
        for e in events {
            assert_eq!(Event::parse(&e.to_string()), Some(e));
        }
    }

    #[test]
    fn schedules_are_deterministic_and_cover_every_mode() {
        assert_eq!(ops(42, 1), ops(42, 1));
        assert_ne!(ops(42, 1), ops(42, 2));
        let modes: std::collections::HashSet<Mode> = (0..50).map(Mode::of).collect();
        assert_eq!(modes.len(), Mode::ALL.len());
    }
}
