//! The virtio block device as a [`BlockIo`].
//!
//! Each request is submitted, then the vCPU checks the used ring for a few microseconds and
//! otherwise blocks in `hypercall::wait` (woken by the launcher's device event) until it is done.
//! The driver is `virtio_drivers`' transport and virtqueue with a small request layer of its
//! own (header, data, status byte) rather than `VirtIOBlk`: that driver has IN and OUT requests in
//! non-blocking form, but FLUSH and GET_ID only in blocking form, which spins on the used ring
//! for as long as the host takes to sync the disk.

use super::hal::{Chain, Done, OwnedQueue, Window};
use super::transport::Mmio;
use super::{InitError, open};
use crate::clock::Clock;
use crate::{arch, hypercall};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use spacecore_store::{BlockIo, IoError, SECTOR};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

/// Entries in the request queue (each request takes 2 or 3).
const QUEUE_SIZE: usize = 16;

/// Request types.
const IN: u32 = 0;
const OUT: u32 = 1;
const FLUSH: u32 = 4;
const GET_ID: u32 = 8;

/// Feature bits: read-only device, FLUSH supported, modern device.
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_VERSION_1: u64 = 1 << 32;

/// Status byte values.
const S_OK: u8 = 0;
const S_UNSUPP: u8 = 2;

/// How long a request may spin on the used ring before blocking, in µs.
const SPIN_US: u64 = 5;
/// Longest block in one `wait`, in ns; a device event ends it sooner.
const WAIT_SLICE_NS: u64 = 100_000_000;
/// Longest time a request may take, in µs.
const TIMEOUT_US: u64 = 10_000_000;

/// A virtio block device.
pub struct BlkDevice {
    transport: Mmio<Window>,
    queue: OwnedQueue<QUEUE_SIZE>,
    capacity: u64,
    features: u64,
    ticks_per_us: u64,
}

impl BlkDevice {
    /// Starts the device in the window at `base`; its capacity is read once, here.
    pub fn new(base: u64, size: u64, clock: &Clock) -> Result<Self, InitError> {
        let mut t = open(base, size, DeviceType::Block)?;
        let base_status = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER;
        t.set_status(DeviceStatus::empty());
        t.set_status(base_status);
        let features = t.read_device_features() & (F_RO | F_FLUSH | F_VERSION_1);
        t.write_driver_features(features);
        t.set_status(base_status | DeviceStatus::FEATURES_OK);
        if features & F_VERSION_1 == 0 || !t.get_status().contains(DeviceStatus::FEATURES_OK) {
            t.set_status(DeviceStatus::FAILED);
            return Err(InitError::Driver(virtio_drivers::Error::Unsupported));
        }
        // The capacity in one access: consistent without a ConfigGeneration check around it.
        let capacity: u64 = t.read_config_space(0)?;
        let queue = OwnedQueue::new(&mut t, 0)?;
        t.set_status(base_status | DeviceStatus::FEATURES_OK | DeviceStatus::DRIVER_OK);
        let ticks_per_us = clock.ticks_per_us();
        Ok(BlkDevice { transport: t, queue, capacity, features, ticks_per_us })
    }

    /// Whether the device refuses writes.
    pub fn read_only(&self) -> bool {
        self.features & F_RO != 0
    }

    /// The device's identifier (up to 20 ASCII bytes).
    pub fn device_id(&mut self) -> Result<String, IoError> {
        let id = self.request(GET_ID, 0, None, 20)?;
        let len = id.iter().position(|&b| b == 0).unwrap_or(id.len());
        Ok(id[..len]
            .iter()
            .map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' })
            .collect())
    }

    /// Runs one request and returns the `in_len` bytes the device wrote.
    fn request(
        &mut self,
        kind: u32,
        sector: u64,
        out: Option<&[u8]>,
        in_len: usize,
    ) -> Result<Box<[u8]>, IoError> {
        let mut header = vec![0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        let mut readable = vec![header.into_boxed_slice()];
        readable.extend(out.map(Box::from));
        let mut writable: Vec<Box<[u8]>> = Vec::with_capacity(2);
        if in_len > 0 {
            writable.push(vec![0u8; in_len].into_boxed_slice());
        }
        writable.push(Box::new([0xffu8]));
        let token = self.queue.submit(&mut self.transport, Chain { readable, writable });
        let mut done = self.await_done(token.map_err(|_| IoError::Device)?)?;
        let status = done.chain.writable.pop().map_or(0xff, |s| s[0]);
        match status {
            S_OK => Ok(done.chain.writable.pop().unwrap_or_default()),
            S_UNSUPP => Err(IoError::Unsupported),
            _ => Err(IoError::Device),
        }
    }

    /// Waits until the device completes request `token`.
    fn await_done(&mut self, token: u16) -> Result<Done, IoError> {
        let start = arch::rdtsc();
        loop {
            // A request given up on earlier may complete first: its buffers are simply dropped.
            while let Some(done) = self.queue.complete() {
                if done.token == token {
                    return Ok(done);
                }
            }
            let elapsed_us = arch::rdtsc().wrapping_sub(start) / self.ticks_per_us;
            if elapsed_us < SPIN_US {
                core::hint::spin_loop();
            } else if elapsed_us > TIMEOUT_US {
                return Err(IoError::Timeout);
            } else {
                hypercall::wait(WAIT_SLICE_NS);
            }
        }
    }

    fn check_range(&self, sector: u64, len: usize) -> Result<(), IoError> {
        let sectors = (len / SECTOR) as u64;
        let fits = sector.checked_add(sectors).is_some_and(|end| end <= self.capacity);
        if len == 0 || !len.is_multiple_of(SECTOR) || !fits { Err(IoError::OutOfRange) } else { Ok(()) }
    }
}

impl BlockIo for BlkDevice {
    fn sectors(&self) -> u64 {
        self.capacity
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.check_range(sector, buf.len())?;
        let data = self.request(IN, sector, None, buf.len())?;
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), IoError> {
        self.check_range(sector, data.len())?;
        if self.read_only() {
            return Err(IoError::Unsupported);
        }
        self.request(OUT, sector, Some(data), 0).map(drop)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        // Without the FLUSH feature the device has no write cache: completed writes are durable.
        if self.features & F_FLUSH == 0 {
            return Ok(());
        }
        self.request(FLUSH, 0, None, 0).map(drop)
    }
}
