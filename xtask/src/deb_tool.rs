//! Tools the tests need, taken from Debian's packages at a pinned version without installing
//! them: `apt-get download PACKAGE=VERSION`, then `dpkg-deb -x` of the package under
//! `target/tools/PACKAGE/VERSION/`, of which only the one binary is used. Nothing outside
//! `target/` is written, and a fresh clone fetches them again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, progress};

/// A binary of a Debian package, pinned.
#[derive(Debug, Clone, Copy)]
pub struct DebTool {
    /// The package, e.g. `umoci`.
    pub package: &'static str,
    /// Its exact version, e.g. `0.4.7+ds-3+b7`.
    pub version: &'static str,
    /// The binary inside the package, e.g. `usr/bin/umoci`.
    pub binary: &'static str,
    /// What `BINARY --version` prints when it is the pinned build (part of its output).
    pub version_output: &'static str,
}

impl DebTool {
    /// The binary, extracted now or by an earlier run, after checking that it runs and is the
    /// pinned version.
    pub fn provide(&self) -> Result<PathBuf> {
        let dir = cmd::target_dir().join("tools").join(self.package);
        let root = dir.join(self.version);
        let binary = root.join(self.binary);
        if self.works(&binary) {
            return Ok(binary);
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let pinned = format!("{}={}", self.package, self.version);
        progress(format_args!("downloading Debian's `{pinned}` package..."));
        let download = || Command::new("apt-get").args(["download", &pinned]).current_dir(&dir).status();
        if !download().is_ok_and(|s| s.success()) {
            // The package lists may be missing or stale on a fresh machine.
            progress("apt-get download failed; updating the package lists (apt-get update) and retrying...");
            cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
            if !download().is_ok_and(|s| s.success()) {
                bail!("`apt-get download {pinned}` failed: cannot get {}", self.binary);
            }
        }
        let deb = self.find_deb(&dir)?;
        let _ = fs::remove_dir_all(&root);
        let extracted = cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        let _ = fs::remove_file(&deb);
        extracted?;
        if !self.works(&binary) {
            bail!("{} does not run after extraction (--version)", binary.display());
        }
        Ok(binary)
    }

    /// The `.deb` that `apt-get download` left in `dir`: `PACKAGE_VERSION_ARCH.deb`, with the
    /// version's `:` written `%3a`.
    fn find_deb(&self, dir: &Path) -> Result<PathBuf> {
        let prefix = format!("{}_{}_", self.package, self.version.replace(':', "%3a"));
        fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                    && p.extension().is_some_and(|e| e == "deb")
            })
            .with_context(|| format!("apt-get download left no {prefix}*.deb in {}", dir.display()))
    }

    /// Whether `path --version` runs and names the pinned version.
    pub fn works(&self, path: &Path) -> bool {
        Command::new(path).arg("--version").output().is_ok_and(|o| {
            o.status.success()
                && [&o.stdout, &o.stderr]
                    .iter()
                    .any(|out| String::from_utf8_lossy(out).contains(self.version_output))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_deb_is_the_one_found() {
        let tool = DebTool {
            package: "umoci",
            version: "0.4.7+ds-3+b7",
            binary: "usr/bin/umoci",
            version_output: "0.4.7",
        };
        let dir = std::env::temp_dir().join(format!("xtask-deb-tool-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        let err = tool.find_deb(&dir).unwrap_err().to_string();
        assert!(err.contains("left no umoci_0.4.7+ds-3+b7_*.deb"), "{err}");
        for name in
            ["umoci_0.4.6+ds-1_amd64.deb", "umoci_0.4.7+ds-3+b7_amd64.deb.partial", "prometheus_2.deb"]
        {
            fs::write(dir.join(name), b"").unwrap();
        }
        assert!(tool.find_deb(&dir).is_err(), "only the pinned version will do");
        fs::write(dir.join("umoci_0.4.7+ds-3+b7_amd64.deb"), b"").unwrap();
        assert_eq!(tool.find_deb(&dir).unwrap(), dir.join("umoci_0.4.7+ds-3+b7_amd64.deb"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
