//! A crash-safe store of small records on a block device: the unikernel keeps its boot counter
//! in it, and host tools write records in the launcher's raw disk image with `FileDisk` (the
//! operator's keystore, by `spacecore keys import`).
//!
//! # Layout
//! Sectors are [`SECTOR`] bytes. The first [`BASE_SECTOR`] sectors are left alone (room for a
//! label). Each [`RecordKey`] owns two adjacent slots of [`SLOT_SECTORS`] sectors, A then B: the
//! slot `s` of key `k` starts at sector `BASE_SECTOR + (2k + s) * SLOT_SECTORS`. A slot holds one
//! version of its record, little-endian:
//!
//! | bytes    | field                                            |
//! |----------|--------------------------------------------------|
//! | 0..4     | magic `SCR1`                                     |
//! | 4..6     | the key                                          |
//! | 6..8     | zero                                             |
//! | 8..16    | sequence number, one more than the version before |
//! | 16..20   | value length, at most [`MAX_VALUE`]              |
//! | 20..24   | CRC-32 of bytes 0..20, then of the value         |
//! | 24..     | the value                                        |
//!
//! With the keys of this version the records take sectors `0..`[`NEEDED_SECTORS`] (52 KiB):
//!
//! | key                          | number | slot A       | slot B       |
//! |------------------------------|--------|--------------|--------------|
//! | [`RecordKey::BootCount`]     | 0      | sectors 8..16  | 16..24     |
//! | [`RecordKey::Keystore`]      | 1      | sectors 24..32 | 32..40     |
//! | [`RecordKey::SigningHistory`] | 2     | sectors 40..48 | 48..56     |
//! | [`RecordKey::EcdsaKeystore`] | 3      | sectors 56..64 | 64..72     |
//! | [`RecordKey::ChainCursor`]   | 4      | sectors 72..80 | 80..88     |
//! | [`RecordKey::AvsRecord`]     | 5      | sectors 88..96 | 96..104    |
//!
//! ## Changes
//! The first version had only `BootCount` and needed 24 sectors. `Keystore` and
//! `SigningHistory` were added after it with the same slot size, so `BootCount` stays where it
//! was and disks written before read the same. On such a disk the new keys' slots hold zeros
//! (or whatever was there), which fail the checks: the new records read as absent. The only
//! visible change is that a device needs [`NEEDED_SECTORS`] = 56 sectors instead of 24. An
//! EIP-2335 keystore is about 1 KiB, well below [`MAX_VALUE`] (4072 bytes), so no key needs
//! larger slots.
//!
//! `EcdsaKeystore` (3) was added the same way, after `SigningHistory`: the first three keys stay
//! where they were, disks written before read the same, and on them the new record reads as
//! absent (its slots were never written). A device now needs [`NEEDED_SECTORS`] = 72 sectors
//! (36 KiB; every disk the spec allows has at least 1 MiB).
//!
//! `ChainCursor` (4) was added the same way, after `EcdsaKeystore`: older disks read the same and
//! the new record reads as absent there; a device now needs [`NEEDED_SECTORS`] = 88 sectors
//! (44 KiB).
//!
//! `AvsRecord` (5), the AVS's own record, was added the same way: older disks read the same, the
//! record reads as absent there, and a device needs [`NEEDED_SECTORS`] = 104 sectors (52 KiB).
//!
//! # Crash safety
//! [`Store::put`] writes the new version, numbered one past the current one, over the slot that
//! does *not* hold the current version, and flushes before it reports success; [`Store::get`]
//! returns the value of the valid slot with the highest number. A write torn anywhere (any
//! prefix of its bytes, or any subset of its sectors, reaching the disk) can only damage the slot
//! being written, whose checksum then fails: the current version in the other slot stays the
//! answer. So after a power cut a record reads as either its old or its new value, never as a
//! mix, and never as nothing if it had a value before. The device is trusted not to change
//! sectors it was not asked to write.
//!
//! The crate is `no_std` + `alloc`; the `std` feature adds `FileDisk`, a [`BlockIo`] over a file.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(feature = "std")]
mod file;
mod key;
mod store;

#[cfg(test)]
mod tests;

use core::fmt;

#[cfg(feature = "std")]
pub use file::FileDisk;
pub use key::RecordKey;
pub use store::{Store, record_crc};

/// Bytes in a sector, the unit of [`BlockIo`].
pub const SECTOR: usize = 512;
/// Sectors before the first slot.
pub const BASE_SECTOR: u64 = 8;
/// Sectors in one slot.
pub const SLOT_SECTORS: u64 = 8;
/// Bytes in one slot.
const SLOT_BYTES: usize = SLOT_SECTORS as usize * SECTOR;
/// Bytes of a slot's header.
const HEADER: usize = 24;
/// Largest value a record can hold: 4072 bytes.
pub const MAX_VALUE: usize = SLOT_BYTES - HEADER;
/// Sectors the layout needs, from sector 0: the device must have at least this many.
pub const NEEDED_SECTORS: u64 = BASE_SECTOR + 2 * RecordKey::COUNT as u64 * SLOT_SECTORS;
const MAGIC: [u8; 4] = *b"SCR1";

/// Why a block device operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoError {
    /// The device reported an error.
    Device,
    /// The device does not support the request.
    Unsupported,
    /// The device did not complete the request in time.
    Timeout,
    /// The request lies (partly) past the end of the device.
    OutOfRange,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoError::Device => "the device reported an error",
            IoError::Unsupported => "the device does not support the request",
            IoError::Timeout => "the device did not complete the request in time",
            IoError::OutOfRange => "the request lies past the end of the device",
        })
    }
}

impl core::error::Error for IoError {}

/// A disk of [`SECTOR`]-byte sectors. Buffers are whole sectors.
pub trait BlockIo {
    /// Capacity in sectors.
    fn sectors(&self) -> u64;
    /// Reads `buf.len() / SECTOR` sectors starting at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Writes `data.len() / SECTOR` sectors starting at `sector`; durable only after a flush.
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), IoError>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<(), IoError>;
}

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The device failed; the record is unchanged or was replaced (see the crate docs).
    Io(IoError),
    /// The value is longer than [`MAX_VALUE`].
    TooLarge(usize),
    /// The record's version number is already the largest there is; a disk written by this store
    /// never gets there (2^64 writes), so the disk is foreign or crafted. Nothing was written.
    Exhausted,
    /// The device has fewer sectors than the layout needs.
    DeviceTooSmall {
        /// Sectors the layout needs.
        needed: u64,
        /// Sectors the device has.
        sectors: u64,
    },
}

impl From<IoError> for StoreError {
    fn from(e: IoError) -> Self {
        StoreError::Io(e)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "disk I/O failed: {e}"),
            StoreError::TooLarge(len) => {
                write!(f, "a {len}-byte value does not fit in a record (at most {MAX_VALUE} bytes)")
            }
            StoreError::Exhausted => {
                write!(
                    f,
                    "the record's version number is exhausted (was the disk written by another program?)"
                )
            }
            StoreError::DeviceTooSmall { needed, sectors } => write!(
                f,
                "the disk has {sectors} sectors of {SECTOR} bytes; the store needs at least {needed}"
            ),
        }
    }
}

impl core::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            _ => None,
        }
    }
}
