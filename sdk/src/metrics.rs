//! The AVS's own metrics, in the Prometheus text format, appended to the node's `GET /metrics`.
//!
//! Names must start with the AVS's own prefix (not `spacecore_` or `eigen_`, which are the
//! runtime's); [`Metrics`] checks names and label values so that a typo cannot break the page
//! the node's other metrics are on.

use alloc::string::String;
use core::fmt::Write;

/// A writer of metric families.
#[derive(Debug, Default)]
pub struct Metrics {
    text: String,
}

impl Metrics {
    /// An empty page.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// A counter family `name` (it should end in `_total`) with one sample per `(labels, value)`.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(&[(&str, &str)], u64)]) {
        self.family(name, help, "counter", samples.iter().map(|(l, v)| (*l, *v as f64)));
    }

    /// A gauge family `name`.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        self.family(name, help, "gauge", samples.iter().copied());
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text written so far.
    pub fn into_string(self) -> String {
        self.text
    }

    fn family<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        samples: impl Iterator<Item = (&'a [(&'a str, &'a str)], f64)>,
    ) {
        if !valid_name(name) || name.starts_with("spacecore_") || name.starts_with("eigen_") {
            return;
        }
        let help: String = help.chars().map(|c| if c == '\n' || c == '\\' { ' ' } else { c }).collect();
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                let mut first = true;
                self.text.push('{');
                for (label, value) in labels.iter() {
                    if !valid_name(label) || label.starts_with("__") {
                        continue;
                    }
                    if !first {
                        self.text.push(',');
                    }
                    first = false;
                    let _ = write!(self.text, "{label}=\"");
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
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {value}");
        }
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*` (no colons: those are for recording rules).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
            m.as_str(),
            "# HELP api_calls_total Calls.\n# TYPE api_calls_total counter\napi_calls_total{outcome=\"ok\"} 3\n\
             api_calls_total{outcome=\"a\\\"b\\\\\"} 1\n# HELP api_score Score of it.\n# TYPE api_score gauge\napi_score 0.5\n"
        );
    }

    #[test]
    fn refuses_the_runtimes_prefixes_and_bad_names() {
        let mut m = Metrics::new();
        m.counter("spacecore_x_total", "x", &[(&[], 1)]);
        m.counter("eigen_x_total", "x", &[(&[], 1)]);
        m.counter("bad-name", "x", &[(&[], 1)]);
        m.counter("", "x", &[(&[], 1)]);
        assert_eq!(m.as_str(), "");
    }
}
