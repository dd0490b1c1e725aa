//! `promtool`, Prometheus' own checker of the text exposition format, for the tests that check
//! metrics output. It ships in Debian's `prometheus` package; rather than install that package
//! (and its server and service), the package is downloaded with `apt-get download` and only
//! `usr/bin/promtool` is extracted, into `target/tools/`. One already on `PATH` is used as is.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, progress};

/// The Debian package holding `promtool`.
const PACKAGE: &str = "prometheus";

/// A working `promtool`: the one on `PATH`, one extracted before, or one extracted now.
pub fn provide() -> Result<PathBuf> {
    if works(&PathBuf::from("promtool")) {
        return Ok(PathBuf::from("promtool"));
    }
    let dir = cmd::target_dir().join("tools");
    let extracted = dir.join("root/usr/bin/promtool");
    if works(&extracted) {
        return Ok(extracted);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    progress(format_args!("downloading Debian's `{PACKAGE}` package for its promtool..."));
    let download = || Command::new("apt-get").args(["download", PACKAGE]).current_dir(&dir).status();
    if !download().is_ok_and(|s| s.success()) {
        // The package lists may be missing or stale on a fresh machine.
        progress("apt-get download failed; updating the package lists (apt-get update) and retrying...");
        cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
        if !download().is_ok_and(|s| s.success()) {
            bail!("`apt-get download {PACKAGE}` failed: cannot get promtool");
        }
    }
    let deb = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(PACKAGE))
                && p.extension().is_some_and(|e| e == "deb")
        })
        .context("apt-get download left no .deb")?;
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.join("root")))?;
    let _ = fs::remove_file(&deb);
    if !works(&extracted) {
        bail!("{} does not run after extraction", extracted.display());
    }
    Ok(extracted)
}

/// Whether `promtool --version` runs and succeeds.
fn works(path: &PathBuf) -> bool {
    Command::new(path).arg("--version").output().is_ok_and(|o| o.status.success())
}
