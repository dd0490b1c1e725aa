//! Snapshots: a spacecore saved at its snapshot point (`Hypercall::Snapshot`), and started
//! from there instead of from its image.
//!
//! The snapshot point comes after everything that is the same for every spacecore of one image
//! and spec (the heap, the devices set up) and before anything that is this spacecore's own:
//! its boot information and command line (read again on a start from the snapshot), its disk
//! (the store, the signing history and the operator key are read after it, so a snapshot holds
//! no key and no history: the disk stays the one source of truth), and its randomness.
//!
//! A snapshot is a directory of two files:
//! * `memory`: the guest memory at and above `GUEST_BASE` that the guest had written, as
//!   extents packed one after the other (pages of zeros left out). The launcher's region below
//!   `GUEST_BASE` (page tables, descriptor tables, boot information) is not saved: a start writes
//!   it afresh, as a boot does.
//! * `snapshot.json`: where each extent goes, the first vCPU's registers, each device window's
//!   settings ([`TransportState`]), and what the snapshot fits: the image file (size, change
//!   time, inode), the memory size and the vCPU count.
//!
//! A start maps the extents over fresh guest memory copy-on-write from the file (or copies them
//! if the file may be written to, as for images: [`super::load`]), so every spacecore started
//! from one snapshot shares its pages until it writes them. Nothing in the files is trusted
//! beyond the guest's own reach: extents must lie in guest memory at or above `GUEST_BASE` and
//! inside the file, and of the vCPU state only what a ring-3 program could have set is taken
//! ([`super::vcpu_state::restore`]).

use super::memory::{self, Memory};
use super::vcpu_state::VcpuState;
use super::{VmmError, load};
use crate::devices::TransportState;
use spacecore_abi::layout as l;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

/// The state file in a snapshot directory.
pub const STATE_FILE: &str = "snapshot.json";
/// The memory file in a snapshot directory.
pub const MEMORY_FILE: &str = "memory";
/// Version of the snapshot format; a launcher starts only from snapshots of its own version.
const FORMAT: u32 = 1;
/// The largest state file read (a real one is about 30 KiB).
pub const MAX_STATE_BYTES: u64 = 1 << 20;
/// The most extents a snapshot may have (a real one has a few dozen).
const MAX_EXTENTS: usize = 1 << 14;
const PAGE: u64 = 4096;
/// Runs of zero pages up to this long between written pages are saved with them, so that a
/// start maps a few long extents rather than many short ones.
const BRIDGE_PAGES: u64 = 16;

/// What the launcher does at the guest's snapshot point in one boot.
#[derive(Debug, Default)]
pub enum Point {
    /// Answer "fresh" and let the guest go on.
    #[default]
    Continue,
    /// Take the first vCPU's state, put here, and stop the guest to be saved.
    Save(Box<Mutex<Option<Result<VcpuState, String>>>>),
}

/// Why a snapshot cannot be saved, opened or used.
#[derive(Debug, thiserror::Error)]
#[error("snapshot {dir}: {reason}")]
pub struct SnapshotError {
    dir: String,
    reason: String,
}

fn error(dir: &Path, reason: impl Into<String>) -> SnapshotError {
    SnapshotError { dir: dir.display().to_string(), reason: reason.into() }
}

/// The image file a snapshot was saved from: a start refuses a spec whose image file is another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageId {
    len: u64,
    changed_ns: i128,
    inode: u64,
    device: u64,
}

impl ImageId {
    /// The identity of the open image `file` (asked before the launcher is confined).
    pub fn of(file: &File) -> std::io::Result<ImageId> {
        let meta = file.metadata()?;
        let changed_ns = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
        Ok(ImageId { len: meta.len(), changed_ns, inode: meta.ino(), device: meta.dev() })
    }
}

/// One run of saved memory: `len` bytes at guest address `addr`, at `offset` in the memory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Extent {
    addr: u64,
    offset: u64,
    len: u64,
}

/// The contents of `snapshot.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct State {
    format: u32,
    abi_version: u32,
    image: ImageId,
    memory_bytes: u64,
    vcpus: u32,
    /// The image's entry point, where the other vCPUs start.
    entry: u64,
    vcpu: VcpuState,
    devices: Vec<TransportState>,
    extents: Vec<Extent>,
}

/// Where a launcher saving a snapshot writes it: the directory's files, opened before the
/// launcher is confined (a confined launcher can open no file).
#[derive(Debug)]
pub struct Target {
    dir: PathBuf,
    state: File,
    memory: File,
    image: ImageId,
}

impl Target {
    /// Makes `dir` (owner-only) if it does not exist and opens its two files afresh, read-only
    /// once written (mode 0400: a snapshot is never rewritten in place, so its pages can be
    /// shared); `image` is the image file booted.
    pub fn create(dir: &Path, image: &File) -> Result<Target, SnapshotError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| error(dir, format!("cannot make the directory: {e}")))?;
        let meta = std::fs::symlink_metadata(dir).map_err(|e| error(dir, e.to_string()))?;
        private(&meta, "the directory").map_err(|why| error(dir, why))?;
        let open = |name: &str| {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error(dir, format!("cannot replace {name}: {e}")));
                }
                _ => {}
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| error(dir, format!("cannot create {name}: {e}")))
        };
        let image =
            ImageId::of(image).map_err(|e| error(dir, format!("cannot read the image's metadata: {e}")))?;
        Ok(Target { dir: dir.to_owned(), state: open(STATE_FILE)?, memory: open(MEMORY_FILE)?, image })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// What saving wrote.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    /// Bytes of guest memory in the memory file.
    pub memory_bytes: u64,
    /// Extents they make.
    pub extents: usize,
}

/// What the first vCPU and the devices were at the snapshot point: saved with the memory.
#[derive(Debug)]
struct Captured {
    /// The first vCPU.
    pub vcpu: VcpuState,
    /// Every device window, in window order.
    pub devices: Vec<TransportState>,
    /// The image's entry point.
    pub entry: u64,
    /// vCPUs of the guest.
    pub vcpus: u32,
}

/// The end of a boot that saves a snapshot: saves what the first vCPU left at `point` and the
/// device `windows` (as [`crate::vmm::bus::Bus::into_saved`] gave them, the devices stopped),
/// with `memory`, into `target`; the image's entry point and the vCPU count go with them.
pub(super) fn finish(
    target: &mut Target,
    point: &Point,
    windows: Result<Vec<TransportState>, String>,
    memory: &Memory,
    (entry, vcpus): (u64, u32),
) -> Result<Saved, String> {
    let captured = match point {
        Point::Save(slot) => slot.lock().unwrap_or_else(|p| p.into_inner()).take(),
        Point::Continue => None,
    };
    let vcpu = captured
        .ok_or("the guest never reached its snapshot point: is the image older than snapshots?")??;
    let captured = Captured { vcpu, devices: windows?, entry, vcpus };
    save(target, memory, captured).map_err(|e| e.to_string())
}

/// Saves `memory` and `captured` into `target`: first the memory file, then the state file,
/// which names what the memory file holds.
fn save(target: &mut Target, memory: &Memory, captured: Captured) -> Result<Saved, SnapshotError> {
    let dir = target.dir.clone();
    let extents = written_extents(memory);
    if extents.len() > MAX_EXTENTS {
        return Err(error(
            &dir,
            format!("guest memory is written in {} pieces, more than {MAX_EXTENTS}", extents.len()),
        ));
    }
    let mut saved = 0;
    for extent in &extents {
        let slice = memory
            .get_slice(GuestAddress(extent.addr), extent.len as usize)
            .map_err(|e| error(&dir, format!("cannot read guest memory at {:#x}: {e}", extent.addr)))?;
        let mut bytes = vec![0u8; extent.len as usize];
        slice.copy_to(&mut bytes);
        target
            .memory
            .write_all(&bytes)
            .map_err(|e| error(&dir, format!("cannot write {MEMORY_FILE}: {e}")))?;
        saved += extent.len;
    }
    let state = State {
        format: FORMAT,
        abi_version: spacecore_abi::ABI_VERSION,
        image: target.image,
        memory_bytes: memory::end(memory),
        vcpus: captured.vcpus,
        entry: captured.entry,
        vcpu: captured.vcpu,
        devices: captured.devices,
        extents,
    };
    let json =
        serde_json::to_vec(&state).map_err(|e| error(&dir, format!("cannot encode the state: {e}")))?;
    target.state.write_all(&json).map_err(|e| error(&dir, format!("cannot write {STATE_FILE}: {e}")))?;
    Ok(Saved { memory_bytes: saved, extents: state.extents.len() })
}

/// The guest memory at and above `GUEST_BASE` worth saving: pages resident in host memory
/// (written, or mapped from the image's file) that are not all zeros, in runs, with short runs of
/// zero pages between them bridged.
fn written_extents(memory: &Memory) -> Vec<Extent> {
    let mut extents: Vec<Extent> = Vec::new();
    let mut offset = 0;
    // Extents never span two regions: a start maps each into one host mapping.
    let mut add = |addr: u64, region: u64| match extents.last_mut() {
        Some(last) if last.addr >= region && addr - (last.addr + last.len) <= BRIDGE_PAGES * PAGE => {
            let grown = addr + PAGE - last.addr;
            offset += grown - last.len;
            last.len = grown;
        }
        _ => {
            extents.push(Extent { addr, offset, len: PAGE });
            offset += PAGE;
        }
    };
    for region in memory.iter() {
        let start = region.start_addr().0;
        let Ok(host) = memory.get_host_address(region.start_addr()) else { continue };
        // A range `mincore` cannot tell about is saved, as if written.
        let resident = memory::resident_pages(memory, region);
        for (page, _) in resident.iter().enumerate().filter(|(_, r)| **r != Some(false)) {
            let page = page as u64;
            let addr = start + page * PAGE;
            if addr < l::GUEST_BASE {
                continue;
            }
            // SAFETY: the page lies inside the region's live mapping; no vCPU runs any more.
            let bytes =
                unsafe { std::slice::from_raw_parts(host.add((page * PAGE) as usize), PAGE as usize) };
            if bytes.iter().any(|&b| b != 0) {
                add(addr, start);
            }
        }
    }
    extents
}

/// A snapshot opened to start spacecores from.
#[derive(Debug)]
pub struct Snapshot {
    dir: PathBuf,
    state: State,
    memory: File,
    /// Whether the memory file's pages may be mapped (no one may write to it), else copied.
    share: bool,
}

impl Snapshot {
    /// Opens the snapshot in `dir` and checks it on its own: format, extents inside the
    /// memory file and guest memory, no overlap.
    pub fn open(dir: &Path) -> Result<Snapshot, SnapshotError> {
        let fail = |reason: String| error(dir, reason);
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(dir.join(name))
                .map_err(|e| {
                    fail(format!("cannot open {name}: {e} (save one with `hac-launch --save-snapshot`)"))
                })
        };
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| fail(format!("cannot open it: {e} (save one with `hac-launch --save-snapshot`)")))?;
        private(&meta, "the directory").map_err(fail)?;
        let state_file = open(STATE_FILE)?;
        let meta = state_file.metadata().map_err(|e| fail(format!("cannot read {STATE_FILE}: {e}")))?;
        private(&meta, STATE_FILE).map_err(fail)?;
        let mut json = Vec::new();
        state_file
            .take(MAX_STATE_BYTES + 1)
            .read_to_end(&mut json)
            .map_err(|e| fail(format!("cannot read {STATE_FILE}: {e}")))?;
        if json.len() as u64 > MAX_STATE_BYTES {
            return Err(fail(format!("{STATE_FILE} is larger than {MAX_STATE_BYTES} bytes")));
        }
        let state: State = serde_json::from_slice(&json)
            .map_err(|e| fail(format!("{STATE_FILE} is not a snapshot's state: {e}")))?;
        if state.format != FORMAT || state.abi_version != spacecore_abi::ABI_VERSION {
            return Err(fail(format!(
                "format {} of ABI {}; this launcher starts format {FORMAT} of ABI {}",
                state.format,
                state.abi_version,
                spacecore_abi::ABI_VERSION
            )));
        }
        let memory = open(MEMORY_FILE)?;
        let share = load::may_share(&memory);
        let meta = memory.metadata().map_err(|e| fail(format!("cannot read {MEMORY_FILE}: {e}")))?;
        private(&meta, MEMORY_FILE).map_err(fail)?;
        let file_len = meta.len();
        check_extents(&state.extents, file_len, state.memory_bytes).map_err(fail)?;
        if !(l::IMAGE_ADDR..state.memory_bytes).contains(&state.entry) {
            return Err(fail(format!("its entry point {:#x} lies outside the image's place", state.entry)));
        }
        Ok(Snapshot { dir: dir.to_owned(), state, memory, share })
    }

    /// Whether this snapshot fits a spacecore of `memory_bytes`, `vcpus` and the image `image`;
    /// if not, why.
    pub fn fits(&self, memory_bytes: u64, vcpus: u32, image: &ImageId) -> Result<(), SnapshotError> {
        let s = &self.state;
        let why = if s.memory_bytes != memory_bytes {
            format!(
                "saved with {} MiB of memory, the spec asks for {} MiB",
                s.memory_bytes >> 20,
                memory_bytes >> 20
            )
        } else if s.vcpus != vcpus {
            format!("saved with {} vCPUs, the spec asks for {vcpus}", s.vcpus)
        } else if s.image != *image {
            "saved from another image file than the spec's (or the file changed since)".into()
        } else {
            return Ok(());
        };
        Err(error(&self.dir, why))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The image's entry point, where the vCPUs other than the first start.
    pub fn entry(&self) -> u64 {
        self.state.entry
    }

    /// The first vCPU's state.
    pub fn vcpu(&self) -> &VcpuState {
        &self.state.vcpu
    }

    /// The MAC address of the snapshot's NIC, which its guest has read: a spacecore started
    /// from it gets that address.
    pub fn nic_mac(&self) -> Option<[u8; 6]> {
        let nic = self.state.devices.iter().find(|d| d.device_type == crate::devices::TYPE_NET)?;
        nic.config.get(..6)?.try_into().ok()
    }

    /// The device windows' settings, in window order.
    pub fn devices(&self) -> &[TransportState] {
        &self.state.devices
    }

    /// Puts the saved memory into `memory` (fresh guest memory of the snapshot's size): mapped
    /// from the file copy-on-write, or copied. Returns the bytes mapped.
    pub fn place(&self, memory: &Memory) -> Result<u64, VmmError> {
        let fail = |reason: String| VmmError::LoadImage { path: self.dir.display().to_string(), reason };
        if memory::end(memory) != self.state.memory_bytes {
            return Err(fail("guest memory is not of the snapshot's size".into()));
        }
        let mut shared = 0;
        for e in &self.state.extents {
            if self.share {
                load::map_pages(memory, &self.memory, e.addr, e.len, e.offset).map_err(fail)?;
                shared += e.len;
            } else {
                let mut bytes = vec![0u8; e.len as usize];
                load::read_at(&self.memory, e.offset, &mut bytes)
                    .map_err(|err| fail(format!("cannot read {MEMORY_FILE} at {}: {err}", e.offset)))?;
                memory
                    .write_slice(&bytes, GuestAddress(e.addr))
                    .map_err(|err| fail(format!("cannot write guest memory at {:#x}: {err}", e.addr)))?;
            }
        }
        Ok(shared)
    }
}

/// A snapshot runs as the guest that later takes the operator's key: only the launcher's own
/// user may have written it. `what` (a real directory or regular file, not a link) must belong
/// to the user the launcher runs as and be writable by no one else.
fn private(meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no failure mode and touches no memory.
    let me = unsafe { libc::geteuid() };
    if !(meta.is_dir() || meta.is_file()) {
        return Err(format!("{what} is not a directory or a regular file (a symbolic link?)"));
    }
    if meta.uid() != me {
        return Err(format!("{what} belongs to user {}, not to the launcher's user {me}", meta.uid()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!("{what} may be written by its group or other users (chmod go-w)"));
    }
    Ok(())
}

/// Extents must be whole pages, in order, apart, inside the file and inside guest memory at or
/// above `GUEST_BASE` (the regions a start writes itself lie below it).
fn check_extents(extents: &[Extent], file_len: u64, memory_bytes: u64) -> Result<(), String> {
    if extents.len() > MAX_EXTENTS {
        return Err(format!("{} extents, more than {MAX_EXTENTS}", extents.len()));
    }
    let mut next_addr = l::GUEST_BASE;
    for e in extents {
        let bad = |why: &str| {
            format!("the extent at {:#x} ({} bytes, file offset {}) {why}", e.addr, e.len, e.offset)
        };
        if e.len == 0 || (e.addr | e.len | e.offset) % PAGE != 0 {
            return Err(bad("is not made of whole pages"));
        }
        if e.addr < next_addr {
            return Err(bad("lies below GUEST_BASE, or out of order, or over the one before"));
        }
        let end = e.addr.checked_add(e.len).ok_or_else(|| bad("wraps around"))?;
        if !fits_ram(e.addr, end, memory_bytes) {
            return Err(bad("lies outside guest memory, or across two of its ranges"));
        }
        if e.offset.checked_add(e.len).is_none_or(|file_end| file_end > file_len) {
            return Err(bad(&format!("lies past the end of {MEMORY_FILE} ({file_len} bytes)")));
        }
        next_addr = end;
    }
    Ok(())
}

/// Whether `start..end` lies inside the guest RAM of a guest of `memory_bytes`.
fn fits_ram(start: u64, end: u64, memory_bytes: u64) -> bool {
    memory::ram_ranges(memory_bytes).iter().any(|&(s, len)| s <= start && end <= s + len)
}

#[cfg(test)]
mod tests;
