//! The boot information the guest reads at entry: Linux `boot_params` (e820 map, command
//! line, `setup_data` link) and Spacecore's [`BootInfo`] record in a `setup_data` node.

use super::{VmmError, memory::Memory};
use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use spacecore_abi::boot::{BootInfo, E820_RESERVED, SETUP_DATA_HEADER, SETUP_DATA_TYPE, boot_params as bp};
use spacecore_abi::layout as l;
use vm_memory::{Bytes, GuestAddress};

/// Writes `boot_params`, the command line and `info` into guest memory.
pub fn write(mem: &Memory, info: &BootInfo, cmdline: &str) -> Result<(), VmmError> {
    let err = |addr: u64| move |e: vm_memory::GuestMemoryError| VmmError::WriteBootData(addr, e.to_string());

    let mut line = Cmdline::new(l::CMDLINE_MAX as usize).map_err(|e| VmmError::Cmdline(e.to_string()))?;
    if !cmdline.is_empty() {
        line.insert_str(cmdline).map_err(|e| VmmError::Cmdline(e.to_string()))?;
    }
    let bytes = line.as_cstring().map_err(|e| VmmError::Cmdline(e.to_string()))?;
    mem.write_slice(bytes.as_bytes_with_nul(), GuestAddress(l::CMDLINE_ADDR))
        .map_err(err(l::CMDLINE_ADDR))?;

    let mut params = boot_params::default();
    params.hdr.cmd_line_ptr = l::CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = (l::CMDLINE_MAX - 1) as u32;
    params.hdr.setup_data = l::BOOT_INFO_ADDR;
    let ranges = [
        (0, l::IMAGE_ADDR, E820_RESERVED), // the launcher's tables, boot information, stacks
        (l::IMAGE_ADDR, info.memory_bytes - l::IMAGE_ADDR, bp::E820_RAM),
    ];
    for (i, (addr, size, type_)) in ranges.into_iter().enumerate() {
        params.e820_table[i] = boot_e820_entry { addr, size, r#type: type_ };
    }
    params.e820_entries = ranges.len() as u8;
    mem.write_obj(params, GuestAddress(l::BOOT_PARAMS_ADDR)).map_err(err(l::BOOT_PARAMS_ADDR))?;

    let mut node = Vec::with_capacity(SETUP_DATA_HEADER + BootInfo::SIZE);
    node.extend_from_slice(&0u64.to_le_bytes()); // next: none
    node.extend_from_slice(&SETUP_DATA_TYPE.to_le_bytes());
    node.extend_from_slice(&(BootInfo::SIZE as u32).to_le_bytes());
    node.extend_from_slice(&info.encode());
    mem.write_slice(&node, GuestAddress(l::BOOT_INFO_ADDR)).map_err(err(l::BOOT_INFO_ADDR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_loader::loader::bootparam::setup_header;
    use std::mem::offset_of;

    #[test]
    fn abi_offsets_match_the_linux_boot_params_layout() {
        let hdr = offset_of!(boot_params, hdr);
        assert_eq!(offset_of!(boot_params, e820_entries), bp::E820_ENTRIES);
        assert_eq!(offset_of!(boot_params, e820_table), bp::E820_TABLE);
        assert_eq!(hdr + offset_of!(setup_header, cmd_line_ptr), bp::CMD_LINE_PTR);
        assert_eq!(hdr + offset_of!(setup_header, cmdline_size), bp::CMDLINE_SIZE);
        assert_eq!(hdr + offset_of!(setup_header, setup_data), bp::SETUP_DATA);
        assert_eq!(std::mem::size_of::<boot_e820_entry>(), bp::E820_ENTRY_SIZE);
    }

    #[test]
    fn writes_a_record_the_guest_side_decodes() {
        let mem = crate::vmm::memory::map(4 << 20).unwrap();
        let info = BootInfo {
            abi_version: spacecore_abi::ABI_VERSION,
            vcpus: 2,
            memory_bytes: 4 << 20,
            ..Default::default()
        };
        write(&mem, &info, "spacecore.selftest=panic").unwrap();
        let mut record = [0u8; BootInfo::SIZE];
        mem.read_slice(&mut record, GuestAddress(l::BOOT_INFO_ADDR + SETUP_DATA_HEADER as u64)).unwrap();
        assert_eq!(BootInfo::decode(&record), Ok(info));
        let mut line = [0u8; 25];
        mem.read_slice(&mut line, GuestAddress(l::CMDLINE_ADDR)).unwrap();
        assert_eq!(&line, b"spacecore.selftest=panic\0");
    }
}
