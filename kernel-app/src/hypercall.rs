//! The launcher's hypercalls (see `spacecore_abi::hypercall`), one VM exit each.

use crate::arch::out32;
use core::sync::atomic::{AtomicBool, Ordering};
use spacecore_abi::hypercall::{Buffer, Hypercall, Wait, events};

/// Set once a `wait` has returned [`events::STOP`]: the launcher reports an event once, and
/// waits happen in several places (the main loop, block requests), so the stop is kept here.
static STOP: AtomicBool = AtomicBool::new(false);

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

/// Whether the launcher has asked the guest to stop (seen by any [`wait`]).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed) || crate::arch::event_word() & events::STOP != 0
}

/// Blocks this vCPU until an event is pending or `timeout_ns` has passed; returns the events
/// (0 on timeout). A timeout of 0 only collects pending events.
pub fn wait(timeout_ns: u64) -> u64 {
    let record = Wait { timeout_ns, events: 0 }.encode();
    out32(Hypercall::Wait.port(), record_addr(&record));
    // The launcher wrote the events into the record: read it back through a volatile load so
    // the compiler cannot reuse the value it stored.
    // SAFETY: `record` is a live, aligned local array.
    let bytes = unsafe { core::ptr::read_volatile(&record) };
    let events = Wait::decode(&bytes).map_or(0, |w| w.events);
    if events & events::STOP != 0 {
        STOP.store(true, Ordering::Relaxed);
    }
    events
}

/// The snapshot point (see `Hypercall::Snapshot`), `idle` if every other vCPU is idle: true
/// when this guest was started from a snapshot and resumes here, so its boot information and
/// command line must be read again.
pub fn snapshot_point(idle: bool) -> bool {
    let record = u64::from(idle).to_le_bytes();
    out32(Hypercall::Snapshot.port(), record_addr(&record));
    // SAFETY: `record` is a live, aligned local array the launcher wrote.
    let bytes = unsafe { core::ptr::read_volatile(&record) };
    u64::from_le_bytes(bytes) == spacecore_abi::hypercall::SNAPSHOT_RESTORED
}

/// Takes the operator keystore's password that the launcher holds for this boot (read from the
/// spec's `keystore_password_file`); `None` if it has none or already handed it over. The
/// buffer is wiped when dropped.
pub fn keystore_password() -> Option<zeroize::Zeroizing<alloc::vec::Vec<u8>>> {
    take_password(Hypercall::KeystorePassword)
}

/// Takes the password of the operator's ECDSA keystore that the launcher holds for this boot
/// (the spec's `ecdsa_keystore_password_file`); `None` if it has none or already handed it
/// over. The buffer is wiped when dropped.
pub fn ecdsa_keystore_password() -> Option<zeroize::Zeroizing<alloc::vec::Vec<u8>>> {
    take_password(Hypercall::EcdsaKeystorePassword)
}

/// One of the password hypercalls, retried once with a buffer as long as the password if the
/// first was too short.
fn take_password(call: Hypercall) -> Option<zeroize::Zeroizing<alloc::vec::Vec<u8>>> {
    use spacecore_abi::hypercall::{KEYSTORE_PASSWORD_NONE, MAX_KEYSTORE_PASSWORD};
    let mut buf = zeroize::Zeroizing::new(alloc::vec![0u8; 128]);
    loop {
        let record = Buffer { addr: buf.as_mut_ptr() as u64, len: buf.len() as u64 }.encode();
        out32(call.port(), record_addr(&record));
        // SAFETY: `record` is a live, aligned local array the launcher wrote into.
        let bytes = unsafe { core::ptr::read_volatile(&record) };
        let len = Buffer::decode(&bytes)?.len;
        if len == KEYSTORE_PASSWORD_NONE || len > MAX_KEYSTORE_PASSWORD as u64 {
            return None;
        }
        let len = len as usize;
        if len <= buf.len() {
            buf.truncate(len);
            return Some(buf);
        }
        // Too small: the launcher kept it; ask again with room for all of it.
        buf = zeroize::Zeroizing::new(alloc::vec![0u8; len]);
    }
}
