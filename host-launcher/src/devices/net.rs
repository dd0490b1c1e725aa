//! virtio-net over a tap: queue 0 receives, queue 1 transmits, both of 256 entries, served by
//! one worker thread; no offloads.
//!
//! Both sides use the 12-byte `virtio_net_hdr_v1` and the tap is opened with a 12-byte vnet
//! header, so a frame crosses with its header in front. Since no offload is negotiated the
//! header carries nothing either side may act on: it is **rewritten** on the way, all zero on TX
//! (what reaches the tap) and all zero but `num_buffers = 1` on RX (what reaches the guest).
//!
//! Limits ([`NetLimits`], bits per second) are token buckets: egress and the shared bandwidth
//! bucket gate TX (the worker stops taking chains and arms a timer), ingress and the bandwidth
//! bucket gate RX (frames stay in the tap's queue, where the kernel drops them when it is full,
//! which is what a rate limit does).

mod engine;
mod event_loop;
#[cfg(test)]
mod tests;

use super::rate::TokenBucket;
use super::tap::Tap;
use super::worker::{self, Poller, Worker};
use super::{Activation, Counters, DeviceError, FEATURE_VERSION_1, TYPE_NET, VirtioDevice, new_events};
use engine::Engine;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use virtio_bindings::virtio_net::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP};
use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

/// Size of both queues.
const QUEUE_SIZE: u16 = 256;
/// Configuration space served: mac (6 bytes), status (u16).
const CONFIG_LEN: usize = 8;

/// Frame I/O of a network backend: one call moves one frame, the 12-byte virtio-net header
/// followed by the Ethernet frame.
pub trait FrameIo: Send + AsRawFd + std::fmt::Debug {
    /// Reads one frame into `buf`; `WouldBlock` when none is queued. The fd given by
    /// `as_raw_fd` must become readable when a frame is queued.
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// Writes one whole frame.
    fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<usize>;
}

impl FrameIo for Tap {
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Tap::read_frame(self, buf)
    }

    fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<usize> {
        Tap::write_frame(self, frame)
    }
}

/// Rate limits in bits per second; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetLimits {
    /// Traffic towards the guest.
    pub ingress_bps: u64,
    /// Traffic from the guest.
    pub egress_bps: u64,
    /// Both directions together.
    pub bandwidth_bps: u64,
}

/// The three buckets of a [`NetLimits`].
#[derive(Debug, Clone)]
pub(crate) struct Buckets {
    pub ingress: TokenBucket,
    pub egress: TokenBucket,
    pub bandwidth: TokenBucket,
}

impl NetLimits {
    pub(crate) fn buckets(&self) -> Buckets {
        Buckets {
            ingress: TokenBucket::from_bits_per_s(self.ingress_bps),
            egress: TokenBucket::from_bits_per_s(self.egress_bps),
            bandwidth: TokenBucket::from_bits_per_s(self.bandwidth_bps),
        }
    }
}

/// A virtio-net device.
#[derive(Debug)]
pub struct NetDevice {
    label: String,
    /// `None` while the worker owns it.
    backend: Option<Box<dyn FrameIo>>,
    limits: NetLimits,
    config: [u8; CONFIG_LEN],
    events: Vec<EventFd>,
    counters: Arc<Counters>,
    worker: Option<Worker<Engine>>,
}

impl NetDevice {
    /// A network card with address `mac` over `tap`.
    pub fn new(tap: Tap, mac: [u8; 6], limits: NetLimits) -> Result<NetDevice, DeviceError> {
        let name = tap.name().to_owned();
        Self::with_backend(Box::new(tap), &name, mac, limits)
    }

    /// A network card over any frame backend; `name` labels it in errors.
    pub fn with_backend(
        backend: Box<dyn FrameIo>,
        name: &str,
        mac: [u8; 6],
        limits: NetLimits,
    ) -> Result<NetDevice, DeviceError> {
        let label = format!("virtio-net {name}");
        let mut config = [0u8; CONFIG_LEN];
        config[..6].copy_from_slice(&mac);
        config[6..8].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        Ok(NetDevice {
            events: new_events(&label, 2)?,
            label,
            backend: Some(backend),
            limits,
            config,
            counters: Arc::default(),
            worker: None,
        })
    }

    fn setup_err(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> DeviceError + '_ {
        move |source| DeviceError::Setup { device: self.label.clone(), what, source }
    }
}

impl VirtioDevice for NetDevice {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn features(&self) -> u64 {
        FEATURE_VERSION_1 | 1 << VIRTIO_NET_F_MAC | 1 << VIRTIO_NET_F_STATUS
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    /// The MAC is read-only without VIRTIO_NET_F_CTRL_MAC_ADDR; status is read-only.
    fn config(&self) -> &[u8] {
        &self.config
    }

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        let Activation { mem, queues, notifier, .. } = activation;
        let device = self.label.clone();
        if self.worker.is_some() {
            return Err(DeviceError::AlreadyActive { device });
        }
        let got = queues.len();
        let Ok([rx, tx]) = <[Queue; 2]>::try_from(queues) else {
            return Err(DeviceError::QueueCount { device, expected: 2, got });
        };
        let backend_fd: RawFd = match &self.backend {
            Some(backend) => backend.as_raw_fd(),
            None => return Err(DeviceError::BackendLost { device }),
        };
        let rx_event = self.events[0].try_clone().map_err(self.setup_err("a queue event"))?;
        let tx_event = self.events[1].try_clone().map_err(self.setup_err("a queue event"))?;
        let timer = worker::rate_timer(&device)?;
        let poller = Poller::new(&device)?;
        poller.add(&device, backend_fd, event_loop::TAP)?;
        poller.add(&device, rx_event.as_raw_fd(), event_loop::RX_QUEUE)?;
        poller.add(&device, tx_event.as_raw_fd(), event_loop::TX_QUEUE)?;
        poller.add(&device, timer.as_raw_fd(), event_loop::TIMER)?;
        let Some(backend) = self.backend.take() else {
            return Err(DeviceError::BackendLost { device });
        };
        let engine = Engine::new(mem, rx, tx, backend, self.limits.buckets(), self.counters.clone());
        let events = event_loop::Events { rx: rx_event, tx: tx_event, timer };
        let body = move |poller: Poller, engine: Engine| event_loop::run(engine, &poller, events, &notifier);
        match Worker::spawn(&device, "virtio-net", poller, engine, body) {
            Ok(worker) => {
                self.worker = Some(worker);
                Ok(())
            }
            Err((error, engine)) => {
                self.backend = engine.map(Engine::into_backend);
                Err(error)
            }
        }
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.events
    }

    fn reset(&mut self) -> bool {
        if let Some(worker) = self.worker.take() {
            self.backend = worker.stop().map(Engine::into_backend);
        }
        true
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}
