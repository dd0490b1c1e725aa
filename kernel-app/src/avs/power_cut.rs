//! Power cuts while signing: the node's store on a disk whose writes become durable only when
//! flushed, cut at every point of a run of tasks. After each cut the disk keeps a random subset
//! of the writes not yet flushed (none, all, or some, as a real disk's cache might), the node
//! boots again from it, and every signature it released before the cut must be in the signing
//! history it reads back: it signs that task again only with the same answer.

use super::history::Check;
use super::tests::{TaskPath, node_with_source, operator, task_json};
use super::*;
use spacecore_store::{IoError, SECTOR};

/// A disk whose writes reach durable storage only on flush. The power goes at operation
/// `cut_at` (a read, write or flush): that operation and every later one fail.
struct CutDisk {
    durable: Vec<u8>,
    /// Completed writes not yet flushed, in order: (first sector, data).
    pending: Vec<(u64, Vec<u8>)>,
    ops: u64,
    cut_at: u64,
}

impl CutDisk {
    fn new(durable: Vec<u8>, cut_at: u64) -> Self {
        CutDisk { durable, pending: Vec::new(), ops: 0, cut_at }
    }

    fn tick(&mut self) -> Result<(), IoError> {
        self.ops += 1;
        if self.ops > self.cut_at { Err(IoError::Device) } else { Ok(()) }
    }

    /// The disk after the cut: the durable bytes with each unflushed sector write kept or lost
    /// as `keep` says (in write order, so a later write to a sector wins if both are kept).
    fn after_cut(self, keep: &mut impl FnMut() -> bool) -> Vec<u8> {
        let mut disk = self.durable;
        for (sector, data) in self.pending {
            for (i, chunk) in data.chunks(SECTOR).enumerate() {
                if keep() {
                    let at = (sector as usize + i) * SECTOR;
                    disk[at..at + SECTOR].copy_from_slice(chunk);
                }
            }
        }
        disk
    }
}

impl BlockIo for CutDisk {
    fn sectors(&self) -> u64 {
        (self.durable.len() / SECTOR) as u64
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.tick()?;
        let at = sector as usize * SECTOR;
        buf.copy_from_slice(&self.durable[at..at + buf.len()]);
        // A read sees the completed writes, flushed or not.
        for (first, data) in &self.pending {
            for (i, chunk) in data.chunks(SECTOR).enumerate() {
                let s = *first as usize + i;
                if s >= sector as usize && s < sector as usize + buf.len() / SECTOR {
                    let off = (s - sector as usize) * SECTOR;
                    buf[off..off + SECTOR].copy_from_slice(chunk);
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), IoError> {
        self.tick()?;
        self.pending.push((sector, data.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.tick()?;
        let pending = core::mem::take(&mut self.pending);
        for (sector, data) in pending {
            let at = sector as usize * SECTOR;
            self.durable[at..at + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }
}

/// The tasks of a run: new ones, a repeat, and a conflicting answer (refused).
const RUN: [(u32, u64); 7] = [(1, 2), (2, 3), (2, 3), (5, 9), (2, 4), (6, 1), (7, 7)];

/// Runs [`RUN`] on a node over `disk`, cut at operation `cut_at`; returns the signatures the
/// node released (task index, digest) and the disk.
fn run(durable: Vec<u8>, cut_at: u64) -> (Vec<(u32, [u8; 32])>, CutDisk, u64) {
    let mut store = Store::open(CutDisk::new(durable, cut_at)).unwrap();
    let mut released = Vec::new();
    let mut node = node_with_source(Some(&mut store), false);
    if node.set_operator(Ok(operator(1))).is_ok() {
        for (index, number) in RUN {
            if let Ok(signed) = node.task(&task_json(index, number), Some(&mut store), &|| 0) {
                released.push((index, signed.task_response.digest()));
            }
        }
    }
    let disk = store.into_device();
    let ops = disk.ops;
    (released, disk, ops)
}

#[test]
fn every_released_signature_survives_a_power_cut_at_any_point() {
    let empty = vec![0u8; spacecore_store::NEEDED_SECTORS as usize * SECTOR];
    let (all, _, total_ops) = run(empty.clone(), u64::MAX);
    assert_eq!(all.len(), 6, "every task but the conflicting answer is signed: {all:?}");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut cuts = 0;
    for cut_at in 0..=total_ops {
        for policy in 0..4 {
            let (released, disk, _) = run(empty.clone(), cut_at);
            // 0: every unflushed write lost; 1: all kept; 2, 3: a random subset.
            let mut keep = || match policy {
                0 => false,
                1 => true,
                _ => {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng & 1 == 1
                }
            };
            let mut store = Store::open(CutDisk::new(disk.after_cut(&mut keep), u64::MAX)).unwrap();
            let mut rebooted = node_with_source(Some(&mut store), false);
            rebooted.set_operator(Ok(operator(1))).unwrap_or_else(|why| {
                panic!("cut at {cut_at} (policy {policy}): the node does not sign after the reboot: {why}")
            });
            for (index, digest) in &released {
                assert!(
                    matches!(rebooted.history().check(*index, digest), Check::Repeat | Check::TooOld),
                    "cut at {cut_at} (policy {policy}): task {index} was signed but is not in the history"
                );
                assert_ne!(
                    rebooted.history().check(*index, &[0xee; 32]),
                    Check::New,
                    "cut at {cut_at} (policy {policy}): task {index} could be signed again differently"
                );
            }
            cuts += 1;
        }
    }
    // Each new signature writes its history and flushes it: at least two operations each, so
    // there is a cut between every write and its flush.
    assert!(total_ops >= 2 * 5, "the run made only {total_ops} disk operations");
    assert_eq!(cuts, 4 * (total_ops + 1));
}
