//! What the subcommands share: the workspace's paths, running commands with
//! their failures turned into errors, and probing `/dev/kvm`.

use std::ffi::OsStr;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The kernel's target triple.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// The KVM device.
pub use test_support::KVM_DEVICE;

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `<workspace>/kernel-app`, a workspace of its own.
pub fn kernel_app_dir() -> PathBuf {
    workspace_root().join("kernel-app")
}

/// The workspace's own `target/` directory (never `$CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// Announces a step on stderr, one line, `xtask: ...`.
pub fn progress(message: impl fmt::Display) {
    eprintln!("xtask: {message}");
}

/// `cargo` (the rustup proxy on `PATH`, so toolchain files apply) run in
/// `dir`. `CARGO_TARGET_DIR` is removed so every build lands in the
/// workspace's own `target/` (or kernel-app's), where xtask looks for it.
/// In CI, incremental compilation is off: a fresh clone builds once, and
/// its incremental caches would only double the disk the run needs.
pub fn cargo(dir: &Path) -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(dir).env_remove("CARGO_TARGET_DIR");
    if in_ci() {
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

/// `cargo <args>` in the workspace root.
pub fn workspace_cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = cargo(&workspace_root());
    command.args(args);
    command
}

/// The command line, for messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` with inherited stdio; an error unless it exits 0.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("cannot run `{}`", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// Runs `command` and returns its trimmed stdout; an error unless it exits 0.
pub fn capture(command: &mut Command) -> Result<String> {
    let output = command.output().with_context(|| format!("cannot run `{}`", describe(command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Makes sure the toolchain that builds kernel-app has the guest target's standard library.
///
/// `rust-toolchain.toml` lists the target, but rustup does not add it when the pinned toolchain
/// is a link to one installed earlier; then the guest build fails with "can't find crate for
/// `core`". So ask rustup (in kernel-app, where the toolchain file applies) and add it if missing.
pub fn ensure_kernel_target() -> Result<()> {
    let dir = kernel_app_dir();
    if kernel_target_installed(&dir)? {
        return Ok(());
    }
    progress(format_args!("adding the guest target {KERNEL_TARGET} to the toolchain (rustup target add)"));
    let added = Command::new("rustup").current_dir(&dir).args(["target", "add", KERNEL_TARGET]).status();
    if added.is_ok_and(|s| s.success()) && kernel_target_installed(&dir)? {
        return Ok(());
    }
    let toolchain = capture(Command::new("rustup").current_dir(&dir).args(["show", "active-toolchain"]))
        .map(|t| t.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|_| "the pinned toolchain".to_owned());
    let sysroot = capture(Command::new("rustc").current_dir(&dir).args(["--print", "sysroot"]))?;
    bail!(
        "the toolchain {toolchain} (at {sysroot}) has no standard library for {KERNEL_TARGET}, the \
         guest's target (a build would fail with \"can't find crate for `core`\"), and rustup could not \
         add it. Run:\n    rustup target add {KERNEL_TARGET} --toolchain {toolchain}\nor, for a toolchain \
         not managed by rustup, install its rust-std component for {KERNEL_TARGET} into \
         {sysroot}/lib/rustlib/"
    )
}

/// Whether the toolchain that builds kernel-app has the guest target's standard library: the
/// sysroot's `lib/rustlib/x86_64-unknown-none/lib/` holds `libcore-*.rlib` (whatever rustup's
/// own list says: a toolchain may be linked or installed outside it).
fn kernel_target_installed(dir: &Path) -> Result<bool> {
    let sysroot = capture(Command::new("rustc").current_dir(dir).args(["--print", "sysroot"]))?;
    let lib = Path::new(&sysroot).join("lib/rustlib").join(KERNEL_TARGET).join("lib");
    Ok(std::fs::read_dir(lib).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    }))
}

/// Whether `/dev/kvm` exists and this user can open it read-write.
pub fn kvm_usable() -> io::Result<()> {
    OpenOptions::new().read(true).write(true).open(KVM_DEVICE).map(drop)
}

/// `bytes` as KiB with one decimal.
pub fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// Prints a loud multi-line banner on stderr: each line as `!!! line !!!`
/// between two rules of `!`.
pub fn banner(lines: &[&str]) {
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 8;
    let rule = "!".repeat(width);
    eprintln!("{rule}");
    for line in lines {
        eprintln!("!!! {line} !!!");
    }
    eprintln!("{rule}");
}

/// Set (to anything but empty, `0` or `false`) by CI systems, and by `.ci/run`.
const CI_ENV: &str = "CI";

/// Whether this run is CI's: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var(CI_ENV).ok().as_deref())
}

fn ci_value_means_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_recognised_from_its_variable() {
        assert!(ci_value_means_ci(Some("true")));
        assert!(ci_value_means_ci(Some("1")));
        for not_ci in [None, Some(""), Some("0"), Some("false")] {
            assert!(!ci_value_means_ci(not_ci), "{not_ci:?}");
        }
    }
}
