//! A private network namespace per spacecore.
//!
//! The guest's tap lives in a namespace of its own that holds nothing else: the guest can reach
//! the tap's host-side address and nothing more, and two spacecores can never reach each other
//! or collide on addresses. The namespace has no name and no mount: it disappears when the last
//! file descriptor or thread in it goes, so a killed launcher leaves nothing behind.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Why a namespace could not be made or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `unshare(CLONE_NEWNET)` failed (needs CAP_SYS_ADMIN).
    #[error("cannot create a network namespace (are you root?): {0}")]
    Create(std::io::Error),
    /// `setns` failed.
    #[error("cannot enter the spacecore's network namespace: {0}")]
    Enter(std::io::Error),
    /// The helper thread died.
    #[error("the network namespace thread failed")]
    Thread,
}

/// A handle to a private network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: File,
}

impl Netns {
    /// Creates a new, empty network namespace.
    pub fn create() -> Result<Self, NetnsError> {
        // unshare() moves only the calling thread, so do it on a short-lived thread and keep
        // a file descriptor to the namespace.
        std::thread::spawn(|| {
            // SAFETY: unshare has no memory-safety preconditions; it affects this thread only.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(NetnsError::Create(std::io::Error::last_os_error()));
            }
            let fd = File::open("/proc/thread-self/ns/net").map_err(NetnsError::Create)?;
            Ok(Netns { fd })
        })
        .join()
        .map_err(|_| NetnsError::Thread)?
    }

    /// A handle to the calling thread's own namespace.
    pub fn current() -> Result<Self, NetnsError> {
        let fd = File::open("/proc/thread-self/ns/net").map_err(NetnsError::Enter)?;
        Ok(Netns { fd })
    }

    /// Moves the calling thread into the namespace. Sockets and taps it creates afterwards
    /// belong to the namespace; those it had keep theirs.
    pub fn enter(&self) -> Result<(), NetnsError> {
        // SAFETY: `fd` is an open namespace file descriptor; setns affects only this thread.
        if unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(NetnsError::Enter(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Runs `f` on a thread inside the namespace and returns its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter()?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetnsError::Thread)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interfaces() -> Vec<String> {
        std::fs::read_dir("/sys/class/net")
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_new_namespace_holds_only_loopback() {
        let ns = match Netns::create() {
            Ok(ns) => ns,
            Err(e) => {
                test_support::skip(
                    "a_new_namespace_holds_only_loopback",
                    &format!("no network namespace: {e}"),
                );
                return;
            }
        };
        // /sys/class/net shows the namespace of the mount, so look through /proc instead.
        let inside =
            ns.run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default()).unwrap();
        let names: Vec<&str> =
            inside.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
        assert_eq!(names, ["lo"], "{inside}");
        assert!(!interfaces().is_empty());
    }
}
