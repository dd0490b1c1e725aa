//! `cargo xtask bench <name>`: one module per bench, sharing `stats`.
//!
//! A bench reports each figure beside its target with PASS or MISS; it fails
//! only when a run fails, never for a missed target.

mod boot;
mod stats;

use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Boot-to-ready latency, whole-process wall time and memory overhead of
    /// `hac-launch`, against the bare-KVM floor `hac-floor`.
    Boot(boot::Args),
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Boot(args) => boot::run(&args),
    }
}

/// PASS or MISS.
fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}
