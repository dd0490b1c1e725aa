//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `fuzz/` for a fixed time each, one after
//! another, with the nightly toolchain and a pinned cargo-fuzz that it installs under `target/`.
//! `cargo xtask fuzz --ci` is the bounded run that `cargo xtask test` makes after replaying the
//! seed corpora: every target for a few seconds (see docs/fuzzing.md).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Instant, SystemTime};

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

/// The cargo-fuzz release used, installed into `target/tools/cargo-fuzz-VERSION/`.
pub const CARGO_FUZZ_VERSION: &str = "0.13.1";
/// Seconds each target runs in the bounded run (`--ci`, and `cargo xtask test`).
pub const SECONDS_ENV: &str = "SPACECORE_FUZZ_SECONDS";
/// Most inputs each target runs in the bounded run.
pub const RUNS_ENV: &str = "SPACECORE_FUZZ_RUNS";
/// [`SECONDS_ENV`] when unset.
pub const CI_SECONDS: u64 = 4;
/// [`RUNS_ENV`] when unset.
pub const CI_RUNS: u64 = 2_000_000;
/// libFuzzer's limit on one input, in seconds (its own default is 20 minutes): an input that
/// takes longer is a failure (a hang), reported as a `timeout-...` artifact.
const INPUT_TIMEOUT: u64 = 30;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The target to run [default: every target, one after another].
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    target: Option<String>,
    /// How long each target runs, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// Also stop each target after this many inputs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    runs: Option<u64>,
    /// The bounded run of `cargo xtask test`: every target (or the one named) for
    /// SPACECORE_FUZZ_SECONDS (default 4) and at most SPACECORE_FUZZ_RUNS inputs (default
    /// 2000000) each; without the nightly toolchain, a loud notice, and an error in CI.
    #[arg(long, conflicts_with_all = ["seconds", "runs"])]
    ci: bool,
}

/// How long each target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `-max_total_time`.
    pub seconds: u64,
    /// `-runs`, if any.
    pub runs: Option<u64>,
}

impl Bounds {
    /// The bounded run's, from [`SECONDS_ENV`] and [`RUNS_ENV`].
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// The bounded run's, from the variables `var` gives (`None`: unset).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let read = |name: &str, default: u64| -> Result<u64> {
            match var(name) {
                Some(text) => match text.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("{name}={text:?}: expected a whole number above 0"),
                },
                None => Ok(default),
            }
        };
        Ok(Bounds { seconds: read(SECONDS_ENV, CI_SECONDS)?, runs: Some(read(RUNS_ENV, CI_RUNS)?) })
    }
}

pub fn run(args: &Args) -> Result<()> {
    let targets: Vec<&str> = match &args.target {
        Some(target) => vec![target.as_str()],
        None => TARGETS.to_vec(),
    };
    if args.ci {
        return match bounded(&targets, cmd::in_ci())? {
            Some(missing) => {
                // Not CI: the notice is the result.
                no_nightly_banner(&missing);
                Ok(())
            }
            None => Ok(()),
        };
    }
    let fuzz_dir = cmd::workspace_root().join("fuzz");
    nightly(&fuzz_dir).map_err(anyhow::Error::msg)?;
    let cargo_fuzz = ensure_cargo_fuzz()?;
    let bounds = Bounds { seconds: args.seconds, runs: args.runs };
    fuzz_all(&targets, bounds, |target| fuzz_run(&cargo_fuzz, &fuzz_dir, target, bounds))
}

/// The bounded run: builds every target once, then runs each within [`Bounds::from_env`].
/// `Ok(Some(why))` when the nightly toolchain is missing outside CI (nothing ran: the caller
/// says so, loudly); in CI that is an error, as is any failing target.
pub fn bounded(targets: &[&str], in_ci: bool) -> Result<Option<String>> {
    let bounds = Bounds::from_env()?;
    let fuzz_dir = cmd::workspace_root().join("fuzz");
    if let Err(missing) = nightly(&fuzz_dir) {
        if in_ci {
            no_nightly_banner(&missing);
            bail!("fuzzing needs the nightly toolchain, and CI must fuzz: {missing}");
        }
        return Ok(Some(missing));
    }
    let started = Instant::now();
    let cargo_fuzz = ensure_cargo_fuzz()?;
    let target_dir = ci_target_dir();
    let mut build = cargo_fuzz_command(&cargo_fuzz, &fuzz_dir);
    build.args(CI_BUILD).arg("--target-dir").arg(&target_dir);
    progress(format_args!("building every fuzz target: {}", describe(&build)));
    let build_started = Instant::now();
    cmd::run(&mut build)?;
    progress(format_args!("fuzz targets built in {:.0} s", build_started.elapsed().as_secs_f64()));
    let binaries = target_dir.join(HOST_TRIPLE).join("release");
    fuzz_all(targets, bounds, |target| {
        // The binary itself, as `cargo-fuzz fuzz run` would run it (without building again).
        let artifacts = fuzz_dir.join("artifacts").join(target);
        let work = fuzz_dir.join("work").join("corpus").join(target);
        for dir in [&artifacts, &work] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut prefix = std::ffi::OsString::from("-artifact_prefix=");
        prefix.push(&artifacts);
        prefix.push("/");
        let mut command = Command::new(binaries.join(target));
        command.current_dir(&fuzz_dir).arg(prefix).args(libfuzzer_bounds(bounds));
        command.arg(&work).arg(fuzz_dir.join("corpus").join(target));
        Ok(command)
    })?;
    progress(format_args!("bounded fuzzing took {:.0} s in all", started.elapsed().as_secs_f64()));
    Ok(None)
}

/// How the bounded run builds the targets: with 16 codegen units and no sanitizer, which
/// builds in about half the time of cargo-fuzz's default (one codegen unit, AddressSanitizer)
/// on two cores; a few seconds of fuzzing gain little from AddressSanitizer in Rust code, while
/// panics, failed checks, aborts and deadly signals are still caught. `cargo xtask fuzz`
/// without `--ci` keeps the defaults.
const CI_BUILD: [&str; 5] = ["build", "--sanitizer", "none", "--codegen-units", "16"];
/// The host, whose directory under the target directory holds the binaries.
const HOST_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Where the bounded run builds (apart from `fuzz/target/`, which `cargo xtask fuzz` builds
/// with other flags): `target/fuzz-ci/`.
fn ci_target_dir() -> PathBuf {
    cmd::target_dir().join("fuzz-ci")
}

/// libFuzzer's flags for `bounds`.
fn libfuzzer_bounds(bounds: Bounds) -> Vec<String> {
    let mut flags = vec![format!("-max_total_time={}", bounds.seconds), format!("-timeout={INPUT_TIMEOUT}")];
    if let Some(runs) = bounds.runs {
        flags.push(format!("-runs={runs}"));
    }
    flags
}

/// Runs each target within `bounds`, one after another; fails after the last one if any failed,
/// naming each with the inputs that made it fail.
fn fuzz_all(targets: &[&str], bounds: Bounds, command_for: impl Fn(&str) -> Result<Command>) -> Result<()> {
    let fuzz_dir = cmd::workspace_root().join("fuzz");
    let mut failures = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let runs = bounds.runs.map(|r| format!(" or {r} inputs")).unwrap_or_default();
        progress(format_args!(
            "[{}/{}] fuzzing {target} for {} s{runs}",
            i + 1,
            targets.len(),
            bounds.seconds
        ));
        let mut command = command_for(target)?;
        progress(format_args!("running {}", describe(&command)));
        let since = SystemTime::now();
        let status = command.status().with_context(|| format!("cannot run `{}`", describe(&command)))?;
        let artifacts = new_artifacts(&fuzz_dir.join("artifacts").join(target), since);
        if let Err(e) = verdict(target, status, &artifacts) {
            eprintln!("xtask: {e:#}");
            failures.push(e.to_string());
        }
    }
    if !failures.is_empty() {
        bail!("{} fuzz target(s) failed:\n  {}", failures.len(), failures.join("\n  "));
    }
    progress(format_args!("{} fuzz target(s) ran without a failure", targets.len()));
    Ok(())
}

/// What one target's run means: `Ok` if it exited 0 and left no new artifact, else an error
/// naming the target, how it ended and the inputs that made it fail (libFuzzer writes one per
/// crash, failed check, leak, timeout or out-of-memory).
pub fn verdict(target: &str, status: ExitStatus, artifacts: &[PathBuf]) -> Result<()> {
    if status.success() && artifacts.is_empty() {
        return Ok(());
    }
    let inputs = if artifacts.is_empty() {
        "no input was saved".to_owned()
    } else {
        let paths: Vec<String> = artifacts.iter().map(|p| p.display().to_string()).collect();
        format!("the input(s): {}", paths.join(", "))
    };
    bail!("fuzz target {target} failed ({status}); {inputs}")
}

/// The files of `dir` modified at or after `since`, sorted (none if `dir` does not exist).
fn new_artifacts(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// `cargo-fuzz` with the nightly toolchain, in `fuzz/`. The pinned binary is run directly (so
/// no other cargo-fuzz on `PATH` or in `~/.cargo/bin` is used), with `RUSTUP_TOOLCHAIN=nightly`
/// for the cargo and rustc it runs.
fn cargo_fuzz_command(cargo_fuzz: &Path, fuzz_dir: &Path) -> Command {
    let mut command = Command::new(cargo_fuzz);
    command
        .arg("fuzz")
        .current_dir(fuzz_dir)
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO");
    command
}

/// `cargo-fuzz fuzz run TARGET WORK SEEDS -- -max_total_time=N [-runs=R] -timeout=T`.
/// libFuzzer adds the inputs it finds to the first corpus directory only, so the committed
/// seeds (`fuzz/corpus/TARGET`) stay as they are and the grown corpus
/// (`fuzz/work/corpus/TARGET`, ignored by git) is kept from one run to the next.
fn fuzz_run(cargo_fuzz: &Path, fuzz_dir: &Path, target: &str, bounds: Bounds) -> Result<Command> {
    let work = fuzz_dir.join("work").join("corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut command = cargo_fuzz_command(cargo_fuzz, fuzz_dir);
    command
        .args(["run", target])
        .arg(&work)
        .arg(fuzz_dir.join("corpus").join(target))
        .arg("--")
        .args(libfuzzer_bounds(bounds));
    Ok(command)
}

/// Whether the nightly toolchain is there: `Err` says it is not, and how to get it.
fn nightly(fuzz_dir: &Path) -> std::result::Result<(), String> {
    match cmd::capture(cmd::cargo(fuzz_dir).args(["+nightly", "--version"])) {
        Ok(_) => Ok(()),
        Err(e) => {
            // The first line says why (rustup may add a backtrace).
            let why = format!("{e:#}");
            let why: String = why.lines().next().unwrap_or_default().chars().take(200).collect();
            Err(format!("{why}; install the toolchain with `rustup toolchain install nightly`"))
        }
    }
}

/// The loud notice that the fuzz targets did not run for want of the nightly toolchain.
pub(crate) fn no_nightly_banner(why: &str) {
    cmd::banner(&[
        "NO NIGHTLY TOOLCHAIN: the fuzz targets were NOT RUN (libFuzzer needs nightly)",
        why,
        "the seed corpora were still replayed on stable (the spacecore-fuzz tests)",
    ]);
}

/// `target/tools/cargo-fuzz-VERSION/`.
fn cargo_fuzz_root() -> PathBuf {
    cmd::target_dir().join("tools").join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"))
}

/// The pinned cargo-fuzz: installed before, or now, with `cargo install --locked --debug` into a
/// scratch root under `target/tools/` renamed when complete (so a run cut short leaves no half
/// install); an install that does not report the pinned version is replaced.
fn ensure_cargo_fuzz() -> Result<PathBuf> {
    let root = cargo_fuzz_root();
    let binary = root.join("bin").join("cargo-fuzz");
    let version_of = |binary: &Path| cmd::capture(Command::new(binary).args(["fuzz", "--version"]));
    let wanted = format!("cargo-fuzz {CARGO_FUZZ_VERSION}");
    match version_of(&binary) {
        Ok(version) if version.trim() == wanted => {
            progress(format_args!("{wanted} (cached): {}", binary.display()));
            return Ok(binary);
        }
        Ok(version) => {
            progress(format_args!("{} says {version:?}, not {wanted}: replacing it", binary.display()))
        }
        Err(_) => {}
    }
    let partial = cmd::target_dir().join("tools").join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}.partial"));
    for dir in [&partial, &root] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    let mut install = cmd::cargo(&cmd::workspace_root());
    install
        // A debug build: it installs faster, and cargo-fuzz only runs cargo and the targets.
        .args(["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION, "--locked", "--debug", "--root"])
        .arg(&partial);
    progress(format_args!("installing {wanted}: {}", describe(&install)));
    let started = Instant::now();
    cmd::run(&mut install)?;
    std::fs::rename(&partial, &root)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), root.display()))?;
    let version = version_of(&binary)?;
    if version.trim() != wanted {
        bail!("{} says {version:?} after installing {wanted}", binary.display());
    }
    progress(format_args!(
        "{wanted} installed in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        binary.display()
    ));
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use clap::Parser;

    use super::*;
    use crate::Cli;

    #[test]
    fn flags_parse() {
        assert!(Cli::try_parse_from(["xtask", "fuzz"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "net_tx", "--seconds", "5"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "net_tx", "--seconds", "5", "--runs", "100"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "--ci"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "hypercall", "--ci"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "--ci", "--seconds", "5"]).is_err());
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

    #[test]
    fn a_target_that_crashes_fails_the_run_naming_it_and_its_input() {
        let ok = ExitStatus::from_raw(0);
        // libFuzzer exits 77 (its -error_exitcode) when a check fails (a panic aborts), on a
        // deadly signal or a sanitizer report, writing the input as crash-<sha1>; on a timeout
        // it writes timeout-<sha1>.
        let crashed = ExitStatus::from_raw(77 << 8);
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-verdict-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let since = SystemTime::now() - std::time::Duration::from_secs(1);
        assert!(new_artifacts(&dir, since).is_empty());
        assert!(verdict("hypercall", ok, &new_artifacts(&dir, since)).is_ok());

        let crash = dir.join("crash-0123abcd");
        std::fs::write(&crash, b"input").unwrap();
        let artifacts = new_artifacts(&dir, since);
        assert_eq!(artifacts, std::slice::from_ref(&crash));
        let error = verdict("hypercall", crashed, &artifacts).unwrap_err().to_string();
        assert!(error.starts_with("fuzz target hypercall failed (exit status: 77)"), "{error}");
        assert!(error.contains(&crash.display().to_string()), "{error}");
        // An artifact is a failure even if the exit status says otherwise, and a failing exit
        // without an artifact is one too.
        assert!(verdict("hypercall", ok, &artifacts).is_err());
        let error = verdict("net_rx", crashed, &[]).unwrap_err().to_string();
        assert!(error.contains("net_rx") && error.contains("no input was saved"), "{error}");
        // Artifacts older than the run are not its own.
        assert!(new_artifacts(&dir, SystemTime::now() + std::time::Duration::from_secs(60)).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bounds_come_from_the_environment_with_defaults() {
        let vars = |seconds: Option<&str>, runs: Option<&str>| {
            let (seconds, runs) = (seconds.map(str::to_owned), runs.map(str::to_owned));
            Bounds::from_vars(move |name| match name {
                SECONDS_ENV => seconds.clone(),
                RUNS_ENV => runs.clone(),
                _ => None,
            })
        };
        assert_eq!(vars(None, None).unwrap(), Bounds { seconds: CI_SECONDS, runs: Some(CI_RUNS) });
        assert_eq!(vars(Some("2"), Some(" 1000 ")).unwrap(), Bounds { seconds: 2, runs: Some(1000) });
        assert!(vars(Some("0"), None).unwrap_err().to_string().contains(SECONDS_ENV));
        assert!(vars(Some("soon"), None).is_err());
        assert!(vars(None, Some("-1")).unwrap_err().to_string().contains(RUNS_ENV));
    }
}
