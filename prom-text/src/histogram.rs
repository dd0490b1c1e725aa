//! Durations counted into fixed buckets, in integer nanoseconds, and shown as seconds: the
//! histograms of the unikernel's and the aggregator's `/metrics`.

use core::fmt::{self, Display};

use crate::Exposition;

/// `N` bucket bounds (ns) of the 1, 2.5, 5 series from `first`, itself 1, 2.5 or 5 times a power
/// of ten of at least 10: `series::<4>(5_000_000)` is 5 ms, 10 ms, 25 ms, 50 ms.
pub const fn series<const N: usize>(first: u64) -> [u64; N] {
    let mut bounds = [0; N];
    let mut bound = first;
    let mut i = 0;
    while i < N {
        bounds[i] = bound;
        let mut decade = 1;
        while decade * 10 <= bound {
            decade *= 10;
        }
        // 1 → 2.5 → 5 → 10 times the decade.
        bound = if bound == decade { bound * 5 / 2 } else { bound * 2 };
        i += 1;
    }
    bounds
}

/// Durations observed into fixed buckets, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram<const N: usize> {
    bounds_ns: [u64; N],
    /// Observations in each bucket alone (not cumulative): at most its bound, above the previous.
    counts: [u64; N],
    count: u64,
    sum_ns: u64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram with these bucket bounds (ascending).
    pub const fn new(bounds_ns: [u64; N]) -> Self {
        Histogram { bounds_ns, counts: [0; N], count: 0, sum_ns: 0 }
    }

    /// Counts one duration of `ns` nanoseconds.
    pub fn observe(&mut self, ns: u64) {
        if let Some(i) = self.bounds_ns.iter().position(|&bound| ns <= bound) {
            self.counts[i] = self.counts[i].saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their total, in nanoseconds.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// Each bucket's bound (ns) and the observations at most that bound (cumulative).
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut total = 0u64;
        self.bounds_ns.iter().zip(self.counts).map(move |(&bound, n)| {
            total = total.saturating_add(n);
            (bound, total)
        })
    }
}

/// A number of nanoseconds shown as seconds, exactly: `1`, `0.005`, `2.5`, `0.000123456`.
#[derive(Debug, Clone, Copy)]
pub struct Seconds(pub u64);

impl Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, mut frac) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        write!(f, "{whole}")?;
        if frac == 0 {
            return Ok(());
        }
        let mut digits = 9;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, ".{frac:0digits$}")
    }
}

impl Exposition {
    /// The samples of histogram `name` with `labels`: its buckets (bounds in seconds), `_sum`
    /// (seconds) and `_count`.
    pub fn seconds_histogram<const N: usize>(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &Histogram<N>,
    ) -> &mut Self {
        let buckets = h.cumulative().map(|(bound, count)| (Seconds(bound), count));
        self.histogram(name, labels, buckets, Seconds(h.sum_ns()), h.count())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn series_go_one_two_and_a_half_five() {
        assert_eq!(super::series::<4>(5_000_000), [5_000_000, 10_000_000, 25_000_000, 50_000_000]);
        assert_eq!(super::series::<4>(100_000), [100_000, 250_000, 500_000, 1_000_000]);
        assert_eq!(super::series::<2>(2_500), [2_500, 5_000]);
    }

    use super::*;
    use alloc::format;

    #[test]
    fn seconds_are_exact_decimals() {
        for (ns, text) in [
            (0, "0"),
            (1, "0.000000001"),
            (5_000_000, "0.005"),
            (1_000_000_000, "1"),
            (2_500_000_000, "2.5"),
            (123_456_789, "0.123456789"),
            (10_000_000_000, "10"),
            (u64::MAX, "18446744073.709551615"),
        ] {
            assert_eq!(format!("{}", Seconds(ns)), text);
            assert_eq!(text.parse::<f64>().unwrap(), ns as f64 / 1e9);
        }
    }

    #[test]
    fn histograms_bucket_at_their_bounds_and_saturate() {
        let mut h = Histogram::new([10, 20, 40]);
        for ns in [0, 10, 11, 20, 40, 41, u64::MAX] {
            h.observe(ns);
        }
        assert_eq!(h.cumulative().collect::<alloc::vec::Vec<_>>(), [(10, 2), (20, 4), (40, 5)]);
        assert_eq!(h.count(), 7);
        assert_eq!(h.sum_ns(), u64::MAX, "saturates");
    }

    #[test]
    fn buckets_are_cumulative_and_overflow_counts_only_in_the_total() {
        let mut h = Histogram::new([10, 100]);
        for ns in [5, 10, 11, 100, 1000] {
            h.observe(ns);
        }
        assert_eq!(h.cumulative().collect::<alloc::vec::Vec<_>>(), [(10, 2), (100, 4)]);
        assert_eq!((h.count(), h.sum_ns()), (5, 1126));
        let mut e = Exposition::default();
        e.family("t_seconds", crate::Kind::Histogram, "t").seconds_histogram("t_seconds", &[], &h);
        let text = e.finish();
        assert!(text.contains("t_seconds_bucket{le=\"0.00000001\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("t_seconds_sum 0.000001126\n"), "{text}");
    }
}
