//! virtio-net transmission from hostile descriptor chains (input format: [`crate::ring`]; the
//! flag bit is unused): the device never panics; every frame it hands to the backend is a
//! virtio-net header, zeroed, and an Ethernet header at least, and at most 65550 bytes; every
//! chain whose head is inside the table is given back with a used length of 0; and the frames
//! sent are exactly the well-formed chains' bytes, in order.

use crate::fakes::net_device;
use crate::ring::{self, MAX_DESCRIPTORS, RingCase, Rings, SPARE, Span, any_overlap};
use host_launcher::devices::VirtioDevice;
use vm_memory::{Bytes, GuestMemoryBackend};

const HDR_LEN: usize = 12;
const MAX_FRAME: usize = 65550;

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let case = RingCase::parse(data);
    let walk = case.walk();
    // The receive queue, in memory the input does not reach, offers no buffers.
    let rx = Rings::packed(SPARE, 1);
    let (mut device, sent, _) = net_device();
    // The device's counters keep counting across cases (and the net_rx target's).
    let received = device.counters().snapshot().rx_packets;
    ring::serve_once(&mut *device, &case.mem, vec![rx.queue(), case.rings.queue()]);
    assert_eq!(device.counters().snapshot().rx_packets, received, "a frame received");
    let (idx, used) = case.rings.used(&case.mem);
    let sent = sent.lock().unwrap().clone();

    for frame in &sent {
        assert!((HDR_LEN + 14..=MAX_FRAME).contains(&frame.len()), "a frame of {} bytes", frame.len());
        assert_eq!(frame[..HDR_LEN], [0; HDR_LEN], "the guest's virtio-net header reached the backend");
    }
    assert!(used.iter().all(|&(_, len)| len == 0), "transmit buffers are given back empty: {used:?}");

    // As for block_request: the rest needs the chains as the device saw them. The device writes
    // only the device rings; a buffer that reads them would see them change.
    let Some(chains) = walk.returnable(case.rings.size) else {
        assert_eq!(idx, 0, "a ring with an invalid index must not be used");
        assert!(sent.is_empty());
        return;
    };
    let written = [case.rings.used_span(), Span::new(SPARE, 0x1000)];
    if any_overlap(&written, &walk.structure) {
        return;
    }
    assert_eq!(usize::from(idx), chains.len(), "every chain is given back once");
    let heads: Vec<u32> = chains.iter().map(|c| u32::from(c.head)).collect();
    assert!(used.iter().map(|&(id, _)| id).eq(heads.iter().copied()), "chains are given back in order");
    let readable: Vec<_> = chains.iter().flat_map(|c| c.spans(false)).collect();
    if any_overlap(&written, &readable) {
        return;
    }
    // What a correct device sends: each chain of 1 to MAX_DESCRIPTORS readable buffers, all in
    // guest memory, of 26 to 65550 bytes in all, as one frame with its first 12 bytes zeroed.
    let expected: Vec<Vec<u8>> = chains
        .iter()
        .filter_map(|chain| {
            let fine = !chain.truncated
                && (1..=MAX_DESCRIPTORS).contains(&chain.descs.len())
                && chain.descs.iter().all(|d| !d.is_write_only())
                && chain
                    .descs
                    .iter()
                    .all(|d| d.len() == 0 || case.mem.check_range(d.addr(), d.len() as usize));
            let total: usize = chain.descs.iter().map(|d| d.len() as usize).sum();
            if !fine || !(HDR_LEN + 14..=MAX_FRAME).contains(&total) {
                return None;
            }
            let mut frame = Vec::with_capacity(total);
            for d in &chain.descs {
                let mut buf = vec![0; d.len() as usize];
                case.mem.read_slice(&mut buf, d.addr()).ok()?;
                frame.extend_from_slice(&buf);
            }
            frame[..HDR_LEN].fill(0);
            Some(frame)
        })
        .collect();
    assert!(sent == expected, "sent {} frame(s), expected {}", sent.len(), expected.len());
}
