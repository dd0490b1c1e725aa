//! The unprivileged user `hac-launch` confines each guest's process as when it runs as root
//! (`spacecore`; see docs/security.md and docs/operations.md). The commands that boot
//! spacecores as root (`launch`, `demo`, `test`, the benches) create it first when it is
//! missing, with the command docs/operations.md gives an operator, so the README's two commands
//! work on a fresh machine.

use std::process::Command;

use anyhow::Result;

use crate::cmd::{self, describe, progress};

/// The launcher's default user.
pub const USER: &str = "spacecore";

/// Creates [`USER`] as a system user (no home, no login shell) if this process is root and the
/// user does not exist; otherwise does nothing.
pub fn ensure() -> Result<()> {
    if !rustix::process::geteuid().is_root() || exists()? {
        return Ok(());
    }
    let mut useradd = Command::new("useradd");
    useradd.args([
        "--system",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        USER,
    ]);
    progress(format_args!(
        "creating the system user `{USER}`, which hac-launch confines guests as: {}",
        describe(&useradd)
    ));
    cmd::run(&mut useradd)
}

/// Whether the user database has [`USER`] (`getent passwd`, so NSS sources count too).
fn exists() -> Result<bool> {
    let status = Command::new("getent").args(["passwd", USER]).output()?.status;
    Ok(status.success())
}
