//! The few machine instructions the runtime needs, each behind a safe function.
//!
//! Everything runs at CPL3: port output is allowed because the TSS I/O bitmap grants the
//! hypercall ports, and `rdtsc` because `CR4.TSD` is clear. `unsafe` lives here and in
//! `virtio/hal.rs` (the virtio drivers' memory), plus a few documented blocks in `heap.rs`,
//! `hypercall.rs`, `runtime.rs` and `selftest.rs`.

use core::arch::asm;

/// Writes `value` to `port`: one VM exit, handled by the launcher.
///
/// If `value` is the address of a record, the record must stay alive and unmoved for the call;
/// the launcher may write into it before this returns.
#[inline]
pub fn out32(port: u16, value: u32) {
    // SAFETY: with IOPL 3 a port write cannot fault; it has no effect on guest memory other than
    // what the launcher's documented hypercall does to a record the caller passes by address
    // (the asm is not marked `nomem`, so the compiler assumes such writes).
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags)) };
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the counter into edx:eax; CR4.TSD is clear so CPL3 may use it.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Address of the first byte after the image (end of `.bss`), from the linker script.
pub fn image_end() -> u64 {
    unsafe extern "C" {
        static __image_end: u8;
    }
    // Only the symbol's address is taken, never its (nonexistent) value.
    core::ptr::addr_of!(__image_end) as u64
}

/// Copies `out.len()` bytes of guest-physical memory at `addr` (identity-mapped) into `out`.
///
/// # Safety
/// `[addr, addr + out.len())` must be mapped, readable and not written concurrently; the boot
/// regions of `spacecore_abi::layout` are, for the whole life of the guest.
pub unsafe fn read_phys(addr: u64, out: &mut [u8]) {
    // SAFETY: the caller guarantees the source range is readable and does not overlap `out`
    // (which is on the stack or heap, above the boot regions).
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len()) };
}

/// Makes the CPU take a page fault by reading an unmapped address (the null guard page).
/// Used only by the `spacecore.selftest=fault` boot argument.
pub fn fault() -> ! {
    // SAFETY: a volatile read of an unmapped page traps before anything is read; the launcher
    // ends the guest with a crash report and never resumes it.
    unsafe {
        core::ptr::read_volatile(0x10 as *const u64);
    }
    unreachable!("reading the null page did not fault")
}

/// The launcher's event word (`spacecore_abi::layout::EVENT_WORD_ADDR`): events it raised for
/// every vCPU, read without a VM exit.
pub fn event_word() -> u64 {
    // SAFETY: the word lies in the boot-information page, which the launcher maps read-only
    // for the whole life of the guest; a volatile read sees the launcher's later updates.
    unsafe { core::ptr::read_volatile(spacecore_abi::layout::EVENT_WORD_ADDR as *const u64) }
}
