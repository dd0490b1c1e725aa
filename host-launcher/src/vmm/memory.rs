//! Guest memory: one anonymous, lazily backed mapping registered with KVM as slot 0.
//!
//! `vm-memory` maps it `MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE`, so a spacecore with
//! `memory = "8Gi"` costs host memory only for the pages the guest (or the launcher, writing
//! boot structures) touches. Transparent huge pages are turned off for the mapping so that one
//! touched byte costs 4 KiB, not 2 MiB.

use super::VmmError;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// The guest's memory.
pub type Memory = GuestMemoryMmap<()>;

/// Maps `bytes` of guest memory starting at guest-physical 0 and registers it with `vm`.
pub fn create(vm: &VmFd, bytes: u64) -> Result<Memory, VmmError> {
    let size = usize::try_from(bytes).map_err(|_| VmmError::MemorySize(bytes))?;
    let memory = Memory::from_ranges(&[(GuestAddress(0), size)])
        .map_err(|e| VmmError::MapMemory(bytes, e.to_string()))?;
    let host =
        memory.get_host_address(GuestAddress(0)).map_err(|e| VmmError::MapMemory(bytes, e.to_string()))?;
    // SAFETY: `host..host + size` is the mapping `memory` owns; madvise only changes how the
    // kernel backs it and its failure is harmless (huge pages stay possible).
    unsafe { libc::madvise(host.cast(), size, libc::MADV_NOHUGEPAGE) };
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: bytes,
        userspace_addr: host as u64,
    };
    // SAFETY: the region describes the live mapping owned by `memory`, which the caller keeps
    // alive for as long as the VM (it is dropped after the vCPUs stop running, at process exit).
    unsafe { vm.set_user_memory_region(region) }.map_err(VmmError::RegisterMemory)?;
    Ok(memory)
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
