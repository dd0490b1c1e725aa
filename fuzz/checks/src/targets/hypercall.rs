//! The launcher's hypercall handler (`hac-launch`'s `vmm::hypercall`, through
//! [`host_launcher::vmm::Detached`]) fed hostile port writes over guest memory the input fills
//! (input format: [`crate::hypercalls`]), on the memory layout of a real guest of 4 MiB:
//!
//! * it never panics;
//! * it never touches the ring-0 region below `GUEST_BASE` (page tables, descriptor tables,
//!   trap stacks, boot information): those pages are made inaccessible while it runs, so a read
//!   or a write there kills the target;
//! * the only guest memory it changes is the `events` word of a `Wait` record (set to the events
//!   raised), and the `len` word of a password call's record (the password's length or
//!   `KEYSTORE_PASSWORD_NONE`) and the buffer it describes (the password, exactly); every other
//!   byte of guest RAM is as before;
//! * each password is handed over at most once, and only to a buffer that holds it;
//! * console text reaches the log exactly as the guest's buffer holds it, cut at `MAX_MESSAGE`
//!   bytes (with ` [cut]`): a write never logs more than that, and nothing else logs at all; a
//!   panic's message is the buffer's text under the same cut;
//! * the guest exits only by `Exit` with its status (0 to 99), panics only by `Panic`; every
//!   other end is an ABI violation naming the vCPU, and the first end ends the case, as it ends
//!   the guest.

use std::io::Write;
use std::sync::{Arc, Mutex};

use host_launcher::output::{Log, LogFormat};
use host_launcher::vmm::memory::{self, Memory};
use host_launcher::vmm::{Detached, Outcome};
use spacecore_abi::exit::GUEST_STATUS_MAX;
use spacecore_abi::hypercall::{
    Buffer, Hypercall, KEYSTORE_PASSWORD_NONE, MAX_MESSAGE, SNAPSHOT_FRESH, events,
};
use spacecore_abi::layout::GUEST_BASE;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::hypercalls::{HypercallCase, MEMORY};

/// A log sink in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What [`Log::guest`] writes for `text`.
fn logged(text: &str) -> Vec<u8> {
    let sink = Captured::default();
    Log::to("fuzz", LogFormat::Text, Box::new(sink.clone())).guest(text);
    sink.take()
}

/// Makes the ring-0 regions (below `GUEST_BASE`) inaccessible, or accessible again.
fn protect_ring0(mem: &Memory, accessible: bool) {
    let prot = if accessible { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_NONE };
    for region in mem.iter().filter(|r| r.start_addr().0 < GUEST_BASE) {
        let host = mem.get_host_address(region.start_addr()).expect("a mapped region");
        // SAFETY: `host..host + len` is the region's own mapping, which `mem` keeps alive; only
        // its protection changes, and nothing touches it while it is inaccessible but the code
        // under test, which must not.
        let rc = unsafe { libc::mprotect(host.cast(), region.len() as usize, prot) };
        assert_eq!(rc, 0, "mprotect: {}", std::io::Error::last_os_error());
    }
}

/// Guest RAM from `GUEST_BASE` to the end, copied (with `memcpy`: reading 3 MiB through
/// `Bytes::read_slice` would cost more than the rest of a case).
fn guest_ram(mem: &Memory) -> Vec<u8> {
    let len = (MEMORY - GUEST_BASE) as usize;
    let region = mem.find_region(GuestAddress(GUEST_BASE)).expect("guest RAM");
    assert!(region.start_addr().0 == GUEST_BASE && region.len() as usize == len, "one region of RAM");
    let host = mem.get_host_address(GuestAddress(GUEST_BASE)).expect("guest RAM");
    // SAFETY: `host..host + len` is that region's mapping, alive as long as `mem`; nothing writes
    // guest memory while this copies it (the handler runs on this thread, and not now).
    unsafe { std::slice::from_raw_parts(host.cast_const(), len) }.to_vec()
}

/// The record a call's argument points to, if it lies where the launcher reads records.
fn record(mem: &Memory, arg: u32) -> Option<Buffer> {
    let addr = u64::from(arg);
    let mut bytes = [0; Buffer::SIZE];
    (addr >= GUEST_BASE && mem.read_slice(&mut bytes, GuestAddress(addr)).is_ok())
        .then(|| Buffer::decode(&bytes))
        .flatten()
}

/// The text of a message buffer as the launcher must read it (only called for accepted ones).
fn message(mem: &Memory, buffer: Buffer) -> String {
    let len = buffer.len.min(MAX_MESSAGE);
    assert!(buffer.addr >= GUEST_BASE || len == 0, "a message below GUEST_BASE was accepted: {buffer:?}");
    let mut bytes = vec![0; len as usize];
    mem.read_slice(&mut bytes, GuestAddress(buffer.addr)).expect("an accepted message is in guest memory");
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if buffer.len > MAX_MESSAGE {
        text.push_str(" [cut]");
    }
    text
}

/// Copies `len` bytes at `addr` of the guest's memory into `model` (guest RAM from
/// `GUEST_BASE`): a write the launcher was allowed to make.
fn allow(model: &mut [u8], mem: &Memory, addr: u64, len: usize) {
    let at = usize::try_from(addr - GUEST_BASE).expect("inside guest RAM");
    mem.read_slice(&mut model[at..at + len], GuestAddress(addr)).expect("inside guest RAM");
}

fn read_u64(mem: &Memory, addr: u64) -> u64 {
    mem.read_obj(GuestAddress(addr)).expect("a record in guest memory")
}

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let case = HypercallCase::parse(data);
    let mem = memory::map(MEMORY).expect("guest memory");
    mem.write_slice(&case.image, GuestAddress(GUEST_BASE)).expect("the image fits");
    let mut model = guest_ram(&mem);
    let log = Captured::default();
    let guest = Detached::new(
        case.vcpus,
        MEMORY,
        Log::to("fuzz", LogFormat::Text, Box::new(log.clone())),
        case.keystore.load(),
        case.ecdsa.load(),
    );
    let passwords = [case.keystore.bytes(), case.ecdsa.bytes()];
    let mut handed_over = [false, false];

    protect_ring0(&mem, false);
    for call in &case.calls {
        let which = Hypercall::from_port(call.port);
        let arg = match (which, call.data.as_slice()) {
            (Some(_), &[a, b, c, d]) => Some(u32::from_le_bytes([a, b, c, d])),
            (Some(Hypercall::Fault), &[a]) => Some(u32::from(a)),
            _ => None,
        };
        let before = arg.and_then(|arg| record(&mem, arg));
        if which == Some(Hypercall::Wait) {
            // A Wait returns the events raised (at once: they are raised first).
            guest.post(events::DEVICE);
        }
        let result = guest.port_write(&mem, call.vcpu, call.port, &call.data);
        let written = log.take();
        if which != Some(Hypercall::ConsoleWrite) || result.is_err() {
            assert!(written.is_empty(), "{which:?} logged {} bytes", written.len());
        }
        let outcome = result.err();
        match (which, arg, &outcome) {
            (_, _, Some(Outcome::AbiViolation(what))) => {
                assert!(what.starts_with(&format!("vCPU {}: ", call.vcpu)), "{what}");
            }
            (Some(Hypercall::ConsoleWrite), Some(_), None) => {
                let buffer = before.expect("a console write without a record was accepted");
                let text = message(&mem, buffer);
                assert!(written == logged(&text), "the console got other text than the guest's buffer");
            }
            (Some(Hypercall::Ready), Some(_), None) => {}
            (Some(Hypercall::Exit), Some(arg), Some(Outcome::Exited(status))) => {
                assert!(u32::from(*status) == arg && *status <= GUEST_STATUS_MAX, "exit {status} for {arg}");
            }
            (Some(Hypercall::Panic), Some(_), Some(Outcome::Panicked(text))) => {
                let buffer = before.expect("a panic without a record was accepted");
                assert!(*text == message(&mem, buffer), "the panic message is not the guest's buffer");
            }
            (Some(Hypercall::Wait), Some(arg), None) => {
                before.expect("a wait without a record was accepted");
                let at = u64::from(arg) + 8;
                assert_eq!(read_u64(&mem, at), events::DEVICE, "the events written back");
                allow(&mut model, &mem, at, 8);
            }
            (Some(Hypercall::Snapshot), Some(arg), None) => {
                // A boot that saves no snapshot: the guest is told it booted fresh, in its record.
                let at = u64::from(arg);
                assert!(at >= GUEST_BASE, "a snapshot record below GUEST_BASE was accepted");
                assert_eq!(read_u64(&mem, at), SNAPSHOT_FRESH, "the snapshot point's answer");
                allow(&mut model, &mem, at, 8);
            }
            (
                Some(call @ (Hypercall::KeystorePassword | Hypercall::EcdsaKeystorePassword)),
                Some(arg),
                None,
            ) => {
                let which = usize::from(call == Hypercall::EcdsaKeystorePassword);
                let buffer = before.expect("a password call without a record was accepted");
                let at = u64::from(arg) + 8;
                let answer = read_u64(&mem, at);
                match &passwords[which] {
                    Some(password) if !handed_over[which] => {
                        let len = password.len() as u64;
                        assert_eq!(answer, len, "{call:?}: the answer to {buffer:?}");
                        if buffer.len >= len {
                            assert!(buffer.addr >= GUEST_BASE, "a password written below GUEST_BASE");
                            // The record's `len` is written after the password: where they
                            // overlap, the record wins.
                            allow(&mut model, &mem, buffer.addr, password.len());
                            let mut got = vec![0; password.len()];
                            mem.read_slice(&mut got, GuestAddress(buffer.addr)).expect("guest RAM");
                            let (start, end) = (buffer.addr, buffer.addr + len);
                            let intact = (start..end).all(|a| {
                                (at..at + 8).contains(&a)
                                    || got[(a - start) as usize] == password[(a - start) as usize]
                            });
                            assert!(intact, "{call:?}: the buffer does not hold the password");
                            handed_over[which] = true;
                        }
                    }
                    _ => assert_eq!(answer, KEYSTORE_PASSWORD_NONE, "{call:?}: no password to hand over"),
                }
                allow(&mut model, &mem, at, 8);
            }
            (which, _, outcome) => {
                panic!("{which:?} from port {:#x} {:?} ended in {outcome:?}", call.port, call.data)
            }
        }
        if outcome.is_some() {
            break;
        }
    }
    protect_ring0(&mem, true);
    let ram = guest_ram(&mem);
    if ram != model {
        let at = ram.iter().zip(&model).position(|(a, b)| a != b).unwrap_or_default();
        panic!("guest memory at {:#x} changed", GUEST_BASE + at as u64);
    }
}
