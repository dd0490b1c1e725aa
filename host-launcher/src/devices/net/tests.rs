use super::engine::{Engine, HDR_LEN, MAX_TX_LEN, RX_BATCH, RxStop};
use super::*;
use crate::devices::Notifier;
use crate::devices::test_utils::{B, add_chain, memory, notifier, used, wait};
use crate::vmm::memory::Memory;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

/// Frames queued for the guest, frames the guest sent.
type Frames = (VecDeque<Vec<u8>>, Vec<Vec<u8>>);

/// An in-memory backend: frames queued for the guest, frames the guest sent; its fd (an
/// eventfd) is readable while frames are queued.
#[derive(Debug, Clone)]
struct Fake {
    frames: Arc<Mutex<Frames>>,
    readable: Arc<EventFd>,
}

impl Fake {
    fn new() -> Self {
        Fake { frames: Arc::default(), readable: Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap()) }
    }
    fn push(&self, frame: Vec<u8>) {
        self.frames.lock().unwrap().0.push_back(frame);
        self.readable.write(1).unwrap();
    }
    fn queued(&self) -> usize {
        self.frames.lock().unwrap().0.len()
    }
    fn sent(&self) -> Vec<Vec<u8>> {
        self.frames.lock().unwrap().1.clone()
    }
}

impl AsRawFd for Fake {
    fn as_raw_fd(&self) -> RawFd {
        self.readable.as_raw_fd()
    }
}

impl FrameIo for Fake {
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut frames = self.frames.lock().unwrap();
        let Some(frame) = frames.0.pop_front() else {
            let _ = self.readable.read();
            return Err(ErrorKind::WouldBlock.into());
        };
        if frames.0.is_empty() {
            let _ = self.readable.read();
        }
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(n)
    }
    fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<usize> {
        self.frames.lock().unwrap().1.push(frame.to_vec());
        Ok(frame.len())
    }
}

const RX_RING: u64 = 0;
const TX_RING: u64 = 0x4000;
const BUF: u64 = 0x1_0000;

/// A frame: a header full of junk, then `payload_len` bytes of payload.
fn frame(payload_len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0xee; HDR_LEN];
    f.extend((0..payload_len).map(|i| (i as u8).wrapping_mul(3).wrapping_add(seed)));
    f
}

struct Rig<'m> {
    mem: &'m Memory,
    rx: MockSplitQueue<'m, Memory>,
    tx: MockSplitQueue<'m, Memory>,
    fake: Fake,
    engine: Engine,
    counters: Arc<Counters>,
}

fn rig(mem: &Arc<Memory>, limits: NetLimits) -> Rig<'_> {
    let rx = MockSplitQueue::create(&**mem, GuestAddress(RX_RING), 16);
    let tx = MockSplitQueue::create(&**mem, GuestAddress(TX_RING), 16);
    let fake = Fake::new();
    let counters = Arc::new(Counters::default());
    let engine = Engine::new(
        mem.clone(),
        rx.create_queue().unwrap(),
        tx.create_queue().unwrap(),
        Box::new(fake.clone()),
        limits.buckets(),
        counters.clone(),
    );
    Rig { mem, rx, tx, fake, engine, counters }
}

impl Rig<'_> {
    /// Puts `data` at `addr` and queues it as a TX chain of `parts` (address, length) readable
    /// buffers at descriptor index `first`.
    fn send(&self, first: u16, data: &[u8], addr: u64, parts: &[usize]) {
        self.mem.write_slice(data, GuestAddress(addr)).unwrap();
        let mut at = addr;
        let bufs: Vec<B> = parts
            .iter()
            .map(|&n| {
                let b = (at, n as u32, false);
                at += n as u64;
                b
            })
            .collect();
        add_chain(&self.tx, first, &bufs);
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

#[test]
fn tx_frames_reach_the_backend_with_a_zeroed_header() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits::default());
    let f = frame(60, 1);
    r.send(0, &f, BUF, &[HDR_LEN, 20, 40]);
    let now = Instant::now();
    assert_eq!(r.engine.tx(now), (1, None));
    let sent = r.fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0][..HDR_LEN], &[0; HDR_LEN]);
    assert_eq!(&sent[0][HDR_LEN..], &f[HDR_LEN..]);
    assert_eq!(used(&r.tx, 0), (1, (0, 0)));
    let c = r.counters.snapshot();
    assert_eq!((c.tx_packets, c.tx_bytes, c.dropped), (1, 60, 0));
}

#[test]
fn bad_tx_chains_are_dropped_and_counted() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits::default());
    // Larger than a frame can be.
    add_chain(&r.tx, 0, &[(BUF, 40_000, false), (BUF + 40_000, (MAX_TX_LEN - 40_000 + 1) as u32, false)]);
    // A device-writable buffer in a TX chain.
    add_chain(&r.tx, 2, &[(BUF, 12, false), (BUF, 60, true)]);
    // Shorter than a header and an Ethernet header.
    add_chain(&r.tx, 4, &[(BUF, 20, false)]);
    // Outside guest memory.
    add_chain(&r.tx, 5, &[(BUF, 12, false), (0xff_0000, 60, false)]);
    assert_eq!(r.engine.tx(Instant::now()), (4, None));
    assert!(r.fake.sent().is_empty());
    let c = r.counters.snapshot();
    assert_eq!((c.dropped, c.errors, c.tx_packets), (4, 1, 0));
    for i in 0..4 {
        assert_eq!(used(&r.tx, i).1.1, 0);
    }
    // The largest frame allowed passes.
    let big = frame(MAX_TX_LEN - HDR_LEN, 9);
    r.send(6, &big, BUF, &[40_000, MAX_TX_LEN - 40_000]);
    assert_eq!(r.engine.tx(Instant::now()), (1, None));
    assert_eq!(r.fake.sent()[0].len(), MAX_TX_LEN);
}

#[test]
fn rx_frames_land_in_guest_buffers_with_num_buffers_1() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits::default());
    let f = frame(100, 5);
    r.fake.push(f.clone());
    add_chain(&r.rx, 0, &[(BUF, 64, true), (BUF + 0x1000, 2048, true)]);
    assert_eq!(r.engine.rx(Instant::now()), (1, RxStop::NoBuffers));
    assert_eq!(used(&r.rx, 0), (1, (0, 112)));
    let head = r.read(BUF, 64);
    let mut hdr = [0u8; HDR_LEN];
    hdr[10] = 1;
    assert_eq!(&head[..HDR_LEN], &hdr);
    assert_eq!(&head[HDR_LEN..], &f[HDR_LEN..64]);
    assert_eq!(r.read(BUF + 0x1000, 48), &f[64..]);
    let c = r.counters.snapshot();
    assert_eq!((c.rx_packets, c.rx_bytes), (1, 100));
}

#[test]
fn rx_frames_larger_than_the_chain_are_dropped_and_the_chain_kept() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits::default());
    r.fake.push(frame(200, 0));
    r.fake.push(frame(2, 0));
    r.fake.push(vec![1, 2, 3]);
    r.fake.push(frame(20, 0));
    add_chain(&r.rx, 0, &[(BUF, 64, true)]);
    assert_eq!(r.engine.rx(Instant::now()), (1, RxStop::NoBuffers));
    assert_eq!(used(&r.rx, 0), (1, (0, 14)));
    assert_eq!(r.counters.snapshot().dropped, 1);
    // The next frame waits in the backend for a buffer.
    assert_eq!(r.fake.queued(), 2);
    add_chain(&r.rx, 1, &[(BUF, 64, true)]);
    assert_eq!(r.engine.rx(Instant::now()), (1, RxStop::NoBuffers));
    assert_eq!(r.fake.queued(), 0);
    // The headerless frame was dropped too.
    assert_eq!(used(&r.rx, 1), (2, (1, 32)));
    assert_eq!(r.counters.snapshot().dropped, 2);
}

#[test]
fn rx_without_buffers_leaves_frames_queued() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits::default());
    r.fake.push(frame(50, 0));
    assert_eq!(r.engine.rx(Instant::now()), (0, RxStop::NoBuffers));
    assert_eq!(r.fake.queued(), 1);
    // And with buffers but no frames, nothing is used.
    r.fake.frames.lock().unwrap().0.clear();
    add_chain(&r.rx, 0, &[(BUF, 2048, true)]);
    assert_eq!(r.engine.rx(Instant::now()), (0, RxStop::Drained));
    assert_eq!(r.rx.used().idx().load(), 0);
}

#[test]
fn bad_rx_chains_are_returned_empty() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits::default());
    r.fake.push(frame(50, 0));
    r.fake.push(frame(50, 0));
    add_chain(&r.rx, 0, &[(0xff_f000, 0x2000, true)]);
    add_chain(&r.rx, 1, &[(BUF, 12, false), (BUF + 12, 2048, true)]);
    assert_eq!(r.engine.rx(Instant::now()), (2, RxStop::NoBuffers));
    assert_eq!(used(&r.rx, 0).1, (0, 0));
    assert_eq!(used(&r.rx, 1).1, (1, 0));
    let c = r.counters.snapshot();
    assert_eq!((c.errors, c.dropped, c.rx_packets), (2, 2, 0));
}

#[test]
fn rx_stops_after_a_batch() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits::default());
    let rx = MockSplitQueue::create(&*mem, GuestAddress(0x8000), 128);
    r.engine.rx = rx.create_queue().unwrap();
    for i in 0..(RX_BATCH + 1) as u16 {
        r.fake.push(frame(10, 0));
        add_chain(&rx, i, &[(BUF + u64::from(i) * 64, 64, true)]);
    }
    assert_eq!(r.engine.rx(Instant::now()), (RX_BATCH, RxStop::Batch));
    assert_eq!(r.engine.rx(Instant::now()), (1, RxStop::NoBuffers));
}

#[test]
fn egress_limit_delays_tx() {
    let mem = memory();
    // 1000 bytes/s, burst 64 KiB.
    let mut r = rig(&mem, NetLimits { egress_bps: 8000, ..NetLimits::default() });
    let f = frame(40_000 - HDR_LEN, 0);
    r.send(0, &f, BUF, &[f.len()]);
    r.send(1, &f, BUF, &[f.len()]);
    let now = Instant::now();
    // The first fits the burst; the second needs 40000 - 25536 more bytes: 14.464 s.
    assert_eq!(r.engine.tx(now), (1, Some(Duration::from_millis(14_464))));
    assert_eq!(r.fake.sent().len(), 1);
    assert_eq!(r.tx.used().idx().load(), 1);
    assert_eq!(r.counters.snapshot().tx_throttled, 1);
    assert_eq!(r.engine.tx(now + Duration::from_secs(14)).1, Some(Duration::from_millis(464)));
    assert_eq!(r.engine.tx(now + Duration::from_millis(14_464)), (1, None));
    assert_eq!(r.fake.sent().len(), 2);
}

#[test]
fn ingress_limit_leaves_frames_in_the_backend() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits { ingress_bps: 8000, ..NetLimits::default() });
    for _ in 0..3 {
        r.fake.push(frame(40_000 - HDR_LEN, 0));
    }
    add_chain(&r.rx, 0, &[(BUF, 40_000, true)]);
    add_chain(&r.rx, 1, &[(BUF + 0x1_0000, 40_000, true)]);
    add_chain(&r.rx, 2, &[(BUF + 0x2_0000, 40_000, true)]);
    let now = Instant::now();
    // Two frames: the second is taken on the last tokens and leaves a debt of 14464 bytes.
    assert_eq!(r.engine.rx(now), (2, RxStop::Throttled(Duration::from_millis(14_465))));
    assert_eq!(r.fake.queued(), 1);
    assert_eq!(r.counters.snapshot().rx_throttled, 1);
    // The third frame leaves a debt of 39999 bytes.
    let later = now + Duration::from_millis(14_465);
    assert_eq!(r.engine.rx(later), (1, RxStop::Throttled(Duration::from_secs(40))));
    assert_eq!(r.fake.queued(), 0);
}

#[test]
fn bandwidth_is_shared_by_both_directions() {
    let mem = memory();
    let mut r = rig(&mem, NetLimits { bandwidth_bps: 8000, ..NetLimits::default() });
    let f = frame(60_000 - HDR_LEN, 0);
    r.send(0, &f, BUF, &[f.len()]);
    let now = Instant::now();
    assert_eq!(r.engine.tx(now), (1, None));
    r.fake.push(frame(40_000 - HDR_LEN, 0));
    r.fake.push(frame(100, 0));
    add_chain(&r.rx, 0, &[(BUF, 40_000, true)]);
    add_chain(&r.rx, 1, &[(BUF + 0x1_0000, 40_000, true)]);
    // 5536 tokens left: one frame passes into debt, then receiving waits.
    let (n, stop) = r.engine.rx(now);
    assert_eq!(n, 1);
    assert!(matches!(stop, RxStop::Throttled(_)), "{stop:?}");
}

/// The activation of a device on `queues` in `mem`.
fn activation(mem: &Arc<Memory>, queues: Vec<Queue>, acked_features: u64, notifier: Notifier) -> Activation {
    Activation { mem: mem.clone(), queues, acked_features, notifier }
}

#[test]
fn the_device_serves_both_queues_on_its_worker() {
    let mem = memory();
    let fake = Fake::new();
    let mac = [0x02, 0x53, 0x50, 0, 0, 1];
    let mut dev =
        NetDevice::with_backend(Box::new(fake.clone()), "fake0", mac, NetLimits::default()).unwrap();
    assert_eq!(dev.device_type(), 1);
    let mut config = [0u8; 8];
    dev.read_config(0, &mut config);
    assert_eq!(config, [0x02, 0x53, 0x50, 0, 0, 1, 1, 0]);
    assert_eq!(dev.features(), FEATURE_VERSION_1 | 1 << 5 | 1 << 16);
    let rx = MockSplitQueue::create(&*mem, GuestAddress(RX_RING), 16);
    let tx = MockSplitQueue::create(&*mem, GuestAddress(TX_RING), 16);
    let (notify, woken) = notifier();
    let queues = vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()];
    dev.activate(activation(&mem, queues, dev.features(), notify)).unwrap();

    let f = frame(50, 3);
    mem.write_slice(&f, GuestAddress(BUF)).unwrap();
    add_chain(&tx, 0, &[(BUF, f.len() as u32, false)]);
    dev.queue_events()[1].write(1).unwrap();
    wait(&woken);
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(used(&tx, 0).0, 1);

    add_chain(&rx, 0, &[(BUF + 0x1000, 2048, true)]);
    dev.queue_events()[0].write(1).unwrap();
    fake.push(frame(70, 1));
    wait(&woken);
    assert_eq!(used(&rx, 0), (1, (0, 82)));

    // No buffers left: the next frame waits until the guest adds one and notifies.
    fake.push(frame(30, 1));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fake.queued(), 1);
    add_chain(&rx, 1, &[(BUF + 0x2000, 2048, true)]);
    dev.queue_events()[0].write(1).unwrap();
    wait(&woken);
    assert_eq!(used(&rx, 1), (2, (1, 42)));
    assert_eq!(dev.counters().snapshot().rx_packets, 2);

    assert!(dev.reset());
    let again = vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()];
    let (notify, _) = notifier();
    dev.activate(activation(&mem, again, dev.features(), notify)).unwrap();
    assert!(matches!(
        dev.activate(activation(&mem, vec![], 0, notifier().0)),
        Err(DeviceError::AlreadyActive { .. })
    ));
    assert!(dev.reset());
    assert!(matches!(
        dev.activate(activation(&mem, vec![], 0, notifier().0)),
        Err(DeviceError::QueueCount { got: 0, .. })
    ));
}

#[test]
fn the_worker_resumes_throttled_tx_on_its_timer() {
    let mem = memory();
    let fake = Fake::new();
    // 1 MB/s, burst 100 kB: the second 60 kB frame waits about 20 ms.
    let limits = NetLimits { egress_bps: 8_000_000, ..NetLimits::default() };
    let mut dev =
        NetDevice::with_backend(Box::new(fake.clone()), "fake0", [2, 0, 0, 0, 0, 1], limits).unwrap();
    let rx = MockSplitQueue::create(&*mem, GuestAddress(RX_RING), 16);
    let tx = MockSplitQueue::create(&*mem, GuestAddress(TX_RING), 16);
    let (notify, woken) = notifier();
    dev.activate(activation(&mem, vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()], 0, notify))
        .unwrap();
    let f = frame(60_000 - HDR_LEN, 0);
    mem.write_slice(&f, GuestAddress(BUF)).unwrap();
    add_chain(&tx, 0, &[(BUF, f.len() as u32, false)]);
    add_chain(&tx, 1, &[(BUF, f.len() as u32, false)]);
    let start = Instant::now();
    dev.queue_events()[1].write(1).unwrap();
    wait(&woken);
    wait(&woken);
    assert!(start.elapsed() >= Duration::from_millis(15), "{:?}", start.elapsed());
    assert_eq!(fake.sent().len(), 2);
    assert_eq!(used(&tx, 1).0, 2);
    assert_eq!(dev.counters().snapshot().tx_throttled, 1);
}

/// A backend whose reads fail.
#[derive(Debug)]
struct Broken(EventFd);

impl AsRawFd for Broken {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl FrameIo for Broken {
    fn read_frame(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    }
    fn write_frame(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    }
}

#[test]
fn a_failing_backend_is_backed_off_and_its_frames_dropped() {
    let mem = memory();
    let rx = MockSplitQueue::create(&*mem, GuestAddress(RX_RING), 16);
    let tx = MockSplitQueue::create(&*mem, GuestAddress(TX_RING), 16);
    let counters = Arc::new(Counters::default());
    let broken = Box::new(Broken(EventFd::new(libc::EFD_NONBLOCK).unwrap()));
    let buckets = NetLimits::default().buckets();
    let mut engine = Engine::new(
        mem.clone(),
        rx.create_queue().unwrap(),
        tx.create_queue().unwrap(),
        broken,
        buckets,
        counters,
    );
    add_chain(&rx, 0, &[(BUF, 2048, true)]);
    let (n, stop) = engine.rx(Instant::now());
    assert_eq!(n, 0);
    assert!(matches!(stop, RxStop::Throttled(d) if d >= Duration::from_millis(10)), "{stop:?}");
    let f = frame(50, 0);
    mem.write_slice(&f, GuestAddress(BUF)).unwrap();
    add_chain(&tx, 0, &[(BUF, f.len() as u32, false)]);
    assert_eq!(engine.tx(Instant::now()), (1, None));
    let c = engine.counters().snapshot();
    assert_eq!((c.errors, c.dropped, c.tx_packets), (1, 1, 0));
}
