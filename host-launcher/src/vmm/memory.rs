//! Guest memory: anonymous, lazily backed mappings registered with KVM, with a hole where the
//! virtio-mmio device windows are (accesses there exit to the launcher).
//!
//! `vm-memory` maps it `MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE`, so a spacecore with
//! `memory = "8Gi"` costs host memory only for the pages the guest (or the launcher, writing
//! boot structures) touches. Transparent huge pages are turned off for the mapping so that one
//! touched byte costs 4 KiB, not 2 MiB. The mapping is left out of core dumps
//! (`MADV_DONTDUMP`): it holds the operator's decrypted keys once the guest has loaded them.

use super::VmmError;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use spacecore_abi::layout as l;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// The guest's memory.
pub type Memory = GuestMemoryMmap<()>;

/// Guest memory below this address is registered with KVM before the guest starts; memory
/// above it is registered once the guest is ready (see [`register_late`]), unless the whole
/// guest is at most [`EAGER_ALL`].
pub const EAGER_END: u64 = 128 << 20;

/// A guest of at most this much memory has all of it registered before it starts: about 0.5 ms
/// per GiB, made while the devices are set up, against the 20 to 30 accesses a guest of a few
/// hundred MiB makes above [`EAGER_END`] before it is ready, each a VM exit and an emulated
/// instruction (about 1 ms in all).
pub const EAGER_ALL: u64 = 1 << 30;

/// Where the memory registered before the guest starts ends, for a guest of `bytes`.
pub fn eager_end(bytes: u64) -> u64 {
    if bytes <= EAGER_ALL { bytes.max(EAGER_END) } else { EAGER_END }
}

/// The RAM ranges of a guest with `bytes` of memory, as `(start, length)`: everything below
/// `bytes` except the virtio-mmio hole `[MMIO_BASE, MMIO_BASE + MMIO_SLOTS * MMIO_SIZE)`, with
/// splits at `GUEST_BASE` (the launcher's ring-0 region ends there, see [`dma_view`]) and at
/// [`EAGER_END`].
pub fn ram_ranges(bytes: u64) -> Vec<(u64, u64)> {
    let hole_end = l::MMIO_BASE + l::MMIO_SLOTS * l::MMIO_SIZE;
    let mut ranges = vec![
        (0, l::MMIO_BASE),
        (hole_end, l::GUEST_BASE - hole_end),
        (l::GUEST_BASE, bytes.min(EAGER_END) - l::GUEST_BASE),
    ];
    if bytes > EAGER_END {
        ranges.push((EAGER_END, bytes - EAGER_END));
    }
    ranges
}

/// Maps `bytes` of guest memory starting at guest-physical 0, less the MMIO hole.
pub fn map(bytes: u64) -> Result<Memory, VmmError> {
    if usize::try_from(bytes).is_err() || !(l::MIN_MEMORY..=l::MAX_MEMORY).contains(&bytes) {
        return Err(VmmError::MemorySize(bytes));
    }
    let ranges: Vec<_> =
        ram_ranges(bytes).into_iter().map(|(start, len)| (GuestAddress(start), len as usize)).collect();
    let memory = Memory::from_ranges(&ranges).map_err(|e| VmmError::MapMemory(bytes, e.to_string()))?;
    for region in memory.iter() {
        let host = memory
            .get_host_address(region.start_addr())
            .map_err(|e| VmmError::MapMemory(bytes, e.to_string()))?;
        let len = region.len() as usize;
        // SAFETY: `host..host + len` is a mapping `memory` owns; madvise only changes how the
        // kernel backs it. Failing to turn huge pages off is harmless (they stay possible).
        unsafe { libc::madvise(host.cast(), len, libc::MADV_NOHUGEPAGE) };
        // SAFETY: as above; this one must succeed, or a core dump could carry the keys.
        if unsafe { libc::madvise(host.cast(), len, libc::MADV_DONTDUMP) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(VmmError::MapMemory(bytes, format!("cannot exclude it from core dumps: {e}")));
        }
    }
    Ok(memory)
}

/// The guest's memory as its devices reach it: only the guest's own RAM, from `GUEST_BASE` up.
/// Below it lie the page tables, descriptor tables, TSS, I/O bitmap and boot information the
/// launcher wrote for ring 0; a virtio descriptor that points there is outside this view, so
/// the device fails that request instead of rewriting them. The view shares the regions (and
/// keeps their mappings alive) with `memory`.
pub fn dma_view(memory: &Memory) -> Memory {
    let mut view = memory.clone();
    for region in memory.iter().filter(|r| r.start_addr().0 < l::GUEST_BASE) {
        view = view.remove_region(region.start_addr(), region.len()).expect("a region of this memory").0;
    }
    view
}

/// The first guest-physical address past `memory`: its size, the MMIO hole included.
pub fn end(memory: &Memory) -> u64 {
    memory.last_addr().0 + 1
}

/// Registers the regions of `memory` below [`eager_end`] with `vm`, one KVM slot each.
pub fn register(vm: &VmFd, memory: &Memory) -> Result<(), VmmError> {
    let eager = eager_end(end(memory));
    register_where(vm, memory, |start| start < eager)
}

/// Registers the region above [`eager_end`], if any.
///
/// On hosts where KVM shadows the guest's page tables (as KVM on PVM does) registering memory
/// costs about 0.5 ms per GiB, for KVM's per-page reverse maps: 4 ms for 8 GiB, most of a boot.
/// So this runs while the guest boots; until it is done, the guest's rare accesses there exit
/// as MMIO and [`LateMemory`] serves them from the same mapping.
pub fn register_late(vm: &VmFd, memory: &Memory) -> Result<(), VmmError> {
    let eager = eager_end(end(memory));
    register_where(vm, memory, |start| start >= eager)
}

fn register_where(vm: &VmFd, memory: &Memory, pick: impl Fn(u64) -> bool) -> Result<(), VmmError> {
    for (slot, region) in memory.iter().enumerate() {
        let start = region.start_addr();
        if !pick(start.0) {
            continue;
        }
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

/// Guest RAM above [`EAGER_END`] while KVM does not know it yet: guest accesses there arrive
/// as MMIO exits and are served from the launcher's mapping of the same memory, so the guest
/// sees ordinary RAM either way, only slower for the few accesses before registration ends.
#[derive(Debug)]
pub struct LateMemory {
    range: std::ops::Range<u64>,
}

impl LateMemory {
    /// The late range of a guest with `bytes` of memory (empty if there is none).
    pub fn new(bytes: u64) -> Self {
        let start = eager_end(bytes);
        LateMemory { range: start..bytes.max(start) }
    }

    /// Serves a guest read at `addr`; false if `addr` is not late memory.
    pub fn read(&self, memory: &Memory, addr: u64, data: &mut [u8]) -> bool {
        self.covers(addr, data.len()) && memory.read_slice(data, GuestAddress(addr)).is_ok()
    }

    /// Serves a guest write at `addr`; false if `addr` is not late memory.
    pub fn write(&self, memory: &Memory, addr: u64, data: &[u8]) -> bool {
        self.covers(addr, data.len()) && memory.write_slice(data, GuestAddress(addr)).is_ok()
    }

    /// Served whether or not registration has finished: an exit can still arrive just after it
    /// (it was already on its way), and the data is the same memory either way.
    fn covers(&self, addr: u64, len: usize) -> bool {
        addr >= self.range.start && addr.checked_add(len as u64).is_some_and(|end| end <= self.range.end)
    }
}

/// Bytes of guest memory resident in host RAM (pages the guest or the launcher touched).
pub fn resident_bytes(memory: &Memory) -> u64 {
    let pages: usize = memory
        .iter()
        .map(|region| resident_pages(memory, region).iter().filter(|&&r| r == Some(true)).count())
        .sum();
    pages as u64 * l::PAGE_SIZE
}

/// Whether each page of `region` of `memory` is resident in host RAM (`mincore`): `None` for
/// the pages of a range `mincore` could not tell.
pub fn resident_pages(memory: &Memory, region: &impl GuestMemoryRegion) -> Vec<Option<bool>> {
    const CHUNK_PAGES: u64 = 16 * 1024;
    const PAGE: u64 = l::PAGE_SIZE;
    let pages = region.len() / PAGE;
    let Ok(base) = memory.get_host_address(region.start_addr()) else { return vec![None; pages as usize] };
    let mut out = Vec::with_capacity(pages as usize);
    let mut vec = vec![0u8; CHUNK_PAGES as usize];
    let mut page = 0;
    while page < pages {
        let n = (pages - page).min(CHUNK_PAGES);
        // SAFETY: `base + page * PAGE .. + n * PAGE` lies inside the region's live mapping and
        // `vec` has room for one byte per page.
        let rc = unsafe {
            libc::mincore(base.add((page * PAGE) as usize).cast(), (n * PAGE) as usize, vec.as_mut_ptr())
        };
        out.extend(vec[..n as usize].iter().map(|&b| (rc == 0).then_some(b & 1 != 0)));
        page += n;
    }
    out
}

#[cfg(test)]
mod tests {
    /// This process's mappings from /proc/self/smaps: address range and `VmFlags:` line.
    fn mappings() -> Vec<(usize, usize, String)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut mappings: Vec<(usize, usize, String)> = Vec::new();
        for line in smaps.lines() {
            let range = line.split_whitespace().next().and_then(|r| r.split_once('-'));
            match range.map(|(a, b)| (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))) {
                Some((Ok(start), Ok(end))) => mappings.push((start, end, String::new())),
                _ if line.starts_with("VmFlags:") => mappings.last_mut().unwrap().2 = line.into(),
                _ => {}
            }
        }
        mappings
    }

    #[test]
    fn guest_memory_is_left_out_of_core_dumps() {
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
        let memory = super::map(256 << 20).unwrap();
        // The kernel may merge adjacent mappings with the same flags: look regions up by
        // containment, not by start address.
        let mappings = mappings();
        for region in memory.iter() {
            let host = memory.get_host_address(region.start_addr()).unwrap();
            let (start, len) = (host as usize, region.len() as usize);
            let (_, _, flags) = mappings
                .iter()
                .find(|(a, b, _)| *a <= start && start + len <= *b)
                .unwrap_or_else(|| panic!("no mapping holds {start:#x}+{len:#x}"));
            assert!(flags.split_whitespace().any(|f| f == "dd"), "region at {start:#x}: {flags:?}");
        }
    }

    use super::*;

    #[test]
    fn ranges_skip_the_device_hole_and_split_at_the_boot_slot() {
        let hole_end = l::MMIO_BASE + l::MMIO_SLOTS * l::MMIO_SIZE;
        assert_eq!(
            ram_ranges(64 << 20),
            [
                (0, l::MMIO_BASE),
                (hole_end, l::GUEST_BASE - hole_end),
                (l::GUEST_BASE, (64 << 20) - l::GUEST_BASE)
            ]
        );
        let big = ram_ranges(8 << 30);
        assert_eq!(big[2], (l::GUEST_BASE, EAGER_END - l::GUEST_BASE));
        assert_eq!(big[3], (EAGER_END, (8 << 30) - EAGER_END));
    }

    #[test]
    fn devices_see_only_the_guests_own_memory() {
        let memory = map(EAGER_END + (4 << 20)).unwrap();
        let view = dma_view(&memory);
        // The ring-0 structures and boot information are out of the devices' reach...
        for addr in [0, l::PAGE_TABLES_ADDR, l::BOOT_INFO_ADDR, l::GUEST_BASE - 1] {
            assert!(view.write_slice(&[0xee], GuestAddress(addr)).is_err(), "{addr:#x}");
            assert!(view.read_slice(&mut [0u8], GuestAddress(addr)).is_err(), "{addr:#x}");
        }
        // ...and a buffer that starts in the guest's memory may not run down into them.
        assert!(view.write_slice(&[0xee; 2], GuestAddress(l::GUEST_BASE - 1)).is_err());
        // The rest is the same memory, above and below EAGER_END.
        for addr in [l::GUEST_BASE, l::IMAGE_ADDR, EAGER_END + 4096] {
            view.write_slice(&[0xab], GuestAddress(addr)).unwrap();
            let mut back = [0u8];
            memory.read_slice(&mut back, GuestAddress(addr)).unwrap();
            assert_eq!(back, [0xab], "{addr:#x}");
        }
        let mut low = [0u8; 16];
        memory.read_slice(&mut low, GuestAddress(l::PAGE_TABLES_ADDR)).unwrap();
        assert_eq!(low, [0; 16]);
    }

    #[test]
    fn late_memory_serves_exactly_its_range_from_the_same_mapping() {
        let bytes = EAGER_ALL + (4 << 20);
        let memory = map(bytes).unwrap();
        let late = LateMemory::new(bytes);
        assert!(late.write(&memory, EAGER_END, &[1, 2, 3, 4]));
        let mut back = [0u8; 4];
        memory.read_slice(&mut back, GuestAddress(EAGER_END)).unwrap();
        assert_eq!(back, [1, 2, 3, 4], "a late write lands in guest memory");
        assert!(late.read(&memory, bytes - 8, &mut [0u8; 8]));
        assert!(!late.read(&memory, bytes - 4, &mut [0u8; 8]), "past the end of memory");
        assert!(!late.read(&memory, EAGER_END - 4, &mut [0u8; 4]), "below the late range");
        assert!(!late.write(&memory, u64::MAX - 2, &[0u8; 4]), "address overflow");
        assert!(!LateMemory::new(64 << 20).read(&memory, EAGER_END, &mut [0u8; 4]), "no late range");
        assert!(
            !LateMemory::new(256 << 20).read(&memory, EAGER_END, &mut [0u8; 4]),
            "all registered at once"
        );
    }

    #[test]
    fn small_guests_are_registered_whole_before_they_start_and_large_ones_in_two_steps() {
        assert_eq!(eager_end(64 << 20), EAGER_END, "below the first split: nothing late anyway");
        assert_eq!(eager_end(256 << 20), 256 << 20);
        assert_eq!(eager_end(EAGER_ALL), EAGER_ALL);
        assert_eq!(eager_end(EAGER_ALL + 4096), EAGER_END);
        assert_eq!(eager_end(8 << 30), EAGER_END);
    }
}
