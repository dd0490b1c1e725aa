//! Exit statuses of `hac-launch`.
//!
//! A guest that calls [`crate::hypercall::Hypercall::Exit`] with a status in
//! `0..=GUEST_STATUS_MAX` makes the launcher exit with that same status; a guest stopped by
//! SIGTERM or SIGINT gives 0. The launcher's own outcomes use the values below.

/// Highest status a guest may exit with; the values above are the launcher's.
pub const GUEST_STATUS_MAX: u8 = 99;
/// The launcher itself failed (KVM, host I/O, resources).
pub const LAUNCHER_ERROR: u8 = 1;
/// The spec file or the command line is wrong; nothing was started.
pub const BAD_SPEC: u8 = 2;
/// The guest panicked; its message was reported.
pub const GUEST_PANIC: u8 = 101;
/// The guest took a CPU exception (page fault, general protection, ...); a crash report was
/// printed.
pub const GUEST_FAULT: u8 = 102;
/// The guest broke the ABI: a bad hypercall, address, length or status.
pub const GUEST_ABI_VIOLATION: u8 = 103;
/// KVM could not run the guest any further (internal error, triple fault, unexpected exit).
pub const GUEST_KVM_ERROR: u8 = 104;
/// The guest did not signal ready within the launcher's time limit.
pub const GUEST_NOT_READY: u8 = 105;
