//! virtio-blk requests in hostile descriptor chains (input format: [`crate::ring`]; bit 3 of the
//! first byte makes the disk read-only): the device never panics, gives back every chain whose
//! head is inside the table, in order, and never reports more bytes written than the chain's
//! device-writable buffers hold.

use crate::fakes::block_device;
use crate::ring::{self, RingCase, any_overlap};

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let case = RingCase::parse(data);
    let walk = case.walk();
    let mut disk = block_device(case.flag);
    ring::serve_once(&mut disk.0, &case.mem, vec![case.rings.queue()]);
    let (idx, used) = case.rings.used(&case.mem);

    let Some(chains) = walk.returnable(case.rings.size) else {
        assert_eq!(idx, 0, "a ring with an invalid index must not be used");
        return;
    };
    // The checks need the chains as the device saw them: skip them when the device may have
    // written over what chains are made of (a writable buffer over the rings or an indirect
    // table, or an indirect table over the device ring).
    let mut written: Vec<_> = chains.iter().flat_map(|c| c.spans(true)).collect();
    written.push(case.rings.used_span());
    if any_overlap(&written, &walk.structure) {
        return;
    }
    assert_eq!(usize::from(idx), chains.len(), "every chain is given back once");
    for (chain, &(id, len)) in chains.iter().zip(&used) {
        assert_eq!(id, u32::from(chain.head), "chains are given back in order");
        let writable = chain.writable_bytes();
        assert!(u64::from(len) <= writable, "used length {len} > {writable} writable bytes: {chain:?}");
    }
}
