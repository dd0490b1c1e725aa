//! `cargo xtask bench sign`: BLS signing speed (BN254, EigenLayer's scheme and the default, or
//! BLS12-381, `--scheme`) inside one spacecore vCPU against the same code on the host, in the
//! same run.
//!
//! The guest runs `spacecore.selftest=sign-bench:N spacecore.scheme=S`
//! (`kernel-app/src/selftest.rs`): a fixed key of the scheme signs N digests through
//! `OperatorSecretKey`, each digest the keccak256 of the previous signature, and the guest
//! prints the time and the final digest. The host runs the same loop with the same
//! `avs-protocol` crate (and so the same arkworks or blst code), and the two final digests must
//! match: both sides computed the same N signatures. Each side runs `--rounds` times, alternating, and the fastest round of
//! each counts (the least disturbed by the rest of the machine).
//!
//! Then the whole path: one spacecore (with a PBKDF2 key file of the scheme on its disk) and the
//! aggregator, which makes `--tasks` tasks one every `--task-interval`. Each task goes over HTTP
//! to the node, which records it in its signing history (a disk write and flush), signs, answers,
//! and sends the signed response to the aggregator over JSON-RPC; the aggregator verifies and
//! completes the task (threshold 100%: the one operator). Tasks per second is completed tasks
//! over the time from the first task's creation to the last completion; its baseline is the
//! host's signing rate measured above (the bound if nothing but signing cost anything).
//!
//! With `--chain` (BN254), the same operators and tasks then run on a local chain
//! ([`super::sign_chain`]), and the table sets the two paths side by side. `--operators` sets
//! the spacecores of both end-to-end runs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use avs_protocol::encoding::to_hex;
use avs_protocol::{OperatorSecretKey, Scheme, bls, keccak256};
use serde::Serialize;

use spacecore_tests::cluster::{AggregatorOptions, Cluster, Tools, events};
use test_support::log::LogLine;

use super::sign_chain::{self, OnChainRun, Params};
use super::stats::percentile;
use super::vm::{self, Launcher, Scratch};
use super::{verdict, write_json};
use crate::cmd::progress;

/// Guest speed over host speed the signing path must reach.
const TARGET_RATIO: f64 = 0.95;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The signature scheme: bn254 (EigenLayer's) or bls12-381.
    #[arg(long, default_value = "bn254", value_parser = parse_scheme)]
    scheme: Scheme,
    /// Signatures per round.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    signatures: u32,
    /// Rounds per side; the fastest counts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Tasks of the end-to-end run (0: skip it).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    tasks: u32,
    /// Time between two tasks of the end-to-end run, in milliseconds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    task_interval_ms: u64,
    /// Operators, each with its spacecore, in the end-to-end runs (threshold 100%: all sign).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    operators: u64,
    /// Also run the end-to-end path on a local chain (Anvil, EigenLayer's contracts): the same
    /// operators and tasks, created with `createNewTask` and answered with `respondToTask`.
    #[arg(long)]
    chain: bool,
    /// With `--chain`: blocks the spacecores wait on top of a task's block.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=64))]
    confirmations: u64,
    /// With `--chain`: a block is mined this often besides each transaction's own, in
    /// milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    block_interval_ms: u64,
}

/// The end-to-end run's figures.
#[derive(Debug, Serialize)]
struct EndToEnd {
    operators: usize,
    tasks: u32,
    offered_per_s: f64,
    completed: usize,
    span_ms: f64,
    tasks_per_s: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    /// Tasks per second over the host's signatures per second.
    ratio_to_host_signing: f64,
}

/// `bn254` or `bls12-381`.
fn parse_scheme(text: &str) -> Result<Scheme, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// Everything the bench measured; written to `target/bench/sign-SCHEME.json`.
#[derive(Debug, Serialize)]
struct Report {
    scheme: &'static str,
    signatures: u32,
    guest_round_ns: Vec<u64>,
    host_round_ns: Vec<u64>,
    guest_signatures_per_s: f64,
    host_signatures_per_s: f64,
    /// Guest speed over host speed.
    ratio: f64,
    chain: String,
    end_to_end: Option<EndToEnd>,
    /// `--chain`: the end-to-end path on a local chain.
    on_chain: Option<OnChainRun>,
}

pub fn run(args: &Args) -> Result<()> {
    if args.chain {
        ensure!(
            args.scheme == Scheme::Bn254,
            "--chain needs --scheme bn254: EigenLayer's contracts check BN254"
        );
        ensure!(args.tasks > 0, "--chain needs end-to-end tasks (--tasks 1 or more)");
        // Anvil and solc-js come through the environment, as in the tests.
        if crate::onchain::run_with_tools()? {
            return Ok(());
        }
    }
    let prepared = vm::prepare("sign")?;
    let scratch = Scratch::new("sign")?;
    let spec = vm::write_spec(scratch.path(), "bench-sign", &prepared.image, "", "")?;
    let selftest =
        format!("spacecore.selftest=sign-bench:{} spacecore.scheme={}", args.signatures, args.scheme);
    let (mut guest_ns, mut host_ns) = (Vec::new(), Vec::new());
    let mut chain = String::new();
    for round in 1..=args.rounds {
        progress(format_args!("round {round}/{}: guest ({selftest}), then host...", args.rounds));
        let mut launcher =
            Launcher::spawn(&prepared.launch, &spec, scratch.path(), &["--cmdline", &selftest])?;
        let status = launcher.wait(Duration::from_secs(60) + Duration::from_millis(20) * args.signatures)?;
        if !status.success() {
            return Err(launcher.failure(status));
        }
        let (ns, guest_chain, scheme) =
            parse_guest(&launcher.lines()?).context("reading the guest's sign-bench line")?;
        ensure!(scheme == args.scheme.name(), "the guest signed with {scheme}, not {}", args.scheme);
        let (host, host_chain) = host_round(args.scheme, args.signatures);
        ensure!(
            guest_chain == host_chain,
            "the guest's signatures differ from the host's: chain {guest_chain} against {host_chain}"
        );
        guest_ns.push(ns);
        host_ns.push(host);
        chain = host_chain;
    }
    let per_s = |ns: &[u64]| f64::from(args.signatures) / (*ns.iter().min().unwrap_or(&1) as f64 / 1e9);
    let (guest, host) = (per_s(&guest_ns), per_s(&host_ns));
    let operators = usize::try_from(args.operators)?;
    let interval = Duration::from_millis(args.task_interval_ms);
    let (mut end_to_end, mut on_chain) = (None, None);
    if args.tasks > 0 {
        let tools = crate::demo::release_tools()?;
        let e = end_to_end_run(tools.clone(), args.scheme, operators, args.tasks, interval, host)?;
        if args.chain {
            let params = Params {
                operators,
                tasks: args.tasks,
                interval,
                confirmations: args.confirmations,
                block_interval: Duration::from_millis(args.block_interval_ms),
            };
            on_chain = Some(sign_chain::run(tools, params, (e.tasks_per_s, e.latency_p50_ms))?);
        }
        end_to_end = Some(e);
    }
    let report = Report {
        scheme: args.scheme.name(),
        signatures: args.signatures,
        guest_round_ns: guest_ns,
        host_round_ns: host_ns,
        guest_signatures_per_s: guest,
        host_signatures_per_s: host,
        ratio: guest / host,
        chain,
        end_to_end,
        on_chain,
    };
    let what = match args.scheme {
        Scheme::Bn254 => "BN254 signing (EigenLayer's BLS, G1 signatures, 32-byte digests)",
        Scheme::Bls12381 => "BLS12-381 signing (min-pk, 32-byte digests)",
    };
    println!("{what}, fastest of {} rounds of {}:", args.rounds, args.signatures);
    println!("  guest (one spacecore vCPU): {:>8.0} signatures/s ({:.1} us each)", guest, 1e6 / guest);
    println!("  host (same code, native):   {:>8.0} signatures/s ({:.1} us each)", host, 1e6 / host);
    println!(
        "  ratio guest/host:           {:>8.3}   target >= {TARGET_RATIO}  {}",
        report.ratio,
        verdict(report.ratio >= TARGET_RATIO)
    );
    if let Some(e) = &report.end_to_end {
        println!(
            "end to end, {} spacecore(s) and the aggregator, {} tasks offered at {:.0}/s:",
            e.operators, e.tasks, e.offered_per_s
        );
        println!("  completed:                  {:>8} of {}", e.completed, e.tasks);
        println!(
            "  tasks/s:                    {:>8.0}   ({:.3} of the host's signing rate)",
            e.tasks_per_s, e.ratio_to_host_signing
        );
        println!(
            "  task latency p50 / p99:     {:>8.2} / {:.2} ms (created to completed)",
            e.latency_p50_ms, e.latency_p99_ms
        );
        if let Some(c) = &report.on_chain {
            sign_chain::print(c, (e.completed, e.tasks_per_s, e.latency_p50_ms, e.latency_p99_ms));
        }
    }
    let out = write_json(&format!("sign-{}", args.scheme), &report)?;
    println!("figures written to {}", out.display());
    Ok(())
}

/// Runs `operators` spacecores of `scheme` and the aggregator through `tasks` tasks.
fn end_to_end_run(
    tools: Tools,
    scheme: Scheme,
    operators: usize,
    tasks: u32,
    interval: Duration,
    host_signatures_per_s: f64,
) -> Result<EndToEnd> {
    progress(format_args!(
        "end to end: {operators} {scheme} operator(s), their spacecores and the aggregator..."
    ));
    let mut cluster = Cluster::with_scheme(tools, "bench-sign", operators, scheme);
    cluster.start_all();
    let options = AggregatorOptions { tasks, threshold: 100, interval, expiry: Duration::from_secs(10) };
    let mut aggregator = cluster.start_aggregator(&options);
    // With --tasks the aggregator exits once every task is decided; the decision log is read
    // once, afterwards, so that reading it takes no CPU from the run being measured.
    let limit = interval * tasks + options.expiry + Duration::from_secs(30);
    let status = aggregator.finish(limit);
    ensure!(status == Some(0), "the aggregator ended with {status:?}:\n{}", aggregator.log_text());
    let decisions = aggregator.decisions();
    let ts = |d: &serde_json::Value| d["ts_ms"].as_f64().unwrap_or(f64::NAN);
    let first = events(&decisions, "task_created").map(ts).fold(f64::INFINITY, f64::min);
    let completed: Vec<&serde_json::Value> = events(&decisions, "task_completed").collect();
    ensure!(!completed.is_empty(), "no task completed:\n{}", aggregator.log_text());
    let last = completed.iter().map(|d| ts(d)).fold(f64::NEG_INFINITY, f64::max);
    let latencies: Vec<f64> = completed.iter().filter_map(|d| d["latency_ms"].as_f64()).collect();
    let span_ms = (last - first).max(1.0);
    let tasks_per_s = completed.len() as f64 / (span_ms / 1000.0);
    Ok(EndToEnd {
        operators,
        tasks,
        offered_per_s: 1.0 / interval.as_secs_f64(),
        completed: completed.len(),
        span_ms,
        tasks_per_s,
        latency_p50_ms: percentile(&latencies, 50.0).unwrap_or(f64::NAN),
        latency_p99_ms: percentile(&latencies, 99.0).unwrap_or(f64::NAN),
        ratio_to_host_signing: tasks_per_s / host_signatures_per_s,
    })
}

/// The guest's bench key (`kernel-app/src/selftest.rs`): BLS12-381 `KeyGen([7; 32])`, or the
/// BN254 scalar whose 32 bytes are all 7.
fn bench_key(scheme: Scheme) -> OperatorSecretKey {
    match scheme {
        Scheme::Bls12381 => OperatorSecretKey::Bls12381(
            bls::SecretKey::key_gen(&[7; 32]).expect("a 32-byte seed is a valid key seed"),
        ),
        Scheme::Bn254 => OperatorSecretKey::from_bytes(Scheme::Bn254, &[7; 32]).expect("7…7 is below r"),
    }
}

/// The host's round: the guest's loop, timed the same way. Returns (ns, final digest).
fn host_round(scheme: Scheme, signatures: u32) -> (u64, String) {
    let key = bench_key(scheme);
    let mut digest = keccak256(b"sign-bench");
    let start = Instant::now();
    for _ in 0..signatures {
        let signature = key.sign(&digest);
        digest = keccak256(signature.as_bytes());
    }
    (start.elapsed().as_nanos() as u64, to_hex(&digest))
}

/// `sign-bench: N signatures in T ns; chain 0x..; scheme S` from the guest's output:
/// (T, chain, S). Only the guest's lines of the JSON log count.
fn parse_guest(log: &[LogLine]) -> Option<(u64, String, String)> {
    let line = log.iter().find_map(|l| l.guest("sign-bench: "))?;
    let (_, rest) = line.split_once(" signatures in ")?;
    let (ns, rest) = rest.split_once(" ns; chain ")?;
    let (chain, scheme) = rest.split_once("; scheme ")?;
    Some((ns.parse().ok()?, chain.to_owned(), scheme.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn chain_flags_parse() {
        let args = Cli::try_parse_from(["sign"]).unwrap().args;
        assert!(!args.chain);
        assert_eq!((args.operators, args.confirmations, args.block_interval_ms), (1, 2, 500));
        let args = Cli::try_parse_from([
            "sign",
            "--chain",
            "--operators",
            "3",
            "--confirmations",
            "0",
            "--block-interval-ms",
            "100",
        ])
        .unwrap()
        .args;
        assert!(args.chain);
        assert_eq!((args.operators, args.confirmations, args.block_interval_ms), (3, 0, 100));
        assert!(Cli::try_parse_from(["sign", "--operators", "0"]).is_err());
        assert!(Cli::try_parse_from(["sign", "--operators", "9"]).is_err());
        assert!(Cli::try_parse_from(["sign", "--block-interval-ms", "5"]).is_err());
    }

    #[test]
    fn reads_the_guest_line() {
        let log = vm::plain_lines(
            "[b launcher] ready in 900 us\n[b guest] sign-bench: 500 signatures in 345000000 ns; chain 0xab12; scheme bn254",
        );
        assert_eq!(parse_guest(&log), Some((345_000_000, "0xab12".to_owned(), "bn254".to_owned())));
        assert_eq!(parse_guest(&log[..1]), None);
        let forged = vm::plain_lines(
            "[b launcher] sign-bench: 500 signatures in 345000000 ns; chain 0xab12; scheme bn254",
        );
        assert_eq!(parse_guest(&forged), None);
        assert_eq!(
            parse_guest(&vm::plain_lines("[b guest] sign-bench: x signatures in y ns; chain z; scheme s")),
            None
        );
        // The line before schemes: no longer what the guest prints.
        assert_eq!(
            parse_guest(&vm::plain_lines("[b guest] sign-bench: 5 signatures in 9 ns; chain 0xab")),
            None
        );
    }

    #[test]
    fn host_round_computes_the_known_chain() {
        // 200 signatures by KeyGen([7; 32]), as the guest computed them too.
        let (_, chain) = host_round(Scheme::Bls12381, 200);
        assert_eq!(chain, "0x6240f321ccf81223bddb4e1b16c5b94fa9fbd3dcec8c54eb432488051cc51d97");
    }

    #[test]
    fn the_bn254_chain_is_the_signatures_chain() {
        // The chain is keccak256 of each BN254 signature (X ‖ Y) in turn, from the fixed start.
        let key = avs_protocol::bn254::SecretKey::from_bytes(&[7; 32]).unwrap();
        let mut digest = keccak256(b"sign-bench");
        for _ in 0..3 {
            digest = keccak256(&key.sign(&digest).to_bytes());
        }
        assert_eq!(host_round(Scheme::Bn254, 3).1, to_hex(&digest));
        assert_ne!(host_round(Scheme::Bn254, 3).1, host_round(Scheme::Bls12381, 3).1);
    }
}
