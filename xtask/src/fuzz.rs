//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `fuzz/` for a fixed time each, one after
//! another, with the nightly toolchain; installs cargo-fuzz first if it is missing. Not part of
//! `cargo xtask test` (see docs/fuzzing.md).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, describe, progress};

/// Every target in `fuzz/Cargo.toml`, in the order they run.
pub const TARGETS: [&str; 15] = [
    "spec",
    "block_request",
    "net_tx",
    "mmio",
    "store",
    "avs_json",
    "keystore",
    "bls",
    "bn254",
    "web3_keyfile",
    "history",
    "intake",
    "hypercall",
    "net_rx",
    "http_request",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The target to run [default: every target, one after another].
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    target: Option<String>,
    /// How long each target runs, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
}

pub fn run(args: &Args) -> Result<()> {
    let fuzz_dir = cmd::workspace_root().join("fuzz");
    ensure_cargo_fuzz(&fuzz_dir)?;
    let targets: Vec<&str> = match &args.target {
        Some(target) => vec![target.as_str()],
        None => TARGETS.to_vec(),
    };
    let mut crashed = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        progress(format_args!("[{}/{}] fuzzing {target} for {} s", i + 1, targets.len(), args.seconds));
        let mut command = fuzz_run(&fuzz_dir, target, args.seconds)?;
        progress(format_args!("running {}", describe(&command)));
        if let Err(e) = cmd::run(&mut command) {
            eprintln!("xtask: {target}: {e:#}");
            crashed.push(*target);
        }
    }
    if !crashed.is_empty() {
        bail!(
            "{} target(s) failed: {}; the inputs that made them fail are in {}",
            crashed.len(),
            crashed.join(", "),
            fuzz_dir.join("artifacts").display()
        );
    }
    progress(format_args!("{} target(s) ran {} s each without a failure", targets.len(), args.seconds));
    Ok(())
}

/// `cargo +nightly fuzz run TARGET WORK SEEDS -- -max_total_time=N`. libFuzzer adds the inputs
/// it finds to the first corpus directory only, so the committed seeds (`fuzz/corpus/TARGET`)
/// stay as they are and the grown corpus (`fuzz/work/corpus/TARGET`, ignored by git) is kept
/// from one run to the next.
fn fuzz_run(fuzz_dir: &Path, target: &str, seconds: u64) -> Result<Command> {
    let work = fuzz_dir.join("work").join("corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut command = cmd::cargo(fuzz_dir);
    command
        .args(["+nightly", "fuzz", "run", target])
        .arg(&work)
        .arg(fuzz_dir.join("corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"));
    Ok(command)
}

/// Checks that the nightly toolchain and cargo-fuzz are there; installs cargo-fuzz if not.
fn ensure_cargo_fuzz(fuzz_dir: &Path) -> Result<()> {
    cmd::capture(cmd::cargo(fuzz_dir).args(["+nightly", "--version"])).context(
        "the nightly toolchain is needed for fuzzing (libFuzzer's instrumentation): \
         install it with `rustup toolchain install nightly`",
    )?;
    if cmd::capture(cmd::cargo(fuzz_dir).args(["+nightly", "fuzz", "--version"])).is_ok() {
        return Ok(());
    }
    let mut install = cmd::cargo(&cmd::workspace_root());
    install.args(["install", "cargo-fuzz", "--locked"]);
    progress(format_args!("cargo-fuzz is not installed; installing it: {}", describe(&install)));
    cmd::run(&mut install)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Cli;

    #[test]
    fn flags_parse() {
        assert!(Cli::try_parse_from(["xtask", "fuzz"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "net_tx", "--seconds", "5"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "no_such_target"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "--seconds", "0"]).is_err());
    }

    #[test]
    fn targets_are_the_fuzz_crates_binaries() {
        #[derive(serde::Deserialize)]
        struct Manifest {
            bin: Vec<Bin>,
        }
        #[derive(serde::Deserialize)]
        struct Bin {
            name: String,
        }
        let path = cmd::workspace_root().join("fuzz/Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let manifest: Manifest = toml::from_str(&text).unwrap();
        let names: Vec<&str> = manifest.bin.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, TARGETS);
        for target in TARGETS {
            let seeds = cmd::workspace_root().join("fuzz/corpus").join(target);
            assert!(std::fs::read_dir(&seeds).unwrap().next().is_some(), "no seeds in {}", seeds.display());
        }
    }
}
