//! Hypercall handling: the only place where the launcher acts on what the guest asks.
//!
//! Every record and buffer address comes from the guest and is checked: records must lie in
//! guest-owned memory (at or above `GUEST_BASE`), buffers entirely inside guest memory with
//! overflow-checked arithmetic. A bad one ends this guest with a report; nothing here can make
//! the launcher panic.

use super::{Outcome, control::Control, fault, memory::Memory};
use crate::keystore_password::KeystorePassword;
use crate::output::Log;
use kvm_ioctls::VcpuFd;
use spacecore_abi::exit::GUEST_STATUS_MAX;
use spacecore_abi::hypercall::{
    BUFFER_LEN_OFFSET, Buffer, Hypercall, KEYSTORE_PASSWORD_NONE, MAX_MESSAGE, SNAPSHOT_FRESH, SNAPSHOT_IDLE,
    SNAPSHOT_RESTORED, WAIT_EVENTS_OFFSET, WAIT_FOREVER, Wait,
};
use spacecore_abi::layout::GUEST_BASE;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// What a hypercall handler needs.
#[derive(Debug)]
pub struct Context<'a> {
    /// Index of the calling vCPU.
    pub vcpu: u32,
    /// Guest memory.
    pub mem: &'a Memory,
    /// Shared run state.
    pub control: &'a Control,
    /// Output.
    pub log: &'a Log,
    /// The device windows.
    pub bus: &'a super::bus::Bus,
    /// Guest memory KVM may not map yet.
    pub late: &'a super::memory::LateMemory,
    /// The keystore passwords of this boot.
    pub passwords: &'a Passwords,
    /// What happens at the guest's snapshot point.
    pub point: &'a super::snapshot::Point,
}

/// The two passwords a boot may take, each once: the operator's BLS key file's
/// ([`Hypercall::KeystorePassword`]) and its ECDSA keystore's
/// ([`Hypercall::EcdsaKeystorePassword`]). Taking one does not take the other.
#[derive(Debug, Default)]
pub struct Passwords {
    /// `spec.avs.keystore_password_file`.
    pub keystore: PasswordHandover,
    /// `spec.avs.ecdsa_keystore_password_file`.
    pub ecdsa: PasswordHandover,
}

/// The keystore password as one boot sees it: the launcher's password, if any, and whether the
/// guest has taken it during this boot. A new boot gets a new one, holding the same password.
#[derive(Debug, Default)]
pub struct PasswordHandover {
    password: Option<Arc<KeystorePassword>>,
    handed_over: AtomicBool,
}

impl PasswordHandover {
    /// `password` (if any), not handed over yet.
    pub fn new(password: Option<Arc<KeystorePassword>>) -> Self {
        PasswordHandover { password, handed_over: AtomicBool::new(false) }
    }

    /// The password, unless there is none or it was handed over.
    fn available(&self) -> Option<&KeystorePassword> {
        self.password.as_deref().filter(|_| !self.handed_over.load(Ordering::Acquire))
    }

    /// Marks it handed over; false if it already was (by another vCPU, just now).
    fn take(&self) -> bool {
        self.handed_over.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// Handles a port write by the guest. `Err` ends the guest with that outcome.
pub fn handle(ctx: &Context, fd: &mut VcpuFd, port: u16, data: &[u8]) -> Result<(), Outcome> {
    match decode(ctx, port, data)? {
        (Hypercall::Fault, arg) => Err(fault::report(ctx.vcpu, fd, ctx.mem, arg)),
        (Hypercall::Snapshot, arg) => snapshot_point(ctx, Some(fd), arg),
        (call, arg) => serve(ctx, call, arg),
    }
}

/// The hypercall and its argument a port write makes; `Err` for an unknown port or a write of
/// the wrong size.
fn decode(ctx: &Context, port: u16, data: &[u8]) -> Result<(Hypercall, u32), Outcome> {
    let violation = |what: String| violation(ctx, what);
    let call =
        Hypercall::from_port(port).ok_or_else(|| violation(format!("write to unknown port {port:#x}")))?;
    let arg = match *data {
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
        [a] if call == Hypercall::Fault => u32::from(a),
        _ => {
            return Err(violation(format!(
                "{call:?} hypercall with a {}-byte write; expected 4",
                data.len()
            )));
        }
    };
    Ok((call, arg))
}

/// Every hypercall but `Fault`, which needs the vCPU's registers.
fn serve(ctx: &Context, call: Hypercall, arg: u32) -> Result<(), Outcome> {
    let violation = |what: String| violation(ctx, what);
    match call {
        Hypercall::ConsoleWrite => {
            let text = read_message(ctx, arg).map_err(|e| violation(format!("console write: {e}")))?;
            if let super::console::Admission::Write { dropped } = ctx.control.console_admit(text.len()) {
                if dropped > 0 {
                    ctx.log.launcher(format_args!(
                        "console: {dropped} bytes of guest output dropped (over {} KiB/s)",
                        super::console::RATE >> 10
                    ));
                }
                ctx.log.guest(&text);
            }
            Ok(())
        }
        Hypercall::Ready => {
            ctx.control.set_ready(Instant::now());
            Ok(())
        }
        Hypercall::Exit => match u8::try_from(arg) {
            Ok(status) if status <= GUEST_STATUS_MAX => Err(Outcome::Exited(status)),
            _ => Err(violation(format!("exit status {arg} is reserved; guests use 0..={GUEST_STATUS_MAX}"))),
        },
        Hypercall::Panic => {
            let message = read_message(ctx, arg).map_err(|e| violation(format!("panic: {e}")))?;
            Err(Outcome::Panicked(message))
        }
        Hypercall::Wait => wait(ctx, arg).map_err(|e| violation(format!("wait: {e}"))),
        Hypercall::KeystorePassword => keystore_password(ctx, &ctx.passwords.keystore, arg)
            .map_err(|e| violation(format!("keystore password: {e}"))),
        Hypercall::EcdsaKeystorePassword => keystore_password(ctx, &ctx.passwords.ecdsa, arg)
            .map_err(|e| violation(format!("ECDSA keystore password: {e}"))),
        // `handle` reports faults and takes snapshots itself, with the vCPU's registers.
        Hypercall::Fault => Err(violation("fault report without its vCPU".into())),
        Hypercall::Snapshot => Err(violation("snapshot point without its vCPU".into())),
    }
}

/// The guest on this vCPU broke the ABI: `what` says how.
pub fn violation(ctx: &Context, what: String) -> Outcome {
    Outcome::AbiViolation(format!("vCPU {}: {what}", ctx.vcpu))
}

/// Reads a record of `N` bytes at the guest address `addr`.
fn read_record<const N: usize>(mem: &Memory, addr: u32) -> Result<[u8; N], String> {
    let addr = u64::from(addr);
    if addr < GUEST_BASE {
        return Err(format!("record at {addr:#x} lies in the launcher's region (below {GUEST_BASE:#x})"));
    }
    let mut record = [0u8; N];
    mem.read_slice(&mut record, GuestAddress(addr))
        .map_err(|_| format!("record at {addr:#x} ({N} bytes) is outside guest memory"))?;
    Ok(record)
}

/// Reads the text a [`Buffer`] record at `arg` points to, cut at [`MAX_MESSAGE`] bytes. The
/// text must lie in the guest's own memory, at or above `GUEST_BASE`: the ring-0 structures
/// below it are not the guest's to print.
fn read_message(ctx: &Context, arg: u32) -> Result<String, String> {
    let buffer =
        Buffer::decode(&read_record::<{ Buffer::SIZE }>(ctx.mem, arg)?).ok_or("short buffer record")?;
    let len = buffer.len.min(MAX_MESSAGE);
    let end =
        buffer.addr.checked_add(len).ok_or_else(|| format!("buffer at {:#x} wraps around", buffer.addr))?;
    if buffer.addr < GUEST_BASE && len > 0 {
        return Err(format!(
            "buffer {:#x}..{end:#x} starts in the launcher's region (below {GUEST_BASE:#x})",
            buffer.addr
        ));
    }
    let mut bytes = vec![0u8; len as usize];
    ctx.mem
        .read_slice(&mut bytes, GuestAddress(buffer.addr))
        .map_err(|_| format!("buffer {:#x}..{end:#x} is outside guest memory", buffer.addr))?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if buffer.len > MAX_MESSAGE {
        text.push_str(" [cut]");
    }
    Ok(text)
}

/// Blocks the vCPU as a [`Wait`] record asks and writes the events back into it.
fn wait(ctx: &Context, arg: u32) -> Result<(), String> {
    let record = Wait::decode(&read_record::<{ Wait::SIZE }>(ctx.mem, arg)?).ok_or("short wait record")?;
    let timeout = (record.timeout_ns != WAIT_FOREVER).then(|| Duration::from_nanos(record.timeout_ns));
    let events = ctx.control.wait_events(ctx.vcpu, timeout);
    ctx.mem
        .write_obj(events, GuestAddress(u64::from(arg) + WAIT_EVENTS_OFFSET))
        .map_err(|_| "wait record became unwritable".to_owned())
}

/// The guest's snapshot point ([`Hypercall::Snapshot`]): answers [`SNAPSHOT_FRESH`] and lets
/// the guest go on, or, when this boot saves a snapshot, answers [`SNAPSHOT_RESTORED`] (what
/// the guest will read when started from it), takes the vCPU's state and ends the run with
/// [`Outcome::Saved`]; the launcher then saves the memory and the devices.
fn snapshot_point(ctx: &Context, fd: Option<&mut VcpuFd>, arg: u32) -> Result<(), Outcome> {
    let violation = |what: String| violation(ctx, format!("snapshot point: {what}"));
    let idle = u64::from_le_bytes(read_record::<8>(ctx.mem, arg).map_err(violation)?) == SNAPSHOT_IDLE;
    let answer = |value: u64| {
        ctx.mem
            .write_obj(value, GuestAddress(u64::from(arg)))
            .map_err(|_| violation("record became unwritable".into()))
    };
    let super::snapshot::Point::Save(slot) = ctx.point else { return answer(SNAPSHOT_FRESH) };
    let state = if !idle {
        Err("the guest's other vCPUs were not idle at its snapshot point".to_owned())
    } else {
        let Some(fd) = fd.filter(|_| ctx.vcpu == 0) else {
            return Err(violation(format!("called on vCPU {}; only the first vCPU may", ctx.vcpu)));
        };
        answer(SNAPSHOT_RESTORED)?;
        super::vcpu_state::capture(fd)
    };
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
    Err(Outcome::Saved)
}

/// Answers a [`Hypercall::KeystorePassword`] or [`Hypercall::EcdsaKeystorePassword`] call
/// with the password of `handover`: writes it into the buffer the [`Buffer`] record at `arg`
/// describes if it fits, and its length (or [`KEYSTORE_PASSWORD_NONE`]) into the record's `len`.
fn keystore_password(ctx: &Context, handover: &PasswordHandover, arg: u32) -> Result<(), String> {
    let buffer =
        Buffer::decode(&read_record::<{ Buffer::SIZE }>(ctx.mem, arg)?).ok_or("short buffer record")?;
    let answer = match handover.available() {
        None => KEYSTORE_PASSWORD_NONE,
        Some(password) if buffer.len < password.as_bytes().len() as u64 => password.as_bytes().len() as u64,
        Some(password) => {
            let at = writable_buffer(ctx.mem, buffer)?;
            if handover.take() {
                ctx.mem
                    .write_slice(password.as_bytes(), at)
                    .map_err(|_| format!("buffer at {:#x} became unwritable", buffer.addr))?;
                password.as_bytes().len() as u64
            } else {
                KEYSTORE_PASSWORD_NONE
            }
        }
    };
    ctx.mem
        .write_obj(answer, GuestAddress(u64::from(arg) + BUFFER_LEN_OFFSET))
        .map_err(|_| "buffer record became unwritable".to_owned())
}

/// Checks that the launcher may write the whole of `buffer`: guest RAM at or above
/// `GUEST_BASE` (below it lie the page tables, descriptor tables and boot information, which the
/// guest must not be able to make the launcher overwrite), with no hole and no wrap-around.
fn writable_buffer(mem: &Memory, buffer: Buffer) -> Result<GuestAddress, String> {
    let Buffer { addr, len } = buffer;
    let end = addr.checked_add(len).ok_or_else(|| format!("buffer at {addr:#x} wraps around"))?;
    if addr < GUEST_BASE {
        return Err(format!(
            "buffer {addr:#x}..{end:#x} starts in the launcher's region (below {GUEST_BASE:#x})"
        ));
    }
    match usize::try_from(len) {
        Ok(len) if mem.check_range(GuestAddress(addr), len) => Ok(GuestAddress(addr)),
        _ => Err(format!("buffer {addr:#x}..{end:#x} is not all guest memory")),
    }
}

/// A guest's hypercalls served without KVM: its run state, device windows (none) and
/// passwords, over guest memory the caller keeps. For exercising the handler from outside the
/// launcher (the `hypercall` fuzz target of `fuzz/`); a running VM uses [`handle`].
///
/// [`Detached::port_write`] is [`handle`] but for `Fault`, which reads the registers of a vCPU
/// there is none of here: it is refused as an ABI violation; and a `Snapshot` is answered as in
/// a boot that saves no snapshot. A `Wait` blocks as it does in a VM, until an event
/// [`Detached::post`] raised or its timeout.
#[derive(Debug)]
pub struct Detached {
    vcpus: u32,
    control: Control,
    log: Log,
    bus: super::bus::Bus,
    late: super::memory::LateMemory,
    passwords: Passwords,
}

impl Detached {
    /// A guest of `vcpus` vCPUs and `memory_bytes` of memory whose console goes to `log`, booted
    /// with these passwords (the BLS key file's, the ECDSA keystore's).
    pub fn new(
        vcpus: u32,
        memory_bytes: u64,
        log: Log,
        keystore: Option<Arc<KeystorePassword>>,
        ecdsa: Option<Arc<KeystorePassword>>,
    ) -> Self {
        Detached {
            vcpus,
            control: Control::new(vcpus, Default::default()),
            log,
            bus: Default::default(),
            late: super::memory::LateMemory::new(memory_bytes),
            passwords: Passwords {
                keystore: PasswordHandover::new(keystore),
                ecdsa: PasswordHandover::new(ecdsa),
            },
        }
    }

    /// Raises `events` for every vCPU, as the launcher does: a `Wait` returns them.
    pub fn post(&self, events: u64) {
        self.control.post(events);
    }

    /// Serves the guest's write of `data` to `port` on vCPU `vcpu` (less than the vCPUs given to
    /// [`Detached::new`]) with guest memory `mem`. `Err` ends the guest with that outcome.
    pub fn port_write(&self, mem: &Memory, vcpu: u32, port: u16, data: &[u8]) -> Result<(), Outcome> {
        assert!(vcpu < self.vcpus, "vCPU {vcpu} of {}", self.vcpus);
        let ctx = Context {
            vcpu,
            mem,
            control: &self.control,
            log: &self.log,
            bus: &self.bus,
            late: &self.late,
            passwords: &self.passwords,
            point: &super::snapshot::Point::Continue,
        };
        match decode(&ctx, port, data)? {
            (Hypercall::Fault, _) => Err(violation(&ctx, "fault report without its vCPU".into())),
            (Hypercall::Snapshot, arg) => snapshot_point(&ctx, None, arg),
            (call, arg) => serve(&ctx, call, arg),
        }
    }
}

#[cfg(test)]
mod tests;
