//! `cargo xtask launch`: the README's "run the main job". Builds and
//! registers the image, builds the launcher, then becomes
//! `hac-launch SPEC [extra args]`, so its exit status is the launcher's.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, anyhow};
use image_store::Store;

use crate::build_image;
use crate::cmd::{self, describe, kib, progress};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The spec to boot [default: <workspace>/examples/spacecore.toml].
    spec: Option<PathBuf>,
    /// Extra arguments for hac-launch (after `--`).
    #[arg(last = true, value_name = "HAC_LAUNCH_ARGS")]
    extra: Vec<OsString>,
}

pub fn run(args: &Args) -> Result<()> {
    let spec = args.spec.clone().unwrap_or_else(|| cmd::workspace_root().join("examples/spacecore.toml"));
    let built = build_image::build(&build_image::Args::default(), &Store::open_default())?;
    progress(format_args!(
        "image {} ({}, sha256 {})",
        built.elf.display(),
        kib(built.manifest.size_bytes),
        built.manifest.sha256
    ));
    progress("building host-launcher (release)...");
    cmd::run(&mut cmd::workspace_cargo(["build", "--release", "-p", "host-launcher"]))?;
    crate::jail_user::ensure()?;

    let mut launch = Command::new(cmd::target_dir().join("release").join("hac-launch"));
    launch.arg(&spec).args(&args.extra);
    progress(format_args!("running {}", describe(&launch)));
    // Only returns if the launcher could not be started.
    let error = launch.exec();
    Err(anyhow!(error).context(format!("cannot run `{}`", describe(&launch))))
}
