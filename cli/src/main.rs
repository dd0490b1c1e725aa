//! `spacecore`: the operator's command line. `spacecore keys ...` makes, inspects and uses
//! BN254 and BLS12-381 keys and ECDSA keystores, and puts key files on a spacecore's disk;
//! `spacecore history ...` exports, imports or starts the signing history on a disk;
//! `spacecore operator register` registers the operator with EigenLayer and an AVS on chain;
//! `spacecore image export | import` moves images of the image store as OCI image layouts
//! (docs/cli.md describes every command).
//!
//! Exit status: 0 on success, 1 when a signature or proof checked by `verify`/`pop-verify` is
//! not valid, 2 on any error (bad arguments, bad encodings, files, wrong password).
#![forbid(unsafe_code)]

mod disk;
mod hex;
mod history;
mod image;
mod keyfile;
mod keys;
mod operator;
mod secret;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The Spacecore operator's command line.
#[derive(Debug, Parser)]
#[command(
    name = "spacecore",
    version,
    after_help = "Exit status: 0 on success, 1 when `keys verify` or `keys pop-verify` finds the \
                  signature invalid, 2 on any error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// BN254 and BLS12-381 keys, ECDSA keystores: generate, sign, verify, aggregate, import to a disk.
    #[command(subcommand)]
    Keys(keys::Keys),
    /// The signing history on a spacecore's disk (slashing protection): export, import, new.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// The operator on chain: register with EigenLayer (DelegationManager, a strategy deposit)
    /// and with an AVS (its registry coordinator).
    #[command(subcommand)]
    Operator(operator::Operator),
    /// Images of the image store as OCI image layouts: export, import.
    #[command(subcommand)]
    Image(image::Image),
}

/// What a successful command found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or: the signature is valid).
    Done,
    /// The signature or proof is not valid.
    Invalid,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(keys) => keys.run(),
        Command::History(history) => history.run(),
        Command::Operator(operator) => operator.run(),
        Command::Image(image) => image.run(),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Invalid) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
