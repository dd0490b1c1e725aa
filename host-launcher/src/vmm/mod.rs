//! The VMM: one boot recipe that reads top to bottom (KVM, VM, memory, image, tables, vCPUs,
//! boot information), then [`Vm::run`] (in `run.rs`), which starts the vCPUs, watches the guest
//! until it exits, crashes, fails its health checks or is stopped, and gives the devices back.

mod boot_info;
mod bus;
mod console;
mod control;
mod fault;
mod hypercall;
mod kick;
mod load;
pub mod memory;
mod run;
pub mod snapshot;
mod tables;
mod vcpu;
mod vcpu_state;

use control::Control;
pub use control::ExitCounts;
pub use hypercall::Detached;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
pub use load::may_share as may_share_image;
pub use run::{RunHandle, RunOptions, RunReport, StopSignal};
pub use snapshot::{ImageId, Snapshot, SnapshotError, Target as SnapshotTarget};
use spacecore_abi::boot::{BootInfo, MAX_DEVICES};
use spacecore_abi::exit;
use spacecore_abi::hypercall::events;
use spacecore_abi::layout as l;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    /// The guest failed its health checks for too long (it was stopped); what was seen.
    Unhealthy(String),
    /// The guest reached its snapshot point in a boot that saves a snapshot, and was stopped
    /// there to be saved.
    Saved,
}

/// The launcher's exit status when it gives up on a guest that failed its health checks.
pub const GUEST_UNHEALTHY: u8 = 106;

impl Outcome {
    /// The launcher's exit status for this outcome (see `spacecore_abi::exit`).
    pub fn exit_status(&self) -> u8 {
        match self {
            Outcome::Exited(status) => *status,
            Outcome::Stopped | Outcome::Saved => 0,
            Outcome::NotReady(_) => exit::GUEST_NOT_READY,
            Outcome::Panicked(_) => exit::GUEST_PANIC,
            Outcome::Fault(_) => exit::GUEST_FAULT,
            Outcome::AbiViolation(_) => exit::GUEST_ABI_VIOLATION,
            Outcome::KvmError(_) => exit::GUEST_KVM_ERROR,
            Outcome::Unhealthy(_) => GUEST_UNHEALTHY,
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
            Outcome::Unhealthy(what) => format!("guest failed its health checks: {what}"),
            Outcome::Saved => "guest stopped at its snapshot point to be saved".into(),
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
    /// The ELF image's path, for messages.
    pub image: &'a Path,
    /// Whether the image's pages are mapped from its file, shared copy-on-write with every
    /// spacecore of the same file ([`may_share_image`]), or copied.
    pub share_image: bool,
    /// Kernel command line.
    pub cmdline: &'a str,
    /// When the launcher process started, and the host TSC then.
    pub started: (Instant, u64),
    /// The operator keystore's password, which the guest may take once per boot
    /// (`KeystorePassword` hypercall); kept across boots.
    pub keystore_password: Option<Arc<crate::keystore_password::KeystorePassword>>,
    /// The operator's ECDSA keystore's password, which the guest may take once per boot
    /// (`EcdsaKeystorePassword` hypercall); kept across boots.
    pub ecdsa_keystore_password: Option<Arc<crate::keystore_password::KeystorePassword>>,
    /// Where the vCPUs count their exits; shared by every boot of the spacecore.
    pub exits: Arc<ExitCounts>,
}

/// A VM ready to run.
#[derive(Debug)]
pub struct Vm {
    // Field order is drop order: vCPUs, devices and the VM go before the memory they map.
    vcpus: Vec<VcpuFd>,
    bus: Arc<bus::Bus>,
    control: Arc<Control>,
    late: Arc<memory::LateMemory>,
    passwords: Arc<hypercall::Passwords>,
    point: Arc<snapshot::Point>,
    /// Where a snapshot is saved at the guest's snapshot point, in a boot that saves one.
    save: Option<snapshot::Target>,
    vm: Arc<VmFd>,
    memory: Arc<memory::Memory>,
    /// Bytes of the image (or the snapshot) mapped from its file, shared copy-on-write.
    image_shared_bytes: u64,
    /// The image's entry point.
    entry: u64,
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

/// What a VM starts from: an image, or a snapshot of a spacecore of the same spec.
#[derive(Debug)]
pub enum Start<'a> {
    /// The ELF image's open file, read from its start.
    Image(&'a mut std::fs::File),
    /// A snapshot that fits the spec ([`snapshot::Snapshot::fits`]).
    Snapshot(&'a snapshot::Snapshot),
}

impl Shell {
    /// The rest of the boot recipe, up to the first guest instruction: the devices get the
    /// device windows in order, then the image (or the snapshot's memory, vCPU and devices),
    /// the tables, the vCPUs and the boot information.
    pub fn boot(
        self,
        config: &BootConfig,
        start: Start,
        devices: Vec<Box<dyn crate::devices::VirtioDevice>>,
    ) -> Result<Vm, VmmError> {
        let Shell { kvm, vm, memory } = self;
        if config.vcpus == 0 || config.vcpus > l::MAX_VCPUS {
            return Err(VmmError::TooManyVcpus(config.vcpus));
        }
        if memory::end(&memory) != config.memory_bytes {
            return Err(VmmError::MemorySize(config.memory_bytes));
        }
        let control = Arc::new(Control::new(config.vcpus, config.exits.clone()));
        // Devices reach only the guest's own memory, never the launcher's ring-0 region.
        let dma = Arc::new(memory::dma_view(&memory));
        let bus = Arc::new(bus::Bus::new(devices, &dma, device_notifier(&control))?);
        bus.register_ioeventfds(&vm)?;
        let (vcpus, image_shared_bytes, entry) = prepare(config, &kvm, &vm, &memory, start, &bus)?;
        let late = Arc::new(memory::LateMemory::new(config.memory_bytes));
        // Per boot: a new boot may take the passwords again.
        let passwords = Arc::new(hypercall::Passwords {
            keystore: hypercall::PasswordHandover::new(config.keystore_password.clone()),
            ecdsa: hypercall::PasswordHandover::new(config.ecdsa_keystore_password.clone()),
        });
        let point = Arc::default();
        Ok(Vm {
            vcpus,
            bus,
            control,
            late,
            passwords,
            point,
            save: None,
            vm,
            memory,
            image_shared_bytes,
            entry,
        })
    }
}

impl Vm {
    /// Makes this boot save a snapshot into `target` at the guest's snapshot point, and stop
    /// the guest there ([`Outcome::Saved`]).
    pub fn save_snapshot(&mut self, target: snapshot::Target) {
        self.point = Arc::new(snapshot::Point::Save(Default::default()));
        self.save = Some(target);
    }
}

/// How a device wakes the guest: the DEVICE event, for vCPU 0 only (it drives the devices;
/// waking the others would cost each an exit for nothing).
fn device_notifier(control: &Arc<Control>) -> crate::devices::Notifier {
    let control = control.clone();
    Arc::new(move || control.post_to(0, events::DEVICE))
}

/// Image or snapshot, tables, vCPUs and boot information: every step that only writes guest
/// memory through the launcher's own mapping (and, from a snapshot, starts the devices where
/// the snapshot left them). Returns the vCPUs, the bytes shared from the image's or the
/// snapshot's file, and the entry point.
fn prepare(
    config: &BootConfig,
    kvm: &Kvm,
    vm: &VmFd,
    memory: &memory::Memory,
    start: Start,
    bus: &bus::Bus,
) -> Result<(Vec<VcpuFd>, u64, u64), VmmError> {
    let (entry, shared) = match &start {
        Start::Image(image) => {
            let loaded = load_image(memory, image, config.image, config.share_image)?;
            (loaded.entry, loaded.shared_bytes)
        }
        Start::Snapshot(snapshot) => (snapshot.entry(), snapshot.place(memory)?),
    };
    tables::write_all(memory, config.memory_bytes, config.vcpus)?;
    let cpuid = vcpu::supported_cpuid(kvm)?;
    let vcpus = (0..config.vcpus)
        .map(|i| vcpu::create(vm, &cpuid, i, config.vcpus, entry))
        .collect::<Result<Vec<_>, _>>()?;
    if let Start::Snapshot(snapshot) = &start {
        for (i, fd) in vcpus.iter().enumerate() {
            vcpu_state::restore(fd, i as u32, snapshot.vcpu())?;
        }
        bus.restore(snapshot.devices())?;
    }
    let info = BootInfo { devices: bus.device_infos(), ..boot_facts(config, &vcpus[0])? };
    boot_info::write(memory, &info, config.cmdline)?;
    Ok((vcpus, shared, entry))
}

/// A `/dev/kvm` handle: a duplicate of the descriptor opened by the first call, kept for the
/// life of the process, so that a confined launcher (which can open no file) still makes VMs.
fn open_kvm() -> Result<Kvm, VmmError> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    static KVM: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    if KVM.get().is_none() {
        let fd = Kvm::open_with_cloexec(true).map_err(|e| {
            VmmError::OpenKvm(match e.errno() {
                libc::ENOENT => "no such device: KVM is not available on this host".into(),
                libc::EACCES => "permission denied: run as root or as a member of the kvm group".into(),
                _ => e.to_string(),
            })
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else. If another thread kept
        // its own first, this one is closed.
        let _ = KVM.set(unsafe { std::fs::File::from_raw_fd(fd) });
    }
    let file = KVM.get().expect("set above");
    let fd = file
        .try_clone()
        .map_err(|e| VmmError::OpenKvm(format!("cannot duplicate the /dev/kvm descriptor: {e}")))?;
    // SAFETY: `fd` is an open /dev/kvm descriptor whose ownership passes to the `Kvm`.
    Ok(unsafe { Kvm::from_raw_fd(fd.into_raw_fd()) })
}

/// Checks that `image` (at `path`, for messages) loads into a guest of `memory_bytes`, as a
/// boot would load it, into scratch memory that is dropped at once: a rolling update refuses an
/// image that cannot boot before it stops the running guest (`crate::update`).
pub fn check_image(image: &mut std::fs::File, path: &Path, memory_bytes: u64) -> Result<(), VmmError> {
    let scratch = memory::map(memory_bytes)?;
    load_image(&scratch, image, path, false).map(|_| ())
}

/// Loads the ELF image at its link address ([`load`]: shared copy-on-write where the file is
/// read-only) and checks it stays clear of the launcher's regions.
fn load_image(
    memory: &memory::Memory,
    image: &std::fs::File,
    path: &Path,
    share: bool,
) -> Result<load::Loaded, VmmError> {
    load::load(memory, image, share).map_err(|reason| VmmError::LoadImage {
        path: path.display().to_string(),
        reason: format!("{reason} (is it an image built by `cargo xtask build-image`?)"),
    })
}

/// The facts for [`BootInfo`]: TSC frequency, wall clock, and the launcher's start on the
/// guest's TSC, from one reading of the guest TSC paired with host readings.
fn boot_facts(config: &BootConfig, vcpu0: &VcpuFd) -> Result<BootInfo, VmmError> {
    let tsc_khz = vcpu0.get_tsc_khz().map_err(|e| VmmError::VcpuSetup(0, "KVM_GET_TSC_KHZ", e))?;
    let host_before = host_tsc();
    let guest = vcpu_state::guest_tsc(vcpu0)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_a_launcher_status_and_a_line() {
        let outcomes = [
            (Outcome::Exited(7), 7),
            (Outcome::Stopped, 0),
            (Outcome::NotReady(Duration::from_secs(1)), exit::GUEST_NOT_READY),
            (Outcome::Panicked("p".into()), exit::GUEST_PANIC),
            (Outcome::Fault("f".into()), exit::GUEST_FAULT),
            (Outcome::AbiViolation("a".into()), exit::GUEST_ABI_VIOLATION),
            (Outcome::KvmError("k".into()), exit::GUEST_KVM_ERROR),
            (Outcome::Unhealthy("no answer for 10 s".into()), GUEST_UNHEALTHY),
        ];
        for (outcome, status) in outcomes {
            assert_eq!(outcome.exit_status(), status, "{outcome:?}");
            assert!(!outcome.describe().is_empty());
        }
        assert_eq!(
            Outcome::Unhealthy("no answer for 10 s".into()).describe(),
            "guest failed its health checks: no answer for 10 s"
        );
    }
}
