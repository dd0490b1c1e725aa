//! [`Store`]: reading and writing records (the crate docs describe the layout).

use crate::{BlockIo, HEADER, MAGIC, MAX_VALUE, RecordKey, SECTOR, SLOT_BYTES, SLOT_SECTORS, StoreError};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Where the current version of a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    slot: usize,
    seq: u64,
}

/// The store over a [`BlockIo`] device.
pub struct Store<D: BlockIo> {
    pub(crate) dev: D,
    /// Per key, the current version once it is known: `Some(None)` means no valid version.
    known: [Option<Option<Current>>; RecordKey::COUNT],
}

impl<D: BlockIo> fmt::Debug for Store<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("sectors", &self.dev.sectors()).field("known", &self.known).finish()
    }
}

impl<D: BlockIo> Store<D> {
    /// Sectors the layout needs ([`crate::NEEDED_SECTORS`]).
    pub const NEEDED_SECTORS: u64 = crate::NEEDED_SECTORS;

    /// Opens the store on `dev`; reads nothing until a record is asked for.
    pub fn open(dev: D) -> Result<Self, StoreError> {
        let sectors = dev.sectors();
        if sectors < Self::NEEDED_SECTORS {
            return Err(StoreError::DeviceTooSmall { needed: Self::NEEDED_SECTORS, sectors });
        }
        Ok(Store { dev, known: [None; RecordKey::COUNT] })
    }

    /// The device, for its other uses.
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Closes the store and returns the device.
    pub fn into_device(self) -> D {
        self.dev
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
            // Only a disk written by something else can hold the last number: wrapping to 0
            // would make the new version lose to the old one and the write vanish.
            Some(c) => Current { slot: 1 - c.slot, seq: c.seq.checked_add(1).ok_or(StoreError::Exhausted)? },
            None => Current { slot: 0, seq: 1 },
        };
        let mut buf = vec![0u8; (HEADER + value.len()).div_ceil(SECTOR) * SECTOR];
        buf[..4].copy_from_slice(&MAGIC);
        buf[4..6].copy_from_slice(&key.number().to_le_bytes());
        buf[8..16].copy_from_slice(&next.seq.to_le_bytes());
        buf[16..20].copy_from_slice(&(value.len() as u32).to_le_bytes());
        let crc = record_crc(&buf[..20], value);
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

/// The checksum a record carries in bytes 20..24: CRC-32 (IEEE 802.3, as zlib's) of its first
/// 20 header bytes, then its value.
pub fn record_crc(header: &[u8], value: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(value);
    hasher.finalize()
}

/// The sequence number of the version in `slot`, if it is a valid version of `key`.
fn decode(slot: &[u8], key: RecordKey) -> Option<u64> {
    let len = le_u32(slot, 16) as usize;
    let valid = slot[..4] == MAGIC
        && slot[4..6] == key.number().to_le_bytes()
        && slot[6..8] == [0, 0]
        && len <= MAX_VALUE
        && record_crc(&slot[..20], &slot[HEADER..HEADER + len]) == le_u32(slot, 20);
    valid.then(|| u64::from_le_bytes(slot[8..16].try_into().unwrap()))
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}
