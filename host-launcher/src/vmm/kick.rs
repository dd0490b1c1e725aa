//! Ending vCPU threads that are running guest code.
//!
//! A vCPU thread leaves `KVM_RUN` only on a VM exit. A guest busy in ring 3 (a hung guest that
//! makes no hypercall) may never exit on its own, so the launcher interrupts the thread with a
//! signal: `KVM_RUN` returns `EINTR`, the thread sees that the run has ended and returns. The
//! signal has a handler that does nothing (its only effect is the interruption). A signal that
//! lands just before the thread enters `KVM_RUN` is lost, so the kick is repeated until the
//! thread has returned.

use std::sync::Once;
use std::thread::JoinHandle;
use std::time::Duration;

/// Time between kicks of a vCPU thread that has not returned yet.
const KICK_INTERVAL: Duration = Duration::from_micros(200);

/// The signal that interrupts vCPU threads: the first real-time signal the C library leaves
/// to programs.
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn interrupt_only(_: libc::c_int) {}

/// Installs the do-nothing handler, once per process, before any vCPU thread can be kicked.
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid "no flags, empty mask" value; the handler is
        // an `extern "C" fn(c_int)` that touches nothing, so it is async-signal-safe. Without
        // SA_RESTART an interrupted KVM_RUN returns EINTR, which the vCPU loop expects.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = interrupt_only as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(kick_signal(), &action, std::ptr::null_mut());
        }
    });
}

/// Interrupts each thread until it has returned, then joins it. The run must already have an
/// outcome, so that an interrupted vCPU thread returns instead of entering the guest again.
pub fn end_threads(threads: Vec<JoinHandle<()>>) {
    use std::os::unix::thread::JoinHandleExt;
    for thread in threads {
        while !thread.is_finished() {
            // SAFETY: the thread has not been joined, so its pthread_t is valid; the signal has
            // the do-nothing handler installed by `install` (called before any vCPU starts).
            unsafe { libc::pthread_kill(thread.as_pthread_t(), kick_signal()) };
            std::thread::sleep(KICK_INTERVAL);
        }
        // A vCPU thread that panicked has nothing more to report: the outcome is set.
        let _ = thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_thread_blocked_in_a_system_call_is_interrupted_and_joined() {
        install();
        let ended = Arc::new(AtomicBool::new(false));
        let theirs = ended.clone();
        // Blocks in read(2) on a pipe nobody writes, as a vCPU blocks in KVM_RUN; each kick
        // interrupts it (EINTR) and it checks whether the run has ended.
        let thread = std::thread::spawn(move || {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let mut byte = 0u8;
            while !theirs.load(Ordering::Acquire) {
                // SAFETY: reads at most one byte into `byte`, which lives on this stack.
                unsafe { libc::read(fds[0], (&raw mut byte).cast(), 1) };
            }
            // SAFETY: both descriptors were opened above and are closed once.
            unsafe { (libc::close(fds[0]), libc::close(fds[1])) };
        });
        std::thread::sleep(Duration::from_millis(20));
        ended.store(true, Ordering::Release);
        end_threads(vec![thread]);
    }
}
