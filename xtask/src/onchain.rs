//! The AVS on a local chain, as `demo --chain` and `bench sign --chain` run it: Anvil,
//! EigenLayer's registries and BLSSignatureChecker and this project's TaskManager
//! (`interop::avs::Deployment`), the operators registered on chain with the BN254 keys on their
//! spacecores' disks, a block mined every `block_interval`, the spacecores reading their tasks
//! from the chain, and the aggregator in chain mode. `tests/chain_e2e.rs` checks this set-up.

use std::future::{Future, IntoFuture};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use anyhow::{Context, Result, anyhow, bail};
use avs_protocol::bn254::SecretKey;
use interop::avs::{self, Deployment, Roles, SpacecoreTaskManager};
use interop::chain::Anvil;
use spacecore_tests::cluster::{Aggregator, AggregatorOptions, ChainSetup, Cluster, EcdsaKey, Tools};

use crate::chain_tools::{self, ANVIL_ENV, SOLCJS_ENV};
use crate::cmd::progress;

/// How the chain and the spacecores on it are set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Names of the operators: `{prefix}-1`, `{prefix}-2`, ...
    pub prefix: &'static str,
    /// Operators, each with its spacecore.
    pub operators: usize,
    /// Each operator's stake in quorum 0.
    pub stake: u64,
    /// Blocks the spacecores wait on top of a task's block (`[spec.avs] confirmations`).
    pub confirmations: u64,
    /// Anvil mines a block per transaction only: one more block this often, as a chain's block
    /// time, so that the last tasks get their confirmations.
    pub block_interval: Duration,
    /// Keep the state directory afterwards.
    pub keep: bool,
}

/// Makes sure this process has the chain tools' variables (`SPACECORE_ANVIL`,
/// `SPACECORE_SOLCJS`), which the deployment reads as the tests do. When they are unset it
/// installs the pinned tools and runs this same xtask command line again with them set, and
/// returns `Ok(true)`: the second run did the work. `Ok(false)`: they are set, go on.
pub fn run_with_tools() -> Result<bool> {
    if std::env::var_os(ANVIL_ENV).is_some() && std::env::var_os(SOLCJS_ENV).is_some() {
        return Ok(false);
    }
    progress("providing Anvil and solc-js (npm, pinned)...");
    let tools = chain_tools::provide()?;
    let exe = std::env::current_exe().context("cannot find the xtask program to run it again")?;
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(ANVIL_ENV, &tools.anvil)
        .env(SOLCJS_ENV, &tools.solcjs)
        .status()
        .context("cannot run the xtask program again")?;
    if !status.success() {
        bail!("the run with Anvil and solc-js failed ({status})");
    }
    Ok(true)
}

/// A deployment on Anvil with its operators' spacecores running. Dropping it stops the miner,
/// the spacecores and Anvil, in that order.
pub struct OnChain {
    miner: Option<Miner>,
    /// The operators and their spacecores (running once [`OnChain::start`] returns).
    pub cluster: Cluster,
    /// The contracts and the registered operators.
    pub deployment: Deployment,
    /// Where the aggregator's chain mode finds the AVS and its two keys.
    pub setup: ChainSetup,
    /// The local node.
    pub anvil: Anvil,
    rt: tokio::runtime::Runtime,
}

impl OnChain {
    /// Makes the operators (eigensdk BN254 key files on their disks) and two ECDSA keystores
    /// (task generator, aggregator), starts Anvil, deploys and registers the operators with the
    /// keys of their key files, starts the miner, and boots the spacecores pointed at Anvil and
    /// the TaskManager.
    pub fn start(tools: Tools, settings: &Settings) -> Result<OnChain> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let n = settings.operators;
        progress(format_args!(
            "making {n} operators (eigensdk BN254 key files) and their spacecores' disks..."
        ));
        let mut cluster = Cluster::new(tools.clone(), settings.prefix, n);
        if settings.keep {
            cluster.keep();
        }
        let mut operators = Vec::new();
        for node in &cluster.nodes {
            let key = key_file_secret(&node.operator.keystore, &node.operator.password_file)?;
            if key.public_key().operator_id() != node.operator.key.id {
                bail!(
                    "{}: the key file's key is not the one the CLI showed",
                    node.operator.keystore.display()
                );
            }
            operators.push(avs::Operator { key, stake: settings.stake });
        }
        let generator = EcdsaKey::generate(&tools.cli, cluster.dir(), "task-generator");
        let aggregator = EcdsaKey::generate(&tools.cli, cluster.dir(), "aggregator");
        let roles = Roles {
            task_generator: generator.address.parse().context("the task generator's address")?,
            aggregator: aggregator.address.parse().context("the aggregator's address")?,
            response_window_blocks: 10_000,
        };

        progress("starting Anvil, deploying EigenLayer's registries and checker and the TaskManager...");
        let anvil = Anvil::start().map_err(|e| anyhow!("cannot start Anvil: {e}"))?;
        let deployment = rt
            .block_on(Deployment::deploy(&anvil, &operators, roles))
            .map_err(|e| anyhow!("cannot deploy: {e}"))?;
        let miner = Miner::start(rt.handle(), deployment.provider.clone(), settings.block_interval);

        progress("booting the spacecores and loading their keys...");
        cluster.add_avs_fields(&format!(
            "eth_rpc = \"127.0.0.1:{}\"\ntask_manager = \"{}\"\nconfirmations = {}\n",
            anvil.port(),
            deployment.task_manager.address(),
            settings.confirmations
        ));
        cluster.start_all();
        let setup = ChainSetup {
            eth_rpc: anvil.endpoint(),
            task_manager: deployment.task_manager.address().to_string(),
            operator_state_retriever: deployment.retriever.address().to_string(),
            registry_coordinator: deployment.coordinator.address().to_string(),
            task_generator: generator,
            aggregator,
        };
        Ok(OnChain { miner: Some(miner), cluster, deployment, setup, anvil, rt })
    }

    /// Starts the aggregator binary in chain mode with `options`.
    pub fn start_aggregator(&self, options: &AggregatorOptions) -> Aggregator {
        Aggregator::start_chain(
            &self.cluster.tools().aggregator,
            &self.setup,
            self.cluster.aggregator_addr,
            options,
            self.cluster.dir(),
        )
    }

    /// Runs `future` on the runtime the deployment's provider lives on.
    pub fn block_on<F: IntoFuture>(&self, future: F) -> F::Output {
        self.rt.block_on(future.into_future())
    }

    /// Runs `future` on that runtime's workers.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(future)
    }

    /// The TaskManager's `event` logs from block 0 on, read from the chain (`eth_getLogs`).
    pub fn logs<E: SolEvent>(&self) -> Result<Vec<Log<E>>> {
        let filter = Filter::new()
            .address(*self.deployment.task_manager.address())
            .event_signature(E::SIGNATURE_HASH)
            .from_block(0);
        let logs = self.block_on(self.deployment.provider.get_logs(&filter)).context("eth_getLogs")?;
        logs.iter()
            .map(|log| {
                log.log_decode::<E>().with_context(|| format!("a {} log that does not decode", E::SIGNATURE))
            })
            .collect()
    }

    /// The TaskManager's `TaskResponded` logs on the chain.
    pub fn responded(&self) -> Result<Vec<Log<SpacecoreTaskManager::TaskResponded>>> {
        self.logs()
    }

    /// Stops mining blocks.
    pub fn stop_miner(&mut self) {
        self.miner = None;
    }
}

/// The operator's BN254 secret from its eigensdk key file, as a registration tool reads it.
fn key_file_secret(keyfile: &Path, password_file: &Path) -> Result<SecretKey> {
    let text =
        std::fs::read_to_string(keyfile).with_context(|| format!("cannot read {}", keyfile.display()))?;
    let password = std::fs::read_to_string(password_file)
        .with_context(|| format!("cannot read {}", password_file.display()))?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let file = eip2335::web3::BlsKeyFile::from_json(&text)
        .map_err(|e| anyhow!("key file {}: {e:?}", keyfile.display()))?;
    let secret =
        file.decrypt(password.as_bytes()).map_err(|e| anyhow!("key file {}: {e:?}", keyfile.display()))?;
    SecretKey::from_bytes(&secret).map_err(|e| anyhow!("key file {}: {e:?}", keyfile.display()))
}

/// Mines a block (`evm_mine`) every interval until dropped.
struct Miner {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Miner {
    fn start(rt: &tokio::runtime::Handle, provider: DynProvider, interval: Duration) -> Miner {
        let stop = Arc::new(AtomicBool::new(false));
        let (rt, stopping) = (rt.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) && rt.block_on(avs::mine(&provider)).is_ok() {
                thread::sleep(interval);
            }
        });
        Miner { stop, thread: Some(thread) }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
