//! Chain mode: the task generator creates tasks on the TaskManager (`createNewTask`), the
//! operator set of each task is read from EigenLayer's registries at the task's block
//! (`OperatorStateRetriever`, `BLSApkRegistry`), the operators' BN254 responses are aggregated
//! as in the static mode, and each aggregate is sent to the TaskManager (`respondToTask`) with
//! the `NonSignerStakesAndSignature` EigenLayer's BLSSignatureChecker takes, its indices from
//! `OperatorStateRetriever.getCheckSignaturesIndices`. See `docs/aggregator.md`.
//!
//! Each account sends one transaction at a time and waits for its receipt: the generator's
//! `createNewTask`s are sequential, and so are the aggregator's `respondToTask`s.

pub mod abi;
pub mod keys;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use avs_protocol::encoding::to_hex;
use avs_protocol::{NewTask, Task};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use self::abi::{
    BLSApkRegistry, G1Point, G2Point, NonSignerStakesAndSignature, OperatorStateRetriever,
    RegistryCoordinator, TaskManager,
};
use crate::decision::{Aggregate, AggregatedResponse};
use crate::generator::{GeneratorConfig, TaskMaker};
use crate::operators::{ChainOperator, OperatorSet};
use crate::service::AggregationService;

/// What chain mode needs: where the node and the contracts are, and the two accounts' keys.
#[derive(Clone)]
pub struct ChainConfig {
    /// The Ethereum JSON-RPC endpoint, `http://` on loopback ([`keys::check_rpc_url`]).
    pub rpc_url: String,
    /// The incredible-squaring TaskManager.
    pub task_manager: Address,
    /// EigenLayer's OperatorStateRetriever.
    pub operator_state_retriever: Address,
    /// The registry coordinator the registries belong to.
    pub registry_coordinator: Address,
    /// The key `createNewTask` is sent with (the TaskManager's `taskGenerator`).
    pub task_generator: PrivateKeySigner,
    /// The key `respondToTask` is sent with (the TaskManager's `aggregator`).
    pub aggregator: PrivateKeySigner,
    /// Longest wait for a transaction's receipt.
    pub tx_timeout: Duration,
}

impl std::fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys: their addresses only.
        f.debug_struct("ChainConfig")
            .field("rpc_url", &self.rpc_url)
            .field("task_manager", &self.task_manager)
            .field("operator_state_retriever", &self.operator_state_retriever)
            .field("registry_coordinator", &self.registry_coordinator)
            .field("task_generator", &self.task_generator.address())
            .field("aggregator", &self.aggregator.address())
            .field("tx_timeout", &self.tx_timeout)
            .finish()
    }
}

/// Why a step on the chain failed: the error, the contract's revert (decoded, when the
/// contract gave one of its errors) and the transaction, if one was mined.
#[derive(Debug, Clone, Default)]
pub struct ChainFailure {
    /// What failed.
    pub error: String,
    /// The contract's error, decoded (`WrongAnswer(...)`, `InvalidBLSSignature(...)`).
    pub revert: Option<String>,
    /// The transaction, when one was sent and mined.
    pub tx_hash: Option<B256>,
    /// Its gas, when mined.
    pub gas_used: Option<u64>,
    /// The transaction was mined and reverted.
    pub reverted: bool,
}

impl ChainFailure {
    fn new(error: impl Into<String>) -> Self {
        ChainFailure { error: error.into(), ..Self::default() }
    }

    fn fields(&self) -> Value {
        json!({
            "error": self.error,
            "revert": self.revert,
            "tx_hash": self.tx_hash.map(|h| h.to_string()),
            "gas_used": self.gas_used,
        })
    }
}

impl std::fmt::Display for ChainFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)?;
        if let Some(revert) = &self.revert {
            write!(f, " (reverted with {revert})")?;
        }
        if let Some(hash) = &self.tx_hash {
            write!(f, " [transaction {hash}]")?;
        }
        Ok(())
    }
}

/// A call or transaction error, with the TaskManager's (or EigenLayer's checker's) error
/// decoded when the node returned revert data.
/// The failure of a mined transaction: `error`, with its hash and gas.
fn mined_failure(receipt: &TransactionReceipt, error: String) -> ChainFailure {
    ChainFailure {
        error,
        tx_hash: Some(receipt.transaction_hash),
        gas_used: Some(receipt.gas_used),
        ..ChainFailure::default()
    }
}

/// The first `E` event that the contract at `address` emitted in `receipt`; the failure
/// `missing` (a [`mined_failure`]) when there is none.
fn emitted<E: alloy::sol_types::SolEvent>(
    receipt: &TransactionReceipt,
    address: Address,
    missing: &str,
) -> Result<alloy::rpc::types::Log<E>, ChainFailure> {
    receipt
        .logs()
        .iter()
        .filter(|log| log.address() == address)
        .find_map(|log| log.log_decode::<E>().ok())
        .ok_or_else(|| mined_failure(receipt, missing.into()))
}

fn contract_failure(what: &str, e: &alloy::contract::Error) -> ChainFailure {
    let revert = e
        .as_decoded_interface_error::<TaskManager::ISpacecoreTaskManagerErrors>()
        .map(|r| format!("{r:?}"))
        .or_else(|| {
            e.as_decoded_interface_error::<OperatorStateRetriever::OperatorStateRetrieverErrors>()
                .map(|r| format!("{r:?}"))
        });
    ChainFailure { error: format!("{what}: {e}"), revert, ..ChainFailure::default() }
}

/// A task created on chain and registered with the service, waiting for its aggregate.
#[derive(Debug, Clone)]
struct PendingTask {
    task: TaskManager::Task,
    created: Instant,
}

/// A task created on chain.
#[derive(Debug, Clone)]
pub struct CreatedTask {
    /// The task as the event carries it, with its index.
    pub task: NewTask,
    /// The task as the contract hashed it.
    pub chain_task: TaskManager::Task,
    /// The `createNewTask` transaction.
    pub tx_hash: B256,
    /// Its gas.
    pub gas_used: u64,
}

/// A task's `respondToTask`, mined and accepted.
#[derive(Debug, Clone)]
pub struct Responded {
    /// The transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
    /// Its gas.
    pub gas_used: u64,
    /// The `TaskResponded` event.
    pub event: TaskManager::TaskResponded,
}

/// The connected chain: providers for reading, for the generator's and for the aggregator's
/// transactions, the contracts, and the operators' keys read so far.
#[derive(Debug)]
pub struct Chain {
    reader: DynProvider,
    task_manager_for_generator: TaskManager::ISpacecoreTaskManagerInstance<DynProvider>,
    task_manager_for_aggregator: TaskManager::ISpacecoreTaskManagerInstance<DynProvider>,
    retriever: OperatorStateRetriever::OperatorStateRetrieverInstance<DynProvider>,
    bls_apk_registry: BLSApkRegistry::BLSApkRegistryInstance<DynProvider>,
    coordinator: Address,
    chain_id: u64,
    tx_timeout: Duration,
    /// Keys never change for an operator (BLSApkRegistry refuses a second registration).
    keys: Mutex<HashMap<Address, OperatorKeys>>,
    pending: Mutex<BTreeMap<u32, PendingTask>>,
    /// Aggregates handled by the responder (sent, reverted or failed).
    handled: AtomicU64,
}

/// An operator's G1 key (`X ‖ Y`) and G2 key (`X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`).
type OperatorKeys = ([u8; 64], [u8; 128]);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn g1_bytes(x: U256, y: U256) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&x.to_be_bytes::<32>());
    out[32..].copy_from_slice(&y.to_be_bytes::<32>());
    out
}

impl Chain {
    /// Connects to the node and checks the configuration against the chain: code at every
    /// address, and the TaskManager's `taskGenerator` and `aggregator` being the keys' accounts.
    pub async fn connect(config: &ChainConfig) -> anyhow::Result<Arc<Chain>> {
        keys::check_rpc_url(&config.rpc_url).map_err(|e| anyhow::anyhow!("--eth-rpc: {e}"))?;
        let url: alloy::transports::http::reqwest::Url =
            config.rpc_url.parse().map_err(|e| anyhow::anyhow!("--eth-rpc {:?}: {e}", config.rpc_url))?;
        if config.tx_timeout.is_zero() {
            anyhow::bail!("--tx-timeout must be more than 0");
        }
        let reader = ProviderBuilder::new().connect_http(url.clone()).erased();
        let generator =
            ProviderBuilder::new().wallet(config.task_generator.clone()).connect_http(url.clone()).erased();
        let aggregator = ProviderBuilder::new().wallet(config.aggregator.clone()).connect_http(url).erased();
        let chain_id = reader
            .get_chain_id()
            .await
            .map_err(|e| anyhow::anyhow!("--eth-rpc {}: eth_chainId failed: {e}", config.rpc_url))?;
        for (flag, address) in [
            ("--task-manager", config.task_manager),
            ("--operator-state-retriever", config.operator_state_retriever),
            ("--registry-coordinator", config.registry_coordinator),
        ] {
            let code = reader
                .get_code_at(address)
                .await
                .map_err(|e| anyhow::anyhow!("{flag} {address}: eth_getCode failed: {e}"))?;
            if code.is_empty() {
                anyhow::bail!("{flag} {address}: no contract at this address on chain {chain_id}");
            }
        }
        let task_manager = TaskManager::new(config.task_manager, reader.clone());
        let on_chain =
            task_manager.taskGenerator().call().await.map_err(|e| {
                anyhow::anyhow!("--task-manager {}: taskGenerator(): {e}", config.task_manager)
            })?;
        if on_chain != config.task_generator.address() {
            anyhow::bail!(
                "--task-generator-keystore holds the key of {}, but the TaskManager's taskGenerator is {on_chain}",
                config.task_generator.address()
            );
        }
        let on_chain = task_manager
            .aggregator()
            .call()
            .await
            .map_err(|e| anyhow::anyhow!("--task-manager {}: aggregator(): {e}", config.task_manager))?;
        if on_chain != config.aggregator.address() {
            anyhow::bail!(
                "--aggregator-keystore holds the key of {}, but the TaskManager's aggregator is {on_chain}",
                config.aggregator.address()
            );
        }
        let bls = RegistryCoordinator::new(config.registry_coordinator, reader.clone())
            .blsApkRegistry()
            .call()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "--registry-coordinator {}: blsApkRegistry(): {e}",
                    config.registry_coordinator
                )
            })?;
        Ok(Arc::new(Chain {
            task_manager_for_generator: TaskManager::new(config.task_manager, generator),
            task_manager_for_aggregator: TaskManager::new(config.task_manager, aggregator),
            retriever: OperatorStateRetriever::new(config.operator_state_retriever, reader.clone()),
            bls_apk_registry: BLSApkRegistry::new(bls, reader.clone()),
            reader,
            coordinator: config.registry_coordinator,
            chain_id,
            tx_timeout: config.tx_timeout,
            keys: Mutex::new(HashMap::new()),
            pending: Mutex::new(BTreeMap::new()),
            handled: AtomicU64::new(0),
        }))
    }

    /// The chain's id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The BLSApkRegistry the coordinator names.
    pub fn bls_apk_registry(&self) -> Address {
        *self.bls_apk_registry.address()
    }

    /// How many aggregates the responder has handled (responded, reverted or failed).
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// Waits for `receipt` of a sent transaction, within the timeout.
    async fn receipt(
        &self,
        pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
        what: &str,
    ) -> Result<TransactionReceipt, ChainFailure> {
        let hash = *pending.tx_hash();
        pending.with_timeout(Some(self.tx_timeout)).get_receipt().await.map_err(|e| ChainFailure {
            error: format!("{what}: no receipt within {:?}: {e}", self.tx_timeout),
            tx_hash: Some(hash),
            ..ChainFailure::default()
        })
    }

    /// Sends `createNewTask` from the generator's account and reads the task from its
    /// `NewTaskCreated` event.
    pub async fn create_task(
        &self,
        number: U256,
        threshold: u32,
        quorums: &[u8],
    ) -> Result<CreatedTask, ChainFailure> {
        let call =
            self.task_manager_for_generator.createNewTask(number, threshold, Bytes::from(quorums.to_vec()));
        let pending = call.send().await.map_err(|e| contract_failure("createNewTask", &e))?;
        let receipt = self.receipt(pending, "createNewTask").await?;
        if !receipt.status() {
            return Err(mined_failure(&receipt, "createNewTask reverted".into()));
        }
        let event = emitted::<TaskManager::NewTaskCreated>(
            &receipt,
            *self.task_manager_for_generator.address(),
            "createNewTask emitted no NewTaskCreated event",
        )?;
        let TaskManager::NewTaskCreated { taskIndex, task } = event.inner.data;
        let new_task = NewTask {
            task_index: taskIndex,
            task: Task {
                number_to_be_squared: avs_protocol::U256::from_be_bytes(
                    task.numberToBeSquared.to_be_bytes::<32>(),
                ),
                task_created_block: task.taskCreatedBlock,
                quorum_numbers: task.quorumNumbers.to_vec(),
                quorum_threshold_percentage: task.quorumThresholdPercentage,
            },
        };
        Ok(CreatedTask {
            task: new_task,
            chain_task: task,
            tx_hash: receipt.transaction_hash,
            gas_used: receipt.gas_used,
        })
    }

    /// The operator set of `quorums` at `block`: every operator
    /// `OperatorStateRetriever.getOperatorState` lists, with its stake per quorum, and its keys
    /// from BLSApkRegistry.
    pub async fn operator_set(&self, quorums: &[u8], block: u32) -> Result<OperatorSet, ChainFailure> {
        let state = self
            .retriever
            .getOperatorState(self.coordinator, Bytes::from(quorums.to_vec()), block)
            .call()
            .await
            .map_err(|e| contract_failure(&format!("getOperatorState at block {block}"), &e))?;
        if state.len() != quorums.len() {
            return Err(ChainFailure::new(format!(
                "getOperatorState gave {} quorums for {} asked",
                state.len(),
                quorums.len()
            )));
        }
        let listed: usize = state.iter().map(Vec::len).sum();
        if listed > quorums.len() * crate::operators::MAX_OPERATORS {
            return Err(ChainFailure::new(format!("getOperatorState listed {listed} operators, too many")));
        }
        let mut members: BTreeMap<B256, (Address, BTreeMap<u8, u128>)> = BTreeMap::new();
        for (quorum, operators) in quorums.iter().zip(&state) {
            for operator in operators {
                let entry =
                    members.entry(operator.operatorId).or_insert((operator.operator, BTreeMap::new()));
                entry.1.insert(*quorum, operator.stake.to::<u128>());
            }
        }
        if members.len() > crate::operators::MAX_OPERATORS {
            return Err(ChainFailure::new(format!(
                "{} operators at block {block}, more than the {} allowed",
                members.len(),
                crate::operators::MAX_OPERATORS
            )));
        }
        let mut list = Vec::with_capacity(members.len());
        for (id, (account, stake)) in members {
            let (g1, g2) = self.keys_of(account).await?;
            list.push(ChainOperator { account: account.0.0, id: id.0, g1, g2, stake });
        }
        OperatorSet::from_chain(&list)
            .map_err(|e| ChainFailure::new(format!("operator set at block {block}: {e}")))
    }

    /// An operator's G1 and G2 keys, from BLSApkRegistry (cached).
    async fn keys_of(&self, account: Address) -> Result<OperatorKeys, ChainFailure> {
        if let Some(keys) = lock(&self.keys).get(&account) {
            return Ok(*keys);
        }
        let g1 = self
            .bls_apk_registry
            .getRegisteredPubkey(account)
            .call()
            .await
            .map_err(|e| contract_failure(&format!("getRegisteredPubkey({account})"), &e))?;
        let g2 = self
            .bls_apk_registry
            .getOperatorPubkeyG2(account)
            .call()
            .await
            .map_err(|e| contract_failure(&format!("getOperatorPubkeyG2({account})"), &e))?;
        let g1 = g1_bytes(g1._0.X, g1._0.Y);
        let mut g2_bytes = [0u8; 128];
        for (i, word) in [g2.X[0], g2.X[1], g2.Y[0], g2.Y[1]].iter().enumerate() {
            g2_bytes[32 * i..32 * (i + 1)].copy_from_slice(&word.to_be_bytes::<32>());
        }
        if g2_bytes == [0u8; 128] {
            return Err(ChainFailure::new(format!("BLSApkRegistry has no G2 key for operator {account}")));
        }
        lock(&self.keys).insert(account, (g1, g2_bytes));
        Ok((g1, g2_bytes))
    }

    /// The `NonSignerStakesAndSignature` of `aggregate` for a task of `quorums` at `block`: the
    /// aggregator's keys and signature, and the indices from `getCheckSignaturesIndices`.
    pub async fn non_signer_stakes_and_signature(
        &self,
        aggregate: &AggregatedResponse,
        quorums: &[u8],
        block: u32,
    ) -> Result<NonSignerStakesAndSignature, ChainFailure> {
        let Aggregate::Bn254(a) = &aggregate.aggregate else {
            return Err(ChainFailure::new("the aggregate is not BN254; only BN254 can be checked on chain"));
        };
        let non_signers: Vec<B256> = aggregate.non_signers.iter().map(|id| B256::from(*id)).collect();
        let indices = self
            .retriever
            .getCheckSignaturesIndices(self.coordinator, block, Bytes::from(quorums.to_vec()), non_signers)
            .call()
            .await
            .map_err(|e| contract_failure(&format!("getCheckSignaturesIndices at block {block}"), &e))?;
        let g1 = |p: &avs_protocol::bn254::G1Point| {
            let b = p.to_bytes();
            G1Point { X: U256::from_be_slice(&b[..32]), Y: U256::from_be_slice(&b[32..]) }
        };
        let b = a.apk_g2.to_bytes();
        let word = |i: usize| U256::from_be_slice(&b[32 * i..32 * (i + 1)]);
        Ok(NonSignerStakesAndSignature {
            nonSignerQuorumBitmapIndices: indices.nonSignerQuorumBitmapIndices,
            nonSignerPubkeys: a.non_signer_pubkeys.iter().map(g1).collect(),
            quorumApks: a.quorum_apks.iter().map(|(_, apk)| g1(apk)).collect(),
            apkG2: G2Point { X: [word(0), word(1)], Y: [word(2), word(3)] },
            sigma: g1(&a.signature.point()),
            quorumApkIndices: indices.quorumApkIndices,
            totalStakeIndices: indices.totalStakeIndices,
            nonSignerStakeIndices: indices.nonSignerStakeIndices,
        })
    }

    /// Sends `respondToTask(task, response, params)` from the aggregator's account; its receipt
    /// is [`Chain::responded`]'s to wait for.
    pub async fn respond(
        &self,
        task: &TaskManager::Task,
        response: &avs_protocol::TaskResponse,
        params: NonSignerStakesAndSignature,
    ) -> Result<alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>, ChainFailure> {
        let response = TaskManager::TaskResponse {
            referenceTaskIndex: response.reference_task_index,
            numberSquared: U256::from_be_bytes(response.number_squared.to_be_bytes::<32>()),
        };
        let call = self.task_manager_for_aggregator.respondToTask(task.clone(), response, params);
        call.send().await.map_err(|e| contract_failure("respondToTask", &e))
    }

    /// Waits for the receipt of a `respondToTask` sent by [`Chain::respond`] and reads its
    /// `TaskResponded` event.
    pub async fn responded(
        &self,
        pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    ) -> Result<Responded, ChainFailure> {
        let receipt = self.receipt(pending, "respondToTask").await?;
        if !receipt.status() {
            return Err(ChainFailure {
                reverted: true,
                ..mined_failure(&receipt, "respondToTask reverted".into())
            });
        }
        let event = emitted::<TaskManager::TaskResponded>(
            &receipt,
            *self.task_manager_for_aggregator.address(),
            "respondToTask emitted no TaskResponded event",
        )?;
        Ok(Responded {
            tx_hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
            event: event.inner.data,
        })
    }

    /// The latest block number (for tests and diagnostics).
    pub async fn block_number(&self) -> Result<u64, ChainFailure> {
        self.reader.get_block_number().await.map_err(|e| ChainFailure::new(format!("eth_blockNumber: {e}")))
    }
}

/// Creates tasks on chain (as [`crate::generator::run`] does off chain), reads each task's
/// operator set at its block and registers it with `service`; returns how many tasks were
/// registered.
pub async fn run_generator(
    chain: Arc<Chain>,
    service: Arc<AggregationService>,
    config: GeneratorConfig,
    mut shutdown: watch::Receiver<bool>,
) -> u32 {
    let limit = config.tasks.unwrap_or(u32::MAX);
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let threshold = config.threshold_percentage;
    let quorums = config.quorum_numbers.clone();
    let mut maker = TaskMaker::new(config);
    let mut created = 0;
    for n in 0..limit {
        tokio::select! {
            _ = ticker.tick() => {}
            () = crate::http::stopped(&mut shutdown) => break,
        }
        let number = maker.make(n).task.number_to_be_squared;
        let sent = Instant::now();
        let metrics = service.metrics();
        let task = match chain
            .create_task(U256::from_be_bytes(number.to_be_bytes::<32>()), threshold, &quorums)
            .await
        {
            Ok(task) => task,
            Err(failure) => {
                metrics.chain_error(crate::metrics::ChainStage::CreateTask);
                service.log().record("chain_error", with(failure.fields(), json!({"stage": "create_task"})));
                eprintln!("aggregator: createNewTask failed: {failure}");
                continue;
            }
        };
        metrics.chain_task_created();
        let index = task.task.task_index;
        let block = task.task.task.task_created_block;
        let operators = match chain.operator_set(&quorums, block).await {
            Ok(set) => Arc::new(set),
            Err(failure) => {
                metrics.chain_error(crate::metrics::ChainStage::OperatorState);
                let extra = json!({"stage": "operator_state", "task_index": index});
                service.log().record("chain_error", with(failure.fields(), extra));
                eprintln!(
                    "aggregator: task {index}: cannot read the operator set at block {block}: {failure}"
                );
                continue;
            }
        };
        let stakes: Vec<Value> = quorums
            .iter()
            .map(|q| json!({"quorum": q, "total_stake": operators.total_stake(*q), "operators": operators.iter().filter(|o| o.stake.contains_key(q)).count()}))
            .collect();
        service.log().record(
            "chain_task_created",
            json!({
                "task_index": index,
                "task_created_block": block,
                "tx_hash": task.tx_hash.to_string(),
                "gas_used": task.gas_used,
                "quorums": stakes,
            }),
        );
        lock(&chain.pending).insert(index, PendingTask { task: task.chain_task.clone(), created: sent });
        if let Err(e) = service.initialize_task_with(task.task, operators, Instant::now()) {
            lock(&chain.pending).remove(&index);
            metrics.chain_error(crate::metrics::ChainStage::OperatorState);
            let extra = json!({"stage": "register", "task_index": index, "error": e.to_string()});
            service.log().record("chain_error", extra);
            eprintln!("aggregator: task {index} not registered: {e}");
            continue;
        }
        created += 1;
        prune(&chain, service.expiry());
    }
    created
}

/// Forgets pending tasks long past their expiry (expired tasks never get an aggregate).
fn prune(chain: &Chain, expiry: Duration) {
    let horizon = expiry.saturating_mul(2) + chain.tx_timeout;
    lock(&chain.pending).retain(|_, p| p.created.elapsed() < horizon);
}

fn with(mut fields: Value, extra: Value) -> Value {
    if let (Value::Object(fields), Value::Object(extra)) = (&mut fields, extra) {
        fields.extend(extra);
    }
    fields
}

/// At most this many `respondToTask` transactions await their receipts at once; the responder
/// sends the next only when one of them has settled.
pub const MAX_RESPONSES_IN_FLIGHT: usize = 64;

/// Sends every completed task's aggregate to the TaskManager, until the service's completion
/// channel closes or `shutdown` turns true, then waits for the receipts still due.
///
/// Transactions are sent one after another, in completion order (so their nonces follow each
/// other), without waiting for the previous one's receipt: each receipt is awaited on a task of
/// its own (at most [`MAX_RESPONSES_IN_FLIGHT`]), so a task completed while another's
/// transaction is being mined does not wait for that block.
pub async fn run_responder(
    chain: Arc<Chain>,
    service: Arc<AggregationService>,
    mut completions: mpsc::UnboundedReceiver<AggregatedResponse>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut receipts = tokio::task::JoinSet::new();
    let settled = |chain: &Chain| {
        chain.handled.fetch_add(1, Ordering::AcqRel);
    };
    loop {
        if receipts.len() >= MAX_RESPONSES_IN_FLIGHT {
            receipts.join_next().await;
            settled(&chain);
            continue;
        }
        let aggregate = tokio::select! {
            biased;
            Some(_) = receipts.join_next(), if !receipts.is_empty() => {
                settled(&chain);
                continue;
            }
            next = completions.recv() => match next { Some(a) => a, None => break },
            () = crate::http::stopped(&mut shutdown) => break,
        };
        match send_one(&chain, &service, &aggregate).await {
            Some(sent) => {
                let (chain, service) = (chain.clone(), service.clone());
                receipts.spawn(async move { settle_one(&chain, &service, &aggregate, sent).await });
            }
            None => settled(&chain),
        }
    }
    while receipts.join_next().await.is_some() {
        settled(&chain);
    }
}

/// A `respondToTask` sent, and when.
struct Sent {
    pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    task: PendingTask,
    /// From the task's `createNewTask` sent to this transaction sent.
    create_to_sent: Duration,
}

/// Records a failed response in the metrics and the decision log.
fn respond_failed(service: &AggregationService, index: u32, failure: ChainFailure) {
    let metrics = service.metrics();
    metrics.chain_error(crate::metrics::ChainStage::Respond);
    if failure.reverted {
        metrics.chain_reverted();
    }
    service
        .log()
        .record("chain_error", with(failure.fields(), json!({"stage": "respond", "task_index": index})));
    eprintln!("aggregator: task {index}: respondToTask failed: {failure}");
}

/// Reads what `respondToTask` needs for `aggregate` and sends it; `None` if that failed (and
/// was recorded).
async fn send_one(
    chain: &Chain,
    service: &AggregationService,
    aggregate: &AggregatedResponse,
) -> Option<Sent> {
    let index = aggregate.task_index;
    let Some(task) = lock(&chain.pending).remove(&index) else {
        let failure =
            ChainFailure::new(format!("task {index} is not a task this aggregator created on chain"));
        respond_failed(service, index, failure);
        return None;
    };
    let quorums = task.task.quorumNumbers.to_vec();
    let sent = async {
        let params =
            chain.non_signer_stakes_and_signature(aggregate, &quorums, task.task.taskCreatedBlock).await?;
        chain.respond(&task.task, &aggregate.task_response, params).await
    };
    match sent.await {
        Ok(pending) => Some(Sent { pending, create_to_sent: task.created.elapsed(), task }),
        Err(failure) => {
            respond_failed(service, index, failure);
            None
        }
    }
}

/// Waits for the receipt of a sent response and records the outcome.
async fn settle_one(chain: &Chain, service: &AggregationService, aggregate: &AggregatedResponse, sent: Sent) {
    let index = aggregate.task_index;
    match chain.responded(sent.pending).await {
        Ok(responded) => {
            let elapsed = sent.task.created.elapsed();
            service.metrics().chain_responded(responded.gas_used, elapsed);
            let event = &responded.event;
            service.log().record(
                "task_responded",
                json!({
                    "task_index": index,
                    "tx_hash": responded.tx_hash.to_string(),
                    "block_number": responded.block_number,
                    "gas_used": responded.gas_used,
                    "number_squared": event.taskResponse.numberSquared.to_string(),
                    "task_responsed_block": event.taskResponseMetadata.taskResponsedBlock,
                    "hash_of_non_signers": event.taskResponseMetadata.hashOfNonSigners.to_string(),
                    "non_signers": aggregate.non_signers.iter().map(|id| to_hex(id)).collect::<Vec<_>>(),
                    "create_to_sent_ms": sent.create_to_sent.as_secs_f64() * 1000.0,
                    "create_to_responded_ms": elapsed.as_secs_f64() * 1000.0,
                }),
            );
        }
        Err(failure) => respond_failed(service, index, failure),
    }
}
