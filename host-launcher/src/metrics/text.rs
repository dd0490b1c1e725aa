//! Writing the Prometheus text exposition format, version 0.0.4: each family once, with its
//! `# HELP` and `# TYPE` lines before its samples; label values and help text escaped.

use std::fmt::Write;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// An exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts the family `name`. Counter names must end in `_total`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(valid_name(name), "{name}");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
        self
    }

    /// Appends text that is already in the format (the guest's filtered metrics).
    pub fn raw(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// The exposition.
    pub fn finish(self) -> String {
        self.text
    }
}

/// A sample value as the format writes it: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{value}")
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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

    #[test]
    fn families_have_help_and_type_and_escaped_labels() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things.\nWith a \\ backslash.")
            .sample("x_total", &[("port", "a\"b\\c\nd")], 3.0)
            .sample("x_total", &[], 0.5);
        e.family("y", Kind::Gauge, "Y.").sample("y", &[("a", "1"), ("b", "2")], f64::INFINITY);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nWith a \\\\ backslash.\n# TYPE x_total counter\n\
             x_total{port=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.5\n\
             # HELP y Y.\n# TYPE y gauge\ny{a=\"1\",b=\"2\"} +Inf\n"
        );
    }

    #[test]
    fn names_follow_the_format() {
        for good in ["a", "_a", "a:b", "spacecore_launcher_boots_total", "A9"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a b", "a{", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_label_name("cause") && !valid_label_name("a:b") && !valid_label_name("1a"));
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.007), "0.007");
    }
}
