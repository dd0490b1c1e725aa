//! The virtio network device as a `smoltcp` device.
//!
//! Receive buffers are lent to the device's receive queue ([`RX_AT_START`] at start, the rest up
//! to the queue size a few at a time by the first rounds of the main loop, after the guest is
//! ready, so that start-up does not pay for their notifications); a
//! received frame is handed to `smoltcp` in its own buffer, which goes back to the queue at the
//! next poll. Frames to send are built in reusable buffers and queued without waiting: the buffers
//! come back once the device reports them used. Nothing here ever waits for the device. Buffers
//! are static and never written before use (`crate::heap::static_buffer`): they cost host memory
//! only once traffic has used them.

use super::hal::{NET_BUF, NET_QUEUE, NetRings};
use super::{InitError, open};
use alloc::vec::Vec;
use core::ops::Range;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use virtio_drivers::transport::DeviceType;

pub use super::hal::MTU;

/// Receive buffers lent to the device at start.
pub const RX_AT_START: usize = 32;
/// Receive buffers added per [`NetDevice::maintain`] until the queue is full.
const RX_GROWTH: usize = 16;

/// A virtio network device.
pub struct NetDevice {
    rings: NetRings,
    /// Receive buffers back from `smoltcp`, to lend to the device again.
    spare: Vec<&'static mut [u8]>,
    /// Receive buffers made so far.
    rx_buffers: usize,
}

impl NetDevice {
    /// Starts the device in the window at `base` and fills its receive queue.
    pub fn new(base: u64, size: u64) -> Result<Self, InitError> {
        let rings = NetRings::new(open(base, size, DeviceType::Network)?)?;
        let mut dev = NetDevice { rings, spare: Vec::new(), rx_buffers: 0 };
        dev.grow_rx(RX_AT_START);
        Ok(dev)
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.rings.mac()
    }

    /// Whether there is work now: a received frame waits and can be answered, or the receive
    /// queue is still being filled.
    pub fn has_work(&self) -> bool {
        (self.rings.rx_ready() && self.rings.can_send()) || self.rx_buffers < NET_QUEUE
    }

    /// Gives spare receive buffers back to the device (with a few new ones until the queue is
    /// full) and takes back sent frames.
    pub fn maintain(&mut self) {
        while let Some(buf) = self.spare.pop() {
            if let Err(buf) = self.rings.post_rx(buf) {
                self.spare.push(buf);
                break;
            }
        }
        self.grow_rx(RX_GROWTH);
        self.rings.reap_tx();
    }

    fn grow_rx(&mut self, count: usize) {
        for _ in 0..count.min(NET_QUEUE - self.rx_buffers) {
            self.rx_buffers += 1;
            if let Err(buf) = self.rings.post_rx(crate::heap::static_buffer(NET_BUF)) {
                self.spare.push(buf);
                break;
            }
        }
    }
}

/// A received frame; its buffer returns to the spares when the token is dropped.
pub struct Rx<'a> {
    buf: Option<&'static mut [u8]>,
    frame: Range<usize>,
    spare: &'a mut Vec<&'static mut [u8]>,
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.buf.as_ref().map_or(&[][..], |b| &b[self.frame.clone()]))
    }
}

impl Drop for Rx<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.spare.push(buf);
        }
    }
}

/// Room for one frame in the transmit queue.
pub struct Tx<'a> {
    rings: &'a mut NetRings,
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.rings.send(len, f)
    }
}

impl phy::Device for NetDevice {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        self.maintain();
        // A frame is only taken when an answer to it could be sent; otherwise it waits in the
        // ring until the device has sent something.
        if !self.rings.can_send() {
            return None;
        }
        let (buf, frame) = self.rings.recv()?;
        Some((Rx { buf: Some(buf), frame, spare: &mut self.spare }, Tx { rings: &mut self.rings }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Tx<'_>> {
        self.rings.reap_tx();
        self.rings.can_send().then_some(Tx { rings: &mut self.rings })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}
