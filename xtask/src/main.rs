//! `cargo xtask`: Spacecore's project automation.
//!
//! One module per subcommand; `cmd` holds what they share (running
//! commands, finding the workspace, probing `/dev/kvm`). See `docs/xtask.md`.
#![forbid(unsafe_code)]

#[cfg(test)]
mod architecture;
mod bench;
mod build_image;
mod chain_tools;
mod cmd;
mod deb_tool;
mod demo;
mod fleet;
mod fuzz;
mod jail_user;
mod launch;
mod new_avs;
mod onchain;
mod promtool;
mod test;
mod umoci;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Spacecore project automation: build the image, benchmark, test, launch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the unikernel image, copy it to images/ and register it in the image store.
    BuildImage(build_image::Args),
    /// Write a new AVS crate (from the SDK's template) that builds, boots and passes its tests.
    NewAvs(new_avs::Args),
    /// Run a benchmark and compare it with its targets.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Run the whole test suite, as CI does.
    Test(test::Args),
    /// Build the image and the launcher, then run `hac-launch SPEC`.
    Launch(launch::Args),
    /// Run the fuzz targets (cargo-fuzz, nightly) for a while each (`--ci`: the bounded run of `test`).
    Fuzz(fuzz::Args),
    /// Run three spacecores and the aggregator on this host and show each task's aggregate.
    Demo(demo::Args),
    /// Check the fleet files of examples/fleet/ with their orchestrators' validators (part of
    /// step 6 of `test`).
    CheckFleet,
    /// Install the on-chain tests' pinned Anvil and solc-js (as `test` does) and print their
    /// variables as shell `export` lines, to run those tests alone.
    ChainTools,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::BuildImage(args) => build_image::run(&args),
        Command::NewAvs(args) => new_avs::run(&args),
        Command::Bench(bench) => bench::run(bench),
        Command::Test(args) => test::run(&args),
        Command::Launch(args) => launch::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::ChainTools => chain_tools::print_exports(),
        Command::CheckFleet => fleet::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "build-image",
            "--tag",
            "registry/path/avs-spacecore:v1",
            "--tag",
            "other",
            "--features",
            "a,b",
        ])
        .unwrap();
        let Command::BuildImage(args) = cli.command else {
            panic!("not build-image");
        };
        assert_eq!(args.tags.len(), 2);
        assert_eq!(args.tags[1].to_string(), "other:latest");
        assert_eq!(args.features, ["a", "b"]);
        // --avs takes incredible-squaring or a crate's directory, told apart when the build starts
        // (`build_image::tests::an_avs_is_the_built_in_one_or_a_crate_directory`).
        assert!(Cli::try_parse_from(["xtask", "build-image", "--avs", "avs/metered-api"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "new-avs", "x", "--dir", "/tmp/x"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "new-avs"]).is_err(), "a name is needed");
        assert!(Cli::try_parse_from(["xtask", "build-image", "--tag", "../x"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "bench", "boot", "--runs", "9"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "bench", "boot", "--runs", "10"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "launch", "x.toml", "--", "--until-ready"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "test", "--", "--nocapture"]).is_ok());
        let Command::Demo(args) = Cli::try_parse_from(["xtask", "demo"]).unwrap().command else {
            panic!("not demo");
        };
        assert_eq!((args.tasks, args.keep), (10, false));
        assert!(Cli::try_parse_from(["xtask", "demo", "--tasks", "0"]).is_err());
    }
}
