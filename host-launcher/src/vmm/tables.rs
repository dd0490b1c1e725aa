//! The x86-64 structures the CPU needs before the first guest instruction: page tables, GDT,
//! per-vCPU TSS, IDT and the ring-0 fatal-trap stubs, at the addresses of
//! `spacecore_abi::layout`.
//!
//! The guest runs at CPL3; ring 0 holds only the trap stubs. A stub reports its vector to the
//! launcher with one `out` to the fault port and halts; the launcher reads the trap frame from
//! the vCPU's trap stack (see `fault.rs`) and ends the guest.

use super::{VmmError, memory::Memory};
use spacecore_abi::hypercall::{Hypercall, PORT_BASE, PORT_COUNT};
use spacecore_abi::layout::{self as l, PAGE_SIZE, selector};
use vm_memory::{Bytes, GuestAddress};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const CACHE_DISABLE: u64 = 1 << 4;
const LARGE: u64 = 1 << 7;

/// Vectors for which the CPU pushes an error code.
const HAS_ERROR_CODE: [u8; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];
/// Vectors with a stub and an IDT gate (the CPU exceptions).
pub const TRAP_VECTORS: u64 = 32;

/// Writes every structure for a guest of `memory_bytes` with `vcpus` vCPUs.
pub fn write_all(mem: &Memory, memory_bytes: u64, vcpus: u32) -> Result<(), VmmError> {
    let put = |addr: u64, bytes: &[u8]| {
        mem.write_slice(bytes, GuestAddress(addr)).map_err(|e| VmmError::WriteBootData(addr, e.to_string()))
    };
    for (addr, entries) in page_tables(memory_bytes, vcpus) {
        put(addr, &to_bytes(&entries))?;
    }
    put(l::GDT_ADDR, &to_bytes(&gdt(vcpus)))?;
    for vcpu in 0..vcpus {
        put(tss_addr(vcpu), &tss(vcpu))?;
    }
    put(l::IO_BITMAP_ADDR, &io_bitmap())?;
    put(l::IDT_ADDR, &to_bytes(&idt()))?;
    for vector in 0..TRAP_VECTORS as u8 {
        put(l::TRAP_STUBS_ADDR + u64::from(vector) * l::TRAP_STUB_SIZE, &trap_stub(vector))?;
    }
    Ok(())
}

/// Address of the TSS of `vcpu`.
pub fn tss_addr(vcpu: u32) -> u64 {
    l::TSS_ADDR + u64::from(vcpu) * l::TSS_SIZE
}

/// Top of the ring-0 trap stack of `vcpu`.
pub fn trap_stack_top(vcpu: u32) -> u64 {
    l::TRAP_STACKS_ADDR + (u64::from(vcpu) + 1) * l::TRAP_STACK_SIZE
}

/// Limit (size - 1) of the GDT for `vcpus` vCPUs.
pub fn gdt_limit(vcpus: u32) -> u16 {
    (u64::from(selector::TSS_BASE) + 16 * u64::from(vcpus) - 1) as u16
}

/// Limit (size - 1) of the IDT.
pub const IDT_LIMIT: u16 = (TRAP_VECTORS * 16 - 1) as u16;

fn to_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The page tables as `(address, entries)` pages: PML4, PDPT, the 4 KiB table of the first
/// 2 MiB, and one directory per GiB. Memory is identity-mapped up to `memory_bytes`.
pub fn page_tables(memory_bytes: u64, vcpus: u32) -> Vec<(u64, Vec<u64>)> {
    let pml4 = l::PAGE_TABLES_ADDR;
    let pdpt = pml4 + PAGE_SIZE;
    let low_pt = pdpt + PAGE_SIZE;
    let first_pd = low_pt + PAGE_SIZE;
    let gib = memory_bytes.div_ceil(1 << 30);
    let tables_end = first_pd + gib * PAGE_SIZE;
    let link = PRESENT | WRITABLE | USER;

    let mut pages = vec![
        (pml4, vec![pdpt | link]),
        (pdpt, (0..gib).map(|g| (first_pd + g * PAGE_SIZE) | link).collect()),
    ];
    let low: Vec<u64> = (0..512).map(|i| low_page(i * PAGE_SIZE, tables_end, vcpus)).collect();
    pages.push((low_pt, low));
    for g in 0..gib {
        let pd = (0..512u64)
            .map(|i| {
                let addr = (g << 30) + (i << 21);
                match addr {
                    0 => low_pt | link,
                    a if a < memory_bytes => a | PRESENT | WRITABLE | USER | LARGE,
                    _ => 0,
                }
            })
            .collect();
        pages.push((first_pd + g * PAGE_SIZE, pd));
    }
    pages
}

/// The entry for the 4 KiB page at `addr` in the first 2 MiB.
fn low_page(addr: u64, tables_end: u64, vcpus: u32) -> u64 {
    let ring0 = addr | PRESENT | WRITABLE;
    match addr {
        0 => 0, // null guard
        a if a < l::BOOT_PARAMS_ADDR => ring0,
        a if a < l::PAGE_TABLES_ADDR => a | PRESENT | USER, // boot information, read-only
        a if a < tables_end => ring0,
        a if (l::MMIO_BASE..l::MMIO_BASE + l::MMIO_SLOTS * l::MMIO_SIZE).contains(&a) => {
            a | PRESENT | WRITABLE | USER | CACHE_DISABLE
        }
        a if (0..vcpus).any(|v| l::stack(v).is_some_and(|(bottom, top)| a >= bottom && a < top)) => {
            a | PRESENT | WRITABLE | USER
        }
        _ => 0, // guard pages and unused space
    }
}

/// GDT: null, kernel code, kernel data, user data, user code, then one TSS per vCPU. Accessed
/// bits are preset so the CPU never writes to the table.
fn gdt(vcpus: u32) -> Vec<u64> {
    let mut gdt = vec![
        0,
        0x00af_9b00_0000_ffff, // 0x08 kernel code: 64-bit, DPL0
        0x00cf_9300_0000_ffff, // 0x10 kernel data: DPL0
        0x00cf_f300_0000_ffff, // 0x18 user data: DPL3
        0x00af_fb00_0000_ffff, // 0x20 user code: 64-bit, DPL3
    ];
    for vcpu in 0..vcpus {
        let base = tss_addr(vcpu);
        let limit = u64::from(tss_limit(vcpu));
        let busy_tss = 0xb;
        let low = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (busy_tss << 40)
            | (1 << 47)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        gdt.extend([low, base >> 32]);
    }
    gdt
}

/// Limit of the TSS segment of `vcpu`: it reaches to the end of the shared I/O bitmap.
pub fn tss_limit(vcpu: u32) -> u32 {
    (l::IO_BITMAP_ADDR + l::IO_BITMAP_SIZE - 1 - tss_addr(vcpu)) as u32
}

/// TSS of `vcpu`: RSP0 is its trap stack; the I/O map base points at the shared bitmap.
fn tss(vcpu: u32) -> [u8; l::TSS_SIZE as usize] {
    let mut tss = [0u8; l::TSS_SIZE as usize];
    tss[4..12].copy_from_slice(&trap_stack_top(vcpu).to_le_bytes());
    let io_map_base = (l::IO_BITMAP_ADDR - tss_addr(vcpu)) as u16;
    tss[102..104].copy_from_slice(&io_map_base.to_le_bytes());
    tss
}

/// The I/O permission bitmap: only the hypercall ports are allowed at CPL3.
fn io_bitmap() -> Vec<u8> {
    let mut map = vec![0xffu8; l::IO_BITMAP_SIZE as usize];
    for port in PORT_BASE..PORT_BASE + PORT_COUNT {
        map[usize::from(port / 8)] &= !(1 << (port % 8));
    }
    map
}

/// IDT: an interrupt gate (DPL0, ring-0 code selector) to each trap stub.
fn idt() -> Vec<u64> {
    (0..TRAP_VECTORS)
        .flat_map(|v| {
            let offset = l::TRAP_STUBS_ADDR + v * l::TRAP_STUB_SIZE;
            let present_dpl0_interrupt_gate = 0x8e;
            let low = (offset & 0xffff)
                | (u64::from(selector::KERNEL_CODE) << 16)
                | (present_dpl0_interrupt_gate << 40)
                | (((offset >> 16) & 0xffff) << 48);
            [low, offset >> 32]
        })
        .collect()
}

/// The stub of `vector`: make every frame the same shape (push a zero error code where the CPU
/// pushes none), push the vector, report it on the fault port, halt.
fn trap_stub(vector: u8) -> Vec<u8> {
    let mut code = Vec::with_capacity(l::TRAP_STUB_SIZE as usize);
    if !HAS_ERROR_CODE.contains(&vector) {
        code.extend([0x6a, 0x00]); // push 0
    }
    code.extend([0x6a, vector]); // push vector
    let [lo, hi] = Hypercall::Fault.port().to_le_bytes();
    code.extend([0x66, 0xba, lo, hi]); // mov dx, FAULT_PORT
    code.extend([0xb0, vector]); // mov al, vector
    code.push(0xee); // out dx, al
    code.extend([0xf4, 0xeb, 0xfd]); // hlt; jmp back to hlt
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_u64(mem: &Memory, addr: u64) -> u64 {
        mem.read_obj(GuestAddress(addr)).unwrap()
    }

    /// Walks the page tables written into `mem` like the MMU does: the leaf entry for `va`.
    fn walk(mem: &Memory, va: u64) -> Option<u64> {
        let mut table = l::PAGE_TABLES_ADDR;
        for (level, shift) in [39u64, 30, 21, 12].into_iter().enumerate() {
            let entry = read_u64(mem, table + ((va >> shift) & 511) * 8);
            if entry & PRESENT == 0 {
                return None;
            }
            if level == 2 && entry & LARGE != 0 || level == 3 {
                return Some(entry);
            }
            table = entry & 0x000f_ffff_ffff_f000;
        }
        None
    }

    fn written(bytes: u64, vcpus: u32) -> Memory {
        let mem = crate::vmm::memory::map(bytes).unwrap();
        write_all(&mem, bytes, vcpus).unwrap();
        mem
    }

    #[test]
    fn identity_maps_memory_with_the_documented_protections() {
        let bytes = 1 << 31; // 2 GiB: two page directories
        let mem = written(bytes, 2);
        assert_eq!(walk(&mem, 0), None, "null page must be unmapped");
        let gdt = walk(&mem, l::GDT_ADDR).unwrap();
        assert_eq!(gdt & (USER | PRESENT), PRESENT, "GDT is ring 0 only");
        let info = walk(&mem, l::BOOT_INFO_ADDR).unwrap();
        assert_eq!(info & (USER | WRITABLE), USER, "boot info is read-only to the guest");
        let (bottom, top) = l::stack(1).unwrap();
        assert_eq!(walk(&mem, bottom).unwrap() & (USER | WRITABLE), USER | WRITABLE);
        assert_eq!(walk(&mem, top - 8).unwrap() & 0xfff_ffff_f000, top - PAGE_SIZE);
        assert_eq!(walk(&mem, bottom - PAGE_SIZE), None, "stack guard page must be unmapped");
        assert_eq!(walk(&mem, l::stack(2).unwrap().0), None, "no stack for a vCPU that does not exist");
        let mmio = walk(&mem, l::MMIO_BASE + 3 * l::MMIO_SIZE + 0x50).unwrap();
        assert_eq!(mmio & (USER | WRITABLE | CACHE_DISABLE), USER | WRITABLE | CACHE_DISABLE);
        let image = walk(&mem, l::IMAGE_ADDR + 0x1234).unwrap();
        assert_eq!(image & !0xfff, l::IMAGE_ADDR);
        assert_ne!(image & LARGE, 0, "memory above 2 MiB uses large pages");
        assert_eq!(walk(&mem, (1 << 30) + 0x20_0000).unwrap() & 0x000f_ffff_ffe0_0000, (1 << 30) + 0x20_0000);
        assert_eq!(walk(&mem, bytes - 1).unwrap() & 0x000f_ffff_ffe0_0000, bytes - 0x20_0000);
        assert_eq!(walk(&mem, bytes), None, "nothing mapped past the end of memory");
    }

    #[test]
    fn the_largest_memory_fits_the_page_table_region() {
        let last = page_tables(l::MAX_MEMORY, l::MAX_VCPUS).last().unwrap().0;
        assert!(last + PAGE_SIZE <= l::stack(l::MAX_VCPUS - 1).unwrap().0 - PAGE_SIZE);
    }

    #[test]
    fn gdt_idt_and_stubs_point_where_the_layout_says() {
        let mem = written(4 << 20, 3);
        let tss2 = read_u64(&mem, l::GDT_ADDR + u64::from(selector::TSS_BASE) + 32);
        let base = (tss2 >> 16) & 0xff_ffff | ((tss2 >> 56) << 24);
        assert_eq!(base, tss_addr(2));
        assert_eq!(read_u64(&mem, tss_addr(2) + 4), trap_stack_top(2));
        // The I/O map base of each TSS lands on the shared bitmap, which allows exactly the
        // hypercall ports.
        let base: u16 = mem.read_obj(GuestAddress(tss_addr(2) + 102)).unwrap();
        assert_eq!(tss_addr(2) + u64::from(base), l::IO_BITMAP_ADDR);
        let allowed = |port: u16| {
            let byte: u8 = mem.read_obj(GuestAddress(l::IO_BITMAP_ADDR + u64::from(port / 8))).unwrap();
            byte & (1 << (port % 8)) == 0
        };
        assert!((PORT_BASE..PORT_BASE + PORT_COUNT).all(allowed));
        assert!(!allowed(PORT_BASE - 1) && !allowed(0x3f8) && !allowed(0x20));
        let gate14 = read_u64(&mem, l::IDT_ADDR + 14 * 16);
        let offset = gate14 & 0xffff | ((gate14 >> 48) << 16);
        assert_eq!(offset, l::TRAP_STUBS_ADDR + 14 * l::TRAP_STUB_SIZE);
        // #PF pushes its own error code: its stub starts with `push 14`; #UD's with `push 0`.
        assert_eq!(trap_stub(14)[..2], [0x6a, 14]);
        assert_eq!(trap_stub(6)[..4], [0x6a, 0, 0x6a, 6]);
        assert!((0..32).all(|v| trap_stub(v).len() as u64 <= l::TRAP_STUB_SIZE));
    }
}
