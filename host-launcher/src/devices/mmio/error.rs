//! What can go wrong in a virtio-mmio window.

use crate::devices::{DeviceError, TYPE_BLOCK, TYPE_NET};
use std::fmt;

/// Where a driver mistake happened: the device kind and its window's base address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowAt {
    /// Virtio device id.
    pub device_type: u32,
    /// Guest-physical base of the window.
    pub base: u64,
}

impl fmt::Display for WindowAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.device_type {
            TYPE_NET => "virtio-net",
            TYPE_BLOCK => "virtio-blk",
            _ => "virtio",
        };
        write!(f, "{kind} at {:#x}", self.base)
    }
}

/// What the driver got wrong, or why the device could not start.
#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    /// FEATURES_OK with features the device does not offer.
    #[error("{at}: driver accepted features {acked:#x}, expected a subset of the offered {offered:#x}")]
    FeaturesNotOffered { at: WindowAt, acked: u64, offered: u64 },
    /// FEATURES_OK without VIRTIO_F_VERSION_1.
    #[error("{at}: driver did not accept VIRTIO_F_VERSION_1 (features {acked:#x}); only modern drivers work")]
    NoVersion1 { at: WindowAt, acked: u64 },
    /// A status bit set out of order.
    #[error("{at}: status {status:#x} written over {current:#x}; expected {expected} first")]
    StatusOrder { at: WindowAt, status: u32, current: u32, expected: &'static str },
    /// A queue setting the device cannot take.
    #[error("{at}: queue {queue}: {what} {value:#x} refused; expected {expected}")]
    QueueSetting { at: WindowAt, queue: u32, what: &'static str, value: u64, expected: &'static str },
    /// WindowAt DRIVER_OK a queue is not ready or its rings are not inside guest memory.
    #[error(
        "{at}: queue {queue} (size {size}, desc {desc:#x}, driver {driver:#x}, device {device:#x}) \
             is not ready or not inside guest memory at DRIVER_OK"
    )]
    QueueInvalid { at: WindowAt, queue: usize, size: u16, desc: u64, driver: u64, device: u64 },
    /// The device could not start.
    #[error("{at}: activation failed: {source}")]
    Activate { at: WindowAt, source: DeviceError },
    /// The device could not stop on reset.
    #[error("{at}: the device cannot be reset")]
    Reset { at: WindowAt },
    /// Registering a queue event with KVM failed.
    #[error("{at}: cannot register queue {queue}'s event at {addr:#x}: {source}")]
    IoEvent { at: WindowAt, queue: usize, addr: u64, source: kvm_ioctls::Error },
}
