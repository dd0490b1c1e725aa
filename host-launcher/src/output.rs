//! The launcher's output: one line per event, each marked with the spacecore's name and its
//! source, `[NAME launcher] ...` or `[NAME guest] ...`, written whole so that lines from several
//! vCPU threads never interleave.

use std::io::Write;

/// Where lines go.
#[derive(Debug, Clone)]
pub struct Log {
    name: String,
}

impl Log {
    /// A log for the spacecore `name`.
    pub fn new(name: &str) -> Self {
        Log { name: name.to_owned() }
    }

    /// A line from the launcher.
    pub fn launcher(&self, message: impl std::fmt::Display) {
        self.line("launcher", &message.to_string());
    }

    /// Text the guest wrote to its console; one output line per guest line. Control characters
    /// other than tab are shown escaped so that a guest cannot forge launcher lines or move the
    /// terminal's cursor.
    pub fn guest(&self, text: &str) {
        for line in text.trim_end_matches('\n').split('\n') {
            let mut clean = String::with_capacity(line.len());
            for c in line.chars() {
                if c.is_control() && c != '\t' {
                    clean.extend(c.escape_default());
                } else {
                    clean.push(c);
                }
            }
            self.line("guest", &clean);
        }
    }

    fn line(&self, source: &str, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the guest: the line is dropped.
        let _ = writeln!(out, "[{} {source}] {text}", self.name);
        let _ = out.flush();
    }
}
