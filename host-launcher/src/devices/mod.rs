//! Virtio devices the guest drives over virtio-mmio (version 2, "modern" only).
//!
//! * [`MmioTransport`] is the register window of one device; the vCPU thread calls
//!   [`MmioTransport::read`] / [`MmioTransport::write`] on MMIO exits.
//! * [`BlockDevice`] is virtio-blk over a raw, sparse file; [`NetDevice`] is virtio-net over a
//!   [`Tap`] (or any [`FrameIo`]), with [`NetLimits`] enforced by [`TokenBucket`]s.
//!
//! Every device serves its queues on a worker thread of its own, started when the driver sets
//! `DRIVER_OK`. Queue notifications reach the worker through one [`EventFd`] per queue
//! ([`VirtioDevice::queue_events`]), which the launcher registers with KVM as an `ioeventfd` on
//! the `QueueNotify` register so that a guest kick costs no VM exit to user space.
//!
//! Devices raise no interrupts: the guest polls its used rings and, when idle, blocks in the
//! `Wait` hypercall. After a batch of buffers lands on a used ring the worker calls the
//! [`Notifier`], which the launcher wires to the hypercall's DEVICE event.
//!
//! Guest memory, rings and descriptors are untrusted: every address and length is checked, and a
//! malformed request gets an error status (or is returned with a used length of 0). Nothing the
//! guest writes can make the launcher panic.

mod block;
mod chain;
mod mmio;
mod net;
mod rate;
mod tap;
#[cfg(test)]
mod test_utils;
mod worker;

pub use block::{BlockConfig, BlockDevice, BlockError, DiskLimits};
pub use mmio::{
    CONFIG_OFFSET, MmioError, MmioTransport, QUEUE_NOTIFY_OFFSET, QueueSettings, TransportState, VENDOR_ID,
    WINDOW_SIZE, WindowAt,
};
pub use net::{FrameIo, NetDevice, NetLimits};
pub use rate::TokenBucket;
pub use tap::{Tap, TapError};

use crate::vmm::memory::Memory;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

/// Wakes the guest; a device calls it after adding a batch of buffers to a used ring.
pub type Notifier = Arc<dyn Fn() + Send + Sync>;

/// Virtio device id of a network card.
pub const TYPE_NET: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_NET;
/// Virtio device id of a block device.
pub const TYPE_BLOCK: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;

/// `VIRTIO_F_VERSION_1`: every device offers it and every driver must accept it.
pub(crate) const FEATURE_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// What a device is started with when the driver sets `DRIVER_OK`.
pub struct Activation {
    /// Guest memory, which the queues' rings were checked against.
    pub mem: Arc<Memory>,
    /// The queues, in queue order: configured, ready and valid.
    pub queues: Vec<Queue>,
    /// The features the driver accepted (among those offered).
    pub acked_features: u64,
    /// Called after a batch of buffers lands on a used ring.
    pub notifier: Notifier,
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation")
            .field("queues", &self.queues)
            .field("acked_features", &self.acked_features)
            .finish_non_exhaustive()
    }
}

/// The device half of a virtio device; [`MmioTransport`] drives it.
pub trait VirtioDevice: Send {
    /// Virtio device id: [`TYPE_NET`] or [`TYPE_BLOCK`].
    fn device_type(&self) -> u32;
    /// Feature bits offered; always include `VIRTIO_F_VERSION_1`.
    fn features(&self) -> u64;
    /// Maximum size of each queue, in queue order.
    fn queue_max_sizes(&self) -> &[u16];
    /// The device configuration space, as the driver reads it.
    fn config(&self) -> &[u8];
    /// Reads device configuration space at `offset`; bytes past its end read as zeros.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(self.config(), offset, data);
    }
    /// Writes device configuration space; read-only fields ignore the write. Every field is
    /// read-only unless the device says otherwise.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Called when the driver sets `DRIVER_OK`: starts serving the activation's queues on a
    /// worker thread of the device's own. `queue_events()[i]` is signalled when the guest
    /// notifies queue `i`.
    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError>;
    /// One event per queue, created with the device; the launcher registers each with KVM as an
    /// `ioeventfd` on the `QueueNotify` register with datamatch = queue index.
    fn queue_events(&self) -> &[EventFd];
    /// Stops the worker and makes the device ready for another activation; false if the device
    /// cannot be reset.
    fn reset(&mut self) -> bool;
    /// The device's counters; shared with its worker, readable at any time.
    fn counters(&self) -> Arc<Counters>;
}

/// Why a device could not be created or started.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Opening a block device's file failed.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Opening or configuring a tap failed.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// An eventfd, epoll instance or timer could not be created or registered.
    #[error("{device}: cannot set up {what}: {source}")]
    Setup { device: String, what: &'static str, source: std::io::Error },
    /// The worker thread could not be started.
    #[error("{device}: cannot start the worker thread: {source}")]
    Thread { device: String, source: std::io::Error },
    /// `activate` was given the wrong number of queues.
    #[error("{device}: activation expects {expected} queue(s), got {got}")]
    QueueCount { device: String, expected: usize, got: usize },
    /// `activate` was called on a running device.
    #[error("{device}: already active; it must be reset before it is activated again")]
    AlreadyActive { device: String },
    /// The backend was lost (the worker thread panicked); the device cannot run again.
    #[error("{device}: its backend was lost when the worker thread died; restart the launcher")]
    BackendLost { device: String },
}

/// A device's counters: monotonic, updated by its worker with relaxed atomics.
///
/// Block devices use `requests`, `bytes_read`, `bytes_written`, `throttled` and `errors`; network devices use
/// the `rx_*` / `tx_*` fields, `dropped` and `errors`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Block: requests completed (any status).
    pub requests: AtomicU64,
    /// Block: bytes read from the disk into guest memory.
    pub bytes_read: AtomicU64,
    /// Block: bytes written from guest memory to the disk.
    pub bytes_written: AtomicU64,
    /// Block: times serving paused because the iops or bandwidth limit was reached.
    pub throttled: AtomicU64,
    /// Requests or chains refused: malformed, out of range, I/O errors.
    pub errors: AtomicU64,
    /// Net: frames delivered to the guest.
    pub rx_packets: AtomicU64,
    /// Net: bytes delivered to the guest (Ethernet frames, without the virtio-net header).
    pub rx_bytes: AtomicU64,
    /// Net: frames sent by the guest to the tap.
    pub tx_packets: AtomicU64,
    /// Net: bytes sent by the guest (Ethernet frames, without the virtio-net header).
    pub tx_bytes: AtomicU64,
    /// Net: times receiving paused because the ingress or bandwidth limit was reached.
    pub rx_throttled: AtomicU64,
    /// Net: times sending paused because the egress or bandwidth limit was reached.
    pub tx_throttled: AtomicU64,
    /// Net: frames dropped (too large, malformed, or the tap refused them).
    pub dropped: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CounterSnapshot {
    pub requests: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub throttled: u64,
    pub errors: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_throttled: u64,
    pub tx_throttled: u64,
    pub dropped: u64,
}

impl Counters {
    /// The current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            requests: get(&self.requests),
            bytes_read: get(&self.bytes_read),
            bytes_written: get(&self.bytes_written),
            throttled: get(&self.throttled),
            errors: get(&self.errors),
            rx_packets: get(&self.rx_packets),
            rx_bytes: get(&self.rx_bytes),
            tx_packets: get(&self.tx_packets),
            tx_bytes: get(&self.tx_bytes),
            rx_throttled: get(&self.rx_throttled),
            tx_throttled: get(&self.tx_throttled),
            dropped: get(&self.dropped),
        }
    }
}

/// Adds `n` to a counter.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Copies `data[offset..]` of a device's configuration space into `out`; zeros past its end.
fn read_config_bytes(config: &[u8], offset: u64, out: &mut [u8]) {
    out.fill(0);
    let Ok(start) = usize::try_from(offset) else { return };
    if let Some(src) = config.get(start..) {
        let n = src.len().min(out.len());
        out[..n].copy_from_slice(&src[..n]);
    }
}

/// Creates `n` non-blocking queue events.
pub(crate) fn new_events(device: &str, n: usize) -> Result<Vec<EventFd>, DeviceError> {
    (0..n)
        .map(|_| {
            EventFd::new(libc::EFD_NONBLOCK).map_err(|source| DeviceError::Setup {
                device: device.to_owned(),
                what: "a queue event",
                source,
            })
        })
        .collect()
}
