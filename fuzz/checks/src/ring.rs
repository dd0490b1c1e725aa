//! Guest memory with a virtqueue in it whose every byte comes from the fuzz input, the device
//! run once over it, and a walk of the chains it offers, made before the device runs, to check
//! what the device did against.
//!
//! # Input format (`block_request`, `net_tx`)
//!
//! | bytes | meaning |
//! |-------|---------|
//! | 0     | bits 0..=2: log2 of the queue size (1 to 128 entries); bit 3: [`RingCase::flag`] |
//! | 1..   | guest memory from address 0, at most [`IMAGE_LEN`] bytes; the rest is zero |
//!
//! The queue's rings are packed from address 0 ([`Rings::packed`]): the descriptor table (16
//! bytes an entry: `addr: u64`, `len: u32`, `flags: u16`, `next: u16`), then the driver ring
//! (`flags: u16`, `idx: u16`, `ring: [u16; size]`, `used_event: u16`), then the device ring,
//! 4-byte aligned. Descriptor addresses, lengths, flags (`NEXT` = 1, `WRITE` = 2, `INDIRECT` = 4)
//! and next indices, the available index and the heads, indirect tables and request headers are
//! all the input's. The device ring is zeroed before the device runs (the device never reads it;
//! zeroing it makes it readable afterwards).
//!
//! Guest memory is [`REGIONS`]: two adjacent regions (buffers may straddle them) and one past a
//! hole (buffers that straddle it are outside guest memory).
//!
//! `virtio_queue::mock::MockSplitQueue` is not used: in virtio-queue 0.18 it puts the device
//! ring over the end of the driver ring (it takes the driver ring's length in entries for its
//! length in bytes), so the device's writes would change the chains offered.

use std::sync::Arc;

use host_launcher::devices::{Activation, Notifier, VirtioDevice};
use host_launcher::vmm::memory::Memory;
use virtio_bindings::virtio_ring::VRING_DESC_F_INDIRECT;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::Reader;

/// Guest memory: (start, length).
pub const REGIONS: [(u64, usize); 3] = [(0, 0x8000), (0x8000, 0x8000), (0x11000, 0x1000)];
/// Most bytes of guest memory the input gives, from address 0.
pub const IMAGE_LEN: usize = 0x10000;
/// Guest memory the input does not cover (4 KiB), for a queue a target sets up itself.
pub const SPARE: u64 = 0x11000;
/// Most descriptors a chain may have in the launcher (its `chain::MAX_DESCRIPTORS`); the walk
/// stops one past it.
pub const MAX_DESCRIPTORS: usize = 1024;

/// `[start, end)` in guest-physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// One past the last byte (saturated at `u64::MAX`).
    pub end: u64,
}

impl Span {
    /// `len` bytes at `start`.
    pub fn new(start: u64, len: u64) -> Self {
        Span { start, end: start.saturating_add(len) }
    }

    /// Whether the spans share a byte.
    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Whether any span of `a` overlaps any span of `b`.
pub fn any_overlap(a: &[Span], b: &[Span]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

/// Where a split virtqueue's three parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rings {
    /// Entries.
    pub size: u16,
    /// The descriptor table.
    pub desc: u64,
    /// The driver ring.
    pub avail: u64,
    /// The device ring.
    pub used: u64,
}

impl Rings {
    /// The three parts one after another from `base`, as the spec aligns them.
    pub fn packed(base: u64, size: u16) -> Self {
        let avail = base + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).next_multiple_of(4);
        Rings { size, desc: base, avail, used }
    }

    /// The descriptor table's bytes.
    pub fn desc_span(&self) -> Span {
        Span::new(self.desc, 16 * u64::from(self.size))
    }

    /// The driver ring's bytes.
    pub fn avail_span(&self) -> Span {
        Span::new(self.avail, 6 + 2 * u64::from(self.size))
    }

    /// The device ring's bytes.
    pub fn used_span(&self) -> Span {
        Span::new(self.used, 6 + 8 * u64::from(self.size))
    }

    /// A ready queue over these rings, as a driver would have set it up.
    pub fn queue(&self) -> Queue {
        let mut queue = Queue::new(self.size).expect("a power-of-two size");
        queue.set_size(self.size);
        queue.try_set_desc_table_address(GuestAddress(self.desc)).expect("an aligned table");
        queue.try_set_avail_ring_address(GuestAddress(self.avail)).expect("an aligned driver ring");
        queue.try_set_used_ring_address(GuestAddress(self.used)).expect("an aligned device ring");
        queue.set_ready(true);
        queue
    }

    /// Entry `index` of the descriptor table.
    pub fn descriptor(&self, mem: &Memory, index: u16) -> Descriptor {
        let addr = GuestAddress(self.desc + 16 * u64::from(index));
        mem.read_obj(addr).expect("the descriptor table is in guest memory")
    }

    /// The device ring's index and its entries up to it, `(id, len)`.
    pub fn used(&self, mem: &Memory) -> (u16, Vec<(u32, u32)>) {
        let read_u32 =
            |addr: u64| -> u32 { mem.read_obj(GuestAddress(addr)).expect("the ring is in memory") };
        let idx: u16 = mem.read_obj(GuestAddress(self.used + 2)).expect("the device ring is in memory");
        let entries = (0..u64::from(idx.min(self.size)))
            .map(|i| {
                let at = self.used + 4 + 8 * i;
                (read_u32(at), read_u32(at + 4))
            })
            .collect();
        (idx, entries)
    }
}

/// One fuzz case: the queue size, the flag bit and guest memory as the input made it.
#[derive(Debug)]
pub struct RingCase {
    /// Where the queue is.
    pub rings: Rings,
    /// Bit 3 of the first byte; each target says what it means.
    pub flag: bool,
    /// Guest memory.
    pub mem: Arc<Memory>,
}

/// A chain as the walk saw it.
#[derive(Debug)]
pub struct Chain {
    /// The head index, from the driver ring.
    pub head: u16,
    /// Its descriptors, as `virtio_queue` yields them (indirect tables followed), at most
    /// [`MAX_DESCRIPTORS`] + 1.
    pub descs: Vec<Descriptor>,
    /// The last descriptor still says `NEXT`: the chain loops, points past its table or into
    /// unreadable memory, or is too long.
    pub truncated: bool,
}

impl Chain {
    /// Bytes the device may write: the sum of the device-writable descriptors' lengths.
    pub fn writable_bytes(&self) -> u64 {
        self.descs.iter().filter(|d| d.is_write_only()).map(|d| u64::from(d.len())).sum()
    }

    /// The buffers of the chain, writable (`true`) or readable (`false`) ones.
    pub fn spans(&self, writable: bool) -> Vec<Span> {
        let bufs = self.descs.iter().filter(|d| d.is_write_only() == writable);
        bufs.map(|d| Span::new(d.addr().0, u64::from(d.len()))).collect()
    }
}

/// The chains of a queue, before the device ran.
#[derive(Debug)]
pub struct Walk {
    /// Every chain the driver ring offers, in ring order; `None` if the ring's index is invalid
    /// (more entries than the queue has), in which case the device must use none.
    pub chains: Option<Vec<Chain>>,
    /// What chains are made of: the descriptor table, the driver ring and every buffer a
    /// descriptor of the table marks `INDIRECT`.
    pub structure: Vec<Span>,
}

impl Walk {
    /// The chains the device must give back: those whose head is inside the table.
    pub fn returnable(&self, size: u16) -> Option<Vec<&Chain>> {
        Some(self.chains.as_ref()?.iter().filter(|c| c.head < size).collect())
    }
}

impl RingCase {
    /// Decodes an input (module docs) into guest memory.
    pub fn parse(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let config = r.u8();
        Self::from_parts(config, r.bytes(IMAGE_LEN))
    }

    /// The case of the first byte `config` and the memory `image` (cut at [`IMAGE_LEN`]).
    pub fn from_parts(config: u8, image: &[u8]) -> Self {
        let rings = Rings::packed(0, 1 << (config & 7));
        let mem = Arc::new(memory());
        let image = &image[..image.len().min(IMAGE_LEN)];
        mem.write_slice(image, GuestAddress(0)).expect("the image fits the first regions");
        let used = rings.used_span();
        let zeros = vec![0u8; (used.end - used.start) as usize];
        mem.write_slice(&zeros, GuestAddress(used.start)).expect("the device ring is in memory");
        RingCase { rings, flag: config & 8 != 0, mem }
    }

    /// Walks every chain the driver ring offers, as the device will.
    pub fn walk(&self) -> Walk {
        let mut queue = self.rings.queue();
        let chains = queue.iter(&*self.mem).ok().map(|iter| {
            iter.map(|chain| {
                let head = chain.head_index();
                let mut descs = Vec::new();
                let mut truncated = false;
                for desc in chain.take(MAX_DESCRIPTORS + 1) {
                    truncated = desc.has_next();
                    descs.push(desc);
                }
                Chain { head, descs, truncated }
            })
            .collect()
        });
        let mut structure = vec![self.rings.desc_span(), self.rings.avail_span()];
        for i in 0..self.rings.size {
            let desc = self.rings.descriptor(&self.mem, i);
            if desc.flags() & VRING_DESC_F_INDIRECT as u16 != 0 {
                structure.push(Span::new(desc.addr().0, u64::from(desc.len())));
            }
        }
        Walk { chains, structure }
    }
}

/// Fresh, zeroed guest memory of [`REGIONS`].
pub fn memory() -> Memory {
    let ranges: Vec<_> = REGIONS.iter().map(|&(start, len)| (GuestAddress(start), len)).collect();
    Memory::from_ranges(&ranges).expect("guest memory for a fuzz case")
}

/// Starts `device` on `queues` and stops it again. Every device serves its queues once when its
/// worker starts, before it waits for anything, and stopping it waits for the worker: when this
/// returns the device has served every chain that was available.
pub fn serve_once(device: &mut dyn VirtioDevice, mem: &Arc<Memory>, queues: Vec<Queue>) {
    let notifier: Notifier = Arc::new(|| {});
    let activation = Activation { mem: mem.clone(), queues, acked_features: device.features(), notifier };
    if let Err(e) = device.activate(activation) {
        panic!("the device did not start: {e}");
    }
    assert!(device.reset(), "the device could not be stopped");
}

/// Builds `block_request` and `net_tx` inputs, for the seed corpora.
#[derive(Debug, Clone)]
pub struct RingImage {
    config: u8,
    size: u16,
    offered: u16,
    image: Vec<u8>,
}

/// A descriptor as the table holds it.
pub fn descriptor(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&addr.to_le_bytes());
    out[8..12].copy_from_slice(&len.to_le_bytes());
    out[12..14].copy_from_slice(&flags.to_le_bytes());
    out[14..].copy_from_slice(&next.to_le_bytes());
    out
}

impl RingImage {
    /// A queue of `size` entries (a power of two, at most 128), nothing offered yet.
    pub fn new(size: u16, flag: bool) -> Self {
        assert!(size.is_power_of_two() && size <= 128);
        let config = size.trailing_zeros() as u8 | u8::from(flag) << 3;
        RingImage { config, size, offered: 0, image: Vec::new() }
    }

    /// Writes `bytes` at guest address `addr` (inside the image).
    pub fn poke(&mut self, addr: u64, bytes: &[u8]) -> &mut Self {
        let at = addr as usize;
        assert!(at + bytes.len() <= IMAGE_LEN);
        if self.image.len() < at + bytes.len() {
            self.image.resize(at + bytes.len(), 0);
        }
        self.image[at..at + bytes.len()].copy_from_slice(bytes);
        self
    }

    /// Sets descriptor `index` of the table.
    pub fn desc(&mut self, index: u16, addr: u64, len: u32, flags: u16, next: u16) -> &mut Self {
        self.poke(16 * u64::from(index), &descriptor(addr, len, flags, next))
    }

    /// Offers the chain at `head` on the driver ring.
    pub fn offer(&mut self, head: u16) -> &mut Self {
        let avail = 16 * u64::from(self.size);
        let slot = avail + 4 + 2 * u64::from(self.offered % self.size);
        self.poke(slot, &head.to_le_bytes());
        self.offered += 1;
        self.poke(avail + 2, &self.offered.to_le_bytes())
    }

    /// The input.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.config];
        out.extend_from_slice(&self.image);
        out
    }
}
