//! Boot information.
//!
//! The launcher follows the Linux x86 64-bit boot protocol where it fits: `rsi` points to a
//! `boot_params` page holding the e820 memory map and the command line pointer, and Spacecore's
//! own facts travel in a `setup_data` node of type [`SETUP_DATA_TYPE`] linked from
//! `boot_params.hdr.setup_data`. Only the fields below are used by either side.

use crate::{le_u32, le_u64};

/// Offsets into the Linux `boot_params` page (arch/x86/include/uapi/asm/bootparam.h).
pub mod boot_params {
    /// `u8`: number of valid e820 entries.
    pub const E820_ENTRIES: usize = 0x1e8;
    /// `u32`: `hdr.cmd_line_ptr`, physical address of the command line.
    pub const CMD_LINE_PTR: usize = 0x228;
    /// `u32`: `hdr.cmdline_size`, longest command line the kernel accepts (NUL excluded).
    pub const CMDLINE_SIZE: usize = 0x238;
    /// `u64`: `hdr.setup_data`, physical address of the first `setup_data` node.
    pub const SETUP_DATA: usize = 0x250;
    /// `e820_table[128]`, 20 bytes per entry: `addr: u64, size: u64, type: u32`.
    pub const E820_TABLE: usize = 0x2d0;
    /// Size of one packed e820 entry.
    pub const E820_ENTRY_SIZE: usize = 20;
    /// Capacity of the e820 table.
    pub const E820_MAX: usize = 128;
    /// e820 type of usable RAM.
    pub const E820_RAM: u32 = 1;
}

/// e820 type of memory the guest must not use as RAM.
pub const E820_RESERVED: u32 = 2;

/// `setup_data.type` of the Spacecore record ("SPCR"), outside the range Linux assigns.
pub const SETUP_DATA_TYPE: u32 = 0x5350_4352;
/// Size of the Linux `setup_data` header (`next: u64, type: u32, len: u32`).
pub const SETUP_DATA_HEADER: usize = 16;
/// First field of [`BootInfo`], to catch a launcher and image that do not speak to each other.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"SPACECOR");

/// Kind of a device announced in [`BootInfo::devices`].
pub mod device_kind {
    /// A free slot.
    pub const NONE: u32 = 0;
    /// virtio-mmio network device.
    pub const VIRTIO_NET: u32 = 1;
    /// virtio-mmio block device.
    pub const VIRTIO_BLOCK: u32 = 2;
}

/// Room for devices in [`BootInfo`].
pub const MAX_DEVICES: usize = 8;

/// One device: a virtio-mmio window and its interrupt line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// One of [`device_kind`].
    pub kind: u32,
    /// Interrupt line (GSI); 0 when the device is polled.
    pub irq: u32,
    /// Guest-physical base of the MMIO window.
    pub mmio_base: u64,
    /// Size of the MMIO window.
    pub mmio_size: u64,
}

/// What the launcher tells the guest beyond the Linux boot protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// [`crate::ABI_VERSION`] of the launcher.
    pub abi_version: u32,
    /// Number of vCPUs started.
    pub vcpus: u32,
    /// Bytes of guest memory, starting at guest-physical 0.
    pub memory_bytes: u64,
    /// TSC frequency in kHz, as KVM reports it for the guest.
    pub tsc_khz: u64,
    /// Wall-clock time (ns since the Unix epoch) when the guest TSC read `tsc_at_wall_clock`.
    pub wall_clock_unix_ns: u64,
    /// Guest TSC value at `wall_clock_unix_ns`.
    pub tsc_at_wall_clock: u64,
    /// Guest TSC value (extrapolated) when the launcher process started, so that the guest can
    /// measure boot time on the same origin as the launcher.
    pub launcher_start_tsc: u64,
    /// Devices, [`device_kind::NONE`] in unused slots.
    pub devices: [DeviceInfo; MAX_DEVICES],
}

/// Why a [`BootInfo`] could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// Fewer bytes than [`BootInfo::SIZE`].
    Truncated,
    /// The magic is not [`BOOT_INFO_MAGIC`].
    BadMagic,
    /// The ABI version is not the one this side was built for.
    Version(u32),
}

impl BootInfo {
    /// Encoded size: magic, 6 words of facts, then the devices.
    pub const SIZE: usize = 8 + 8 + 5 * 8 + MAX_DEVICES * DEVICE_SIZE;

    /// Encodes the record.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let words = [
            BOOT_INFO_MAGIC,
            u64::from(self.abi_version) | (u64::from(self.vcpus) << 32),
            self.memory_bytes,
            self.tsc_khz,
            self.wall_clock_unix_ns,
            self.tsc_at_wall_clock,
            self.launcher_start_tsc,
        ];
        for (i, w) in words.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        for (i, d) in self.devices.iter().enumerate() {
            let at = DEVICES_OFFSET + i * DEVICE_SIZE;
            out[at..at + 4].copy_from_slice(&d.kind.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&d.irq.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&d.mmio_base.to_le_bytes());
            out[at + 16..at + 24].copy_from_slice(&d.mmio_size.to_le_bytes());
        }
        out
    }

    /// Decodes and checks the record.
    pub fn decode(bytes: &[u8]) -> Result<Self, BootInfoError> {
        let word = |i: usize| le_u64(bytes, i * 8).ok_or(BootInfoError::Truncated);
        if bytes.len() < Self::SIZE {
            return Err(BootInfoError::Truncated);
        }
        if word(0)? != BOOT_INFO_MAGIC {
            return Err(BootInfoError::BadMagic);
        }
        let version_vcpus = word(1)?;
        let abi_version = version_vcpus as u32;
        if abi_version != crate::ABI_VERSION {
            return Err(BootInfoError::Version(abi_version));
        }
        let mut devices = [DeviceInfo::default(); MAX_DEVICES];
        for (i, d) in devices.iter_mut().enumerate() {
            let at = DEVICES_OFFSET + i * DEVICE_SIZE;
            let truncated = BootInfoError::Truncated;
            *d = DeviceInfo {
                kind: le_u32(bytes, at).ok_or(truncated)?,
                irq: le_u32(bytes, at + 4).ok_or(truncated)?,
                mmio_base: le_u64(bytes, at + 8).ok_or(truncated)?,
                mmio_size: le_u64(bytes, at + 16).ok_or(truncated)?,
            };
        }
        Ok(BootInfo {
            abi_version,
            vcpus: (version_vcpus >> 32) as u32,
            memory_bytes: word(2)?,
            tsc_khz: word(3)?,
            wall_clock_unix_ns: word(4)?,
            tsc_at_wall_clock: word(5)?,
            launcher_start_tsc: word(6)?,
            devices,
        })
    }
}

const DEVICE_SIZE: usize = 24;
const DEVICES_OFFSET: usize = 7 * 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BootInfo {
        let mut devices = [DeviceInfo::default(); MAX_DEVICES];
        devices[1] =
            DeviceInfo { kind: device_kind::VIRTIO_BLOCK, irq: 5, mmio_base: 0xd000_0000, mmio_size: 0x1000 };
        BootInfo {
            abi_version: crate::ABI_VERSION,
            vcpus: 4,
            memory_bytes: 8 << 30,
            tsc_khz: 2_100_000,
            wall_clock_unix_ns: 1_790_000_000_000_000_000,
            tsc_at_wall_clock: 123_456,
            launcher_start_tsc: u64::MAX - 5,
            devices,
        }
    }

    #[test]
    fn round_trips() {
        let info = sample();
        assert_eq!(BootInfo::decode(&info.encode()), Ok(info));
    }

    #[test]
    fn rejects_truncated_foreign_and_other_versions() {
        let bytes = sample().encode();
        assert_eq!(BootInfo::decode(&bytes[..BootInfo::SIZE - 1]), Err(BootInfoError::Truncated));
        let mut bad = bytes;
        bad[0] ^= 1;
        assert_eq!(BootInfo::decode(&bad), Err(BootInfoError::BadMagic));
        let mut other = sample();
        other.abi_version += 1;
        assert_eq!(BootInfo::decode(&other.encode()), Err(BootInfoError::Version(crate::ABI_VERSION + 1)));
    }
}
