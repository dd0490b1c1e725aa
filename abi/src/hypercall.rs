//! Hypercalls: how the guest asks the launcher for something.
//!
//! A hypercall is one 32-bit port write, `out dx, eax`, at CPL3 (the TSS I/O bitmap allows
//! these ports and no others):
//! `dx = PORT_BASE + number`, `eax` = the argument. For calls that take a record, `eax` is the
//! guest-physical address of that record, which must lie below 4 GiB (the guest keeps them on its
//! stack, which the memory map places in the first 2 MiB). Each call is one VM exit.
//!
//! The launcher checks every address and length it reads; a bad one ends the guest with
//! [`crate::exit::GUEST_ABI_VIOLATION`] and a report naming the call.

use crate::le_u64;

/// Port of hypercall number 0.
pub const PORT_BASE: u16 = 0x0500;
/// Ports in the hypercall range.
pub const PORT_COUNT: u16 = 16;

/// Longest console write or panic message the launcher reads; longer ones are cut there.
pub const MAX_MESSAGE: u64 = 4096;

/// Longest keystore password the launcher hands over (see [`Hypercall::KeystorePassword`] and
/// [`Hypercall::EcdsaKeystorePassword`]).
pub const MAX_KEYSTORE_PASSWORD: usize = 4096;
/// The `len` the launcher writes back from [`Hypercall::KeystorePassword`] (or
/// [`Hypercall::EcdsaKeystorePassword`]) when there is no password to hand over: none is configured, or it was already handed over during this boot.
pub const KEYSTORE_PASSWORD_NONE: u64 = u64::MAX;
/// Offset of `len` in a [`Buffer`] record: the field [`Hypercall::KeystorePassword`] writes.
pub const BUFFER_LEN_OFFSET: u64 = 8;

/// The hypercalls, numbered by their offset from [`PORT_BASE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Hypercall {
    /// Write text to the console. Argument: address of a [`Buffer`] (UTF-8, lines end in `\n`).
    ConsoleWrite = 0,
    /// The guest is ready to serve. Argument: ignored.
    Ready = 1,
    /// The guest is done. Argument: exit status, 0..=99 (higher values are reserved).
    Exit = 2,
    /// The guest panicked. Argument: address of a [`Buffer`] holding the message. Never returns.
    Panic = 3,
    /// Block this vCPU until an event or a timeout. Argument: address of a [`Wait`] record.
    Wait = 4,
    /// Ask for the operator keystore's password. Argument: address of a [`Buffer`] record
    /// describing a guest buffer; the launcher answers in the record's `len` (at
    /// [`BUFFER_LEN_OFFSET`]) and touches nothing else but the buffer:
    /// - no password configured, or already handed over during this boot: `len` =
    ///   [`KEYSTORE_PASSWORD_NONE`];
    /// - `len` is less than the password's length: `len` = the password's length (at most
    ///   [`MAX_KEYSTORE_PASSWORD`]), nothing is handed over, so the guest may ask again with a
    ///   buffer that large;
    /// - otherwise: the password (UTF-8, no trailing newline) is written at `addr`, `len` = its
    ///   length, and it is handed over: later calls during this boot get
    ///   [`KEYSTORE_PASSWORD_NONE`].
    ///
    /// In the last case the whole buffer must lie in guest RAM at or above
    /// [`crate::layout::GUEST_BASE`], or the call is an ABI violation.
    KeystorePassword = 5,
    /// Ask for the password of the operator's ECDSA keystore (the spec's
    /// `ecdsa_keystore_password_file`). The same record, answers, limits and once-per-boot
    /// handover as [`Hypercall::KeystorePassword`], for the second password; the two are
    /// handed over independently (taking one does not take the other).
    EcdsaKeystorePassword = 6,
    /// The snapshot point: the guest has set up everything that is the same for every
    /// spacecore of its image and spec (heap, devices), and has read nothing of its disk and
    /// drawn nothing random. Argument: address of an 8-byte record (`u64`, in guest RAM at or
    /// above [`crate::layout::GUEST_BASE`]): in, [`SNAPSHOT_IDLE`] if every other vCPU is idle
    /// (else 0: no snapshot is saved); out, [`SNAPSHOT_FRESH`] or [`SNAPSHOT_RESTORED`].
    ///
    /// A launcher saving a snapshot saves the guest here and ends it; a guest started from
    /// that snapshot resumes here with [`SNAPSHOT_RESTORED`], and must read its boot
    /// information and command line again (they are the new spacecore's). vCPUs other than
    /// the first are not saved: they start again from the entry point. The guest calls it
    /// once per boot, on the first vCPU, when every other vCPU is idle.
    Snapshot = 7,
    /// Sent by the launcher's ring-0 trap stubs, never by guest code. Argument: the vector.
    /// The trap frame is on the vCPU's trap stack.
    Fault = 15,
}

impl Hypercall {
    /// The port this hypercall is written to.
    pub const fn port(self) -> u16 {
        PORT_BASE + self as u16
    }

    /// The hypercall written to `port`, if any.
    pub const fn from_port(port: u16) -> Option<Self> {
        Some(match port.wrapping_sub(PORT_BASE) {
            0 => Self::ConsoleWrite,
            1 => Self::Ready,
            2 => Self::Exit,
            3 => Self::Panic,
            4 => Self::Wait,
            5 => Self::KeystorePassword,
            6 => Self::EcdsaKeystorePassword,
            7 => Self::Snapshot,
            15 => Self::Fault,
            _ => return None,
        })
    }
}

/// A byte buffer in guest memory: `addr: u64, len: u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Guest-physical address of the first byte.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Buffer {
    /// Encoded size.
    pub const SIZE: usize = 16;

    /// Encodes the record.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        out[..8].copy_from_slice(&self.addr.to_le_bytes());
        out[8..].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes the record; `None` if `bytes` is too short.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Buffer { addr: le_u64(bytes, 0)?, len: le_u64(bytes, 8)? })
    }
}

/// Argument of [`Hypercall::Wait`]: `timeout_ns: u64` (in), `events: u64` (out).
///
/// The launcher returns when one of [`events`] is pending (and writes them into `events`) or
/// when `timeout_ns` has passed (and writes 0). [`WAIT_FOREVER`] means no timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Longest time to block, in nanoseconds.
    pub timeout_ns: u64,
    /// Events pending on return.
    pub events: u64,
}

/// Written by the guest into the [`Hypercall::Snapshot`] record when every other vCPU is idle
/// and holds no lock.
pub const SNAPSHOT_IDLE: u64 = 1;
/// Written by the launcher into the [`Hypercall::Snapshot`] record of a guest that booted from
/// its image.
pub const SNAPSHOT_FRESH: u64 = 0;
/// Written by the launcher into the [`Hypercall::Snapshot`] record of a guest started from a
/// snapshot.
pub const SNAPSHOT_RESTORED: u64 = 1;

/// `timeout_ns` meaning "until an event".
pub const WAIT_FOREVER: u64 = u64::MAX;
/// Offset of `events` in a [`Wait`] record: the only field the launcher writes.
pub const WAIT_EVENTS_OFFSET: u64 = 8;

impl Wait {
    /// Encoded size.
    pub const SIZE: usize = 16;

    /// Encodes the record.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        Buffer { addr: self.timeout_ns, len: self.events }.encode()
    }

    /// Decodes the record; `None` if `bytes` is too short.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Buffer::decode(bytes).map(|b| Wait { timeout_ns: b.addr, events: b.len })
    }
}

/// Events returned by [`Hypercall::Wait`].
pub mod events {
    /// The launcher asks the guest to stop: finish what is in flight, then
    /// [`super::Hypercall::Exit`] with status 0.
    pub const STOP: u64 = 1 << 0;
    /// A device has work for the guest (a used ring advanced). Devices raise no interrupts:
    /// the guest polls its rings and blocks in `Wait` when it has nothing to do.
    pub const DEVICE: u64 = 1 << 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip() {
        for call in [
            Hypercall::ConsoleWrite,
            Hypercall::Ready,
            Hypercall::Exit,
            Hypercall::Panic,
            Hypercall::Wait,
            Hypercall::KeystorePassword,
            Hypercall::EcdsaKeystorePassword,
            Hypercall::Snapshot,
            Hypercall::Fault,
        ] {
            assert_eq!(Hypercall::from_port(call.port()), Some(call));
            assert!(call.port() < PORT_BASE + PORT_COUNT);
        }
        assert_eq!(Hypercall::KeystorePassword.port(), 0x505);
        assert_eq!(Hypercall::EcdsaKeystorePassword.port(), 0x506);
        assert_eq!(Hypercall::from_port(PORT_BASE + 8), None);
        assert_eq!(Hypercall::from_port(PORT_BASE + 14), None);
        assert_eq!(Hypercall::from_port(0x3f8), None);
        assert_eq!(Hypercall::from_port(PORT_BASE - 1), None);
    }

    #[test]
    fn records_round_trip_and_reject_short_input() {
        let b = Buffer { addr: 0x1234_5678_9abc, len: 77 };
        assert_eq!(Buffer::decode(&b.encode()), Some(b));
        assert_eq!(Buffer::decode(&b.encode()[..15]), None);
        let w = Wait { timeout_ns: WAIT_FOREVER, events: events::STOP };
        assert_eq!(Wait::decode(&w.encode()), Some(w));
        assert_eq!(&w.encode()[WAIT_EVENTS_OFFSET as usize..], &events::STOP.to_le_bytes());
        let none = Buffer { addr: 0x10_0000, len: KEYSTORE_PASSWORD_NONE }.encode();
        assert_eq!(&none[BUFFER_LEN_OFFSET as usize..], &u64::MAX.to_le_bytes());
    }

    #[test]
    fn keystore_password_limits_are_distinct() {
        // A length the launcher reports never looks like "none".
        assert!((MAX_KEYSTORE_PASSWORD as u64) < KEYSTORE_PASSWORD_NONE);
    }
}
