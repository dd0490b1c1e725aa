//! The incredible-squaring AVS deployed on a local Anvil, for the tests that need it:
//! EigenLayer's BLSApkRegistry, StakeRegistry, IndexRegistry, OperatorStateRetriever and
//! MockAvsServiceManager (which inherits EigenLayer's BLSSignatureChecker), from the creation
//! bytecode eigensdk-rs publishes in `eigen-utils`; and this project's own
//! `SpacecoreRegistryCoordinator`, `SpacecoreStakeTable` and `SpacecoreTaskManager`
//! (`interop/contracts/`, compiled with the pinned solc-js). [`Deployment::deploy`] deploys all
//! of it, creates quorum 0 and registers the given BN254 operators with their stakes. See
//! `docs/chain.md`.

use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256, aliases::U96};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol;
use avs_protocol::bn254::{self, G1Point, G2Point, SecretKey};
use avs_protocol::keccak256;
use eigen_utils::slashing::middleware::bls_apk_registry::BLSApkRegistry;
use eigen_utils::slashing::middleware::index_registry::IndexRegistry;
use eigen_utils::slashing::middleware::operator_state_retriever::OperatorStateRetriever;
use eigen_utils::slashing::middleware::stake_registry::StakeRegistry;
use eigen_utils::slashing::sdk::mock_avs_service_manager::BN254 as CheckerBN254;
use eigen_utils::slashing::sdk::mock_avs_service_manager::MockAvsServiceManager;

use crate::chain::{self, Anvil, ChainError};

sol! {
    /// This project's own registry coordinator (`interop/contracts/`), the functions the tests use.
    #[sol(rpc)]
    #[derive(Debug)]
    contract SpacecoreRegistryCoordinator {
        struct G1Point { uint256 X; uint256 Y; }
        struct G2Point { uint256[2] X; uint256[2] Y; }
        struct PubkeyRegistrationParams { G1Point pubkeyRegistrationSignature; G1Point pubkeyG1; G2Point pubkeyG2; }
        struct StrategyParams { address strategy; uint96 multiplier; }
        function setRegistries(address blsApk, address stake, address index) external;
        function createQuorum(uint96 minimumStake, StrategyParams[] calldata params) external returns (uint8);
        function pubkeyRegistrationDigest(address operator) external view returns (bytes32);
        function pubkeyRegistrationMessageHash(address operator) external view returns (G1Point memory);
        function registerOperator(bytes calldata quorumNumbers, PubkeyRegistrationParams calldata params) external returns (bytes32);
        function getOperatorId(address operator) external view returns (bytes32);
    }

    /// This project's stand-in for the DelegationManager (`interop/contracts/`).
    #[sol(rpc)]
    #[derive(Debug)]
    contract SpacecoreStakeTable {
        function setShares(address operator, address strategy, uint256 amount) external;
    }
}

/// This project's own incredible-squaring TaskManager (`interop/contracts/`), through the ABI
/// the aggregator's chain mode uses: one definition for both.
pub use aggregator::chain::abi::TaskManager as SpacecoreTaskManager;

/// The file name of the registry coordinator's source, as compiled.
pub const COORDINATOR_SOURCE_NAME: &str = "SpacecoreRegistryCoordinator.sol";
/// This project's registry coordinator and stake table.
pub const COORDINATOR_SOURCE: &str = include_str!("../contracts/SpacecoreRegistryCoordinator.sol");
/// The file name of the task manager's source, as compiled.
pub const TASK_MANAGER_SOURCE_NAME: &str = "SpacecoreTaskManager.sol";
/// This project's incredible-squaring TaskManager.
pub const TASK_MANAGER_SOURCE: &str = include_str!("../contracts/SpacecoreTaskManager.sol");

/// The quorum every operator joins.
pub const QUORUM: u8 = 0;
/// The strategy whose shares count; the stake table only uses it as a key.
pub const STRATEGY: Address = Address::new([0x5c; 20]);
/// StakeRegistry's WEIGHTING_DIVISOR: a multiplier of 1e18 weighs one share as one stake.
const ONE_TO_ONE: u128 = 1_000_000_000_000_000_000;
/// The balance given to every account the deployment uses (100 ether).
const BALANCE: u128 = 100_000_000_000_000_000_000;

/// An operator to register: its BN254 key and its stake in quorum 0 (shares of one strategy,
/// weighed 1:1).
pub struct Operator {
    /// The BN254 key.
    pub key: SecretKey,
    /// Stake in quorum 0 (at least 1, the quorum's minimum).
    pub stake: u64,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("operator_id", &B256::from(self.key.public_key().operator_id()))
            .field("stake", &self.stake)
            .finish()
    }
}

/// A registered operator.
#[derive(Debug, Clone)]
pub struct RegisteredOperator {
    /// The BN254 public key.
    pub public_key: bn254::PublicKey,
    /// Its stake in quorum 0.
    pub stake: u64,
    /// The Ethereum account that registered it (an Anvil-impersonated address).
    pub address: Address,
    /// EigenLayer's operator id (`keccak256` of the G1 key), the same as ours.
    pub id: B256,
}

/// Who may create tasks and respond to them on the TaskManager.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    /// The only account `createNewTask` accepts.
    pub task_generator: Address,
    /// The only account `respondToTask` accepts.
    pub aggregator: Address,
    /// A response must be mined at most this many blocks after its task's block.
    pub response_window_blocks: u32,
}

/// Everything deployed, with the providers and figures of the deployment.
#[derive(Debug)]
pub struct Deployment {
    /// A provider on the Anvil node (no wallet: it sends with `eth_sendTransaction` from
    /// Anvil's unlocked or impersonated accounts).
    pub provider: DynProvider,
    /// The deployer and owner of the project's contracts (Anvil's first account).
    pub owner: Address,
    /// This project's registry coordinator.
    pub coordinator: SpacecoreRegistryCoordinator::SpacecoreRegistryCoordinatorInstance<DynProvider>,
    /// This project's stand-in for the DelegationManager.
    pub stake_table: SpacecoreStakeTable::SpacecoreStakeTableInstance<DynProvider>,
    /// EigenLayer's BLSApkRegistry.
    pub bls_apk_registry: BLSApkRegistry::BLSApkRegistryInstance<DynProvider>,
    /// EigenLayer's StakeRegistry.
    pub stake_registry: Address,
    /// EigenLayer's IndexRegistry.
    pub index_registry: Address,
    /// EigenLayer's OperatorStateRetriever.
    pub retriever: OperatorStateRetriever::OperatorStateRetrieverInstance<DynProvider>,
    /// EigenLayer's MockAvsServiceManager (BLSSignatureChecker).
    pub checker: MockAvsServiceManager::MockAvsServiceManagerInstance<DynProvider>,
    /// This project's TaskManager.
    pub task_manager: SpacecoreTaskManager::TaskManagerInstance<DynProvider>,
    /// The TaskManager's ABI as solc-js wrote it.
    pub task_manager_abi: serde_json::Value,
    /// The registered operators, in the order given.
    pub operators: Vec<RegisteredOperator>,
    /// The TaskManager's roles.
    pub roles: Roles,
    /// How long compiling the project's contracts took.
    pub compile_time: Duration,
    /// How long deploying, creating the quorum and registering took.
    pub deploy_time: Duration,
}

fn err(what: &str, e: impl std::fmt::Display) -> ChainError {
    ChainError(format!("{what}: {e}"))
}

/// A secret key drawn from a fixed label (skipping the rare draw at or above r).
pub fn secret_key(label: &str) -> SecretKey {
    (0u32..)
        .find_map(|i| SecretKey::from_bytes(&keccak256(format!("{label} {i}").as_bytes())).ok())
        .expect("some draw is below r")
}

fn word(bytes: &[u8]) -> U256 {
    U256::from_be_slice(bytes)
}

/// A G1 point's `(X, Y)` words.
pub fn g1_words(point: &G1Point) -> (U256, U256) {
    let b = point.to_bytes();
    (word(&b[..32]), word(&b[32..]))
}

/// The contracts' G2 order: `X = [X.c1, X.c0]`, `Y = [Y.c1, Y.c0]`, as `to_bytes` writes them.
pub fn g2_words(point: &G2Point) -> ([U256; 2], [U256; 2]) {
    let b = point.to_bytes();
    ([word(&b[..32]), word(&b[32..64])], [word(&b[64..96]), word(&b[96..])])
}

/// A G1 point as EigenLayer's checker binding takes it.
pub fn checker_g1(point: &G1Point) -> CheckerBN254::G1Point {
    let (x, y) = g1_words(point);
    CheckerBN254::G1Point { X: x, Y: y }
}

/// A G2 point as EigenLayer's checker binding takes it.
pub fn checker_g2(point: &G2Point) -> CheckerBN254::G2Point {
    let (x, y) = g2_words(point);
    CheckerBN254::G2Point { X: x, Y: y }
}

/// Sends `tx` and waits for its receipt, which must be a success.
pub async fn send(
    provider: &DynProvider,
    tx: TransactionRequest,
    what: &str,
) -> Result<TransactionReceipt, ChainError> {
    let receipt = provider
        .send_transaction(tx)
        .await
        .map_err(|e| err(&format!("{what}: sending failed"), e))?
        .get_receipt()
        .await
        .map_err(|e| err(&format!("{what}: no receipt"), e))?;
    if !receipt.status() {
        return Err(ChainError(format!("{what}: the transaction reverted ({})", receipt.transaction_hash)));
    }
    Ok(receipt)
}

/// Deploys creation `code` (with its constructor arguments appended) from `from`.
async fn deploy_code(
    provider: &DynProvider,
    from: Address,
    code: Vec<u8>,
    what: &str,
) -> Result<Address, ChainError> {
    let tx = TransactionRequest::default().from(from).with_deploy_code(Bytes::from(code));
    send(provider, tx, what)
        .await?
        .contract_address
        .ok_or_else(|| ChainError(format!("{what}: no contract address")))
}

/// Mines one block.
pub async fn mine(provider: &DynProvider) -> Result<(), ChainError> {
    let _: serde_json::Value =
        provider.raw_request("evm_mine".into(), ()).await.map_err(|e| err("evm_mine", e))?;
    Ok(())
}

/// Gives `account` 100 ether.
pub async fn fund(provider: &DynProvider, account: Address) -> Result<(), ChainError> {
    let _: serde_json::Value = provider
        .raw_request("anvil_setBalance".into(), (account, U256::from(BALANCE)))
        .await
        .map_err(|e| err("anvil_setBalance", e))?;
    Ok(())
}

/// The account operator `id` registers from: an address no one holds a key of, which Anvil
/// lets the tests send from (`anvil_impersonateAccount`), so any number of operators can be
/// registered.
fn operator_account(id: &[u8; 32]) -> Address {
    let mut seed = b"spacecore test operator account".to_vec();
    seed.extend_from_slice(id);
    Address::from_slice(&keccak256(&seed)[12..])
}

/// The BN254 key registration `operator` sends: our signature over the coordinator's
/// registration digest (hashed to G1 with our `hash_to_g1`, which must be the point the
/// coordinator hands BLSApkRegistry), with the G1 and G2 keys.
pub async fn registration(
    coordinator: &SpacecoreRegistryCoordinator::SpacecoreRegistryCoordinatorInstance<DynProvider>,
    sk: &SecretKey,
    operator: Address,
) -> Result<SpacecoreRegistryCoordinator::PubkeyRegistrationParams, ChainError> {
    let digest = coordinator
        .pubkeyRegistrationDigest(operator)
        .call()
        .await
        .map_err(|e| err("registration digest", e))?;
    let on_chain = coordinator
        .pubkeyRegistrationMessageHash(operator)
        .call()
        .await
        .map_err(|e| err("registration message hash", e))?;
    let ours = bn254::hash_to_g1(&digest.0);
    if (on_chain.X, on_chain.Y) != g1_words(&ours) {
        return Err(ChainError("the coordinator hashes to G1 otherwise than avs_protocol".into()));
    }
    let g1 = |p: &G1Point| {
        let (x, y) = g1_words(p);
        SpacecoreRegistryCoordinator::G1Point { X: x, Y: y }
    };
    let pk = sk.public_key();
    let (x, y) = g2_words(&pk.g2());
    Ok(SpacecoreRegistryCoordinator::PubkeyRegistrationParams {
        pubkeyRegistrationSignature: g1(&sk.sign(&digest.0).point()),
        pubkeyG1: g1(&pk.g1()),
        pubkeyG2: SpacecoreRegistryCoordinator::G2Point { X: x, Y: y },
    })
}

impl Deployment {
    /// Compiles the project's contracts, deploys EigenLayer's registries and checker and the
    /// project's coordinator, stake table and TaskManager, creates quorum 0 (minimum stake 1)
    /// and registers `operators`, each from its own impersonated account. The task generator
    /// and the aggregator of `roles` get 100 ether each.
    pub async fn deploy(anvil: &Anvil, operators: &[Operator], roles: Roles) -> Result<Self, ChainError> {
        let started = Instant::now();
        let compiled = chain::compile(&[
            (COORDINATOR_SOURCE_NAME, COORDINATOR_SOURCE),
            (TASK_MANAGER_SOURCE_NAME, TASK_MANAGER_SOURCE),
        ])?;
        let compile_time = started.elapsed();
        let started = Instant::now();
        let code = |file: &str, name: &str| {
            compiled
                .get(&format!("{file}:{name}"))
                .map(|c| c.bytecode.clone())
                .ok_or_else(|| ChainError(format!("{file} has no contract {name}")))
        };

        let provider = ProviderBuilder::new()
            .connect(&anvil.endpoint())
            .await
            .map_err(|e| err("connect to Anvil", e))?
            .erased();
        let chain_id = provider.get_chain_id().await.map_err(|e| err("eth_chainId", e))?;
        if chain_id != chain::CHAIN_ID {
            return Err(ChainError(format!("Anvil's chain id is {chain_id}, not {}", chain::CHAIN_ID)));
        }
        let accounts = provider.get_accounts().await.map_err(|e| err("eth_accounts", e))?;
        let owner = *accounts.first().ok_or_else(|| ChainError("Anvil has no accounts".into()))?;

        // This project's stand-in and coordinator.
        let stake_table_address = deploy_code(
            &provider,
            owner,
            code(COORDINATOR_SOURCE_NAME, "SpacecoreStakeTable")?,
            "SpacecoreStakeTable",
        )
        .await?;
        let coordinator_address = deploy_code(
            &provider,
            owner,
            code(COORDINATOR_SOURCE_NAME, "SpacecoreRegistryCoordinator")?,
            "SpacecoreRegistryCoordinator",
        )
        .await?;
        let coordinator = SpacecoreRegistryCoordinator::new(coordinator_address, provider.clone());
        let stake_table = SpacecoreStakeTable::new(stake_table_address, provider.clone());

        // EigenLayer's registries, from eigen-utils' bytecode, bound to the coordinator. Neither
        // the AVSDirectory nor the AllocationManager is read for a delegated-stake quorum: they
        // are the zero address, so any call to them would revert.
        let bls = BLSApkRegistry::deploy_builder(provider.clone(), coordinator_address)
            .from(owner)
            .deploy()
            .await
            .map_err(|e| err("deploy EigenLayer's BLSApkRegistry", e))?;
        let stake = StakeRegistry::deploy_builder(
            provider.clone(),
            coordinator_address,
            stake_table_address,
            Address::ZERO,
            Address::ZERO,
        )
        .from(owner)
        .deploy()
        .await
        .map_err(|e| err("deploy EigenLayer's StakeRegistry", e))?;
        let index = IndexRegistry::deploy_builder(provider.clone(), coordinator_address)
            .from(owner)
            .deploy()
            .await
            .map_err(|e| err("deploy EigenLayer's IndexRegistry", e))?;
        let tx = coordinator.setRegistries(bls, stake, index).from(owner).into_transaction_request();
        send(&provider, tx, "setRegistries").await?;
        let retriever = OperatorStateRetriever::deploy_builder(provider.clone())
            .from(owner)
            .deploy()
            .await
            .map_err(|e| err("deploy EigenLayer's OperatorStateRetriever", e))?;
        // The checker reads the registries' addresses from the coordinator when constructed.
        // The service manager's other collaborators (AVSDirectory, RewardsCoordinator,
        // PermissionController, AllocationManager) are not used by checkSignatures.
        let checker = MockAvsServiceManager::deploy_builder(
            provider.clone(),
            Address::ZERO,
            coordinator_address,
            stake,
            Address::ZERO,
            Address::ZERO,
            Address::ZERO,
        )
        .from(owner)
        .deploy()
        .await
        .map_err(|e| err("deploy EigenLayer's MockAvsServiceManager (BLSSignatureChecker)", e))?;

        // This project's TaskManager, calling EigenLayer's checker.
        let mut task_manager_code = code(TASK_MANAGER_SOURCE_NAME, "SpacecoreTaskManager")?;
        let task_manager_abi = compiled
            .get(&format!("{TASK_MANAGER_SOURCE_NAME}:SpacecoreTaskManager"))
            .map(|c| c.abi.clone())
            .unwrap_or_default();
        let args = alloy::sol_types::SolValue::abi_encode(&(
            checker,
            roles.task_generator,
            roles.aggregator,
            roles.response_window_blocks,
        ));
        task_manager_code.extend_from_slice(&args);
        let task_manager_address =
            deploy_code(&provider, owner, task_manager_code, "SpacecoreTaskManager").await?;
        fund(&provider, roles.task_generator).await?;
        fund(&provider, roles.aggregator).await?;

        let params = vec![SpacecoreRegistryCoordinator::StrategyParams {
            strategy: STRATEGY,
            multiplier: U96::from(ONE_TO_ONE),
        }];
        let tx = coordinator.createQuorum(U96::from(1u8), params).from(owner).into_transaction_request();
        send(&provider, tx, "createQuorum").await?;

        let mut registered = Vec::with_capacity(operators.len());
        for (i, operator) in operators.iter().enumerate() {
            let id = operator.key.public_key().operator_id();
            let account = operator_account(&id);
            fund(&provider, account).await?;
            let _: serde_json::Value = provider
                .raw_request("anvil_impersonateAccount".into(), (account,))
                .await
                .map_err(|e| err("anvil_impersonateAccount", e))?;
            let tx = stake_table
                .setShares(account, STRATEGY, U256::from(operator.stake))
                .from(owner)
                .into_transaction_request();
            send(&provider, tx, &format!("setShares of operator {i}")).await?;
            let params = registration(&coordinator, &operator.key, account).await?;
            let tx = coordinator
                .registerOperator(Bytes::from(vec![QUORUM]), params)
                .from(account)
                .into_transaction_request();
            send(&provider, tx, &format!("registerOperator {i}")).await?;
            let on_chain =
                coordinator.getOperatorId(account).call().await.map_err(|e| err("getOperatorId", e))?;
            if on_chain != B256::from(id) {
                return Err(ChainError(format!(
                    "operator {i}: EigenLayer's operator id {on_chain} is not ours ({})",
                    B256::from(id)
                )));
            }
            registered.push(RegisteredOperator {
                public_key: operator.key.public_key(),
                stake: operator.stake,
                address: account,
                id: on_chain,
            });
        }

        Ok(Deployment {
            provider: provider.clone(),
            owner,
            coordinator,
            stake_table,
            bls_apk_registry: BLSApkRegistry::new(bls, provider.clone()),
            stake_registry: stake,
            index_registry: index,
            retriever: OperatorStateRetriever::new(retriever, provider.clone()),
            checker: MockAvsServiceManager::new(checker, provider.clone()),
            task_manager: SpacecoreTaskManager::new(task_manager_address, provider),
            task_manager_abi,
            operators: registered,
            roles,
            compile_time,
            deploy_time: started.elapsed(),
        })
    }

    /// The latest block's number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(|e| err("eth_blockNumber", e))
    }
}
