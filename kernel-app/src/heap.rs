//! The heap: the `talc` allocator over the largest RAM range above the image.

use spinning_top::RawSpinlock;
use talc::{TalcLock, source::Manual};

#[global_allocator]
static HEAP: TalcLock<RawSpinlock, Manual> = TalcLock::new(Manual);

/// Hands `[start, end)` to the allocator; returns the bytes it manages.
///
/// Pages of the range cost host memory only once something is allocated in them: the allocator
/// writes only its bookkeeping at the ends of the range.
pub fn init(start: u64, end: u64) -> u64 {
    let size = end.saturating_sub(start) as usize;
    // SAFETY: `[start, end)` is usable RAM from the launcher's memory map, above the image and
    // below the end of guest memory; nothing else in the guest uses it, and this runs once,
    // on the boot vCPU, before any allocation.
    let claimed = unsafe { HEAP.lock().claim(start as *mut u8, size) };
    claimed.map_or(0, |_| size as u64)
}
