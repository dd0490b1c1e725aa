//! When to restart a guest, and how long to wait first: pure decisions from the spec's
//! `[spec.failover]`, the way the last run ended, and the times of earlier restarts.
//!
//! - A requested stop (SIGTERM, SIGINT, `--until-ready`) is never followed by a restart.
//! - `none` never restarts. `auto-recovery` restarts after a failure: an exit with a status
//!   other than 0, a panic, a CPU fault, an ABI violation, a KVM error, a guest not ready in
//!   time, failed health checks. `restart-always` also restarts after a clean exit (status 0).
//! - Crash-loop limit: if `max_restarts` restarts already happened within the last
//!   `restart_window`, the launcher gives up instead of restarting once more.
//! - Backoff: the n-th restart within the window waits `backoff_initial * 2^(n-1)`, at most
//!   `backoff_max`; after a quiet window the wait is back to `backoff_initial`.

use crate::vmm::Outcome;
use hac::{Failover, FailoverStrategy};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Why a guest is restarted: the kind of its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It exited with status 0 (restarted by `restart-always` only).
    CleanExit,
    /// It exited with this status, not 0.
    Exit(u8),
    /// It panicked.
    Panic,
    /// It took a CPU exception.
    Fault,
    /// It broke the hypercall ABI.
    AbiViolation,
    /// KVM could not run it further.
    KvmError,
    /// It was not ready in time.
    NotReady,
    /// It failed its health checks for too long.
    Unhealthy,
    /// It was stopped after a stop request (never restarted).
    Stopped,
}

impl Cause {
    /// The cause of `outcome`.
    pub fn of(outcome: &Outcome) -> Cause {
        match outcome {
            Outcome::Exited(0) => Cause::CleanExit,
            Outcome::Exited(status) => Cause::Exit(*status),
            Outcome::Stopped | Outcome::Saved => Cause::Stopped,
            Outcome::NotReady(_) => Cause::NotReady,
            Outcome::Panicked(_) => Cause::Panic,
            Outcome::Fault(_) => Cause::Fault,
            Outcome::AbiViolation(_) => Cause::AbiViolation,
            Outcome::KvmError(_) => Cause::KvmError,
            Outcome::Unhealthy(_) => Cause::Unhealthy,
        }
    }

    /// Every cause, in a fixed order; `Exit` stands for every non-zero status.
    pub const ALL: [Cause; 9] = [
        Cause::CleanExit,
        Cause::Exit(1),
        Cause::Panic,
        Cause::Fault,
        Cause::AbiViolation,
        Cause::KvmError,
        Cause::NotReady,
        Cause::Unhealthy,
        Cause::Stopped,
    ];

    /// The label of the cause in metrics (`cause="panic"`, `kind="panic"`).
    pub const fn label(self) -> &'static str {
        match self {
            Cause::CleanExit => "clean_exit",
            Cause::Exit(_) => "error_exit",
            Cause::Panic => "panic",
            Cause::Fault => "fault",
            Cause::AbiViolation => "abi_violation",
            Cause::KvmError => "kvm_error",
            Cause::NotReady => "not_ready",
            Cause::Unhealthy => "unhealthy",
            Cause::Stopped => "stopped",
        }
    }

    /// Every label, in the order of [`Self::ALL`] (metrics list each one, even at 0).
    pub const LABELS: [&'static str; Self::ALL.len()] = {
        let mut labels = [""; Self::ALL.len()];
        let mut i = 0;
        while i < labels.len() {
            labels[i] = Self::ALL[i].label();
            i += 1;
        }
        labels
    };

    /// Whether `auto-recovery` restarts after this cause.
    fn is_failure(self) -> bool {
        !matches!(self, Cause::CleanExit | Cause::Stopped)
    }
}

impl fmt::Display for Cause {
    /// As in `restart 2 after guest panic`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::CleanExit => f.write_str("guest exit with status 0"),
            Cause::Exit(status) => write!(f, "guest exit with status {status}"),
            Cause::Panic => f.write_str("guest panic"),
            Cause::Fault => f.write_str("guest fault"),
            Cause::AbiViolation => f.write_str("guest ABI violation"),
            Cause::KvmError => f.write_str("KVM error"),
            Cause::NotReady => f.write_str("guest not ready in time"),
            Cause::Unhealthy => f.write_str("failed health checks"),
            Cause::Stopped => f.write_str("guest stop"),
        }
    }
}

/// What to do after a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The launcher ends with the run's status.
    End,
    /// Boot again after `backoff`; this is restart number `number` since the launcher started.
    Restart { number: u64, cause: Cause, backoff: Duration },
    /// Too many restarts: `restarts` already happened within the window; the launcher ends
    /// with the run's status.
    GiveUp { cause: Cause, restarts: usize },
}

/// The restart policy of `[spec.failover]`, with the restarts it has made.
#[derive(Debug, Clone)]
pub struct Policy {
    strategy: FailoverStrategy,
    max_restarts: usize,
    window: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    /// When each restart within the last window was decided, oldest first.
    recent: VecDeque<Instant>,
    total: u64,
}

impl Policy {
    /// The policy the spec asks for.
    pub fn new(failover: &Failover) -> Self {
        Policy {
            strategy: failover.strategy,
            max_restarts: failover.max_restarts as usize,
            window: Duration::from_millis(failover.restart_window_ms),
            backoff_initial: Duration::from_millis(failover.backoff_initial_ms),
            backoff_max: Duration::from_millis(failover.backoff_max_ms),
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Decides what follows a run that ended with `outcome` at `now`; `stop_requested` says
    /// whether a stop was asked for. A `Restart` is counted.
    pub fn decide(&mut self, outcome: &Outcome, stop_requested: bool, now: Instant) -> Decision {
        let cause = Cause::of(outcome);
        let restarts = match self.strategy {
            _ if stop_requested || cause == Cause::Stopped => false,
            FailoverStrategy::None => false,
            FailoverStrategy::AutoRecovery => cause.is_failure(),
            FailoverStrategy::RestartAlways => true,
        };
        if !restarts {
            return Decision::End;
        }
        while self.recent.front().is_some_and(|&at| now.saturating_duration_since(at) >= self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_restarts {
            return Decision::GiveUp { cause, restarts: self.recent.len() };
        }
        let backoff = self.backoff(self.recent.len());
        self.recent.push_back(now);
        self.total += 1;
        Decision::Restart { number: self.total, cause, backoff }
    }

    /// The wait before a restart that follows `earlier` restarts within the window.
    fn backoff(&self, earlier: usize) -> Duration {
        let factor = 1u32.checked_shl(earlier.min(31) as u32).unwrap_or(u32::MAX);
        self.backoff_initial.saturating_mul(factor).min(self.backoff_max)
    }

    /// The crash-loop limit, for messages: `(max_restarts, restart_window)`.
    pub fn limit(&self) -> (usize, Duration) {
        (self.max_restarts, self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(strategy: FailoverStrategy) -> Policy {
        Policy::new(&Failover { strategy, ..Failover::default() })
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn which_outcomes_restart_under_each_strategy() {
        let failures = [
            Outcome::Exited(3),
            Outcome::Panicked("p".into()),
            Outcome::Fault("f".into()),
            Outcome::AbiViolation("a".into()),
            Outcome::KvmError("k".into()),
            Outcome::NotReady(Duration::from_secs(1)),
            Outcome::Unhealthy("u".into()),
        ];
        let now = Instant::now();
        for outcome in &failures {
            assert_eq!(
                policy(FailoverStrategy::None).decide(outcome, false, now),
                Decision::End,
                "{outcome:?}"
            );
            for strategy in [FailoverStrategy::AutoRecovery, FailoverStrategy::RestartAlways] {
                let decision = policy(strategy).decide(outcome, false, now);
                assert!(matches!(decision, Decision::Restart { number: 1, .. }), "{strategy:?} {outcome:?}");
                // Never after a requested stop, whatever the outcome.
                assert_eq!(policy(strategy).decide(outcome, true, now), Decision::End, "{outcome:?}");
            }
        }
        let clean = Outcome::Exited(0);
        assert_eq!(policy(FailoverStrategy::AutoRecovery).decide(&clean, false, now), Decision::End);
        assert!(matches!(
            policy(FailoverStrategy::RestartAlways).decide(&clean, false, now),
            Decision::Restart { cause: Cause::CleanExit, .. }
        ));
        assert_eq!(policy(FailoverStrategy::RestartAlways).decide(&clean, true, now), Decision::End);
        for strategy in [FailoverStrategy::AutoRecovery, FailoverStrategy::RestartAlways] {
            assert_eq!(policy(strategy).decide(&Outcome::Stopped, false, now), Decision::End);
        }
    }

    #[test]
    fn backoff_doubles_within_the_window_up_to_the_maximum() {
        let mut p = Policy::new(&Failover {
            strategy: FailoverStrategy::AutoRecovery,
            max_restarts: 1000,
            backoff_initial_ms: 10,
            backoff_max_ms: 5_000,
            ..Failover::default()
        });
        let start = Instant::now();
        let waits: Vec<u64> = (0..12)
            .map(|i| match p.decide(&Outcome::Panicked("p".into()), false, start + i * MS) {
                Decision::Restart { number, backoff, cause: Cause::Panic } => {
                    assert_eq!(number, u64::from(i) + 1);
                    backoff.as_millis() as u64
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000, 5000]);
        // After a quiet window the backoff starts over; the count of restarts does not.
        let later = start + Duration::from_secs(61);
        assert_eq!(
            p.decide(&Outcome::Exited(1), false, later),
            Decision::Restart { number: 13, cause: Cause::Exit(1), backoff: 10 * MS }
        );
    }

    #[test]
    fn backoff_never_overflows() {
        let p = Policy::new(&Failover {
            strategy: FailoverStrategy::AutoRecovery,
            backoff_initial_ms: 3_600_000,
            backoff_max_ms: 3_600_000,
            ..Failover::default()
        });
        assert_eq!(p.backoff(200), Duration::from_secs(3600));
        let zero = Policy::new(&Failover { backoff_initial_ms: 0, ..Failover::default() });
        assert_eq!(zero.backoff(5), Duration::ZERO);
    }

    #[test]
    fn more_restarts_than_the_limit_within_the_window_give_up() {
        let mut p = Policy::new(&Failover {
            strategy: FailoverStrategy::AutoRecovery,
            max_restarts: 3,
            restart_window_ms: 1_000,
            ..Failover::default()
        });
        let start = Instant::now();
        let fault = Outcome::Fault("f".into());
        for i in 0..3 {
            assert!(matches!(p.decide(&fault, false, start + i * 100 * MS), Decision::Restart { .. }));
        }
        // A fourth failure within 1 s of the first restart: give up.
        assert_eq!(
            p.decide(&fault, false, start + 900 * MS),
            Decision::GiveUp { cause: Cause::Fault, restarts: 3 }
        );
        // Once the first restart has left the window, there is room for one more.
        assert!(matches!(p.decide(&fault, false, start + 1000 * MS), Decision::Restart { number: 4, .. }));
        assert!(matches!(p.decide(&fault, false, start + 1050 * MS), Decision::GiveUp { restarts: 3, .. }));
        assert_eq!(p.limit(), (3, Duration::from_secs(1)));
    }

    #[test]
    fn causes_read_as_log_phrases_and_metric_labels() {
        assert_eq!(Cause::Panic.to_string(), "guest panic");
        assert_eq!(Cause::Exit(3).to_string(), "guest exit with status 3");
        assert_eq!(Cause::Unhealthy.to_string(), "failed health checks");
        for label in Cause::LABELS {
            assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{label}");
        }
        assert_eq!(Cause::ALL.map(Cause::label), Cause::LABELS);
        // One label per cause: a metric's samples never merge two causes.
        let distinct: std::collections::BTreeSet<&str> = Cause::LABELS.into_iter().collect();
        assert_eq!(distinct.len(), Cause::LABELS.len(), "{:?}", Cause::LABELS);
    }
}
