//! `aggregator`: the incredible-squaring AVS aggregator (see `docs/aggregator.md`).
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aggregator::{Aggregator, Config, DecisionLog, GeneratorConfig, Numbers, OperatorSet, parse_duration};
use anyhow::Context;
use clap::Parser;

/// The incredible-squaring AVS aggregator: generates tasks, sends them to the operators' nodes,
/// verifies and aggregates their BLS-signed responses (BN254 or BLS12-381), and completes a task
/// once every quorum's signed stake reaches the threshold.
#[derive(Debug, Parser)]
#[command(name = "aggregator", version)]
struct Cli {
    /// The operator set (TOML; see docs/aggregator.md).
    #[arg(long, value_name = "FILE")]
    operators: PathBuf,
    /// Address of the JSON-RPC server (path `/`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Address of the Prometheus metrics server (path `/metrics`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    metrics: SocketAddr,
    /// Time between two tasks (`500ms`, `1s`, `2m`; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    task_interval: Duration,
    /// Make this many tasks, wait for them to complete or expire, then exit (default: run until
    /// interrupted).
    #[arg(long, value_name = "N")]
    tasks: Option<u32>,
    /// Time a task waits for its threshold before it expires.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    task_expiry: Duration,
    /// `quorum_threshold_percentage` of every task (1..=100).
    #[arg(long, value_name = "PERCENT", default_value_t = 67,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    quorum_threshold: u32,
    /// `quorum_numbers` of every task, comma-separated (default: every quorum of the operator set).
    #[arg(long, value_name = "Q,...", value_delimiter = ',')]
    quorums: Vec<u8>,
    /// How `number_to_be_squared` is chosen.
    #[arg(long, value_enum, default_value = "sequential")]
    numbers: Numbers,
    /// Seed of `--numbers random` (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// `task_created_block` of the first task; it grows by one per task.
    #[arg(long, value_name = "BLOCK", default_value_t = 1)]
    first_block: u32,
    /// Time allowed for each task POST to an operator's node.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    delivery_timeout: Duration,
    /// Append decision lines to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    decision_log: Option<PathBuf>,
    /// Only load and check the operator set, print a summary and exit.
    #[arg(long)]
    check: bool,
}

async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("aggregator: cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("aggregator: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the error and its causes on one line, each once.
            eprintln!("aggregator: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let operators = Arc::new(OperatorSet::load(&cli.operators)?);
    if cli.check {
        for operator in operators.iter() {
            let address = operator.address.as_ref().map_or("(none)", |a| a.url.as_str());
            println!("{operator}: stake {:?}, tasks to {address}", operator.stake);
        }
        for quorum in operators.quorums() {
            println!("quorum {quorum}: total stake {}", operators.total_stake(quorum));
        }
        println!(
            "{}: {} operators, all valid ({} keys)",
            cli.operators.display(),
            operators.len(),
            operators.scheme()
        );
        return Ok(());
    }
    let decision_log = match &cli.decision_log {
        None => DecisionLog::stdout(),
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path);
            DecisionLog::new(file.with_context(|| format!("cannot open decision log {}", path.display()))?)
        }
    };
    let quorums =
        if cli.quorums.is_empty() { operators.quorums().into_iter().collect() } else { cli.quorums };
    let clock_seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let generator = GeneratorConfig {
        interval: cli.task_interval,
        tasks: cli.tasks,
        quorum_numbers: quorums,
        threshold_percentage: cli.quorum_threshold,
        numbers: cli.numbers,
        seed: cli.seed.unwrap_or(clock_seed),
        first_block: cli.first_block,
        delivery_timeout: cli.delivery_timeout,
    };
    let config = Config {
        operators,
        listen: cli.listen,
        metrics: cli.metrics,
        task_expiry: cli.task_expiry,
        generator: Some(generator),
        decision_log,
    };
    let mut aggregator = Aggregator::start(config).await?;
    eprintln!(
        "aggregator: JSON-RPC on http://{}/, metrics on http://{}/metrics",
        aggregator.rpc_addr, aggregator.metrics_addr
    );
    tokio::select! {
        created = aggregator.wait_generator() => {
            eprintln!("aggregator: {} tasks sent; waiting for them to complete or expire", created.unwrap_or(0));
            let limit = cli.task_expiry + Duration::from_secs(1);
            tokio::select! {
                _ = aggregator.drain(limit) => {}
                () = stop_signal() => eprintln!("aggregator: interrupted"),
            }
        }
        () = stop_signal() => eprintln!("aggregator: stopping"),
    }
    aggregator.shutdown().await;
    Ok(())
}
