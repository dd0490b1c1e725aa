//! Moving frames between the queues and the backend; no threads, no waiting: the caller passes
//! the time and reacts to what each pass reports.

use super::{Buckets, FrameIo};
use crate::devices::chain::{self, Buf};
use crate::devices::{Counters, bump};
use crate::vmm::memory::Memory;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;

/// Length of `virtio_net_hdr_v1` (with `num_buffers`).
pub(crate) const HDR_LEN: usize = 12;
/// Largest TX chain accepted: header plus a 64 KiB frame and its Ethernet header.
pub(crate) const MAX_TX_LEN: usize = 65550;
/// Smallest TX chain accepted: header plus an Ethernet header.
const MIN_TX_LEN: usize = HDR_LEN + 14;
/// Room for the largest frame a tap can hand over.
const SCRATCH_LEN: usize = HDR_LEN + 65536 + 18;
/// How long receiving pauses after the backend fails a read.
const BACKEND_BACKOFF: Duration = Duration::from_millis(100);
/// Frames delivered before the guest is woken and the pass goes on.
pub(crate) const RX_BATCH: usize = 64;

/// Why a receive pass stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxStop {
    /// The backend has no more frames.
    Drained,
    /// The guest has no receive buffers; wait for it to add some (RX queue event).
    NoBuffers,
    /// The ingress or bandwidth limit is reached (or the backend failed); try again after this
    /// long.
    Throttled(Duration),
    /// [`RX_BATCH`] frames were delivered; wake the guest and call again.
    Batch,
}

/// The device's state while it runs.
#[derive(Debug)]
pub(crate) struct Engine {
    mem: Arc<Memory>,
    pub rx: Queue,
    pub tx: Queue,
    backend: Box<dyn FrameIo>,
    buckets: Buckets,
    counters: Arc<Counters>,
    scratch: Vec<u8>,
}

impl Engine {
    pub fn new(
        mem: Arc<Memory>,
        rx: Queue,
        tx: Queue,
        backend: Box<dyn FrameIo>,
        buckets: Buckets,
        counters: Arc<Counters>,
    ) -> Self {
        Engine { mem, rx, tx, backend, buckets, counters, scratch: vec![0; SCRATCH_LEN] }
    }

    /// The backend, to keep across a reset.
    pub fn into_backend(self) -> Box<dyn FrameIo> {
        self.backend
    }

    /// The counters the passes update.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The backend's fd, for polling.
    pub fn backend_fd(&self) -> std::os::fd::RawFd {
        self.backend.as_raw_fd()
    }

    /// Sends every frame the guest queued, until the TX ring is empty (`None`) or a limit is
    /// reached (how long to wait). Returns the chains put on the used ring.
    pub fn tx(&mut self, now: Instant) -> (usize, Option<Duration>) {
        let mem = self.mem.clone();
        let mut used = 0;
        match self.tx_pass(&mem, now, &mut used) {
            Ok(wait) => (used, wait),
            Err(_) => {
                // A broken ring: wait for the next notification.
                bump(&self.counters.errors, 1);
                (used, None)
            }
        }
    }

    fn tx_pass(
        &mut self,
        mem: &Memory,
        now: Instant,
        used: &mut usize,
    ) -> Result<Option<Duration>, virtio_queue::Error> {
        let mut idle_passes = 0;
        loop {
            self.tx.disable_notification(mem)?;
            let before = *used;
            while let Some(chain) = self.tx.iter(mem)?.next() {
                let (head, bufs) = chain::collect(mem, chain);
                let frame_len = match &bufs {
                    Ok(bufs) => tx_frame_len(bufs),
                    Err(_) => None,
                };
                if let Some(len) = frame_len
                    && let Some(wait) = self.tx_wait(len as u64, now)
                {
                    // Leave the chain on the ring; notifications stay off until the timer.
                    self.tx.go_to_previous_position();
                    bump(&self.counters.tx_throttled, 1);
                    return Ok(Some(wait));
                }
                match (bufs, frame_len) {
                    (Ok(bufs), Some(len)) => self.send(mem, &bufs, len),
                    (Ok(_), None) => bump(&self.counters.dropped, 1),
                    (Err(_), _) => {
                        bump(&self.counters.errors, 1);
                        bump(&self.counters.dropped, 1);
                    }
                }
                if head < self.tx.size() {
                    self.tx.add_used(mem, head, 0)?;
                    *used += 1;
                }
            }
            idle_passes = if *used == before { idle_passes + 1 } else { 0 };
            if !self.tx.enable_notification(mem)? || idle_passes >= 2 {
                return Ok(None);
            }
        }
    }

    /// Whether egress and bandwidth allow `len` bytes now; if so they are taken.
    fn tx_wait(&mut self, len: u64, now: Instant) -> Option<Duration> {
        let b = &mut self.buckets;
        let wait = b.egress.wait_time(len, now).max(b.bandwidth.wait_time(len, now));
        if wait.is_none() {
            b.egress.charge(len, now);
            b.bandwidth.charge(len, now);
        }
        wait
    }

    /// Copies the chain into the scratch buffer and writes it to the backend in one call.
    fn send(&mut self, mem: &Memory, bufs: &[Buf], len: usize) {
        let mut at = 0;
        for b in bufs {
            let n = b.len as usize;
            if mem.read_slice(&mut self.scratch[at..at + n], b.addr).is_err() {
                bump(&self.counters.dropped, 1);
                return;
            }
            at += n;
        }
        // No offload was negotiated: nothing in the guest's header is for the tap.
        self.scratch[..HDR_LEN].fill(0);
        match self.backend.write_frame(&self.scratch[..len]) {
            Ok(n) if n == len => {
                bump(&self.counters.tx_packets, 1);
                bump(&self.counters.tx_bytes, (len - HDR_LEN) as u64);
            }
            _ => bump(&self.counters.dropped, 1),
        }
    }

    /// Delivers queued frames into the guest's receive buffers until one side runs out, a
    /// limit is reached or a batch is complete. Returns the chains put on the used ring.
    pub fn rx(&mut self, now: Instant) -> (usize, RxStop) {
        let mem = self.mem.clone();
        let mut used = 0;
        match self.rx_pass(&mem, now, &mut used) {
            Ok(stop) => (used, stop),
            Err(_) => {
                // A broken ring: wait until the guest touches it again.
                bump(&self.counters.errors, 1);
                (used, RxStop::NoBuffers)
            }
        }
    }

    fn rx_pass(
        &mut self,
        mem: &Memory,
        now: Instant,
        used: &mut usize,
    ) -> Result<RxStop, virtio_queue::Error> {
        // Buffers are taken as frames come; the guest need not say when it adds some.
        self.rx.disable_notification(mem)?;
        let mut empty_looks = 0;
        loop {
            if *used >= RX_BATCH {
                return Ok(RxStop::Batch);
            }
            if let Some(wait) = self.rx_wait(now) {
                bump(&self.counters.rx_throttled, 1);
                return Ok(RxStop::Throttled(wait));
            }
            let Some(chain) = self.rx.iter(mem)?.next() else {
                // Out of buffers: ask for a notification; if buffers came just before it was
                // asked for, take them (a ring that keeps claiming buffers it cannot give is
                // left alone after a few looks).
                if self.rx.enable_notification(mem)? && empty_looks < 8 {
                    empty_looks += 1;
                    self.rx.disable_notification(mem)?;
                    continue;
                }
                return Ok(RxStop::NoBuffers);
            };
            let len = match self.backend.read_frame(&mut self.scratch) {
                Ok(n) if n > 0 => n,
                Err(e) if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::Interrupted => {
                    // A broken backend stays "readable": back off instead of spinning on it.
                    bump(&self.counters.errors, 1);
                    self.rx.go_to_previous_position();
                    return Ok(RxStop::Throttled(BACKEND_BACKOFF));
                }
                _ => {
                    self.rx.go_to_previous_position();
                    return Ok(RxStop::Drained);
                }
            };
            self.buckets.ingress.charge(len as u64, now);
            self.buckets.bandwidth.charge(len as u64, now);
            let (head, bufs) = chain::collect(mem, chain);
            match bufs {
                Ok(bufs) if bufs.iter().all(|b| b.writable) => {
                    if self.deliver(mem, &bufs, len) {
                        self.rx.add_used(mem, head, len as u32)?;
                        *used += 1;
                    } else {
                        // The chain is fine, the frame is not: keep the chain for the next one.
                        bump(&self.counters.dropped, 1);
                        self.rx.go_to_previous_position();
                    }
                }
                _ => {
                    // A chain the device cannot write: give it back empty; the frame is lost.
                    bump(&self.counters.errors, 1);
                    bump(&self.counters.dropped, 1);
                    if head < self.rx.size() {
                        self.rx.add_used(mem, head, 0)?;
                        *used += 1;
                    }
                }
            }
        }
    }

    /// When ingress or bandwidth have no token left, how long until they do.
    fn rx_wait(&mut self, now: Instant) -> Option<Duration> {
        let b = &mut self.buckets;
        b.ingress.wait_time(1, now).max(b.bandwidth.wait_time(1, now))
    }

    /// Writes the scratch frame of `len` bytes into `bufs` with a fresh header; false (nothing
    /// counted as delivered) when the frame has no header or does not fit.
    fn deliver(&mut self, mem: &Memory, bufs: &[Buf], len: usize) -> bool {
        if len < HDR_LEN || chain::total_len(bufs) < len as u64 {
            return false;
        }
        self.scratch[..HDR_LEN].fill(0);
        self.scratch[HDR_LEN - 2..HDR_LEN].copy_from_slice(&1u16.to_le_bytes());
        let mut at = 0;
        for b in bufs {
            if at == len {
                break;
            }
            let n = (b.len as usize).min(len - at);
            if mem.write_slice(&self.scratch[at..at + n], b.addr).is_err() {
                return false;
            }
            at += n;
        }
        bump(&self.counters.rx_packets, 1);
        bump(&self.counters.rx_bytes, (len - HDR_LEN) as u64);
        true
    }
}

/// The frame length of a TX chain, or `None` if it must be dropped: a device-writable buffer,
/// shorter than a header plus an Ethernet header, or longer than [`MAX_TX_LEN`].
fn tx_frame_len(bufs: &[Buf]) -> Option<usize> {
    let len = chain::total_len(bufs);
    let ok = bufs.iter().all(|b| !b.writable) && (MIN_TX_LEN as u64..=MAX_TX_LEN as u64).contains(&len);
    ok.then_some(len as usize)
}
