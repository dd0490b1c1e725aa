//! An in-memory [`BlockIo`] whose bytes come from the input, for the `store` target.
//!
//! # Input format
//!
//! | bytes | meaning |
//! |-------|---------|
//! | 0     | bits 0..=1: the disk has `NEEDED_SECTORS - 1 + bits` sectors (one too few to three spare); bit 2: seal |
//! | 1..   | patches, one after another, until the input ends |
//!
//! The disk starts zeroed. A patch is a sector number (one byte, taken modulo the disk's
//! sectors), a little-endian `u16` length, and that many bytes (fewer at the end of the input),
//! written from the start of that sector and cut at the end of the disk. The store's records are
//! described in `store/src/lib.rs`: a record slot starts at sector `8 + 8 * (2 * key + slot)`.
//!
//! With the seal bit, after the patches every slot that starts with the magic `SCR1` and whose
//! length field is at most `MAX_VALUE` gets the right CRC-32, so that the fuzzer can explore
//! what a record says (sequence numbers, lengths) without having to find checksums.

use spacecore_store::{BlockIo, IoError, MAX_VALUE, NEEDED_SECTORS, RecordKey, SECTOR, SLOT_SECTORS};

use crate::Reader;

/// A disk in memory. It asserts the store's side of the [`BlockIo`] contract: buffers are whole
/// sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemDisk {
    /// Its bytes, a whole number of sectors.
    pub bytes: Vec<u8>,
}

impl MemDisk {
    /// Decodes an input (module docs).
    pub fn parse(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let config = r.u8();
        let sectors = NEEDED_SECTORS as usize - 1 + usize::from(config & 3);
        let mut bytes = vec![0u8; sectors * SECTOR];
        while !r.is_empty() {
            let at = usize::from(r.u8()) % sectors * SECTOR;
            let len = usize::from(r.u16());
            let patch = r.bytes(len);
            let n = patch.len().min(bytes.len() - at);
            bytes[at..at + n].copy_from_slice(&patch[..n]);
        }
        if config & 4 != 0 {
            seal(&mut bytes);
        }
        MemDisk { bytes }
    }

    /// An input that [`MemDisk::parse`] turns into a disk of `NEEDED_SECTORS + extra` sectors
    /// (`extra` < 3) with `patches` (sector, bytes) applied, sealed or not.
    pub fn encode(extra: u8, seal: bool, patches: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = vec![(extra + 1) | u8::from(seal) << 2];
        for (sector, bytes) in patches {
            out.push(*sector);
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    fn range(&self, sector: u64, len: usize) -> Result<std::ops::Range<usize>, IoError> {
        assert_eq!(len % SECTOR, 0, "the store asked for {len} bytes, not whole sectors");
        let start = usize::try_from(sector).ok().and_then(|s| s.checked_mul(SECTOR));
        match start.and_then(|start| Some(start..start.checked_add(len)?)) {
            Some(range) if range.end <= self.bytes.len() => Ok(range),
            _ => Err(IoError::OutOfRange),
        }
    }
}

/// Bytes of a slot's header: magic, key, zero, sequence number, length, CRC-32.
const HEADER: usize = 24;

/// Gives every slot that looks like a record the CRC-32 of its header and value.
fn seal(disk: &mut [u8]) {
    const SLOT_BYTES: usize = SLOT_SECTORS as usize * SECTOR;
    for key in RecordKey::ALL {
        for slot in 0..2 {
            let start = (key.first_sector() as usize + slot * SLOT_SECTORS as usize) * SECTOR;
            let Some(bytes) = disk.get_mut(start..start + SLOT_BYTES) else { continue };
            let len = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")) as usize;
            if bytes[..4] != *b"SCR1" || len > MAX_VALUE {
                continue;
            }
            let crc = spacecore_store::record_crc(&bytes[..20], &bytes[HEADER..HEADER + len]);
            bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

impl BlockIo for MemDisk {
    fn sectors(&self) -> u64 {
        (self.bytes.len() / SECTOR) as u64
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let range = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), IoError> {
        let range = self.range(sector, data.len())?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}
