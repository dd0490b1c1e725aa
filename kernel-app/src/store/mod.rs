//! A crash-safe store of small records on a block device.
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
//! # Crash safety
//! [`Store::put`] writes the new version, numbered one past the current one, over the slot that
//! does *not* hold the current version, and flushes before it reports success; [`Store::get`]
//! returns the value of the valid slot with the highest number. A write torn anywhere (any
//! prefix of its bytes, or any subset of its sectors, reaching the disk) can only damage the slot
//! being written, whose checksum then fails: the current version in the other slot stays the
//! answer. So after a power cut a record reads as either its old or its new value, never as a
//! mix, and never as nothing if it had a value before. The device is trusted not to change
//! sectors it was not asked to write.

mod crc;

#[cfg(test)]
mod tests;

use alloc::vec;
use alloc::vec::Vec;
use crc::Crc32;

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
/// Largest value a record can hold.
pub const MAX_VALUE: usize = SLOT_BYTES - HEADER;
const MAGIC: [u8; 4] = *b"SCR1";

/// Why a block device operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, allow(dead_code))] // the virtio driver, not built for host tests, uses them all
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

/// The records the store holds. The numbering is part of the disk layout: never reuse a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RecordKey {
    /// How many times the unikernel booted with this disk: a `u64`, little-endian.
    BootCount = 0,
}

impl RecordKey {
    /// Number of keys (the highest number plus one).
    pub const COUNT: usize = 1;

    fn first_sector(self) -> u64 {
        BASE_SECTOR + 2 * self as u64 * SLOT_SECTORS
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The device failed; the record is unchanged or was replaced (see the module docs).
    Io(IoError),
    /// The value is longer than [`MAX_VALUE`].
    TooLarge(usize),
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

/// Where the current version of a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    slot: usize,
    seq: u64,
}

/// The store over a [`BlockIo`] device.
pub struct Store<D: BlockIo> {
    dev: D,
    /// Per key, the current version once it is known: `Some(None)` means no valid version.
    known: [Option<Option<Current>>; RecordKey::COUNT],
}

impl<D: BlockIo> Store<D> {
    /// Sectors the layout needs.
    pub const NEEDED_SECTORS: u64 = BASE_SECTOR + 2 * RecordKey::COUNT as u64 * SLOT_SECTORS;

    /// Opens the store on `dev`; reads nothing until a record is asked for.
    pub fn open(dev: D) -> Result<Self, StoreError> {
        let sectors = dev.sectors();
        if sectors < Self::NEEDED_SECTORS {
            return Err(StoreError::DeviceTooSmall { needed: Self::NEEDED_SECTORS, sectors });
        }
        Ok(Store { dev, known: [None; RecordKey::COUNT] })
    }

    /// The device, for its other uses.
    #[cfg_attr(test, allow(dead_code))]
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// The current value of `key`, `None` if it never had one.
    pub fn get(&mut self, key: RecordKey) -> Result<Option<Vec<u8>>, StoreError> {
        let (slots, current) = self.load(key)?;
        Ok(current.map(|c| {
            let slot = &slots[c.slot * SLOT_BYTES..][..SLOT_BYTES];
            let len = le_u32(slot, 16) as usize;
            slot[HEADER..HEADER + len].to_vec()
        }))
    }

    /// Replaces the value of `key`; on `Ok` the new value is durable.
    pub fn put(&mut self, key: RecordKey, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE {
            return Err(StoreError::TooLarge(value.len()));
        }
        let current = match self.known[key as usize] {
            Some(current) => current,
            None => self.load(key)?.1,
        };
        let next = match current {
            Some(c) => Current { slot: 1 - c.slot, seq: c.seq + 1 },
            None => Current { slot: 0, seq: 1 },
        };
        let mut buf = vec![0u8; (HEADER + value.len()).div_ceil(SECTOR) * SECTOR];
        buf[..4].copy_from_slice(&MAGIC);
        buf[4..6].copy_from_slice(&(key as u16).to_le_bytes());
        buf[8..16].copy_from_slice(&next.seq.to_le_bytes());
        buf[16..20].copy_from_slice(&(value.len() as u32).to_le_bytes());
        let crc = Crc32::new().update(&buf[..20]).update(value).finish();
        buf[20..24].copy_from_slice(&crc.to_le_bytes());
        buf[HEADER..HEADER + value.len()].copy_from_slice(value);

        // Until the flush succeeds the disk may hold either version: read it again next time.
        self.known[key as usize] = None;
        self.dev.write(key.first_sector() + next.slot as u64 * SLOT_SECTORS, &buf)?;
        self.dev.flush()?;
        self.known[key as usize] = Some(Some(next));
        Ok(())
    }

    /// Adds one to the `u64` counter `key` (absent or malformed counts as 0) and returns the new
    /// count once it is durable.
    pub fn increment(&mut self, key: RecordKey) -> Result<u64, StoreError> {
        let old = self.get(key)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok());
        let count = old.map_or(0, u64::from_le_bytes).wrapping_add(1);
        self.put(key, &count.to_le_bytes())?;
        Ok(count)
    }

    /// Reads both slots of `key`; returns them and where the current version is.
    fn load(&mut self, key: RecordKey) -> Result<(Vec<u8>, Option<Current>), StoreError> {
        let mut slots = vec![0u8; 2 * SLOT_BYTES];
        self.known[key as usize] = None;
        self.dev.read(key.first_sector(), &mut slots)?;
        let valid = |slot: usize| {
            decode(&slots[slot * SLOT_BYTES..][..SLOT_BYTES], key).map(|seq| Current { slot, seq })
        };
        let current = match (valid(0), valid(1)) {
            (Some(a), Some(b)) => Some(if b.seq > a.seq { b } else { a }),
            (a, b) => a.or(b),
        };
        self.known[key as usize] = Some(current);
        Ok((slots, current))
    }
}

/// The sequence number of the version in `slot`, if it is a valid version of `key`.
fn decode(slot: &[u8], key: RecordKey) -> Option<u64> {
    let len = le_u32(slot, 16) as usize;
    let valid = slot[..4] == MAGIC
        && slot[4..6] == (key as u16).to_le_bytes()
        && slot[6..8] == [0, 0]
        && len <= MAX_VALUE
        && Crc32::new().update(&slot[..20]).update(&slot[HEADER..HEADER + len]).finish() == le_u32(slot, 20);
    valid.then(|| u64::from_le_bytes(slot[8..16].try_into().unwrap()))
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}
