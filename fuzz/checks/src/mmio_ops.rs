//! Register accesses for the `mmio` target.
//!
//! # Input format
//!
//! | bytes | meaning |
//! |-------|---------|
//! | 0     | bit 0: the fake device refuses activation; bit 1: it refuses reset |
//! | 1..   | accesses, one after another, until the input ends |
//!
//! An access is one byte, bit 0 write (1) or read (0), bits 1..=2 the log2 of its width (1, 2, 4
//! or 8 bytes); then the offset in the window, a little-endian `u16` taken modulo the window
//! size (0x1000); then, for a write, `width` bytes of data (little endian, as the guest stores
//! them).

use host_launcher::devices::WINDOW_SIZE;

use crate::Reader;

/// One access to the register window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Reads `width` bytes at `offset`.
    Read {
        /// Offset in the window.
        offset: u64,
        /// 1, 2, 4 or 8.
        width: usize,
    },
    /// Writes `data` at `offset`.
    Write {
        /// Offset in the window.
        offset: u64,
        /// 1, 2, 4 or 8 bytes.
        data: Vec<u8>,
    },
}

/// A decoded `mmio` input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MmioCase {
    /// The fake device refuses activation.
    pub fail_activate: bool,
    /// The fake device refuses reset.
    pub fail_reset: bool,
    /// The accesses, in order.
    pub accesses: Vec<Access>,
}

impl MmioCase {
    /// Decodes an input (module docs).
    pub fn parse(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let flags = r.u8();
        let mut accesses = Vec::new();
        while !r.is_empty() {
            let op = r.u8();
            let width = 1usize << ((op >> 1) & 3);
            let offset = u64::from(r.u16()) % WINDOW_SIZE;
            accesses.push(if op & 1 == 1 {
                let mut data = r.bytes(width).to_vec();
                data.resize(width, 0);
                Access::Write { offset, data }
            } else {
                Access::Read { offset, width }
            });
        }
        MmioCase { fail_activate: flags & 1 != 0, fail_reset: flags & 2 != 0, accesses }
    }

    /// Encodes the case as an input; [`MmioCase::parse`] gives it back.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.fail_activate) | u8::from(self.fail_reset) << 1];
        for access in &self.accesses {
            let (write, offset, width) = match access {
                Access::Read { offset, width } => (0, *offset, *width),
                Access::Write { offset, data } => (1, *offset, data.len()),
            };
            out.push(write | (width.trailing_zeros() as u8) << 1);
            out.extend_from_slice(&(offset as u16).to_le_bytes());
            if let Access::Write { data, .. } = access {
                out.extend_from_slice(data);
            }
        }
        out
    }

    /// Adds a 4-byte write.
    pub fn write32(&mut self, offset: u64, value: u32) -> &mut Self {
        self.accesses.push(Access::Write { offset, data: value.to_le_bytes().to_vec() });
        self
    }

    /// Adds a read.
    pub fn read(&mut self, offset: u64, width: usize) -> &mut Self {
        self.accesses.push(Access::Read { offset, width });
        self
    }
}
