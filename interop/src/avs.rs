//! The incredible-squaring AVS deployed on a local Anvil, for the tests that need it, from the
//! creation bytecode eigensdk-rs publishes in `eigen-utils`: EigenLayer's core contracts
//! (DelegationManager, StrategyManager, AllocationManager, AVSDirectory, EigenPodManager,
//! PermissionController; behind this project's minimal proxy and initialised, as EigenLayer
//! deploys them) with EigenLayer's MockERC20 as the staked token; EigenLayer's BLSApkRegistry,
//! StakeRegistry, IndexRegistry, OperatorStateRetriever and MockAvsServiceManager (which
//! inherits EigenLayer's BLSSignatureChecker); and this project's own
//! `SpacecoreRegistryCoordinator`, `SpacecoreProxy`, `SpacecoreStrategy` and
//! `SpacecoreTaskManager` (`interop/contracts/`, compiled with the pinned solc-js).
//! [`Deployment::deploy`] deploys all of it, creates quorum 0 and registers the given BN254
//! operators the way an operator does (`spacecore_operator::register`, which
//! `spacecore operator register` runs): an EigenLayer operator, a deposit of its stake into the
//! strategy, and the AVS registration with its BN254 and ECDSA signatures. See `docs/chain.md`.

use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256, aliases::U96};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol;
use alloy::sol_types::{SolCall, SolValue};
use avs_protocol::bn254::{self, G1Point, G2Point, SecretKey};
use avs_protocol::{ecdsa, keccak256};
use eigen_utils::slashing::core::allocation_manager::AllocationManager;
use eigen_utils::slashing::core::avs_directory::AVSDirectory;
use eigen_utils::slashing::core::delegation_manager::DelegationManager;
use eigen_utils::slashing::core::eigen_pod_manager::EigenPodManager;
use eigen_utils::slashing::core::permission_controller::PermissionController;
use eigen_utils::slashing::core::strategy_manager::StrategyManager;
use eigen_utils::slashing::middleware::bls_apk_registry::BLSApkRegistry;
use eigen_utils::slashing::middleware::index_registry::IndexRegistry;
use eigen_utils::slashing::middleware::operator_state_retriever::OperatorStateRetriever;
use eigen_utils::slashing::middleware::stake_registry::StakeRegistry;
use eigen_utils::slashing::sdk::mock_avs_service_manager::BN254 as CheckerBN254;
use eigen_utils::slashing::sdk::mock_avs_service_manager::MockAvsServiceManager;
use eigen_utils::slashing::sdk::mock_erc20::MockERC20;

use crate::chain::{self, Anvil, ChainError};

/// This project's registry coordinator (`interop/contracts/`), the binding the operator's
/// registration uses.
pub use spacecore_operator::abi::SpacecoreRegistryCoordinator;
/// The BN254 key registration an operator sends: its signature over the coordinator's
/// registration message (hashed to G1 by the coordinator, checked to be `avs_protocol`'s
/// point), with its G1 and G2 keys.
pub use spacecore_operator::pubkey_registration as registration;

sol! {
    /// This project's minimal proxy (`interop/contracts/`).
    #[sol(rpc)]
    #[derive(Debug)]
    contract SpacecoreProxy {
        function spacecoreProxyUpgradeToAndCall(address implementation, bytes calldata data) external;
    }
}

/// This project's own incredible-squaring TaskManager (`interop/contracts/`), through the ABI
/// the aggregator's chain mode uses: one definition for both.
pub use aggregator::chain::abi::TaskManager as SpacecoreTaskManager;

/// The file name of the declarations the registry coordinator and the task manager import (their
/// interfaces and shared types), as compiled.
pub const INTERFACES_SOURCE_NAME: &str = "SpacecoreInterfaces.sol";
/// This project's contracts' interfaces, which the operator's and the aggregator's bindings are
/// generated from.
pub const INTERFACES_SOURCE: &str = include_str!("../contracts/SpacecoreInterfaces.sol");
/// The file name of the registry coordinator's source, as compiled.
pub const COORDINATOR_SOURCE_NAME: &str = "SpacecoreRegistryCoordinator.sol";
/// This project's registry coordinator, proxy and strategy.
pub const COORDINATOR_SOURCE: &str = include_str!("../contracts/SpacecoreRegistryCoordinator.sol");
/// The file name of the task manager's source, as compiled.
pub const TASK_MANAGER_SOURCE_NAME: &str = "SpacecoreTaskManager.sol";
/// This project's incredible-squaring TaskManager.
pub const TASK_MANAGER_SOURCE: &str = include_str!("../contracts/SpacecoreTaskManager.sol");

/// The quorum every operator joins.
pub const QUORUM: u8 = 0;
/// The version string the core contracts are deployed with (its major part names their
/// EIP-712 domain).
const CORE_VERSION: &str = "v1.3.0";
/// DelegationManager's minimum withdrawal delay and AllocationManager's deallocation delay, in
/// blocks (never reached: nothing is withdrawn or deallocated).
const CORE_DELAY_BLOCKS: u32 = 50;
/// StakeRegistry's WEIGHTING_DIVISOR: a multiplier of 1e18 weighs one share as one stake.
const ONE_TO_ONE: u128 = 1_000_000_000_000_000_000;
/// The balance given to every account the deployment uses (100 ether).
const BALANCE: u128 = 100_000_000_000_000_000_000;

/// An operator to register: its BN254 key and its stake in quorum 0 (tokens deposited into the
/// strategy, one share each, weighed 1:1).
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
    /// The Ethereum account that registered it: the address of [`operator_ecdsa_key`].
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
    /// The deployer and owner of every contract (Anvil's first account).
    pub owner: Address,
    /// EigenLayer's core contracts.
    pub core: Core,
    /// This project's registry coordinator.
    pub coordinator: SpacecoreRegistryCoordinator::ISpacecoreRegistryCoordinatorInstance<DynProvider>,
    /// EigenLayer's BLSApkRegistry.
    pub bls_apk_registry: BLSApkRegistry::BLSApkRegistryInstance<DynProvider>,
    /// EigenLayer's StakeRegistry.
    pub stake_registry: Address,
    /// EigenLayer's IndexRegistry.
    pub index_registry: Address,
    /// EigenLayer's OperatorStateRetriever.
    pub retriever: OperatorStateRetriever::OperatorStateRetrieverInstance<DynProvider>,
    /// EigenLayer's MockAvsServiceManager (BLSSignatureChecker; the AVS of the AVSDirectory).
    pub checker: MockAvsServiceManager::MockAvsServiceManagerInstance<DynProvider>,
    /// This project's TaskManager.
    pub task_manager: SpacecoreTaskManager::ISpacecoreTaskManagerInstance<DynProvider>,
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

/// EigenLayer's core contracts (the proxies' addresses), the staked token and the strategy.
#[derive(Debug, Clone, Copy)]
pub struct Core {
    /// EigenLayer's DelegationManager.
    pub delegation_manager: Address,
    /// EigenLayer's StrategyManager.
    pub strategy_manager: Address,
    /// EigenLayer's AllocationManager.
    pub allocation_manager: Address,
    /// EigenLayer's AVSDirectory.
    pub avs_directory: Address,
    /// EigenLayer's EigenPodManager (read by the DelegationManager when delegating).
    pub eigen_pod_manager: Address,
    /// EigenLayer's PermissionController.
    pub permission_controller: Address,
    /// EigenLayer's MockERC20, the staked token (anyone may mint it).
    pub token: Address,
    /// This project's strategy for the token, whitelisted for deposits; quorum 0 weighs its
    /// shares 1:1.
    pub strategy: Address,
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

/// The ECDSA key of the operator with BN254 key `key` in the tests: drawn from its operator id.
pub fn operator_ecdsa_key(key: &SecretKey) -> ecdsa::SecretKey {
    let id = key.public_key().operator_id();
    (0u32..)
        .find_map(|i| {
            let mut seed = b"spacecore test operator ecdsa key".to_vec();
            seed.extend_from_slice(&id);
            seed.extend_from_slice(&i.to_be_bytes());
            ecdsa::SecretKey::from_bytes(&keccak256(&seed)).ok()
        })
        .expect("some draw is a valid secp256k1 key")
}

/// Deploys a [`SpacecoreProxy`] from `owner` (its admin) for `what`; the implementation is
/// set by [`upgrade`].
async fn deploy_proxy(
    provider: &DynProvider,
    owner: Address,
    proxy_code: &[u8],
    what: &str,
) -> Result<Address, ChainError> {
    deploy_code(provider, owner, proxy_code.to_vec(), &format!("the proxy of {what}")).await
}

/// Deploys EigenLayer's contract `what` from `owner`: `builder` is its constructor call.
async fn deploy_eigen(
    builder: alloy::contract::RawCallBuilder<DynProvider>,
    owner: Address,
    what: &str,
) -> Result<Address, ChainError> {
    builder.from(owner).deploy().await.map_err(|e| err(&format!("deploy EigenLayer's {what}"), e))
}

/// Points `proxy` at `implementation` and calls its initialiser `init` in the proxy's storage.
async fn upgrade(
    provider: &DynProvider,
    owner: Address,
    proxy: Address,
    implementation: Address,
    init: Vec<u8>,
    what: &str,
) -> Result<(), ChainError> {
    let tx = SpacecoreProxy::new(proxy, provider)
        .spacecoreProxyUpgradeToAndCall(implementation, Bytes::from(init))
        .from(owner)
        .into_transaction_request();
    send(provider, tx, &format!("initialise {what}")).await.map(|_| ())
}

/// Deploys EigenLayer's core contracts behind proxies, initialised with `owner` as owner and
/// nothing paused, the token and the strategy (whitelisted for deposits).
async fn deploy_core(
    provider: &DynProvider,
    owner: Address,
    proxy_code: &[u8],
    strategy_code: Vec<u8>,
) -> Result<Core, ChainError> {
    let version = CORE_VERSION.to_string();
    // The pauser registry is only called to pause or unpause, which the tests never do.
    let pauser = owner;
    let permission_controller = deploy_eigen(
        PermissionController::deploy_builder(provider.clone(), version.clone()),
        owner,
        "PermissionController",
    )
    .await?;
    // The proxies first: each implementation's constructor takes the others' addresses.
    let delegation_manager = deploy_proxy(provider, owner, proxy_code, "DelegationManager").await?;
    let strategy_manager = deploy_proxy(provider, owner, proxy_code, "StrategyManager").await?;
    let allocation_manager = deploy_proxy(provider, owner, proxy_code, "AllocationManager").await?;
    let avs_directory = deploy_proxy(provider, owner, proxy_code, "AVSDirectory").await?;
    let eigen_pod_manager = deploy_proxy(provider, owner, proxy_code, "EigenPodManager").await?;

    let implementation = deploy_eigen(
        DelegationManager::deploy_builder(
            provider.clone(),
            strategy_manager,
            eigen_pod_manager,
            allocation_manager,
            pauser,
            permission_controller,
            CORE_DELAY_BLOCKS,
            version.clone(),
        ),
        owner,
        "DelegationManager",
    )
    .await?;
    let init = DelegationManager::initializeCall { initialOwner: owner, initialPausedStatus: U256::ZERO };
    upgrade(provider, owner, delegation_manager, implementation, init.abi_encode(), "DelegationManager")
        .await?;

    let implementation = deploy_eigen(
        StrategyManager::deploy_builder(provider.clone(), delegation_manager, pauser, version.clone()),
        owner,
        "StrategyManager",
    )
    .await?;
    let init = StrategyManager::initializeCall {
        initialOwner: owner,
        initialStrategyWhitelister: owner,
        initialPausedStatus: U256::ZERO,
    };
    upgrade(provider, owner, strategy_manager, implementation, init.abi_encode(), "StrategyManager").await?;

    let implementation = deploy_eigen(
        AllocationManager::deploy_builder(
            provider.clone(),
            delegation_manager,
            pauser,
            permission_controller,
            CORE_DELAY_BLOCKS,
            0,
            version.clone(),
        ),
        owner,
        "AllocationManager",
    )
    .await?;
    let init = AllocationManager::initializeCall { initialOwner: owner, initialPausedStatus: U256::ZERO };
    upgrade(provider, owner, allocation_manager, implementation, init.abi_encode(), "AllocationManager")
        .await?;

    let implementation = deploy_eigen(
        AVSDirectory::deploy_builder(provider.clone(), delegation_manager, pauser, version.clone()),
        owner,
        "AVSDirectory",
    )
    .await?;
    let init = AVSDirectory::initializeCall { initialOwner: owner, initialPausedStatus: U256::ZERO };
    upgrade(provider, owner, avs_directory, implementation, init.abi_encode(), "AVSDirectory").await?;

    // No beacon chain: the deposit contract and the pod beacon are never called.
    let implementation = deploy_eigen(
        EigenPodManager::deploy_builder(
            provider.clone(),
            owner,
            owner,
            delegation_manager,
            pauser,
            version.clone(),
        ),
        owner,
        "EigenPodManager",
    )
    .await?;
    let init = EigenPodManager::initializeCall { initialOwner: owner, _initPausedStatus: U256::ZERO };
    upgrade(provider, owner, eigen_pod_manager, implementation, init.abi_encode(), "EigenPodManager").await?;

    let token = deploy_eigen(MockERC20::deploy_builder(provider.clone()), owner, "MockERC20").await?;
    let mut code = strategy_code;
    code.extend_from_slice(&(strategy_manager, token).abi_encode_params());
    let strategy = deploy_code(provider, owner, code, "SpacecoreStrategy").await?;
    let tx = StrategyManager::new(strategy_manager, provider)
        .addStrategiesToDepositWhitelist(vec![strategy])
        .from(owner)
        .into_transaction_request();
    send(provider, tx, "addStrategiesToDepositWhitelist").await?;
    Ok(Core {
        delegation_manager,
        strategy_manager,
        allocation_manager,
        avs_directory,
        eigen_pod_manager,
        permission_controller,
        token,
        strategy,
    })
}

impl Deployment {
    /// Compiles the project's contracts; deploys EigenLayer's core contracts, registries and
    /// checker and the project's coordinator and TaskManager; creates quorum 0 (minimum stake
    /// 1, the strategy's shares weighed 1:1); and registers `operators` as an operator does
    /// (`spacecore_operator::register`), each from the address of its [`operator_ecdsa_key`],
    /// funded with 100 ether and minted its stake in tokens. The task generator and the
    /// aggregator of `roles` get 100 ether each.
    pub async fn deploy(anvil: &Anvil, operators: &[Operator], roles: Roles) -> Result<Self, ChainError> {
        let started = Instant::now();
        let compiled = chain::compile(&[
            (INTERFACES_SOURCE_NAME, INTERFACES_SOURCE),
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

        let core = deploy_core(
            &provider,
            owner,
            &code(COORDINATOR_SOURCE_NAME, "SpacecoreProxy")?,
            code(COORDINATOR_SOURCE_NAME, "SpacecoreStrategy")?,
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

        // EigenLayer's registries, bound to the coordinator; the StakeRegistry reads the
        // operators' shares from the DelegationManager.
        let bls = deploy_eigen(
            BLSApkRegistry::deploy_builder(provider.clone(), coordinator_address),
            owner,
            "BLSApkRegistry",
        )
        .await?;
        let stake = deploy_eigen(
            StakeRegistry::deploy_builder(
                provider.clone(),
                coordinator_address,
                core.delegation_manager,
                core.avs_directory,
                core.allocation_manager,
            ),
            owner,
            "StakeRegistry",
        )
        .await?;
        let index = deploy_eigen(
            IndexRegistry::deploy_builder(provider.clone(), coordinator_address),
            owner,
            "IndexRegistry",
        )
        .await?;
        let tx = coordinator.setRegistries(bls, stake, index).from(owner).into_transaction_request();
        send(&provider, tx, "setRegistries").await?;
        let retriever = deploy_eigen(
            OperatorStateRetriever::deploy_builder(provider.clone()),
            owner,
            "OperatorStateRetriever",
        )
        .await?;
        // The service manager: the checker (it reads the registries' addresses from the
        // coordinator when constructed) and the AVS of the AVSDirectory registrations. Its
        // RewardsCoordinator is never called.
        let checker = deploy_eigen(
            MockAvsServiceManager::deploy_builder(
                provider.clone(),
                core.avs_directory,
                coordinator_address,
                stake,
                Address::ZERO,
                core.permission_controller,
                core.allocation_manager,
            ),
            owner,
            "MockAvsServiceManager (BLSSignatureChecker)",
        )
        .await?;
        let tx = coordinator.setServiceManager(checker).from(owner).into_transaction_request();
        send(&provider, tx, "setServiceManager").await?;

        // This project's TaskManager, calling EigenLayer's checker.
        let mut task_manager_code = code(TASK_MANAGER_SOURCE_NAME, "SpacecoreTaskManager")?;
        let task_manager_abi = compiled
            .get(&format!("{TASK_MANAGER_SOURCE_NAME}:SpacecoreTaskManager"))
            .map(|c| c.abi.clone())
            .unwrap_or_default();
        let args = SolValue::abi_encode(&(
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
            strategy: core.strategy,
            multiplier: U96::from(ONE_TO_ONE),
        }];
        let tx = coordinator.createQuorum(U96::from(1u8), params).from(owner).into_transaction_request();
        send(&provider, tx, "createQuorum").await?;

        let mut registered = Vec::with_capacity(operators.len());
        for (i, operator) in operators.iter().enumerate() {
            let ecdsa_key = operator_ecdsa_key(&operator.key);
            let account = Address::from(ecdsa_key.address());
            fund(&provider, account).await?;
            let tx = MockERC20::new(core.token, &provider)
                .mint(account, U256::from(operator.stake))
                .from(owner)
                .into_transaction_request();
            send(&provider, tx, &format!("mint operator {i}'s stake")).await?;
            let wallet = spacecore_operator::wallet_provider(&anvil.endpoint(), &ecdsa_key)
                .await
                .map_err(|e| err(&format!("operator {i}'s wallet"), e))?;
            let request = spacecore_operator::Request {
                coordinator: coordinator_address,
                quorums: vec![QUORUM],
                deposit: Some((core.strategy, U256::from(operator.stake))),
                metadata_uri: format!("spacecore test operator {i}"),
                signature_validity_seconds: spacecore_operator::DEFAULT_SIGNATURE_VALIDITY_SECONDS,
            };
            let report =
                spacecore_operator::register(&wallet, &operator.key, &ecdsa_key, &request, &mut |_| {})
                    .await
                    .map_err(|e| err(&format!("register operator {i}"), format!("{e:#}")))?;
            let id = B256::from(operator.key.public_key().operator_id());
            if report.operator_id != id || report.stakes != [(QUORUM, U256::from(operator.stake))] {
                return Err(ChainError(format!(
                    "operator {i}: registered as {} with stakes {:?}, not {id} with {}",
                    report.operator_id, report.stakes, operator.stake
                )));
            }
            registered.push(RegisteredOperator {
                public_key: operator.key.public_key(),
                stake: operator.stake,
                address: account,
                id,
            });
        }

        Ok(Deployment {
            provider: provider.clone(),
            owner,
            core,
            coordinator,
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
