//! Running a VM: the vCPU threads, the watch over the guest (ready, stop requests, deadlines),
//! and the end of a run, which stops every vCPU (even one that never leaves guest code) and the
//! devices, and gives the devices back for another boot.

use super::control::{self, Control};
use super::{Outcome, Vm, VmmError, hypercall, kick, memory, snapshot, vcpu};
use crate::output::{Level, Log};
use kvm_ioctls::VmFd;
use spacecore_abi::hypercall::events;
use spacecore_abi::layout as l;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm_memory::GuestAddress;

/// How to supervise a run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Stop the guest as soon as it is ready.
    pub until_ready: bool,
    /// Longest wait for ready before giving up (`None`: no limit).
    pub ready_timeout: Option<Duration>,
    /// How long a stopping guest may take to exit before it is stopped.
    pub stop_timeout: Duration,
}

/// What the supervisor saw.
pub struct RunReport {
    /// How the run ended.
    pub outcome: Outcome,
    /// When the launcher saw the run end.
    pub ended_at: Instant,
    /// Whether a stop was requested (a signal, or `until_ready`) before the run ended.
    pub stop_requested: bool,
    /// Guest memory resident in host RAM at the end (the image's pages shared from its file
    /// included, where they are in the page cache).
    pub guest_resident_bytes: u64,
    /// Bytes of the image mapped from its file, shared with every guest of that file.
    pub image_shared_bytes: u64,
    /// The devices, stopped and ready for another boot, in window order.
    pub devices: Vec<Box<dyn crate::devices::VirtioDevice>>,
    /// In a boot that saves a snapshot: what was saved, or why nothing was.
    pub saved: Option<Result<snapshot::Saved, String>>,
}

impl std::fmt::Debug for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunReport")
            .field("outcome", &self.outcome)
            .field("stop_requested", &self.stop_requested)
            .field("guest_resident_bytes", &self.guest_resident_bytes)
            .field("image_shared_bytes", &self.image_shared_bytes)
            .field("devices", &self.devices.len())
            .finish()
    }
}

/// A handle on a VM's run for the launcher's watchers (the health checks): they can wait for
/// the run to end, see whether the guest is ready, and end the run.
#[derive(Debug, Clone)]
pub struct RunHandle {
    control: Arc<Control>,
}

impl RunHandle {
    /// Blocks until the run ends (true) or `deadline` passes (false).
    pub fn wait_end(&self, deadline: Instant) -> bool {
        self.control.wait_end(deadline)
    }

    /// Whether the guest has signalled ready.
    pub fn is_ready(&self) -> bool {
        self.control.is_ready()
    }

    /// Ends the run with `outcome` (unless it already has one); the guest is stopped.
    pub fn end(&self, outcome: Outcome) {
        self.control.finish(outcome);
    }

    /// Asks the guest to stop cleanly, as SIGTERM does (the `STOP` event: it finishes its task
    /// and flushes its disk, then exits), without stopping the launcher: a rolling update
    /// (`crate::update`) boots another image after it.
    pub fn request_stop(&self) {
        self.control.request_stop();
    }

    /// A handle on a run with no VM behind it, for tests of watchers.
    #[cfg(test)]
    pub fn for_tests(vcpus: u32) -> Self {
        RunHandle { control: Arc::new(Control::new(vcpus, Arc::default())) }
    }

    /// The run's outcome, if it has one.
    #[cfg(test)]
    pub fn outcome(&self) -> Option<Outcome> {
        self.control.watch(&control::Snapshot::default(), Some(Instant::now())).outcome
    }

    /// Marks the guest ready.
    #[cfg(test)]
    pub fn set_ready(&self) {
        self.control.set_ready(Instant::now());
    }
}

impl Vm {
    /// A handle on this VM's run, for watchers started before [`Vm::run`].
    pub fn handle(&self) -> RunHandle {
        RunHandle { control: self.control.clone() }
    }

    /// Starts the vCPUs and watches the guest until it ends, then stops the vCPUs (even one
    /// running guest code that never exits) and the devices, and gives the devices back.
    /// `stop` is raised by the signal handler (SIGTERM/SIGINT) and asks the guest to stop
    /// cleanly; `on_ready` is called when the guest signals ready.
    pub fn run(
        self,
        log: &Log,
        started: Instant,
        options: RunOptions,
        stop: &StopSignal,
        on_ready: impl FnOnce(Instant),
    ) -> Result<RunReport, VmmError> {
        let Vm { vcpus, bus, control, late, passwords, point, save, vm, memory, image_shared_bytes, entry } =
            self;
        let vcpu_count = vcpus.len() as u32;
        kick::install();
        stop.attach(control.clone());
        let mut threads = Vec::with_capacity(vcpus.len());
        for (index, fd) in vcpus.into_iter().enumerate() {
            let (theirs, memory, log) = (control.clone(), memory.clone(), log.clone());
            let (bus, late, passwords, point) = (bus.clone(), late.clone(), passwords.clone(), point.clone());
            let index = index as u32;
            let builder = std::thread::Builder::new().name(format!("vcpu{index}"));
            let spawned = crate::jail::spawn(crate::jail::Kind::Vcpu, builder, move || {
                let ctx = hypercall::Context {
                    vcpu: index,
                    mem: &memory,
                    control: &theirs,
                    log: &log,
                    bus: &bus,
                    late: &late,
                    passwords: &passwords,
                    point: &point,
                };
                vcpu::run(fd, &ctx);
            });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    control.finish(Outcome::KvmError(format!("cannot start vCPU {index}")));
                    kick::end_threads(threads);
                    return Err(VmmError::Thread(format!("vcpu{index}"), e));
                }
            }
        }
        let mut late_thread = None;
        let watched = supervise(&control, log, started, options, &memory, |log: &Log, at: Instant| {
            late_thread = Some(register_late_memory(vm.clone(), memory.clone(), log.clone())?);
            on_ready(at);
            Ok(())
        });
        // However the watch ended, the run has an outcome now: the vCPU threads return.
        let (outcome, stop_requested) = match &watched {
            Ok(watched) => watched.clone(),
            Err(e) => (Outcome::KvmError(e.to_string()), false),
        };
        control.finish(outcome.clone());
        let ended_at = Instant::now();
        kick::end_threads(threads);
        if let Some(thread) = late_thread {
            let _ = thread.join();
        }
        watched?;
        let guest_resident_bytes = memory::resident_bytes(&memory);
        let bus = Arc::into_inner(bus).ok_or_else(|| VmmError::Device("a device is still in use".into()))?;
        let (devices, saved) = match save {
            None => (bus.into_devices(), None),
            Some(mut target) => {
                let (windows, devices) = bus.into_saved();
                let saved = snapshot::finish(&mut target, &point, windows, &memory, (entry, vcpu_count))
                    .map_err(|why| format!("{why} ({})", outcome.describe()));
                (devices, Some(saved))
            }
        };
        // The VM goes before the memory it maps.
        drop((late, passwords, control, vm));
        Ok(RunReport {
            outcome,
            ended_at,
            stop_requested,
            guest_resident_bytes,
            image_shared_bytes,
            devices,
            saved,
        })
    }
}

/// Registers guest memory above the boot slot on a thread of its own. It runs once the guest
/// is ready: registering a slot while vCPUs run stalls them (KVM on PVM re-faults the guest's
/// pages), which costs less on an idle guest than in the middle of its boot. If it fails the
/// guest still runs: its accesses there stay emulated, slowly.
fn register_late_memory(
    vm: Arc<VmFd>,
    memory: Arc<memory::Memory>,
    log: Log,
) -> Result<std::thread::JoinHandle<()>, VmmError> {
    std::thread::Builder::new()
        .name("memory".into())
        .spawn(move || {
            if let Err(e) = memory::register_late(&vm, &memory) {
                log.launcher(format_args!("{e}: guest memory above 128 MiB stays emulated (slow)"));
            }
        })
        .map_err(|e| VmmError::Thread("memory".into(), e))
}

/// Watches the run: logs ready (and then calls `on_ready`), turns a stop request into a STOP
/// event with a deadline. Returns the outcome and whether a stop was requested.
fn supervise(
    control: &Control,
    log: &Log,
    started: Instant,
    options: RunOptions,
    memory: &memory::Memory,
    on_ready: impl FnOnce(&Log, Instant) -> Result<(), VmmError>,
) -> Result<(Outcome, bool), VmmError> {
    let mut on_ready = Some(on_ready);
    let ready_deadline = options.ready_timeout.map(|t| started + t);
    let mut seen = control::Snapshot::default();
    let mut stop_deadline = None;
    loop {
        let deadline = stop_deadline.or(if seen.ready_at.is_none() { ready_deadline } else { None });
        let now = control.watch(&seen, deadline);
        if let Some(outcome) = now.outcome.clone() {
            return Ok((outcome, now.stop_requested.is_some()));
        }
        if let (None, Some(at)) = (seen.ready_at, now.ready_at) {
            let us = at.duration_since(started).as_micros();
            log.event(
                Level::Info,
                format_args!("ready in {us} us"),
                &[("event", "ready".into()), ("ready_us", (us as u64).into())],
            );
            if let Some(f) = on_ready.take() {
                f(log, at)?;
            }
            if options.until_ready {
                control.request_stop();
            }
        }
        if let (None, Some(at)) = (seen.stop_requested, now.stop_requested) {
            raise_in_memory(memory, events::STOP);
            control.post(events::STOP);
            stop_deadline = Some(at + options.stop_timeout);
        }
        seen = now;
        let now = Instant::now();
        if stop_deadline.is_some_and(|d| now >= d) {
            return Ok((Outcome::Stopped, true));
        }
        if seen.ready_at.is_none() && stop_deadline.is_none() && ready_deadline.is_some_and(|d| now >= d) {
            return Ok((Outcome::NotReady(options.ready_timeout.unwrap_or_default()), false));
        }
    }
}

/// Sets `events` in the guest's event word (`EVENT_WORD_ADDR`), which a busy guest polls.
/// Only the supervisor thread writes it.
fn raise_in_memory(memory: &memory::Memory, events: u64) {
    use vm_memory::Bytes;
    let at = GuestAddress(l::EVENT_WORD_ADDR);
    let word: u64 = memory.read_obj(at).unwrap_or(0);
    // The word lies in the launcher's own region, always mapped: the write cannot fail.
    let _ = memory.write_obj(word | events, at);
}

/// Lets a signal handler ask the running guest to stop, and the supervisor know it was asked.
#[derive(Debug, Default)]
pub struct StopSignal {
    inner: std::sync::Mutex<(bool, Option<Arc<Control>>)>,
    raised: std::sync::Condvar,
}

impl StopSignal {
    /// Asks the guest to stop (now if running, at start otherwise).
    pub fn raise(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0 = true;
        if let Some(control) = &inner.1 {
            control.request_stop();
        }
        self.raised.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_raised(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Waits up to `timeout` for a stop request; true if there is one.
    pub fn wait(&self, timeout: Duration) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (inner, _) =
            self.raised.wait_timeout_while(inner, timeout, |i| !i.0).unwrap_or_else(|p| p.into_inner());
        inner.0
    }

    fn attach(&self, control: Arc<Control>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.0 {
            control.request_stop();
        }
        inner.1 = Some(control);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn a_stop_request_wakes_a_waiting_supervisor() {
        let stop = Arc::new(StopSignal::default());
        assert!(!stop.wait(Duration::from_millis(1)));
        let raiser = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                stop.raise();
            })
        };
        let began = Instant::now();
        assert!(stop.wait(Duration::from_secs(60)));
        assert!(began.elapsed() < Duration::from_secs(30));
        assert!(stop.is_raised());
        raiser.join().unwrap();
    }

    #[test]
    fn raised_events_accumulate_in_the_event_word() {
        let mem = memory::map(4 << 20).unwrap();
        raise_in_memory(&mem, events::STOP);
        raise_in_memory(&mem, 1 << 5);
        let word: u64 = mem.read_obj(GuestAddress(l::EVENT_WORD_ADDR)).unwrap();
        assert_eq!(word, events::STOP | 1 << 5);
    }
}
