//! `cargo xtask test`: the whole test suite, as CI runs it. Each step is
//! announced; the first failing step ends the run with an error.

use std::ffi::OsStr;
use std::process::Command;

use anyhow::{Context, Result};
use image_store::{STORE_ENV, Store};

use crate::cmd::{self, describe};
use crate::{build_image, chain_tools, promtool};

/// Set for the test run when `/dev/kvm` cannot be used; tests that boot real
/// VMs skip themselves when they see it.
pub const NO_KVM_ENV: &str = "SPACECORE_NO_KVM";
const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";
const STEPS: usize = 10;
/// Where the metrics tests find `promtool`, Prometheus' own exposition-format checker.
pub const PROMTOOL_ENV: &str = "SPACECORE_PROMTOOL";

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

    // (d) Prometheus' own parser, for the tests that check metrics output.
    let n = steps.announce("providing promtool (Prometheus' exposition-format checker)");
    let promtool = promtool::provide().with_context(|| format!("step {n}/{STEPS} failed"))?;
    eprintln!("xtask test: promtool is {}", promtool.display());

    // (d') Anvil and solc-js, pinned, for the tests that run EigenLayer's contracts on a chain.
    let n = steps.announce("providing Anvil and solc-js (npm, pinned), for the on-chain tests");
    let chain = chain_tools::provide().with_context(|| format!("step {n}/{STEPS} failed"))?;

    // (e)-(g) run against a store inside target/, never one left on the machine.
    let store = Store::at(cmd::target_dir().join("image-store"));
    let with_env = |command: &mut Command| {
        command.env(STORE_ENV, store.root());
        command.env(PROMTOOL_ENV, &promtool);
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
    steps.run(&mut kernel_tests)?;

    let mut workspace_tests = cmd::workspace_cargo(["test", "--workspace"]);
    workspace_tests.args(&args.extra);
    with_env(&mut workspace_tests);
    steps.run(&mut workspace_tests)?;

    eprintln!("xtask test: all {STEPS} steps passed");
    if let Some(e) = &no_kvm {
        no_kvm_banner(e);
    }
    Ok(())
}

fn no_kvm_banner(error: &std::io::Error) {
    cmd::banner(&[
        "NO USABLE /dev/kvm: tests that boot real VMs are SKIPPED",
        &format!("opening {} read-write failed: {error}", cmd::KVM_DEVICE),
        &format!("{NO_KVM_ENV}=1 is set for the test run"),
    ]);
}
