//! Reads what the launcher handed over: the Linux `boot_params` page (memory map, command line,
//! `setup_data` chain) and Spacecore's [`BootInfo`] record.
//!
//! Parsing works on a reader function so that host tests can feed it fake memory.

use spacecore_abi::boot::{BootInfo, BootInfoError, SETUP_DATA_HEADER, SETUP_DATA_TYPE, boot_params as bp};
use spacecore_abi::layout::CMDLINE_MAX;

/// Room for usable RAM ranges from the e820 map.
const MAX_RAM_RANGES: usize = 8;
/// Most `setup_data` nodes followed before giving up (a loop in the chain ends there).
const MAX_SETUP_NODES: usize = 16;

/// The facts the runtime boots from.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Spacecore's record.
    pub info: BootInfo,
    /// Usable RAM as `(start, end)` ranges.
    pub ram: [(u64, u64); MAX_RAM_RANGES],
    /// Valid entries in `ram`.
    pub ram_count: usize,
    cmdline: [u8; CMDLINE_MAX as usize],
    cmdline_len: usize,
}

/// Why the boot information could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    /// No `setup_data` node of Spacecore's type: not booted by `hac-launch`.
    NoBootInfo,
    /// The record is there but unusable.
    BootInfo(BootInfoError),
    /// The command line is not UTF-8 or not terminated.
    Cmdline,
}

impl Boot {
    /// Parses the boot information starting from the `boot_params` page at `params`;
    /// `read(addr, buf)` copies guest memory.
    pub fn parse(params: u64, read: &mut dyn FnMut(u64, &mut [u8])) -> Result<Self, BootError> {
        let mut page = [0u8; 0x1000];
        read(params, &mut page);
        let u32_at = |off: usize| u32::from_le_bytes(page[off..off + 4].try_into().unwrap());
        let u64_at = |off: usize| u64::from_le_bytes(page[off..off + 8].try_into().unwrap());

        let mut ram = [(0, 0); MAX_RAM_RANGES];
        let mut ram_count = 0;
        let entries = usize::from(page[bp::E820_ENTRIES]).min(bp::E820_MAX);
        for i in 0..entries {
            let at = bp::E820_TABLE + i * bp::E820_ENTRY_SIZE;
            let (addr, size, kind) = (u64_at(at), u64_at(at + 8), u32_at(at + 16));
            if kind == bp::E820_RAM && ram_count < MAX_RAM_RANGES {
                ram[ram_count] = (addr, addr.saturating_add(size));
                ram_count += 1;
            }
        }

        let mut cmdline = [0u8; CMDLINE_MAX as usize];
        let ptr = u64::from(u32_at(bp::CMD_LINE_PTR));
        let cmdline_len = if ptr == 0 {
            0
        } else {
            read(ptr, &mut cmdline);
            let len = cmdline.iter().position(|&b| b == 0).ok_or(BootError::Cmdline)?;
            core::str::from_utf8(&cmdline[..len]).map_err(|_| BootError::Cmdline)?;
            len
        };

        let mut node = u64_at(bp::SETUP_DATA);
        for _ in 0..MAX_SETUP_NODES {
            if node == 0 {
                break;
            }
            let mut header = [0u8; SETUP_DATA_HEADER];
            read(node, &mut header);
            let next = u64::from_le_bytes(header[..8].try_into().unwrap());
            let kind = u32::from_le_bytes(header[8..12].try_into().unwrap());
            if kind == SETUP_DATA_TYPE {
                let mut record = [0u8; BootInfo::SIZE];
                read(node + SETUP_DATA_HEADER as u64, &mut record);
                let info = BootInfo::decode(&record).map_err(BootError::BootInfo)?;
                return Ok(Boot { info, ram, ram_count, cmdline, cmdline_len });
            }
            node = next;
        }
        Err(BootError::NoBootInfo)
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> &str {
        // Checked to be UTF-8 in `parse`.
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The largest usable RAM range at or above `floor`, clipped to start there.
    pub fn heap_range(&self, floor: u64) -> Option<(u64, u64)> {
        self.ram[..self.ram_count]
            .iter()
            .map(|&(start, end)| (start.max(floor), end))
            .filter(|&(start, end)| start < end)
            .max_by_key(|&(start, end)| end - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spacecore_abi::boot::MAX_DEVICES;

    /// Fake guest memory: a sparse list of (address, bytes).
    struct Memory(Vec<(u64, Vec<u8>)>);

    impl Memory {
        fn read(&self, addr: u64, buf: &mut [u8]) {
            buf.fill(0);
            for (base, bytes) in &self.0 {
                if addr >= *base && addr < base + bytes.len() as u64 {
                    let off = (addr - base) as usize;
                    let n = buf.len().min(bytes.len() - off);
                    buf[..n].copy_from_slice(&bytes[off..off + n]);
                }
            }
        }
    }

    fn info() -> BootInfo {
        BootInfo {
            abi_version: spacecore_abi::ABI_VERSION,
            vcpus: 2,
            memory_bytes: 64 << 20,
            tsc_khz: 3_000_000,
            devices: [Default::default(); MAX_DEVICES],
            ..Default::default()
        }
    }

    fn memory(setup_next_self: bool, cmdline: &[u8]) -> Memory {
        let mut page = vec![0u8; 0x1000];
        page[bp::E820_ENTRIES] = 2;
        let e = |page: &mut Vec<u8>, i: usize, addr: u64, size: u64, kind: u32| {
            let at = bp::E820_TABLE + i * bp::E820_ENTRY_SIZE;
            page[at..at + 8].copy_from_slice(&addr.to_le_bytes());
            page[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
            page[at + 16..at + 20].copy_from_slice(&kind.to_le_bytes());
        };
        e(&mut page, 0, 0, 64 << 20, bp::E820_RAM);
        e(&mut page, 1, 64 << 20, 4096, 2);
        page[bp::CMD_LINE_PTR..bp::CMD_LINE_PTR + 4].copy_from_slice(&0x9000u32.to_le_bytes());
        page[bp::SETUP_DATA..bp::SETUP_DATA + 8].copy_from_slice(&0x8000u64.to_le_bytes());
        let mut node = Vec::new();
        let next: u64 = if setup_next_self { 0x8000 } else { 0 };
        node.extend_from_slice(&next.to_le_bytes());
        let kind = if setup_next_self { 7 } else { SETUP_DATA_TYPE };
        node.extend_from_slice(&kind.to_le_bytes());
        node.extend_from_slice(&(BootInfo::SIZE as u32).to_le_bytes());
        node.extend_from_slice(&info().encode());
        Memory(vec![(0x7000, page), (0x8000, node), (0x9000, cmdline.to_vec())])
    }

    #[test]
    fn parses_memory_map_cmdline_and_record() {
        let mem = memory(false, b"spacecore.selftest=panic\0");
        let boot = Boot::parse(0x7000, &mut |a, b| mem.read(a, b)).unwrap();
        assert_eq!(boot.info, info());
        assert_eq!(boot.cmdline(), "spacecore.selftest=panic");
        assert_eq!(boot.ram_count, 1);
        assert_eq!(boot.heap_range(0x30_0000), Some((0x30_0000, 64 << 20)));
        assert_eq!(boot.heap_range(65 << 20), None);
    }

    #[test]
    fn a_looping_chain_without_the_record_ends() {
        let mem = memory(true, b"\0");
        let err = Boot::parse(0x7000, &mut |a, b| mem.read(a, b)).unwrap_err();
        assert_eq!(err, BootError::NoBootInfo);
    }

    #[test]
    fn an_unterminated_cmdline_is_an_error() {
        let mem = memory(false, &[b'a'; 0x1000]);
        let err = Boot::parse(0x7000, &mut |a, b| mem.read(a, b)).unwrap_err();
        assert_eq!(err, BootError::Cmdline);
    }
}
