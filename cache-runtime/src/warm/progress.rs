//! Progress lines of a long warm run.

use std::time::{Duration, Instant};

use super::WarmSummary;

/// How often a warm run logs its progress.
const EVERY: Duration = Duration::from_secs(5);

/// Logs a run's progress every [`EVERY`]: on a timer in a tokio runtime,
/// else checked as its calls complete (warming runs under any executor).
pub(super) struct Progress<'a> {
    namespace: &'a str,
    /// The number of inputs, when the iterator knows it exactly.
    total: Option<usize>,
    started: Instant,
    next_log: Instant,
}

impl<'a> Progress<'a> {
    pub(super) fn new(namespace: &'a str, hint: (usize, Option<usize>), started: Instant) -> Self {
        Self {
            namespace,
            total: (Some(hint.0) == hint.1).then_some(hint.0),
            started,
            next_log: started + EVERY,
        }
    }

    pub(super) fn tick(&mut self, summary: &WarmSummary) {
        let now = Instant::now();
        if now < self.next_log {
            return;
        }
        self.next_log = now + EVERY;
        self.log(summary, "cache warming in progress");
    }

    /// Logs now (the timer's tick).
    pub(super) fn log_now(&mut self, summary: &WarmSummary) {
        self.log(summary, "cache warming in progress");
    }

    pub(super) fn finish(&self, summary: &WarmSummary) {
        self.log(summary, "cache warming done");
    }

    fn log(&self, summary: &WarmSummary, what: &str) {
        tracing::info!(
            namespace = self.namespace,
            done = summary.total(),
            total = self.total,
            loaded = summary.loaded,
            fresh = summary.fresh,
            failed = summary.failed,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "{what}"
        );
    }
}

/// The timer of a run's progress lines, every [`EVERY`] from now; `None`
/// outside a tokio runtime (its lines then come as calls complete).
pub(super) fn timer() -> Option<tokio::time::Interval> {
    tokio::runtime::Handle::try_current().ok()?;
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(timer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_at_most_every_five_seconds() {
        let Some(started) = Instant::now().checked_sub(Duration::from_secs(6)) else {
            return; // a clock this close to its origin cannot go back 6 s
        };
        let mut progress = Progress::new("ns", (10, Some(10)), started);
        assert_eq!(progress.total, Some(10));
        let due = progress.next_log;
        progress.tick(&WarmSummary::default());
        let next = progress.next_log;
        assert!(next >= due + EVERY, "logged, and the next line is 5 s away");
        progress.tick(&WarmSummary::default());
        assert_eq!(progress.next_log, next, "not again within 5 s");
        assert_eq!(Progress::new("ns", (3, None), started).total, None);
    }
}
