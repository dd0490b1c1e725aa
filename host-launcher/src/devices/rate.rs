//! Token buckets for network rate limits. Pure: the caller passes the time.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Smallest burst for a limit given in bits per second.
const MIN_BURST_BYTES: u64 = 64 * 1024;

/// A token bucket over bytes: it refills at `rate_bytes_per_s` up to `burst_bytes` and starts
/// full. A rate of 0 means unlimited.
///
/// A packet larger than the burst passes when the bucket is full and leaves it in debt, so that
/// the long-run rate still holds: the next packets wait until the debt is paid back.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_bytes_per_s: u64,
    burst_bytes: u64,
    /// Available bytes; negative while in debt.
    tokens: i128,
    /// Refill not yet worth a whole byte, in bytes x 10^9.
    remainder: u128,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket refilling at `rate_bytes_per_s` (0 = unlimited) and holding at most
    /// `burst_bytes` (at least 1).
    pub fn new(rate_bytes_per_s: u64, burst_bytes: u64) -> Self {
        let burst_bytes = burst_bytes.max(1);
        TokenBucket {
            rate_bytes_per_s,
            burst_bytes,
            tokens: i128::from(burst_bytes),
            remainder: 0,
            last: None,
        }
    }

    /// A bucket for a limit in bits per second (0 = unlimited): bytes at an eighth of the rate
    /// (at least 1 byte/s), burst of 100 ms of traffic but at least 64 KiB.
    pub fn from_bits_per_s(bits_per_s: u64) -> Self {
        if bits_per_s == 0 {
            return Self::new(0, MIN_BURST_BYTES);
        }
        let rate = (bits_per_s / 8).max(1);
        Self::new(rate, MIN_BURST_BYTES.max(rate / 10))
    }

    /// Whether this bucket never limits.
    pub fn is_unlimited(&self) -> bool {
        self.rate_bytes_per_s == 0
    }

    /// The refill rate in bytes per second (0 = unlimited).
    pub fn rate_bytes_per_s(&self) -> u64 {
        self.rate_bytes_per_s
    }

    /// The most bytes the bucket holds.
    pub fn burst_bytes(&self) -> u64 {
        self.burst_bytes
    }

    /// Takes `bytes` if the bucket allows them now; otherwise how long until it will.
    pub fn try_consume(&mut self, bytes: u64, now: Instant) -> Result<(), Duration> {
        match self.wait_time(bytes, now) {
            Some(wait) => Err(wait),
            None => {
                self.take(bytes);
                Ok(())
            }
        }
    }

    /// How long until `bytes` may pass (`None`: now), without taking them.
    pub fn wait_time(&mut self, bytes: u64, now: Instant) -> Option<Duration> {
        if self.is_unlimited() {
            return None;
        }
        self.refill(now);
        let need = i128::from(bytes.min(self.burst_bytes));
        if self.tokens >= need {
            return None;
        }
        // deficit <= burst + debt < 2^66, so deficit * 10^9 < 2^96: no overflow.
        let deficit = (need - self.tokens) as u128;
        let scaled = (deficit * NANOS_PER_SEC).saturating_sub(self.remainder);
        let nanos = scaled.div_ceil(u128::from(self.rate_bytes_per_s));
        Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).max(Duration::from_nanos(1)))
    }

    /// Takes `bytes` unconditionally (for data already received), going into debt if need be.
    pub fn charge(&mut self, bytes: u64, now: Instant) {
        if self.is_unlimited() {
            return;
        }
        self.refill(now);
        self.take(bytes);
    }

    fn take(&mut self, bytes: u64) {
        if !self.is_unlimited() {
            // Debt never exceeds one u64 of bytes below zero, whatever the caller does.
            self.tokens = (self.tokens - i128::from(bytes)).max(-i128::from(u64::MAX));
        }
    }

    fn refill(&mut self, now: Instant) {
        let Some(last) = self.last.replace(now) else { return };
        // `now` earlier than `last` (a caller's clock mix-up) counts as no time passing.
        let elapsed = now.saturating_duration_since(last).as_nanos();
        let scaled = elapsed.saturating_mul(u128::from(self.rate_bytes_per_s)).saturating_add(self.remainder);
        let added = scaled / NANOS_PER_SEC;
        let room = (i128::from(self.burst_bytes) - self.tokens) as u128;
        if added >= room {
            self.tokens = i128::from(self.burst_bytes);
            self.remainder = 0;
        } else {
            self.tokens += added as i128;
            self.remainder = scaled % NANOS_PER_SEC;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unlimited_always_passes() {
        let mut b = TokenBucket::from_bits_per_s(0);
        let t = Instant::now();
        for _ in 0..1000 {
            assert_eq!(b.try_consume(u64::MAX, t), Ok(()));
        }
        assert!(b.is_unlimited());
    }

    #[test]
    fn burst_then_wait_then_refill() {
        // 1000 bytes/s, burst 100.
        let mut b = TokenBucket::new(1000, 100);
        let t = Instant::now();
        assert_eq!(b.try_consume(60, t), Ok(()));
        assert_eq!(b.try_consume(40, t), Ok(()));
        // Empty: 10 bytes take 10 ms.
        assert_eq!(b.try_consume(10, t), Err(ms(10)));
        assert_eq!(b.try_consume(10, t + ms(5)), Err(ms(5)));
        assert_eq!(b.try_consume(10, t + ms(10)), Ok(()));
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let mut b = TokenBucket::new(1000, 100);
        let t = Instant::now();
        assert_eq!(b.try_consume(100, t), Ok(()));
        // A long idle period refills to the burst only.
        let later = t + Duration::from_secs(3600);
        assert_eq!(b.try_consume(100, later), Ok(()));
        assert_eq!(b.try_consume(1, later), Err(ms(1)));
    }

    #[test]
    fn fractional_refills_accumulate() {
        // 1000 bytes/s = one byte per ms; polling every 100 us must not lose the fractions.
        let mut b = TokenBucket::new(1000, 10);
        let t = Instant::now();
        assert_eq!(b.try_consume(10, t), Ok(()));
        let mut now = t;
        for _ in 0..10 {
            now += Duration::from_micros(100);
            let _ = b.wait_time(1, now);
        }
        assert_eq!(b.try_consume(1, now), Ok(()));
    }

    #[test]
    fn packet_larger_than_burst_passes_when_full_and_leaves_debt() {
        let mut b = TokenBucket::new(1000, 100);
        let t = Instant::now();
        assert_eq!(b.try_consume(300, t), Ok(()));
        // 200 bytes of debt plus 1 byte: 201 ms.
        assert_eq!(b.wait_time(1, t), Some(ms(201)));
        // Not full yet after 250 ms (50 tokens): the big one waits for a full bucket.
        assert_eq!(b.try_consume(300, t + ms(250)), Err(ms(50)));
        assert_eq!(b.try_consume(300, t + ms(300)), Ok(()));
    }

    #[test]
    fn charge_goes_into_debt() {
        let mut b = TokenBucket::new(1000, 100);
        let t = Instant::now();
        b.charge(150, t);
        assert_eq!(b.wait_time(1, t), Some(ms(51)));
    }

    #[test]
    fn huge_rates_and_long_idle_do_not_overflow() {
        let mut b = TokenBucket::new(u64::MAX, u64::MAX);
        let t = Instant::now();
        assert_eq!(b.try_consume(u64::MAX, t), Ok(()));
        assert_eq!(b.try_consume(u64::MAX, t + Duration::from_secs(10 * 365 * 24 * 3600)), Ok(()));
        b.charge(u64::MAX, t);
        b.charge(u64::MAX, t);
        assert!(b.wait_time(u64::MAX, t).is_some());

        let mut slow = TokenBucket::new(1, u64::MAX);
        slow.charge(u64::MAX, t);
        slow.charge(u64::MAX, t);
        // Centuries, saturated rather than wrapped.
        assert_eq!(slow.wait_time(u64::MAX, t), Some(Duration::from_nanos(u64::MAX)));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(1000, 100);
        let t = Instant::now() + Duration::from_secs(1);
        assert_eq!(b.try_consume(100, t), Ok(()));
        assert!(b.try_consume(1, t - Duration::from_millis(500)).is_err());
    }

    #[test]
    fn bits_per_second_conversion() {
        let b = TokenBucket::from_bits_per_s(8_000_000_000);
        assert_eq!(b.rate_bytes_per_s(), 1_000_000_000);
        assert_eq!(b.burst_bytes(), 100_000_000);
        let small = TokenBucket::from_bits_per_s(8_000);
        assert_eq!(small.rate_bytes_per_s(), 1000);
        assert_eq!(small.burst_bytes(), 64 * 1024);
        assert_eq!(TokenBucket::from_bits_per_s(3).rate_bytes_per_s(), 1);
    }
}
