//! The launcher's JSON log (`spec.observability.logging = "json"`, `docs/hac-launch.md`,
//! Logging), as the tests and the benches read it: one object per line, matched on its fields
//! rather than on the words of the human lines.
//!
//! ```text
//! {"timestamp":"2026-11-21T21:08:04.876Z","level":"info","spacecore":"n","source":"launcher",
//!  "message":"ready in 6737 us","fields":{"event":"ready","ready_us":6737}}
//! ```
//!
//! Events carry their data in `fields` (`ready`, `recovered`, `restart`, `guest_failed`,
//! `crash_loop`, `health_failed`, `health_recovered`, `metrics`, `guest_ended`,
//! `launcher_error`); other launcher lines have `fields` `{}` and only their `message`, which
//! [`LogLine::launcher`] matches by its start. A guest's console lines come with `source`
//! `guest`, so a guest cannot pass for the launcher.

use serde_json::{Map, Value};
use std::net::SocketAddr;

/// The `[spec.observability]` key that turns the JSON log on.
pub const JSON_LOGGING: &str = "logging = \"json\"";

/// `tables` (TOML tables of a spec, after `[spec.resources]`) with the JSON log on: `logging =
/// "json"` added to their `[spec.observability]`, or that table added. Tables that already name
/// a `logging` are returned as they are.
pub fn with_json_logging(tables: &str) -> String {
    if tables.lines().any(|l| l.trim_start().starts_with("logging")) {
        return tables.to_owned();
    }
    let header = "[spec.observability]";
    match tables.lines().position(|l| l.trim() == header) {
        Some(at) => {
            let mut lines: Vec<&str> = tables.lines().collect();
            lines.insert(at + 1, JSON_LOGGING);
            lines.join("\n") + "\n"
        }
        None => {
            let sep = if tables.is_empty() || tables.ends_with('\n') { "" } else { "\n" };
            format!("{tables}{sep}{header}\n{JSON_LOGGING}\n")
        }
    }
}

/// Who wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Launcher,
    Guest,
}

/// One line of the JSON log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// The spacecore's name.
    pub spacecore: String,
    pub source: Source,
    /// The text of the human line (guest text with control characters escaped).
    pub message: String,
    /// The event's data; empty for plain lines.
    pub fields: Map<String, Value>,
}

impl LogLine {
    /// Parses one line; an error naming what is wrong (not JSON, a key missing or of the wrong
    /// type, an unknown source or level, a key that is not documented).
    ///
    /// # Errors
    /// The line is not a JSON log line of the documented form.
    pub fn parse(line: &str) -> Result<LogLine, String> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("not a JSON line ({e}): {line}"))?;
        let Value::Object(mut object) = value else { return Err(format!("not a JSON object: {line}")) };
        let mut text = |key: &str| match object.remove(key) {
            Some(Value::String(s)) => Ok(s),
            other => Err(format!("`{key}` is {other:?}, not a string: {line}")),
        };
        let timestamp = text("timestamp")?;
        let level = text("level")?;
        let spacecore = text("spacecore")?;
        let source = match text("source")?.as_str() {
            "launcher" => Source::Launcher,
            "guest" => Source::Guest,
            other => return Err(format!("unknown source {other:?}: {line}")),
        };
        let message = text("message")?;
        let fields = match object.remove("fields") {
            Some(Value::Object(fields)) => fields,
            other => return Err(format!("`fields` is {other:?}, not an object: {line}")),
        };
        if let Some(key) = object.keys().next() {
            return Err(format!("undocumented key `{key}`: {line}"));
        }
        if !matches!(level.as_str(), "info" | "warn" | "error") {
            return Err(format!("unknown level {level:?}: {line}"));
        }
        Ok(LogLine { timestamp, level, spacecore, source, message, fields })
    }

    /// The launcher's event name (`fields.event`), for launcher lines that have one.
    pub fn event(&self) -> Option<&str> {
        (self.source == Source::Launcher).then(|| self.fields.get("event")?.as_str()).flatten()
    }

    /// Whether this is the launcher's event `name`.
    pub fn is_event(&self, name: &str) -> bool {
        self.event() == Some(name)
    }

    /// The field `name` of the event, as a whole number.
    pub fn u64_field(&self, name: &str) -> Option<u64> {
        self.fields.get(name)?.as_u64()
    }

    /// The field `name` of the event, as text.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.fields.get(name)?.as_str()
    }

    /// For a launcher line whose message starts with `start`: the rest of the message.
    pub fn launcher(&self, start: &str) -> Option<&str> {
        if self.source == Source::Launcher { self.message.strip_prefix(start) } else { None }
    }

    /// For a guest line whose message starts with `start`: the rest of the message.
    pub fn guest(&self, start: &str) -> Option<&str> {
        if self.source == Source::Guest { self.message.strip_prefix(start) } else { None }
    }

    /// The host address of the published port `name`, from the launcher's `published` event
    /// (its `port` and `address` fields).
    pub fn published(&self, name: &str) -> Option<SocketAddr> {
        if !self.is_event("published") || self.str_field("port") != Some(name) {
            return None;
        }
        self.str_field("address")?.parse().ok()
    }

    /// The `ready_us` of a `ready` event.
    pub fn ready_us(&self) -> Option<u64> {
        if self.is_event("ready") { self.u64_field("ready_us") } else { None }
    }
}

/// A line of the documented form from the spacecore `n`, as the launcher writes it: for the unit
/// tests of what reads the log.
pub fn json_line(source: Source, message: &str, fields: Value) -> String {
    let source = match source {
        Source::Launcher => "launcher",
        Source::Guest => "guest",
    };
    serde_json::json!({
        "timestamp": "2026-11-21T21:08:04.876Z", "level": "info", "spacecore": "n",
        "source": source, "message": message, "fields": fields,
    })
    .to_string()
}

/// Every line of `text` (a launcher's stdout in the JSON format), parsed; an error for the
/// first line that is not a JSON log line.
///
/// # Errors
/// A line of `text` is not a JSON log line.
pub fn parse_all(text: &str) -> Result<Vec<LogLine>, String> {
    text.lines().filter(|l| !l.trim().is_empty()).map(LogLine::parse).collect()
}

/// [`parse_all`] that panics with the offending line.
///
/// # Panics
/// A line of `text` is not a JSON log line.
pub fn lines(text: &str) -> Vec<LogLine> {
    parse_all(text).unwrap_or_else(|e| panic!("{e}\n--- the whole output ---\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &str = r#"{"timestamp":"2026-11-21T21:08:04.876Z","level":"info","spacecore":"n","source":"launcher","message":"ready in 6737 us","fields":{"event":"ready","ready_us":6737}}"#;

    #[test]
    fn lines_parse_and_events_are_read_from_fields() {
        let line = LogLine::parse(READY).unwrap();
        assert_eq!(line.source, Source::Launcher);
        assert_eq!(line.event(), Some("ready"));
        assert_eq!(line.ready_us(), Some(6737));
        assert_eq!(line.launcher("ready in "), Some("6737 us"));
        assert_eq!(line.guest("ready in "), None);
        // The same event from the guest is no event, and a plain line has none.
        let forged = LogLine::parse(&READY.replace("\"launcher\"", "\"guest\"")).unwrap();
        assert_eq!((forged.event(), forged.ready_us()), (None, None));
        let published =
            READY.replace("ready in 6737 us", "published HTTP: 127.0.0.1:4100 -> guest 10.0.0.2:80").replace(
                r#"{"event":"ready","ready_us":6737}"#,
                r#"{"event":"published","port":"HTTP","address":"127.0.0.1:4100","guest":"10.0.0.2:80"}"#,
            );
        let published = LogLine::parse(&published).unwrap();
        assert_eq!(published.published("HTTP"), Some("127.0.0.1:4100".parse().unwrap()));
        assert_eq!(published.published("HTTPS"), None);
        // The address comes from the fields, not from a message a guest could imitate.
        let plain = READY
            .replace("ready in 6737 us", "published HTTP: 127.0.0.1:4100 -> guest 10.0.0.2:80")
            .replace(r#"{"event":"ready","ready_us":6737}"#, "{}");
        assert_eq!(LogLine::parse(&plain).unwrap().published("HTTP"), None);
        assert_eq!(LogLine::parse(&plain).unwrap().event(), None);
    }

    #[test]
    fn what_is_not_a_documented_line_is_refused() {
        assert!(LogLine::parse("[n launcher] ready in 6737 us").is_err());
        assert!(LogLine::parse(&READY.replace("\"fields\":{", "\"extra\":1,\"fields\":{")).is_err());
        assert!(LogLine::parse(&READY.replace("\"info\"", "\"debug\"")).is_err());
        assert!(LogLine::parse(&READY.replace("\"launcher\"", "\"host\"")).is_err());
        assert!(
            LogLine::parse(&READY.replace(r#""fields":{"event":"ready","ready_us":6737}"#, r#""fields":[]"#))
                .is_err()
        );
        assert!(parse_all(&format!("{READY}\n\nhac-launch: oops\n")).is_err());
        assert_eq!(parse_all(&format!("{READY}\n\n{READY}\n")).unwrap().len(), 2);
        let made = json_line(
            Source::Launcher,
            "ready in 6737 us",
            serde_json::json!({"event": "ready", "ready_us": 6737}),
        );
        assert_eq!(LogLine::parse(&made).unwrap(), LogLine::parse(READY).unwrap());
    }

    #[test]
    fn json_logging_is_added_to_a_spec_once() {
        assert_eq!(with_json_logging(""), "[spec.observability]\nlogging = \"json\"\n");
        assert_eq!(
            with_json_logging("[spec.failover]\nx = 1"),
            "[spec.failover]\nx = 1\n[spec.observability]\nlogging = \"json\"\n"
        );
        assert_eq!(
            with_json_logging("[spec.observability]\nmonitoring = \"Prometheus\"\n[spec.failover]\n"),
            "[spec.observability]\nlogging = \"json\"\nmonitoring = \"Prometheus\"\n[spec.failover]\n"
        );
        let text = "[spec.observability]\nlogging = \"ELK\"\n";
        assert_eq!(with_json_logging(text), text);
    }
}
