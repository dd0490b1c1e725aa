//! `hac::parse_str` on arbitrary text: it never panics; a plan always serialises to JSON and
//! parsing is deterministic; an error is one line, names its position whenever it names a key,
//! and its position is inside the text.

use std::path::Path;

use hac::HostLimits;

const LIMITS: HostLimits = HostLimits { max_vcpus: 32, max_memory_bytes: 16 << 30 };

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.toml");
    match hac::parse_str(source, path, &LIMITS) {
        Ok(plan) => {
            serde_json::to_string(&plan).expect("a plan serialises to JSON");
            assert_eq!(hac::parse_str(source, path, &LIMITS), Ok(plan), "parsing is deterministic");
        }
        Err(e) => {
            assert_eq!(e.file(), path);
            assert!(!e.message().is_empty());
            assert_eq!(e.line().is_some(), e.column().is_some(), "{e}");
            assert!(e.key().is_empty() || e.line().is_some(), "an error about a key has a line: {e}");
            if let (Some(line), Some(column)) = (e.line(), e.column()) {
                let lines = source.split('\n').count();
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
                let width = source.split('\n').nth(line - 1).unwrap_or("").chars().count();
                assert!((1..=width + 1).contains(&column), "column {column} of {width}: {e}");
            }
            assert!(!e.to_string().contains(['\n', '\r']), "the message is one line: {e:?}");
        }
    }
}
