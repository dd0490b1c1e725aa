//! The VMM: one boot recipe that reads top to bottom (KVM, VM, memory, image, tables, vCPUs,
//! boot information), then [`Vm::run`], which starts the vCPUs and watches the guest until it
//! exits, crashes or is stopped.

mod boot_info;
mod bus;
mod control;
mod fault;
mod hypercall;
pub mod memory;
mod tables;
mod vcpu;

use crate::output::Log;
use control::Control;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use linux_loader::loader::{KernelLoader, elf::Elf};
use spacecore_abi::boot::{BootInfo, MAX_DEVICES};
use spacecore_abi::exit;
use spacecore_abi::hypercall::events;
use spacecore_abi::layout as l;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};
use vm_memory::GuestAddress;

/// Why the launcher could not build or run the VM. Guest misbehaviour is an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// `/dev/kvm` cannot be opened.
    #[error("cannot open /dev/kvm: {0}")]
    OpenKvm(String),
    /// A KVM ioctl on the VM failed.
    #[error("KVM {0} failed: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
    /// Memory size outside what the launcher supports.
    #[error("guest memory of {0} bytes is outside the supported range ({min} to {max} bytes)", min = l::MIN_MEMORY, max = l::MAX_MEMORY)]
    MemorySize(u64),
    /// Mapping guest memory failed.
    #[error("cannot map {0} bytes of guest memory: {1}")]
    MapMemory(u64, String),
    /// `KVM_SET_USER_MEMORY_REGION` failed.
    #[error("KVM cannot register guest memory: {0}")]
    RegisterMemory(kvm_ioctls::Error),
    /// The image could not be loaded.
    #[error("cannot load image {path}: {reason}")]
    LoadImage { path: String, reason: String },
    /// Writing a boot structure into guest memory failed.
    #[error("cannot write boot data at guest address {0:#x}: {1}")]
    WriteBootData(u64, String),
    /// The command line is not acceptable.
    #[error("bad kernel command line: {0}")]
    Cmdline(String),
    /// A vCPU ioctl failed.
    #[error("vCPU {0}: {1} failed: {2}")]
    VcpuSetup(u32, &'static str, kvm_ioctls::Error),
    /// More vCPUs than the layout has room for.
    #[error("{0} vCPUs requested; this launcher supports at most {max}", max = l::MAX_VCPUS)]
    TooManyVcpus(u32),
    /// More devices than there are windows.
    #[error("{0} devices requested; the layout has room for {max}", max = spacecore_abi::boot::MAX_DEVICES)]
    TooManyDevices(usize),
    /// A device could not be wired to the VM.
    #[error("cannot attach a device: {0}")]
    Device(String),
    /// A thread could not be started.
    #[error("cannot start thread {0}: {1}")]
    Thread(String, std::io::Error),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest exited with this status.
    Exited(u8),
    /// A stop was requested and the guest did not exit in time; it was stopped.
    Stopped,
    /// The guest did not signal ready in time.
    NotReady(Duration),
    /// The guest panicked with this message.
    Panicked(String),
    /// The guest took a CPU exception; the crash report.
    Fault(String),
    /// The guest broke the hypercall ABI.
    AbiViolation(String),
    /// KVM could not run the guest any further.
    KvmError(String),
}

impl Outcome {
    /// The launcher's exit status for this outcome (see `spacecore_abi::exit`).
    pub fn exit_status(&self) -> u8 {
        match self {
            Outcome::Exited(status) => *status,
            Outcome::Stopped => 0,
            Outcome::NotReady(_) => exit::GUEST_NOT_READY,
            Outcome::Panicked(_) => exit::GUEST_PANIC,
            Outcome::Fault(_) => exit::GUEST_FAULT,
            Outcome::AbiViolation(_) => exit::GUEST_ABI_VIOLATION,
            Outcome::KvmError(_) => exit::GUEST_KVM_ERROR,
        }
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Exited(status) => format!("guest exited with status {status}"),
            Outcome::Stopped => "guest did not stop in time; it was stopped".into(),
            Outcome::NotReady(limit) => format!("guest not ready within {} ms", limit.as_millis()),
            Outcome::Panicked(message) => format!("guest panicked: {message}"),
            Outcome::Fault(report) => format!("guest crashed: {report}"),
            Outcome::AbiViolation(what) => format!("guest broke the hypercall ABI: {what}"),
            Outcome::KvmError(what) => format!("KVM cannot run the guest: {what}"),
        }
    }
}

/// What the launcher needs to boot a spacecore, beyond its plan.
#[derive(Debug, Clone)]
pub struct BootConfig<'a> {
    /// Name, for the log.
    pub name: &'a str,
    /// vCPUs to create and run.
    pub vcpus: u32,
    /// Bytes of guest memory.
    pub memory_bytes: u64,
    /// The ELF image.
    pub image: &'a Path,
    /// Kernel command line.
    pub cmdline: &'a str,
    /// When the launcher process started, and the host TSC then.
    pub started: (Instant, u64),
    /// The operator keystore's password, which the guest may take once per boot
    /// (`KeystorePassword` hypercall); kept across boots.
    pub keystore_password: Option<Arc<crate::keystore_password::KeystorePassword>>,
}

/// A VM ready to run.
#[derive(Debug)]
pub struct Vm {
    // Field order is drop order: vCPUs, devices and the VM go before the memory they map.
    vcpus: Vec<VcpuFd>,
    bus: Arc<bus::Bus>,
    control: Arc<Control>,
    late: Arc<memory::LateMemory>,
    password: Arc<hypercall::PasswordHandover>,
    vm: Arc<VmFd>,
    memory: Arc<memory::Memory>,
}

/// A VM and its registered memory: the first half of the boot recipe, which needs nothing
/// from the spec's devices, so the launcher sets those up alongside it.
#[derive(Debug)]
pub struct Shell {
    kvm: Kvm,
    vm: Arc<VmFd>,
    memory: Arc<memory::Memory>,
}

/// Opens KVM, creates the VM, maps and registers `memory_bytes` of guest memory.
pub fn create(memory_bytes: u64) -> Result<Shell, VmmError> {
    let kvm = open_kvm()?;
    let vm = kvm.create_vm().map_err(|e| VmmError::Kvm("KVM_CREATE_VM", e))?;
    let memory = Arc::new(memory::map(memory_bytes)?);
    // Only the first 128 MiB now; the rest is registered while the guest boots (`Vm::run`).
    memory::register(&vm, &memory)?;
    Ok(Shell { kvm, vm: Arc::new(vm), memory })
}

impl Shell {
    /// The rest of the boot recipe, up to the first guest instruction: the devices get the
    /// device windows in order, then the image, the tables, the vCPUs and the boot information.
    pub fn boot(
        self,
        config: &BootConfig,
        mut image: std::fs::File,
        devices: Vec<Box<dyn crate::devices::VirtioDevice>>,
    ) -> Result<Vm, VmmError> {
        let Shell { kvm, vm, memory } = self;
        if config.vcpus == 0 || config.vcpus > l::MAX_VCPUS {
            return Err(VmmError::TooManyVcpus(config.vcpus));
        }
        if memory_end(&memory) != config.memory_bytes {
            return Err(VmmError::MemorySize(config.memory_bytes));
        }
        let control = Arc::new(Control::new(config.vcpus));
        let bus = Arc::new(bus::Bus::new(devices, &memory, device_notifier(&control))?);
        bus.register_ioeventfds(&vm)?;
        let vcpus = prepare(config, &kvm, &vm, &memory, &mut image, &bus)?;
        let late = Arc::new(memory::LateMemory::new(config.memory_bytes));
        // Per boot: a new boot may take the password again.
        let password = Arc::new(hypercall::PasswordHandover::new(config.keystore_password.clone()));
        Ok(Vm { vcpus, bus, control, late, password, vm, memory })
    }
}

/// How a device wakes the guest: the DEVICE event, for vCPU 0 only (it drives the devices;
/// waking the others would cost each an exit for nothing).
fn device_notifier(control: &Arc<Control>) -> crate::devices::Notifier {
    let control = control.clone();
    Arc::new(move || control.post_to(0, events::DEVICE))
}

/// Image, tables, vCPUs and boot information: every step that only writes guest memory
/// through the launcher's own mapping.
fn prepare(
    config: &BootConfig,
    kvm: &Kvm,
    vm: &VmFd,
    memory: &memory::Memory,
    image: &mut std::fs::File,
    bus: &bus::Bus,
) -> Result<Vec<VcpuFd>, VmmError> {
    let entry = load_image(memory, image, config.image)?;
    tables::write_all(memory, config.memory_bytes, config.vcpus)?;
    let cpuid = vcpu::supported_cpuid(kvm)?;
    let vcpus = (0..config.vcpus)
        .map(|i| vcpu::create(vm, &cpuid, i, config.vcpus, entry))
        .collect::<Result<Vec<_>, _>>()?;
    let info = BootInfo { devices: bus.device_infos(), ..boot_facts(config, &vcpus[0])? };
    boot_info::write(memory, &info, config.cmdline)?;
    Ok(vcpus)
}

fn open_kvm() -> Result<Kvm, VmmError> {
    Kvm::new().map_err(|e| {
        VmmError::OpenKvm(match e.errno() {
            libc::ENOENT => "no such device: KVM is not available on this host".into(),
            libc::EACCES => "permission denied: run as root or as a member of the kvm group".into(),
            _ => e.to_string(),
        })
    })
}

/// Loads the ELF image at its link address and checks it stays clear of the launcher's regions.
fn load_image(memory: &memory::Memory, image: &mut std::fs::File, path: &Path) -> Result<u64, VmmError> {
    let fail = |reason: String| VmmError::LoadImage { path: path.display().to_string(), reason };
    let loaded = Elf::load(memory, None, image, Some(GuestAddress(l::IMAGE_ADDR)))
        .map_err(|e| fail(format!("{e} (is it an image built by `cargo xtask build-image`?)")))?;
    let entry = loaded.kernel_load.0;
    if loaded.kernel_end > memory_end(memory) {
        return Err(fail(format!(
            "it needs memory up to {:#x}, past the end of guest memory",
            loaded.kernel_end
        )));
    }
    Ok(entry)
}

fn memory_end(memory: &memory::Memory) -> u64 {
    use vm_memory::GuestMemoryBackend;
    memory.last_addr().0 + 1
}

/// The facts for [`BootInfo`]: TSC frequency, wall clock, and the launcher's start on the
/// guest's TSC, from one reading of the guest TSC paired with host readings.
fn boot_facts(config: &BootConfig, vcpu0: &VcpuFd) -> Result<BootInfo, VmmError> {
    let tsc_khz = vcpu0.get_tsc_khz().map_err(|e| VmmError::VcpuSetup(0, "KVM_GET_TSC_KHZ", e))?;
    let host_before = host_tsc();
    let guest = vcpu::guest_tsc(vcpu0)?;
    let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let guest_minus_host = guest.wrapping_sub(host_before);
    Ok(BootInfo {
        abi_version: spacecore_abi::ABI_VERSION,
        vcpus: config.vcpus,
        memory_bytes: config.memory_bytes,
        tsc_khz: u64::from(tsc_khz),
        wall_clock_unix_ns: wall.as_nanos() as u64,
        tsc_at_wall_clock: guest,
        launcher_start_tsc: config.started.1.wrapping_add(guest_minus_host),
        devices: [Default::default(); MAX_DEVICES],
    })
}

/// The host's time-stamp counter.
pub fn host_tsc() -> u64 {
    // SAFETY: `rdtsc` only reads the time-stamp counter; it is available on every x86-64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

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
#[derive(Debug)]
pub struct RunReport {
    /// How the run ended.
    pub outcome: Outcome,
    /// Guest memory resident in host RAM at the end.
    pub guest_resident_bytes: u64,
    /// VM exits handled by the launcher: hypercalls, MMIO register accesses.
    pub exits: (u64, u64),
}

impl Vm {
    /// Starts the vCPUs and watches the guest until it ends. `stop` is raised by the signal
    /// handler (SIGTERM/SIGINT) and asks the guest to stop cleanly.
    pub fn run(
        self,
        log: &Log,
        started: Instant,
        options: RunOptions,
        stop: &StopSignal,
    ) -> Result<RunReport, VmmError> {
        let control = self.control.clone();
        stop.attach(control.clone());
        for (index, fd) in self.vcpus.into_iter().enumerate() {
            let (control, memory, log) = (control.clone(), self.memory.clone(), log.clone());
            let (bus, late, password) = (self.bus.clone(), self.late.clone(), self.password.clone());
            let index = index as u32;
            std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn(move || {
                    let ctx = hypercall::Context {
                        vcpu: index,
                        mem: &memory,
                        control: &control,
                        log: &log,
                        bus: &bus,
                        late: &late,
                        password: &password,
                    };
                    vcpu::run(fd, &ctx);
                })
                .map_err(|e| VmmError::Thread(format!("vcpu{index}"), e))?;
        }
        let late = (self.vm.clone(), self.memory.clone());
        let memory = self.memory.clone();
        let outcome = supervise(&control, log, started, options, &memory, move |log: &Log| {
            register_late_memory(late.0, late.1, log.clone())
        })?;
        let exits = (control.exits.hypercalls.load(Relaxed), control.exits.mmio.load(Relaxed));
        Ok(RunReport { outcome, guest_resident_bytes: memory::resident_bytes(&self.memory), exits })
    }
}

/// Registers guest memory above the boot slot on a thread of its own. It runs once the guest
/// is ready: registering a slot while vCPUs run stalls them (KVM on PVM re-faults the guest's
/// pages), which costs less on an idle guest than in the middle of its boot. If it fails the
/// guest still runs: its accesses there stay emulated, slowly.
fn register_late_memory(vm: Arc<VmFd>, memory: Arc<memory::Memory>, log: Log) -> Result<(), VmmError> {
    std::thread::Builder::new()
        .name("memory".into())
        .spawn(move || {
            if let Err(e) = memory::register_late(&vm, &memory) {
                log.launcher(format_args!("{e}: guest memory above 128 MiB stays emulated (slow)"));
            }
        })
        .map(drop)
        .map_err(|e| VmmError::Thread("memory".into(), e))
}

/// Watches the run: logs ready (and then calls `on_ready`), turns a stop request into a STOP
/// event with a deadline.
fn supervise(
    control: &Control,
    log: &Log,
    started: Instant,
    options: RunOptions,
    memory: &memory::Memory,
    on_ready: impl FnOnce(&Log) -> Result<(), VmmError>,
) -> Result<Outcome, VmmError> {
    let mut on_ready = Some(on_ready);
    let ready_deadline = options.ready_timeout.map(|t| started + t);
    let mut seen = control::Snapshot::default();
    let mut stop_deadline = None;
    loop {
        let deadline = stop_deadline.or(if seen.ready_at.is_none() { ready_deadline } else { None });
        let now = control.watch(&seen, deadline);
        if let Some(outcome) = now.outcome.clone() {
            return Ok(outcome);
        }
        if let (None, Some(at)) = (seen.ready_at, now.ready_at) {
            log.launcher(format_args!("ready in {} us", at.duration_since(started).as_micros()));
            if let Some(f) = on_ready.take() {
                f(log)?;
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
            return Ok(Outcome::Stopped);
        }
        if seen.ready_at.is_none() && stop_deadline.is_none() && ready_deadline.is_some_and(|d| now >= d) {
            return Ok(Outcome::NotReady(options.ready_timeout.unwrap_or_default()));
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

/// Lets a signal handler ask the running guest to stop.
#[derive(Debug, Default)]
pub struct StopSignal {
    inner: std::sync::Mutex<(bool, Option<Arc<Control>>)>,
}

impl StopSignal {
    /// Asks the guest to stop (now if running, at start otherwise).
    pub fn raise(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0 = true;
        if let Some(control) = &inner.1 {
            control.request_stop();
        }
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
    fn raised_events_accumulate_in_the_event_word() {
        let mem = memory::map(4 << 20).unwrap();
        raise_in_memory(&mem, events::STOP);
        raise_in_memory(&mem, 1 << 5);
        let word: u64 = mem.read_obj(GuestAddress(l::EVENT_WORD_ADDR)).unwrap();
        assert_eq!(word, events::STOP | 1 << 5);
    }
}
