//! The drain task: gets, from the counters `Stats` reads, and the gauges.

use std::sync::{Arc, Weak};

use metrics::{counter, gauge, Label};
use tokio::time::MissedTickBehavior;

use super::{describe, labels, names, PERIOD};
use crate::cache::Inner;
use crate::remote::breaker::BreakerState;
use crate::stats::{Counters, GetTotals};
use crate::Cache;

/// Starts `cache`'s drain task on the current tokio runtime; outside one,
/// none (see the module docs).
pub(crate) fn start(cache: &Cache) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::debug!(namespace = %cache.inner.config.namespace, "no tokio runtime: this cache's gets and gauges are not reported");
        return;
    };
    let inner = Arc::downgrade(&cache.inner);
    // The counters outlive the cache here, for a last drain after its drop.
    let counters = cache.inner.observe.counters.clone();
    let namespace = cache.inner.config.namespace.clone();
    handle.spawn(run(inner, counters, namespace));
}

async fn run(cache: Weak<Inner>, counters: Arc<Counters>, namespace: String) {
    let mut drain = Drain {
        namespace,
        wide: Reported::default(),
        sites: Vec::new(),
    };
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        describe();
        // Upgraded only for the gauges, and not kept across the wait.
        let alive = match cache.upgrade() {
            Some(inner) => {
                drain.gauges(&inner);
                true
            }
            None => false,
        };
        drain.gets(&counters);
        if !alive {
            return;
        }
    }
}

/// What one drain task reports for one cache.
struct Drain {
    namespace: String,
    /// The cache-wide gets (the manual API's).
    wide: Reported,
    /// Each registered function's gets, by registration index.
    sites: Vec<Reported>,
}

/// The gets reported so far for one label set.
#[derive(Default)]
struct Reported {
    hits: u64,
    stale: u64,
    misses: u64,
}

impl Drain {
    fn gets(&mut self, counters: &Counters) {
        let wide = counters.wide_gets();
        report(&mut self.wide, wide, &self.namespace, None);
        for (index, site) in counters.sites.list().into_iter().enumerate() {
            if self.sites.len() <= index {
                self.sites.push(Reported::default());
            }
            report(
                &mut self.sites[index],
                site.totals(),
                &self.namespace,
                Some(site.function),
            );
        }
    }

    fn gauges(&self, inner: &Inner) {
        let ns = &self.namespace;
        gauge!(names::MEMORY_ENTRIES, labels(ns, None)).set(inner.tiers.memory.len() as f64);
        gauge!(names::PENDING_INVALIDATIONS, labels(ns, None))
            .set(inner.coherence.invalidations.pending() as f64);
        if let Some(remote) = &inner.tiers.remote {
            let state = match remote.breaker_state() {
                BreakerState::Closed => 0.0,
                BreakerState::HalfOpen => 1.0,
                BreakerState::Open => 2.0,
            };
            gauge!(names::BREAKER_STATE, labels(ns, None)).set(state);
        }
        if let Some(backplane) = inner.coherence.backplane.as_ref().filter(|b| b.listening()) {
            let up = if backplane.subscribed() { 1.0 } else { 0.0 };
            gauge!(names::BACKPLANE_UP, labels(ns, None)).set(up);
        }
    }
}

/// Adds what `now` counts beyond what `seen` reported, per result. Counts
/// only grow, but a get counted in two lanes between two reads could make a
/// derived count dip for a moment: never reported backwards.
fn report(seen: &mut Reported, now: GetTotals, cache: &str, function: Option<&str>) {
    let results = [
        ("hit", now.served(), &mut seen.hits),
        ("stale", now.stale, &mut seen.stale),
        ("miss", now.missed(), &mut seen.misses),
    ];
    for (result, total, reported) in results {
        if total > *reported {
            let mut labels = labels(cache, function);
            labels.push(Label::new("result", result));
            counter!(names::GETS, labels).increment(total - *reported);
            *reported = total;
        }
    }
}
