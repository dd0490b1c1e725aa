//! `cargo xtask demo`: the whole AVS on this host. Three operators, three spacecores signing
//! with the keys imported into their disks (BN254, EigenLayer's scheme, unless `--scheme
//! bls12-381`), and the aggregator sending them tasks; one line per task as the aggregator
//! decides it. The cluster is the test harness's (`spacecore_tests::cluster`), so the demo runs
//! exactly what `tests/avs_bn254.rs` and `tests/avs.rs` check. `--chain` runs it on a chain
//! ([`chain`]), as `tests/chain_e2e.rs` checks.

use std::collections::HashMap;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use avs_protocol::Scheme;
use image_store::Store;
use serde_json::Value;
use spacecore_tests::cluster::{Aggregator, AggregatorOptions, Cluster, Tools, decided, events};

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
    /// On a chain: Anvil with EigenLayer's registries and checker and the TaskManager; the
    /// aggregator creates the tasks on chain and answers them with `respondToTask` (BN254 only).
    #[arg(long)]
    pub chain: bool,
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
    if args.chain {
        if args.scheme != Scheme::Bn254 {
            bail!("--chain needs --scheme bn254: EigenLayer's contracts check BN254 signatures only");
        }
        return chain::run(args);
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

    let options = aggregator_options(args.tasks, Duration::from_millis(500), Duration::from_secs(10));
    let mut aggregator = cluster.start_aggregator(&options);
    println!(
        "aggregator: JSON-RPC on {}, {} signatures, {} tasks, one every {:?}, quorum threshold {}%",
        cluster.aggregator_addr, args.scheme, options.tasks, options.interval, options.threshold
    );

    let (mut shown, mut completed) = (0, 0);
    follow(&mut aggregator, &options, Duration::from_secs(30), |decisions| {
        let numbers: HashMap<u64, &Value> =
            events(decisions, "task_created").map(|c| (index(c), &c["number_to_be_squared"])).collect();
        for task in decided(decisions).skip(shown) {
            println!("{}", describe(task, numbers.get(&index(task)).copied()));
            shown += 1;
            completed += usize::from(task["event"] == "task_completed");
        }
        shown
    });
    let status = aggregator.finish(Duration::from_secs(15));
    stop_nodes(&mut cluster);

    println!("{completed} of {} tasks completed", options.tasks);
    if completed != options.tasks as usize || status != Some(0) {
        bail!(
            "not every task completed (aggregator exit status {status:?}); its log:\n{}",
            aggregator.log_text()
        );
    }
    Ok(())
}

/// The demo's aggregator flags: `tasks` tasks, one every `interval`, each decided by `expiry` at
/// the latest, with a quorum threshold of 67 %.
fn aggregator_options(tasks: u32, interval: Duration, expiry: Duration) -> AggregatorOptions {
    AggregatorOptions { tasks, threshold: 67, interval, expiry }
}

/// Reads the aggregator's decisions every 100 ms and hands them to `show`, which prints what is
/// new and returns how many tasks it has shown, until every task is shown, the aggregator exits
/// or the deadline passes: every task is decided by its expiry at the latest, and `margin`
/// covers a slow start.
fn follow(
    aggregator: &mut Aggregator,
    options: &AggregatorOptions,
    margin: Duration,
    mut show: impl FnMut(&[Value]) -> usize,
) {
    let deadline = Instant::now() + options.interval * options.tasks + options.expiry + margin;
    loop {
        let exited = aggregator.exited();
        let shown = show(&aggregator.decisions());
        if shown >= options.tasks as usize || exited || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Stops every spacecore of `cluster`; the log of one that did not exit with 0 is printed.
fn stop_nodes(cluster: &mut Cluster) {
    for i in 0..cluster.nodes.len() {
        let (code, log) = cluster.stop(i);
        if code != Some(0) {
            eprintln!("{log}");
            progress(format_args!("{} exited with {code:?}", cluster.nodes[i].operator.name));
        }
    }
}

/// Builds the image (as `build-image` does) and the release launcher, CLI and aggregator.
pub fn release_tools() -> Result<Tools> {
    let built = build_image::build(&build_image::Args::default(), &Store::open_default())?;
    progress("building host-launcher, spacecore-cli and aggregator (release)...");
    let packages = ["-p", "host-launcher", "-p", "spacecore-cli", "-p", "aggregator"];
    cmd::run(&mut cmd::workspace_cargo(["build", "--release"].into_iter().chain(packages)))?;
    crate::jail_user::ensure()?;
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

/// `cargo xtask demo --chain`: the AVS on Anvil as [`crate::onchain`] sets it up (EigenLayer's
/// registries and BLSSignatureChecker and this project's TaskManager, the three operators
/// registered on chain with the BN254 keys on their spacecores' disks), the aggregator in chain
/// mode creating the tasks with `createNewTask`, and one line per task's `TaskResponded`
/// transaction.
mod chain {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use anyhow::{Result, bail};
    use serde_json::Value;
    use spacecore_tests::cluster::events;

    use super::{Args, OPERATORS, aggregator_options, follow, release_tools, stop_nodes};
    use crate::onchain::{self, OnChain, Settings};

    /// Blocks the spacecores wait on top of a task's block.
    const CONFIRMATIONS: u64 = 2;
    /// A block this often besides the transactions' own.
    const BLOCK_INTERVAL: Duration = Duration::from_millis(500);
    /// Each operator's stake in quorum 0.
    const STAKE: u64 = 100;

    pub fn run(args: &Args) -> Result<()> {
        if onchain::run_with_tools()? {
            return Ok(());
        }
        let tools = release_tools()?;
        let settings = Settings {
            prefix: "demo",
            operators: OPERATORS,
            stake: STAKE,
            confirmations: CONFIRMATIONS,
            block_interval: BLOCK_INTERVAL,
            keep: args.keep,
        };
        let mut chain = OnChain::start(tools, &settings)?;
        let d = &chain.deployment;
        println!("state directory: {}", chain.cluster.dir().display());
        println!("anvil: {} (chain id {})", chain.anvil.endpoint(), interop::chain::CHAIN_ID);
        println!("TaskManager (this project's): {}", d.task_manager.address());
        println!("BLSSignatureChecker (EigenLayer's MockAvsServiceManager): {}", d.checker.address());
        println!("registry coordinator (this project's): {}", d.coordinator.address());
        println!("OperatorStateRetriever (EigenLayer's): {}", d.retriever.address());
        println!("task generator: {}, aggregator: {}", d.roles.task_generator, d.roles.aggregator);
        for (node, registered) in chain.cluster.nodes.iter().zip(&d.operators) {
            println!(
                "{}: registered on chain as operator {} (account {}, stake {})",
                node.operator.name, registered.id, registered.address, registered.stake
            );
        }
        for node in &chain.cluster.nodes {
            println!(
                "{}: reads NewTaskCreated from Anvil ({CONFIRMATIONS} confirmations, a block every \
                 {BLOCK_INTERVAL:?}), HTTP on http://{}",
                node.operator.name,
                node.http.expect("running")
            );
        }

        let options = aggregator_options(args.tasks, Duration::from_secs(1), Duration::from_secs(30));
        let mut aggregator = chain.start_aggregator(&options);
        println!(
            "aggregator: chain mode, JSON-RPC on {}, {} tasks created on chain, one every {:?}, quorum threshold {}%",
            chain.cluster.aggregator_addr, options.tasks, options.interval, options.threshold
        );

        let (mut shown, mut failures) = (BTreeSet::new(), BTreeSet::new());
        follow(&mut aggregator, &options, Duration::from_secs(60), |decisions| {
            for line in events(decisions, "task_responded") {
                let index = line["task_index"].as_u64().unwrap_or(u64::MAX);
                if shown.insert(index) {
                    println!("{}", describe(line, decisions));
                }
            }
            for line in events(decisions, "chain_error").chain(events(decisions, "task_expired")) {
                if failures.insert(line.to_string()) {
                    println!("FAILED: {line}");
                }
            }
            shown.len()
        });
        let status = aggregator.finish(Duration::from_secs(30));
        chain.stop_miner();

        // What the chain itself holds: one TaskResponded per task.
        let on_chain = chain.responded()?.len();
        stop_nodes(&mut chain.cluster);
        println!(
            "{on_chain} of {} tasks responded on chain (TaskResponded logs of the TaskManager)",
            options.tasks
        );
        if on_chain != options.tasks as usize || status != Some(0) {
            bail!(
                "not every task was responded on chain (aggregator exit status {status:?}); its log:\n{}",
                aggregator.log_text()
            );
        }
        Ok(())
    }

    /// One line for a `task_responded` decision: the task, its square, and the transaction.
    fn describe(line: &Value, decisions: &[Value]) -> String {
        let index = &line["task_index"];
        let signers = events(decisions, "task_completed")
            .find(|c| c["task_index"] == *index)
            .and_then(|c| c["signers"].as_array().map(Vec::len))
            .unwrap_or(0);
        format!(
            "task {index:>3}  squared {:>6}  signers {signers}  TaskResponded in tx {} (block {}, gas {})  \
             createNewTask to TaskResponded {:.0} ms",
            line["number_squared"].as_str().unwrap_or("?"),
            line["tx_hash"].as_str().unwrap_or("?"),
            line["block_number"],
            line["gas_used"],
            line["create_to_responded_ms"].as_f64().unwrap_or(f64::NAN),
        )
    }
}
