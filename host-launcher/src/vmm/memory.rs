//! Guest memory: anonymous, lazily backed mappings registered with KVM, with a hole where the
//! virtio-mmio device windows are (accesses there exit to the launcher).
//!
//! `vm-memory` maps it `MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE`, so a spacecore with
//! `memory = "8Gi"` costs host memory only for the pages the guest (or the launcher, writing
//! boot structures) touches. Transparent huge pages are turned off for the mapping so that one
//! touched byte costs 4 KiB, not 2 MiB.

use super::VmmError;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use spacecore_abi::layout as l;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// The guest's memory.
pub type Memory = GuestMemoryMmap<()>;

/// The RAM ranges of a guest with `bytes` of memory: everything below `bytes` except the
/// virtio-mmio hole `[MMIO_BASE, MMIO_BASE + MMIO_SLOTS * MMIO_SIZE)`.
pub fn ram_ranges(bytes: u64) -> [(u64, u64); 2] {
    let hole_end = l::MMIO_BASE + l::MMIO_SLOTS * l::MMIO_SIZE;
    [(0, l::MMIO_BASE), (hole_end, bytes - hole_end)]
}

/// Maps `bytes` of guest memory starting at guest-physical 0, less the MMIO hole.
pub fn map(bytes: u64) -> Result<Memory, VmmError> {
    if usize::try_from(bytes).is_err() || !(l::MIN_MEMORY..=l::MAX_MEMORY).contains(&bytes) {
        return Err(VmmError::MemorySize(bytes));
    }
    let ranges = ram_ranges(bytes).map(|(start, len)| (GuestAddress(start), len as usize));
    let memory = Memory::from_ranges(&ranges).map_err(|e| VmmError::MapMemory(bytes, e.to_string()))?;
    for region in memory.iter() {
        if let Ok(host) = memory.get_host_address(region.start_addr()) {
            // SAFETY: `host..host + len` is a mapping `memory` owns; madvise only changes how
            // the kernel backs it and its failure is harmless (huge pages stay possible).
            unsafe { libc::madvise(host.cast(), region.len() as usize, libc::MADV_NOHUGEPAGE) };
        }
    }
    Ok(memory)
}

/// Registers every region of `memory` with `vm`, one KVM slot each.
///
/// On hosts where KVM shadows the guest's page tables (as KVM on PVM does) this costs about
/// 0.5 ms per GiB, for KVM's per-page reverse maps.
pub fn register(vm: &VmFd, memory: &Memory) -> Result<(), VmmError> {
    for (slot, region) in memory.iter().enumerate() {
        let start = region.start_addr();
        let host =
            memory.get_host_address(start).map_err(|e| VmmError::MapMemory(region.len(), e.to_string()))?;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: start.0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region describes a live mapping owned by `memory`, which the caller keeps
        // alive for as long as the VM (the `Vm` drops its vCPUs and VM before its memory).
        unsafe { vm.set_user_memory_region(region) }.map_err(VmmError::RegisterMemory)?;
    }
    Ok(())
}

/// Bytes of guest memory resident in host RAM (pages the guest or the launcher touched).
pub fn resident_bytes(memory: &Memory) -> u64 {
    const CHUNK_PAGES: usize = 16 * 1024;
    let page = 4096usize;
    let mut vec = vec![0u8; CHUNK_PAGES];
    let mut resident = 0u64;
    for region in memory.iter() {
        let Ok(base) = memory.get_host_address(region.start_addr()) else { continue };
        let len = region.len() as usize;
        let mut off = 0;
        while off < len {
            let pages = ((len - off) / page).min(CHUNK_PAGES);
            // SAFETY: `base + off .. + pages * page` lies inside the region's live mapping and
            // `vec` has room for one byte per page.
            let rc = unsafe { libc::mincore(base.add(off).cast(), pages * page, vec.as_mut_ptr()) };
            if rc == 0 {
                resident += vec[..pages].iter().filter(|&&b| b & 1 != 0).count() as u64;
            }
            off += pages * page;
        }
    }
    resident * page as u64
}
