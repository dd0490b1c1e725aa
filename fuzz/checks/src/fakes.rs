//! The devices and backends the device targets run: the launcher's block device over a small
//! disk in `/dev/shm`, its network device over an in-memory [`FrameIo`], and a fake
//! [`VirtioDevice`] for the MMIO transport that checks what the transport asks of it.
//!
//! The block and network devices are made once per process and reused (they are reset after
//! every case); the disk is zeroed before every case so that each case runs the same way alone
//! and in a long run.

use std::collections::VecDeque;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use host_launcher::devices::{
    Activation, BlockConfig, BlockDevice, Counters, DeviceError, FrameIo, NetDevice, NetLimits, TYPE_NET,
    VirtioDevice,
};
use host_launcher::vmm::memory::Memory;
use virtio_queue::QueueT;
use vmm_sys_util::eventfd::EventFd;

/// Size of the fuzzed disk: 32 sectors.
pub const DISK_LEN: u64 = 16 << 10;

/// A block device (`.0`) and a second handle on its file, which is already unlinked.
pub type Disk = (BlockDevice, File);

/// The block device of the `block_request` target, read-only or not, with its disk zeroed.
pub fn block_device(read_only: bool) -> MutexGuard<'static, Disk> {
    static DISKS: [OnceLock<Mutex<Disk>>; 2] = [OnceLock::new(), OnceLock::new()];
    let disk = DISKS[usize::from(read_only)].get_or_init(|| Mutex::new(open_disk(read_only)));
    let guard = disk.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.1.write_all_at(&[0; DISK_LEN as usize], 0).expect("zeroing the fuzz disk");
    guard
}

fn open_disk(read_only: bool) -> Disk {
    // tmpfs: FLUSH requests cost nothing there.
    let shm = PathBuf::from("/dev/shm");
    let dir = if shm.is_dir() { shm } else { std::env::temp_dir() };
    let path = dir.join(format!("spacecore-fuzz-{}-{}.img", std::process::id(), u8::from(read_only)));
    let config = BlockConfig { path: path.clone(), size_bytes: DISK_LEN, read_only, resize: false };
    let device = BlockDevice::open(&config).expect("opening the fuzz disk");
    let file = File::options().read(true).write(true).open(&path).expect("opening the fuzz disk");
    // Both handles keep the file; nothing is left behind when the process ends.
    std::fs::remove_file(&path).expect("unlinking the fuzz disk");
    (device, file)
}

/// Frames the guest sent, as the backend received them.
pub type Sent = Arc<Mutex<Vec<Vec<u8>>>>;
/// Frames for the guest, each with its 12-byte virtio-net header, as a tap hands them over.
pub type Incoming = Arc<Mutex<VecDeque<Vec<u8>>>>;

/// A [`FrameIo`] that hands over the frames queued in [`Incoming`] and keeps what is sent.
#[derive(Debug)]
pub struct Frames {
    sent: Sent,
    incoming: Incoming,
    /// Never readable: the device reads frames when its worker starts, before it polls.
    fd: EventFd,
}

impl AsRawFd for Frames {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl FrameIo for Frames {
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut incoming = self.incoming.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let frame = incoming.pop_front().ok_or(ErrorKind::WouldBlock)?;
        // A tap cuts a frame longer than the buffer in the same way.
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(n)
    }

    fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<usize> {
        self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(frame.to_vec());
        Ok(frame.len())
    }
}

/// The network device of the `net_tx` and `net_rx` targets (no rate limits), what it has sent
/// and what it is to receive, both emptied.
pub fn net_device() -> (MutexGuard<'static, NetDevice>, Sent, Incoming) {
    static NET: OnceLock<(Mutex<NetDevice>, Sent, Incoming)> = OnceLock::new();
    let (device, sent, incoming) = NET.get_or_init(|| {
        let sent = Sent::default();
        let incoming = Incoming::default();
        let fd = EventFd::new(libc::EFD_NONBLOCK).expect("an eventfd");
        let backend = Box::new(Frames { sent: sent.clone(), incoming: incoming.clone(), fd });
        let device = NetDevice::with_backend(backend, "fuzz", [2, 0, 0, 0, 0, 1], NetLimits::default())
            .expect("a network device");
        (Mutex::new(device), sent, incoming)
    });
    let device = device.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    incoming.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    (device, sent.clone(), incoming.clone())
}

/// Features the fake device offers: `VIRTIO_F_VERSION_1` and one more.
pub const FAKE_FEATURES: u64 = 1 << 32 | 1 << 5;
/// Its queues' maximum sizes.
pub const FAKE_QUEUES: [u16; 2] = [16, 256];

/// What the fake device has been asked, shared with the target.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Activated and not reset since.
    pub active: bool,
    /// Successful activations.
    pub activations: u64,
}

/// A network-typed device that serves nothing. It fails activation or reset when told to, and
/// panics (so the target fails) if the transport activates it twice, or with queues or features
/// the driver could not have set up correctly.
#[derive(Debug)]
pub struct FakeDevice {
    /// Refuse every activation.
    pub fail_activate: bool,
    /// Refuse every reset.
    pub fail_reset: bool,
    /// Shared with the target.
    pub state: Arc<Mutex<FakeState>>,
    config: [u8; 8],
    events: Vec<EventFd>,
    counters: Arc<Counters>,
    mem: Arc<Memory>,
}

impl FakeDevice {
    /// A fake device over `mem` (the memory its queues must be valid in).
    pub fn new(mem: Arc<Memory>, fail_activate: bool, fail_reset: bool) -> Self {
        let events = (0..FAKE_QUEUES.len()).map(|_| EventFd::new(libc::EFD_NONBLOCK).expect("an eventfd"));
        FakeDevice {
            fail_activate,
            fail_reset,
            state: Arc::default(),
            config: [7; 8],
            events: events.collect(),
            counters: Arc::default(),
            mem,
        }
    }
}

impl VirtioDevice for FakeDevice {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn features(&self) -> u64 {
        FAKE_FEATURES
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &FAKE_QUEUES
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 && data.len() == 1 {
            self.config[0] = data[0];
        }
    }

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        let Activation { mem, queues, acked_features, notifier } = activation;
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(!state.active, "activated while active");
        assert!(Arc::ptr_eq(&mem, &self.mem), "activated with other memory");
        assert_eq!(queues.len(), FAKE_QUEUES.len(), "activated with {} queues", queues.len());
        for (q, max) in queues.iter().zip(FAKE_QUEUES) {
            let size = q.size();
            assert!(size.is_power_of_two() && size <= max, "queue of size {size}, max {max}");
            assert!(q.ready() && q.is_valid(&*mem), "activated with a queue that is not ready and valid");
        }
        assert_eq!(acked_features & !FAKE_FEATURES, 0, "features acked that were not offered");
        assert_ne!(acked_features & 1 << 32, 0, "VIRTIO_F_VERSION_1 not acked");
        if self.fail_activate {
            return Err(DeviceError::AlreadyActive { device: "fake".into() });
        }
        state.active = true;
        state.activations += 1;
        // As a device does after using buffers: the transport must report it in InterruptStatus.
        notifier();
        Ok(())
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.events
    }

    fn reset(&mut self) -> bool {
        if self.fail_reset {
            return false;
        }
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).active = false;
        true
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}
