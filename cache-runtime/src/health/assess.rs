//! Assessing health: a pure function from the figures of a report and the thresholds
//! to a status and the reasons for it, in words.

use std::time::Duration;

use super::{HealthStatus, HealthThresholds};
use crate::remote::breaker::BreakerState;
use crate::Health;

/// What a report judges.
#[derive(Debug, Clone, Copy)]
pub(super) struct Figures {
    /// The span the ratios cover.
    pub(super) window: Duration,
    pub(super) hit_ratio: Option<f64>,
    pub(super) error_ratio: Option<f64>,
    pub(super) remote: Option<Health>,
    pub(super) tiers: Tiers,
}

/// What the cache can serve from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tiers {
    /// `enabled(false)`: every call runs its function, by choice.
    Disabled,
    /// The memory tier answers hits (memory only, or write-through whose
    /// memory is trusted).
    Memory,
    /// No memory tier in use: storage-only, or write-through whose memory
    /// is not trusted now (the backplane is down or Redis has not confirmed
    /// tag versions within the last second), so every hit needs the remote tier.
    RemoteOnly,
}

/// The status and the reasons for it (none when healthy).
pub(super) fn assess(f: &Figures, t: &HealthThresholds) -> (HealthStatus, Vec<String>) {
    let mut verdict = Verdict::default();
    let over = format!("over the last {} s", seconds(f.window));
    if f.tiers == Tiers::Disabled {
        // Its hit ratio is zero by design: judging it would fail a cache
        // someone turned off on purpose (CACHE_DISABLED, an incident).
        verdict.degraded("the cache is disabled: every call runs its function".into());
    } else if let Some(ratio) = f.hit_ratio {
        let (warn, critical) = (t.hit_ratio_warn, t.hit_ratio_critical);
        verdict.limits(ratio, Past::Below, warn, critical, |l| {
            format!("hit ratio {} {over} is below {}", percent(ratio), limit(l))
        });
    }
    if let Some(ratio) = f.error_ratio {
        let (warn, critical) = (t.error_ratio_warn, t.error_ratio_critical);
        verdict.limits(ratio, Past::Above, warn, critical, |l| {
            format!(
                "error ratio {} {over} is above {}",
                percent(ratio),
                limit(l)
            )
        });
    }
    if let Some(remote) = &f.remote {
        judge_remote(remote, f.tiers, t, &mut verdict);
    }
    (verdict.status, verdict.reasons)
}

fn judge_remote(remote: &Health, tiers: Tiers, t: &HealthThresholds, verdict: &mut Verdict) {
    let mut down = Vec::new();
    if !remote.connected {
        down.push("the remote tier is unreachable");
    }
    match remote.breaker {
        BreakerState::Closed => {}
        BreakerState::Open => down.push("its circuit breaker is open"),
        BreakerState::HalfOpen => down.push("its circuit breaker is half-open"),
    }
    if !down.is_empty() {
        let what = down.join(" and ");
        // Without a memory tier in use every call runs its function uncached:
        // the cache does nothing for the backend behind it.
        if tiers == Tiers::RemoteOnly {
            verdict.unhealthy(format!(
                "{what}, and no memory tier is in use: every call runs its function uncached"
            ));
        } else {
            verdict.degraded(format!("{what}; the memory tier still serves"));
        }
    } else if let Some(ping) = remote.ping {
        let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
        let (warn, critical) = (t.round_trip_warn, t.round_trip_critical);
        verdict.limits(ping, Past::Above, warn, critical, |l| {
            format!(
                "remote round trip {:.1} ms is above {:.1} ms",
                ms(ping),
                ms(l)
            )
        });
    }
    if remote.backplane == Some(false) {
        verdict.degraded(
            "the backplane is not subscribed: other processes' invalidations are not heard, so reads go to the remote tier".into(),
        );
    }
    if remote.pending_invalidations > 0 {
        verdict.degraded(format!(
            "{} tag invalidation(s) wait for the remote tier to confirm them",
            remote.pending_invalidations
        ));
    }
}

/// A span in seconds: whole seconds, with one decimal below ten (`2.1`, `61`).
fn seconds(window: Duration) -> String {
    let secs = window.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1}")
    } else {
        format!("{secs:.0}")
    }
}

/// A measured ratio as a percentage with one decimal: `55.0%`.
fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A limit as a percentage, without decimals when it has none: `60%`, `0.5%`.
fn limit(ratio: f64) -> String {
    let percent = ratio * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{percent:.0}%")
    } else {
        format!("{percent:.1}%")
    }
}

/// Which side of a limit is bad.
#[derive(Clone, Copy)]
enum Past {
    Below,
    Above,
}

#[derive(Default)]
struct Verdict {
    status: HealthStatus,
    reasons: Vec<String>,
}

impl Verdict {
    fn degraded(&mut self, reason: String) {
        self.status = self.status.max(HealthStatus::Degraded);
        self.reasons.push(reason);
    }

    fn unhealthy(&mut self, reason: String) {
        self.status = HealthStatus::Unhealthy;
        self.reasons.push(reason);
    }

    /// Judges `value` against a warning and a critical limit (exclusive);
    /// `finding` words it with the limit it passed.
    fn limits<V: PartialOrd + Copy>(
        &mut self,
        value: V,
        past: Past,
        warn: V,
        critical: V,
        finding: impl Fn(V) -> String,
    ) {
        let beyond = |limit: V| match past {
            Past::Below => value < limit,
            Past::Above => value > limit,
        };
        if beyond(critical) {
            self.unhealthy(finding(critical));
        } else if beyond(warn) {
            self.degraded(finding(warn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Figures {
        Figures {
            window: Duration::from_secs(60),
            hit_ratio: None,
            error_ratio: None,
            remote: None,
            tiers: Tiers::Memory,
        }
    }

    fn remote() -> Health {
        Health {
            connected: true,
            ping: Some(Duration::from_micros(300)),
            breaker: BreakerState::Closed,
            backplane: Some(true),
            pending_invalidations: 0,
        }
    }

    fn judged(f: Figures) -> (HealthStatus, Vec<String>) {
        assess(&f, &HealthThresholds::default())
    }

    #[test]
    fn short_spans_keep_a_decimal() {
        assert_eq!(seconds(Duration::from_millis(2_140)), "2.1");
        assert_eq!(seconds(Duration::from_millis(61_400)), "61");
    }

    #[test]
    fn a_quiet_or_good_cache_is_healthy() {
        assert_eq!(judged(quiet()), (HealthStatus::Healthy, vec![]));
        let good = Figures {
            hit_ratio: Some(0.8),
            error_ratio: Some(0.01),
            remote: Some(remote()),
            ..quiet()
        };
        assert_eq!(
            judged(good),
            (HealthStatus::Healthy, vec![]),
            "limits are exclusive"
        );
    }

    #[test]
    fn the_hit_ratio_warns_then_fails() {
        let at = |ratio| {
            judged(Figures {
                hit_ratio: Some(ratio),
                ..quiet()
            })
        };
        assert_eq!(
            at(0.7),
            (
                HealthStatus::Degraded,
                vec!["hit ratio 70.0% over the last 60 s is below 80%".to_string()]
            )
        );
        assert_eq!(
            at(0.55),
            (
                HealthStatus::Unhealthy,
                vec!["hit ratio 55.0% over the last 60 s is below 60%".to_string()]
            )
        );
    }

    #[test]
    fn the_error_ratio_warns_then_fails_and_reasons_add_up() {
        let (status, reasons) = judged(Figures {
            error_ratio: Some(0.02),
            ..quiet()
        });
        assert_eq!(status, HealthStatus::Degraded);
        assert_eq!(reasons, ["error ratio 2.0% over the last 60 s is above 1%"]);
        let (status, reasons) = judged(Figures {
            hit_ratio: Some(0.7),
            error_ratio: Some(0.06),
            ..quiet()
        });
        assert_eq!(status, HealthStatus::Unhealthy, "the worst reason wins");
        assert_eq!(reasons.len(), 2);
        assert!(reasons[1].contains("6.0%") && reasons[1].contains("above 5%"));
    }

    #[test]
    fn a_disabled_cache_is_degraded_whatever_its_hit_ratio() {
        let (status, reasons) = judged(Figures {
            hit_ratio: Some(0.0),
            tiers: Tiers::Disabled,
            ..quiet()
        });
        assert_eq!(status, HealthStatus::Degraded);
        assert_eq!(
            reasons,
            ["the cache is disabled: every call runs its function"]
        );
    }

    #[test]
    fn a_remote_tier_down_depends_on_what_still_serves() {
        let down = Health {
            connected: false,
            ping: None,
            breaker: BreakerState::Open,
            ..remote()
        };
        let (status, reasons) = judged(Figures {
            remote: Some(down),
            ..quiet()
        });
        assert_eq!(status, HealthStatus::Degraded);
        assert_eq!(
            reasons,
            ["the remote tier is unreachable and its circuit breaker is open; the memory tier still serves"]
        );
        let (status, reasons) = judged(Figures {
            remote: Some(down),
            tiers: Tiers::RemoteOnly,
            ..quiet()
        });
        assert_eq!(status, HealthStatus::Unhealthy);
        assert!(reasons[0].ends_with("every call runs its function uncached"));
        let half_open = Health {
            breaker: BreakerState::HalfOpen,
            ..remote()
        };
        let (status, reasons) = judged(Figures {
            remote: Some(half_open),
            tiers: Tiers::RemoteOnly,
            ..quiet()
        });
        assert_eq!(status, HealthStatus::Unhealthy);
        assert!(reasons[0].starts_with("its circuit breaker is half-open"));
    }

    #[test]
    fn a_slow_round_trip_warns_then_fails() {
        let at = |ms| {
            judged(Figures {
                remote: Some(Health {
                    ping: Some(Duration::from_millis(ms)),
                    ..remote()
                }),
                ..quiet()
            })
        };
        assert_eq!(at(10).0, HealthStatus::Healthy);
        assert_eq!(
            at(20),
            (
                HealthStatus::Degraded,
                vec!["remote round trip 20.0 ms is above 10.0 ms".to_string()]
            )
        );
        assert_eq!(at(51).0, HealthStatus::Unhealthy);
    }

    #[test]
    fn backplane_down_and_pending_invalidations_degrade() {
        let (status, reasons) = judged(Figures {
            remote: Some(Health {
                backplane: Some(false),
                pending_invalidations: 3,
                ..remote()
            }),
            ..quiet()
        });
        assert_eq!(status, HealthStatus::Degraded);
        assert!(reasons[0].starts_with("the backplane is not subscribed"));
        assert_eq!(
            reasons[1],
            "3 tag invalidation(s) wait for the remote tier to confirm them"
        );
    }

    #[test]
    fn thresholds_are_the_callers() {
        let t = HealthThresholds::default().hit_ratio(0.5, 0.2);
        let f = Figures {
            hit_ratio: Some(0.55),
            ..quiet()
        };
        assert_eq!(assess(&f, &t).0, HealthStatus::Healthy);
        let never = HealthThresholds::default().hit_ratio(0.0, 0.0);
        let zero = Figures {
            hit_ratio: Some(0.0),
            ..quiet()
        };
        assert_eq!(assess(&zero, &never).0, HealthStatus::Healthy);
    }
}
