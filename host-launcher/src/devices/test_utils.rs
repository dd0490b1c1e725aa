//! Helpers for the device tests: guest memory, driver-side chains, the used ring.

use crate::vmm::memory::Memory;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{RawDescriptor, split::Descriptor as SplitDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::GuestAddress;

use super::Notifier;

/// 1 MiB of guest memory at 0.
pub(crate) fn memory() -> Arc<Memory> {
    Arc::new(Memory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap())
}

/// One buffer of a chain: address, length, device-writable.
pub(crate) type B = (u64, u32, bool);

/// Writes `bufs` as one chain at descriptor index `first` and makes it available.
pub(crate) fn add_chain(vq: &MockSplitQueue<'_, Memory>, first: u16, bufs: &[B]) {
    let descs: Vec<RawDescriptor> = bufs
        .iter()
        .enumerate()
        .map(|(i, &(addr, len, writable))| {
            let mut flags = if writable { VRING_DESC_F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= VRING_DESC_F_NEXT;
            }
            RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, first + i as u16 + 1))
        })
        .collect();
    vq.add_desc_chains(&descs, first).unwrap();
}

/// Makes available raw descriptors exactly as given (for broken chains).
pub(crate) fn add_raw(vq: &MockSplitQueue<'_, Memory>, first: u16, descs: &[(u64, u32, u16, u16)]) {
    let raw: Vec<RawDescriptor> = descs
        .iter()
        .map(|&(addr, len, flags, next)| RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next)))
        .collect();
    vq.add_desc_chains(&raw, first).unwrap();
}

/// The used ring's index and entry `i` as (head, len).
pub(crate) fn used(vq: &MockSplitQueue<'_, Memory>, i: usize) -> (u16, (u32, u32)) {
    let e = vq.used().ring().ref_at(i).unwrap().load();
    (vq.used().idx().load(), (e.id(), e.len()))
}

/// A notifier that sends on a channel.
pub(crate) fn notifier() -> (Notifier, Receiver<()>) {
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    let notify: Notifier = Arc::new(move || {
        let _ = tx.lock().unwrap().send(());
    });
    (notify, rx)
}

/// Waits for one notification.
pub(crate) fn wait(rx: &Receiver<()>) {
    rx.recv_timeout(Duration::from_secs(10)).expect("the device did not notify");
}
