//! The decision log: one JSON object per line for every decision about a task or a response
//! (`task_created`, `response`, `task_completed`, `task_expired`, `aggregation_failed`); see
//! `docs/aggregator.md`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Where decision lines go. Cloning shares the writer.
#[derive(Clone)]
pub struct DecisionLog {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecisionLog")
    }
}

/// A writer whose lines stay readable in memory, for tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog(Arc<Mutex<Vec<u8>>>);

impl MemoryLog {
    /// Every line written so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Write for MemoryLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl DecisionLog {
    /// Lines to `writer`, flushed one by one.
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        DecisionLog { out: Arc::new(Mutex::new(Box::new(writer))) }
    }

    /// Lines to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    /// Lines to a [`MemoryLog`], returned alongside.
    pub fn memory() -> (Self, MemoryLog) {
        let memory = MemoryLog::default();
        (Self::new(memory.clone()), memory)
    }

    /// Writes one line: `{"ts_ms": <unix ms>, "event": event, ...fields}`. A failing writer
    /// is reported on stderr once per line and does not stop the aggregator.
    pub fn record(&self, event: &str, fields: Value) {
        let mut line = Map::new();
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        line.insert("ts_ms".into(), Value::from(u64::try_from(ts).unwrap_or(u64::MAX)));
        line.insert("event".into(), Value::from(event));
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            eprintln!("aggregator: cannot write the decision log: {e}");
        }
    }
}
