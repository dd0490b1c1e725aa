//! The scaling rule, apart from any clock or process: fed the open connections and the number
//! of replicas at each tick, it says when to add or stop a replica.
//!
//! - **Up**: when the open connections per replica stay above `target_connections` for
//!   `scale_up_after`, one replica more (at most `max_replicas`).
//! - **Down**: when the open connections would stay at or below half the target per replica
//!   with one replica fewer, for `scale_down_after`, one replica fewer (at least
//!   `min_replicas`).
//!
//! The gap between the target and its half is the hysteresis: a load that makes the controller
//! add a replica never makes it stop one at once, and the reverse. After each change the window
//! starts again, so two changes are at least a window apart.

use std::time::{Duration, Instant};

/// A change the controller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Start one replica more.
    Up,
    /// Stop one replica.
    Down,
}

impl Change {
    /// `up` or `down`: the metric label and the event's direction.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Up => "up",
            Change::Down => "down",
        }
    }
}

/// The controller's state: since when the load has been above the target, or low enough to
/// stop a replica.
#[derive(Debug, Clone)]
pub struct Controller {
    min: u32,
    max: u32,
    target: u32,
    up_after: Duration,
    down_after: Duration,
    above_since: Option<Instant>,
    below_since: Option<Instant>,
}

impl Controller {
    /// A controller for `autoscaling`'s bounds, target and windows.
    pub fn new(autoscaling: &hac::Autoscaling) -> Self {
        Controller {
            min: autoscaling.min_replicas,
            max: autoscaling.max_replicas,
            target: autoscaling.target_connections,
            up_after: Duration::from_millis(autoscaling.scale_up_after_ms),
            down_after: Duration::from_millis(autoscaling.scale_down_after_ms),
            above_since: None,
            below_since: None,
        }
    }

    /// Whether `open` connections are above the target for `replicas` replicas.
    pub fn above(&self, open: u64, replicas: u32) -> bool {
        open > u64::from(self.target) * u64::from(replicas.max(1))
    }

    /// Whether `open` connections would be at most half the target per replica with one
    /// replica fewer than `replicas`.
    pub fn low(&self, open: u64, replicas: u32) -> bool {
        replicas > 1 && open * 2 <= u64::from(self.target) * u64::from(replicas - 1)
    }

    /// One observation at `now`: `open` connections relayed, `replicas` replicas running.
    /// Returns the change to make, if any; after a change the windows start again.
    pub fn observe(&mut self, now: Instant, open: u64, replicas: u32) -> Option<Change> {
        if replicas < self.min {
            self.reset();
            return Some(Change::Up);
        }
        if replicas > self.max {
            self.reset();
            return Some(Change::Down);
        }
        if self.above(open, replicas) && replicas < self.max {
            self.below_since = None;
            let since = *self.above_since.get_or_insert(now);
            if now.duration_since(since) >= self.up_after {
                self.reset();
                return Some(Change::Up);
            }
            return None;
        }
        self.above_since = None;
        if self.low(open, replicas) && replicas > self.min {
            let since = *self.below_since.get_or_insert(now);
            if now.duration_since(since) >= self.down_after {
                self.reset();
                return Some(Change::Down);
            }
            return None;
        }
        self.below_since = None;
        None
    }

    fn reset(&mut self) {
        self.above_since = None;
        self.below_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller(min: u32, max: u32, target: u32) -> Controller {
        Controller::new(&hac::Autoscaling {
            min_replicas: min,
            max_replicas: max,
            target_connections: target,
            scale_up_after_ms: 1_000,
            scale_down_after_ms: 5_000,
        })
    }

    /// Runs the controller from `start` every 100 ms for `ms` at a constant load, applying its
    /// changes; returns the replicas at the end and the changes made.
    fn run(c: &mut Controller, start: Instant, ms: u64, open: u64, replicas: &mut u32) -> Vec<Change> {
        let mut changes = Vec::new();
        for t in (0..=ms).step_by(100) {
            if let Some(change) = c.observe(start + Duration::from_millis(t), open, *replicas) {
                *replicas = match change {
                    Change::Up => *replicas + 1,
                    Change::Down => *replicas - 1,
                };
                changes.push(change);
            }
        }
        changes
    }

    #[test]
    fn a_sustained_load_adds_replicas_one_window_apart_up_to_the_maximum() {
        let mut c = controller(1, 3, 2);
        let start = Instant::now();
        let mut replicas = 1;
        // 20 connections: 20 per replica, then 10, then 6.7: above 2 all along.
        let changes = run(&mut c, start, 900, 20, &mut replicas);
        assert!(changes.is_empty(), "not before the window");
        let changes = run(&mut c, start + Duration::from_millis(1_000), 10_000, 20, &mut replicas);
        assert_eq!(changes, [Change::Up, Change::Up]);
        assert_eq!(replicas, 3, "never above max");
    }

    #[test]
    fn a_short_burst_changes_nothing() {
        let mut c = controller(1, 3, 2);
        let start = Instant::now();
        let mut replicas = 1;
        assert!(run(&mut c, start, 800, 20, &mut replicas).is_empty());
        assert!(run(&mut c, start + Duration::from_millis(900), 300, 0, &mut replicas).is_empty());
        assert!(run(&mut c, start + Duration::from_millis(1_300), 800, 20, &mut replicas).is_empty());
        assert_eq!(replicas, 1);
    }

    #[test]
    fn an_idle_node_goes_back_to_the_minimum_a_longer_window_apart() {
        let mut c = controller(1, 4, 4);
        let start = Instant::now();
        let mut replicas = 4;
        let changes = run(&mut c, start, 4_900, 0, &mut replicas);
        assert!(changes.is_empty(), "not before the down window");
        let changes = run(&mut c, start + Duration::from_millis(5_000), 30_000, 0, &mut replicas);
        assert_eq!(changes, [Change::Down, Change::Down, Change::Down]);
        assert_eq!(replicas, 1, "never below min");
    }

    #[test]
    fn between_the_target_and_its_half_nothing_changes() {
        let mut c = controller(1, 4, 4);
        let start = Instant::now();
        // 2 replicas, 6 open: 3 per replica (not above 4), and 6 with one fewer (above 2).
        let mut replicas = 2;
        assert!(run(&mut c, start, 60_000, 6, &mut replicas).is_empty());
        // 4 open: 4 with one fewer, above half the target: nothing either.
        assert!(run(&mut c, start + Duration::from_secs(61), 60_000, 4, &mut replicas).is_empty());
        // 2 open: 2 with one fewer, at most half the target: one fewer after the window.
        assert_eq!(run(&mut c, start + Duration::from_secs(122), 6_000, 2, &mut replicas), [Change::Down]);
        assert_eq!(replicas, 1);
        // And at 1 replica, 4 open is not above the target: it stays.
        assert!(run(&mut c, start + Duration::from_secs(130), 60_000, 4, &mut replicas).is_empty());
    }

    #[test]
    fn below_the_minimum_or_above_the_maximum_is_corrected_at_once() {
        let mut c = controller(2, 3, 4);
        let now = Instant::now();
        assert_eq!(c.observe(now, 0, 1), Some(Change::Up));
        assert_eq!(c.observe(now, 100, 4), Some(Change::Down));
    }
}
