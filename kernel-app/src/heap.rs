//! The heap: the `talc` allocator over the largest RAM range above the image, less an optional
//! region at its top that is handed out untouched (see [`untouched`]).

use core::ops::Range;
use spinning_top::{RawSpinlock, Spinlock};
use talc::{TalcLock, source::Manual};

#[global_allocator]
static HEAP: TalcLock<RawSpinlock, Manual> = TalcLock::new(Manual);

/// The part of the untouched region not handed out yet.
static UNTOUCHED: Spinlock<Range<u64>> = Spinlock::new(0..0);

/// Hands `[start, end)` to the allocator but for its top `untouched` bytes (rounded to pages),
/// kept for [`untouched`]; returns the bytes the allocator manages.
///
/// Pages of the range cost host memory only once something is written in them: the allocator
/// writes only its bookkeeping at the ends of its range.
pub fn init(start: u64, end: u64, untouched: u64) -> u64 {
    let split = end.saturating_sub(untouched.next_multiple_of(4096)).max(start);
    let size = (split - start) as usize;
    // SAFETY: `[start, split)` is usable RAM from the launcher's memory map, above the image and
    // below the end of guest memory; nothing else in the guest uses it (`[split, end)` is only
    // handed out by `untouched`), and this runs once, on the boot vCPU, before any allocation.
    let claimed = unsafe { HEAP.lock().claim(start as *mut u8, size) };
    *UNTOUCHED.lock() = split..end;
    claimed.map_or(0, |_| size as u64)
}

/// `len` bytes of memory the guest has not written yet, for good (they are never freed).
///
/// Meant for buffers that must exist up front but are mostly idle, such as socket and receive
/// buffers: unlike a zeroed allocation, they cost neither time nor host memory until they are
/// written. Their initial content is whatever the launcher left there. `None` once the region
/// set aside by [`init`] is used up.
pub fn untouched(len: usize) -> Option<&'static mut [u8]> {
    let mut free = UNTOUCHED.lock();
    let start = free.start.next_multiple_of(64);
    let end = start.checked_add(len as u64).filter(|&end| end <= free.end)?;
    free.start = end;
    // SAFETY: `[start, end)` lies in usable RAM that the allocator was never given and that this
    // function hands out once (the free range moved past it above, under the lock), so no other
    // reference to it exists; it stays mapped for the life of the guest. Memory the launcher
    // provides holds definite byte values, and any byte is a valid `u8`.
    Some(unsafe { core::slice::from_raw_parts_mut(start as *mut u8, len) })
}

/// [`untouched`] memory while there is some, else zeroed memory from the allocator; never freed.
pub fn static_buffer(len: usize) -> &'static mut [u8] {
    untouched(len).unwrap_or_else(|| alloc::vec![0; len].leak())
}
