use super::*;
use crate::vmm::memory;
use std::os::unix::fs::PermissionsExt;
use vm_memory::{Bytes, GuestAddress};

const MEM: u64 = 64 << 20;
/// The test segment: 3 whole pages and 100 bytes of file, then a page and a half of `.bss`.
const FILE_BYTES: u64 = 3 * PAGE + 100;
const MEM_BYTES: u64 = FILE_BYTES + PAGE + PAGE / 2;

/// One program header, as an ELF file holds it.
fn phdr(kind: u32, offset: u64, addr: u64, file_size: u64, mem_size: u64) -> Vec<u8> {
    let mut ph = Vec::with_capacity(PHDR_SIZE);
    ph.extend(kind.to_le_bytes());
    ph.extend(5u32.to_le_bytes()); // flags: R + X
    for v in [offset, addr, addr, file_size, mem_size, PAGE] {
        ph.extend(v.to_le_bytes());
    }
    ph
}

/// An x86-64 ELF file with `phdrs` and `entry`, its segment data from offset `PAGE` on:
/// byte `i` of the file there is `i % 251`.
fn elf(entry: u64, phdrs: &[Vec<u8>]) -> Vec<u8> {
    let mut f = vec![0u8; EHDR_SIZE];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    f[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    f[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    f[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for ph in phdrs {
        f.extend(ph);
    }
    f.resize(PAGE as usize, 0);
    f.extend((0..FILE_BYTES + PAGE).map(|i| ((PAGE + i) % 251) as u8));
    f
}

/// `bytes` in a temporary file with permissions `mode`; the file and its path.
fn file(bytes: &[u8], mode: u32) -> (tempfile::NamedTempFile, File) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bytes).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    let f = File::open(tmp.path()).unwrap();
    (tmp, f)
}

fn image(offset: u64) -> Vec<u8> {
    elf(l::IMAGE_ADDR + 16, &[phdr(PT_LOAD, offset, l::IMAGE_ADDR, FILE_BYTES, MEM_BYTES)])
}

fn load_file(bytes: &[u8], mode: u32) -> (Memory, Result<Loaded, String>) {
    let memory = memory::map(MEM).unwrap();
    let (_tmp, f) = file(bytes, mode);
    let loaded = load(&memory, &f, may_share(&f));
    (memory, loaded)
}

/// The guest's bytes of the test segment, file part and `.bss`.
fn segment(memory: &Memory) -> Vec<u8> {
    let mut got = vec![0u8; MEM_BYTES as usize];
    memory.read_slice(&mut got, GuestAddress(l::IMAGE_ADDR)).unwrap();
    got
}

fn expected(offset: u64) -> Vec<u8> {
    let mut want: Vec<u8> = (0..FILE_BYTES).map(|i| ((offset + i) % 251) as u8).collect();
    want.resize(MEM_BYTES as usize, 0);
    want
}

/// The path behind the mapping that holds `addr` in this process, if a file backs it.
fn backing(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let (start, end) = parts.next()?.split_once('-')?;
        let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
        (start <= addr && addr < end).then(|| parts.nth(4).unwrap_or("").to_string())
    })
}

fn host(memory: &Memory, addr: u64) -> usize {
    memory.get_host_address(GuestAddress(addr)).unwrap() as usize
}

#[test]
fn a_read_only_image_is_mapped_from_its_file_copy_on_write() {
    let bytes = image(PAGE);
    let memory = memory::map(MEM).unwrap();
    let (tmp, f) = file(&bytes, 0o444);
    let loaded = load(&memory, &f, may_share(&f)).unwrap();
    assert_eq!(
        loaded,
        Loaded { entry: l::IMAGE_ADDR + 16, end: l::IMAGE_ADDR + MEM_BYTES, shared_bytes: 3 * PAGE }
    );
    assert_eq!(segment(&memory), expected(PAGE));
    let path = tmp.path().to_str().unwrap().to_string();
    for page in 0..3 {
        let at = host(&memory, l::IMAGE_ADDR + page * PAGE);
        assert_eq!(backing(at).as_deref(), Some(path.as_str()), "page {page}");
    }
    // The partial last page and the .bss are the guest's own anonymous memory.
    assert_ne!(backing(host(&memory, l::IMAGE_ADDR + 3 * PAGE)).as_deref(), Some(path.as_str()));
    // A guest write stays in the guest: the file is unchanged.
    memory.write_slice(&[0xee; 8], GuestAddress(l::IMAGE_ADDR + PAGE)).unwrap();
    drop(memory);
    assert_eq!(std::fs::read(tmp.path()).unwrap(), bytes);
}

#[test]
fn a_writable_image_is_copied() {
    let (memory, loaded) = load_file(&image(PAGE), 0o644);
    assert_eq!(loaded.unwrap().shared_bytes, 0);
    assert_eq!(segment(&memory), expected(PAGE));
    assert_eq!(backing(host(&memory, l::IMAGE_ADDR)).as_deref(), Some(""));
}

#[test]
fn a_segment_whose_offset_and_address_disagree_is_copied() {
    let (memory, loaded) = load_file(&image(PAGE + 8), 0o444);
    assert_eq!(loaded.unwrap().shared_bytes, 0);
    assert_eq!(segment(&memory), expected(PAGE + 8));
}

#[test]
fn a_segment_starting_inside_a_page_maps_only_its_whole_pages() {
    let addr = l::IMAGE_ADDR + 100;
    let bytes = elf(addr, &[phdr(PT_LOAD, PAGE + 100, addr, FILE_BYTES, FILE_BYTES)]);
    let (memory, loaded) = load_file(&bytes, 0o444);
    assert_eq!(loaded.unwrap().shared_bytes, 2 * PAGE, "its two whole pages");
    let mut got = vec![0u8; FILE_BYTES as usize];
    memory.read_slice(&mut got, GuestAddress(addr)).unwrap();
    let want: Vec<u8> = (0..FILE_BYTES).map(|i| ((PAGE + 100 + i) % 251) as u8).collect();
    assert_eq!(got, want);
    let mut below = [0xffu8; 100];
    memory.read_slice(&mut below, GuestAddress(l::IMAGE_ADDR)).unwrap();
    assert_eq!(below, [0; 100], "the bytes before the segment stay the guest's zeros");
}

#[test]
fn hostile_images_are_refused_with_a_reason() {
    let seg = |offset, addr, file_size, mem_size| vec![phdr(PT_LOAD, offset, addr, file_size, mem_size)];
    let entry = l::IMAGE_ADDR;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"#!/bin/sh\n".repeat(10), "not an ELF file"),
        (b"\x7fELF".to_vec(), "too short"),
        (elf(entry, &[]), "program headers are malformed"),
        (elf(entry, &seg(PAGE, l::GUEST_BASE, PAGE, PAGE)), "below the image's place"),
        (elf(entry, &seg(PAGE, MEM - PAGE, PAGE, 2 * PAGE)), "past the end of guest memory"),
        (elf(entry, &seg(PAGE, u64::MAX - PAGE, PAGE, 2 * PAGE)), "overflows"),
        (elf(entry, &seg(PAGE, entry, 1 << 30, 1 << 30)), "past the end of the file"),
        (elf(entry, &seg(u64::MAX, entry, 2, 2)), "past the end of the file"),
        (elf(entry, &seg(PAGE, entry, 2 * PAGE, PAGE)), "more file bytes than memory"),
        (elf(entry + 2 * PAGE, &seg(PAGE, entry, PAGE, PAGE)), "entry point"),
        (elf(entry, &[phdr(2, PAGE, entry, PAGE, PAGE)]), "no loadable segment"),
    ];
    for (bytes, why) in cases {
        let (_, loaded) = load_file(&bytes, 0o444);
        let err = loaded.expect_err(why);
        assert!(err.contains(why), "{err:?} should say {why:?}");
    }
    // More program headers than any image has: refused before they are read.
    let mut many = elf(entry, &seg(PAGE, entry, PAGE, PAGE));
    many[56..58].copy_from_slice(&(MAX_PHDRS + 1).to_le_bytes());
    assert!(load_file(&many, 0o444).1.unwrap_err().contains("malformed"));
}
