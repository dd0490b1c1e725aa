//! `cargo xtask test`: the whole test suite, as CI runs it. Each step is
//! announced; the first failing step ends the run with an error. Tests that could
//! not run here record themselves in a skip log (`test_support::skip`); the run
//! ends by naming them, and in CI on a host with `/dev/kvm` any of them fails it.
//! The last step fuzzes every target for a few seconds (`cargo xtask fuzz --ci`); without
//! the nightly toolchain it is skipped with a banner, and in CI that fails the run.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use image_store::{STORE_ENV, Store};
use test_support::{NO_KVM_ENV, PROMTOOL_ENV, SKIP_LOG_ENV, Skip};

use crate::cmd::{self, describe};
use crate::{build_image, chain_tools, fleet, fuzz, jail_user, promtool, umoci};

const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";
const STEPS: usize = 11;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Extra arguments for the final `cargo test --workspace` (after `--`).
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    extra: Vec<String>,
}

/// Numbers and announces the steps.
#[derive(Debug, Default)]
struct Steps {
    done: usize,
}

impl Steps {
    fn announce(&mut self, what: &str) -> usize {
        self.done += 1;
        eprintln!("xtask test [{}/{STEPS}]: {what}", self.done);
        self.done
    }

    /// Announces and runs `command`.
    fn run(&mut self, command: &mut Command) -> Result<()> {
        let n = self.announce(&describe(command));
        cmd::run(command).with_context(|| format!("step {n}/{STEPS} failed"))
    }
}

pub fn run(args: &Args) -> Result<()> {
    let kernel_app = cmd::kernel_app_dir();
    let kernel_manifest = kernel_app.join("Cargo.toml");
    let mut steps = Steps::default();

    // (a) formatting, (b) lints: the host workspace and kernel-app.
    steps.run(&mut cmd::workspace_cargo(["fmt", "--all", "--", "--check"]))?;
    steps.run(&mut cmd::workspace_cargo([
        OsStr::new("fmt"),
        OsStr::new("--manifest-path"),
        kernel_manifest.as_os_str(),
        OsStr::new("--"),
        OsStr::new("--check"),
    ]))?;
    steps.run(&mut cmd::workspace_cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    cmd::ensure_kernel_target()?;
    steps.run(cmd::cargo(&kernel_app).args(["clippy", "--release", "--", "-D", "warnings"]))?;

    // (c) whether tests that boot real VMs can run.
    steps.announce("checking /dev/kvm");
    let no_kvm = cmd::kvm_usable().err();
    match &no_kvm {
        None => eprintln!("== KVM: /dev/kvm is present: tests that boot real VMs WILL run =="),
        Some(e) => no_kvm_banner(e),
    }
    let kvm_expected = cmd::in_ci() && Path::new(cmd::KVM_DEVICE).exists();
    if kvm_expected {
        eprintln!(
            "== CI: {} exists, so every test must run: a skipped test fails this run ==",
            cmd::KVM_DEVICE
        );
    }

    // (d) the tools the tests hold our output against: Prometheus' own parser for the metrics,
    // an OCI image tool for exported images; and the user hac-launch confines guests as.
    let n = steps.announce(
        "providing promtool and umoci (Debian's, pinned) and the spacecore user; checking the fleet files",
    );
    let promtool = promtool::provide().with_context(|| format!("step {n}/{STEPS} failed"))?;
    eprintln!("xtask test: promtool is {}", promtool.display());
    let umoci = umoci::provide().with_context(|| format!("step {n}/{STEPS} failed"))?;
    eprintln!("xtask test: umoci is {}", umoci.display());
    jail_user::ensure().with_context(|| format!("step {n}/{STEPS} failed"))?;
    // The fleet files (examples/fleet/) against their orchestrators' validators.
    let fleet_skips = fleet::check(cmd::in_ci()).with_context(|| format!("step {n}/{STEPS} failed"))?;
    fleet::banner(&fleet_skips);

    // (d') Anvil and solc-js, pinned, for the tests that run EigenLayer's contracts on a chain.
    let n = steps.announce("providing Anvil and solc-js (npm, pinned), for the on-chain tests");
    let chain = chain_tools::provide().with_context(|| format!("step {n}/{STEPS} failed"))?;

    // (e)-(g) run against a store inside target/, never one left on the machine; tests that
    // cannot run record themselves in a skip log made empty for this run.
    let store = Store::at(cmd::target_dir().join("image-store"));
    let skip_log = cmd::target_dir().join("test-skips.log");
    std::fs::create_dir_all(cmd::target_dir()).context("cannot create target/")?;
    std::fs::write(&skip_log, "").with_context(|| format!("cannot empty {}", skip_log.display()))?;
    let with_env = |command: &mut Command| {
        command.env(STORE_ENV, store.root());
        command.env(SKIP_LOG_ENV, &skip_log);
        command.env(PROMTOOL_ENV, &promtool);
        command.env(umoci::ENV, &umoci);
        command.env(chain_tools::ANVIL_ENV, &chain.anvil);
        command.env(chain_tools::SOLCJS_ENV, &chain.solcjs);
        if no_kvm.is_some() {
            command.env(NO_KVM_ENV, "1");
        }
    };
    let n = steps.announce(&format!("cargo xtask build-image (image store {})", store.root().display()));
    build_image::build(&build_image::Args::default(), &store)
        .with_context(|| format!("step {n}/{STEPS} failed"))?;

    let mut kernel_tests = cmd::cargo(&kernel_app);
    kernel_tests.args(["test", "--target", HOST_TARGET]);
    with_env(&mut kernel_tests);
    let mut workspace_tests = cmd::workspace_cargo(["test", "--workspace"]);
    workspace_tests.args(&args.extra);
    with_env(&mut workspace_tests);
    // The skips are reported whether the tests pass or not.
    let tests = steps.run(&mut kernel_tests).and_then(|()| steps.run(&mut workspace_tests));
    let skips = test_support::read_skips(&skip_log)
        .with_context(|| format!("cannot read the skip log {}", skip_log.display()))?;
    report_skips(&skips);
    tests?;
    verdict(&skips, kvm_expected)?;

    // (h) every fuzz target for a few seconds, after the replay of their seeds (step 10).
    let bounds = fuzz::Bounds::from_env()?;
    let n = steps.announce(&format!(
        "cargo xtask fuzz --ci: every fuzz target for {} s or {} inputs (cargo-fuzz {}, nightly; {} and {} change it)",
        bounds.seconds,
        bounds.runs.unwrap_or_default(),
        fuzz::CARGO_FUZZ_VERSION,
        fuzz::SECONDS_ENV,
        fuzz::RUNS_ENV,
    ));
    let no_nightly =
        fuzz::bounded(&fuzz::TARGETS, cmd::in_ci()).with_context(|| format!("step {n}/{STEPS} failed"))?;
    if let Some(why) = &no_nightly {
        fuzz::no_nightly_banner(why);
    }

    eprintln!("xtask test: all {STEPS} steps passed");
    if let Some(e) = &no_kvm {
        no_kvm_banner(e);
    }
    if let Some(why) = &no_nightly {
        fuzz::no_nightly_banner(why);
    }
    fleet::banner(&fleet_skips);
    Ok(())
}

/// The end of a run whose tests passed: an error if tests were skipped where every test is
/// expected to run (`kvm_expected`: CI, on a host with `/dev/kvm`).
fn verdict(skips: &[Skip], kvm_expected: bool) -> Result<()> {
    if kvm_expected && !skips.is_empty() {
        bail!(
            "{} test(s) SKIPPED in CI on a host with {}, where every test is expected to run",
            skips.len(),
            cmd::KVM_DEVICE
        );
    }
    Ok(())
}

/// Prints the tests that did not run, by name and reason, or that none was skipped.
fn report_skips(skips: &[Skip]) {
    if skips.is_empty() {
        eprintln!("xtask test: 0 tests skipped");
        return;
    }
    let mut lines = vec![format!("{} test(s) SKIPPED: they did not run and did not pass", skips.len())];
    lines.extend(skips.iter().map(|s| format!("SKIPPED {}: {}: {}", s.binary, s.test, s.reason)));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    cmd::banner(&lines);
}

fn no_kvm_banner(error: &std::io::Error) {
    cmd::banner(&[
        "NO USABLE /dev/kvm: tests that boot real VMs are SKIPPED",
        &format!("opening {} read-write failed: {error}", cmd::KVM_DEVICE),
        &format!("{NO_KVM_ENV}=1 is set for the test run"),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_fails_the_run_only_where_every_test_is_expected_to_run() {
        let skip = Skip { binary: "boot".into(), test: "t".into(), reason: "needs /dev/kvm".into() };
        assert!(verdict(&[], true).is_ok());
        assert!(verdict(std::slice::from_ref(&skip), false).is_ok());
        let error = verdict(&[skip], true).unwrap_err().to_string();
        assert!(error.starts_with("1 test(s) SKIPPED in CI on a host with /dev/kvm"), "{error}");
    }
}
