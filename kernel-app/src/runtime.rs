//! Entry, boot flow and panic reporting: the part of the unikernel that only exists on the real
//! target. The devices and the main loop are in [`crate::node`].

use crate::node::Node;
use crate::{arch, boot::Boot, clock::Clock, cmdline, heap, hypercall};
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};
use spacecore_abi::hypercall::WAIT_FOREVER;

/// Guest exit statuses of the runtime itself (the AVS logic uses others).
mod status {
    /// The boot information was missing or unusable.
    pub const BAD_BOOT: u8 = 3;
    /// The command line has a bad `spacecore.*` word.
    pub const BAD_CMDLINE: u8 = 4;
}

/// What every vCPU runs first. The launcher enters the image's `_start` (defined by
/// [`crate::entry!`], which calls this) at CPL3 with `rdi` = vCPU index, `rsi` = address of
/// `boot_params` and `rsp` = the vCPU's stack top minus 8 (as after a call), so no assembly is
/// needed.
pub fn start(vcpu: u64, boot_params: u64) -> ! {
    let entry_tsc = arch::rdtsc();
    if vcpu == 0 { boot_vcpu(boot_params, entry_tsc) } else { idle_vcpu(vcpu) }
}

/// Runs the constructors of the C code linked into the image (`.init_array`, gathered by the
/// linker script): blst's, which reads CPUID once and turns on its ADX/MULX code paths where
/// the CPU has them. Nothing else in the image has constructors.
fn run_constructors() {
    unsafe extern "C" {
        static __init_array_start: Option<extern "C" fn()>;
        static __init_array_end: Option<extern "C" fn()>;
    }
    let start = core::ptr::addr_of!(__init_array_start);
    let end = core::ptr::addr_of!(__init_array_end);
    let count = (end as usize - start as usize) / core::mem::size_of::<Option<extern "C" fn()>>();
    for i in 0..count {
        // SAFETY: the linker script bounds `.init_array`, an array of function pointers the
        // linked objects put there to be called once at start, with no arguments.
        if let Some(constructor) = unsafe { *start.add(i) } {
            constructor();
        }
    }
}

/// vCPUs other than the first have no work yet: each says that it runs (one console line, so
/// that every vCPU is seen to have run), then blocks in the launcher.
fn idle_vcpu(vcpu: u64) -> ! {
    crate::println!("vCPU {vcpu} running; idle");
    IDLE_VCPUS.fetch_add(1, Ordering::Release);
    loop {
        // Each event is reported once per vCPU; after a stop the launcher ends the VM.
        hypercall::wait(WAIT_FOREVER);
    }
}

/// Reads the boot information and the command line the launcher wrote; exits the guest if
/// either is unusable.
fn read_boot(boot_params: u64) -> Boot {
    // SAFETY: the launcher maps the boot regions (boot_params, setup_data, command line) for the
    // life of the guest and changes them only while the guest is stopped (a snapshot's start).
    let read = &mut |addr, buf: &mut [u8]| unsafe { arch::read_phys(addr, buf) };
    match Boot::parse(boot_params, read) {
        Ok(boot) => boot,
        Err(e) => {
            crate::println!("cannot boot: unusable boot information: {e:?}");
            hypercall::exit(status::BAD_BOOT)
        }
    }
}

fn read_args(boot: &Boot) -> cmdline::Args<'_> {
    match cmdline::parse(boot.cmdline()) {
        Ok(args) => args,
        Err(cmdline::BadArg(word)) => {
            crate::println!("cannot boot: bad command-line word {word:?}");
            hypercall::exit(status::BAD_CMDLINE)
        }
    }
}

/// vCPUs other than the first that have said they run and hold nothing (see [`idle_vcpu`]).
static IDLE_VCPUS: AtomicU32 = AtomicU32::new(0);

/// The snapshot point (`Hypercall::Snapshot`), once every other vCPU is idle, so that none
/// holds a lock in the memory a snapshot saves (they start again from the entry point). True
/// when this guest resumes from a snapshot.
fn snapshot_point(vcpus: u32, clock: &Clock) -> bool {
    let deadline = arch::rdtsc().saturating_add(clock.ticks_per_us().saturating_mul(1_000_000));
    let mut idle = true;
    while IDLE_VCPUS.load(Ordering::Acquire) + 1 < vcpus {
        if arch::rdtsc() > deadline {
            // Not idle after a second: the launcher saves no snapshot of this boot.
            crate::println!("snapshot point: other vCPUs still busy after 1 s");
            idle = false;
            break;
        }
        core::hint::spin_loop();
    }
    hypercall::snapshot_point(idle)
}

fn boot_vcpu(boot_params: u64, entry_tsc: u64) -> ! {
    let boot = read_boot(boot_params);
    let args = read_args(&boot);
    let clock = Clock::new(boot.info.tsc_khz, boot.info.wall_clock_unix_ns, boot.info.tsc_at_wall_clock);
    let heap_floor = arch::image_end().next_multiple_of(4096);
    let heap_range = boot.heap_range(heap_floor);
    let connections = heap_range.map_or(1, |(s, e)| crate::node::connections_for(e - s));
    // The network's buffers come from memory set aside untouched (see `heap::untouched`).
    let networked = args.net.is_some();
    let untouched = if networked { crate::node::untouched_for(connections) } else { 0 };
    let heap_bytes = heap_range.map_or(0, |(s, e)| heap::init(s, e, untouched));
    run_constructors();

    if let Some(test) = args.selftest {
        crate::selftest::run(test, &boot.info, &clock, args.scheme);
    }
    let devices = crate::node::start_devices(&boot.info, &clock);

    // Everything above is the same for every spacecore of this image and spec; everything below
    // is this spacecore's own: its name and addresses, its clock, its disk, its randomness.
    let restored = snapshot_point(boot.info.vcpus, &clock);
    // A start from a snapshot is this spacecore's time 0: the TSC read before the snapshot
    // point was another launcher's (even another host boot's).
    let entry_tsc = if restored { arch::rdtsc() } else { entry_tsc };
    let boot = if restored { read_boot(boot_params) } else { boot };
    let args = read_args(&boot);
    if args.net.is_some() != networked {
        crate::println!("cannot boot: the snapshot was saved with a different network");
        hypercall::exit(status::BAD_BOOT)
    }
    let info = &boot.info;
    let clock = Clock::new(info.tsc_khz, info.wall_clock_unix_ns, info.tsc_at_wall_clock);
    let node = Node::start(&args, clock, entry_tsc, connections, devices);

    let ready_tsc = arch::rdtsc();
    let since_launch_us = clock.ticks_to_ns(ready_tsc.wrapping_sub(info.launcher_start_tsc)) / 1000;
    let in_guest_us = clock.ticks_to_ns(ready_tsc.wrapping_sub(entry_tsc)) / 1000;
    let (y, mo, d, h, mi, s) = crate::clock::utc(clock.wall_ns_at(ready_tsc));
    crate::println!(
        "spacecore {} (abi {}): {} vCPUs, {} MiB memory, {} MiB heap; {} in {} us from launcher start ({} us in guest{}); {:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z; {}",
        env!("CARGO_PKG_VERSION"),
        info.abi_version,
        info.vcpus,
        info.memory_bytes >> 20,
        heap_bytes >> 20,
        if restored { "started from a snapshot" } else { "booted" },
        since_launch_us,
        in_guest_us,
        if restored { " since the snapshot point" } else { "" },
        y,
        mo,
        d,
        h,
        mi,
        s,
        BootCount(node.boot_count),
    );
    hypercall::ready();
    node.run()
}

/// How the banner shows the boot count.
struct BootCount(Option<u64>);

impl core::fmt::Display for BootCount {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "boot {n}"),
            None => f.write_str("boot count unknown (no usable disk)"),
        }
    }
}

/// A fixed buffer for the panic message: the heap may be what failed.
struct PanicBuffer {
    buf: [u8; 1024],
    len: usize,
}

impl Write for PanicBuffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut out = PanicBuffer { buf: [0; 1024], len: 0 };
    let _ = write!(out, "{}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(out, " at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    hypercall::panic(&out.buf[..out.len])
}
