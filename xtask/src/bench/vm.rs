//! What the benches that boot a spacecore share: the KVM check and the builds, a scratch
//! directory, specs, a snapshot saved, and a running `hac-launch` whose stdout is read line by
//! line.
//!
//! Every spec a bench writes turns the launcher's JSON log on, and the benches read that log
//! (`test_support::log`): events by their fields, plain lines by their source and message,
//! never the human lines' words alone.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use image_store::Store;
use test_support::log::{self, LogLine};

use crate::build_image;
use crate::cmd::{self, describe, progress};

/// The image and the launcher, built.
pub struct Prepared {
    /// The image as the image store holds it (`spacecore:latest`), absolute: what an operator
    /// boots, read-only, so the launcher shares its pages between spacecores.
    pub image: PathBuf,
    /// `target/release/hac-launch`.
    pub launch: PathBuf,
    /// What `build-image` made, manifest included.
    pub built: build_image::Built,
}

/// Checks `/dev/kvm` (a loud banner and an error without it), then builds the image as
/// `build-image` does and the launcher.
pub fn prepare(bench: &str) -> Result<Prepared> {
    if let Err(e) = cmd::kvm_usable() {
        cmd::banner(&[
            &format!("NO USABLE /dev/kvm: the {bench} bench boots a real VM and CANNOT RUN here"),
            &format!("opening {} read-write failed: {e}", cmd::KVM_DEVICE),
        ]);
        bail!("no usable {}", cmd::KVM_DEVICE);
    }
    let built = build_image::build(&build_image::Args::default(), &Store::open_default())?;
    progress("building host-launcher (release)...");
    cmd::run(&mut cmd::workspace_cargo(["build", "--release", "-p", "host-launcher"]))?;
    crate::jail_user::ensure()?;
    let stored = &built.refs.first().context("build-image registered the image under no reference")?.1;
    let image = fs::canonicalize(stored).with_context(|| format!("cannot find {}", stored.display()))?;
    Ok(Prepared { image, launch: cmd::target_dir().join("release/hac-launch"), built })
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(bench: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("spacecore-bench-{bench}-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `<dir>/<name>.toml`: a spacecore `name` with 1 vCPU and 256 MiB booting `image`,
/// with `resources` added to `[spec.resources]` and the tables of `tables` after, and the JSON
/// log on (`logging = "json"` in `[spec.observability]`).
pub fn write_spec(dir: &Path, name: &str, image: &Path, resources: &str, tables: &str) -> Result<PathBuf> {
    let tables = log::with_json_logging(tables);
    let text = format!(
        "apiVersion = \"vistara.eigenlayer/v1\"\nkind = \"AVSSpaceCore\"\n\n[metadata]\nname = \"{name}\"\n\n\
         [spec.resources]\ncpu = 1\nmemory = \"256Mi\"\n{resources}\n\
         [spec.deployment]\nimage = {}\n\n{tables}",
        toml_string(&image.to_string_lossy())
    );
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `s` as a TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `hac-launch --save-snapshot DIR SPEC`, in the state directory `state_dir` if given (else
/// the launcher's default); an error with its output unless it exits 0.
pub fn save_snapshot(launch: &Path, spec: &Path, dir: &Path, state_dir: Option<&Path>) -> Result<()> {
    let mut command = Command::new(launch);
    command.arg("--save-snapshot").arg(dir).arg(spec).stdin(Stdio::null());
    if let Some(state) = state_dir {
        command.env("SPACECORE_STATE_DIR", state);
    }
    let out = command.output().with_context(|| format!("cannot run `{}`", describe(&command)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}); stdout:\n{}\nstderr:\n{}",
            describe(&command),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A running `hac-launch`. Dropping it stops the process if it still runs.
pub struct Launcher {
    child: Child,
    command: String,
    lines: Receiver<String>,
    log: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Launcher {
    /// Starts `launch SPEC ARGS...` with `SPACECORE_STATE_DIR=state_dir`.
    pub fn spawn(launch: &Path, spec: &Path, state_dir: &Path, args: &[&str]) -> Result<Launcher> {
        let mut command = Command::new(launch);
        command.arg(spec).args(args).env("SPACECORE_STATE_DIR", state_dir);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("cannot run `{}`", describe(&command)))?;
        let (stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let (tx, lines) = mpsc::channel();
        // Both threads end when the launcher closes its output (at its exit at the latest).
        thread::spawn(move || {
            for line in stdout.into_iter().flat_map(|out| BufReader::new(out).lines()) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            if let Some(err) = &mut stderr {
                let _ = err.read_to_string(&mut text);
            }
            text
        });
        Ok(Launcher { child, command: describe(&command), lines, log: Vec::new(), stderr: Some(stderr) })
    }

    /// The launcher's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line read so far, parsed as JSON log lines (what [`Self::wait`] read after
    /// the last [`Self::wait_for`] included).
    pub fn lines(&self) -> Result<Vec<LogLine>> {
        log::parse_all(&self.log.join("\n")).map_err(|e| {
            anyhow::anyhow!("`{}` printed a line that is not a JSON log line: {e}", self.command)
        })
    }

    /// Reads stdout until `find` returns `Some` for a line of the JSON log (`what` names it in
    /// errors); an error after `timeout`, if the launcher ends first, or at a line that is not
    /// a JSON log line.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut find: impl FnMut(&LogLine) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let parsed = LogLine::parse(&line);
                    self.log.push(line);
                    let parsed = parsed.map_err(|e| {
                        anyhow::anyhow!("`{}` printed a line that is not a JSON log line: {e}", self.command)
                    })?;
                    if let Some(found) = find(&parsed) {
                        return Ok(found);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("no {what} from `{}` within {timeout:?}; {}", self.command, self.output())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait(Duration::from_secs(10))?;
                    let output = self.finish_output();
                    bail!("`{}` ended ({status}) before {what}; {output}", self.command)
                }
            }
        }
    }

    /// Whether the launcher still runs (not yet reaped by [`Self::wait`]).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM, without waiting.
    pub fn signal_terminate(&self) -> Result<()> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .with_context(|| format!("cannot send SIGTERM to `{}`", self.command))
    }

    /// Sends SIGTERM and waits (at most `timeout`) for an exit with status 0.
    pub fn terminate(&mut self, timeout: Duration) -> Result<()> {
        self.signal_terminate()?;
        let status = self.wait(timeout)?;
        if !status.success() {
            bail!("`{}` did not exit 0 after SIGTERM ({status}); {}", self.command, self.output());
        }
        Ok(())
    }

    /// Waits (at most `timeout`, then kills it) for the launcher to exit, reads the rest of its
    /// output and returns its status.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let output = self.finish_output();
                bail!("`{}` still ran after {timeout:?}: killed; {output}", self.command);
            }
            thread::sleep(Duration::from_millis(10));
        };
        self.drain();
        Ok(status)
    }

    /// Collects the stdout lines left (the reader ends at the launcher's exit; 5 s at most).
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.log.push(line);
        }
    }

    /// Stdout so far, for error messages.
    fn output(&self) -> String {
        format!("stdout so far:\n{}", self.log.join("\n"))
    }

    /// All of stdout and stderr once the launcher has exited, for error messages.
    fn finish_output(&mut self) -> String {
        self.drain();
        let stderr = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{stderr}", self.log.join("\n"))
    }

    /// [`Self::finish_output`], once [`Self::wait`] has returned a status that is not a success.
    pub fn failure(&mut self, status: ExitStatus) -> anyhow::Error {
        let output = self.finish_output();
        anyhow::anyhow!("`{}` failed ({status}); {output}", self.command)
    }
}

impl Drop for Launcher {
    /// A launcher still running (a bench failed half-way) gets SIGTERM, then SIGKILL after 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = self.wait(Duration::from_secs(5));
        }
    }
}

/// `[NAME SOURCE] message` lines as the JSON log lines (plain, `fields` `{}`) the launcher
/// writes for them: for the unit tests of the benches' readers.
#[cfg(test)]
pub fn plain_lines(text: &str) -> Vec<LogLine> {
    use test_support::log::{Source, json_line};
    text.lines()
        .map(|l| {
            let (tag, message) = l.split_once("] ").expect("`[NAME SOURCE] message`");
            let source = if tag.ends_with(" guest") { Source::Guest } else { Source::Launcher };
            LogLine::parse(&json_line(source, message, serde_json::json!({}))).expect("a JSON log line")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("/a b/c.elf"), "\"/a b/c.elf\"");
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let spec = format!("x = {}", toml_string("q\"\\\u{1}"));
        let parsed: toml::Table = toml::from_str(&spec).unwrap();
        assert_eq!(parsed["x"].as_str(), Some("q\"\\\u{1}"));
    }
}
