//! The launcher's output: one line per event, from the launcher or the guest, written whole so
//! that lines from several threads never interleave. Every line the launcher prints goes
//! through [`Log`], in one of two formats (`spec.observability.logging`):
//!
//! - text: `[NAME launcher] message` or `[NAME guest] message`;
//! - JSON: one object per line, `{"timestamp":"2026-11-21T19:16:47.123Z","level":"info",
//!   "spacecore":"NAME","source":"launcher","message":"...","fields":{...}}`, for Loki, Fluentd
//!   or ELK. `fields` carries the event's data (`event`, counts, durations) and is `{}` for
//!   plain lines.
//!
//! Lines go to stdout or, with `spec.observability.log_file`, are appended to that file.

use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub use hac::LogFormat;

/// How serious a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Lifecycle and guest output.
    Info,
    /// Something went wrong and the launcher copes (a guest failure it restarts from).
    Warn,
    /// The run ends badly (the launcher gives up, or fails).
    Error,
}

impl Level {
    /// The level's name in JSON lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// Where lines go, and in which format. Cheap to clone; clones share the destination.
#[derive(Clone)]
pub struct Log {
    name: Arc<str>,
    format: LogFormat,
    sink: Sink,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("name", &self.name).field("format", &self.format).finish()
    }
}

impl Log {
    /// Text lines on stdout for the spacecore `name`.
    pub fn new(name: &str) -> Self {
        Self::to(name, LogFormat::Text, Box::new(std::io::stdout()))
    }

    /// Lines in `format` for the spacecore `name`, written to `out`.
    pub fn to(name: &str, format: LogFormat, out: Box<dyn Write + Send>) -> Self {
        Log { name: name.into(), format, sink: Arc::new(Mutex::new(out)) }
    }

    /// Lines in `format` on stdout, or appended to `file`: created if absent (mode 0640), never
    /// through a symbolic link, and only a regular file (a device or FIFO is refused without
    /// blocking).
    pub fn open(name: &str, format: LogFormat, file: Option<&std::path::Path>) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let out: Box<dyn Write + Send> = match file {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                    .open(path)
                    .map_err(|e| match e.raw_os_error() {
                        Some(libc::ELOOP) => {
                            std::io::Error::other("it is a symbolic link; name the file itself")
                        }
                        _ => e,
                    })?;
                if !file.metadata()?.is_file() {
                    return Err(std::io::Error::other("not a regular file"));
                }
                Box::new(file)
            }
            None => Box::new(std::io::stdout()),
        };
        Ok(Self::to(name, format, out))
    }

    /// The format lines are written in.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// A line from the launcher.
    pub fn launcher(&self, message: impl std::fmt::Display) {
        self.event(Level::Info, message, &[]);
    }

    /// A line from the launcher at `level`, with structured `fields` (JSON only; the text
    /// format prints the message alone, which must say the same).
    pub fn event(&self, level: Level, message: impl std::fmt::Display, fields: &[(&str, Value)]) {
        self.line(level, "launcher", &message.to_string(), fields);
    }

    /// Text the guest wrote to its console; one output line per guest line. Control characters
    /// other than tab are shown escaped so that a guest cannot forge launcher lines or move the
    /// terminal's cursor.
    pub fn guest(&self, text: &str) {
        for line in text.trim_end_matches('\n').split('\n') {
            self.line(Level::Info, "guest", &escape_controls(line), &[]);
        }
    }

    /// A line another launcher wrote in this log's format (a replica's, [`crate::scale`]),
    /// passed on as it is, newline added.
    pub fn forward(&self, line: &str) {
        let mut out = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }

    fn line(&self, level: Level, source: &str, text: &str, fields: &[(&str, Value)]) {
        let line = match self.format {
            LogFormat::Text => format!("[{} {source}] {text}\n", self.name),
            LogFormat::Json => json_line(SystemTime::now(), level, &self.name, source, text, fields),
        };
        let mut out = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // A closed stdout or a full disk must not stop the guest: the line is dropped.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// `text` with control characters other than tab escaped (`\n`, `\u{1b}`).
fn escape_controls(text: &str) -> String {
    let mut clean = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            clean.extend(c.escape_default());
        } else {
            clean.push(c);
        }
    }
    clean
}

/// One JSON line, newline included.
fn json_line(
    at: SystemTime,
    level: Level,
    name: &str,
    source: &str,
    message: &str,
    fields: &[(&str, Value)],
) -> String {
    let fields: Map<String, Value> = fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let mut object = Map::new();
    object.insert("timestamp".into(), rfc3339_utc(at).into());
    object.insert("level".into(), level.as_str().into());
    object.insert("spacecore".into(), name.into());
    object.insert("source".into(), source.into());
    object.insert("message".into(), message.into());
    object.insert("fields".into(), Value::Object(fields));
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// `at` as RFC 3339 in UTC with milliseconds: `2026-11-21T19:16:47.123Z`. Times before 1970
/// (a clock set very wrong) print as the epoch.
pub fn rfc3339_utc(at: SystemTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(at.max(UNIX_EPOCH))
        .format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// A [`Log`] that writes into memory, for tests.
#[cfg(test)]
pub fn capture(name: &str, format: LogFormat) -> (Log, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    (Log::to(name, format, Box::new(Shared(buffer.clone()))), buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lines(buffer: &Mutex<Vec<u8>>) -> Vec<String> {
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
    }

    #[test]
    fn text_lines_name_the_spacecore_and_the_source() {
        let (log, out) = capture("node-a", LogFormat::Text);
        log.launcher("ready in 7012 us");
        log.event(Level::Warn, "restart 1 after guest panic (backoff 10 ms)", &[("restart", 1.into())]);
        log.guest("one\ntwo\x1b[2J\n");
        assert_eq!(
            lines(&out),
            [
                "[node-a launcher] ready in 7012 us",
                "[node-a launcher] restart 1 after guest panic (backoff 10 ms)",
                "[node-a guest] one",
                "[node-a guest] two\\u{1b}[2J",
            ]
        );
    }

    #[test]
    fn json_lines_parse_and_carry_every_field() {
        let (log, out) = capture("node-a", LogFormat::Json);
        log.event(
            Level::Warn,
            "restart 2 after guest panic (backoff 20 ms)",
            &[("event", "restart".into()), ("restart", 2.into()), ("backoff_ms", 20.into())],
        );
        log.guest("hello \"world\"\n[node-a launcher] forged\u{7}");
        log.launcher("plain");
        let lines = lines(&out);
        assert_eq!(lines.len(), 4, "{lines:?}");
        let parsed: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).expect(l)).collect();
        for line in &parsed {
            let object = line.as_object().unwrap();
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            assert_eq!(keys.len(), 6, "{line}");
            for key in ["timestamp", "level", "spacecore", "source", "message", "fields"] {
                assert!(object.contains_key(key), "{key} missing in {line}");
            }
            assert_eq!(line["spacecore"], "node-a");
            assert!(line["fields"].is_object());
            let timestamp = line["timestamp"].as_str().unwrap();
            assert_eq!(timestamp.len(), "2026-11-21T19:16:47.123Z".len(), "{timestamp}");
            assert!(timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T', "{timestamp}");
        }
        assert_eq!(parsed[0]["level"], "warn");
        assert_eq!(parsed[0]["source"], "launcher");
        assert_eq!(parsed[0]["message"], "restart 2 after guest panic (backoff 20 ms)");
        assert_eq!(
            parsed[0]["fields"],
            serde_json::json!({"event": "restart", "restart": 2, "backoff_ms": 20})
        );
        assert_eq!(parsed[1]["source"], "guest");
        assert_eq!(parsed[1]["message"], "hello \"world\"");
        assert_eq!(parsed[2]["message"], "[node-a launcher] forged\\u{7}", "one line, no forged line");
        assert_eq!(parsed[3]["level"], "info");
        assert_eq!(parsed[3]["fields"], serde_json::json!({}));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |secs: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms);
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339_utc(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_utc(at(1_798_761_599, 0)), "2026-12-31T23:59:59.000Z");
        assert_eq!(rfc3339_utc(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_log_file_is_created_private_and_never_through_a_link_or_to_a_device() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        drop(Log::open("n", LogFormat::Text, Some(&path)).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = Log::open("n", LogFormat::Text, Some(&link)).err().unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = Log::open("n", LogFormat::Text, Some(std::path::Path::new("/dev/null"))).err().unwrap();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_log_file_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        std::fs::write(&path, "earlier\n").unwrap();
        let log = Log::open("n", LogFormat::Json, Some(&path)).unwrap();
        log.launcher("one");
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "earlier");
        let line: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(line["message"], "one");
    }
}
