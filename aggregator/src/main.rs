//! `aggregator`: the incredible-squaring AVS aggregator (see `docs/aggregator.md`).
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aggregator::{
    Aggregator, ChainConfig, Config, DecisionLog, GeneratorConfig, Numbers, OperatorSet, parse_duration,
};
use alloy::primitives::Address;
use anyhow::Context;
use clap::Parser;

/// The incredible-squaring AVS aggregator: generates tasks, sends them to the operators' nodes,
/// verifies and aggregates their BLS-signed responses (BN254 or BLS12-381), and completes a task
/// once every quorum's signed stake reaches the threshold.
#[derive(Debug, Parser)]
#[command(name = "aggregator", version)]
struct Cli {
    /// The static operator set (TOML; see docs/aggregator.md). Not with --eth-rpc.
    #[arg(long, value_name = "FILE", required_unless_present = "eth_rpc", conflicts_with = "eth_rpc")]
    operators: Option<PathBuf>,
    /// Chain mode: the Ethereum JSON-RPC endpoint, `http://` on loopback.
    #[arg(long, value_name = "URL", required_unless_present = "operators")]
    eth_rpc: Option<String>,
    /// Chain mode: the incredible-squaring TaskManager's address.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_address, required_unless_present = "operators", conflicts_with = "operators")]
    task_manager: Option<Address>,
    /// Chain mode: EigenLayer's OperatorStateRetriever's address.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_address, required_unless_present = "operators", conflicts_with = "operators")]
    operator_state_retriever: Option<Address>,
    /// Chain mode: the registry coordinator's address.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_address, required_unless_present = "operators", conflicts_with = "operators")]
    registry_coordinator: Option<Address>,
    /// Chain mode: the task generator's Ethereum v3 keystore (sends createNewTask).
    #[arg(long, value_name = "FILE", required_unless_present = "operators", conflicts_with = "operators")]
    task_generator_keystore: Option<PathBuf>,
    /// Chain mode: the file holding the task generator keystore's password.
    #[arg(long, value_name = "FILE", required_unless_present = "operators", conflicts_with = "operators")]
    task_generator_password: Option<PathBuf>,
    /// Chain mode: the aggregator's Ethereum v3 keystore (sends respondToTask).
    #[arg(long, value_name = "FILE", required_unless_present = "operators", conflicts_with = "operators")]
    aggregator_keystore: Option<PathBuf>,
    /// Chain mode: the file holding the aggregator keystore's password.
    #[arg(long, value_name = "FILE", required_unless_present = "operators", conflicts_with = "operators")]
    aggregator_password: Option<PathBuf>,
    /// Chain mode: longest wait for a transaction's receipt.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    tx_timeout: Duration,
    /// Static mode: the task source's Ethereum v3 keystore. Every task sent to a node carries
    /// its signature; a node takes pushed tasks only from the address its spec names
    /// (`spec.avs.task_signer`). Without it, tasks are sent unsigned and nodes refuse them.
    #[arg(long, value_name = "FILE", requires = "task_signer_password", conflicts_with = "eth_rpc")]
    task_signer_keystore: Option<PathBuf>,
    /// Static mode: the file holding the task source keystore's password.
    #[arg(long, value_name = "FILE", requires = "task_signer_keystore")]
    task_signer_password: Option<PathBuf>,
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
    /// `quorum_numbers` of every task, comma-separated (default: every quorum of the operator
    /// set; quorum 0 in chain mode).
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
    /// Only load and check the operator set (chain mode: the chain, the contracts and the keys,
    /// and the operator set at the latest block), print a summary and exit.
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

/// `0x` and 40 hex digits.
fn parse_address(text: &str) -> Result<Address, String> {
    let digits = text.strip_prefix("0x").ok_or_else(|| format!("{text:?} is not 0x and 40 hex digits"))?;
    if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{text:?} is not 0x and 40 hex digits"));
    }
    text.parse().map_err(|e| format!("{text:?}: {e}"))
}

/// The task source's key (`--task-signer-keystore`), decrypted; static mode only.
fn task_signer(cli: &Cli) -> anyhow::Result<Option<avs_protocol::ecdsa::SecretKey>> {
    let (Some(keystore), Some(password)) = (&cli.task_signer_keystore, &cli.task_signer_password) else {
        if cli.eth_rpc.is_none() {
            eprintln!(
                "aggregator: warning: no --task-signer-keystore: tasks are sent unsigned, and nodes refuse \
                 pushed tasks that do not carry their task source's signature"
            );
        }
        return Ok(None);
    };
    let signer =
        aggregator::chain::keys::load_signer(keystore, password).context("--task-signer-keystore")?;
    let key = avs_protocol::ecdsa::SecretKey::from_bytes(&signer.to_bytes().0)
        .map_err(|e| anyhow::anyhow!("--task-signer-keystore: {e}"))?;
    eprintln!(
        "aggregator: tasks are signed by the task source {}",
        avs_protocol::encoding::to_hex(&key.address())
    );
    Ok(Some(key))
}

/// The chain options, with both keys decrypted.
fn chain_config(cli: &Cli) -> anyhow::Result<Option<ChainConfig>> {
    let Some(rpc_url) = cli.eth_rpc.clone() else { return Ok(None) };
    // clap requires every chain option without --operators.
    let missing = |flag: &str| anyhow::anyhow!("{flag} is required with --eth-rpc");
    let path = |p: &Option<PathBuf>, flag: &str| p.clone().ok_or_else(|| missing(flag));
    let generator = aggregator::chain::keys::load_signer(
        &path(&cli.task_generator_keystore, "--task-generator-keystore")?,
        &path(&cli.task_generator_password, "--task-generator-password")?,
    )
    .context("--task-generator-keystore")?;
    let aggregator_key = aggregator::chain::keys::load_signer(
        &path(&cli.aggregator_keystore, "--aggregator-keystore")?,
        &path(&cli.aggregator_password, "--aggregator-password")?,
    )
    .context("--aggregator-keystore")?;
    Ok(Some(ChainConfig {
        rpc_url,
        task_manager: cli.task_manager.ok_or_else(|| missing("--task-manager"))?,
        operator_state_retriever: cli
            .operator_state_retriever
            .ok_or_else(|| missing("--operator-state-retriever"))?,
        registry_coordinator: cli.registry_coordinator.ok_or_else(|| missing("--registry-coordinator"))?,
        task_generator: generator,
        aggregator: aggregator_key,
        tx_timeout: cli.tx_timeout,
    }))
}

/// `--check` in chain mode: the chain, the contracts and keys, the operator set now.
async fn check_chain(config: &ChainConfig, quorums: &[u8]) -> anyhow::Result<()> {
    let chain = aggregator::chain::Chain::connect(config).await?;
    let block = chain.block_number().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "chain {}: TaskManager {} (taskGenerator {}, aggregator {}: the keystores' accounts), BLSApkRegistry {}",
        chain.chain_id(),
        config.task_manager,
        config.task_generator.address(),
        config.aggregator.address(),
        chain.bls_apk_registry()
    );
    let block = u32::try_from(block).map_err(|_| anyhow::anyhow!("block {block} does not fit in uint32"))?;
    let set = chain.operator_set(quorums, block).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    for operator in set.iter() {
        println!("{operator}: stake {:?}", operator.stake);
    }
    for quorum in quorums {
        println!("quorum {quorum}: total stake {} at block {block}", set.total_stake(*quorum));
    }
    println!("{} operators at block {block}, all valid (bn254 keys)", set.len());
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let chain = chain_config(&cli)?;
    if let Some(chain) = &chain {
        let quorums = if cli.quorums.is_empty() { vec![0] } else { cli.quorums.clone() };
        if cli.check {
            return check_chain(chain, &quorums).await;
        }
        return serve(&cli, None, Some(chain.clone()), quorums).await;
    }
    let path =
        cli.operators.clone().ok_or_else(|| anyhow::anyhow!("--operators or --eth-rpc is required"))?;
    let operators = Arc::new(OperatorSet::load(&path)?);
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
            path.display(),
            operators.len(),
            operators.scheme()
        );
        return Ok(());
    }
    let quorums =
        if cli.quorums.is_empty() { operators.quorums().into_iter().collect() } else { cli.quorums.clone() };
    serve(&cli, Some(operators), None, quorums).await
}

/// Starts the aggregator, static or on the chain, and runs it until its tasks are done or a
/// signal.
async fn serve(
    cli: &Cli,
    operators: Option<Arc<OperatorSet>>,
    chain: Option<ChainConfig>,
    quorums: Vec<u8>,
) -> anyhow::Result<()> {
    let decision_log = match &cli.decision_log {
        None => DecisionLog::stdout(),
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path);
            DecisionLog::new(file.with_context(|| format!("cannot open decision log {}", path.display()))?)
        }
    };
    let clock_seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let task_signer = task_signer(cli)?;
    let generator = GeneratorConfig {
        interval: cli.task_interval,
        tasks: cli.tasks,
        quorum_numbers: quorums,
        threshold_percentage: cli.quorum_threshold,
        numbers: cli.numbers,
        seed: cli.seed.unwrap_or(clock_seed),
        first_block: cli.first_block,
        delivery_timeout: cli.delivery_timeout,
        task_signer,
    };
    let on_chain = chain.is_some();
    let config = Config {
        operators,
        chain,
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
            let mut limit = cli.task_expiry + Duration::from_secs(1);
            if on_chain {
                // The last aggregate's respondToTask may still be waiting for its receipt.
                limit += cli.tx_timeout;
            }
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
