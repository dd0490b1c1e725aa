//! What the device workers share: the thread handle, epoll, and draining a queue.

use super::DeviceError;
use crate::vmm::memory::Memory;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

/// A device's worker thread; it owns the device's backend (`B`) and gives it back when stopped.
#[derive(Debug)]
pub(crate) struct Worker<B> {
    stop: EventFd,
    thread: Option<JoinHandle<Option<B>>>,
}

/// The token under which a worker's [`Poller`] reports that the worker must return.
pub(crate) const STOP_TOKEN: u64 = u64::MAX;

type Slot<B> = Arc<Mutex<Option<B>>>;

fn take<B>(slot: &Slot<B>) -> Option<B> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
}

impl<B: Send + 'static> Worker<B> {
    /// Starts `body(poller, backend)` on a thread called `name`. `poller` gets the worker's stop
    /// event, reported as [`STOP_TOKEN`]; `body` must then return the backend. If the worker
    /// cannot start, the backend comes back with the error.
    pub fn spawn(
        device: &str,
        name: &str,
        poller: Poller,
        backend: B,
        body: impl FnOnce(Poller, B) -> B + Send + 'static,
    ) -> Result<Self, (DeviceError, Option<B>)> {
        let stop = match EventFd::new(libc::EFD_NONBLOCK) {
            Ok(stop) => stop,
            Err(source) => {
                let what = "the stop event";
                return Err((DeviceError::Setup { device: device.to_owned(), what, source }, Some(backend)));
            }
        };
        if let Err(e) = poller.add(device, stop.as_raw_fd(), STOP_TOKEN) {
            return Err((e, Some(backend)));
        }
        // Handed over through a slot so that a thread that never starts does not take the
        // backend down with it.
        let slot: Slot<B> = Arc::new(Mutex::new(Some(backend)));
        let theirs = slot.clone();
        let builder = std::thread::Builder::new().name(name.to_owned());
        let spawned = crate::jail::spawn(crate::jail::Kind::Device, builder, move || {
            let backend = take(&theirs)?;
            Some(body(poller, backend))
        });
        match spawned {
            Ok(thread) => Ok(Worker { stop, thread: Some(thread) }),
            Err(source) => {
                // The thread did not start, so the slot is still full.
                Err((DeviceError::Thread { device: device.to_owned(), source }, take(&slot)))
            }
        }
    }

    /// Asks the worker to return and waits for it; the backend, or `None` if the worker
    /// panicked.
    pub fn stop(mut self) -> Option<B> {
        let thread = self.thread.take()?;
        // A failed write leaves the worker running; join would hang, so give up on it instead.
        if self.stop.write(1).is_err() {
            return None;
        }
        thread.join().ok().flatten()
    }
}

impl<B> Drop for Worker<B> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take()
            && self.stop.write(1).is_ok()
        {
            let _ = thread.join();
        }
    }
}

/// Epoll over a worker's file descriptors, each identified by a token.
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: Epoll,
}

impl Poller {
    /// A new, empty epoll instance.
    pub fn new(device: &str) -> Result<Self, DeviceError> {
        let epoll = Epoll::new().map_err(|source| DeviceError::Setup {
            device: device.to_owned(),
            what: "epoll",
            source,
        })?;
        Ok(Poller { epoll })
    }

    /// Watches `fd` for input, reported as `token`.
    pub fn add(&self, device: &str, fd: RawFd, token: u64) -> Result<(), DeviceError> {
        self.epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, token)).map_err(|source| {
            DeviceError::Setup { device: device.to_owned(), what: "epoll registration", source }
        })
    }

    /// Stops (`on == false`) or resumes watching an added `fd`. A stopped fd is removed from the
    /// epoll set, because epoll reports errors and hang-ups even of fds with no events asked for.
    pub fn set_interest(&self, fd: RawFd, token: u64, on: bool) -> std::io::Result<()> {
        let op = if on { ControlOperation::Add } else { ControlOperation::Delete };
        self.epoll.ctl(op, fd, EpollEvent::new(EventSet::IN, token))
    }

    /// Waits for events; the tokens of the ready fds are in `events[..n]`. An interrupted wait
    /// returns 0.
    pub fn wait(&self, events: &mut [EpollEvent]) -> std::io::Result<usize> {
        match self.epoll.wait(-1, events) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(0),
            other => other,
        }
    }
}

/// A timer for a worker's rate limits, whose reads never block (a read after a re-arm must not
/// hang the worker).
pub(crate) fn rate_timer(device: &str) -> Result<TimerFd, DeviceError> {
    let setup =
        |source| DeviceError::Setup { device: device.to_owned(), what: "the rate-limit timer", source };
    let timer = TimerFd::new().map_err(|e| setup(std::io::Error::from_raw_os_error(e.errno())))?;
    let fd = timer.as_raw_fd();
    // SAFETY: fcntl on an fd this process owns; F_GETFL/F_SETFL touch only its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(setup(std::io::Error::last_os_error()));
    }
    Ok(timer)
}

/// What [`drain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Chains put on the used ring.
    pub used: usize,
    /// `may_take` said no: chains may be left on the ring, and driver notifications stay off,
    /// so the caller must drain again later (on a timer) rather than wait for the driver.
    pub paused: bool,
}

/// Gives every chain the driver has made available on `queue` to `handle`, which processes it
/// and returns the number of bytes it wrote to guest memory; the chain then goes on the used
/// ring. Before each chain `may_take` is asked whether one may be taken now (a rate limit); when
/// it says no, draining stops there.
///
/// Driver notifications are suppressed while the queue is being drained and re-enabled at the
/// end, with a last look at the ring so that a chain added meanwhile is not missed.
pub(crate) fn drain(
    queue: &mut Queue,
    mem: &Memory,
    mut may_take: impl FnMut() -> bool,
    mut handle: impl FnMut(DescriptorChain<&Memory>) -> u32,
) -> Result<Drained, virtio_queue::Error> {
    let mut used = 0;
    let mut idle_passes = 0;
    loop {
        queue.disable_notification(mem)?;
        let mut this_pass = 0;
        loop {
            if !may_take() {
                return Ok(Drained { used: used + this_pass, paused: true });
            }
            let Some(chain) = queue.iter(mem)?.next() else { break };
            let head = chain.head_index();
            let len = handle(chain);
            // A head past the ring cannot be returned; `handle` has counted the bad chain.
            if head < queue.size() {
                queue.add_used(mem, head, len)?;
                this_pass += 1;
            }
        }
        used += this_pass;
        // A ring that keeps claiming chains it cannot give (guest memory trouble) must not spin.
        idle_passes = if this_pass == 0 { idle_passes + 1 } else { 0 };
        if !queue.enable_notification(mem)? || idle_passes >= 2 {
            return Ok(Drained { used, paused: false });
        }
    }
}
