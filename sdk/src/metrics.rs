//! The AVS's own metrics, in the Prometheus text format (written by the `prom-text` crate, as the
//! runtime's are), appended to the node's `GET /metrics`.
//!
//! Names must be the AVS's own: not under `spacecore_`, the runtime's prefix, nor one of the
//! EigenLayer families the runtime writes ([`RUNTIME_EIGEN`]). The other `eigen_` families of
//! EigenLayer's node specification, such as `eigen_rpc_request_total` and
//! `eigen_rpc_request_duration_seconds` (with its `avs_name`, `method` and `client_version`
//! labels), are the AVS's to write: only it knows its calls. A family whose name, or a sample
//! whose label names, the format does not allow is left out, so that a typo cannot break the
//! page the node's other metrics are on.

use alloc::string::String;
use prom_text::{Exposition, Kind, valid_label_name, valid_name};

pub use prom_text::{Histogram, series};

/// The `eigen_` families the runtime writes itself, with the AVS's name as `avs_name`.
pub const RUNTIME_EIGEN: [&str; 3] =
    ["eigen_performance_score", "eigen_fees_earned_total", "eigen_registered_stakes"];

/// A writer of metric families.
#[derive(Debug, Default)]
pub struct Metrics {
    page: Exposition,
}

/// One sample: its labels and value.
pub type Sample<'a, V> = (&'a [(&'a str, &'a str)], V);

impl Metrics {
    /// An empty page.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// A counter family `name` (ending in `_total`) with one sample per `(labels, value)`.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[Sample<'_, u64>]) {
        if name.ends_with("_total") && self.start(name, Kind::Counter, help) {
            for (labels, value) in samples.iter().filter(|(labels, _)| valid_labels(labels)) {
                self.page.sample(name, labels, value);
            }
        }
    }

    /// A gauge family `name`.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[Sample<'_, f64>]) {
        if self.start(name, Kind::Gauge, help) {
            for (labels, value) in samples.iter().filter(|(labels, _)| valid_labels(labels)) {
                self.page.sample_f64(name, labels, *value);
            }
        }
    }

    /// A histogram family `name` (ending in `_seconds`) of durations kept in nanoseconds, one
    /// sample per `(labels, histogram)`.
    pub fn seconds_histogram<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[Sample<'_, &Histogram<N>>],
    ) {
        if name.ends_with("_seconds") && self.start(name, Kind::Histogram, help) {
            for (labels, histogram) in samples.iter().filter(|(labels, _)| valid_labels(labels)) {
                self.page.seconds_histogram(name, labels, histogram);
            }
        }
    }

    /// The text written.
    pub fn into_string(self) -> String {
        self.page.finish()
    }

    fn start(&mut self, name: &str, kind: Kind, help: &str) -> bool {
        let own = valid_name(name) && !name.starts_with("spacecore_") && !RUNTIME_EIGEN.contains(&name);
        if own {
            self.page.family(name, kind, help);
        }
        own
    }
}

fn valid_labels(labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(name, _)| valid_label_name(name) && !name.starts_with("__"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_escapes_label_values() {
        let mut m = Metrics::new();
        m.counter("api_calls_total", "Calls.", &[(&[("outcome", "ok")], 3), (&[("outcome", "a\"b\\")], 1)]);
        m.gauge("api_score", "Score\nof it.", &[(&[], 0.5)]);
        assert_eq!(
            m.into_string(),
            "# HELP api_calls_total Calls.\n# TYPE api_calls_total counter\napi_calls_total{outcome=\"ok\"} 3\n\
             api_calls_total{outcome=\"a\\\"b\\\\\"} 1\n# HELP api_score Score\\nof it.\n# TYPE api_score gauge\napi_score 0.5\n"
        );
    }

    #[test]
    fn refuses_the_runtimes_prefixes_and_bad_names() {
        let mut m = Metrics::new();
        m.counter("spacecore_x_total", "x", &[(&[], 1)]);
        m.counter("eigen_fees_earned_total", "x", &[(&[], 1)]);
        m.gauge("eigen_performance_score", "x", &[(&[], 1.0)]);
        m.seconds_histogram("api_latency", "no unit", &[(&[], &Histogram::new([1]))]);
        m.counter("bad-name_total", "x", &[(&[], 1)]);
        m.counter("no_suffix", "x", &[(&[], 1)]);
        m.gauge("", "x", &[(&[], 1.0)]);
        m.gauge("ok", "x", &[(&[("bad-label", "v")], 1.0), (&[("__reserved", "v")], 2.0)]);
        assert_eq!(m.into_string(), "# HELP ok x\n# TYPE ok gauge\n");
    }

    #[test]
    fn eigen_families_of_the_avs_and_histograms() {
        let mut m = Metrics::new();
        let mut h = Histogram::new([1_000_000, 10_000_000]);
        h.observe(2_000_000);
        m.counter("eigen_rpc_request_total", "Calls.", &[(&[("method", "m")], 1)]);
        m.seconds_histogram("eigen_rpc_request_duration_seconds", "Time.", &[(&[("method", "m")], &h)]);
        let page = m.into_string();
        assert!(page.contains("eigen_rpc_request_total{method=\"m\"} 1\n"), "{page}");
        assert!(
            page.contains("eigen_rpc_request_duration_seconds_bucket{method=\"m\",le=\"0.01\"} 1\n"),
            "{page}"
        );
        assert!(page.contains("eigen_rpc_request_duration_seconds_count{method=\"m\"} 1\n"), "{page}");
    }
}
