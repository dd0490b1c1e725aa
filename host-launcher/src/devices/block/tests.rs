use super::*;
use crate::devices::mmio::MmioTransport;
use crate::devices::test_utils::{B, add_chain, add_raw, memory, notifier, used, wait};
use std::os::unix::fs::{FileExt, MetadataExt};
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::QueueOwnedT;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

const MIB: u64 = 1024 * 1024;
const HDR: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
const STATUS: u64 = 0x3_0000;

fn config(dir: &tempfile::TempDir, name: &str, size: u64) -> BlockConfig {
    BlockConfig { path: dir.path().join(name), size_bytes: size, read_only: false, resize: false }
}

fn open(cfg: &BlockConfig) -> BlockDevice {
    BlockDevice::open(cfg).unwrap()
}

fn block_err(cfg: &BlockConfig) -> BlockError {
    match BlockDevice::open(cfg) {
        Err(DeviceError::Block(e)) => e,
        other => panic!("expected a block error, got {other:?}"),
    }
}

/// Runs one request made of `bufs` (header written from `kind`/`sector` at HDR); returns the
/// used length and the status byte (0xff if untouched).
fn request(dev: &BlockDevice, kind: u32, sector: u64, bufs: &[B]) -> (u32, u8) {
    let mem = memory();
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&kind.to_le_bytes());
    header[8..].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&header, GuestAddress(HDR)).unwrap();
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    run(dev, &mem, |vq| add_chain(vq, 0, bufs))
}

fn run(dev: &BlockDevice, mem: &Memory, build: impl FnOnce(&MockSplitQueue<'_, Memory>)) -> (u32, u8) {
    let vq = MockSplitQueue::new(mem, 16);
    build(&vq);
    let mut q: Queue = vq.create_queue().unwrap();
    let chain = q.iter(mem).unwrap().next().unwrap();
    let (len, _) = request::process(dev.disk.as_ref().unwrap(), mem, chain, &dev.counters);
    (len, mem.read_obj(GuestAddress(STATUS)).unwrap())
}

fn hdr() -> B {
    (HDR, 16, false)
}
fn status() -> B {
    (STATUS, 1, true)
}

#[test]
fn a_missing_file_is_created_sparse_with_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, "a/b/disk.raw", 1024 * MIB);
    cfg.path = dir.path().join("a/b/disk.raw");
    let dev = open(&cfg);
    let meta = std::fs::metadata(&cfg.path).unwrap();
    assert_eq!(meta.len(), 1024 * MIB);
    assert!(meta.blocks() < 64, "{} blocks allocated", meta.blocks());
    assert_eq!(dev.capacity(), 1024 * MIB);
    let mut cap = [0u8; 8];
    dev.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 2 * 1024 * 1024);
    let mut past = [1u8; 4];
    dev.read_config(64, &mut past);
    assert_eq!(past, [0; 4]);
    assert_eq!(dev.features() & (1 << VIRTIO_BLK_F_RO), 0);
    assert_ne!(dev.features() & (1 << VIRTIO_BLK_F_FLUSH), 0);
    assert_ne!(dev.features() & FEATURE_VERSION_1, 0);
    assert_eq!(dev.device_type(), 2);
}

#[test]
fn sizes_must_be_whole_sectors() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 1000] {
        assert!(matches!(block_err(&config(&dir, "d", size)), BlockError::BadSize { .. }));
    }
}

#[test]
fn an_existing_file_of_another_size_is_refused_unless_grown() {
    let dir = tempfile::tempdir().unwrap();
    let small = config(&dir, "disk", MIB);
    drop(open(&small));
    let mut big = config(&dir, "disk", 2 * MIB);
    let e = block_err(&big).to_string();
    assert!(e.contains("disk: is 1048576 bytes but the spec says 2097152; set resize to grow it"), "{e}");
    big.resize = true;
    drop(open(&big));
    assert_eq!(std::fs::metadata(&big.path).unwrap().len(), 2 * MIB);

    // Shrinking is never done, resize or not.
    let mut shrink = config(&dir, "disk", MIB);
    shrink.resize = true;
    assert!(matches!(block_err(&shrink), BlockError::WouldShrink { actual, expected, .. }
        if actual == 2 * MIB && expected == MIB));
    assert_eq!(std::fs::metadata(&big.path).unwrap().len(), 2 * MIB);

    let mut ro = config(&dir, "disk", 4 * MIB);
    ro.resize = true;
    ro.read_only = true;
    assert!(matches!(block_err(&ro), BlockError::ReadOnlyGrow { .. }));
}

#[test]
fn a_directory_is_not_a_disk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let e = block_err(&config(&dir, "d", MIB));
    assert!(matches!(e, BlockError::Open { .. } | BlockError::NotAFile { .. }), "{e}");
}

#[test]
fn two_devices_cannot_share_a_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "shared.raw", MIB);
    let first = open(&cfg);
    let e = block_err(&cfg);
    assert!(matches!(e, BlockError::Locked { .. }));
    assert!(e.to_string().contains("shared.raw") && e.to_string().contains("in use"), "{e}");
    drop(first);
    drop(open(&cfg));
}

#[test]
fn write_then_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "rw", MIB);
    let dev = open(&cfg);
    let mem = memory();
    let pattern: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
    mem.write_slice(&pattern, GuestAddress(DATA)).unwrap();
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&VIRTIO_BLK_T_OUT.to_le_bytes());
    header[8..].copy_from_slice(&2u64.to_le_bytes());
    mem.write_slice(&header, GuestAddress(HDR)).unwrap();
    let out = [hdr(), (DATA, 512, false), (DATA + 512, 512, false), status()];
    assert_eq!(run(&dev, &mem, |vq| add_chain(vq, 0, &out)), (1, VIRTIO_BLK_S_OK as u8));
    let mut on_disk = vec![0u8; 1024];
    File::open(&cfg.path).unwrap().read_exact_at(&mut on_disk, 1024).unwrap();
    assert_eq!(on_disk, pattern);

    header[..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
    mem.write_slice(&header, GuestAddress(HDR)).unwrap();
    let back = 0x5_0000;
    let input = [hdr(), (back, 1024, true), status()];
    assert_eq!(run(&dev, &mem, |vq| add_chain(vq, 0, &input)), (1025, VIRTIO_BLK_S_OK as u8));
    let mut read = vec![0u8; 1024];
    mem.read_slice(&mut read, GuestAddress(back)).unwrap();
    assert_eq!(read, pattern);

    let c = dev.counters().snapshot();
    assert_eq!((c.requests, c.bytes_written, c.bytes_read, c.errors), (2, 1024, 1024, 0));
}

#[test]
fn flush_and_get_id() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(&config(&dir, "a-rather-long-disk-name.raw", MIB));
    assert_eq!(request(&dev, VIRTIO_BLK_T_FLUSH, 0, &[hdr(), status()]), (1, VIRTIO_BLK_S_OK as u8));
    let one_buffer = request(&dev, VIRTIO_BLK_T_GET_ID, 0, &[hdr(), (DATA, 20, true), status()]);
    assert_eq!(one_buffer, (21, VIRTIO_BLK_S_OK as u8));
    // The id split over two buffers, the second larger than needed.
    let mem = memory();
    let mut id = [0u8; 20];
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&VIRTIO_BLK_T_GET_ID.to_le_bytes());
    mem.write_slice(&header, GuestAddress(HDR)).unwrap();
    let bufs = [hdr(), (DATA, 8, true), (DATA + 8, 64, true), status()];
    assert_eq!(run(&dev, &mem, |vq| add_chain(vq, 0, &bufs)), (21, VIRTIO_BLK_S_OK as u8));
    mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id, b"a-rather-long-disk-n");
}

#[test]
fn unknown_requests_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(&config(&dir, "d", MIB));
    assert_eq!(request(&dev, 11, 0, &[hdr(), (DATA, 512, false), status()]), (1, VIRTIO_BLK_S_UNSUPP as u8));
}

#[test]
fn requests_past_the_end_or_overflowing_fail() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(&config(&dir, "d", MIB));
    let last = MIB / 512 - 1;
    let ioerr = (1, VIRTIO_BLK_S_IOERR as u8);
    let two_sectors = [hdr(), (DATA, 1024, true), status()];
    assert_eq!(request(&dev, VIRTIO_BLK_T_IN, last, &two_sectors), ioerr);
    assert_eq!(request(&dev, VIRTIO_BLK_T_IN, last, &[hdr(), (DATA, 512, true), status()]).1, 0);
    assert_eq!(request(&dev, VIRTIO_BLK_T_IN, u64::MAX / 256, &two_sectors), ioerr);
    assert_eq!(request(&dev, VIRTIO_BLK_T_IN, u64::MAX / 512, &two_sectors), ioerr);
    assert_eq!(request(&dev, VIRTIO_BLK_T_OUT, u64::MAX, &[hdr(), (DATA, 512, false), status()]), ioerr);
    // Not a whole number of sectors.
    assert_eq!(request(&dev, VIRTIO_BLK_T_IN, 0, &[hdr(), (DATA, 100, true), status()]), ioerr);
    assert_eq!(dev.counters().snapshot().errors, 5);
}

#[test]
fn a_read_only_disk_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, "ro", MIB);
    drop(open(&cfg));
    std::fs::write(&cfg.path, vec![0x5a; MIB as usize]).unwrap();
    cfg.read_only = true;
    let dev = open(&cfg);
    assert_ne!(dev.features() & (1 << VIRTIO_BLK_F_RO), 0);
    let out = [hdr(), (DATA, 512, false), status()];
    assert_eq!(request(&dev, VIRTIO_BLK_T_OUT, 0, &out), (1, VIRTIO_BLK_S_IOERR as u8));
    assert!(std::fs::read(&cfg.path).unwrap().iter().all(|&b| b == 0x5a));
    assert_eq!(request(&dev, VIRTIO_BLK_T_IN, 0, &[hdr(), (DATA, 512, true), status()]), (513, 0));
}

#[test]
fn wrong_shapes_get_ioerr() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(&config(&dir, "d", MIB));
    let ioerr = (1, VIRTIO_BLK_S_IOERR as u8);
    // Data in the wrong direction.
    assert_eq!(request(&dev, VIRTIO_BLK_T_IN, 0, &[hdr(), (DATA, 512, false), status()]), ioerr);
    assert_eq!(request(&dev, VIRTIO_BLK_T_OUT, 0, &[hdr(), (DATA, 512, true), status()]), ioerr);
    // Header too short, or writable.
    assert_eq!(request(&dev, VIRTIO_BLK_T_FLUSH, 0, &[(HDR, 8, false), status()]), ioerr);
    assert_eq!(request(&dev, VIRTIO_BLK_T_FLUSH, 0, &[(HDR, 16, true), status()]), ioerr);
    // Only a status.
    assert_eq!(request(&dev, VIRTIO_BLK_T_FLUSH, 0, &[status()]), ioerr);
}

#[test]
fn chains_without_a_status_are_returned_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(&config(&dir, "d", MIB));
    let untouched = (0, 0xff);
    assert_eq!(request(&dev, VIRTIO_BLK_T_FLUSH, 0, &[hdr()]), untouched);
    assert_eq!(request(&dev, VIRTIO_BLK_T_OUT, 0, &[hdr(), (DATA, 512, false)]), untouched);
    assert_eq!(request(&dev, VIRTIO_BLK_T_FLUSH, 0, &[hdr(), (STATUS, 0, true)]), untouched);
}

#[test]
fn buffers_outside_guest_memory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "d", MIB);
    let dev = open(&cfg);
    for addr in [0x10_0000 - 256, 0x10_0000, 0xffff_ffff_ffff_fe00] {
        let r = request(&dev, VIRTIO_BLK_T_IN, 0, &[hdr(), (addr, 512, true), status()]);
        assert_eq!(r, (0, 0xff), "{addr:#x}");
        let r = request(&dev, VIRTIO_BLK_T_OUT, 0, &[hdr(), (addr, 512, false), status()]);
        assert_eq!(r, (0, 0xff), "{addr:#x}");
    }
    assert_eq!(
        request(&dev, VIRTIO_BLK_T_IN, 0, &[hdr(), (DATA, 512, true), (0x20_0000, 1, true)]),
        (0, 0xff)
    );
    assert_eq!(dev.counters().snapshot().errors, 7);
}

#[test]
fn looping_and_dangling_chains_are_returned_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(&config(&dir, "d", MIB));
    let mem = memory();
    let (next, write) = (VRING_DESC_F_NEXT as u16, VRING_DESC_F_WRITE as u16);
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    // 0 -> 1 -> 0 -> ...
    let looping = [(HDR, 16, next, 1), (STATUS, 1, write | next, 0)];
    assert_eq!(run(&dev, &mem, |vq| add_raw(vq, 0, &looping)), (0, 0xff));
    // Next index past the table.
    let dangling = [(HDR, 16, next, 200)];
    assert_eq!(run(&dev, &mem, |vq| add_raw(vq, 0, &dangling)), (0, 0xff));
}

/// `dev` behind an MMIO transport that a driver has set up with `vq` as its queue and started.
fn activated(
    dev: BlockDevice,
    mem: &Arc<Memory>,
    vq: &MockSplitQueue<'_, Memory>,
    notify: Notifier,
) -> MmioTransport {
    let mut t = MmioTransport::new(Box::new(dev), mem.clone(), notify, 0xd000_0000);
    let w = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());
    w(&mut t, 0x70, 1);
    w(&mut t, 0x70, 3);
    w(&mut t, 0x24, 1);
    w(&mut t, 0x20, 1);
    w(&mut t, 0x70, 11);
    w(&mut t, 0x38, 16);
    for (reg, addr) in [(0x80, vq.desc_table_addr()), (0x90, vq.avail_addr()), (0xa0, vq.used_addr())] {
        w(&mut t, reg, addr.0 as u32);
        w(&mut t, reg + 4, 0);
    }
    w(&mut t, 0x44, 1);
    w(&mut t, 0x70, 15);
    assert!(t.is_active(), "{:?}", t.take_error());
    t
}

/// Makes `n` FLUSH requests available on `vq`, each with its own header and status byte.
fn flushes(mem: &Memory, vq: &MockSplitQueue<'_, Memory>, n: u16) {
    for i in 0..n {
        let (header, status) = (HDR + 16 * u64::from(i), STATUS + u64::from(i));
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&VIRTIO_BLK_T_FLUSH.to_le_bytes());
        mem.write_slice(&raw, GuestAddress(header)).unwrap();
        mem.write_obj(0xffu8, GuestAddress(status)).unwrap();
        add_chain(vq, 2 * i, &[(header, 16, false), (status, 1, true)]);
    }
}

#[test]
fn the_request_limit_pauses_draining_until_its_budget_refills() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(&config(&dir, "d", MIB));
    let mem = memory();
    let vq = MockSplitQueue::new(&*mem, 16);
    flushes(&mem, &vq, 6);
    let mut q: Queue = vq.create_queue().unwrap();
    // 20 requests/s: a budget of 2, refilled one every 50 ms.
    let throttle = std::cell::RefCell::new(Throttle::new(DiskLimits { iops: 20, bytes_per_s: 0 }));
    let t0 = Instant::now();
    let pass = |at: Instant, q: &mut Queue| {
        let mut wait = None;
        let may_take = || {
            wait = throttle.borrow_mut().wait(at);
            wait.is_none()
        };
        let handle = |chain: virtio_queue::DescriptorChain<&Memory>| {
            let (len, moved) = request::process(dev.disk.as_ref().unwrap(), &mem, chain, &dev.counters);
            throttle.borrow_mut().charge(moved, at);
            len
        };
        let drained = worker::drain(q, &mem, may_take, handle).unwrap();
        (drained, wait)
    };
    let (drained, wait) = pass(t0, &mut q);
    assert_eq!(drained, worker::Drained { used: 2, paused: true });
    assert_eq!(wait, Some(Duration::from_millis(50)));
    assert_eq!(vq.used().idx().load(), 2, "the third request was taken");
    // Too early: nothing.
    assert_eq!(pass(t0 + Duration::from_millis(49), &mut q).0.used, 0);
    let (drained, _) = pass(t0 + Duration::from_millis(50), &mut q);
    assert_eq!(drained, worker::Drained { used: 1, paused: true });
    // A second later the budget is full again (2, not 20): two more, then paused.
    assert_eq!(pass(t0 + Duration::from_secs(1), &mut q).0.used, 2);
    let (drained, _) = pass(t0 + Duration::from_secs(2), &mut q);
    assert_eq!(drained, worker::Drained { used: 1, paused: false }, "the last one, then an empty ring");
    for i in 0..6 {
        assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS + i)).unwrap(), 0, "request {i}");
    }
}

#[test]
fn the_bandwidth_limit_charges_a_large_request_in_full() {
    // 10 KiB/s with a budget of 1 KiB: a 4 KiB read passes on a full budget and leaves 3 KiB
    // of debt, so the next request waits (1 + 3072) bytes' worth: about 300 ms.
    let mut throttle = Throttle::new(DiskLimits { iops: 0, bytes_per_s: 10_240 });
    let t0 = Instant::now();
    assert_eq!(throttle.wait(t0), None);
    throttle.charge(4096, t0);
    let wait = throttle.wait(t0).expect("in debt");
    assert_eq!(wait.as_nanos(), (3073 * 1_000_000_000u128).div_ceil(10_240), "{wait:?}");
    assert_eq!(throttle.wait(t0 + wait), None);
    // No limits: never waits.
    let mut free = Throttle::new(DiskLimits::default());
    free.charge(u64::MAX, t0);
    assert_eq!(free.wait(t0), None);
}

#[test]
fn a_throttled_worker_serves_the_rest_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    // 10 requests/s, a budget of one: the guest's notification serves the first request and the
    // worker's timer must serve the others, the guest never notifying again.
    let dev = open(&config(&dir, "d", MIB)).with_limits(DiskLimits { iops: 10, bytes_per_s: 0 });
    let counters = dev.counters();
    let mem = memory();
    let (notify, woken) = notifier();
    let vq = MockSplitQueue::new(&*mem, 16);
    let mut t = activated(dev, &mem, &vq, notify);
    flushes(&mem, &vq, 3);
    t.write(0x50, &0u32.to_le_bytes());
    while vq.used().idx().load() < 3 {
        wait(&woken);
    }
    for i in 0..3 {
        assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS + i)).unwrap(), 0, "request {i}");
    }
    let seen = counters.snapshot();
    assert_eq!(seen.requests, 3);
    assert!(seen.throttled >= 2, "{seen:?}");
    drop(t);
}

#[test]
fn mmio_driver_gets_its_requests_served_by_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "e2e", MIB);
    let dev = open(&cfg);
    let counters = dev.counters();
    let mem = memory();
    let (notify, woken) = notifier();
    let vq = MockSplitQueue::new(&*mem, 16);
    let mut t = activated(dev, &mem, &vq, notify);
    let w = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());

    // A write past the record store's sectors (data there is the guest's own business; the
    // store's region decides whether the file is a spacecore disk when it is opened again).
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&VIRTIO_BLK_T_OUT.to_le_bytes());
    header[8..].copy_from_slice(&(FOREIGN_CHECK_BYTES / SECTOR_SIZE).to_le_bytes());
    mem.write_slice(&header, GuestAddress(HDR)).unwrap();
    mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    add_chain(&vq, 0, &[hdr(), (DATA, 512, false), status()]);
    w(&mut t, 0x50, 0);
    wait(&woken);
    assert_eq!(used(&vq, 0), (1, (0, 1)));
    assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0);
    let mut first = [0u8; 512];
    File::open(&cfg.path).unwrap().read_exact_at(&mut first, FOREIGN_CHECK_BYTES).unwrap();
    assert_eq!(first, [0xab; 512]);
    assert_eq!(counters.snapshot().bytes_written, 512);
    let mut status_reg = [0u8; 4];
    t.read(0x60, &mut status_reg);
    assert_eq!(status_reg, [1, 0, 0, 0]);

    // Reset stops the worker and gives the disk back; the lock is still held.
    w(&mut t, 0x70, 0);
    assert!(!t.is_active());
    assert!(matches!(BlockDevice::open(&cfg), Err(DeviceError::Block(BlockError::Locked { .. }))));
    drop(t);
    drop(open(&cfg));
}

#[test]
fn a_new_disk_is_private_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "disk", MIB);
    drop(open(&cfg));
    assert_eq!(std::fs::metadata(&cfg.path).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn a_symlinked_disk_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = config(&dir, "real", MIB);
    drop(open(&target));
    let link = config(&dir, "link", MIB);
    std::os::unix::fs::symlink(&target.path, &link.path).unwrap();
    let e = block_err(&link);
    assert!(matches!(e, BlockError::Symlink { .. }), "{e}");
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
}

#[test]
fn a_file_that_is_not_a_spacecore_disk_is_never_written_or_grown() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, "passwd", 2 * MIB);
    let text = b"root:x:0:0:root:/root:/bin/bash\n".repeat(100);
    std::fs::write(&cfg.path, &text).unwrap();
    cfg.resize = true;
    let e = block_err(&cfg);
    assert!(matches!(e, BlockError::Foreign { .. }), "{e}");
    assert!(e.to_string().contains("not a spacecore disk"), "{e}");
    assert_eq!(std::fs::read(&cfg.path).unwrap(), text, "the file was changed");

    // The same bytes past the store's region, with its sectors zero: a disk a guest used.
    let mut used = vec![0u8; FOREIGN_CHECK_BYTES as usize];
    used.extend_from_slice(&text);
    std::fs::write(&cfg.path, &used).unwrap();
    drop(open(&cfg));
    assert_eq!(std::fs::metadata(&cfg.path).unwrap().len(), 2 * MIB);
}

#[test]
fn a_disk_with_records_is_a_spacecore_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "disk", MIB);
    drop(open(&cfg));
    let file = OpenOptions::new().read(true).write(true).open(&cfg.path).unwrap();
    let mut store = spacecore_store::Store::open(spacecore_store::FileDisk::new(file).unwrap()).unwrap();
    store.put(spacecore_store::RecordKey::Keystore, b"{}").unwrap();
    drop(store);
    // Some bytes are no longer zero, but they are the store's: accepted.
    drop(open(&cfg));
    // Garbage over the record's slot makes it foreign again.
    let garbage = vec![0xa5u8; 4096];
    let at = spacecore_store::RecordKey::Keystore.first_sector() * SECTOR_SIZE;
    OpenOptions::new().write(true).open(&cfg.path).unwrap().write_all_at(&garbage, at).unwrap();
    assert!(matches!(block_err(&cfg), BlockError::Foreign { .. }));
}
