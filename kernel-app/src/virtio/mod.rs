//! The virtio-mmio devices the launcher announces in the boot information, driven by polling:
//! the guest takes no interrupts, checks the used rings in memory (no VM exit) and, when it has
//! nothing to do, blocks in `hypercall::wait` until the launcher reports a device event.
//! Device registers are read at initialisation only; the one register written afterwards is
//! QueueNotify, which the launcher serves cheaply (ioeventfd).
//!
//! - [`transport`]: the virtio-mmio transport, which skips the register accesses whose outcome
//!   it already knows: a boot sets both devices up in 49 accesses (VM exits) instead of 77;
//! - [`hal`]: the `virtio_drivers::Hal` and every use of raw memory (the only `unsafe` here);
//! - [`net`]: the network device as a `smoltcp` device (`VirtIONetRaw`, non-blocking);
//! - [`blk`]: the block device as a [`spacecore_store::BlockIo`].

pub mod blk;
pub mod hal;
pub mod net;
pub mod transport;

use virtio_drivers::transport::DeviceType;

/// Why a device could not be started.
#[derive(Debug)]
pub enum InitError {
    /// The MMIO window is unusable.
    Window(hal::WindowError),
    /// The window holds another kind of device than announced.
    WrongType(DeviceType),
    /// The driver failed to set the device up.
    Driver(virtio_drivers::Error),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Window(e) => write!(f, "{e}"),
            InitError::WrongType(t) => write!(f, "the window holds a {t:?} device"),
            InitError::Driver(e) => write!(f, "{e}"),
        }
    }
}

impl From<virtio_drivers::Error> for InitError {
    fn from(e: virtio_drivers::Error) -> Self {
        InitError::Driver(e)
    }
}

/// The transport of the window at `base`, checked to hold a device of type `expected`.
fn open(base: u64, size: u64, expected: DeviceType) -> Result<transport::Mmio<hal::Window>, InitError> {
    use virtio_drivers::transport::Transport;
    let transport = hal::transport(base, size).map_err(InitError::Window)?;
    match transport.device_type() {
        t if t == expected => Ok(transport),
        t => Err(InitError::WrongType(t)),
    }
}
