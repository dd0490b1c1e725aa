//! Order statistics shared by every bench.

use serde::Serialize;

/// The `p`-th percentile (0..=100) of `samples`, interpolating linearly
/// between the two nearest ranks. `None` for no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let rank = p.clamp(0.0, 100.0) / 100.0 * last as f64;
    // `rank` lies in 0..=last, so these conversions cannot go out of range.
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    let fraction = rank - below as f64;
    Some(sorted[below] + (sorted[above] - sorted[below]) * fraction)
}

/// The median: the middle sample, or the mean of the two middle samples.
pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// The smallest sample.
pub fn min(samples: &[f64]) -> Option<f64> {
    samples.iter().copied().min_by(f64::total_cmp)
}

/// The largest sample.
pub fn max(samples: &[f64]) -> Option<f64> {
    samples.iter().copied().max_by(f64::total_cmp)
}

/// A summary of one measured quantity, with the samples it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p90: f64,
    pub samples: Vec<f64>,
}

impl Summary {
    /// `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        Some(Summary {
            median: median(samples)?,
            min: min(samples)?,
            max: max(samples)?,
            p90: percentile(samples, 90.0)?,
            samples: samples.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn min_max_and_percentiles() {
        let xs: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(min(&xs), Some(1.0));
        assert_eq!(max(&xs), Some(11.0));
        assert_eq!(percentile(&xs, 0.0), Some(1.0));
        assert_eq!(percentile(&xs, 100.0), Some(11.0));
        assert_eq!(percentile(&xs, 90.0), Some(10.0));
        assert_eq!(percentile(&[10.0, 20.0], 25.0), Some(12.5));
        assert_eq!(min(&[]), None);
    }

    #[test]
    fn summary_keeps_samples_in_run_order() {
        let s = Summary::of(&[5.0, 1.0, 9.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (4.0, 1.0, 9.0));
        assert_eq!(s.samples, [5.0, 1.0, 9.0, 3.0]);
        assert!(Summary::of(&[]).is_none());
    }
}
