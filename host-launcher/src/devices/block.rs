//! virtio-blk over a raw file: one request queue, served by a worker thread.
//!
//! The file is created sparse at the configured size when it does not exist, must otherwise
//! have exactly that size (or be grown with `resize`; it is never shrunk), and is locked with an
//! exclusive `flock` so that two launchers cannot share a disk. Requests are described in
//! [`request`]. What the guest may ask of the disk each second is limited by [`DiskLimits`]: the
//! worker stops taking requests when a limit is reached and takes them again on a timer, so a
//! guest cannot take the host disk's every request from other spacecores.

mod request;
#[cfg(test)]
mod tests;

use super::rate::TokenBucket;
use super::worker::{self, Poller, STOP_TOKEN, Worker};
use super::{
    Activation, Counters, DeviceError, FEATURE_VERSION_1, Notifier, TYPE_BLOCK, VirtioDevice, bump,
    new_events,
};
use crate::vmm::memory::Memory;
use request::Disk;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use virtio_bindings::virtio_blk::{VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX};
use virtio_queue::Queue;
use vmm_sys_util::epoll::EpollEvent;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

/// Size of a sector, the unit of `capacity` and of request offsets.
pub const SECTOR_SIZE: u64 = 512;
/// Maximum size of the request queue.
const QUEUE_SIZE: u16 = 256;
/// Length of the configuration space served: capacity, size_max, seg_max.
const CONFIG_LEN: usize = 16;
const QUEUE_TOKEN: u64 = 0;
const TIMER_TOKEN: u64 = 1;

/// Where a block device's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockConfig {
    /// The raw disk file; created (with its parent directories) when absent.
    pub path: PathBuf,
    /// Capacity in bytes, a positive multiple of 512.
    pub size_bytes: u64,
    /// The guest may not write.
    pub read_only: bool,
    /// Grow an existing smaller file to `size_bytes` (files are never shrunk).
    pub resize: bool,
}

/// What a guest may ask of its disk each second (0: no limit). A request starts only while
/// both budgets have something left, and is then charged in full (one request, the bytes it
/// moved), so one larger than the burst leaves the budget in debt and the rate holds over time.
/// Each budget holds a tenth of a second's worth at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskLimits {
    /// Requests per second (reads, writes, flushes, any other).
    pub iops: u64,
    /// Bytes read and written per second, together.
    pub bytes_per_s: u64,
}

/// The budgets of a [`DiskLimits`].
#[derive(Debug)]
pub(crate) struct Throttle {
    requests: TokenBucket,
    bytes: TokenBucket,
}

impl Throttle {
    pub fn new(limits: DiskLimits) -> Self {
        Throttle {
            requests: TokenBucket::new(limits.iops, (limits.iops / 10).max(1)),
            bytes: TokenBucket::new(limits.bytes_per_s, (limits.bytes_per_s / 10).max(1)),
        }
    }

    /// `None` if a request may start at `now`; otherwise how long until one may.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.requests.wait_time(1, now).max(self.bytes.wait_time(1, now))
    }

    /// Charges one finished request that moved `bytes`.
    pub fn charge(&mut self, bytes: u64, now: Instant) {
        self.requests.charge(1, now);
        self.bytes.charge(bytes, now);
    }
}

/// Why a disk file could not be opened.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum BlockError {
    /// The size is not a positive multiple of 512.
    #[error("virtio-blk {}: size {size} bytes is not a positive multiple of 512", .path.display())]
    BadSize { path: PathBuf, size: u64 },
    /// Creating the file or its directory failed.
    #[error("virtio-blk {}: cannot create the disk file: {source}", .path.display())]
    Create { path: PathBuf, source: std::io::Error },
    /// Opening or inspecting the file failed.
    #[error("virtio-blk {}: cannot open the disk file: {source}", .path.display())]
    Open { path: PathBuf, source: std::io::Error },
    /// The path is a directory, device or other non-regular file.
    #[error("virtio-blk {}: expected a regular file", .path.display())]
    NotAFile { path: PathBuf },
    /// Another process holds the lock.
    #[error("virtio-blk {}: the disk is in use by another launcher (it holds the file's lock)", .path.display())]
    Locked { path: PathBuf },
    /// Locking failed for another reason.
    #[error("virtio-blk {}: cannot lock the disk file: {source}", .path.display())]
    Lock { path: PathBuf, source: std::io::Error },
    /// The file is smaller than configured and `resize` is off.
    #[error("virtio-blk {}: is {actual} bytes but the spec says {expected}; set resize to grow it", .path.display())]
    SizeMismatch { path: PathBuf, actual: u64, expected: u64 },
    /// The file is larger than configured.
    #[error(
        "virtio-blk {}: is {actual} bytes but the spec says {expected}; shrinking would lose data and is never done",
        .path.display()
    )]
    WouldShrink { path: PathBuf, actual: u64, expected: u64 },
    /// The file is smaller than configured and read-only.
    #[error(
        "virtio-blk {}: is {actual} bytes but the spec says {expected}; a read-only disk cannot be grown",
        .path.display()
    )]
    ReadOnlyGrow { path: PathBuf, actual: u64, expected: u64 },
    /// Growing the file failed.
    #[error("virtio-blk {}: cannot grow from {actual} to {expected} bytes: {source}", .path.display())]
    Grow { path: PathBuf, actual: u64, expected: u64, source: std::io::Error },
    /// The last component of the path is a symbolic link.
    #[error("virtio-blk {}: is a symbolic link; name the disk file itself", .path.display())]
    Symlink { path: PathBuf },
    /// A writable disk that is neither new nor a spacecore's.
    #[error(
        "virtio-blk {}: an existing file that is not a spacecore disk (its first {} bytes are neither \
         zeros nor a record store); refusing to write to it. Name another path, or a new file",
        .path.display(),
        FOREIGN_CHECK_BYTES
    )]
    Foreign { path: PathBuf },
}

/// Bytes at the start of an existing writable disk that must be zeros (a new disk) or hold a
/// valid record of the store (a spacecore wrote it): the store's own region.
pub const FOREIGN_CHECK_BYTES: u64 = spacecore_store::NEEDED_SECTORS * spacecore_store::SECTOR as u64;

/// A virtio-blk device.
#[derive(Debug)]
pub struct BlockDevice {
    label: String,
    /// `None` while the worker owns it.
    disk: Option<Disk>,
    features: u64,
    config: [u8; CONFIG_LEN],
    events: Vec<EventFd>,
    counters: Arc<Counters>,
    limits: DiskLimits,
    worker: Option<Worker<Disk>>,
}

impl BlockDevice {
    /// Opens (creating it if absent) and locks the disk file `config` describes.
    pub fn open(config: &BlockConfig) -> Result<BlockDevice, DeviceError> {
        let label = format!("virtio-blk {}", config.path.display());
        let file = open_file(config)?;
        let mut id = [0u8; 20];
        let name = config.path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        let n = name.len().min(id.len());
        id[..n].copy_from_slice(&name[..n]);
        let disk = Disk { file, capacity: config.size_bytes, read_only: config.read_only, id };

        let mut features = FEATURE_VERSION_1 | 1 << VIRTIO_BLK_F_FLUSH | 1 << VIRTIO_BLK_F_SEG_MAX;
        if config.read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        let mut cfg = [0u8; CONFIG_LEN];
        cfg[0..8].copy_from_slice(&(config.size_bytes / SECTOR_SIZE).to_le_bytes());
        // seg_max: a chain needs a header and a status descriptor besides the data.
        cfg[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
        Ok(BlockDevice {
            events: new_events(&label, 1)?,
            label,
            disk: Some(disk),
            features,
            config: cfg,
            counters: Arc::default(),
            limits: DiskLimits::default(),
            worker: None,
        })
    }

    /// The same device with `limits` on what the guest may ask of it (none by default).
    pub fn with_limits(mut self, limits: DiskLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        u64::from_le_bytes(self.config[0..8].try_into().unwrap_or_default()) * SECTOR_SIZE
    }
}

fn open_file(config: &BlockConfig) -> Result<File, BlockError> {
    let path = &config.path;
    let expected = config.size_bytes;
    if expected == 0 || !expected.is_multiple_of(SECTOR_SIZE) {
        return Err(BlockError::BadSize { path: path.clone(), size: expected });
    }
    if !path.exists() {
        create_sparse(path, expected)?;
    }
    let open_err = |source| BlockError::Open { path: path.clone(), source };
    // Not through a symbolic link, and without blocking on a FIFO.
    let file = OpenOptions::new()
        .read(true)
        .write(!config.read_only)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source: std::io::Error| match source.raw_os_error() {
            Some(libc::ELOOP) => BlockError::Symlink { path: path.clone() },
            _ => open_err(source),
        })?;
    let meta = file.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(BlockError::NotAFile { path: path.clone() });
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(BlockError::Locked { path: path.clone() }),
        Err(TryLockError::Error(source)) => return Err(BlockError::Lock { path: path.clone(), source }),
    }
    // The size is checked under the lock: nobody else may be resizing it.
    let actual = file.metadata().map_err(open_err)?.len();
    if !config.read_only && !is_new_or_spacecore(&file, actual).map_err(open_err)? {
        return Err(BlockError::Foreign { path: path.clone() });
    }
    let (path, actual_len) = (path.clone(), actual);
    if actual > expected {
        return Err(BlockError::WouldShrink { path, actual, expected });
    }
    if actual < expected {
        if !config.resize {
            return Err(BlockError::SizeMismatch { path, actual, expected });
        }
        if config.read_only {
            return Err(BlockError::ReadOnlyGrow { path, actual, expected });
        }
        file.set_len(expected).map_err(|source| BlockError::Grow {
            path,
            actual: actual_len,
            expected,
            source,
        })?;
    }
    Ok(file)
}

/// Whether an existing file may be used as a writable disk: its first [`FOREIGN_CHECK_BYTES`]
/// are all zeros (a new disk, as [`create_sparse`] makes them), or the record store on it holds
/// at least one valid record (a spacecore booted from it, or `spacecore keys import` wrote it).
/// Anything else is some other file named by mistake, which must not be grown or written.
fn is_new_or_spacecore(file: &File, len: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; FOREIGN_CHECK_BYTES.min(len) as usize];
    file.read_exact_at(&mut head, 0)?;
    if head.iter().all(|&b| b == 0) {
        return Ok(true);
    }
    let Ok(mut store) = spacecore_store::Store::open(spacecore_store::FileDisk::new(file.try_clone()?)?)
    else {
        return Ok(false); // too small for the store, and not zeros
    };
    Ok(spacecore_store::RecordKey::ALL.into_iter().any(|key| matches!(store.get(key), Ok(Some(_)))))
}

/// Creates `path` (and its directories) as a sparse file of `size` bytes, readable and
/// writable by its owner only (the operator's encrypted keys live on it), unless another
/// process just did.
fn create_sparse(path: &Path, size: u64) -> Result<(), BlockError> {
    let create_err = |source| BlockError::Create { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(create_err)?;
    }
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => file.set_len(size).map_err(|e| {
            // Leave no empty file behind to be mistaken for a disk of the wrong size.
            let _ = std::fs::remove_file(path);
            create_err(e)
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(create_err(e)),
    }
}

impl VirtioDevice for BlockDevice {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    /// Every field served (capacity, size_max, seg_max) is read-only.
    fn config(&self) -> &[u8] {
        &self.config
    }

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        let Activation { mem, mut queues, notifier, .. } = activation;
        let device = || self.label.clone();
        if self.worker.is_some() {
            return Err(DeviceError::AlreadyActive { device: device() });
        }
        if queues.len() != 1 {
            return Err(DeviceError::QueueCount { device: device(), expected: 1, got: queues.len() });
        }
        let poller = Poller::new(&self.label)?;
        poller.add(&self.label, self.events[0].as_raw_fd(), QUEUE_TOKEN)?;
        let timer = worker::rate_timer(&self.label)?;
        poller.add(&self.label, timer.as_raw_fd(), TIMER_TOKEN)?;
        let event = self.events[0].try_clone().map_err(|source| DeviceError::Setup {
            device: device(),
            what: "a queue event",
            source,
        })?;
        let disk = self.disk.take().ok_or_else(|| DeviceError::BackendLost { device: device() })?;
        let queue = queues.remove(0);
        let counters = self.counters.clone();
        let throttle = Throttle::new(self.limits);
        let body = move |poller: Poller, disk: Disk| {
            let events = Events { queue: event, timer };
            serve(disk, queue, &mem, &poller, events, throttle, &notifier, &counters)
        };
        match Worker::spawn(&self.label, "virtio-blk", poller, disk, body) {
            Ok(worker) => {
                self.worker = Some(worker);
                Ok(())
            }
            Err((error, disk)) => {
                self.disk = disk;
                Err(error)
            }
        }
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.events
    }

    fn reset(&mut self) -> bool {
        if let Some(worker) = self.worker.take() {
            self.disk = worker.stop();
        }
        true
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

/// The worker's wake-ups: the guest's notification and the rate-limit timer.
struct Events {
    queue: EventFd,
    timer: TimerFd,
}

/// The worker: serves the queue whenever the guest notifies it or, after a rate limit paused
/// it, when the timer says a request may start again; until stopped.
#[allow(clippy::too_many_arguments)]
fn serve(
    disk: Disk,
    mut queue: Queue,
    mem: &Memory,
    poller: &Poller,
    mut events: Events,
    throttle: Throttle,
    notifier: &Notifier,
    counters: &Counters,
) -> Disk {
    let throttle = std::cell::RefCell::new(throttle);
    let run = |queue: &mut Queue, timer: &mut TimerFd| {
        let mut wait = None;
        let may_take = || {
            wait = throttle.borrow_mut().wait(Instant::now());
            wait.is_none()
        };
        let handle = |chain: virtio_queue::DescriptorChain<&Memory>| {
            let (len, moved) = request::process(&disk, mem, chain, counters);
            throttle.borrow_mut().charge(moved, Instant::now());
            len
        };
        match worker::drain(queue, mem, may_take, handle) {
            Ok(drained) => {
                if drained.used > 0 {
                    notifier();
                }
                if let Some(wait) = wait.filter(|_| drained.paused) {
                    bump(&counters.throttled, 1);
                    // A zero duration would disarm the timer; a limit of 1/s never waits a day.
                    let wait = wait.clamp(Duration::from_micros(1), Duration::from_secs(86_400));
                    if timer.reset(wait, None).is_err() {
                        bump(&counters.errors, 1);
                    }
                }
            }
            Err(_) => {
                // The ring itself is broken (an avail index past the queue size, unreachable
                // memory): count it and wake the guest, whose driver will see what was done.
                bump(&counters.errors, 1);
                notifier();
            }
        }
    };
    run(&mut queue, &mut events.timer);
    let mut ready = [EpollEvent::default(); 4];
    loop {
        let Ok(n) = poller.wait(&mut ready) else {
            bump(&counters.errors, 1);
            return disk;
        };
        for ev in &ready[..n] {
            match ev.data() {
                STOP_TOKEN => return disk,
                TIMER_TOKEN => {
                    let _ = events.timer.wait();
                    run(&mut queue, &mut events.timer);
                }
                _ => {
                    let _ = events.queue.read();
                    run(&mut queue, &mut events.timer);
                }
            }
        }
    }
}
