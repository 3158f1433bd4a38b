//! The metrics of what happens off the hit path, counted as it happens.

use metrics::{counter, histogram, Label};

use super::{labels, names};
use crate::events::{
    Coalesced, Evict, FailSafe, FaultKind, Invalidate, Listener, Load, Refresh, RemoteOp,
    StoreFault,
};

/// The listener every cache with metrics has (not told of gets: see the
/// module docs).
pub(crate) struct MetricsListener;

impl Listener for MetricsListener {
    fn wants_gets(&self) -> bool {
        false
    }

    fn on_load(&self, event: &Load<'_>) {
        let labels = labels(event.cache, event.function);
        histogram!(names::LOAD_DURATION, labels.clone()).record(event.duration.as_secs_f64());
        let mut labels = labels;
        labels.push(Label::new("outcome", event.outcome.as_str()));
        counter!(names::LOADS, labels).increment(1);
    }

    fn on_invalidate(&self, event: &Invalidate<'_>) {
        counter!(names::INVALIDATIONS, labels(event.cache, None))
            .increment(event.tags.len() as u64);
    }

    fn on_evict(&self, event: &Evict<'_>) {
        counter!(names::EVICTIONS, labels(event.cache, None)).increment(event.count);
    }

    fn on_store_fault(&self, event: &StoreFault<'_>) {
        let mut labels = labels(event.cache, None);
        if event.kind == FaultKind::Decode {
            counter!(names::DECODE_ERRORS, labels).increment(1);
        } else if event.kind == FaultKind::Corrupt {
            counter!(names::DECODE_ERRORS, labels.clone()).increment(1);
            counter!(names::CORRUPT_ENTRIES, labels).increment(1);
        } else if event.kind == FaultKind::Oversized {
            counter!(names::OVERSIZED_ENTRIES, labels).increment(1);
        } else if event.kind == FaultKind::SchemaMismatch {
            counter!(names::SCHEMA_MISMATCHES, labels).increment(1);
        } else {
            labels.push(Label::new("kind", event.kind.as_str()));
            counter!(names::REMOTE_ERRORS, labels).increment(1);
        }
    }

    fn on_refresh(&self, event: &Refresh<'_>) {
        counter!(names::REFRESHES, labels(event.cache, event.function)).increment(1);
    }

    fn on_fail_safe(&self, event: &FailSafe<'_>) {
        counter!(names::FAIL_SAFE, labels(event.cache, event.function)).increment(1);
    }

    fn on_coalesced(&self, event: &Coalesced<'_>) {
        counter!(names::COALESCED, labels(event.cache, event.function)).increment(1);
    }

    fn on_remote_op(&self, event: &RemoteOp<'_>) {
        histogram!(names::REMOTE_DURATION, labels(event.cache, None))
            .record(event.duration.as_secs_f64());
    }
}
