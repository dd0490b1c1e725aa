use super::*;
use crate::devices::test_utils::memory;
use crate::devices::{Activation, DeviceError, TYPE_NET, new_events};
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

const OFFERED: u64 = FEATURE_VERSION_1 | 1 << 5;

/// Size and desc, driver and device addresses of a queue given to the device.
type QueueSeen = (u16, u64, u64, u64);

/// What the fake device saw.
#[derive(Default)]
struct Seen {
    activations: Vec<(Vec<QueueSeen>, u64)>,
    /// Each activation's queues' next available and next used indexes.
    positions: Vec<Vec<(u16, u16)>>,
    resets: AtomicUsize,
    notifier: Option<Notifier>,
}

struct Fake {
    events: Vec<EventFd>,
    seen: Arc<Mutex<Seen>>,
    config: [u8; 8],
    fail_activation: bool,
}

impl VirtioDevice for Fake {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }
    fn features(&self) -> u64 {
        OFFERED
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 32]
    }
    fn config(&self) -> &[u8] {
        &self.config
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 && data.len() == 1 {
            self.config[0] = data[0];
        }
    }
    fn activate(&mut self, a: Activation) -> Result<(), DeviceError> {
        if self.fail_activation {
            return Err(DeviceError::AlreadyActive { device: "fake".into() });
        }
        let mut seen = self.seen.lock().unwrap();
        let queues =
            a.queues.iter().map(|q| (q.size(), q.desc_table(), q.avail_ring(), q.used_ring())).collect();
        seen.activations.push((queues, a.acked_features));
        seen.positions.push(a.queues.iter().map(|q| (q.next_avail(), q.next_used())).collect());
        seen.notifier = Some(a.notifier);
        Ok(())
    }
    fn queue_events(&self) -> &[EventFd] {
        &self.events
    }
    fn reset(&mut self) -> bool {
        self.seen.lock().unwrap().resets.fetch_add(1, Ordering::SeqCst);
        true
    }
    fn counters(&self) -> Arc<Counters> {
        Arc::default()
    }
}

fn transport(fail_activation: bool) -> (MmioTransport, Arc<Mutex<Seen>>, Arc<AtomicUsize>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let fake =
        Fake { events: new_events("fake", 2).unwrap(), seen: seen.clone(), config: [7; 8], fail_activation };
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    let notifier: Notifier = Arc::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    });
    (MmioTransport::new(Box::new(fake), memory(), notifier, 0xd000_0000), seen, woken)
}

fn rd(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0xffu8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn wr(t: &mut MmioTransport, offset: u64, v: u32) {
    t.write(offset, &v.to_le_bytes());
}

const ACK: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRV: u32 = VIRTIO_CONFIG_S_DRIVER;
const FOK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
const DOK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;

/// Negotiates `features`; true if FEATURES_OK stuck.
fn negotiate(t: &mut MmioTransport, features: u64) -> bool {
    wr(t, 0x70, ACK);
    wr(t, 0x70, ACK | DRV);
    wr(t, 0x24, 0);
    wr(t, 0x20, features as u32);
    wr(t, 0x24, 1);
    wr(t, 0x20, (features >> 32) as u32);
    wr(t, 0x70, ACK | DRV | FOK);
    rd(t, 0x70) & FOK != 0
}

/// Sets up queue `i` of `size` with its rings at `base`.
fn setup_queue(t: &mut MmioTransport, i: u32, size: u32, base: u64) {
    wr(t, 0x30, i);
    wr(t, 0x38, size);
    for (reg, addr) in [(0x80, base), (0x90, base + 0x1000), (0xa0, base + 0x2000)] {
        wr(t, reg, addr as u32);
        wr(t, reg + 4, (addr >> 32) as u32);
    }
    wr(t, 0x44, 1);
}

#[test]
fn full_driver_sequence_activates_the_device() {
    let (mut t, seen, woken) = transport(false);
    assert_eq!(rd(&mut t, 0x00), 0x7472_6976);
    assert_eq!(rd(&mut t, 0x04), 2);
    assert_eq!(rd(&mut t, 0x08), TYPE_NET);
    assert_eq!(rd(&mut t, 0x0c), VENDOR_ID);
    wr(&mut t, 0x14, 0);
    assert_eq!(rd(&mut t, 0x10), OFFERED as u32);
    wr(&mut t, 0x14, 1);
    assert_eq!(rd(&mut t, 0x10), (OFFERED >> 32) as u32);
    wr(&mut t, 0x14, 2);
    assert_eq!(rd(&mut t, 0x10), 0);
    assert!(negotiate(&mut t, OFFERED));
    wr(&mut t, 0x30, 0);
    assert_eq!(rd(&mut t, 0x34), 16);
    wr(&mut t, 0x30, 1);
    assert_eq!(rd(&mut t, 0x34), 32);
    wr(&mut t, 0x30, 2);
    assert_eq!(rd(&mut t, 0x34), 0, "no queue 2");
    setup_queue(&mut t, 0, 16, 0x1_0000);
    setup_queue(&mut t, 1, 8, 0x2_0000);
    assert_eq!(rd(&mut t, 0x44), 1);
    wr(&mut t, 0x70, ACK | DRV | FOK | DOK);
    assert_eq!(rd(&mut t, 0x70), ACK | DRV | FOK | DOK);
    assert!(t.is_active());
    assert!(t.take_error().is_none());
    {
        let seen = seen.lock().unwrap();
        let (queues, features) = &seen.activations[0];
        assert_eq!(*features, OFFERED);
        assert_eq!(queues[0], (16, 0x1_0000, 0x1_1000, 0x1_2000));
        assert_eq!(queues[1], (8, 0x2_0000, 0x2_1000, 0x2_2000));
    }

    // Config space: any size; past its end zeros.
    let mut b = [0u8; 2];
    t.read(0x100 + 6, &mut b);
    assert_eq!(b, [7, 7]);
    t.read(0x100 + 7, &mut b);
    assert_eq!(b, [7, 0]);
    t.write(0x100, &[9]);
    t.read(0x100, &mut b);
    assert_eq!(b, [9, 7]);

    // A notification that was not caught by the ioeventfd still reaches the queue's event.
    wr(&mut t, 0x50, 1);
    assert_eq!(t.queue_events()[1].read().unwrap(), 1);
    assert!(t.queue_events()[0].read().is_err(), "queue 0 was not notified");
    wr(&mut t, 0x50, 7);

    // The device's notifier marks a used buffer and wakes the guest; ACK clears it.
    assert_eq!(rd(&mut t, 0x60), 0);
    let n = seen.lock().unwrap().notifier.clone().unwrap();
    n();
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    assert_eq!(rd(&mut t, 0x60), 1);
    wr(&mut t, 0x64, 1);
    assert_eq!(rd(&mut t, 0x60), 0);
    assert_eq!(rd(&mut t, 0xfc), 0);

    // Queue settings are fixed while running.
    wr(&mut t, 0x30, 0);
    wr(&mut t, 0x44, 0);
    assert_eq!(rd(&mut t, 0x44), 1);

    // Reset stops the device and clears everything.
    wr(&mut t, 0x70, 0);
    assert_eq!(seen.lock().unwrap().resets.load(Ordering::SeqCst), 1);
    assert_eq!(rd(&mut t, 0x70), 0);
    assert_eq!(rd(&mut t, 0x44), 0);
    assert!(!t.is_active());

    // And the device can be brought up again.
    assert!(negotiate(&mut t, OFFERED));
    setup_queue(&mut t, 0, 16, 0x1_0000);
    setup_queue(&mut t, 1, 16, 0x3_0000);
    wr(&mut t, 0x70, ACK | DRV | FOK | DOK);
    assert!(t.is_active());
    assert_eq!(seen.lock().unwrap().activations.len(), 2);
}

#[test]
fn register_accesses_of_other_sizes_are_ignored() {
    let (mut t, _, _) = transport(false);
    let mut b = [0xffu8; 2];
    t.read(0, &mut b);
    assert_eq!(b, [0, 0]);
    let mut b = [0xffu8; 8];
    t.read(0, &mut b);
    assert_eq!(b, [0; 8]);
    t.write(0x70, &[1]);
    t.write(0x70, &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(rd(&mut t, 0x70), 0);
}

#[test]
fn features_not_offered_are_refused() {
    let (mut t, seen, _) = transport(false);
    assert!(!negotiate(&mut t, OFFERED | 1 << 6));
    assert!(
        matches!(t.take_error(), Some(MmioError::FeaturesNotOffered { acked, .. }) if acked == OFFERED | 1 << 6)
    );
    setup_queue(&mut t, 0, 16, 0x1_0000);
    setup_queue(&mut t, 1, 16, 0x2_0000);
    wr(&mut t, 0x70, ACK | DRV | DOK);
    assert!(!t.is_active());
    assert_eq!(rd(&mut t, 0x70) & DOK, 0);
    assert!(seen.lock().unwrap().activations.is_empty());
    let e = t.take_error().unwrap().to_string();
    assert!(e.contains("virtio-net at 0xd0000000") && e.contains("FEATURES_OK"), "{e}");
}

#[test]
fn a_legacy_driver_is_refused() {
    let (mut t, _, _) = transport(false);
    assert!(!negotiate(&mut t, 1 << 5));
    let e = t.take_error().unwrap().to_string();
    assert!(e.contains("VIRTIO_F_VERSION_1"), "{e}");
}

#[test]
fn features_ok_needs_acknowledge_and_driver() {
    let (mut t, _, _) = transport(false);
    wr(&mut t, 0x20, OFFERED as u32);
    wr(&mut t, 0x24, 1);
    wr(&mut t, 0x20, (OFFERED >> 32) as u32);
    wr(&mut t, 0x70, FOK);
    assert_eq!(rd(&mut t, 0x70), 0);
    assert!(matches!(t.take_error(), Some(MmioError::StatusOrder { .. })));
}

#[test]
fn queues_outside_memory_do_not_activate() {
    let (mut t, seen, _) = transport(false);
    assert!(negotiate(&mut t, OFFERED));
    setup_queue(&mut t, 0, 16, 0x1_0000);
    // Past the 1 MiB of guest memory, and past 4 GiB.
    setup_queue(&mut t, 1, 16, 0x1_0000_0000);
    wr(&mut t, 0x70, ACK | DRV | FOK | DOK);
    assert!(!t.is_active());
    assert_eq!(rd(&mut t, 0x70), ACK | DRV | FOK | VIRTIO_CONFIG_S_NEEDS_RESET);
    assert!(seen.lock().unwrap().activations.is_empty());
    let e = t.take_error().unwrap();
    assert!(matches!(e, MmioError::QueueInvalid { queue: 1, desc: 0x1_0000_0000, .. }), "{e}");
    // A second DRIVER_OK is refused too until the driver resets.
    wr(&mut t, 0x70, ACK | DRV | FOK | DOK | VIRTIO_CONFIG_S_NEEDS_RESET);
    assert!(!t.is_active());
    wr(&mut t, 0x70, 0);
    assert_eq!(rd(&mut t, 0x70), 0);
}

#[test]
fn a_queue_not_made_ready_does_not_activate() {
    let (mut t, _, _) = transport(false);
    assert!(negotiate(&mut t, OFFERED));
    setup_queue(&mut t, 0, 16, 0x1_0000);
    wr(&mut t, 0x70, ACK | DRV | FOK | DOK);
    assert!(!t.is_active());
    assert!(matches!(t.take_error(), Some(MmioError::QueueInvalid { queue: 1, .. })));
}

#[test]
fn refused_queue_settings_block_activation() {
    for (reg, value) in
        [(0x38, 3), (0x38, 64), (0x38, 0x1_0010), (0x80, 0x1_0008), (0x90, 0x1_0001), (0xa0, 0x1_0002)]
    {
        let (mut t, _, _) = transport(false);
        assert!(negotiate(&mut t, OFFERED));
        setup_queue(&mut t, 0, 16, 0x1_0000);
        setup_queue(&mut t, 1, 16, 0x2_0000);
        wr(&mut t, 0x30, 1);
        wr(&mut t, reg, value);
        assert!(matches!(t.take_error(), Some(MmioError::QueueSetting { queue: 1, .. })), "{reg:#x}");
        wr(&mut t, 0x70, ACK | DRV | FOK | DOK);
        assert!(!t.is_active(), "{reg:#x} = {value:#x}");
    }
}

#[test]
fn a_failed_activation_sets_needs_reset() {
    let (mut t, _, _) = transport(true);
    assert!(negotiate(&mut t, OFFERED));
    setup_queue(&mut t, 0, 16, 0x1_0000);
    setup_queue(&mut t, 1, 16, 0x2_0000);
    wr(&mut t, 0x70, ACK | DRV | FOK | DOK);
    assert!(!t.is_active());
    assert_ne!(rd(&mut t, 0x70) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    assert!(matches!(t.take_error(), Some(MmioError::Activate { .. })));
}

#[test]
fn garbage_accesses_never_panic() {
    let (mut t, _, _) = transport(false);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..200_000 {
        let offset = next() % 0x1100;
        let len = [0usize, 1, 2, 4, 8][(next() % 5) as usize];
        let value = next();
        let mut data = value.to_le_bytes();
        if next() % 2 == 0 {
            t.read(offset, &mut data[..len]);
        } else {
            t.write(offset & !3, &data[..len]);
        }
    }
}

#[test]
fn ioeventfds_register_with_kvm() {
    if !test_support::kvm("ioeventfds_register_with_kvm") {
        return;
    }
    let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm opens read-write, so KVM_GET_API_VERSION works");
    let vm = kvm.create_vm().unwrap();
    let (t, _, _) = transport(false);
    t.register_ioeventfds(&vm).unwrap();
    // The same address and datamatch twice is refused by KVM, and reported with the address.
    let e = t.register_ioeventfds(&vm).unwrap_err().to_string();
    assert!(e.contains("0xd0000050"), "{e}");
}

/// A transport driven to DRIVER_OK with queues 0 and 1 at 0x1_0000 and 0x2_0000, whose used
/// rings say `used` buffers were used; its device's record.
fn running(used: [u16; 2]) -> (MmioTransport, Arc<Mutex<Seen>>) {
    use vm_memory::Bytes;
    let (mut t, seen, _) = transport(false);
    assert!(negotiate(&mut t, OFFERED));
    setup_queue(&mut t, 0, 16, 0x1_0000);
    setup_queue(&mut t, 1, 8, 0x2_0000);
    wr(&mut t, 0x70, ACK | DRV | FOK | DOK);
    assert_eq!(rd(&mut t, 0x70), ACK | DRV | FOK | DOK);
    for (base, n) in [(0x1_0000u64, used[0]), (0x2_0000, used[1])] {
        t.mem.write_obj(n, GuestAddress(base + 0x2000 + 2)).unwrap();
    }
    (t, seen)
}

#[test]
fn a_saved_window_starts_a_fresh_one_where_the_device_stopped() {
    let (t, seen) = running([5, 9]);
    let (state, _device) = t.into_saved();
    let state = state.unwrap();
    assert_eq!(seen.lock().unwrap().resets.load(Ordering::SeqCst), 1, "the device was stopped first");
    assert_eq!(state.status, ACK | DRV | FOK | DOK);
    assert_eq!(state.driver_features, OFFERED);
    assert_eq!(state.queue_sel, 1, "the driver's last selector");
    let used: Vec<u16> = state.queues.iter().map(|q| q.used_index).collect();
    assert_eq!(used, [5, 9]);

    let (mut fresh, seen, _) = transport(false);
    fresh.restore(&state).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.activations,
        [(vec![(16, 0x1_0000, 0x1_1000, 0x1_2000), (8, 0x2_0000, 0x2_1000, 0x2_2000)], OFFERED)]
    );
    assert_eq!(seen.positions, [vec![(5, 5), (9, 9)]], "the device resumes at the used rings' indexes");
    assert!(fresh.is_active());
    assert_eq!(rd(&mut fresh, 0x70), ACK | DRV | FOK | DOK);
    // The selector is the driver's: queue 1 (8 entries, ready) without a write.
    assert_eq!(rd(&mut fresh, 0x44), 1);
    wr(&mut fresh, 0x30, 0);
    assert_eq!(rd(&mut fresh, 0x34), 16);
}

#[test]
fn a_window_the_driver_left_alone_is_saved_and_restored_as_such() {
    let (t, _, _) = transport(false);
    let state = t.into_saved().0.unwrap();
    assert_eq!((state.status, state.queues.len()), (0, 0));
    let (mut fresh, seen, _) = transport(false);
    fresh.restore(&state).unwrap();
    assert!(!fresh.is_active());
    assert!(seen.lock().unwrap().activations.is_empty());
}

#[test]
fn a_half_set_up_window_is_not_saved() {
    let (mut t, _, _) = transport(false);
    wr(&mut t, 0x70, ACK);
    wr(&mut t, 0x70, ACK | DRV);
    let e = t.into_saved().0.unwrap_err();
    assert!(e.contains("half set up (status 0x3)"), "{e}");
}

#[test]
fn a_snapshot_of_another_device_or_hostile_settings_are_refused() {
    let (t, _) = running([0, 0]);
    let state = t.into_saved().0.unwrap();
    let refused = |change: &dyn Fn(&mut TransportState), expected: &str| {
        let mut bad = state.clone();
        change(&mut bad);
        let (mut fresh, seen, _) = transport(false);
        let e = fresh.restore(&bad).unwrap_err();
        assert!(e.contains(expected), "{e} (expected {expected})");
        assert!(!fresh.is_active());
        assert!(seen.lock().unwrap().activations.is_empty(), "{expected}: nothing was started");
    };
    refused(&|s| s.device_type = crate::devices::TYPE_BLOCK, "a device of type 2");
    refused(&|s| s.offered_features |= 1 << 7, "other features");
    refused(&|s| s.config[0] ^= 1, "configuration");
    refused(&|s| s.status = ACK | DRV | FOK, "status 0xb");
    refused(&|s| s.queues.pop().map(drop).unwrap_or(()), "1 queues");
    refused(&|s| s.driver_features |= 1 << 9, "a subset of the offered");
    refused(&|s| s.driver_features &= !FEATURE_VERSION_1, "VERSION_1");
    refused(&|s| s.queues[0].size = 3, "size is refused");
    refused(&|s| s.queues[1].size = 64, "size is refused");
    refused(&|s| s.queues[0].desc = 0x1_0001, "descriptor table is refused");
    refused(&|s| s.queues[0].used = 0x1_2002, "device area is refused");
    // Rings outside guest memory: the activation's own check refuses them.
    refused(&|s| s.queues[1].avail = 0x4000_0000, "queue 1");
}
