//! Everything of the virtio drivers that touches raw memory, behind safe types:
//! - [`VirtioHal`], the `virtio_drivers::Hal` of this guest;
//! - [`transport`], which claims a device window from the boot information, and [`Window`], its
//!   registers;
//! - [`NetRings`] and [`OwnedQueue`], which lend buffers to a device and take them back.
//!
//! The guest is identity-mapped (virtual = guest-physical, see `spacecore_abi::layout`) and the
//! device side is the launcher, which reads and writes guest memory by guest-physical address. So
//! a buffer's address is also the address a device uses: there is no IOMMU, no bounce buffer,
//! nothing to translate. Buffers lent to a device are held as raw pointers while the device may
//! use them, so no Rust reference to them exists meanwhile, and become a `Box` (or a `&'static
//! mut`) again only once the device has returned them through the used ring (or never received
//! them). A request that is abandoned keeps its buffers forever rather than freeing memory a
//! device may still write.

use super::transport::{CONFIG_OFFSET, Mmio, Registers};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use spacecore_abi::layout::{MMIO_BASE, MMIO_SIZE, MMIO_SLOTS};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;
use virtio_drivers::transport::mmio::MmioError;
use virtio_drivers::{BufferDirection, Error, Hal, PAGE_SIZE, PhysAddr};

/// The `Hal` of an identity-mapped guest whose devices are emulated by the launcher.
pub struct VirtioHal;

fn dma_layout(pages: usize) -> Option<Layout> {
    let size = pages.checked_mul(PAGE_SIZE).filter(|&s| s > 0)?;
    Layout::from_size_align(size, PAGE_SIZE).ok()
}

// SAFETY: each obligation of the trait, given the identity map described in the module docs:
// - `dma_alloc` returns memory fresh from the global allocator, aligned to `PAGE_SIZE`, zeroed
//   (`alloc_zeroed`) and owned by nothing else until `dma_dealloc`; its guest-physical address is
//   its address. On failure it returns physical address 0, which `Dma::new` reports as an error.
// - `dma_dealloc` frees with the same layout `dma_alloc` used.
// - `mmio_phys_to_virt` (used by the PCI transport only) is the identity, as the map is.
// - `share` gives the device the buffer's own address: the device accesses the very memory the
//   driver lent, so `unshare` has nothing to copy back.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(layout) = dma_layout(pages) else { return (0, NonNull::dangling()) };
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        NonNull::new(ptr).map_or((0, NonNull::dangling()), |p| (p.as_ptr() as PhysAddr, p))
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let Some(layout) = dma_layout(pages) else { return -1 };
        // SAFETY: the caller passes back, unfreed, what `dma_alloc(pages)` returned, which was
        // allocated with this very layout.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("MMIO region at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Why a device window cannot be used.
#[derive(Debug)]
pub enum WindowError {
    /// The window is not one of the layout's virtio-mmio slots.
    Outside,
    /// The window was already claimed by another device.
    Claimed,
    /// The window holds no usable virtio-mmio device.
    Mmio(MmioError),
}

impl core::fmt::Display for WindowError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WindowError::Outside => f.write_str("not a virtio-mmio window of the memory map"),
            WindowError::Claimed => f.write_str("window already in use"),
            WindowError::Mmio(e) => write!(f, "{e}"),
        }
    }
}

/// Windows already handed to a transport, one bit per slot.
static CLAIMED: AtomicU32 = AtomicU32::new(0);
const _: () = assert!(MMIO_SLOTS <= 32);

/// The virtio-mmio transport of the window at `base` (`size` bytes). Each window can be claimed
/// once, so no two transports ever drive the same registers.
pub fn transport(base: u64, size: u64) -> Result<Mmio<Window>, WindowError> {
    let offset = base.checked_sub(MMIO_BASE).ok_or(WindowError::Outside)?;
    let slot = offset / MMIO_SIZE;
    if offset % MMIO_SIZE != 0 || slot >= MMIO_SLOTS || size > MMIO_SIZE {
        return Err(WindowError::Outside);
    }
    let bit = 1 << slot;
    if CLAIMED.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
        return Err(WindowError::Claimed);
    }
    if size < CONFIG_OFFSET as u64 {
        return Err(WindowError::Mmio(MmioError::MmioRegionTooSmall));
    }
    let base = NonNull::new(base as *mut u8).ok_or(WindowError::Outside)?;
    Mmio::new(Window { base, size: size as usize }).map_err(WindowError::Mmio)
}

/// The registers of a claimed virtio-mmio window, accessed with volatile loads and stores of the
/// width asked for: each access is one access of the device (one VM exit).
///
/// Its fields are only set by [`transport`]: `[base, base + size)` lies in one virtio-mmio window
/// of the memory map, which the launcher maps (uncached, user-accessible) for the life of the
/// guest and which is no RAM, so nothing else aliases it; the window was claimed, so this is its
/// only user. `base` is 4 KiB-aligned and `size` at least [`CONFIG_OFFSET`].
#[derive(Debug)]
pub struct Window {
    base: NonNull<u8>,
    size: usize,
}

impl Window {
    /// The address of `len` bytes at `offset`, checked to lie in the window, aligned to `len`.
    fn at(&self, offset: usize, len: usize) -> *mut u8 {
        let fits = offset.checked_add(len).is_some_and(|end| end <= self.size);
        assert!(fits && offset.is_multiple_of(len), "virtio-mmio: {len}-byte access at {offset:#x}");
        // SAFETY: in the window (checked just above), which is one mapping.
        unsafe { self.base.as_ptr().add(offset) }
    }
}

impl Registers for Window {
    fn read(&self, offset: usize) -> u32 {
        assert!(offset < CONFIG_OFFSET);
        // SAFETY: an aligned register of the window (see the type's docs), read as a whole.
        unsafe { self.at(offset, 4).cast::<u32>().read_volatile() }
    }

    fn write(&mut self, offset: usize, value: u32) {
        assert!(offset < CONFIG_OFFSET);
        // SAFETY: as in `read`; the window is this value's alone (claimed).
        unsafe { self.at(offset, 4).cast::<u32>().write_volatile(value) }
    }

    fn read_config(&self, offset: usize, out: &mut [u8]) {
        let at = self.at(CONFIG_OFFSET + offset, out.len());
        // SAFETY: aligned and in the window (`at` checks), one access of the width asked for.
        unsafe {
            match out.len() {
                1 => out[0] = at.read_volatile(),
                2 => out.copy_from_slice(&at.cast::<u16>().read_volatile().to_ne_bytes()),
                4 => out.copy_from_slice(&at.cast::<u32>().read_volatile().to_ne_bytes()),
                8 => out.copy_from_slice(&at.cast::<u64>().read_volatile().to_ne_bytes()),
                n => panic!("virtio-mmio: {n}-byte configuration read"),
            }
        }
    }

    fn write_config(&mut self, offset: usize, data: &[u8]) {
        let at = self.at(CONFIG_OFFSET + offset, data.len());
        // SAFETY: as in `read_config`.
        unsafe {
            match *data {
                [b] => at.write_volatile(b),
                [a, b] => at.cast::<u16>().write_volatile(u16::from_ne_bytes([a, b])),
                [a, b, c, d] => at.cast::<u32>().write_volatile(u32::from_ne_bytes([a, b, c, d])),
                [a, b, c, d, e, f, g, h] => {
                    at.cast::<u64>().write_volatile(u64::from_ne_bytes([a, b, c, d, e, f, g, h]))
                }
                _ => panic!("virtio-mmio: {}-byte configuration write", data.len()),
            }
        }
    }

    fn config_len(&self) -> usize {
        self.size - CONFIG_OFFSET
    }
}

/// A heap buffer lent to a device: leaked out of its `Box` until the device gives it back.
struct Lent(NonNull<[u8]>);

impl Lent {
    fn new(buf: Box<[u8]>) -> Self {
        Lent(NonNull::from(Box::leak(buf)))
    }

    /// Rebuilds the `Box`.
    ///
    /// # Safety
    /// The device must be done with the buffer: it came back through the used ring, or it was
    /// never added to a queue.
    unsafe fn reclaim(self) -> Box<[u8]> {
        // SAFETY: the pointer came from `Box::leak` in `new` and is reclaimed once (by value);
        // the caller guarantees the device no longer uses it.
        unsafe { Box::from_raw(self.0.as_ptr()) }
    }
}

/// A static buffer lent to a device: held as a pointer, with no reference, until given back.
struct LentStatic(NonNull<[u8]>);

impl LentStatic {
    fn new(buf: &'static mut [u8]) -> Self {
        LentStatic(NonNull::from(buf))
    }

    /// The buffer again.
    ///
    /// # Safety
    /// As for [`Lent::reclaim`].
    unsafe fn reclaim(self) -> &'static mut [u8] {
        // SAFETY: the pointer came from a `&'static mut` in `new`, consumed there, and is turned
        // back into one once (by value); the caller guarantees the device no longer uses it.
        unsafe { &mut *self.0.as_ptr() }
    }
}

/// Largest Ethernet frame without its FCS: 9000 bytes of payload (the IP MTU the launcher
/// sets on the host side of this private point-to-point link) and a 14-byte header. Jumbo
/// frames cut the per-packet cost (a queue notification and a tap read or write) six-fold.
pub const MTU: usize = 9014;

/// Bytes of one network buffer: the 12-byte `virtio_net_hdr_v1` and a full frame, rounded.
pub const NET_BUF: usize = (12 + MTU).next_multiple_of(512);
/// Size of both network queues (the launcher's queues have 256 entries).
pub const NET_QUEUE: usize = 256;

/// The network device's queues, with the buffers lent to them. Buffers are static (never
/// freed, see `crate::heap::static_buffer`) and reused.
pub struct NetRings {
    raw: VirtIONetRaw<VirtioHal, Mmio<Window>, NET_QUEUE>,
    /// Receive buffers, by token.
    rx: Vec<Option<LentStatic>>,
    /// Frames being sent and their lengths, by token.
    tx: Vec<Option<(LentStatic, usize)>>,
    /// Transmit buffers back from the device, for reuse.
    tx_free: Vec<&'static mut [u8]>,
}

impl NetRings {
    /// Initialises the device (features, MAC, queues), with no receive buffer yet.
    pub fn new(transport: Mmio<Window>) -> Result<Self, Error> {
        let raw = VirtIONetRaw::new(transport)?;
        Ok(NetRings {
            raw,
            rx: (0..NET_QUEUE).map(|_| None).collect(),
            tx: (0..NET_QUEUE).map(|_| None).collect(),
            tx_free: Vec::new(),
        })
    }

    /// The MAC address, read once at initialisation.
    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    /// Lends `buf` (at least [`NET_BUF`] bytes) to the receive queue; gives it back if full.
    pub fn post_rx(&mut self, buf: &'static mut [u8]) -> Result<(), &'static mut [u8]> {
        let lent = LentStatic::new(buf);
        // SAFETY: `lent` holds the only pointer to the buffer; the slice only carries its address
        // and length into the descriptor. `lent` is kept in `self.rx` under the returned token
        // until `recv` pops that token, so the buffer is not used otherwise meanwhile.
        let token = unsafe { self.raw.receive_begin(&mut *lent.0.as_ptr()) };
        match token {
            Ok(token) => {
                let slot = &mut self.rx[usize::from(token)];
                assert!(slot.is_none(), "virtio-net: receive token {token} reused");
                *slot = Some(lent);
                Ok(())
            }
            // SAFETY: the buffer was not added to the queue.
            Err(_) => Err(unsafe { lent.reclaim() }),
        }
    }

    /// Whether a received frame waits in the used ring (a read of guest memory, no exit).
    pub fn rx_ready(&self) -> bool {
        self.raw.poll_receive().is_some()
    }

    /// The next received frame: its buffer and where the frame lies in it.
    pub fn recv(&mut self) -> Option<(&'static mut [u8], Range<usize>)> {
        let token = self.raw.poll_receive()?;
        let lent = self.rx.get_mut(usize::from(token)).and_then(Option::take);
        let lent = lent.expect("virtio-net used a receive buffer it was not given");
        // SAFETY: `lent` is the buffer `receive_begin` returned `token` for, and the device put
        // `token` in the used ring: it is done with the buffer.
        let result = unsafe { self.raw.receive_complete(token, &mut *lent.0.as_ptr()) };
        let frame = match result {
            Ok((header, len)) => header..header + len,
            // The device used a buffer shorter than a header: popped, holds no frame.
            Err(Error::IoError) => 0..0,
            Err(e) => panic!("virtio-net: cannot pop receive token {token}: {e}"),
        };
        // SAFETY: popped from the used ring just above.
        let buf = unsafe { lent.reclaim() };
        let frame = frame.start.min(buf.len())..frame.end.min(buf.len());
        Some((buf, frame))
    }

    /// Whether a frame can be queued for sending.
    pub fn can_send(&self) -> bool {
        self.raw.can_send()
    }

    /// Takes back the buffers of frames the device has sent.
    pub fn reap_tx(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let sent = self.tx.get_mut(usize::from(token)).and_then(Option::take);
            let (lent, len) = sent.expect("virtio-net used a transmit buffer it was not given");
            // SAFETY: `lent` (first `len` bytes) is the frame `transmit_begin` returned `token`
            // for, and the device put `token` in the used ring: it is done with it.
            let result = unsafe { self.raw.transmit_complete(token, &(&*lent.0.as_ptr())[..len]) };
            if let Err(e) = result {
                panic!("virtio-net: cannot pop transmit token {token}: {e}");
            }
            // SAFETY: popped from the used ring just above.
            self.tx_free.push(unsafe { lent.reclaim() });
        }
    }

    /// Builds a `len`-byte frame with `f` and queues it. If the queue is full (callers check
    /// [`NetRings::can_send`] first) or the frame is too long, the frame is dropped.
    pub fn send<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let buf = self.tx_free.pop().unwrap_or_else(|| crate::heap::static_buffer(NET_BUF));
        let header = self.raw.fill_buffer_header(buf).expect("a network buffer holds a header");
        let total = header + len;
        if total > buf.len() {
            let mut scratch = vec![0; len];
            self.tx_free.push(buf);
            return f(&mut scratch);
        }
        let result = f(&mut buf[header..total]);
        let lent = LentStatic::new(buf);
        // SAFETY: as in `post_rx`: `lent` holds the only pointer to the buffer and stays in
        // `self.tx` under the returned token until `reap_tx` pops it.
        let token = unsafe { self.raw.transmit_begin(&(&*lent.0.as_ptr())[..total]) };
        match token {
            Ok(token) => self.tx[usize::from(token)] = Some((lent, total)),
            // SAFETY: the buffer was not added to the queue.
            Err(_) => self.tx_free.push(unsafe { lent.reclaim() }),
        }
        result
    }
}

/// A request handed to an [`OwnedQueue`]: buffers the device reads, then buffers it writes.
pub struct Chain {
    /// Buffers the device reads.
    pub readable: Vec<Box<[u8]>>,
    /// Buffers the device writes.
    pub writable: Vec<Box<[u8]>>,
}

/// A completed request.
pub struct Done {
    /// The token [`OwnedQueue::submit`] returned for it.
    pub token: u16,
    /// Its buffers, given back.
    pub chain: Chain,
}

struct LentChain {
    readable: Vec<Lent>,
    writable: Vec<Lent>,
}

/// A virtqueue that owns the buffers of its requests while the device works on them.
pub struct OwnedQueue<const N: usize> {
    queue: VirtQueue<VirtioHal, N>,
    index: u16,
    lent: Vec<Option<LentChain>>,
}

impl<const N: usize> OwnedQueue<N> {
    /// Sets up queue `index` of the device behind `transport` (no indirect descriptors, no
    /// event index).
    pub fn new(transport: &mut impl Transport, index: u16) -> Result<Self, Error> {
        let queue = VirtQueue::new(transport, index, false, false)?;
        Ok(OwnedQueue { queue, index, lent: (0..N).map(|_| None).collect() })
    }

    /// Hands a request (no empty buffer in it) to the device and notifies it; returns its token.
    pub fn submit(&mut self, transport: &mut impl Transport, chain: Chain) -> Result<u16, Error> {
        if chain.readable.iter().chain(&chain.writable).any(|b| b.is_empty()) {
            return Err(Error::InvalidParam);
        }
        let lent = LentChain {
            readable: chain.readable.into_iter().map(Lent::new).collect(),
            writable: chain.writable.into_iter().map(Lent::new).collect(),
        };
        // SAFETY: the buffers are leaked into `lent`, so nothing else refers to them; the slices
        // only carry addresses and lengths into the descriptors. `lent` is kept in `self.lent`
        // under the returned token until `complete` pops it, so the buffers outlive the device's
        // use.
        let token = unsafe {
            let readable: Vec<&[u8]> = lent.readable.iter().map(|l| &*l.0.as_ptr()).collect();
            let mut writable: Vec<&mut [u8]> = lent.writable.iter().map(|l| &mut *l.0.as_ptr()).collect();
            self.queue.add(&readable, &mut writable)
        };
        match token {
            Ok(token) => {
                let slot = &mut self.lent[usize::from(token)];
                assert!(slot.is_none(), "virtqueue token {token} reused");
                *slot = Some(lent);
                if self.queue.should_notify() {
                    transport.notify(self.index);
                }
                Ok(token)
            }
            Err(e) => {
                for l in lent.readable.into_iter().chain(lent.writable) {
                    // SAFETY: the buffers were not added to the queue.
                    drop(unsafe { l.reclaim() });
                }
                Err(e)
            }
        }
    }

    /// The next request the device completed, with its buffers (a read of guest memory, no exit).
    pub fn complete(&mut self) -> Option<Done> {
        let token = self.queue.peek_used()?;
        let lent = self.lent.get_mut(usize::from(token)).and_then(Option::take);
        let lent = lent.expect("virtqueue used a request it was not given");
        // SAFETY: these are the buffers `add` returned `token` for, and the device put `token` in
        // the used ring: it is done with them.
        let popped = unsafe {
            let readable: Vec<&[u8]> = lent.readable.iter().map(|l| &*l.0.as_ptr()).collect();
            let mut writable: Vec<&mut [u8]> = lent.writable.iter().map(|l| &mut *l.0.as_ptr()).collect();
            self.queue.pop_used(token, &readable, &mut writable)
        };
        if let Err(e) = popped {
            panic!("virtqueue: cannot pop token {token}: {e}");
        }
        // SAFETY: popped from the used ring just above.
        let reclaim = |l: Lent| unsafe { l.reclaim() };
        let chain = Chain {
            readable: lent.readable.into_iter().map(reclaim).collect(),
            writable: lent.writable.into_iter().map(reclaim).collect(),
        };
        Some(Done { token, chain })
    }
}
