//! `cargo xtask demo`: the whole AVS on this host. Three operators, three spacecores signing
//! with the keys imported into their disks (BN254, EigenLayer's scheme, unless `--scheme
//! bls12-381`), and the aggregator sending them tasks; one line per task as the aggregator
//! decides it. The cluster is the test harness's (`spacecore_tests::cluster`), so the demo runs
//! exactly what `tests/avs_bn254.rs` and `tests/avs.rs` check.

use std::collections::HashMap;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use avs_protocol::Scheme;
use image_store::Store;
use serde_json::Value;
use spacecore_tests::cluster::{AggregatorOptions, Cluster, Tools, decided, events};

use crate::build_image;
use crate::cmd::{self, progress};

/// The operators of the demo.
const OPERATORS: usize = 3;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tasks the aggregator makes (one every 500 ms).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub tasks: u32,
    /// Keep the state directory (specs, key files, disks, decision log) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// The operators' signature scheme: `bn254` (EigenLayer's) or `bls12-381`.
    #[arg(long, default_value = "bn254", value_parser = parse_scheme)]
    pub scheme: Scheme,
}

fn parse_scheme(name: &str) -> Result<Scheme, String> {
    name.parse().map_err(|e: avs_protocol::scheme::UnknownScheme| e.to_string())
}

pub fn run(args: &Args) -> Result<()> {
    if let Err(e) = cmd::kvm_usable() {
        cmd::banner(&[
            "NO USABLE /dev/kvm: the demo boots real VMs and CANNOT RUN here",
            &format!("opening {} read-write failed: {e}", cmd::KVM_DEVICE),
        ]);
        bail!("no usable {}", cmd::KVM_DEVICE);
    }
    let tools = release_tools()?;

    let files = match args.scheme {
        Scheme::Bn254 => "eigensdk BN254 key files",
        Scheme::Bls12381 => "EIP-2335 BLS12-381 keystores",
    };
    progress(format_args!("making {OPERATORS} operators ({files}) and their spacecores' disks..."));
    let mut cluster = Cluster::with_scheme(tools, "demo", OPERATORS, args.scheme);
    if args.keep {
        cluster.keep();
    }
    println!("state directory: {}", cluster.dir().display());
    for node in &cluster.nodes {
        println!("spec: {}", node.spec.display());
    }
    progress("booting the spacecores and loading their keys...");
    cluster.start_all();
    for node in &cluster.nodes {
        let (name, id) = (&node.operator.name, node.operator.key.id_hex());
        println!("{name}: operator {id}, tasks on http://{}", node.http.expect("running"));
    }

    let options = AggregatorOptions {
        tasks: args.tasks,
        threshold: 67,
        interval: Duration::from_millis(500),
        expiry: Duration::from_secs(10),
    };
    let mut aggregator = cluster.start_aggregator(&options);
    println!(
        "aggregator: JSON-RPC on {}, {} signatures, {} tasks, one every {:?}, quorum threshold {}%",
        cluster.aggregator_addr, args.scheme, options.tasks, options.interval, options.threshold
    );

    // Every task is decided by its expiry at the latest; the margin covers a slow start.
    let limit = options.interval * options.tasks + options.expiry + Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    let (mut shown, mut completed) = (0, 0);
    loop {
        let exited = aggregator.exited();
        let decisions = aggregator.decisions();
        let numbers: HashMap<u64, &Value> =
            events(&decisions, "task_created").map(|c| (index(c), &c["number_to_be_squared"])).collect();
        for task in decided(&decisions).skip(shown) {
            println!("{}", describe(task, numbers.get(&index(task)).copied()));
            shown += 1;
            completed += usize::from(task["event"] == "task_completed");
        }
        if shown >= options.tasks as usize || exited || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let status = aggregator.finish(Duration::from_secs(15));
    for i in 0..cluster.nodes.len() {
        let (code, log) = cluster.stop(i);
        if code != Some(0) {
            eprintln!("{log}");
            progress(format_args!("{} exited with {code:?}", cluster.nodes[i].operator.name));
        }
    }

    println!("{completed} of {} tasks completed", options.tasks);
    if completed != options.tasks as usize || status != Some(0) {
        bail!(
            "not every task completed (aggregator exit status {status:?}); its log:\n{}",
            aggregator.log_text()
        );
    }
    Ok(())
}

/// Builds the image (as `build-image` does) and the release launcher, CLI and aggregator.
pub fn release_tools() -> Result<Tools> {
    let built = build_image::build(&build_image::Args::default(), &Store::open_default())?;
    progress("building host-launcher, spacecore-cli and aggregator (release)...");
    let packages = ["-p", "host-launcher", "-p", "spacecore-cli", "-p", "aggregator"];
    cmd::run(&mut cmd::workspace_cargo(["build", "--release"].into_iter().chain(packages)))?;
    let release = cmd::target_dir().join("release");
    Ok(Tools {
        image: fs::canonicalize(&built.elf)
            .with_context(|| format!("cannot find {}", built.elf.display()))?,
        launcher: release.join("hac-launch"),
        cli: release.join("spacecore"),
        aggregator: release.join("aggregator"),
    })
}

fn index(decision: &Value) -> u64 {
    decision["task_index"].as_u64().unwrap_or(u64::MAX)
}

/// One line for a `task_completed` or `task_expired` decision.
fn describe(task: &Value, number: Option<&Value>) -> String {
    let count = |field: &str| task[field].as_array().map_or(0, Vec::len);
    let number = number.and_then(Value::as_str).unwrap_or("?");
    let stakes: Vec<String> = task["quorums"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| format!("quorum {}: {}/{} stake", q["quorum"], q["signed_stake"], q["total_stake"]))
        .collect();
    let outcome = if task["event"] == "task_completed" {
        let latency = task["latency_ms"].as_f64().unwrap_or(f64::NAN);
        format!("non-signers {}  {}  latency {latency:.1} ms", count("non_signers"), stakes.join(", "))
    } else {
        format!("EXPIRED  {}", stakes.join(", "))
    };
    format!("task {:>3}  number {number:>4}  signers {}  {outcome}", index(task), count("signers"))
}
