//! The ABI between the Spacecore launcher (`hac-launch`) and the unikernel it boots.
//!
//! Everything both sides must agree on lives here and nowhere else:
//! - [`layout`]: the guest-physical memory map and the CPU state at entry;
//! - [`boot`]: the boot information (Linux `boot_params` offsets plus Spacecore's own record);
//! - [`hypercall`]: the hypercall numbers, their argument records and their events;
//! - [`exit`]: the launcher's exit statuses.
//!
//! Records crossing the boundary are encoded explicitly in little-endian by `encode`/`decode`
//! functions: neither side reinterprets raw memory as a Rust type, and `decode` validates what it
//! reads. Bump [`ABI_VERSION`] on any incompatible change.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod boot;
pub mod exit;
pub mod hypercall;
pub mod layout;

/// Version of this ABI; the launcher writes it into [`boot::BootInfo`] and the guest refuses to
/// run on a version it was not built for.
pub const ABI_VERSION: u32 = 1;

/// Reads a little-endian `u64` at `off`; `None` if `bytes` is too short.
fn le_u64(bytes: &[u8], off: usize) -> Option<u64> {
    let b = bytes.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Reads a little-endian `u32` at `off`; `None` if `bytes` is too short.
fn le_u32(bytes: &[u8], off: usize) -> Option<u32> {
    let b = bytes.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}
