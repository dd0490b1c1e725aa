//! Reading a descriptor chain the guest offered, every descriptor checked against guest memory.

use crate::vmm::memory::Memory;
use vm_memory::{GuestAddress, GuestMemoryBackend};

/// Most descriptors a chain may have (direct or indirect); longer chains are refused.
pub(crate) const MAX_DESCRIPTORS: usize = 1024;

/// One buffer of a chain: `len` bytes of guest memory at `addr`, all inside guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buf {
    pub addr: GuestAddress,
    pub len: u32,
    /// Device-writable (the guest expects the device to fill it).
    pub writable: bool,
}

/// Why a chain cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ChainError {
    /// The head index or the descriptor table entry could not be read.
    #[error("descriptor chain with head {head} is empty or its head is not readable")]
    Empty { head: u16 },
    /// The chain loops, points past the table, or a descriptor could not be read.
    #[error("descriptor chain with head {head} ends abnormally after {after} descriptor(s)")]
    Truncated { head: u16, after: usize },
    /// More than [`MAX_DESCRIPTORS`].
    #[error("descriptor chain with head {head} has more than {MAX_DESCRIPTORS} descriptors")]
    TooLong { head: u16 },
    /// A buffer is not inside guest memory.
    #[error("descriptor chain with head {head}: buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutOfMemory { head: u16, addr: u64, len: u32 },
}

/// Reads every descriptor of `chain` (which reads `mem`); the head index is returned even when
/// the chain is bad so that it can still be given back on the used ring.
pub(crate) fn collect(
    mem: &Memory,
    chain: virtio_queue::DescriptorChain<&Memory>,
) -> (u16, Result<Vec<Buf>, ChainError>) {
    let head = chain.head_index();
    let mut bufs = Vec::new();
    let mut more = false;
    for desc in chain {
        if bufs.len() == MAX_DESCRIPTORS {
            return (head, Err(ChainError::TooLong { head }));
        }
        let (addr, len) = (desc.addr(), desc.len());
        let inside = len == 0 || mem.check_range(addr, len as usize);
        if !inside {
            return (head, Err(ChainError::OutOfMemory { head, addr: addr.0, len }));
        }
        bufs.push(Buf { addr, len, writable: desc.is_write_only() });
        more = desc.has_next();
    }
    if bufs.is_empty() {
        (head, Err(ChainError::Empty { head }))
    } else if more {
        // The iterator stops early (without error) on a loop, an index past the table or an
        // unreadable descriptor; the last descriptor it gave still says "next".
        (head, Err(ChainError::Truncated { head, after: bufs.len() }))
    } else {
        (head, Ok(bufs))
    }
}

/// Sum of the buffers' lengths.
pub(crate) fn total_len(bufs: &[Buf]) -> u64 {
    bufs.iter().map(|b| u64::from(b.len)).sum()
}
