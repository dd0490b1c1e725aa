//! Writing the Prometheus text exposition format, version 0.0.4: each family once, with its
//! `# HELP` and `# TYPE` lines before its samples; help text and label values escaped; histogram
//! buckets with `le`, then `_sum` and `_count`.
//!
//! `no_std` + `alloc`: the launcher's, the unikernel's and the aggregator's `/metrics` use the
//! same writer, and the same [`Histogram`] of durations.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod histogram;

pub use histogram::{Histogram, Seconds, series};

use alloc::string::String;
use core::fmt::{self, Display, Write};

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in cumulative buckets, with `_sum` and `_count`.
    Histogram,
}

/// A float sample value as the format writes it: `NaN`, `+Inf`, `-Inf`, else the shortest
/// decimal form (integers without a fraction).
#[derive(Debug, Clone, Copy)]
pub struct Float(pub f64);

impl Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v.is_infinite() => f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
            v => write!(f, "{v}"),
        }
    }
}

/// An exposition being written. Writing to a `String` cannot fail, so no method returns an
/// error.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// An empty exposition with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Exposition { text: String::with_capacity(capacity) }
    }

    /// Starts the family `name`. Counter names must end in `_total`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(valid_name(name), "{name}");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = write!(self.text, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.text.push_str("\\\\"),
                '\n' => self.text.push_str("\\n"),
                c => self.text.push(c),
            }
        }
        let _ = writeln!(self.text, "\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the family just started: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.series(name, labels, None, value)
    }

    /// [`Exposition::sample`] of a float, written as [`Float`].
    pub fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.sample(name, labels, Float(value))
    }

    /// The samples of histogram `name` with `labels`: one `_bucket` per `(upper bound,
    /// cumulative count)` of `buckets`, the `+Inf` bucket (`count`), then `_sum` and `_count`.
    pub fn histogram<B: Display>(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: impl IntoIterator<Item = (B, u64)>,
        sum: impl Display,
        count: u64,
    ) -> &mut Self {
        let bucket = alloc::format!("{name}_bucket");
        let mut le = String::with_capacity(24);
        for (bound, cumulative) in buckets {
            le.clear();
            let _ = write!(le, "{bound}");
            self.series(&bucket, labels, Some(&le), cumulative);
        }
        self.series(&bucket, labels, Some("+Inf"), count);
        self.sample(&alloc::format!("{name}_sum"), labels, sum);
        self.sample(&alloc::format!("{name}_count"), labels, count)
    }

    /// Appends text that is already in the format (metrics scraped from elsewhere).
    pub fn raw(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// The exposition.
    pub fn finish(self) -> String {
        self.text
    }

    /// One sample, with `le` after `labels` if given.
    fn series(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        le: Option<&str>,
        value: impl Display,
    ) -> &mut Self {
        self.text.push_str(name);
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (label, value)) in all.enumerate() {
            debug_assert!(valid_label_name(label), "{label}");
            self.text.push(if i == 0 { '{' } else { ',' });
            self.text.push_str(label);
            self.text.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.text.push_str("\\\\"),
                    '"' => self.text.push_str("\\\""),
                    '\n' => self.text.push_str("\\n"),
                    c => self.text.push(c),
                }
            }
            self.text.push('"');
        }
        if !labels.is_empty() || le.is_some() {
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn families_have_help_and_type_and_escaped_labels() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things.\nWith a \\ backslash.")
            .sample_f64("x_total", &[("port", "a\"b\\c\nd")], 3.0)
            .sample_f64("x_total", &[], 0.5);
        e.family("y", Kind::Gauge, "Y.").sample_f64("y", &[("a", "1"), ("b", "2")], f64::INFINITY);
        e.family("z", Kind::Gauge, "Z.").sample("z", &[], 7u64);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nWith a \\\\ backslash.\n# TYPE x_total counter\n\
             x_total{port=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.5\n\
             # HELP y Y.\n# TYPE y gauge\ny{a=\"1\",b=\"2\"} +Inf\n\
             # HELP z Z.\n# TYPE z gauge\nz 7\n"
        );
    }

    #[test]
    fn histograms_have_buckets_sum_and_count() {
        let mut e = Exposition::with_capacity(256);
        e.family("d_seconds", Kind::Histogram, "D.").histogram(
            "d_seconds",
            &[("m", "x")],
            [("0.1", 1), ("1", 3)],
            "1.25",
            4,
        );
        assert_eq!(
            e.finish(),
            "# HELP d_seconds D.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{m=\"x\",le=\"0.1\"} 1\nd_seconds_bucket{m=\"x\",le=\"1\"} 3\n\
             d_seconds_bucket{m=\"x\",le=\"+Inf\"} 4\nd_seconds_sum{m=\"x\"} 1.25\nd_seconds_count{m=\"x\"} 4\n"
        );
        let mut bare = Exposition::default();
        bare.histogram("y", &[], core::iter::empty::<(u8, u64)>(), 0, 2);
        assert_eq!(bare.finish(), "y_bucket{le=\"+Inf\"} 2\ny_sum 0\ny_count 2\n");
    }

    #[test]
    fn names_and_values_follow_the_format() {
        for good in ["a", "_a", "a:b", "spacecore_launcher_boots_total", "A9"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a b", "a{", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_label_name("cause") && !valid_label_name("a:b") && !valid_label_name("1a"));
        assert_eq!(format!("{}", Float(f64::NAN)), "NaN");
        assert_eq!(format!("{}", Float(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(format!("{}", Float(12.0)), "12");
        assert_eq!(format!("{}", Float(0.007)), "0.007");
    }
}
