//! An operator's transactions with EigenLayer's contracts, signed with the operator's own ECDSA
//! key, as `spacecore operator register` sends them (docs/cli.md, docs/chain.md):
//!
//! 1. registration as an EigenLayer operator: `DelegationManager.registerAsOperator` (which
//!    delegates the operator to itself);
//! 2. optionally, a deposit of the strategy's token: `ERC20.approve` and
//!    `StrategyManager.depositIntoStrategy`, whose shares the DelegationManager credits to the
//!    operator, and which the AVS's StakeRegistry reads as stake;
//! 3. registration with the AVS through its registry coordinator, with two signatures: the
//!    BN254 key's signature over the coordinator's key-registration message (checked by
//!    EigenLayer's BLSApkRegistry) and the ECDSA key's signature over the AVSDirectory's
//!    registration digest (checked by EigenLayer's AVSDirectory, through the service manager).
//!
//! Every address but the coordinator's and the strategy's is read from the chain: the
//! coordinator names the StakeRegistry and the service manager, which name the DelegationManager
//! and the AVSDirectory. Each step is skipped when the chain shows it done, so a registration
//! that stopped half-way can be run again.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, anyhow, bail};
use avs_protocol::{bn254, ecdsa};

pub mod abi;

use abi::{
    AvsDirectory, DelegationManager, Erc20, RegistrationErrors, ServiceManager, SpacecoreRegistryCoordinator,
    StakeRegistry, Strategy, StrategyManager,
};

/// How long the ECDSA AVS-registration signature stays valid, from the latest block's time.
pub const DEFAULT_SIGNATURE_VALIDITY_SECONDS: u64 = 3600;

/// What to register, and where.
#[derive(Debug, Clone)]
pub struct Request {
    /// The AVS's registry coordinator.
    pub coordinator: Address,
    /// The quorums to join: distinct, ascending, each one the coordinator has.
    pub quorums: Vec<u8>,
    /// The strategy to deposit into, with the amount of its token (in the token's smallest
    /// unit); no deposit when `None` or zero.
    pub deposit: Option<(Address, U256)>,
    /// The operator's metadata URI, as the DelegationManager records it.
    pub metadata_uri: String,
    /// How long the AVS-registration signature is valid.
    pub signature_validity_seconds: u64,
}

/// A transaction the registration sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// What it did (`registerAsOperator`, `approve`, `depositIntoStrategy`, `registerOperator`).
    pub step: &'static str,
    /// Its hash.
    pub hash: B256,
    /// The block it was mined in.
    pub block: u64,
    /// The gas it used.
    pub gas_used: u64,
}

/// What the chain shows after a registration.
#[derive(Debug, Clone)]
pub struct Report {
    /// The operator's address (its ECDSA key's).
    pub operator: Address,
    /// EigenLayer's operator id: `keccak256` of the BN254 G1 key.
    pub operator_id: B256,
    /// The transactions sent, in order (none when everything was already done).
    pub sent: Vec<Sent>,
    /// The operator's shares in the deposit's strategy, as the DelegationManager reports them.
    pub shares: Option<U256>,
    /// The operator's current stake in each requested quorum, as the StakeRegistry reports it.
    pub stakes: Vec<(u8, U256)>,
    /// The contracts the registration read from the chain.
    pub contracts: Contracts,
}

/// The contracts reached from the coordinator.
#[derive(Debug, Clone, Copy)]
pub struct Contracts {
    /// The AVS's registry coordinator.
    pub coordinator: Address,
    /// EigenLayer's StakeRegistry of the AVS.
    pub stake_registry: Address,
    /// The AVS's service manager (the "AVS" address of the AVSDirectory).
    pub service_manager: Address,
    /// EigenLayer's DelegationManager.
    pub delegation_manager: Address,
    /// EigenLayer's StrategyManager.
    pub strategy_manager: Address,
    /// EigenLayer's AVSDirectory.
    pub avs_directory: Address,
}

/// A provider that signs with `key`: every transaction is sent from the key's address.
pub async fn wallet_provider(rpc_url: &str, key: &ecdsa::SecretKey) -> Result<DynProvider> {
    let signer = PrivateKeySigner::from_bytes(&B256::from(*key.to_bytes()))
        .map_err(|_| anyhow!("the ECDSA key is not a valid secp256k1 secret key"))?;
    let url = rpc_url.parse().with_context(|| format!("--eth-rpc {rpc_url}: not a URL"))?;
    Ok(ProviderBuilder::new().wallet(signer).connect_http(url).erased())
}

/// A contract call's failure, with the contracts' own error when the revert data names one: the
/// registry coordinator's, or EigenLayer's.
fn call_error(what: &str, e: alloy::contract::Error) -> anyhow::Error {
    let name = e
        .as_decoded_interface_error::<SpacecoreRegistryCoordinator::ISpacecoreRegistryCoordinatorErrors>()
        .map(|decoded| error_name(&decoded))
        .or_else(|| {
            e.as_decoded_interface_error::<RegistrationErrors::RegistrationErrorsErrors>()
                .map(|decoded| error_name(&decoded))
        });
    match name {
        Some(name) => anyhow!("{what}: reverted with {name}"),
        None => anyhow!("{what}: {e}"),
    }
}

/// The error's name, as the contract declares it.
fn error_name(e: &impl std::fmt::Debug) -> String {
    let text = format!("{e:?}");
    text.split('(').next().unwrap_or(&text).to_string()
}

/// Sends a prepared call and waits for its receipt, which must be a success.
async fn send<C>(call: C, step: &'static str, progress: &mut dyn FnMut(&str)) -> Result<Sent>
where
    C: std::future::IntoFuture<
            Output = Result<
                alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
                alloy::contract::Error,
            >,
        >,
{
    let pending = call.await.map_err(|e| call_error(step, e))?;
    let hash = *pending.tx_hash();
    progress(&format!("{step}: sent {hash}"));
    let receipt: TransactionReceipt =
        pending.get_receipt().await.with_context(|| format!("{step}: no receipt for {hash}"))?;
    if !receipt.status() {
        bail!("{step}: transaction {hash} reverted");
    }
    let sent =
        Sent { step, hash, block: receipt.block_number.unwrap_or_default(), gas_used: receipt.gas_used };
    progress(&format!("{step}: mined in block {}, gas {}", sent.block, sent.gas_used));
    Ok(sent)
}

/// Reads the contracts the coordinator leads to.
pub async fn contracts(provider: &DynProvider, coordinator: Address) -> Result<Contracts> {
    if provider.get_code_at(coordinator).await.context("eth_getCode")?.is_empty() {
        bail!("no contract at the registry coordinator address {coordinator}");
    }
    let c = SpacecoreRegistryCoordinator::new(coordinator, provider);
    let stake_registry =
        c.stakeRegistry().call().await.map_err(|e| call_error("coordinator.stakeRegistry", e))?;
    let service_manager =
        c.serviceManager().call().await.map_err(|e| call_error("coordinator.serviceManager", e))?;
    if stake_registry.is_zero() || service_manager.is_zero() {
        bail!("the registry coordinator {coordinator} has no StakeRegistry or service manager set yet");
    }
    let delegation_manager = StakeRegistry::new(stake_registry, provider)
        .delegation()
        .call()
        .await
        .map_err(|e| call_error("StakeRegistry.delegation", e))?;
    let strategy_manager = DelegationManager::new(delegation_manager, provider)
        .strategyManager()
        .call()
        .await
        .map_err(|e| call_error("DelegationManager.strategyManager", e))?;
    let avs_directory = ServiceManager::new(service_manager, provider)
        .avsDirectory()
        .call()
        .await
        .map_err(|e| call_error("ServiceManager.avsDirectory", e))?;
    Ok(Contracts {
        coordinator,
        stake_registry,
        service_manager,
        delegation_manager,
        strategy_manager,
        avs_directory,
    })
}

/// The BN254 key-registration parameters for `operator`: the key's signature over the
/// coordinator's registration message, with its G1 and G2 keys. The coordinator's own hash of
/// that message to G1 must be the point `avs_protocol::bn254` signs.
pub async fn pubkey_registration<P: Provider>(
    coordinator: &SpacecoreRegistryCoordinator::ISpacecoreRegistryCoordinatorInstance<P>,
    key: &bn254::SecretKey,
    operator: Address,
) -> Result<SpacecoreRegistryCoordinator::PubkeyRegistrationParams> {
    let digest = coordinator
        .pubkeyRegistrationDigest(operator)
        .call()
        .await
        .map_err(|e| call_error("coordinator.pubkeyRegistrationDigest", e))?;
    let on_chain = coordinator
        .pubkeyRegistrationMessageHash(operator)
        .call()
        .await
        .map_err(|e| call_error("coordinator.pubkeyRegistrationMessageHash", e))?;
    if on_chain != abi::g1(&bn254::hash_to_g1(&digest.0)) {
        bail!(
            "the coordinator hashes its registration message to G1 otherwise than EigenLayer's BN254 library"
        );
    }
    let public = key.public_key();
    Ok(SpacecoreRegistryCoordinator::PubkeyRegistrationParams {
        pubkeyRegistrationSignature: abi::g1(&key.sign(&digest.0).point()),
        pubkeyG1: abi::g1(&public.g1()),
        pubkeyG2: abi::g2(&public.g2()),
    })
}

/// The ECDSA signature over the AVSDirectory's registration digest of `operator` with the
/// AVS `service_manager`, valid until `expiry` (a block timestamp), with a fresh `salt`.
pub async fn avs_registration_signature(
    provider: &DynProvider,
    contracts: &Contracts,
    key: &ecdsa::SecretKey,
    salt: B256,
    expiry: U256,
) -> Result<SpacecoreRegistryCoordinator::SignatureWithSaltAndExpiry> {
    let operator = Address::from(key.address());
    let digest = AvsDirectory::new(contracts.avs_directory, provider)
        .calculateOperatorAVSRegistrationDigestHash(operator, contracts.service_manager, salt, expiry)
        .call()
        .await
        .map_err(|e| call_error("AVSDirectory.calculateOperatorAVSRegistrationDigestHash", e))?;
    let signature = key.sign_prehash(&digest.0);
    Ok(SpacecoreRegistryCoordinator::SignatureWithSaltAndExpiry {
        signature: Bytes::from(signature.to_vec()),
        salt,
        expiry,
    })
}

/// A salt no other registration of this operator used: keccak256 of the operator, the time and
/// a process-wide counter.
fn fresh_salt(operator: Address) -> B256 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let mut seed = operator.to_vec();
    seed.extend_from_slice(&nanos.to_be_bytes());
    seed.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    seed.extend_from_slice(&std::process::id().to_be_bytes());
    B256::from(avs_protocol::keccak256(&seed))
}

/// Registers the operator of `ecdsa_key` with EigenLayer and with the AVS of
/// `request.coordinator`, with `bn254_key`, over `provider` (which must sign with `ecdsa_key`:
/// [`wallet_provider`]). `progress` gets one line per step.
pub async fn register(
    provider: &DynProvider,
    bn254_key: &bn254::SecretKey,
    ecdsa_key: &ecdsa::SecretKey,
    request: &Request,
    progress: &mut dyn FnMut(&str),
) -> Result<Report> {
    let operator = Address::from(ecdsa_key.address());
    let operator_id = B256::from(bn254_key.public_key().operator_id());
    let chain_id = provider.get_chain_id().await.context("eth_chainId")?;
    progress(&format!("operator {operator}, operator id {operator_id}, chain {chain_id}"));
    if provider.get_balance(operator).await.context("eth_getBalance")?.is_zero() {
        bail!("the operator's account {operator} holds no ether to pay for its transactions");
    }
    let contracts = contracts(provider, request.coordinator).await?;
    progress(&format!(
        "DelegationManager {}, StrategyManager {}, AVSDirectory {}, service manager {}",
        contracts.delegation_manager,
        contracts.strategy_manager,
        contracts.avs_directory,
        contracts.service_manager
    ));
    let delegation = DelegationManager::new(contracts.delegation_manager, provider);
    let coordinator = SpacecoreRegistryCoordinator::new(contracts.coordinator, provider);
    let mut sent = Vec::new();

    // Whatever can be refused is refused before the first transaction.
    let deposit = match request.deposit {
        Some((strategy, amount)) => {
            let token = Strategy::new(strategy, provider)
                .underlyingToken()
                .call()
                .await
                .map_err(|e| call_error("strategy.underlyingToken", e))?;
            let balance = Erc20::new(token, provider)
                .balanceOf(operator)
                .call()
                .await
                .map_err(|e| call_error("token.balanceOf", e))?;
            if balance < amount {
                bail!(
                    "the operator holds {balance} of the strategy's token {token}, less than the deposit of {amount}"
                );
            }
            Some((strategy, amount, token))
        }
        None => None,
    };
    let registered_id = coordinator
        .getOperatorId(operator)
        .call()
        .await
        .map_err(|e| call_error("coordinator.getOperatorId", e))?;
    if !registered_id.is_zero() && registered_id != operator_id {
        bail!(
            "the operator {operator} is registered with the AVS with another BN254 key (operator id {registered_id})"
        );
    }

    // 1. EigenLayer operator.
    let is_operator = delegation
        .isOperator(operator)
        .call()
        .await
        .map_err(|e| call_error("DelegationManager.isOperator", e))?;
    if is_operator {
        progress("already an EigenLayer operator");
    } else {
        let call = delegation.registerAsOperator(Address::ZERO, 0, request.metadata_uri.clone());
        sent.push(send(call.send(), "registerAsOperator", progress).await?);
    }

    // 2. Deposit (checked before anything is sent).
    let mut shares = None;
    if let Some((strategy, amount, token)) = deposit {
        if !amount.is_zero() {
            let erc20 = Erc20::new(token, provider);
            sent.push(
                send(erc20.approve(contracts.strategy_manager, amount).send(), "approve", progress).await?,
            );
            let manager = StrategyManager::new(contracts.strategy_manager, provider);
            let call = manager.depositIntoStrategy(strategy, token, amount);
            sent.push(send(call.send(), "depositIntoStrategy", progress).await?);
        }
        let found = delegation
            .getOperatorShares(operator, vec![strategy])
            .call()
            .await
            .map_err(|e| call_error("DelegationManager.getOperatorShares", e))?;
        shares = found.first().copied();
    }

    // 3. The AVS.
    if registered_id == operator_id {
        progress("already registered with the AVS");
    } else {
        let params = pubkey_registration(&coordinator, bn254_key, operator).await?;
        let now = provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .context("eth_getBlockByNumber")?
            .ok_or_else(|| anyhow!("the node has no latest block"))?
            .header
            .timestamp;
        let expiry = U256::from(now.saturating_add(request.signature_validity_seconds));
        let signature =
            avs_registration_signature(provider, &contracts, ecdsa_key, fresh_salt(operator), expiry).await?;
        let call = coordinator.registerOperator(Bytes::from(request.quorums.clone()), params, signature);
        sent.push(send(call.send(), "registerOperator", progress).await?);
        let on_chain = coordinator
            .getOperatorId(operator)
            .call()
            .await
            .map_err(|e| call_error("coordinator.getOperatorId", e))?;
        if on_chain != operator_id {
            bail!("after registration the coordinator records operator id {on_chain}, not {operator_id}");
        }
    }

    let registry = StakeRegistry::new(contracts.stake_registry, provider);
    let mut stakes = Vec::with_capacity(request.quorums.len());
    for &quorum in &request.quorums {
        let stake = registry
            .getCurrentStake(operator_id, quorum)
            .call()
            .await
            .map_err(|e| call_error("StakeRegistry.getCurrentStake", e))?;
        progress(&format!("stake in quorum {quorum}: {stake}"));
        stakes.push((quorum, U256::from(stake)));
    }
    Ok(Report { operator, operator_id, sent, shares, stakes, contracts })
}
