//! The guest's console budget: a guest may write at most [`RATE`] bytes per second to the
//! launcher's log, in bursts of up to [`BURST`] bytes. Beyond that its text is dropped, counted
//! (`spacecore_launcher_console_dropped_bytes_total`), and reported once, in one launcher line,
//! when the guest's next write fits again, so a hostile or broken guest cannot flood the host's
//! log or disk while an ordinary boot (a few KiB) is never cut.

use std::time::Instant;

/// Sustained console bytes per second.
pub const RATE: u64 = 64 << 10;
/// Bytes a guest may write at once before the rate applies.
pub const BURST: u64 = 256 << 10;

/// A token bucket of console bytes.
#[derive(Debug)]
pub struct Bucket {
    tokens: u64,
    at: Instant,
    /// Bytes dropped since the last report.
    unreported: u64,
}

/// What to do with one console write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Write it; first report that `dropped` bytes were dropped before it (0: none).
    Write { dropped: u64 },
    /// Drop it.
    Drop,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> Self {
        Bucket { tokens: BURST, at: now, unreported: 0 }
    }

    /// Takes `len` bytes from the bucket at `now`, refilled at [`RATE`] since the last call.
    pub fn admit(&mut self, len: usize, now: Instant) -> Admission {
        let elapsed = now.saturating_duration_since(self.at);
        let refill =
            (elapsed.as_nanos().min(u128::from(u64::MAX)) as u64).saturating_mul(RATE) / 1_000_000_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(BURST);
            self.at = now;
        }
        let len = len as u64;
        if len > self.tokens {
            self.unreported = self.unreported.saturating_add(len);
            return Admission::Drop;
        }
        self.tokens -= len;
        Admission::Write { dropped: std::mem::take(&mut self.unreported) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_reported_once() {
        let start = Instant::now();
        let mut bucket = Bucket::new(start);
        // The burst goes through at once, in 4 KiB writes (the largest console write).
        let mut written = 0;
        while bucket.admit(4096, start) != Admission::Drop {
            written += 4096;
        }
        assert_eq!(written, BURST);
        // Then everything is dropped until the bucket refills...
        for _ in 0..99 {
            assert_eq!(bucket.admit(4096, start), Admission::Drop);
        }
        // ...at RATE bytes per second; the next write reports what was dropped.
        let later = start + Duration::from_millis(100);
        assert_eq!(bucket.admit(4096, later), Admission::Write { dropped: 100 * 4096 });
        assert_eq!(bucket.admit(10, later), Admission::Write { dropped: 0 });
        // One second of flooding writes at most BURST + RATE bytes.
        let mut bucket = Bucket::new(start);
        let mut total = 0u64;
        for ms in 0..=1000u64 {
            for _ in 0..16 {
                if let Admission::Write { .. } = bucket.admit(4096, start + Duration::from_millis(ms)) {
                    total += 4096;
                }
            }
        }
        assert!(total <= BURST + RATE, "{total} bytes in one second");
        assert!(total >= BURST + RATE - 2 * 4096, "{total}: the rate is given");
    }

    #[test]
    fn an_ordinary_boot_is_never_cut() {
        let start = Instant::now();
        let mut bucket = Bucket::new(start);
        for _ in 0..200 {
            assert_eq!(bucket.admit(120, start), Admission::Write { dropped: 0 });
        }
    }
}
