//! Arbitrary register accesses to a virtio-mmio window (input format: [`crate::mmio_ops`]) over a
//! fake device: the transport never panics; it activates the device only once at a time, with
//! valid queues and accepted features (the fake device checks); after every access DRIVER_OK is
//! set exactly when the device runs, and the identification registers read as they must.

use std::sync::{Arc, OnceLock};

use crate::fakes::FakeDevice;
use crate::mmio_ops::{Access, MmioCase};
use crate::ring;
use host_launcher::devices::{CONFIG_OFFSET, MmioTransport, Notifier, VENDOR_ID};
use host_launcher::vmm::memory::Memory;

const DRIVER_OK: u32 = 4;

fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut bytes = [0xff; 4];
    t.read(offset, &mut bytes);
    u32::from_le_bytes(bytes)
}

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    static MEM: OnceLock<Arc<Memory>> = OnceLock::new();
    let mem = MEM.get_or_init(|| Arc::new(ring::memory()));
    let case = MmioCase::parse(data);
    let device = FakeDevice::new(mem.clone(), case.fail_activate, case.fail_reset);
    let state = device.state.clone();
    let notifier: Notifier = Arc::new(|| {});
    let mut t = MmioTransport::new(Box::new(device), mem.clone(), notifier, 0xd000_0000);
    for access in &case.accesses {
        match access {
            Access::Read { offset, width } => {
                let mut bytes = vec![0xff; *width];
                t.read(*offset, &mut bytes);
                if *width != 4 && *offset < CONFIG_OFFSET {
                    assert!(bytes.iter().all(|&b| b == 0), "a {width}-byte register read gave {bytes:?}");
                }
            }
            Access::Write { offset, data } => t.write(*offset, data),
        }
        if let Some(e) = t.take_error() {
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(t.is_active(), state.lock().unwrap().active, "the transport and the device disagree");
        assert_eq!(
            read32(&mut t, 0x70) & DRIVER_OK != 0,
            t.is_active(),
            "DRIVER_OK without a running device"
        );
        assert_eq!(read32(&mut t, 0x00), 0x7472_6976, "MagicValue");
        assert_eq!(read32(&mut t, 0x04), 2, "Version");
        assert_eq!(read32(&mut t, 0x0c), VENDOR_ID, "VendorID");
    }
}
