//! Loading the guest's ELF image into its memory, sharing its pages with every other spacecore
//! of the same image where that is safe.
//!
//! A segment's pages are either copied into the guest's anonymous memory or, when the image
//! file can no longer change, mapped from the file copy-on-write (`MAP_PRIVATE`): every
//! spacecore booted from that file then reads the same page-cache pages, and only a page the
//! guest writes (its `.data`) becomes a private copy. An image is mapped only if no one may
//! write to the file (no write bit in its mode): the image store writes its images read-only
//! and never rewrites one in place, whereas a file that is rebuilt in place (a path a build
//! writes) would change under a running guest, so those are copied. A page is mapped only
//! where the segment's file offset and guest address agree modulo the page size, and only
//! whole pages inside the segment's file bytes; the rest is copied, and `.bss` stays the fresh
//! mapping's zeros.
//!
//! The image is untrusted input as far as the launcher's memory goes: every segment must lie
//! inside the file and inside guest memory at or above [`l::IMAGE_ADDR`], and the entry point
//! inside a segment.

use super::memory::{self, Memory};
use spacecore_abi::layout as l;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const PAGE: u64 = 4096;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const PT_LOAD: u32 = 1;
const EM_X86_64: u16 = 62;
/// More program headers than any image has; a bound on what a hostile file makes us read.
const MAX_PHDRS: u16 = 64;

/// What loading the image did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// The entry point (guest-physical, which is also its virtual address).
    pub entry: u64,
    /// The first address past the highest segment.
    pub end: u64,
    /// Bytes mapped from the file copy-on-write (0 when the image is copied).
    pub shared_bytes: u64,
}

/// One `PT_LOAD` program header.
#[derive(Debug, Clone, Copy)]
struct Segment {
    offset: u64,
    addr: u64,
    file_size: u64,
    mem_size: u64,
}

/// Whether the pages of `image` may be shared copy-on-write: a regular file no one may write
/// to. Asked where the image is opened, before the launcher is confined (a confined launcher
/// may not `stat`).
pub fn may_share(image: &File) -> bool {
    image.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o222 == 0)
}

/// Loads `image` into `memory`, its pages mapped from the file if
/// `share` (see [`may_share`]), else copied; an error says what is wrong with it. The file is
/// read with `lseek` and `read` only, which every confined thread that loads an image may use.
pub fn load(memory: &Memory, image: &File, share: bool) -> Result<Loaded, String> {
    let (entry, segments) = parse(image)?;
    let memory_end = memory::end(memory);
    let mut end = 0;
    for s in &segments {
        let seg_end = s.addr.checked_add(s.mem_size).ok_or("a segment's address overflows")?;
        if s.addr < l::IMAGE_ADDR {
            return Err(format!(
                "a segment starts at {:#x}, below the image's place at {:#x}",
                s.addr,
                l::IMAGE_ADDR
            ));
        }
        if seg_end > memory_end {
            return Err(format!("it needs memory up to {seg_end:#x}, past the end of guest memory"));
        }
        end = end.max(seg_end);
    }
    if !segments.iter().any(|s| (s.addr..s.addr + s.mem_size).contains(&entry)) {
        return Err(format!("its entry point {entry:#x} lies in no loaded segment"));
    }
    let mut shared_bytes = 0;
    for s in &segments {
        shared_bytes += place(memory, image, s, share)?;
    }
    Ok(Loaded { entry, end, shared_bytes })
}

/// Reads `buf.len()` bytes of `image` at `offset` (also a snapshot's memory file), with
/// `lseek` and `read` only.
pub(super) fn read_at(mut image: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    image.seek(SeekFrom::Start(offset))?;
    image.read_exact(buf)
}

/// The ELF header's entry point and the `PT_LOAD` segments, each inside the file.
fn parse(mut image: &File) -> Result<(u64, Vec<Segment>), String> {
    let file_len = image.seek(SeekFrom::End(0)).map_err(|e| format!("cannot read it: {e}"))?;
    let read = |offset: u64, buf: &mut [u8]| {
        read_at(image, offset, buf).map_err(|e| format!("cannot read it at {offset}: {e}"))
    };
    let mut ehdr = [0u8; EHDR_SIZE];
    read(0, &mut ehdr).map_err(|_| "it is too short to be an ELF file".to_string())?;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    if ehdr[..4] != *b"\x7fELF" {
        return Err("it is not an ELF file".into());
    }
    if ehdr[4] != 2 || ehdr[5] != 1 || u16_at(&ehdr, 18) != EM_X86_64 {
        return Err("it is not a 64-bit little-endian x86-64 ELF file".into());
    }
    let (phoff, phentsize, phnum) = (u64_at(&ehdr, 32), u16_at(&ehdr, 54), u16_at(&ehdr, 56));
    if usize::from(phentsize) != PHDR_SIZE || phnum == 0 || phnum > MAX_PHDRS {
        return Err(format!("its program headers are malformed ({phnum} of {phentsize} bytes)"));
    }
    let mut table = vec![0u8; PHDR_SIZE * usize::from(phnum)];
    read(phoff, &mut table).map_err(|_| "its program headers lie past the end of the file".to_string())?;
    let mut segments = Vec::new();
    for ph in table.chunks_exact(PHDR_SIZE).filter(|ph| u32_at(ph, 0) == PT_LOAD) {
        let s = Segment {
            offset: u64_at(ph, 8),
            addr: u64_at(ph, 24),
            file_size: u64_at(ph, 32),
            mem_size: u64_at(ph, 40),
        };
        if s.file_size > s.mem_size {
            return Err(format!("the segment at {:#x} holds more file bytes than memory", s.addr));
        }
        if s.offset.checked_add(s.file_size).is_none_or(|end| end > file_len) {
            return Err(format!("the segment at {:#x} lies past the end of the file", s.addr));
        }
        if s.mem_size > 0 {
            segments.push(s);
        }
    }
    if segments.is_empty() {
        return Err("it has no loadable segment".into());
    }
    Ok((u64_at(&ehdr, 24), segments))
}

/// Places one checked segment; returns the bytes it mapped from the file.
fn place(memory: &Memory, image: &File, s: &Segment, share: bool) -> Result<u64, String> {
    let file_end = s.addr + s.file_size;
    // Whole pages inside the file bytes, mappable only if file offset and address agree.
    let (first, last) = (s.addr.next_multiple_of(PAGE), file_end / PAGE * PAGE);
    let mapped = if share && s.offset % PAGE == s.addr % PAGE && first < last {
        map_pages(memory, image, first, last - first, s.offset + (first - s.addr))?;
        first..last
    } else {
        file_end..file_end
    };
    // Copy what is not mapped: the head before the first whole page, the tail after the last.
    for (from, to) in [(s.addr, mapped.start.min(file_end)), (mapped.end.max(s.addr), file_end)] {
        if from < to {
            let mut bytes = vec![0u8; (to - from) as usize];
            read_at(image, s.offset + (from - s.addr), &mut bytes)
                .map_err(|e| format!("cannot read the segment at {:#x}: {e}", s.addr))?;
            memory
                .write_slice(&bytes, GuestAddress(from))
                .map_err(|e| format!("cannot write the segment at {:#x}: {e}", s.addr))?;
        }
    }
    Ok(mapped.end - mapped.start)
}

/// Maps `len` bytes of `image` at `offset` over guest memory at `addr`, copy-on-write (also
/// a snapshot's memory: `super::snapshot`).
pub(super) fn map_pages(
    memory: &Memory,
    image: &File,
    addr: u64,
    len: u64,
    offset: u64,
) -> Result<(), String> {
    let fail = |what: &str| format!("cannot map the image at {addr:#x}: {what}");
    // One contiguous host range, or the pages straddle two regions of guest memory.
    let slice = memory.get_slice(GuestAddress(addr), len as usize).map_err(|e| fail(&e.to_string()))?;
    let host = slice.ptr_guard_mut().as_ptr();
    let offset = libc::off_t::try_from(offset).map_err(|_| fail("file offset out of range"))?;
    // SAFETY: `host..host + len` lies inside one mapping that `memory` owns (checked by
    // `get_slice`), and nothing reads or writes it while the image loads: no vCPU exists yet
    // and no device runs. `MAP_FIXED` replaces those anonymous pages with the file's, which
    // `memory`'s own `munmap` of the whole region removes in the end like the rest.
    let got = unsafe {
        libc::mmap(
            host.cast(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            image.as_raw_fd(),
            offset,
        )
    };
    if got == libc::MAP_FAILED || got != host.cast() {
        return Err(fail(&std::io::Error::last_os_error().to_string()));
    }
    // The new mapping does not inherit the guest memory's advice. A page the guest writes
    // becomes anonymous memory that may hold keys: leave it out of core dumps, as the rest.
    // SAFETY: as above; madvise only changes how the kernel treats the range.
    unsafe { libc::madvise(host.cast(), len as usize, libc::MADV_NOHUGEPAGE) };
    // SAFETY: as above.
    if unsafe { libc::madvise(host.cast(), len as usize, libc::MADV_DONTDUMP) } != 0 {
        return Err(fail(&format!("cannot exclude it from core dumps: {}", std::io::Error::last_os_error())));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
