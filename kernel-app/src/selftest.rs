//! Diagnostics selected by `spacecore.selftest=...`: they make the guest fail in known ways so
//! that the launcher's crash handling can be tested on the real image, or measure the disk
//! (`disk-bench`, see [`crate::diskbench`]).

use crate::clock::Clock;
use crate::cmdline::SelfTest;
use crate::virtio::blk::BlkDevice;
use crate::{arch, diskbench, hypercall, println};
use spacecore_abi::boot::{BootInfo, device_kind};

/// Exit status of `disk-bench` when it cannot run: no usable, writable disk, or too small a one.
const DISK_BENCH_UNUSABLE: u8 = 3;
/// Exit status of `disk-bench` when a request fails.
const DISK_BENCH_IO_ERROR: u8 = 5;

/// Runs the self-test; none of them returns.
pub fn run(test: SelfTest, info: &BootInfo, clock: &Clock, scheme: avs_protocol::Scheme) -> ! {
    match test {
        SelfTest::Panic => panic!("self-test panic requested on the command line"),
        SelfTest::Fault => crate::arch::fault(),
        SelfTest::Exit(code) => crate::hypercall::exit(code),
        SelfTest::BadBuffer => {
            // SAFETY: the slice is never read by the guest: only its address and length go to
            // the launcher, which must refuse them (the range ends past any guest memory).
            let outside = unsafe { core::slice::from_raw_parts((u64::MAX - 64) as *const u8, 32) };
            crate::hypercall::console_write(outside);
            panic!("the launcher accepted a console buffer outside guest memory")
        }
        SelfTest::BadPort => {
            crate::arch::out32(0x3f8, 0);
            panic!("a write to a port outside the hypercall range did not fault")
        }
        SelfTest::ConsoleFlood(mib) => console_flood(clock, mib),
        SelfTest::DiskBench { ops, read_mib } => disk_bench(info, clock, ops, read_mib),
        SelfTest::SignBench(count) => sign_bench(clock, count, scheme),
    }
}

/// Runs `console-flood`: `mib` MiB of console text in 4 KiB writes, a pause of 250 ms (by the
/// clock, spinning), one last line, exit 0.
fn console_flood(clock: &Clock, mib: u32) -> ! {
    let mut chunk = [b'x'; 4096];
    chunk[4095] = b'\n';
    for _ in 0..u64::from(mib) * 256 {
        hypercall::console_write(&chunk);
    }
    let start = arch::rdtsc();
    while clock.ticks_to_ns(arch::rdtsc().wrapping_sub(start)) < 250_000_000 {
        core::hint::spin_loop();
    }
    println!("console-flood: done");
    hypercall::exit(0)
}

/// Runs `sign-bench`: signs `count` different digests with a fixed key of `scheme` through
/// `OperatorSecretKey`, as the node signs task responses, and prints
/// `sign-bench: N signatures in T ns; chain 0x…; scheme S` (read by `cargo xtask bench sign`).
fn sign_bench(clock: &Clock, count: u32, scheme: avs_protocol::Scheme) -> ! {
    let key = bench_key(scheme);
    // Signal ready first, as the node does before it signs: the launcher registers guest memory
    // above 128 MiB with KVM only then, and until it has, every access there (the heap's upper
    // part, which BN254's scalar decomposition allocates from) exits to the launcher. Its
    // registration stalls the vCPU a few ms: wait that out, and warm up, before timing.
    hypercall::ready();
    hypercall::wait(50_000_000);
    for i in 0..8u8 {
        key.sign(&avs_protocol::keccak256(&[i]));
    }
    // The digest of the first response, then each signature's hash: no two messages alike.
    let mut digest = avs_protocol::keccak256(b"sign-bench");
    let start = arch::rdtsc();
    for _ in 0..count {
        let signature = key.sign(&digest);
        digest = avs_protocol::keccak256(signature.as_bytes());
    }
    let ns = clock.ticks_to_ns(arch::rdtsc() - start);
    // The final digest depends on every signature: the benchmark compares it with the host's.
    println!(
        "sign-bench: {count} signatures in {ns} ns; chain {}; scheme {}",
        avs_protocol::encoding::to_hex(&digest),
        scheme.name()
    );
    hypercall::exit(0)
}

/// The key `sign-bench` signs with (the host side of `cargo xtask bench sign` uses the same):
/// BLS12-381 `KeyGen([7; 32])`, or the BN254 scalar whose 32 bytes are all 7.
fn bench_key(scheme: avs_protocol::Scheme) -> avs_protocol::OperatorSecretKey {
    use avs_protocol::{OperatorSecretKey, Scheme, bls};
    match scheme {
        Scheme::Bls12381 => OperatorSecretKey::Bls12381(
            bls::SecretKey::key_gen(&[7; 32]).expect("a 32-byte seed is a valid key seed"),
        ),
        Scheme::Bn254 => OperatorSecretKey::from_bytes(Scheme::Bn254, &[7; 32]).expect("7…7 is below r"),
    }
}

/// Runs `disk-bench` on the first block device, prints its report and exits 0.
fn disk_bench(info: &BootInfo, clock: &Clock, ops: u32, read_mib: u32) -> ! {
    let unusable = |why: core::fmt::Arguments| -> ! {
        println!("disk-bench: error: {why}");
        hypercall::exit(DISK_BENCH_UNUSABLE)
    };
    let Some(dev) = info.devices.iter().find(|d| d.kind == device_kind::VIRTIO_BLOCK) else {
        unusable(format_args!("no virtio-blk device (the spec needs spec.resources.storage)"))
    };
    let mut disk = match BlkDevice::new(dev.mmio_base, dev.mmio_size, clock) {
        Ok(disk) => disk,
        Err(e) => unusable(format_args!("virtio-blk at {:#x} unusable: {e}", dev.mmio_base)),
    };
    if disk.read_only() {
        unusable(format_args!("the disk is read-only"));
    }
    println!("disk-bench: {ops} random 4 KiB writes + flush, then a sequential read of {read_mib} MiB");
    let mut now_ns = || clock.ticks_to_ns(arch::rdtsc());
    match diskbench::run(&mut disk, ops, read_mib, &mut now_ns) {
        Ok(report) => {
            crate::console::write_fmt(format_args!("{report}"));
            hypercall::exit(0)
        }
        Err(diskbench::Error::TooSmall { sectors, needed_bytes }) => unusable(format_args!(
            "the disk ({sectors} sectors) is too small: its second half must hold {needed_bytes} bytes"
        )),
        Err(diskbench::Error::Io(e)) => {
            println!("disk-bench: error: request failed: {e:?}");
            hypercall::exit(DISK_BENCH_IO_ERROR)
        }
    }
}
