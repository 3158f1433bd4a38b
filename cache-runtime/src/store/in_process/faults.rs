//! Fault injection: what goes wrong between one handle and the backend,
//! and what goes wrong in the backend itself.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::backend::Backend;
use super::ops::{Op, Tally};
use crate::store::StoreError;

/// The error an injected failure returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectedFault {
    /// [`StoreError::Connection`]: the cache may retry it.
    Connection,
    /// [`StoreError::Backend`]: the store answered with an error.
    Backend,
    /// [`StoreError::Timeout`]: a limit of the store's own.
    Timeout,
}

impl InjectedFault {
    fn error(self) -> StoreError {
        match self {
            InjectedFault::Connection => StoreError::Connection("injected fault".to_string()),
            InjectedFault::Backend => StoreError::Backend("injected fault".to_string()),
            InjectedFault::Timeout => StoreError::Timeout,
        }
    }
}

/// One handle's fault plan.
#[derive(Debug)]
struct Plan {
    latency: Duration,
    fail_next: u64,
    fail_kind: InjectedFault,
    fraction: Option<(f64, InjectedFault, fastrand::Rng)>,
    hang_next: u64,
    partitioned: bool,
    drop_messages: u64,
    message_delay: Duration,
    /// Faults of one kind of operation only, on top of the above.
    targeted: HashMap<Op, Targeted>,
}

/// The faults aimed at one kind of operation.
#[derive(Debug, Clone, Copy)]
struct Targeted {
    latency: Duration,
    fail_next: u64,
    fail_kind: InjectedFault,
    hang_next: u64,
}

impl Default for Targeted {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            fail_next: 0,
            fail_kind: InjectedFault::Connection,
            hang_next: 0,
        }
    }
}

/// Takes one from `n` if it is above 0; whether it was.
fn take_one(n: &mut u64) -> bool {
    let due = *n > 0;
    *n = n.saturating_sub(1);
    due
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            fail_next: 0,
            fail_kind: InjectedFault::Connection,
            fraction: None,
            hang_next: 0,
            partitioned: false,
            drop_messages: 0,
            message_delay: Duration::ZERO,
            targeted: HashMap::new(),
        }
    }
}

/// What becomes of one call.
pub(crate) enum Verdict {
    Pass,
    Hang,
    Fail(StoreError),
}

/// One handle ("connection") to the backend: its faults, its counts, and
/// the epoch its subscriptions live in (a new epoch ends them).
#[derive(Debug)]
pub(crate) struct Link {
    plan: Mutex<Plan>,
    pub(crate) tally: Tally,
    /// Broken keys this handle's operations replaced, not yet taken.
    pub(crate) repaired: AtomicU64,
    epoch: watch::Sender<u64>,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            plan: Mutex::default(),
            tally: Tally::default(),
            repaired: AtomicU64::new(0),
            epoch: watch::channel(0).0,
        }
    }
}

impl Link {
    /// The added latency and the verdict for the next call, of kind `op`.
    pub(crate) fn decide(&self, op: Op) -> (Duration, Verdict) {
        let mut guard = self.plan.lock();
        let plan = &mut *guard;
        let mut aimed = plan.targeted.get(&op).copied().unwrap_or_default();
        let verdict = if take_one(&mut aimed.hang_next) || take_one(&mut plan.hang_next) {
            Verdict::Hang
        } else if plan.partitioned {
            Verdict::Fail(StoreError::Connection(
                "partitioned from the store".to_string(),
            ))
        } else if take_one(&mut aimed.fail_next) {
            Verdict::Fail(aimed.fail_kind.error())
        } else if take_one(&mut plan.fail_next) {
            Verdict::Fail(plan.fail_kind.error())
        } else {
            match &mut plan.fraction {
                Some((p, kind, rng)) => {
                    if rng.f64() < *p {
                        Verdict::Fail(kind.error())
                    } else {
                        Verdict::Pass
                    }
                }
                None => Verdict::Pass,
            }
        };
        if let Some(kept) = plan.targeted.get_mut(&op) {
            *kept = aimed;
        }
        (plan.latency + aimed.latency, verdict)
    }

    pub(crate) fn partitioned(&self) -> bool {
        self.plan.lock().partitioned
    }

    /// Whether to drop the next message delivered to this handle, and how
    /// long to hold it otherwise.
    pub(crate) fn on_message(&self) -> (bool, Duration) {
        let mut plan = self.plan.lock();
        if plan.partitioned {
            return (true, Duration::ZERO);
        }
        if plan.drop_messages > 0 {
            plan.drop_messages -= 1;
            return (true, Duration::ZERO);
        }
        (false, plan.message_delay)
    }

    pub(crate) fn epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    fn end_subscriptions(&self) {
        self.epoch.send_modify(|epoch| *epoch += 1);
    }
}

/// The fault controls of one handle of an
/// [`InProcessStore`](super::InProcessStore), and of the backend it shares.
///
/// Faults of the handle (latency, errors, timeouts, messages, partition)
/// affect only calls made through that handle (and the handles cloned from
/// it), not those of other [`connect`](super::InProcessStore::connect)ed
/// handles; faults of the backend ([`lose_writes`](Self::lose_writes),
/// [`fail_over`](Self::fail_over)) affect every handle. Each call takes
/// effect for the calls that start after it. Latency and message delays run
/// on tokio's clock, so paused time skips them.
#[derive(Debug, Clone)]
pub struct Faults {
    pub(crate) link: Arc<Link>,
    pub(crate) backend: Arc<Backend>,
}

impl Faults {
    /// Adds `latency` before every operation of this handle
    /// (`Duration::ZERO` for none).
    pub fn latency(&self, latency: Duration) -> &Self {
        self.link.plan.lock().latency = latency;
        self
    }

    /// The next `n` operations of this handle fail with `kind`.
    pub fn fail_next(&self, n: u64, kind: InjectedFault) -> &Self {
        let mut plan = self.link.plan.lock();
        plan.fail_next = n;
        plan.fail_kind = kind;
        self
    }

    /// Each operation of this handle fails with `kind` with probability
    /// `fraction` (0.0 to 1.0), drawn from a generator seeded with `seed`:
    /// the same seed fails the same calls of the same sequence.
    pub fn fail_fraction(&self, fraction: f64, kind: InjectedFault, seed: u64) -> &Self {
        self.link.plan.lock().fraction = Some((
            fraction.clamp(0.0, 1.0),
            kind,
            fastrand::Rng::with_seed(seed),
        ));
        self
    }

    /// The next `n` operations of this handle never answer (they hang until
    /// the caller drops them, as on the cache's remote timeout).
    pub fn time_out_next(&self, n: u64) -> &Self {
        self.link.plan.lock().hang_next = n;
        self
    }

    /// Adds `latency` before every operation of kind `op` of this handle,
    /// on top of [`latency`](Self::latency).
    pub fn latency_of(&self, op: Op, latency: Duration) -> &Self {
        self.link
            .plan
            .lock()
            .targeted
            .entry(op)
            .or_default()
            .latency = latency;
        self
    }

    /// The next `n` operations of kind `op` of this handle fail with
    /// `kind` (others are unaffected).
    pub fn fail_next_of(&self, op: Op, n: u64, kind: InjectedFault) -> &Self {
        let mut plan = self.link.plan.lock();
        let aimed = plan.targeted.entry(op).or_default();
        aimed.fail_next = n;
        aimed.fail_kind = kind;
        self
    }

    /// The next `n` operations of kind `op` of this handle never answer.
    pub fn time_out_next_of(&self, op: Op, n: u64) -> &Self {
        self.link
            .plan
            .lock()
            .targeted
            .entry(op)
            .or_default()
            .hang_next = n;
        self
    }

    /// Cuts this handle off from the backend: its operations fail with
    /// [`StoreError::Connection`], its subscriptions end and it receives no
    /// message, until [`heal`](Self::heal). Other handles are unaffected.
    pub fn partition(&self) -> &Self {
        self.link.plan.lock().partitioned = true;
        self.link.end_subscriptions();
        self
    }

    /// Ends a [`partition`](Self::partition).
    pub fn heal(&self) -> &Self {
        self.link.plan.lock().partitioned = false;
        self
    }

    /// The next `n` backplane messages this handle's subscriptions would
    /// receive are lost.
    pub fn drop_messages(&self, n: u64) -> &Self {
        self.link.plan.lock().drop_messages = n;
        self
    }

    /// Every backplane message this handle's subscriptions receive is held
    /// for `delay` first (in order; `Duration::ZERO` for none).
    pub fn delay_messages(&self, delay: Duration) -> &Self {
        self.link.plan.lock().message_delay = delay;
        self
    }

    /// Ends every current subscription of this handle (a dropped
    /// connection); new ones work.
    pub fn end_subscriptions(&self) -> &Self {
        self.link.end_subscriptions();
        self
    }

    /// Clears this handle's faults (latency, errors, timeouts, messages,
    /// partition). The backend's are left as they are.
    pub fn clear(&self) -> &Self {
        *self.link.plan.lock() = Plan::default();
        self
    }

    /// **Backend:** the next `n` write operations (put, put_many, delete,
    /// bump, try_lock, extend_lock, unlock, increment, unlink) from any
    /// handle answer as if they succeeded, and are then forgotten (a
    /// failover to a replica that had not received them). Versions handed
    /// out by a lost bump are still never handed out again.
    pub fn lose_writes(&self, n: u64) -> &Self {
        self.backend.lose_writes(n);
        self
    }

    /// **Backend:** a replica records the keyspace as it is now.
    pub fn checkpoint(&self) -> &Self {
        self.backend.checkpoint();
        self
    }

    /// **Backend:** the replica of the last [`checkpoint`](Self::checkpoint)
    /// takes over (an empty one without a checkpoint): every write since is
    /// lost. A counter may read an older version again (the replica's), but
    /// a bump or a new counter is still above every version handed out.
    pub fn fail_over(&self) -> &Self {
        self.backend.fail_over();
        self
    }
}
