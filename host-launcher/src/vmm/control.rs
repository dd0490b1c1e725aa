//! What the vCPU threads and the main thread share: events for the guest, the ready signal,
//! and the outcome that ends the run. The first outcome wins.

use super::Outcome;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shared run state.
#[derive(Debug)]
pub struct Control {
    state: Mutex<State>,
    changed: Condvar,
    /// Set with the outcome, read by the vCPU threads before each entry without the lock.
    ended: AtomicBool,
    /// VM exits by kind, counted by the vCPU threads; shared by every boot of the spacecore.
    pub exits: Arc<ExitCounts>,
    /// This boot's console budget.
    console: Mutex<super::console::Bucket>,
}

/// VM exits by kind: every exit costs ~30 µs on KVM on PVM, so these are worth watching.
#[derive(Debug, Default)]
pub struct ExitCounts {
    /// Hypercalls (port writes), including `Wait`.
    pub hypercalls: AtomicU64,
    /// Device register reads and writes that reached the launcher.
    pub mmio: AtomicU64,
    /// Console bytes the guest wrote beyond its budget, dropped.
    pub console_dropped_bytes: AtomicU64,
}

impl ExitCounts {
    /// `(hypercalls, mmio)` now.
    pub fn get(&self) -> (u64, u64) {
        (self.hypercalls.load(Ordering::Relaxed), self.mmio.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct State {
    /// Events not yet reported, per vCPU: each event is reported once to each vCPU.
    pending: Vec<u64>,
    ready_at: Option<Instant>,
    stop_requested: Option<Instant>,
    outcome: Option<Outcome>,
}

impl Control {
    /// State for `vcpus` vCPUs, counting exits into `exits`.
    pub fn new(vcpus: u32, exits: Arc<ExitCounts>) -> Self {
        Control {
            state: Mutex::new(State {
                pending: vec![0; vcpus as usize],
                ready_at: None,
                stop_requested: None,
                outcome: None,
            }),
            changed: Condvar::new(),
            ended: AtomicBool::new(false),
            exits,
            console: Mutex::new(super::console::Bucket::new(Instant::now())),
        }
    }

    /// Whether console text of `len` bytes may be written now ([`super::console`]); counts what
    /// is dropped.
    pub fn console_admit(&self, len: usize) -> super::console::Admission {
        let admission = self.console.lock().unwrap_or_else(|p| p.into_inner()).admit(len, Instant::now());
        if admission == super::console::Admission::Drop {
            self.exits.console_dropped_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        admission
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking vCPU thread cannot leave the state half-updated: every update is one
        // assignment, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Raises `events` for every vCPU.
    pub fn post(&self, events: u64) {
        let mut s = self.lock();
        s.pending.iter_mut().for_each(|p| *p |= events);
        self.changed.notify_all();
    }

    /// Raises `events` for vCPU `vcpu` only.
    pub fn post_to(&self, vcpu: u32, events: u64) {
        let mut s = self.lock();
        if let Some(p) = s.pending.get_mut(vcpu as usize) {
            *p |= events;
            self.changed.notify_all();
        }
    }

    /// Blocks vCPU `vcpu` until it has pending events (returned and cleared), `timeout`
    /// passes (returns 0), or the run has an outcome (returns 0 at once: the vCPU thread then
    /// sees the end of the run and returns).
    pub fn wait_events(&self, vcpu: u32, timeout: Option<Duration>) -> u64 {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut s = self.lock();
        loop {
            if s.outcome.is_some() {
                return 0;
            }
            let events = std::mem::take(&mut s.pending[vcpu as usize]);
            if events != 0 {
                return events;
            }
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return 0;
                    }
                    s = self.changed.wait_timeout(s, d - now).unwrap_or_else(|p| p.into_inner()).0;
                }
                None => s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    /// Blocks until the run has an outcome (true) or `deadline` passes (false).
    pub fn wait_end(&self, deadline: Instant) -> bool {
        let mut s = self.lock();
        loop {
            if s.outcome.is_some() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.changed.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Whether the guest has signalled ready.
    pub fn is_ready(&self) -> bool {
        self.lock().ready_at.is_some()
    }

    /// Records that the guest is ready; returns false if it already was.
    pub fn set_ready(&self, at: Instant) -> bool {
        let mut s = self.lock();
        let first = s.ready_at.is_none();
        if first {
            s.ready_at = Some(at);
            self.changed.notify_all();
        }
        first
    }

    /// Ends the run with `outcome` unless it already has one.
    pub fn finish(&self, outcome: Outcome) {
        let mut s = self.lock();
        if s.outcome.is_none() {
            s.outcome = Some(outcome);
            self.ended.store(true, Ordering::Release);
            self.changed.notify_all();
        }
    }

    /// Whether the run has an outcome already.
    pub fn finished(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Records a request to stop the guest (the supervisor turns it into a STOP event).
    pub fn request_stop(&self) {
        let mut s = self.lock();
        if s.stop_requested.is_none() {
            s.stop_requested = Some(Instant::now());
            self.changed.notify_all();
        }
    }

    /// Blocks until the state differs from `seen` or `deadline` passes; returns the state.
    pub fn watch(&self, seen: &Snapshot, deadline: Option<Instant>) -> Snapshot {
        let mut s = self.lock();
        loop {
            let now = Snapshot {
                ready_at: s.ready_at,
                stop_requested: s.stop_requested,
                outcome: s.outcome.clone(),
            };
            if now != *seen {
                return now;
            }
            match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return now;
                    }
                    s = self.changed.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
                }
                None => s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

/// What the supervisor watches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// When the guest signalled ready.
    pub ready_at: Option<Instant>,
    /// When a stop was first requested.
    pub stop_requested: Option<Instant>,
    /// How the run ended.
    pub outcome: Option<Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn each_event_is_reported_once_to_each_vcpu() {
        let c = Control::new(2, Arc::default());
        c.post(1);
        assert_eq!(c.wait_events(0, Some(Duration::ZERO)), 1);
        assert_eq!(c.wait_events(0, Some(Duration::from_millis(1))), 0);
        assert_eq!(c.wait_events(1, None), 1);
    }

    #[test]
    fn a_waiting_vcpu_wakes_on_an_event_and_the_first_outcome_wins() {
        let c = Arc::new(Control::new(1, Arc::default()));
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || c.wait_events(0, None))
        };
        c.post(4);
        assert_eq!(waiter.join().unwrap(), 4);
        c.finish(Outcome::Exited(3));
        c.finish(Outcome::Exited(5));
        let seen = Snapshot::default();
        assert_eq!(c.watch(&seen, None).outcome, Some(Outcome::Exited(3)));
    }

    #[test]
    fn the_end_of_the_run_releases_waiting_vcpus_and_watchers() {
        let c = Arc::new(Control::new(2, Arc::default()));
        assert!(!c.wait_end(Instant::now() + Duration::from_millis(1)));
        let waiters: Vec<_> = (0..2)
            .map(|vcpu| {
                let c = c.clone();
                std::thread::spawn(move || c.wait_events(vcpu, None))
            })
            .collect();
        let watcher = {
            let c = c.clone();
            std::thread::spawn(move || c.wait_end(Instant::now() + Duration::from_secs(60)))
        };
        c.post(4); // one of them may take it first: either way every waiter returns
        c.finish(Outcome::Unhealthy("no answer".into()));
        for waiter in waiters {
            let events = waiter.join().unwrap();
            assert!(events == 0 || events == 4);
        }
        assert!(watcher.join().unwrap());
        assert_eq!(c.wait_events(0, None), 0, "no events once the run has ended");
    }
}
