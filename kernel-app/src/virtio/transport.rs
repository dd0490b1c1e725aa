//! The virtio-mmio (version 2) transport of the virtio drivers, in place of `virtio_drivers`'
//! `MmioTransport`. That one makes every register access its driver steps name; here each access
//! is a VM exit served by the launcher (tens of µs on a host whose KVM runs on PVM), and they were
//! most of a boot's exits. This one sets a device up the same way with fewer of them, by
//! remembering what the registers hold:
//! - a selector (QueueSel, DeviceFeaturesSel, DriverFeaturesSel) is written only to change it;
//! - a device reset leaves the registers as the launcher's window resets them
//!   (`host-launcher/src/devices/mmio.rs`): selectors 0, QueueReady 0, QueueNum at QueueNumMax,
//!   queue addresses 0. So a write of the value a register already holds is skipped (the high
//!   halves of addresses below 4 GiB, QueueNum of a queue of the largest size), and so is the
//!   QueueReady read that checks that a queue is unused (which the specification makes the
//!   reset clear on any device);
//! - the status is read once, after FEATURES_OK, as the specification requires: the other status
//!   writes are not read back;
//! - configuration space is read in aligned 8-byte accesses, which the launcher serves whole (it
//!   passes any size to the device); a read made in one access is consistent by itself and needs
//!   no ConfigGeneration read around it.
//!
//! Everything else is the driver's part of the specification (virtio 1.2, 4.2.3), unchanged: the
//! reset, each status step, both feature words, QueueNumMax of each queue, the low address halves
//! and QueueReady. The raw accesses are behind [`Registers`] (the window's in `super::hal`), so the
//! logic here is tested on the host against a model of the launcher's window.

use core::cell::Cell;
use core::mem::size_of;
use virtio_drivers::transport::mmio::MmioError;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Register offsets in a virtio-mmio window (virtio 1.2, 4.2.2).
mod reg {
    pub const MAGIC: usize = 0x00;
    pub const VERSION: usize = 0x04;
    pub const DEVICE_ID: usize = 0x08;
    pub const DEVICE_FEATURES: usize = 0x10;
    pub const DEVICE_FEATURES_SEL: usize = 0x14;
    pub const DRIVER_FEATURES: usize = 0x20;
    pub const DRIVER_FEATURES_SEL: usize = 0x24;
    pub const QUEUE_SEL: usize = 0x30;
    pub const QUEUE_NUM_MAX: usize = 0x34;
    pub const QUEUE_NUM: usize = 0x38;
    pub const QUEUE_READY: usize = 0x44;
    pub const QUEUE_NOTIFY: usize = 0x50;
    pub const INTERRUPT_STATUS: usize = 0x60;
    pub const INTERRUPT_ACK: usize = 0x64;
    pub const STATUS: usize = 0x70;
    /// QueueDescLow; QueueDriverLow and QueueDeviceLow follow 0x10 apart, each high half 4 after.
    pub const QUEUE_DESC_LOW: usize = 0x80;
    pub const CONFIG_GENERATION: usize = 0xfc;
}

/// Offset of the device configuration space in a window.
pub const CONFIG_OFFSET: usize = 0x100;

const MAGIC: u32 = 0x7472_6976;
const VERSION: u32 = 2;

/// Queues whose registers are remembered; the registers of others are always written and read.
const TRACKED_QUEUES: usize = 4;

/// The raw accesses to one device's window.
pub trait Registers {
    /// Reads the 32-bit register at `offset` (below [`CONFIG_OFFSET`]).
    fn read(&self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset` (below [`CONFIG_OFFSET`]).
    fn write(&mut self, offset: usize, value: u32);
    /// Reads `out.len()` bytes (1, 2, 4 or 8) of configuration space at `offset` (a multiple of
    /// that length) in one access.
    fn read_config(&self, offset: usize, out: &mut [u8]);
    /// Writes `data` (1, 2, 4 or 8 bytes) to configuration space at `offset` (a multiple of its
    /// length) in one access.
    fn write_config(&mut self, offset: usize, data: &[u8]);
    /// Bytes of configuration space in the window.
    fn config_len(&self) -> usize;
}

/// What QueueNum holds, as far as the driver knows.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Unknown,
    /// QueueNumMax, as after a reset.
    Max,
    Is(u32),
}

/// What the registers of one queue hold, as far as the driver knows.
#[derive(Clone, Copy, Debug)]
struct QueueKnown {
    /// QueueReady holds 0.
    idle: bool,
    num: Num,
    /// QueueNumMax, once read.
    max: Option<u32>,
    /// The high halves of the descriptor, driver and device area addresses.
    high: [Option<u32>; 3],
}

impl QueueKnown {
    const UNKNOWN: QueueKnown = QueueKnown { idle: false, num: Num::Unknown, max: None, high: [None; 3] };
    const AFTER_RESET: QueueKnown = QueueKnown { idle: true, num: Num::Max, max: None, high: [Some(0); 3] };

    fn num(&self) -> Option<u32> {
        match self.num {
            Num::Unknown => None,
            Num::Max => self.max,
            Num::Is(n) => Some(n),
        }
    }
}

/// What the registers of the window hold, as far as the driver knows (`None`: not known).
#[derive(Clone, Copy, Debug)]
struct Known {
    queue_sel: Option<u32>,
    device_features_sel: Option<u32>,
    driver_features_sel: Option<u32>,
    queues: [QueueKnown; TRACKED_QUEUES],
}

impl Known {
    const UNKNOWN: Known = Known {
        queue_sel: None,
        device_features_sel: None,
        driver_features_sel: None,
        queues: [QueueKnown::UNKNOWN; TRACKED_QUEUES],
    };
    /// As the launcher's window resets them.
    const AFTER_RESET: Known = Known {
        queue_sel: Some(0),
        device_features_sel: Some(0),
        driver_features_sel: Some(0),
        queues: [QueueKnown::AFTER_RESET; TRACKED_QUEUES],
    };
}

/// Writes `value` to the register at `offset` unless it is known to hold it already.
fn write_unless_held<R: Registers>(regs: &mut R, held: &mut Option<u32>, offset: usize, value: u32) {
    if *held != Some(value) {
        regs.write(offset, value);
        *held = Some(value);
    }
}

/// The two words of a 64-bit feature set, starting with the one already selected.
fn word_order(selected: Option<u32>) -> [u32; 2] {
    if selected == Some(1) { [1, 0] } else { [0, 1] }
}

/// A virtio-mmio version 2 device behind `R`.
#[derive(Debug)]
pub struct Mmio<R: Registers> {
    regs: R,
    device_type: DeviceType,
    known: Known,
    /// The status last written.
    status: DeviceStatus,
    /// The status read back after the last status write, if it was read.
    read_back: Option<DeviceStatus>,
    /// The device did not accept FEATURES_OK as written: it must not be set up further.
    refused: bool,
    /// Configuration space accesses so far (see `read_consistent`).
    config_reads: Cell<u32>,
}

impl<R: Registers> Mmio<R> {
    /// The device in `regs`, if it is a virtio-mmio version 2 device (the legacy version 1 is not
    /// supported). Nothing of it is assumed known until the driver resets it.
    pub fn new(regs: R) -> Result<Self, MmioError> {
        let magic = regs.read(reg::MAGIC);
        if magic != MAGIC {
            return Err(MmioError::BadMagic(magic));
        }
        let device_type =
            DeviceType::try_from(regs.read(reg::DEVICE_ID)).map_err(MmioError::InvalidDeviceID)?;
        let version = regs.read(reg::VERSION);
        if version != VERSION {
            return Err(MmioError::UnsupportedVersion(version));
        }
        Ok(Mmio {
            regs,
            device_type,
            known: Known::UNKNOWN,
            status: DeviceStatus::empty(),
            read_back: None,
            refused: false,
            config_reads: Cell::new(0),
        })
    }

    fn select_queue(&mut self, queue: u16) {
        write_unless_held(&mut self.regs, &mut self.known.queue_sel, reg::QUEUE_SEL, queue.into());
    }

    fn queue_known(&mut self, queue: u16) -> Option<&mut QueueKnown> {
        self.known.queues.get_mut(usize::from(queue))
    }

    /// Reads `out.len()` bytes of configuration space at `offset` (in range): in the aligned
    /// 8-byte blocks that cover them (reading configuration space has no side effect), but in
    /// exact accesses where a block would pass the end of the space.
    fn read_config_bytes(&self, offset: usize, out: &mut [u8]) {
        let end = offset + out.len();
        let mut at = offset & !7;
        while at < end {
            let (start, size) = if at + 8 <= self.regs.config_len() {
                (at, 8)
            } else {
                let start = at.max(offset);
                let size = [8, 4, 2, 1]
                    .into_iter()
                    .find(|&s| start.is_multiple_of(s) && start + s <= end)
                    .unwrap_or(1);
                (start, size)
            };
            let mut block = [0u8; 8];
            self.regs.read_config(start, &mut block[..size]);
            self.config_reads.set(self.config_reads.get().wrapping_add(1));
            let (from, to) = (start.max(offset), (start + size).min(end));
            out[from - offset..to - offset].copy_from_slice(&block[from - start..to - start]);
            at = start + size;
        }
    }

    fn check_config(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.regs.config_len() => Ok(()),
            _ => Err(Error::ConfigSpaceTooSmall),
        }
    }
}

impl<R: Registers> Transport for Mmio<R> {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        let mut words = [0u32; 2];
        for sel in word_order(self.known.device_features_sel) {
            let held = &mut self.known.device_features_sel;
            write_unless_held(&mut self.regs, held, reg::DEVICE_FEATURES_SEL, sel);
            words[sel as usize] = self.regs.read(reg::DEVICE_FEATURES);
        }
        u64::from(words[0]) | (u64::from(words[1]) << 32)
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        let words = [driver_features as u32, (driver_features >> 32) as u32];
        for sel in word_order(self.known.driver_features_sel) {
            let held = &mut self.known.driver_features_sel;
            write_unless_held(&mut self.regs, held, reg::DRIVER_FEATURES_SEL, sel);
            self.regs.write(reg::DRIVER_FEATURES, words[sel as usize]);
        }
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        // A device that refused the features cannot be driven: with no queue to set up, any
        // driver gives up here.
        if self.refused {
            return 0;
        }
        self.select_queue(queue);
        let max = self.regs.read(reg::QUEUE_NUM_MAX);
        if let Some(q) = self.queue_known(queue) {
            q.max = Some(max);
        }
        max
    }

    fn notify(&mut self, queue: u16) {
        self.regs.write(reg::QUEUE_NOTIFY, queue.into());
    }

    fn get_status(&self) -> DeviceStatus {
        self.read_back.unwrap_or_else(|| DeviceStatus::from_bits_retain(self.regs.read(reg::STATUS)))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.regs.write(reg::STATUS, status.bits());
        let first_features_ok =
            status.contains(DeviceStatus::FEATURES_OK) && !self.status.contains(DeviceStatus::FEATURES_OK);
        self.status = status;
        self.read_back = None;
        if status.is_empty() {
            // The launcher resets the window as it handles the write, before the next access.
            self.known = Known::AFTER_RESET;
            self.refused = false;
        } else if first_features_ok {
            // The device may refuse the features: the status then lacks FEATURES_OK (virtio 1.2,
            // 3.1.1, step 6). Any other difference (DEVICE_NEEDS_RESET) is a device to give up too.
            let back = DeviceStatus::from_bits_retain(self.regs.read(reg::STATUS));
            self.read_back = Some(back);
            self.refused = back != status;
        }
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Legacy (version 1) devices only.
    }

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.select_queue(queue);
        let mut known = self.queue_known(queue).copied().unwrap_or(QueueKnown::UNKNOWN);
        let mut num = known.num();
        write_unless_held(&mut self.regs, &mut num, reg::QUEUE_NUM, size);
        for (i, addr) in [descriptors, driver_area, device_area].into_iter().enumerate() {
            let low = reg::QUEUE_DESC_LOW + 0x10 * i;
            self.regs.write(low, addr as u32);
            write_unless_held(&mut self.regs, &mut known.high[i], low + 4, (addr >> 32) as u32);
        }
        self.regs.write(reg::QUEUE_READY, 1);
        known.num = Num::Is(size);
        known.idle = false;
        if let Some(q) = self.queue_known(queue) {
            *q = known;
        }
    }

    fn queue_unset(&mut self, queue: u16) {
        self.select_queue(queue);
        self.regs.write(reg::QUEUE_READY, 0);
        // Read back until the device has stopped using the queue (virtio 1.2, 4.2.2.2).
        while self.regs.read(reg::QUEUE_READY) != 0 {}
        let mut known = self.queue_known(queue).copied().unwrap_or(QueueKnown::UNKNOWN);
        let mut num = known.num();
        write_unless_held(&mut self.regs, &mut num, reg::QUEUE_NUM, 0);
        for i in 0..3 {
            let low = reg::QUEUE_DESC_LOW + 0x10 * i;
            self.regs.write(low, 0);
            write_unless_held(&mut self.regs, &mut known.high[i], low + 4, 0);
        }
        known.num = Num::Is(0);
        known.idle = true;
        if let Some(q) = self.queue_known(queue) {
            *q = known;
        }
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        if self.queue_known(queue).is_some_and(|q| q.idle) {
            return false;
        }
        self.select_queue(queue);
        let used = self.regs.read(reg::QUEUE_READY) != 0;
        if let Some(q) = self.queue_known(queue) {
            q.idle = !used;
        }
        used
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let pending = self.regs.read(reg::INTERRUPT_STATUS);
        if pending != 0 {
            self.regs.write(reg::INTERRUPT_ACK, pending);
        }
        InterruptStatus::from_bits_truncate(pending)
    }

    fn read_config_generation(&self) -> u32 {
        self.regs.read(reg::CONFIG_GENERATION)
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        self.check_config(offset, size_of::<T>())?;
        let mut value = T::new_zeroed();
        self.read_config_bytes(offset, value.as_mut_bytes());
        Ok(value)
    }

    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> Result<(), Error> {
        self.check_config(offset, size_of::<T>())?;
        // Exact accesses: a write must not touch the fields around the value.
        let bytes = value.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let start = offset + at;
            let left = bytes.len() - at;
            let size = [8, 4, 2, 1].into_iter().find(|&s| start.is_multiple_of(s) && s <= left).unwrap_or(1);
            self.regs.write_config(start, &bytes[at..at + size]);
            at += size;
        }
        Ok(())
    }

    fn read_consistent<T>(&self, f: impl Fn() -> Result<T, Error>) -> Result<T, Error> {
        let before = self.config_reads.get();
        let result = f();
        // The device serves one access whole: a read made in one cannot mix two generations.
        if self.config_reads.get().wrapping_sub(before) <= 1 {
            return result;
        }
        loop {
            let generation = self.read_config_generation();
            let result = f();
            if self.read_config_generation() == generation {
                return result;
            }
        }
    }
}

impl<R: Registers> Drop for Mmio<R> {
    fn drop(&mut self) {
        // As `MmioTransport` does: a device whose driver is gone stops using guest memory.
        self.set_status(DeviceStatus::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use core::ptr::NonNull;
    use std::alloc::{Layout, alloc_zeroed, dealloc};
    use virtio_drivers::device::net::VirtIONetRaw;
    use virtio_drivers::queue::VirtQueue;
    use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

    const VERSION_1: u64 = 1 << 32;
    const NET_MAC: u64 = 1 << 5;
    const NET_STATUS: u64 = 1 << 16;
    const BLK_FLUSH: u64 = 1 << 9;
    const ACK_DRIVER: DeviceStatus = DeviceStatus::ACKNOWLEDGE.union(DeviceStatus::DRIVER);

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Access {
        Read(usize),
        Write(usize, u32),
        ConfigRead(usize, usize),
        ConfigWrite(usize, usize),
    }

    #[derive(Debug, Clone, Copy, Default, PartialEq)]
    struct Queue {
        max: u32,
        num: u32,
        /// Descriptor table, driver area, device area.
        addr: [u64; 3],
        ready: bool,
    }

    impl Queue {
        fn reset(&mut self) {
            *self = Queue { max: self.max, num: self.max, ..Queue::default() };
        }
    }

    /// A model of the launcher's window (`host-launcher/src/devices/mmio.rs`) that records
    /// every access.
    #[derive(Debug)]
    struct Device {
        device_id: u32,
        features: u64,
        config: Vec<u8>,
        generation: u32,
        /// The generation changes after this many more configuration reads.
        change_after: Option<usize>,
        queue_sel: u32,
        device_features_sel: u32,
        driver_features_sel: u32,
        driver_features: u64,
        status: u32,
        queues: Vec<Queue>,
        log: Vec<Access>,
    }

    impl Device {
        fn new(device_id: u32, features: u64, config: &[u8], max: &[u32]) -> Rc<RefCell<Device>> {
            let queues = max.iter().map(|&max| Queue { max, num: max, ..Queue::default() }).collect();
            Rc::new(RefCell::new(Device {
                device_id,
                features,
                config: config.to_vec(),
                generation: 0,
                change_after: None,
                queue_sel: 0,
                device_features_sel: 0,
                driver_features_sel: 0,
                driver_features: 0,
                status: 0,
                queues,
                log: Vec::new(),
            }))
        }

        fn queue(&mut self) -> Option<&mut Queue> {
            self.queues.get_mut(self.queue_sel as usize)
        }

        fn reset(&mut self) {
            self.queues.iter_mut().for_each(Queue::reset);
            self.queue_sel = 0;
            self.device_features_sel = 0;
            self.driver_features_sel = 0;
            self.driver_features = 0;
            self.status = 0;
        }

        fn write_status(&mut self, value: u32) {
            if value == 0 {
                return self.reset();
            }
            let added = value & !self.status;
            let mut status = self.status | (added & 0x83);
            let features_ok = DeviceStatus::FEATURES_OK.bits();
            if added & features_ok != 0
                && self.driver_features & !self.features == 0
                && self.driver_features & VERSION_1 != 0
            {
                status |= features_ok;
            }
            if added & DeviceStatus::DRIVER_OK.bits() != 0 {
                let valid = |q: &Queue| {
                    q.ready
                        && q.num.is_power_of_two()
                        && q.num <= q.max
                        && q.addr.iter().all(|&a| a != 0)
                        && q.addr[0].is_multiple_of(16)
                        && q.addr[1].is_multiple_of(2)
                        && q.addr[2].is_multiple_of(4)
                };
                if status & features_ok != 0 && self.queues.iter().all(valid) {
                    status |= DeviceStatus::DRIVER_OK.bits();
                } else {
                    status |= DeviceStatus::DEVICE_NEEDS_RESET.bits();
                }
            }
            self.status = status;
        }

        /// Register accesses other than QueueNotify (served by an ioeventfd: no exit).
        fn exits(&self) -> usize {
            self.log.iter().filter(|a| !matches!(a, Access::Write(reg::QUEUE_NOTIFY, _))).count()
        }

        fn writes_to(&self, offset: usize) -> Vec<u32> {
            let value = |a: &Access| match *a {
                Access::Write(o, v) if o == offset => Some(v),
                _ => None,
            };
            self.log.iter().filter_map(value).collect()
        }
    }

    struct Fake(Rc<RefCell<Device>>);

    impl Registers for Fake {
        fn read(&self, offset: usize) -> u32 {
            assert!(offset.is_multiple_of(4) && offset < CONFIG_OFFSET, "register read at {offset:#x}");
            let mut d = self.0.borrow_mut();
            d.log.push(Access::Read(offset));
            match offset {
                reg::MAGIC => MAGIC,
                reg::VERSION => VERSION,
                reg::DEVICE_ID => d.device_id,
                reg::DEVICE_FEATURES => match d.device_features_sel {
                    0 => d.features as u32,
                    1 => (d.features >> 32) as u32,
                    _ => 0,
                },
                reg::QUEUE_NUM_MAX => d.queue().map_or(0, |q| q.max),
                reg::QUEUE_READY => d.queue().map_or(0, |q| u32::from(q.ready)),
                reg::STATUS => d.status,
                reg::CONFIG_GENERATION => d.generation,
                _ => 0,
            }
        }

        fn write(&mut self, offset: usize, value: u32) {
            assert!(offset.is_multiple_of(4) && offset < CONFIG_OFFSET, "register write at {offset:#x}");
            let mut d = self.0.borrow_mut();
            d.log.push(Access::Write(offset, value));
            let features_ok = d.status & DeviceStatus::FEATURES_OK.bits() != 0;
            match offset {
                reg::DEVICE_FEATURES_SEL => d.device_features_sel = value,
                reg::DRIVER_FEATURES_SEL => d.driver_features_sel = value,
                reg::DRIVER_FEATURES if !features_ok => match d.driver_features_sel {
                    0 => d.driver_features = (d.driver_features & !0xffff_ffff) | u64::from(value),
                    1 => d.driver_features = (d.driver_features & 0xffff_ffff) | (u64::from(value) << 32),
                    _ => {}
                },
                reg::QUEUE_SEL => d.queue_sel = value,
                reg::QUEUE_NUM => d.queue().into_iter().for_each(|q| q.num = value),
                reg::QUEUE_READY => d.queue().into_iter().for_each(|q| q.ready = value == 1),
                reg::STATUS => d.write_status(value),
                0x80 | 0x84 | 0x90 | 0x94 | 0xa0 | 0xa4 => {
                    let (i, high) = ((offset - 0x80) / 0x10, offset & 4 != 0);
                    d.queue().into_iter().for_each(|q| {
                        q.addr[i] = if high {
                            (q.addr[i] & 0xffff_ffff) | (u64::from(value) << 32)
                        } else {
                            (q.addr[i] & !0xffff_ffff) | u64::from(value)
                        }
                    });
                }
                _ => {}
            }
        }

        fn read_config(&self, offset: usize, out: &mut [u8]) {
            let mut d = self.0.borrow_mut();
            let len = out.len();
            assert!([1, 2, 4, 8].contains(&len) && offset.is_multiple_of(len), "{len} bytes at {offset:#x}");
            assert!(offset + len <= d.config.len(), "{len} bytes at {offset:#x} past the end");
            d.log.push(Access::ConfigRead(offset, len));
            out.copy_from_slice(&d.config[offset..offset + len]);
            match d.change_after {
                Some(0) => {}
                Some(1) => {
                    d.generation += 1;
                    d.change_after = Some(0);
                }
                Some(n) => d.change_after = Some(n - 1),
                None => {}
            }
        }

        fn write_config(&mut self, offset: usize, data: &[u8]) {
            let mut d = self.0.borrow_mut();
            let len = data.len();
            assert!([1, 2, 4, 8].contains(&len) && offset.is_multiple_of(len), "{len} bytes at {offset:#x}");
            d.log.push(Access::ConfigWrite(offset, len));
            d.config[offset..offset + len].copy_from_slice(data);
        }

        fn config_len(&self) -> usize {
            self.0.borrow().config.len()
        }
    }

    /// Guest memory is the host's heap, identity-mapped.
    struct TestHal;

    // SAFETY: `dma_alloc` returns fresh zeroed page-aligned memory (or 0 on failure), freed by
    // `dma_dealloc` with the same layout; addresses are the identity.
    unsafe impl Hal for TestHal {
        fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
            let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap();
            // SAFETY: the layout has a non-zero size.
            let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
            (ptr.as_ptr() as PhysAddr, ptr)
        }

        unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
            let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap();
            // SAFETY: the caller passes back what `dma_alloc(pages)` returned.
            unsafe { dealloc(vaddr.as_ptr(), layout) };
            0
        }

        unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
            NonNull::new(paddr as *mut u8).unwrap()
        }

        unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
            buffer.cast::<u8>().as_ptr() as PhysAddr
        }

        unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
    }

    fn net_device(features: u64) -> Rc<RefCell<Device>> {
        let config = [2, 0xd3, 0xf8, 0xe7, 0xd1, 0x11, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        Device::new(1, features, &config, &[256, 256])
    }

    /// High halves of queue addresses that are not 0: each costs a write.
    fn high_halves(d: &Device) -> usize {
        d.queues.iter().flat_map(|q| q.addr).filter(|a| a >> 32 != 0).count()
    }

    #[test]
    fn the_network_driver_sets_the_device_up_in_28_exits() {
        let dev = net_device(VERSION_1 | NET_MAC | NET_STATUS | (1 << 0));
        let net = VirtIONetRaw::<TestHal, _, 256>::new(Mmio::new(Fake(dev.clone())).unwrap()).unwrap();
        assert_eq!(net.mac_address(), [2, 0xd3, 0xf8, 0xe7, 0xd1, 0x11]);
        let d = dev.borrow();
        // Accepted as a whole: the features, then both queues (valid, each with its own rings).
        assert_eq!(d.status, 0xf);
        assert_eq!(d.driver_features, VERSION_1 | NET_MAC | NET_STATUS);
        for q in &d.queues {
            assert!(q.ready && q.num == 256, "{q:?}");
        }
        assert_ne!(d.queues[0].addr, d.queues[1].addr);
        // The status was read back after FEATURES_OK, and only then.
        assert_eq!(d.log.iter().filter(|&&a| a == Access::Read(reg::STATUS)).count(), 1);
        // QueueNum is never written: both queues take their largest size, as after the reset.
        assert!(d.writes_to(reg::QUEUE_NUM).is_empty());
        // Below 4 GiB (as in the guest) no high half is written; here the heap may be above.
        assert_eq!(d.exits(), 28 + high_halves(&d), "{:#x?}", d.log);
        drop(d);
        drop(net);
        // Dropped: the queues are unset and the device reset.
        let d = dev.borrow();
        assert_eq!(d.status, 0);
        assert!(d.queues.iter().all(|q| !q.ready));
    }

    #[test]
    fn the_block_setup_takes_21_exits() {
        let config = 209_715_200u64.to_le_bytes();
        let dev = Device::new(2, VERSION_1 | BLK_FLUSH | (1 << 2), &config, &[256]);
        let mut t = Mmio::new(Fake(dev.clone())).unwrap();
        // The steps of `super::blk::BlkDevice::new`.
        t.set_status(DeviceStatus::empty());
        t.set_status(ACK_DRIVER);
        let features = t.read_device_features() & (BLK_FLUSH | VERSION_1);
        t.write_driver_features(features);
        t.set_status(ACK_DRIVER | DeviceStatus::FEATURES_OK);
        assert!(t.get_status().contains(DeviceStatus::FEATURES_OK));
        assert_eq!(t.read_config_space::<u64>(0), Ok(209_715_200));
        let queue = VirtQueue::<TestHal, 16>::new(&mut t, 0, false, false).unwrap();
        t.set_status(ACK_DRIVER | DeviceStatus::FEATURES_OK | DeviceStatus::DRIVER_OK);
        let d = dev.borrow();
        assert_eq!(d.status, 0xf);
        assert_eq!(d.driver_features, VERSION_1 | BLK_FLUSH);
        assert_eq!(d.queues[0].num, 16);
        assert!(d.queues[0].ready);
        assert_eq!(d.exits(), 21 + high_halves(&d), "{:#x?}", d.log);
        drop((d, queue));
    }

    #[test]
    fn each_queue_gets_its_own_registers() {
        let dev = net_device(VERSION_1);
        let mut t = Mmio::new(Fake(dev.clone())).unwrap();
        t.set_status(DeviceStatus::empty());
        assert!(!t.queue_used(1));
        assert_eq!(t.max_queue_size(1), 256);
        t.queue_set(1, 256, 0x1000, 0x2000, 0x3000);
        assert!(!t.queue_used(0));
        assert_eq!(t.max_queue_size(0), 256);
        t.queue_set(0, 64, 0x1_0000_4000, 0x5000, 0x6000);
        let d = dev.borrow();
        assert_eq!(d.queues[1], Queue { max: 256, num: 256, addr: [0x1000, 0x2000, 0x3000], ready: true });
        assert_eq!(
            d.queues[0],
            Queue { max: 256, num: 64, addr: [0x1_0000_4000, 0x5000, 0x6000], ready: true }
        );
        assert_eq!(d.writes_to(reg::QUEUE_SEL), [1, 0]);
        assert_eq!(d.writes_to(reg::QUEUE_NUM), [64]);
        assert_eq!(d.writes_to(0x84), [1]);
        assert!(d.writes_to(0x94).is_empty() && d.writes_to(0xa4).is_empty());
        // QueueReady was never read: the reset cleared it.
        assert!(!d.log.contains(&Access::Read(reg::QUEUE_READY)));
    }

    #[test]
    fn a_queue_unset_is_set_up_again_in_full() {
        let dev = net_device(VERSION_1);
        let mut t = Mmio::new(Fake(dev.clone())).unwrap();
        t.set_status(DeviceStatus::empty());
        t.max_queue_size(0);
        t.queue_set(0, 256, 0x1_0000_1000, 0x2_0000_2000, 0x3000);
        t.queue_unset(0);
        assert_eq!(dev.borrow().queues[0], Queue { max: 256, ..Queue::default() });
        assert!(!t.queue_used(0));
        t.max_queue_size(0);
        t.queue_set(0, 256, 0x1_0000_1000, 0x2_0000_2000, 0x3000);
        let d = dev.borrow();
        assert_eq!(
            d.queues[0],
            Queue { max: 256, num: 256, addr: [0x1_0000_1000, 0x2_0000_2000, 0x3000], ready: true }
        );
    }

    #[test]
    fn nothing_is_assumed_before_the_first_reset() {
        let dev = net_device(VERSION_1 | NET_MAC);
        {
            let mut d = dev.borrow_mut();
            (d.device_features_sel, d.driver_features_sel, d.queue_sel) = (1, 1, 1);
            d.queues[0].num = 0;
            d.queues[0].ready = true;
        }
        let mut t = Mmio::new(Fake(dev.clone())).unwrap();
        assert_eq!(t.read_device_features(), VERSION_1 | NET_MAC);
        t.write_driver_features(VERSION_1 | NET_MAC);
        assert!(t.queue_used(0));
        t.queue_set(1, 256, 0x1000, 0x2000, 0x3000);
        let d = dev.borrow();
        assert_eq!(d.driver_features, VERSION_1 | NET_MAC);
        assert_eq!(d.queues[1], Queue { max: 256, num: 256, addr: [0x1000, 0x2000, 0x3000], ready: true });
        assert_eq!(d.writes_to(reg::QUEUE_NUM), [256]);
        assert_eq!(d.writes_to(0x84), [0]);
    }

    #[test]
    fn a_second_reset_forgets_what_the_driver_wrote() {
        let dev = net_device(VERSION_1);
        let mut t = Mmio::new(Fake(dev.clone())).unwrap();
        t.set_status(DeviceStatus::empty());
        t.max_queue_size(1);
        t.queue_set(1, 128, 0x1_0000_1000, 0x2000, 0x3000);
        t.read_device_features();
        t.set_status(DeviceStatus::empty());
        assert_eq!(t.read_device_features(), VERSION_1);
        t.max_queue_size(1);
        t.queue_set(1, 256, 0x1000, 0x2000, 0x3000);
        let d = dev.borrow();
        assert_eq!(d.queues[1], Queue { max: 256, num: 256, addr: [0x1000, 0x2000, 0x3000], ready: true });
        assert_eq!(d.writes_to(reg::QUEUE_SEL), [1, 1]);
    }

    #[test]
    fn refused_features_stop_the_setup() {
        // No VERSION_1: the device refuses FEATURES_OK.
        let dev = net_device(NET_MAC | NET_STATUS);
        let result = VirtIONetRaw::<TestHal, _, 256>::new(Mmio::new(Fake(dev.clone())).unwrap());
        assert!(result.is_err());
        let d = dev.borrow();
        assert!(d.writes_to(reg::QUEUE_READY).is_empty(), "{:#x?}", d.log);
        assert!(!d.writes_to(reg::STATUS).iter().any(|s| s & DeviceStatus::DRIVER_OK.bits() != 0));
        // The transport, dropped, reset the device.
        assert_eq!(d.writes_to(reg::STATUS).last(), Some(&0));

        let dev = net_device(VERSION_1);
        let mut t = Mmio::new(Fake(dev.clone())).unwrap();
        t.set_status(DeviceStatus::empty());
        t.set_status(ACK_DRIVER);
        t.write_driver_features(VERSION_1 | NET_MAC);
        t.set_status(ACK_DRIVER | DeviceStatus::FEATURES_OK);
        assert_eq!(t.get_status(), ACK_DRIVER);
        assert_eq!(t.max_queue_size(0), 0);
    }

    #[test]
    fn configuration_space_is_read_in_aligned_blocks() {
        let config: Vec<u8> = (0..12).collect();
        let dev = Device::new(1, VERSION_1, &config, &[]);
        let t = Mmio::new(Fake(dev.clone())).unwrap();
        let reads = |from: usize| -> Vec<Access> {
            dev.borrow().log[from..].iter().copied().filter(|a| matches!(a, Access::ConfigRead(..))).collect()
        };
        assert_eq!(t.read_config_space::<[u8; 6]>(0), Ok([0, 1, 2, 3, 4, 5]));
        assert_eq!(reads(0), [Access::ConfigRead(0, 8)]);
        let n = dev.borrow().log.len();
        assert_eq!(t.read_config_space::<[u8; 3]>(6), Ok([6, 7, 8]));
        // The second block would pass the end of the space: exact accesses there.
        assert_eq!(reads(n), [Access::ConfigRead(0, 8), Access::ConfigRead(8, 1)]);
        let n = dev.borrow().log.len();
        assert_eq!(t.read_config_space::<[u8; 4]>(8), Ok([8, 9, 10, 11]));
        assert_eq!(reads(n), [Access::ConfigRead(8, 4)]);
        assert_eq!(t.read_config_space::<[u8; 4]>(9), Err(Error::ConfigSpaceTooSmall));
        assert_eq!(t.read_config_space::<u32>(usize::MAX), Err(Error::ConfigSpaceTooSmall));
    }

    #[test]
    fn a_read_of_several_accesses_is_checked_against_the_generation() {
        let config: Vec<u8> = (0..16).collect();
        let dev = Device::new(1, VERSION_1, &config, &[]);
        let t = Mmio::new(Fake(dev.clone())).unwrap();
        let generation_reads = || dev.borrow().log.iter().filter(|&&a| a == Access::Read(0xfc)).count();
        // One access: no generation read.
        assert_eq!(t.read_consistent(|| t.read_config_space::<u16>(6)), Ok(0x0706));
        assert_eq!(generation_reads(), 0);
        // Two accesses: bracketed by generation reads.
        assert_eq!(
            t.read_consistent(|| t.read_config_space::<[u8; 10]>(4)),
            Ok([4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
        );
        assert_eq!(generation_reads(), 2);
        // The generation changes between the bracketed accesses: read again.
        dev.borrow_mut().change_after = Some(3);
        assert!(t.read_consistent(|| t.read_config_space::<[u8; 10]>(4)).is_ok());
        assert_eq!(generation_reads(), 6);
    }

    #[test]
    fn configuration_space_is_written_in_exact_accesses() {
        let dev = Device::new(1, VERSION_1, &[0; 16], &[]);
        let mut t = Mmio::new(Fake(dev.clone())).unwrap();
        t.write_config_space(5, [1u8, 2, 3]).unwrap();
        t.write_config_space(8, 0x0807_0605_0403_0201u64).unwrap();
        let d = dev.borrow();
        let writes: Vec<_> = d.log.iter().copied().filter(|a| matches!(a, Access::ConfigWrite(..))).collect();
        assert_eq!(writes, [Access::ConfigWrite(5, 1), Access::ConfigWrite(6, 2), Access::ConfigWrite(8, 8)]);
        assert_eq!(d.config, [0, 0, 0, 0, 0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn only_a_version_2_virtio_window_is_taken() {
        let dev = net_device(VERSION_1);
        assert!(Mmio::new(Fake(dev.clone())).is_ok());
        dev.borrow_mut().device_id = 0;
        assert!(matches!(Mmio::new(Fake(dev.clone())), Err(MmioError::InvalidDeviceID(_))));
    }
}
