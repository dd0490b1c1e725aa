//! The launcher's hypercalls (see `spacecore_abi::hypercall`), one VM exit each.

use crate::arch::out32;
use spacecore_abi::hypercall::{Buffer, Hypercall, Wait};

/// Address of a record on the stack, as the 32-bit argument the ABI carries. Stacks lie in the
/// first 2 MiB (`spacecore_abi::layout::stack`), so the address always fits.
fn record_addr<T>(record: &T) -> u32 {
    let addr = record as *const T as u64;
    u32::try_from(addr).expect("hypercall record above 4 GiB: stacks are below 2 MiB")
}

/// Sends `bytes` to the console.
pub fn console_write(bytes: &[u8]) {
    let record = Buffer { addr: bytes.as_ptr() as u64, len: bytes.len() as u64 }.encode();
    out32(Hypercall::ConsoleWrite.port(), record_addr(&record));
}

/// Tells the launcher the guest is ready to serve.
pub fn ready() {
    out32(Hypercall::Ready.port(), 0);
}

/// Ends the guest with `status` (0..=99).
pub fn exit(status: u8) -> ! {
    out32(Hypercall::Exit.port(), u32::from(status));
    unreachable!("the launcher resumed the guest after exit")
}

/// Reports a panic message and ends the guest.
pub fn panic(message: &[u8]) -> ! {
    let record = Buffer { addr: message.as_ptr() as u64, len: message.len() as u64 }.encode();
    out32(Hypercall::Panic.port(), record_addr(&record));
    unreachable!("the launcher resumed the guest after a panic")
}

/// Blocks this vCPU until an event is pending or `timeout_ns` has passed; returns the events
/// (0 on timeout).
pub fn wait(timeout_ns: u64) -> u64 {
    let record = Wait { timeout_ns, events: 0 }.encode();
    out32(Hypercall::Wait.port(), record_addr(&record));
    // The launcher wrote the events into the record: read it back through a volatile load so
    // the compiler cannot reuse the value it stored.
    // SAFETY: `record` is a live, aligned local array.
    let bytes = unsafe { core::ptr::read_volatile(&record) };
    Wait::decode(&bytes).map_or(0, |w| w.events)
}
