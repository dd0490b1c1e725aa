//! `cargo xtask bench <name>`: one module per bench, sharing `stats` (order statistics), `vm`
//! (booting a spacecore for a bench) and `http` (the net bench's client and baseline server, and
//! the head reader `recover` uses).
//!
//! A bench reports each figure beside its target with PASS or MISS; it fails
//! only when a run fails, never for a missed target.

mod all;
mod boot;
mod cpu;
mod density;
mod disk;
mod hostmem;
mod http;
mod idle;
mod net;
mod recover;
mod serving;
mod sign;
mod sign_chain;
mod stats;
mod update;
mod vm;

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use crate::cmd;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Boot-to-ready latency, whole-process wall time and memory overhead of
    /// `hac-launch`, against the bare-KVM floor `hac-floor`.
    Boot(boot::Args),
    /// HTTP `GET /` latency and `POST /echo` throughput of a spacecore through its published
    /// port, against a baseline HTTP server on the host's loopback.
    Net(net::Args),
    /// Random 4 KiB write+flush and sequential read speed of the guest's virtio-blk disk,
    /// against the same I/O done by the host on the same file.
    Disk(disk::Args),
    /// BLS signatures per second (BN254 or BLS12-381) inside one spacecore vCPU against the same
    /// code on the host; tasks per second end to end, and with `--chain` on a local chain too.
    Sign(sign::Args),
    /// Crash-to-serving time of a spacecore under auto-recovery against its cold start, and the
    /// launcher's CPU use while the spacecore idles against a light load.
    Recover(recover::Args),
    /// Many spacecores started at once: time until all serve, host memory per spacecore and
    /// the idle CPU of all together, against one spacecore alone.
    Density(density::Args),
    /// How long a spacecore does not answer while `hac-launch --update` replaces its image,
    /// against a cold restart of the same spec; client-visible errors of each.
    Update(update::Args),
    /// Every bench (small runs unless `--full`), then one Markdown table of each figure against
    /// the project's goal for it, in `target/bench/all.md`.
    All(all::Args),
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Boot(args) => boot::run(&args),
        Bench::Net(args) => net::run(&args),
        Bench::Disk(args) => disk::run(&args),
        Bench::Sign(args) => sign::run(&args),
        Bench::Recover(args) => recover::run(&args),
        Bench::Density(args) => density::run(&args),
        Bench::Update(args) => update::run(&args),
        Bench::All(args) => all::run(&args),
    }
}

/// PASS or MISS.
fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// Writes `report` as pretty JSON to `target/bench/<name>.json`; returns the path.
fn write_json(name: &str, report: &impl Serialize) -> Result<PathBuf> {
    let out_dir = cmd::target_dir().join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}.json"));
    fs::write(&out, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}
