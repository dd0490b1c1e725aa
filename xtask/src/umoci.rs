//! `umoci`, an OCI image tool, for the test that hands it a layout written by
//! `spacecore image export` (an OCI tool other than ours must accept it). Debian's `umoci`
//! package depends only on libc6; it is downloaded with `apt-get download` at a pinned version,
//! and only `usr/bin/umoci` is used, extracted with `dpkg-deb -x` under `target/tools/umoci/`.
//! The tests find it through [`ENV`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, progress};

/// The Debian package, and the version the tests are pinned to.
const PACKAGE: &str = "umoci";
pub const VERSION: &str = "0.4.7+ds-3+b7";
/// The variable through which the tests find the binary.
#[allow(dead_code, reason = "set by `cargo xtask test` (test.rs) for the test run")]
pub const ENV: &str = "SPACECORE_UMOCI";

/// A working `umoci` of the pinned version, extracted under `target/tools/umoci/` (now, or by an
/// earlier run).
#[allow(dead_code, reason = "called by `cargo xtask test` (test.rs) before the test run")]
pub fn ensure() -> Result<PathBuf> {
    let dir = cmd::target_dir().join("tools").join(PACKAGE);
    let root = dir.join(VERSION);
    let binary = root.join("usr/bin/umoci");
    if works(&binary) {
        return Ok(binary);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pinned = format!("{PACKAGE}={VERSION}");
    progress(format_args!("downloading Debian's `{pinned}` package..."));
    let download = || Command::new("apt-get").args(["download", &pinned]).current_dir(&dir).status();
    if !download().is_ok_and(|s| s.success()) {
        // The package lists may be missing or stale on a fresh machine.
        progress("apt-get download failed; updating the package lists (apt-get update) and retrying...");
        cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
        if !download().is_ok_and(|s| s.success()) {
            bail!("`apt-get download {pinned}` failed: cannot get umoci");
        }
    }
    let deb = find_deb(&dir)?;
    let _ = fs::remove_dir_all(&root);
    let extracted = cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let _ = fs::remove_file(&deb);
    extracted?;
    if !works(&binary) {
        bail!("{} does not run after extraction (umoci --version)", binary.display());
    }
    Ok(binary)
}

/// The `.deb` that `apt-get download` left in `dir`: `umoci_<version with : as %3a>_amd64.deb`.
fn find_deb(dir: &Path) -> Result<PathBuf> {
    let prefix = format!("{PACKAGE}_{}_", VERSION.replace(':', "%3a"));
    fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                && p.extension().is_some_and(|e| e == "deb")
        })
        .with_context(|| format!("apt-get download left no {prefix}*.deb in {}", dir.display()))
}

/// Whether `umoci --version` runs and reports the pinned version (`umoci version 0.4.7+ds-3+b7`).
fn works(path: &Path) -> bool {
    Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_deb_is_the_one_found() {
        let dir = std::env::temp_dir().join(format!("xtask-umoci-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        let err = find_deb(&dir).unwrap_err().to_string();
        assert!(err.contains("left no umoci_0.4.7+ds-3+b7_*.deb"), "{err}");
        for name in
            ["umoci_0.4.6+ds-1_amd64.deb", "umoci_0.4.7+ds-3+b7_amd64.deb.partial", "prometheus_2.deb"]
        {
            fs::write(dir.join(name), b"").unwrap();
        }
        assert!(find_deb(&dir).is_err(), "only the pinned version will do");
        fs::write(dir.join("umoci_0.4.7+ds-3+b7_amd64.deb"), b"").unwrap();
        assert_eq!(find_deb(&dir).unwrap(), dir.join("umoci_0.4.7+ds-3+b7_amd64.deb"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
