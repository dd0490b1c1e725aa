//! The one error type of this crate, and the mapping from byte offsets in the
//! spec file to 1-based line and column numbers.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a spec file was rejected.
///
/// It always names the file; it names the dotted key (for example
/// `spec.resources.memory`) and the 1-based line and column whenever the
/// problem can be pinned to a place in the file, which is every case except a
/// file that could not be read.
///
/// `Display` renders it on one line as `FILE:LINE:COL: KEY: message`. The
/// `LINE:COL` part is left out when unknown, and the `KEY` part is left out
/// when the problem is not tied to a key (a TOML syntax error, an unreadable
/// file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    file: PathBuf,
    line: Option<usize>,
    column: Option<usize>,
    key: String,
    message: String,
}

impl SpecError {
    /// An error with no position in the file (for example: the file could not
    /// be read).
    pub(crate) fn without_position(file: &Path, key: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            key: key.to_owned(),
            message: one_line(message.into()),
        }
    }

    /// An error at byte offset `span.start` of `source`.
    pub(crate) fn at(
        file: &Path,
        source: &str,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(source, span.start);
        Self {
            file: file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            key: key.to_owned(),
            message: one_line(message.into()),
        }
    }

    /// The spec file the error is about, as it was given to the parser.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The dotted key the error is about (`spec.resources.memory`), or `""`
    /// when it is not about one key (TOML syntax error, unreadable file).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The 1-based line of the offending key or value, if known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based column (in characters) of the offending key or value, if
    /// known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// What is wrong and what is expected, without file, position or key.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SpecError {}

/// 1-based (line, column) of byte offset `offset` in `source`; the column
/// counts characters, not bytes. Offsets past the end map to the end.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Keeps the `Display` form on one line whatever a message contains.
fn one_line(message: String) -> String {
    if message.contains(['\n', '\r']) {
        message
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        message
    }
}
