//! One virtio-blk request: parse the chain, do the I/O, write the status.
//!
//! Expected chain: a device-readable header descriptor of at least 16 bytes (`type: u32`,
//! `reserved: u32`, `sector: u64`, little endian; bytes past 16 are ignored), data descriptors
//! (device-writable for IN and GET_ID, device-readable for OUT, none needed for FLUSH), and a
//! last, device-writable status descriptor (1 byte; the status goes into its first byte).
//!
//! A chain whose status descriptor is missing or not writable goes back on the used ring with
//! length 0 and nothing written. Any other problem (short or writable header, data in the wrong
//! direction, a data length that is not a whole number of sectors, a range past the capacity,
//! an overflowing sector number, a write to a read-only disk, an I/O error) gets
//! `VIRTIO_BLK_S_IOERR`; an unknown type gets `VIRTIO_BLK_S_UNSUPP`. The used length is the
//! number of bytes written to the guest: data (IN, GET_ID; none on error) plus the status byte.

use super::SECTOR_SIZE;
use crate::devices::chain::{self, Buf};
use crate::devices::{Counters, bump};
use crate::vmm::memory::Memory;
use std::fs::File;
use std::os::fd::AsRawFd;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::DescriptorChain;
use vm_memory::bitmap::BitmapSlice;
use vm_memory::{Bytes, ReadVolatile, VolatileMemoryError, VolatileSlice, WriteVolatile};

const HEADER_LEN: u32 = 16;

/// The disk a worker serves.
#[derive(Debug)]
pub(crate) struct Disk {
    pub file: File,
    /// Capacity in bytes (a multiple of 512; the file has exactly this size).
    pub capacity: u64,
    pub read_only: bool,
    /// GET_ID answer: the file name, truncated or zero-padded to 20 bytes.
    pub id: [u8; 20],
}

/// Serves the request in `chain`; returns the used length and the bytes moved between the disk
/// and guest memory (what a bandwidth limit charges).
pub(crate) fn process(
    disk: &Disk,
    mem: &Memory,
    chain: DescriptorChain<&Memory>,
    counters: &Counters,
) -> (u32, u64) {
    bump(&counters.requests, 1);
    let (_, bufs) = chain::collect(mem, chain);
    let Ok(bufs) = bufs else {
        bump(&counters.errors, 1);
        return (0, 0);
    };
    let status = match bufs.last() {
        Some(last) if last.writable && last.len >= 1 => *last,
        _ => {
            bump(&counters.errors, 1);
            return (0, 0);
        }
    };
    let result = if bufs.len() < 2 {
        Err(VIRTIO_BLK_S_IOERR)
    } else {
        execute(disk, mem, &bufs[0], &bufs[1..bufs.len() - 1], counters)
    };
    let (code, (written, moved)) = match result {
        Ok(done) => (VIRTIO_BLK_S_OK, done),
        Err(code) => {
            bump(&counters.errors, 1);
            (code, (0, 0))
        }
    };
    // The status buffer was checked to be inside guest memory.
    if mem.write_obj(code as u8, status.addr).is_err() {
        return (0, moved);
    }
    (written.saturating_add(1), moved)
}

/// Does the request; the bytes written to the guest's data buffers and the bytes moved between
/// the disk and guest memory, or the error status.
fn execute(
    disk: &Disk,
    mem: &Memory,
    header: &Buf,
    data: &[Buf],
    counters: &Counters,
) -> Result<(u32, u64), u32> {
    const IOERR: u32 = VIRTIO_BLK_S_IOERR;
    if header.writable || header.len < HEADER_LEN {
        return Err(IOERR);
    }
    let mut raw = [0u8; HEADER_LEN as usize];
    mem.read_slice(&mut raw, header.addr).map_err(|_| IOERR)?;
    let kind = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let sector = u64::from_le_bytes([raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]]);
    let all = |writable: bool| data.iter().all(|b| b.writable == writable);
    match kind {
        VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
            let reading = kind == VIRTIO_BLK_T_IN;
            if !all(reading) || (!reading && disk.read_only) {
                return Err(IOERR);
            }
            let len = chain::total_len(data);
            let start = sector.checked_mul(SECTOR_SIZE).ok_or(IOERR)?;
            let end = start.checked_add(len).ok_or(IOERR)?;
            if !len.is_multiple_of(SECTOR_SIZE) || end > disk.capacity {
                return Err(IOERR);
            }
            let mut at = FileAt { file: &disk.file, offset: start };
            for b in data {
                let n = b.len as usize;
                let done = if reading {
                    mem.read_exact_volatile_from(b.addr, &mut at, n)
                } else {
                    mem.write_all_volatile_to(b.addr, &mut at, n)
                };
                done.map_err(|_| IOERR)?;
            }
            if reading {
                bump(&counters.bytes_read, len);
                // len <= capacity of the chain, which is < 2^32 (checked by the chain reader).
                Ok((u32::try_from(len).unwrap_or(u32::MAX), len))
            } else {
                bump(&counters.bytes_written, len);
                Ok((0, len))
            }
        }
        // The data must be on stable storage before the guest sees the status.
        VIRTIO_BLK_T_FLUSH => disk.file.sync_data().map(|()| (0, 0)).map_err(|_| IOERR),
        VIRTIO_BLK_T_GET_ID => {
            if !all(true) {
                return Err(IOERR);
            }
            let mut id: &[u8] = &disk.id;
            let mut written = 0u32;
            for b in data {
                let n = id.len().min(b.len as usize);
                mem.write_slice(&id[..n], b.addr).map_err(|_| IOERR)?;
                id = &id[n..];
                written += n as u32;
            }
            Ok((written, 0))
        }
        _ => Err(VIRTIO_BLK_S_UNSUPP),
    }
}

/// The disk file at a position that advances with each transfer: `pread`/`pwrite` straight
/// between the file and guest memory.
struct FileAt<'f> {
    file: &'f File,
    offset: u64,
}

impl FileAt<'_> {
    fn offset(&self) -> Result<libc::off_t, VolatileMemoryError> {
        libc::off_t::try_from(self.offset)
            .map_err(|_| VolatileMemoryError::IOError(std::io::Error::from_raw_os_error(libc::EINVAL)))
    }

    fn advance(&mut self, rc: isize) -> Result<usize, VolatileMemoryError> {
        let n =
            usize::try_from(rc).map_err(|_| VolatileMemoryError::IOError(std::io::Error::last_os_error()))?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl ReadVolatile for FileAt<'_> {
    fn read_volatile<B: BitmapSlice>(
        &mut self,
        buf: &mut VolatileSlice<B>,
    ) -> Result<usize, VolatileMemoryError> {
        let offset = self.offset()?;
        let guard = buf.ptr_guard_mut();
        // SAFETY: `guard` points at `buf.len()` bytes of guest memory that stay mapped while
        // `buf` lives (the `VolatileSlice` invariant); pread writes at most that many bytes.
        let rc = unsafe { libc::pread(self.file.as_raw_fd(), guard.as_ptr().cast(), buf.len(), offset) };
        let n = self.advance(rc)?;
        buf.bitmap().mark_dirty(0, n);
        Ok(n)
    }
}

impl WriteVolatile for FileAt<'_> {
    fn write_volatile<B: BitmapSlice>(
        &mut self,
        buf: &VolatileSlice<B>,
    ) -> Result<usize, VolatileMemoryError> {
        let offset = self.offset()?;
        let guard = buf.ptr_guard();
        // SAFETY: `guard` points at `buf.len()` readable bytes of guest memory that stay mapped
        // while `buf` lives; pwrite only reads them.
        let rc = unsafe { libc::pwrite(self.file.as_raw_fd(), guard.as_ptr().cast(), buf.len(), offset) };
        self.advance(rc)
    }
}
