//! Tools the tests need, taken from Debian's packages without installing them: the package's
//! upstream version is pinned, and of the Debian builds of that upstream version the archive
//! offers (`apt-cache madison`; a stable release replaces a build with its security updates,
//! `+b6` by `+deb12u1`), the newest is fetched with `apt-get download PACKAGE=VERSION` and
//! unpacked with `dpkg-deb -x` under `target/tools/PACKAGE/VERSION/`, of which only the one binary
//! is used. A build unpacked by an earlier run is used without asking the archive. Nothing outside
//! `target/` is written, and a fresh clone fetches them again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, progress};

/// A binary of a Debian package, pinned to an upstream version.
#[derive(Debug, Clone, Copy)]
pub struct DebTool {
    /// The package, e.g. `umoci`.
    pub package: &'static str,
    /// Its upstream version, e.g. `0.4.7`: any Debian build of it (`0.4.7+ds-3+b7`, ...) will do.
    pub upstream: &'static str,
    /// The binary inside the package, e.g. `usr/bin/umoci`.
    pub binary: &'static str,
}

impl DebTool {
    /// The binary, extracted now or by an earlier run, after checking that it runs and is the
    /// pinned version.
    pub fn provide(&self) -> Result<PathBuf> {
        let dir = cmd::target_dir().join("tools").join(self.package);
        if let Some(binary) = self.cached(&dir) {
            return Ok(binary);
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let version = match self.offered()? {
            Some(version) => version,
            None => {
                // The package lists may be missing or stale on a fresh machine.
                progress(format_args!(
                    "no `{}` {} in the package lists; updating them (apt-get update)...",
                    self.package, self.upstream
                ));
                cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
                self.offered()?.with_context(|| {
                    format!("the Debian archive offers no build of `{}` {}", self.package, self.upstream)
                })?
            }
        };
        let pinned = format!("{}={version}", self.package);
        progress(format_args!("downloading Debian's `{pinned}` package..."));
        let download = Command::new("apt-get").args(["download", &pinned]).current_dir(&dir).status();
        if !download.is_ok_and(|s| s.success()) {
            bail!("`apt-get download {pinned}` failed: cannot get {}", self.binary);
        }
        let deb = find_deb(&dir, self.package, &version)?;
        let root = dir.join(&version);
        let _ = fs::remove_dir_all(&root);
        let extracted = cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        let _ = fs::remove_file(&deb);
        extracted?;
        let binary = root.join(self.binary);
        if !self.works(&binary) {
            bail!(
                "{} does not run after extraction, or is not {} (--version)",
                binary.display(),
                self.upstream
            );
        }
        Ok(binary)
    }

    /// A working binary unpacked by an earlier run, if any.
    fn cached(&self, dir: &Path) -> Option<PathBuf> {
        let mut builds: Vec<PathBuf> =
            fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        builds.sort();
        builds.into_iter().rev().map(|root| root.join(self.binary)).find(|binary| self.works(binary))
    }

    /// The newest Debian build of the pinned upstream version the package lists offer.
    fn offered(&self) -> Result<Option<String>> {
        let listing = cmd::capture(Command::new("apt-cache").args(["madison", self.package]))?;
        Ok(builds_of(&listing, self.upstream).into_iter().next())
    }

    /// Whether `path --version` runs and names the pinned upstream version.
    pub fn works(&self, path: &Path) -> bool {
        Command::new(path).arg("--version").output().is_ok_and(|o| {
            o.status.success()
                && [&o.stdout, &o.stderr]
                    .iter()
                    .any(|out| String::from_utf8_lossy(out).contains(self.upstream))
        })
    }
}

/// The versions in `apt-cache madison` output (`PACKAGE | VERSION | SOURCE`, newest first) that
/// are Debian builds of `upstream` (`UPSTREAM+...` or `UPSTREAM-...`), in its order.
fn builds_of(listing: &str, upstream: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.split('|').nth(1).map(str::trim))
        .filter(|v| {
            v.strip_prefix(upstream).is_some_and(|rest| rest.starts_with('+') || rest.starts_with('-'))
        })
        .map(str::to_owned)
        .collect()
}

/// The `.deb` that `apt-get download` left in `dir`: `PACKAGE_VERSION_ARCH.deb`, with the
/// version's `:` written `%3a`.
fn find_deb(dir: &Path, package: &str, version: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_{}_", version.replace(':', "%3a"));
    fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                && p.extension().is_some_and(|e| e == "deb")
        })
        .with_context(|| format!("apt-get download left no {prefix}*.deb in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_builds_of_the_pinned_upstream_version_are_taken() {
        let listing = "prometheus | 2.42.0+ds-5+deb12u1 | http://archive bookworm-security/main amd64 Packages\n\
                       prometheus | 2.42.0+ds-5+b6 | http://archive bookworm/main amd64 Packages\n\
                       prometheus | 2.42.01-1 | http://archive x/main amd64 Packages\n\
                       prometheus | 2.45.0+ds-1 | http://archive trixie/main amd64 Packages\n";
        assert_eq!(builds_of(listing, "2.42.0"), ["2.42.0+ds-5+deb12u1", "2.42.0+ds-5+b6"]);
        assert!(builds_of(listing, "2.41.0").is_empty());
        assert!(builds_of("", "2.42.0").is_empty());
    }

    #[test]
    fn the_downloaded_deb_is_the_one_found() {
        let dir = std::env::temp_dir().join(format!("xtask-deb-tool-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        let err = find_deb(&dir, "umoci", "0.4.7+ds-3+b7").unwrap_err().to_string();
        assert!(err.contains("left no umoci_0.4.7+ds-3+b7_*.deb"), "{err}");
        for name in
            ["umoci_0.4.6+ds-1_amd64.deb", "umoci_0.4.7+ds-3+b7_amd64.deb.partial", "prometheus_2.deb"]
        {
            fs::write(dir.join(name), b"").unwrap();
        }
        assert!(find_deb(&dir, "umoci", "0.4.7+ds-3+b7").is_err(), "only the version asked for will do");
        fs::write(dir.join("umoci_0.4.7+ds-3+b7_amd64.deb"), b"").unwrap();
        assert_eq!(
            find_deb(&dir, "umoci", "0.4.7+ds-3+b7").unwrap(),
            dir.join("umoci_0.4.7+ds-3+b7_amd64.deb")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
