//! The virtio-mmio register window (version 2, "modern" only) of one device.
//!
//! Registers are 32-bit: other access sizes are ignored and read as zero, except in the device
//! configuration space at [`CONFIG_OFFSET`], where any size is passed to the device.
//!
//! `InterruptStatus` reports bit 0 (used buffer) once the device has put something on a used
//! ring since the driver last acknowledged it (`InterruptACK`); no interrupt is ever injected,
//! the guest polls. `ConfigGeneration` is always 0: the configuration never changes at run time.
//!
//! Driver mistakes never stop the launcher: a refused `FEATURES_OK` leaves that bit clear, a
//! refused `DRIVER_OK` sets `DEVICE_NEEDS_RESET`, and the reason is kept for
//! [`MmioTransport::take_error`].

mod error;

pub use error::{MmioError, WindowAt};

use super::{Activation, Counters, FEATURE_VERSION_1, Notifier, VirtioDevice};
use crate::vmm::memory::Memory;
use kvm_ioctls::{IoEventAddress, VmFd};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_VRING;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::EventFd;

/// Size of one device's register window.
pub const WINDOW_SIZE: u64 = 0x1000;
/// Offset of `QueueNotify` in the window: register each queue event there as an ioeventfd.
pub const QUEUE_NOTIFY_OFFSET: u64 = 0x50;
/// Offset of the device configuration space in the window.
pub const CONFIG_OFFSET: u64 = 0x100;
/// `VendorID` reported by every device ("SPCR").
pub const VENDOR_ID: u32 = 0x5350_4352;

const MAGIC: u32 = 0x7472_6976;
const VERSION: u32 = 2;

/// What a snapshot keeps of one window (see `crate::vmm::snapshot`): the device it served, as
/// the driver saw it, and the driver's settings, which a device started from the snapshot takes
/// as if the driver had written them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportState {
    /// Virtio device id.
    pub device_type: u32,
    /// Feature bits the device offered.
    pub offered_features: u64,
    /// The device configuration space the driver read (capacity, MAC address, ...).
    pub config: Vec<u8>,
    /// Device status: 0 (the driver left the device alone) or every bit up to `DRIVER_OK`.
    pub status: u32,
    /// Features the driver accepted.
    pub driver_features: u64,
    /// The selectors as the driver left them (its transport writes one only to change it).
    pub queue_sel: u32,
    /// `DeviceFeaturesSel`.
    pub device_features_sel: u32,
    /// `DriverFeaturesSel`.
    pub driver_features_sel: u32,
    /// Each queue, in queue order (none when the status is 0).
    pub queues: Vec<QueueSettings>,
}

/// One queue of a [`TransportState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueSettings {
    /// Entries.
    pub size: u16,
    /// Descriptor table, driver area and device area (guest-physical).
    pub desc: u64,
    /// Driver (available) ring.
    pub avail: u64,
    /// Device (used) ring.
    pub used: u64,
    /// The used ring's index when the device stopped: the device resumes there, with every
    /// buffer the driver made available after it still to be taken.
    pub used_index: u16,
}

/// The device status of a window a snapshot may hold, besides 0.
const RUNNING: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE
    | VIRTIO_CONFIG_S_DRIVER
    | VIRTIO_CONFIG_S_FEATURES_OK
    | VIRTIO_CONFIG_S_DRIVER_OK;

/// One device's virtio-mmio window.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    at: WindowAt,
    mem: Arc<Memory>,
    notifier: Notifier,
    interrupt_status: Arc<AtomicU32>,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    active: bool,
    /// A queue setting was refused since the last reset: DRIVER_OK will be too.
    queue_fault: bool,
    error: Option<MmioError>,
}

impl fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmioTransport").field("at", &self.at).field("status", &self.status).finish()
    }
}

impl MmioTransport {
    /// The window at guest-physical `base` of `device`, which will serve guest memory `mem` and
    /// wake the guest through `notifier`.
    pub fn new(device: Box<dyn VirtioDevice>, mem: Arc<Memory>, notifier: Notifier, base: u64) -> Self {
        let at = WindowAt { device_type: device.device_type(), base };
        // Max sizes the queue cannot take (not a power of two) become 0 entries, never used.
        let queues = device.queue_max_sizes().iter().map(|&max| new_queue(max)).collect();
        MmioTransport {
            device,
            at,
            mem,
            notifier,
            interrupt_status: Arc::default(),
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            active: false,
            queue_fault: false,
            error: None,
        }
    }

    /// Stops the device (its worker returns the backend) and gives it back, ready to be put in
    /// a window of another VM: a restarted guest drives the same disk and tap.
    pub fn into_device(mut self) -> Box<dyn VirtioDevice> {
        self.device.reset();
        self.device
    }

    /// Stops the device, as [`MmioTransport::into_device`], and says what a snapshot keeps of
    /// the window: an error if the driver left the device half set up. Read after the worker
    /// has stopped, so the used rings in guest memory no longer move.
    pub fn into_saved(mut self) -> (Result<TransportState, String>, Box<dyn VirtioDevice>) {
        let stopped = !self.active || self.device.reset();
        let state =
            if !stopped { Err(format!("{}: the device did not stop", self.at)) } else { self.saved_state() };
        (state, self.device)
    }

    fn saved_state(&self) -> Result<TransportState, String> {
        use vm_memory::Bytes;
        let at = self.at;
        let running = match self.status {
            0 => false,
            RUNNING if self.active => true,
            status => return Err(format!("{at}: the driver left it half set up (status {status:#x})")),
        };
        let mut queues = Vec::new();
        for q in self.queues.iter().filter(|_| running) {
            let used = q.used_ring();
            let used_index: u16 = self
                .mem
                .read_obj(GuestAddress(used.wrapping_add(2)))
                .map_err(|e| format!("{at}: cannot read a used ring at {used:#x}: {e}"))?;
            queues.push(QueueSettings {
                size: q.size(),
                desc: q.desc_table(),
                avail: q.avail_ring(),
                used,
                used_index,
            });
        }
        Ok(TransportState {
            device_type: self.device.device_type(),
            offered_features: self.device.features(),
            config: self.device.config().to_vec(),
            status: self.status,
            driver_features: self.driver_features,
            queue_sel: self.queue_sel,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            queues,
        })
    }

    /// Puts a freshly made window in the state a snapshot kept ([`MmioTransport::into_saved`])
    /// and starts its device there, as `DRIVER_OK` would. The device must be the one the
    /// snapshot was taken with (type, features, configuration, queues); every setting goes
    /// through the same checks as the driver's writes.
    pub fn restore(&mut self, state: &TransportState) -> Result<(), String> {
        let at = self.at;
        if state.device_type != self.device.device_type() {
            return Err(format!("{at}: the snapshot has a device of type {} here", state.device_type));
        }
        if state.offered_features != self.device.features() {
            return Err(format!("{at}: the device offers other features than in the snapshot"));
        }
        if state.config != self.device.config() {
            return Err(format!(
                "{at}: the device's configuration (its size, its MAC address) differs from the snapshot's"
            ));
        }
        match state.status {
            0 => return Ok(()),
            RUNNING => {}
            status => return Err(format!("{at}: the snapshot holds it with status {status:#x}")),
        }
        if state.queues.len() != self.queues.len() {
            return Err(format!("{at}: the snapshot has {} queues here", state.queues.len()));
        }
        self.driver_features = state.driver_features;
        self.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        self.check_features(self.status).map_err(|e| e.to_string())?;
        for (index, (queue, saved)) in self.queues.iter_mut().zip(&state.queues).enumerate() {
            let refused = |what: &str| format!("{at}: queue {index}: the snapshot's {what} is refused");
            queue.try_set_size(saved.size).map_err(|_| refused("size"))?;
            queue
                .try_set_desc_table_address(GuestAddress(saved.desc))
                .map_err(|_| refused("descriptor table"))?;
            queue
                .try_set_avail_ring_address(GuestAddress(saved.avail))
                .map_err(|_| refused("driver area"))?;
            queue.try_set_used_ring_address(GuestAddress(saved.used)).map_err(|_| refused("device area"))?;
            queue.set_ready(true);
            queue.set_next_avail(saved.used_index);
            queue.set_next_used(saved.used_index);
        }
        self.status |= VIRTIO_CONFIG_S_FEATURES_OK;
        self.activate().map_err(|e| e.to_string())?;
        self.status = RUNNING;
        (self.queue_sel, self.device_features_sel, self.driver_features_sel) =
            (state.queue_sel, state.device_features_sel, state.driver_features_sel);
        Ok(())
    }

    /// The device's queue events, in queue order.
    pub fn queue_events(&self) -> &[EventFd] {
        self.device.queue_events()
    }

    /// The device's counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.device.counters()
    }

    /// The window's guest-physical base.
    pub fn base(&self) -> u64 {
        self.at.base
    }

    /// Whether the device is running (DRIVER_OK accepted).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The last driver mistake or device failure, if any, once.
    pub fn take_error(&mut self) -> Option<MmioError> {
        self.error.take()
    }

    /// Registers every queue event with KVM as an ioeventfd on `QueueNotify` (4-byte write,
    /// datamatch = queue index), so that guest notifications reach the worker without a VM exit
    /// to user space.
    pub fn register_ioeventfds(&self, vm: &VmFd) -> Result<(), MmioError> {
        let addr = self.at.base + QUEUE_NOTIFY_OFFSET;
        for (queue, event) in self.device.queue_events().iter().enumerate() {
            vm.register_ioevent(event, &IoEventAddress::Mmio(addr), queue as u32)
                .map_err(|source| MmioError::IoEvent { at: self.at, queue, addr, source })?;
        }
        Ok(())
    }

    /// A driver read of `data.len()` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            self.device.read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        data.fill(0);
        if data.len() != 4 {
            return;
        }
        let value = match offset {
            0x00 => MAGIC,
            0x04 => VERSION,
            0x08 => self.device.device_type(),
            0x0c => VENDOR_ID,
            0x10 => match self.device_features_sel {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            0x34 => self.queue().map_or(0, |q| u32::from(q.max_size())),
            0x44 => self.queue().map_or(0, |q| u32::from(q.ready())),
            0x60 => self.interrupt_status.load(Ordering::Acquire),
            0x70 => self.status,
            // ConfigGeneration (0xfc) included: the configuration never changes.
            _ => 0,
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// A driver write of `data` at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_OFFSET {
            self.device.write_config(offset - CONFIG_OFFSET, data);
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else { return };
        let value = u32::from_le_bytes(bytes);
        match offset {
            0x14 => self.device_features_sel = value,
            0x20 => self.write_driver_features(value),
            0x24 => self.driver_features_sel = value,
            0x30 => self.queue_sel = value,
            0x38 => self.write_queue_num(value),
            0x44 => self.with_queue(|_, q| {
                q.set_ready(value == 1);
                None
            }),
            0x50 => {
                if let Some(event) = self.device.queue_events().get(value as usize) {
                    let _ = event.write(1);
                }
            }
            0x64 => {
                self.interrupt_status.fetch_and(!value, Ordering::AcqRel);
            }
            0x70 => self.write_status(value),
            0x80 | 0x84 | 0x90 | 0x94 | 0xa0 | 0xa4 => self.write_queue_address(offset, value),
            _ => {}
        }
    }

    fn queue(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    /// Applies `f` to the selected queue, unless the device runs (queues are fixed then).
    fn with_queue(&mut self, f: impl FnOnce(WindowAt, &mut Queue) -> Option<MmioError>) {
        if self.active {
            return;
        }
        let at = self.at;
        if let Some(queue) = self.queues.get_mut(self.queue_sel as usize)
            && let Some(error) = f(at, queue)
        {
            self.queue_fault = true;
            self.error = Some(error);
        }
    }

    fn write_queue_num(&mut self, value: u32) {
        let queue = self.queue_sel;
        self.with_queue(|at, q| {
            // Sizes past u16 become 0, which is refused like any other impossible size.
            let size = u16::try_from(value).unwrap_or(0);
            q.try_set_size(size).err().map(|_| MmioError::QueueSetting {
                at,
                queue,
                what: "size",
                value: u64::from(value),
                expected: "a power of two no larger than QueueNumMax",
            })
        });
    }

    fn write_queue_address(&mut self, offset: u64, value: u32) {
        let queue = self.queue_sel;
        let high = offset & 4 != 0;
        self.with_queue(|at, q| {
            let (current, what, expected) = match offset & !4 {
                0x80 => (q.desc_table(), "descriptor table address", "16-byte alignment"),
                0x90 => (q.avail_ring(), "driver area address", "2-byte alignment"),
                _ => (q.used_ring(), "device area address", "4-byte alignment"),
            };
            let addr = if high {
                (current & 0xffff_ffff) | (u64::from(value) << 32)
            } else {
                (current & !0xffff_ffff) | u64::from(value)
            };
            let done = match offset & !4 {
                0x80 => q.try_set_desc_table_address(GuestAddress(addr)),
                0x90 => q.try_set_avail_ring_address(GuestAddress(addr)),
                _ => q.try_set_used_ring_address(GuestAddress(addr)),
            };
            done.err().map(|_| MmioError::QueueSetting { at, queue, what, value: addr, expected })
        });
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32),
            _ => {}
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let at = self.at;
        let current = self.status;
        let order = |expected| MmioError::StatusOrder { at, status: value, current, expected };
        if current & !value & !VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            self.error = Some(order("only new bits (write 0 to reset)"));
            return;
        }
        let added = value & !current;
        let mut status = current
            | (added & (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FAILED));
        if added & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            match self.check_features(status) {
                Ok(()) => status |= VIRTIO_CONFIG_S_FEATURES_OK,
                Err(e) => self.error = Some(e),
            }
        }
        if added & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            if status & VIRTIO_CONFIG_S_FEATURES_OK == 0 || status & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
                self.error = Some(order("FEATURES_OK (and no DEVICE_NEEDS_RESET)"));
            } else if self.queue_fault {
                status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                self.error = Some(order("only accepted queue settings (one was refused; reset first)"));
            } else {
                match self.activate() {
                    Ok(()) => status |= VIRTIO_CONFIG_S_DRIVER_OK,
                    Err(e) => {
                        status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                        self.error = Some(e);
                    }
                }
            }
        }
        self.status = status;
    }

    fn check_features(&self, status: u32) -> Result<(), MmioError> {
        let at = self.at;
        let needed = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        if status & needed != needed {
            return Err(MmioError::StatusOrder {
                at,
                status: status | VIRTIO_CONFIG_S_FEATURES_OK,
                current: self.status,
                expected: "ACKNOWLEDGE and DRIVER",
            });
        }
        let (acked, offered) = (self.driver_features, self.device.features());
        if acked & !offered != 0 {
            return Err(MmioError::FeaturesNotOffered { at, acked, offered });
        }
        if acked & FEATURE_VERSION_1 == 0 {
            return Err(MmioError::NoVersion1 { at, acked });
        }
        Ok(())
    }

    fn activate(&mut self) -> Result<(), MmioError> {
        let at = self.at;
        let mut ready = Vec::with_capacity(self.queues.len());
        for (i, q) in self.queues.iter().enumerate() {
            let invalid = || MmioError::QueueInvalid {
                at,
                queue: i,
                size: q.size(),
                desc: q.desc_table(),
                driver: q.avail_ring(),
                device: q.used_ring(),
            };
            if q.size() == 0 || !q.is_valid(&*self.mem) {
                return Err(invalid());
            }
            let mut copy = Queue::try_from(q.state()).map_err(|_| invalid())?;
            // VIRTIO_F_EVENT_IDX is never offered.
            copy.set_event_idx(false);
            ready.push(copy);
        }
        let status = self.interrupt_status.clone();
        let wake = self.notifier.clone();
        let notifier: Notifier = Arc::new(move || {
            status.fetch_or(VIRTIO_MMIO_INT_VRING, Ordering::AcqRel);
            wake();
        });
        let activation = Activation {
            mem: self.mem.clone(),
            queues: ready,
            acked_features: self.driver_features,
            notifier,
        };
        self.device.activate(activation).map_err(|source| MmioError::Activate { at, source })?;
        self.active = true;
        Ok(())
    }

    fn reset(&mut self) {
        if self.active {
            if !self.device.reset() {
                self.error = Some(MmioError::Reset { at: self.at });
                self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                return;
            }
            self.active = false;
        }
        for q in &mut self.queues {
            q.reset();
        }
        self.queue_sel = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_fault = false;
        self.interrupt_status.store(0, Ordering::Release);
        self.status = 0;
    }
}

/// A queue of `max` entries, or a queue of one entry that can never be valid (size 0 is
/// impossible) when `max` is not a size a queue can have.
fn new_queue(max: u16) -> Queue {
    Queue::new(max).unwrap_or_default()
}

#[cfg(test)]
mod tests;
