//! virtio-net reception into buffers a hostile guest posts (descriptors pointing anywhere,
//! chains too short or too long, looping, indirect, read-only buffers; input format: [`parse`]):
//! the device never panics; it gives back, in order, exactly the chains a correct device would:
//! a chain it cannot write (a read-only buffer, outside guest memory, truncated, too long) with
//! used length 0 and its frame lost, a frame shorter than its virtio-net header or longer than
//! the chain dropped with the chain kept for the next frame, every other frame written into the
//! chain's buffers, in order, as its length says; each frame written is the backend's, with
//! its virtio-net header all zero but `num_buffers` = 1; and no other byte of guest memory than
//! those buffers and the device rings changes.

use std::collections::VecDeque;

use crate::Reader;
use crate::fakes::net_device;
use crate::ring::{
    self, Chain, MAX_DESCRIPTORS, REGIONS, RingCase, RingImage, Rings, SPARE, Span, any_overlap,
};
use host_launcher::devices::VirtioDevice;
use host_launcher::vmm::memory::Memory;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const HDR_LEN: usize = 12;
/// Most frames in one input.
pub const MAX_FRAMES: u8 = 16;

/// A decoded `net_rx` input.
#[derive(Debug)]
pub struct NetRxCase {
    /// The receive queue and guest memory.
    pub ring: RingCase,
    /// The frames the backend hands over, in order, each with a 12-byte virtio-net header.
    pub frames: Vec<Vec<u8>>,
}

/// The bytes of frame `index` of `len` bytes: a junk virtio-net header, then a pattern.
pub fn frame(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| if j < HDR_LEN { 0xee } else { (j * 7 + index * 13 + 1) as u8 }).collect()
}

/// Decodes an input: byte 0 as in [`crate::ring`] (the flag is unused); byte 1 the number of
/// frames, modulo [`MAX_FRAMES`] + 1; then each frame's length, a little-endian `u16` (its
/// bytes are [`frame`]'s); then guest memory from address 0, as in [`crate::ring`].
pub fn parse(data: &[u8]) -> NetRxCase {
    let mut r = Reader::new(data);
    let config = r.u8();
    let count = r.u8() % (MAX_FRAMES + 1);
    let frames = (0..usize::from(count)).map(|i| frame(i, usize::from(r.u16()))).collect();
    NetRxCase { ring: RingCase::from_parts(config, r.bytes(ring::IMAGE_LEN)), frames }
}

/// Encodes a `net_rx` input: the queue and memory of `ring`, and frames of these lengths.
pub fn encode(ring: &RingImage, lengths: &[u16]) -> Vec<u8> {
    assert!(lengths.len() <= usize::from(MAX_FRAMES));
    let image = ring.encode();
    let mut out = vec![image[0], lengths.len() as u8];
    lengths.iter().for_each(|len| out.extend_from_slice(&len.to_le_bytes()));
    out.extend_from_slice(&image[1..]);
    out
}

/// Every byte of guest memory, region by region.
fn snapshot(mem: &Memory) -> Vec<Vec<u8>> {
    REGIONS
        .iter()
        .map(|&(start, len)| {
            let mut bytes = vec![0; len];
            mem.read_slice(&mut bytes, GuestAddress(start)).expect("a region of guest memory");
            bytes
        })
        .collect()
}

/// Writes `bytes` at `addr` into a [`snapshot`].
fn poke(model: &mut [Vec<u8>], addr: u64, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        let a = addr + i as u64;
        let (r, &(start, _)) = REGIONS
            .iter()
            .enumerate()
            .find(|(_, (start, len))| (*start..*start + *len as u64).contains(&a))
            .expect("the model writes only guest memory");
        model[r][(a - start) as usize] = b;
    }
}

/// Whether a correct device can write frames into `chain`.
fn writable(chain: &Chain, mem: &Memory) -> bool {
    !chain.truncated
        && (1..=MAX_DESCRIPTORS).contains(&chain.descs.len())
        && chain.descs.iter().all(|d| d.is_write_only())
        && chain.descs.iter().all(|d| d.len() == 0 || mem.check_range(d.addr(), d.len() as usize))
}

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let NetRxCase { ring: case, frames } = parse(data);
    let walk = case.walk();
    let before = snapshot(&case.mem);
    // The transmit queue, in memory the input does not reach, offers nothing.
    let tx = Rings::packed(SPARE, 1);
    let (mut device, sent, incoming) = net_device();
    incoming.lock().unwrap().extend(frames.iter().cloned());
    // The device's counters keep counting across cases (and the net_tx target's).
    let received = device.counters().snapshot().rx_packets;
    ring::serve_once(&mut *device, &case.mem, vec![case.rings.queue(), tx.queue()]);
    let left = incoming.lock().unwrap().len();
    incoming.lock().unwrap().clear();
    assert!(sent.lock().unwrap().is_empty(), "the device sent a frame from an empty queue");
    let received = device.counters().snapshot().rx_packets - received;
    drop(device);
    let (idx, used) = case.rings.used(&case.mem);

    // The rest needs the chains as the device saw them (as for net_tx): the device writes the
    // device rings and the frames; if those reach what the chains are made of, or the device
    // ring, the chains changed under it, or the ring no longer says what the device wrote.
    let Some(chains) = walk.chains.as_ref() else {
        assert_eq!(idx, 0, "a ring with an invalid index must not be used");
        return;
    };
    let rings_written = [case.rings.used_span(), tx.used_span()];
    let buffers: Vec<Span> = chains.iter().flat_map(|c| c.spans(true)).collect();
    let written: Vec<Span> = rings_written.iter().chain(&buffers).copied().collect();
    if any_overlap(&written, &walk.structure) || any_overlap(&rings_written, &buffers) {
        return;
    }
    let delivered = used.iter().filter(|&&(_, len)| len > 0).count() as u64;
    assert_eq!(received, delivered, "frames counted and frames given back");

    // What a correct device does, chain by chain, frame by frame.
    let mut model = before;
    let mut frames: VecDeque<&Vec<u8>> = frames.iter().collect();
    let mut expected = Vec::new();
    let mut chains = chains.iter();
    let mut chain = chains.next();
    while let Some(c) = chain {
        let Some(f) = frames.pop_front() else { break };
        if f.is_empty() {
            break; // a read of 0 bytes is no frame: reception stops until the backend is readable
        }
        if !writable(c, &case.mem) {
            if c.head < case.rings.size {
                expected.push((u32::from(c.head), 0));
            }
            chain = chains.next();
            continue;
        }
        let room: u64 = c.descs.iter().map(|d| u64::from(d.len())).sum();
        if f.len() < HDR_LEN || room < f.len() as u64 {
            continue; // dropped; the chain waits for the next frame
        }
        let mut bytes = f.clone();
        bytes[..HDR_LEN].fill(0);
        bytes[HDR_LEN - 2..HDR_LEN].copy_from_slice(&1u16.to_le_bytes());
        let mut at = 0;
        for d in &c.descs {
            let n = (d.len() as usize).min(bytes.len() - at);
            poke(&mut model, d.addr().0, &bytes[at..at + n]);
            at += n;
        }
        expected.push((u32::from(c.head), f.len() as u32));
        chain = chains.next();
    }
    assert_eq!(used, expected, "the chains given back (id, used length)");
    assert_eq!(left, frames.len(), "frames left with the backend");
    // Compare guest memory but the device rings with what the model wrote.
    let mut after = snapshot(&case.mem);
    for span in rings_written {
        let zeros = vec![0; (span.end - span.start) as usize];
        poke(&mut after, span.start, &zeros);
        poke(&mut model, span.start, &zeros);
    }
    for (r, (got, want)) in after.iter().zip(&model).enumerate() {
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            panic!("guest memory at {:#x} is not what a correct device leaves", REGIONS[r].0 + i as u64);
        }
    }
}
