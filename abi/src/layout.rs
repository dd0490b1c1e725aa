//! The guest-physical memory map and the CPU state the launcher sets up before the first
//! instruction.
//!
//! Guest virtual addresses equal guest-physical addresses (identity map). The first 2 MiB are
//! mapped with 4 KiB pages so that the null page, stack guards and the ring-0 tables can be
//! protected; everything above is mapped with 2 MiB user pages.
//!
//! ```text
//! 0x0000_0000  not mapped: null-pointer guard
//! 0x0000_1000  GDT                      ring 0 only
//! 0x0000_2000  IDT                      ring 0 only
//! 0x0000_3000  TSS, one per vCPU        ring 0 only
//! 0x0000_4000  trap stubs (ring-0 code) ring 0 only
//! 0x0000_5000  trap stacks, per vCPU    ring 0 only
//! 0x0000_7000  Linux boot_params        read-only to the guest
//! 0x0000_8000  Spacecore BootInfo       read-only to the guest
//! 0x0000_9000  kernel command line      read-only to the guest
//! 0x0000_A000  page tables              ring 0 only
//! 0x000D_0000  virtio-mmio device windows (not RAM: accesses exit to the launcher)
//! 0x0010_0000  per-vCPU stacks, each below an unmapped guard page
//! 0x0020_0000  the image (its link address), then the heap up to the end of memory
//! ```
//!
//! The guest runs at CPL3 from its first instruction. Its hypercalls (port I/O, see
//! [`crate::hypercall`]) need no ring transition: the TSS I/O permission bitmap allows exactly
//! the hypercall ports at CPL3 (every other port faults). IOPL stays 0, because KVM on PVM
//! clears it anyway.

/// Size of a small page.
pub const PAGE_SIZE: u64 = 0x1000;
/// Size of a large page, and of the region mapped with small pages.
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;

/// Global descriptor table.
pub const GDT_ADDR: u64 = 0x1000;
/// Interrupt descriptor table.
pub const IDT_ADDR: u64 = 0x2000;
/// Task state segments, [`TSS_SIZE`] bytes apart, one per vCPU.
pub const TSS_ADDR: u64 = 0x3000;
/// Size of one 64-bit TSS.
pub const TSS_SIZE: u64 = 104;
/// The I/O permission bitmap all TSSs share (each TSS's I/O map base points here): one bit per
/// port up to the last hypercall port, 0 = allowed, then a terminating `0xff` byte.
pub const IO_BITMAP_ADDR: u64 = TSS_ADDR + MAX_VCPUS as u64 * TSS_SIZE;
/// Bytes of the I/O permission bitmap, terminator included.
pub const IO_BITMAP_SIZE: u64 =
    (crate::hypercall::PORT_BASE as u64 + crate::hypercall::PORT_COUNT as u64).div_ceil(8) + 1;
/// The ring-0 fatal-trap stubs, [`TRAP_STUB_SIZE`] bytes apart, one per vector below 32.
pub const TRAP_STUBS_ADDR: u64 = 0x4000;
/// Distance between two trap stubs.
pub const TRAP_STUB_SIZE: u64 = 16;
/// Ring-0 stacks used only to deliver a fatal trap, [`TRAP_STACK_SIZE`] bytes per vCPU.
pub const TRAP_STACKS_ADDR: u64 = 0x5000;
/// Size of one trap stack: room for the hardware frame, the error code and the vector.
pub const TRAP_STACK_SIZE: u64 = 128;
/// The Linux `boot_params` ("zero page"); its address is in `rsi` at entry.
pub const BOOT_PARAMS_ADDR: u64 = 0x7000;
/// The Spacecore [`crate::boot::BootInfo`] record (a Linux `setup_data` node).
pub const BOOT_INFO_ADDR: u64 = 0x8000;
/// A little-endian `u64` in the (read-only to the guest) boot-information page: the events the
/// launcher has raised for every vCPU, so that a busy guest sees them with a memory read
/// instead of a `Wait` exit. Bits are only ever set. Today only `hypercall::events::STOP`.
pub const EVENT_WORD_ADDR: u64 = BOOT_INFO_ADDR + 0x800;
/// The NUL-terminated kernel command line.
pub const CMDLINE_ADDR: u64 = 0x9000;
/// Capacity of the command line, NUL included.
pub const CMDLINE_MAX: u64 = 0x1000;
/// First page of the page tables (PML4, then PDPT, the 4 KiB table of the first 2 MiB, then
/// one page directory per GiB of memory).
pub const PAGE_TABLES_ADDR: u64 = 0xA000;
/// First virtio-mmio device window; device `i` is at `MMIO_BASE + i * MMIO_SIZE`. This range
/// is a hole in guest RAM, mapped uncached and user-accessible in the guest's page tables.
pub const MMIO_BASE: u64 = 0xD_0000;
/// Size of one device window (registers at 0x000, device configuration at 0x100).
pub const MMIO_SIZE: u64 = 0x1000;
/// Device windows available.
pub const MMIO_SLOTS: u64 = 16;

/// Lowest address the guest owns; below it lie the launcher's fixed regions. Hypercall records
/// must lie at or above it.
pub const GUEST_BASE: u64 = 0x10_0000;
/// Where the image is linked and loaded.
pub const IMAGE_ADDR: u64 = 0x20_0000;

/// Most vCPUs a spacecore can have (bounded by the GDT, TSS and stack regions above).
pub const MAX_VCPUS: u32 = 32;
/// Most guest memory (bounded by the page-table region: one directory page per GiB).
pub const MAX_MEMORY: u64 = 64 << 30;
/// Least guest memory: the fixed regions below the image plus room for image and heap.
pub const MIN_MEMORY: u64 = 4 << 20;

/// Stack of the boot vCPU: `[BSP_STACK_TOP - BSP_STACK_SIZE, BSP_STACK_TOP)`.
pub const BSP_STACK_TOP: u64 = 0x20_0000;
/// Size of the boot vCPU's stack.
pub const BSP_STACK_SIZE: u64 = 0x4_0000;
/// Size of the stack of every other vCPU.
pub const AP_STACK_SIZE: u64 = 0x4000;
/// Distance between two AP stack tops: the stack and its guard page.
const AP_STACK_SLOT: u64 = AP_STACK_SIZE + PAGE_SIZE;

/// The stack of `vcpu` as `(bottom, top)`; the page just below `bottom` is an unmapped guard.
/// `None` for an index at or above [`MAX_VCPUS`].
pub const fn stack(vcpu: u32) -> Option<(u64, u64)> {
    if vcpu >= MAX_VCPUS {
        return None;
    }
    if vcpu == 0 {
        return Some((BSP_STACK_TOP - BSP_STACK_SIZE, BSP_STACK_TOP));
    }
    let top = BSP_STACK_TOP - BSP_STACK_SIZE - PAGE_SIZE - (vcpu as u64 - 1) * AP_STACK_SLOT;
    Some((top - AP_STACK_SIZE, top))
}

// The fixed regions must not overlap; checked when the crate compiles.
const _: () = {
    let page_tables = 3 + MAX_MEMORY / (1 << 30); // PML4, PDPT, first-2-MiB table, a PD per GiB
    assert!(PAGE_TABLES_ADDR + page_tables * PAGE_SIZE <= MMIO_BASE);
    assert!(MMIO_BASE + MMIO_SLOTS * MMIO_SIZE <= GUEST_BASE);
    assert!(IO_BITMAP_ADDR + IO_BITMAP_SIZE <= TRAP_STUBS_ADDR);
    assert!(TRAP_STUBS_ADDR + 32 * TRAP_STUB_SIZE <= TRAP_STACKS_ADDR);
    assert!(TRAP_STACKS_ADDR + MAX_VCPUS as u64 * TRAP_STACK_SIZE <= BOOT_PARAMS_ADDR);
    // GDT: five segment slots then a two-slot TSS descriptor per vCPU.
    assert!(selector::TSS_BASE as u64 + 16 * MAX_VCPUS as u64 <= PAGE_SIZE);
    assert!(GUEST_BASE <= BSP_STACK_TOP - BSP_STACK_SIZE);
    let boot_info_end =
        BOOT_INFO_ADDR + crate::boot::SETUP_DATA_HEADER as u64 + crate::boot::BootInfo::SIZE as u64;
    assert!(boot_info_end <= EVENT_WORD_ADDR && EVENT_WORD_ADDR + 8 <= CMDLINE_ADDR);
};

/// Segment selectors loaded at entry and by trap delivery.
pub mod selector {
    /// Ring-0 64-bit code.
    pub const KERNEL_CODE: u16 = 0x08;
    /// Ring-0 data.
    pub const KERNEL_DATA: u16 = 0x10;
    /// Ring-3 data (RPL 3).
    pub const USER_DATA: u16 = 0x18 | 3;
    /// Ring-3 64-bit code (RPL 3).
    pub const USER_CODE: u16 = 0x20 | 3;
    /// TSS of vCPU 0; vCPU `n` uses `TSS_BASE + 16 * n` (a TSS descriptor takes two slots).
    pub const TSS_BASE: u16 = 0x28;
}

/// General-purpose registers at entry, the same on every vCPU but for `rdi` and `rsp`:
/// - `rip`: the image's ELF entry point;
/// - `rsi`: [`BOOT_PARAMS_ADDR`] (as in the Linux 64-bit boot protocol);
/// - `rdi`: the vCPU index, 0 for the boot vCPU;
/// - `rsp`: the top of [`stack`] for that vCPU minus 8, as after a `call`;
/// - `rflags`: [`entry::RFLAGS`].
pub mod entry {
    /// Only the always-one bit: IOPL 0, interrupts off.
    pub const RFLAGS: u64 = 0x2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_do_not_overlap_and_stay_in_their_region() {
        let mut prev_bottom = u64::MAX;
        for vcpu in 0..MAX_VCPUS {
            let (bottom, top) = stack(vcpu).unwrap();
            assert!(top <= prev_bottom - if vcpu == 0 { 0 } else { PAGE_SIZE });
            assert!(bottom >= 0x10_0000, "vCPU {vcpu} stack below its region");
            assert_eq!(bottom % PAGE_SIZE, 0);
            prev_bottom = bottom;
        }
        assert_eq!(stack(MAX_VCPUS), None);
    }
}
