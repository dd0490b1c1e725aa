//! What `cargo xtask test` and the tests agree on: the environment it sets for them, and the
//! record of the tests that could not run.
//!
//! A test that needs something this host may lack (`/dev/kvm`, root, a network namespace)
//! either runs or is **skipped**: it calls [`skip`] (or [`kvm`], [`root`], which call it) and
//! returns. The test harness still prints `ok` for it, so [`skip`] appends a line to the file
//! named by [`SKIP_LOG_ENV`], which `cargo xtask test` sets, reads at the end, counts and prints
//! by name (and fails on, in CI on a host with `/dev/kvm`). Without that variable a skip is a
//! failure: a test that did not run is never reported as passed. See `docs/xtask.md`.
//!
//! [`log`] reads the launcher's JSON log, which the tests and the benches match on instead of
//! the launcher's human lines; [`rng`] is the randomised tests' fixed pseudo-random sequence.

#![forbid(unsafe_code)]

pub mod log;
pub mod rng;

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The file where skipped tests are recorded, one line each; set by `cargo xtask test`.
pub const SKIP_LOG_ENV: &str = "SPACECORE_SKIP_LOG";
/// Set (to `1`) by `cargo xtask test` when `/dev/kvm` cannot be used: tests that boot VMs skip.
pub const NO_KVM_ENV: &str = "SPACECORE_NO_KVM";
/// Where the metrics tests find `promtool`; set by `cargo xtask test`, which provides it.
pub const PROMTOOL_ENV: &str = "SPACECORE_PROMTOOL";
/// The KVM device.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// A test that did not run, as recorded in the skip log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The test binary (`boot`, `host_launcher`, ...), without cargo's hash.
    pub binary: String,
    /// The test, as the caller named it.
    pub test: String,
    /// Why it did not run.
    pub reason: String,
}

impl Skip {
    /// The record's line, newline included. Tabs and line breaks inside fields become spaces.
    pub fn line(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        format!("{}\t{}\t{}\n", clean(&self.binary), clean(&self.test), clean(&self.reason))
    }

    /// A record's line (without its newline); `None` if it has not three fields.
    pub fn parse(line: &str) -> Option<Skip> {
        let mut fields = line.splitn(3, '\t');
        let (binary, test, reason) = (fields.next()?, fields.next()?, fields.next()?);
        Some(Skip { binary: binary.into(), test: test.into(), reason: reason.into() })
    }
}

/// The name of the running test binary: its file name without cargo's `-HASH`.
fn binary() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe.as_deref().and_then(Path::file_stem).map(|s| s.to_string_lossy().into_owned());
    let stem = stem.unwrap_or_else(|| "unknown".into());
    match stem.rsplit_once('-') {
        Some((name, hash)) if !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()) => name.into(),
        _ => stem,
    }
}

/// Records that `test` does not run on this host because of `reason`; the caller returns at once.
///
/// With [`SKIP_LOG_ENV`] set, the skip is appended to that file (one `write`, so tests running at
/// the same time do not mix their lines) and printed on stderr. Without it, this panics: the test
/// fails instead of passing without having run.
///
/// # Panics
/// Without [`SKIP_LOG_ENV`], or if the skip log cannot be written.
pub fn skip(test: &str, reason: &str) {
    let record = Skip { binary: binary(), test: test.into(), reason: reason.into() };
    record_in(std::env::var_os(SKIP_LOG_ENV).map(PathBuf::from).as_deref(), &record);
}

/// [`skip`] with the skip log `log`.
fn record_in(log: Option<&Path>, record: &Skip) {
    let Skip { binary, test, reason } = record;
    let Some(log) = log else {
        panic!(
            "`{test}` cannot run here: {reason}. A test that did not run does not pass: run the suite \
             with `cargo xtask test`, which reports it as SKIPPED, or set {SKIP_LOG_ENV}=FILE to record \
             skips in FILE"
        );
    };
    eprintln!("SKIPPED: {binary}: {test}: {reason}");
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(record.line().as_bytes()));
    if let Err(e) = written {
        panic!("cannot record the skip of `{test}` in {}: {e}", log.display());
    }
}

/// The tests recorded in the skip log at `path`, in the order they were recorded; none if the
/// file does not exist. Lines that are not records are returned as skips of an unnamed test, so
/// that nothing written there goes unreported.
///
/// # Errors
/// The file exists but cannot be read.
pub fn read_skips(path: &Path) -> io::Result<Vec<Skip>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            Skip::parse(l).unwrap_or_else(|| Skip {
                binary: "?".into(),
                test: "?".into(),
                reason: format!("unreadable skip record: {l}"),
            })
        })
        .collect())
}

/// Why `/dev/kvm` cannot be used here, or `None` if it can: [`NO_KVM_ENV`] is set, or the device
/// does not open read-write.
pub fn kvm_unusable() -> Option<String> {
    if std::env::var_os(NO_KVM_ENV).is_some() {
        return Some(format!("{NO_KVM_ENV} is set (`cargo xtask test` found no usable {KVM_DEVICE})"));
    }
    match OpenOptions::new().read(true).write(true).open(KVM_DEVICE) {
        Ok(_) => None,
        Err(e) => Some(format!("cannot open {KVM_DEVICE} read-write: {e}")),
    }
}

/// Whether `test` can use `/dev/kvm`; if not, records the skip ([`skip`]) and the caller returns.
pub fn kvm(test: &str) -> bool {
    match kvm_unusable() {
        None => true,
        Some(why) => {
            skip(test, &format!("needs {KVM_DEVICE}: {why}"));
            false
        }
    }
}

/// The effective user id of this process, from `/proc/self/status`.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `test` runs as root; if not, records the skip ([`skip`]) and the caller returns.
pub fn root(test: &str) -> bool {
    match euid() {
        Some(0) => true,
        other => {
            let who = other.map_or_else(|| "unknown".to_owned(), |uid| uid.to_string());
            skip(test, &format!("needs root (effective uid {who})"));
            false
        }
    }
}

/// The `promtool` to run: `$SPACECORE_PROMTOOL`, else the one on `PATH`.
pub fn promtool() -> PathBuf {
    std::env::var_os(PROMTOOL_ENV).map_or_else(|| PathBuf::from("promtool"), PathBuf::from)
}

/// Runs `promtool check metrics` (Prometheus' own parser and linter of the text exposition
/// format) on `text`: whether it passed, and what it said.
///
/// # Panics
/// If promtool cannot be run: a metrics test without its checker fails, it is not skipped.
pub fn promtool_check(text: &[u8]) -> (bool, String) {
    let path = promtool();
    let mut child = Command::new(&path)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool (Prometheus' own parser) cannot run as {}: {e}; run the suite with \
                 `cargo xtask test`, which provides it, or install Debian's `prometheus` package",
                path.display()
            )
        });
    child.stdin.take().expect("promtool's stdin").write_all(text).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool's output");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// [`promtool_check`] that panics with promtool's words and the text unless it passes; `what`
/// names the exposition (`the aggregator's /metrics`).
///
/// # Panics
/// If promtool refuses the text or cannot run.
pub fn assert_promtool_passes(what: &str, text: &str) {
    let (ok, said) = promtool_check(text.as_bytes());
    assert!(ok, "promtool refused {what}: {said}\n--- the exposition ---\n{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keep_one_line_each() {
        let skip = Skip { binary: "boot".into(), test: "a\ttest".into(), reason: "no\nKVM".into() };
        let line = skip.line();
        assert_eq!(line, "boot\ta test\tno KVM\n");
        assert_eq!(
            Skip::parse(line.trim_end()),
            Some(Skip { binary: "boot".into(), test: "a test".into(), reason: "no KVM".into() })
        );
        assert_eq!(Skip::parse("only\ttwo"), None);
    }

    #[test]
    fn a_missing_log_holds_no_skips_and_garbage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skips");
        assert_eq!(read_skips(&path).unwrap(), Vec::new());
        std::fs::write(&path, "boot\tt1\tno KVM\n\nnot a record\n").unwrap();
        let skips = read_skips(&path).unwrap();
        assert_eq!(skips.len(), 2, "{skips:?}");
        assert_eq!(skips[0].test, "t1");
        assert!(skips[1].reason.contains("not a record"), "{skips:?}");
    }

    #[test]
    fn a_skip_is_appended_to_the_log_and_without_one_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skips");
        let one = Skip { binary: "b".into(), test: "t1".into(), reason: "r1".into() };
        let two = Skip { binary: "b".into(), test: "t2".into(), reason: "r2".into() };
        record_in(Some(&log), &one);
        record_in(Some(&log), &two);
        assert_eq!(read_skips(&log).unwrap(), vec![one.clone(), two]);
        let failed = std::panic::catch_unwind(|| record_in(None, &one)).unwrap_err();
        let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("`t1` cannot run here: r1") && message.contains(SKIP_LOG_ENV), "{message}");
    }

    #[test]
    fn the_binary_name_loses_cargos_hash() {
        // This very binary: test_support-<16 hex digits>.
        assert_eq!(binary(), "test_support");
    }

    #[test]
    fn the_effective_uid_is_read() {
        assert!(euid().is_some(), "no Uid line in /proc/self/status");
    }
}
