//! The virtio-net worker: epoll on the backend, both queue events, the rate timer and the stop
//! event; runs [`Engine`] passes and wakes the guest once per batch.
//!
//! The backend's fd is polled only while the guest has receive buffers and ingress is not
//! throttled: without buffers the worker waits for the RX queue event instead of spinning on a
//! readable tap, and while throttled frames wait in the tap's queue.

use super::engine::{Engine, RxStop};
use crate::devices::worker::{Poller, STOP_TOKEN};
use crate::devices::{Notifier, bump};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vmm_sys_util::epoll::EpollEvent;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

/// Epoll token of the backend's fd.
pub(crate) const TAP: u64 = 0;
/// Epoll token of the RX queue event.
pub(crate) const RX_QUEUE: u64 = 1;
/// Epoll token of the TX queue event.
pub(crate) const TX_QUEUE: u64 = 2;
/// Epoll token of the rate-limit timer.
pub(crate) const TIMER: u64 = 3;

/// The worker's own fds (the poller already watches them).
#[derive(Debug)]
pub(crate) struct Events {
    pub rx: EventFd,
    pub tx: EventFd,
    pub timer: TimerFd,
}

/// What the loop remembers between waits.
#[derive(Debug, Default)]
struct State {
    rx_due: bool,
    tx_due: bool,
    /// The guest had no receive buffers at the last look.
    rx_no_buffers: bool,
    rx_until: Option<Instant>,
    tx_until: Option<Instant>,
    armed: Option<Instant>,
    tap_polled: bool,
}

/// Runs until the stop event; returns the engine (and so the backend).
pub(crate) fn run(mut engine: Engine, poller: &Poller, mut events: Events, notifier: &Notifier) -> Engine {
    let counters = Arc::clone(engine.counters());
    let tap_fd = engine.backend_fd();
    let mut st = State { rx_due: true, tx_due: true, tap_polled: true, ..State::default() };
    let mut ready = [EpollEvent::default(); 8];
    loop {
        serve(&mut engine, &mut st, notifier);
        let want_tap = !st.rx_no_buffers && st.rx_until.is_none();
        if want_tap != st.tap_polled && poller.set_interest(tap_fd, TAP, want_tap).is_ok() {
            st.tap_polled = want_tap;
        }
        arm(&mut events.timer, &mut st);
        let Ok(n) = poller.wait(&mut ready) else {
            bump(&counters.errors, 1);
            return engine;
        };
        for ev in &ready[..n] {
            match ev.data() {
                STOP_TOKEN => return engine,
                TAP => st.rx_due = true,
                RX_QUEUE => {
                    let _ = events.rx.read();
                    st.rx_no_buffers = false;
                    st.rx_due = true;
                }
                TX_QUEUE => {
                    let _ = events.tx.read();
                    st.tx_due = true;
                }
                TIMER => {
                    let _ = events.timer.wait();
                    st.armed = None;
                    let now = Instant::now();
                    if st.rx_until.is_some_and(|t| t <= now) {
                        st.rx_until = None;
                        st.rx_due = true;
                    }
                    if st.tx_until.is_some_and(|t| t <= now) {
                        st.tx_until = None;
                        st.tx_due = true;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Runs the passes that are due and not throttled; wakes the guest if anything was used.
fn serve(engine: &mut Engine, st: &mut State, notifier: &Notifier) {
    let now = Instant::now();
    let mut used = 0;
    if st.tx_due && st.tx_until.is_none() {
        st.tx_due = false;
        let (n, wait) = engine.tx(now);
        used += n;
        st.tx_until = wait.map(|w| later(now, w));
    }
    if st.rx_due && st.rx_until.is_none() {
        st.rx_due = false;
        loop {
            let (n, stop) = engine.rx(now);
            used += n;
            match stop {
                RxStop::Batch => {
                    notifier();
                    used = 0;
                    continue;
                }
                RxStop::Drained => st.rx_no_buffers = false,
                RxStop::NoBuffers => st.rx_no_buffers = true,
                RxStop::Throttled(w) => st.rx_until = Some(later(now, w)),
            }
            break;
        }
    }
    if used > 0 {
        notifier();
    }
}

/// `now + wait`, capped at a day (a limit of a few bits per second can ask for centuries).
fn later(now: Instant, wait: Duration) -> Instant {
    now + wait.min(Duration::from_secs(24 * 3600))
}

/// Arms the timer for the earliest throttle deadline, if it is not armed for it already.
fn arm(timer: &mut TimerFd, st: &mut State) {
    let deadline = match (st.rx_until, st.tx_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let Some(deadline) = deadline else { return };
    if st.armed == Some(deadline) {
        return;
    }
    // A zero duration would disarm the timer.
    let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_micros(1));
    if timer.reset(wait, None).is_ok() {
        st.armed = Some(deadline);
    }
}
