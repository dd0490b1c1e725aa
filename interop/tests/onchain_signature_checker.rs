//! EigenLayer's own BLSSignatureChecker, run on a local Anvil, checking what this project's
//! BN254 code and aggregator produce.
//!
//! Deployed: EigenLayer's BLSApkRegistry, StakeRegistry, IndexRegistry, OperatorStateRetriever
//! and MockAvsServiceManager (which inherits BLSSignatureChecker), from the creation bytecode
//! eigensdk-rs publishes in `eigen-utils`; and this project's own `SpacecoreRegistryCoordinator`
//! and `SpacecoreStakeTable` (`interop/contracts/`, compiled here with the pinned solc-js),
//! because EigenLayer publishes no RegistryCoordinator bytecode. Three operators register
//! BN254 keys made by `avs_protocol::bn254` (BLSApkRegistry checks each registration
//! signature), with stakes in quorum 0. Two of them answer a task through the aggregator's
//! `AggregationService`; its BN254 aggregate becomes the `NonSignerStakesAndSignature`, and
//! `checkSignatures` must return the two signers' stake out of all three. Forged aggregates
//! must revert with the checker's own errors.
//!
//! Needs `SPACECORE_ANVIL` and `SPACECORE_SOLCJS` (`cargo xtask test` sets them); fails without.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::operators::{G1Key, G2Key, OperatorEntry};
use aggregator::{
    Aggregate, AggregatedResponse, AggregationService, Bn254Aggregate, DecisionLog, OperatorSet,
};
use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256, aliases::U96};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::sol;
use alloy::sol_types::SolValue;
use avs_protocol::bn254::{self, G1Point, G2Point, SecretKey};
use avs_protocol::encoding::to_hex;
use avs_protocol::scheme::DigestSigner;
use avs_protocol::{NewTask, SignedTaskResponse, Task, keccak256};
use eigen_utils::slashing::middleware::bls_apk_registry::BLSApkRegistry::{self, BLSApkRegistryErrors};
use eigen_utils::slashing::middleware::index_registry::IndexRegistry;
use eigen_utils::slashing::middleware::operator_state_retriever::OperatorStateRetriever;
use eigen_utils::slashing::middleware::stake_registry::StakeRegistry;
use eigen_utils::slashing::sdk::mock_avs_service_manager::BN254 as CheckerBN254;
use eigen_utils::slashing::sdk::mock_avs_service_manager::IBLSSignatureCheckerTypes::NonSignerStakesAndSignature;
use eigen_utils::slashing::sdk::mock_avs_service_manager::MockAvsServiceManager::{
    self, MockAvsServiceManagerErrors, MockAvsServiceManagerInstance,
};
use interop::chain::{self, Anvil, Compiled};

sol! {
    /// This project's own registry coordinator (`interop/contracts/`), the functions used here.
    #[sol(rpc)]
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
    contract SpacecoreStakeTable {
        function setShares(address operator, address strategy, uint256 amount) external;
    }
}

const SOURCE_NAME: &str = "SpacecoreRegistryCoordinator.sol";
const SOURCE: &str = include_str!("../contracts/SpacecoreRegistryCoordinator.sol");
/// The quorum every operator joins.
const QUORUM: u8 = 0;
/// The operators' stakes in it (shares of one strategy, weighed 1:1).
const STAKES: [u64; 3] = [1_000, 2_000, 3_000];
/// Which operators sign: the first and the third (4000 of 6000 stake).
const SIGNERS: [usize; 2] = [0, 2];
const NON_SIGNER: usize = 1;
/// The strategy whose shares count; the stake table only uses it as a key.
const STRATEGY: Address = Address::new([0x5c; 20]);
/// StakeRegistry's WEIGHTING_DIVISOR: a multiplier of 1e18 weighs one share as one stake.
const ONE_TO_ONE: u128 = 1_000_000_000_000_000_000;

/// Everything deployed.
struct Deployment {
    provider: DynProvider,
    coordinator: SpacecoreRegistryCoordinator::SpacecoreRegistryCoordinatorInstance<DynProvider>,
    bls_apk_registry: BLSApkRegistry::BLSApkRegistryInstance<DynProvider>,
    retriever: OperatorStateRetriever::OperatorStateRetrieverInstance<DynProvider>,
    checker: MockAvsServiceManagerInstance<DynProvider>,
}

/// A secret key drawn from a fixed label (skipping the rare draw at or above r).
fn secret_key(label: &str) -> SecretKey {
    (0u32..)
        .find_map(|i| SecretKey::from_bytes(&keccak256(format!("{label} {i}").as_bytes())).ok())
        .expect("some draw is below r")
}

fn word(bytes: &[u8]) -> U256 {
    U256::from_be_slice(bytes)
}

fn g1_words(point: &G1Point) -> (U256, U256) {
    let b = point.to_bytes();
    (word(&b[..32]), word(&b[32..]))
}

/// The contracts' G2 order: `X = [X.c1, X.c0]`, `Y = [Y.c1, Y.c0]`, as `to_bytes` writes them.
fn g2_words(point: &G2Point) -> ([U256; 2], [U256; 2]) {
    let b = point.to_bytes();
    ([word(&b[..32]), word(&b[32..64])], [word(&b[64..96]), word(&b[96..])])
}

fn checker_g1(point: &G1Point) -> CheckerBN254::G1Point {
    let (x, y) = g1_words(point);
    CheckerBN254::G1Point { X: x, Y: y }
}

fn checker_g2(point: &G2Point) -> CheckerBN254::G2Point {
    let (x, y) = g2_words(point);
    CheckerBN254::G2Point { X: x, Y: y }
}

/// Sends `tx` from `from` and waits for a successful receipt.
async fn send(
    provider: &DynProvider,
    tx: TransactionRequest,
    what: &str,
) -> alloy::rpc::types::TransactionReceipt {
    let receipt = provider
        .send_transaction(tx)
        .await
        .unwrap_or_else(|e| panic!("{what}: sending failed: {e}"))
        .get_receipt()
        .await
        .unwrap_or_else(|e| panic!("{what}: no receipt: {e}"));
    assert!(receipt.status(), "{what}: the transaction reverted ({:?})", receipt.transaction_hash);
    receipt
}

/// Deploys creation `code` (with its constructor arguments appended) from `from`.
async fn deploy(provider: &DynProvider, from: Address, code: Vec<u8>, what: &str) -> Address {
    let tx = TransactionRequest::default().from(from).with_deploy_code(Bytes::from(code));
    send(provider, tx, what).await.contract_address.unwrap_or_else(|| panic!("{what}: no contract address"))
}

/// Deploys the registry stack and the checker, creates quorum 0 and registers `keys` with
/// `STAKES`, each from its own Anvil account.
async fn deploy_all(
    anvil: &Anvil,
    compiled: &BTreeMap<String, Compiled>,
    keys: &[SecretKey],
    accounts: &[Address],
) -> Deployment {
    let provider =
        ProviderBuilder::new().connect(&anvil.endpoint()).await.expect("connect to Anvil").erased();
    let owner = accounts[0];

    let code = |name: &str| compiled[&format!("{SOURCE_NAME}:{name}")].bytecode.clone();

    // This project's stand-in and coordinator.
    let stake_table_address =
        deploy(&provider, owner, code("SpacecoreStakeTable"), "SpacecoreStakeTable").await;
    let coordinator_address =
        deploy(&provider, owner, code("SpacecoreRegistryCoordinator"), "SpacecoreRegistryCoordinator").await;
    let coordinator = SpacecoreRegistryCoordinator::new(coordinator_address, provider.clone());
    let stake_table = SpacecoreStakeTable::new(stake_table_address, provider.clone());

    // EigenLayer's registries, from eigen-utils' bytecode, bound to the coordinator. Neither
    // the AVSDirectory nor the AllocationManager is read for a delegated-stake quorum: they
    // are the zero address, so any call to them would revert.
    let bls = BLSApkRegistry::deploy_builder(provider.clone(), coordinator_address)
        .from(owner)
        .deploy()
        .await
        .expect("deploy EigenLayer's BLSApkRegistry");
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
    .expect("deploy EigenLayer's StakeRegistry");
    let index = IndexRegistry::deploy_builder(provider.clone(), coordinator_address)
        .from(owner)
        .deploy()
        .await
        .expect("deploy EigenLayer's IndexRegistry");
    let tx = coordinator.setRegistries(bls, stake, index).from(owner).into_transaction_request();
    send(&provider, tx, "setRegistries").await;
    let retriever = OperatorStateRetriever::deploy_builder(provider.clone())
        .from(owner)
        .deploy()
        .await
        .expect("deploy EigenLayer's OperatorStateRetriever");
    // The checker reads the registries' addresses from the coordinator when constructed. The
    // service manager's other collaborators (AVSDirectory, RewardsCoordinator,
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
    .expect("deploy EigenLayer's MockAvsServiceManager (BLSSignatureChecker)");

    let params = vec![SpacecoreRegistryCoordinator::StrategyParams {
        strategy: STRATEGY,
        multiplier: U96::from(ONE_TO_ONE),
    }];
    let tx = coordinator.createQuorum(U96::from(1u8), params).from(owner).into_transaction_request();
    send(&provider, tx, "createQuorum").await;

    for (i, (sk, stake)) in keys.iter().zip(STAKES).enumerate() {
        let operator = accounts[i + 1];
        let tx = stake_table
            .setShares(operator, STRATEGY, U256::from(stake))
            .from(owner)
            .into_transaction_request();
        send(&provider, tx, "setShares").await;
        let tx = coordinator
            .registerOperator(Bytes::from(vec![QUORUM]), registration(&coordinator, sk, operator).await)
            .from(operator)
            .into_transaction_request();
        send(&provider, tx, &format!("registerOperator {i}")).await;
        if i == 0 {
            // Once registered, the same key cannot be registered again by another address.
            let again = registration(&coordinator, sk, accounts[5]).await;
            let refused =
                |e: &BLSApkRegistryErrors| matches!(e, BLSApkRegistryErrors::BLSPubkeyAlreadyRegistered(_));
            assert_registration_refused(&coordinator, accounts[5], again, refused, "a key registered twice")
                .await;
        }
        let id = coordinator.getOperatorId(operator).call().await.expect("getOperatorId");
        assert_eq!(
            id,
            B256::from(sk.public_key().operator_id()),
            "operator {i}: EigenLayer's operator id is ours"
        );
    }

    Deployment {
        provider: provider.clone(),
        coordinator,
        bls_apk_registry: BLSApkRegistry::new(bls, provider.clone()),
        retriever: OperatorStateRetriever::new(retriever, provider.clone()),
        checker: MockAvsServiceManager::new(checker, provider),
    }
}

/// A registration by `operator` must revert with BLSApkRegistry's own `expected` error.
async fn assert_registration_refused(
    coordinator: &SpacecoreRegistryCoordinator::SpacecoreRegistryCoordinatorInstance<DynProvider>,
    operator: Address,
    params: SpacecoreRegistryCoordinator::PubkeyRegistrationParams,
    expected: fn(&BLSApkRegistryErrors) -> bool,
    what: &str,
) {
    let result = coordinator.registerOperator(Bytes::from(vec![QUORUM]), params).from(operator).call().await;
    let error = match result {
        Ok(id) => panic!("{what}: the registration went through (operator id {id})"),
        Err(e) => e,
    };
    let decoded = error.as_decoded_interface_error::<BLSApkRegistryErrors>();
    assert!(decoded.as_ref().is_some_and(expected), "{what}: reverted with {decoded:?} ({error})");
    eprintln!("registration refused as expected, {what}: {decoded:?}");
}

/// Registrations BLSApkRegistry must refuse: a signature over another operator's registration
/// message, and a G2 key of another secret than the G1 key.
async fn forged_registrations(d: &Deployment, operator: Address, other: Address) {
    let sk = secret_key("late operator");
    let wrong_message =
        |e: &BLSApkRegistryErrors| matches!(e, BLSApkRegistryErrors::InvalidBLSSignatureOrPrivateKey(_));
    let mut params = registration(&d.coordinator, &sk, operator).await;
    params.pubkeyRegistrationSignature =
        registration(&d.coordinator, &sk, other).await.pubkeyRegistrationSignature;
    assert_registration_refused(
        &d.coordinator,
        operator,
        params,
        wrong_message,
        "a signature over another operator's message",
    )
    .await;
    let mut params = registration(&d.coordinator, &sk, operator).await;
    let (x, y) = g2_words(&secret_key("another secret").public_key().g2());
    params.pubkeyG2 = SpacecoreRegistryCoordinator::G2Point { X: x, Y: y };
    assert_registration_refused(
        &d.coordinator,
        operator,
        params,
        wrong_message,
        "a G2 key of another secret",
    )
    .await;
}

/// The BN254 key registration `operator` sends: our signature over the coordinator's
/// registration digest (hashed to G1 with our `hash_to_g1`, which must be the point the
/// coordinator hands BLSApkRegistry), with the G1 and G2 keys.
async fn registration(
    coordinator: &SpacecoreRegistryCoordinator::SpacecoreRegistryCoordinatorInstance<DynProvider>,
    sk: &SecretKey,
    operator: Address,
) -> SpacecoreRegistryCoordinator::PubkeyRegistrationParams {
    let digest = coordinator.pubkeyRegistrationDigest(operator).call().await.expect("registration digest");
    let on_chain =
        coordinator.pubkeyRegistrationMessageHash(operator).call().await.expect("registration hash");
    let ours = bn254::hash_to_g1(&digest.0);
    assert_eq!(
        (on_chain.X, on_chain.Y),
        g1_words(&ours),
        "the coordinator hashes to G1 as avs_protocol does"
    );
    let g1 = |p: &G1Point| {
        let (x, y) = g1_words(p);
        SpacecoreRegistryCoordinator::G1Point { X: x, Y: y }
    };
    let pk = sk.public_key();
    let (x, y) = g2_words(&pk.g2());
    SpacecoreRegistryCoordinator::PubkeyRegistrationParams {
        pubkeyRegistrationSignature: g1(&sk.sign(&digest.0).point()),
        pubkeyG1: g1(&pk.g1()),
        pubkeyG2: SpacecoreRegistryCoordinator::G2Point { X: x, Y: y },
    }
}

/// The operator set the aggregator is given: the same keys and stakes as registered on chain.
fn operator_set(keys: &[SecretKey]) -> Arc<OperatorSet> {
    let entries: Vec<OperatorEntry> = keys
        .iter()
        .zip(STAKES)
        .enumerate()
        .map(|(i, (sk, stake))| {
            let pk = sk.public_key();
            OperatorEntry {
                name: Some(format!("operator-{i}")),
                id: to_hex(&pk.operator_id()),
                g1: Some(G1Key::Hex(to_hex(&pk.g1().to_bytes()))),
                g2: Some(G2Key::Hex(to_hex(&pk.g2().to_bytes()))),
                pop: to_hex(&bn254::pop_prove(sk).to_bytes()),
                stake: [(QUORUM.to_string(), stake)].into(),
                address: "http://127.0.0.1:9".into(),
                ..OperatorEntry::default()
            }
        })
        .collect();
    Arc::new(OperatorSet::from_entries(&entries).expect("a valid operator set"))
}

/// Runs the aggregator's service over a task created at `reference_block`: the signers answer,
/// the last answer completes the task.
fn aggregate(keys: &[SecretKey], reference_block: u32) -> AggregatedResponse {
    let (log, _memory) = DecisionLog::memory();
    let metrics = Arc::new(aggregator::metrics::Metrics::new());
    let service = AggregationService::new(operator_set(keys), Duration::from_secs(60), metrics, log);
    let task = NewTask {
        task_index: 7,
        task: Task {
            number_to_be_squared: U256::from(12_345u64),
            task_created_block: reference_block,
            quorum_numbers: vec![QUORUM],
            quorum_threshold_percentage: 60,
        },
    };
    service.initialize_task(task.clone(), Instant::now()).expect("task accepted");
    let response = task.task.respond(task.task_index).expect("a valid task");
    let mut completed = None;
    for (n, &i) in SIGNERS.iter().enumerate() {
        let signed = SignedTaskResponse {
            task_response: response,
            signature: keys[i].sign_digest(&response.digest()),
            operator_id: keys[i].operator_id(),
        };
        let outcome =
            service.process_signed_task_response(&signed, Instant::now()).expect("response accepted");
        assert_eq!(outcome.is_some(), n + 1 == SIGNERS.len(), "the last signer completes the task");
        completed = outcome;
    }
    completed.expect("the task completed")
}

fn bn254_aggregate(response: &AggregatedResponse) -> &Bn254Aggregate {
    match &response.aggregate {
        Aggregate::Bn254(a) => a,
        other => panic!("a BN254 operator set gives a BN254 aggregate, not {other:?}"),
    }
}

/// The checker's input from the aggregator's output and OperatorStateRetriever's indices.
async fn checker_input(
    d: &Deployment,
    response: &AggregatedResponse,
    reference_block: u32,
) -> NonSignerStakesAndSignature {
    let a = bn254_aggregate(response);
    let non_signer_ids: Vec<B256> = response.non_signers.iter().map(|id| B256::from(*id)).collect();
    let quorums: Vec<u8> = a.quorum_apks.iter().map(|(q, _)| *q).collect();
    let indices = d
        .retriever
        .getCheckSignaturesIndices(
            *d.coordinator.address(),
            reference_block,
            Bytes::from(quorums),
            non_signer_ids,
        )
        .call()
        .await
        .expect("EigenLayer's OperatorStateRetriever gives the indices");
    NonSignerStakesAndSignature {
        nonSignerQuorumBitmapIndices: indices.nonSignerQuorumBitmapIndices,
        nonSignerPubkeys: a.non_signer_pubkeys.iter().map(checker_g1).collect(),
        quorumApks: a.quorum_apks.iter().map(|(_, apk)| checker_g1(apk)).collect(),
        apkG2: checker_g2(&a.apk_g2),
        sigma: checker_g1(&a.signature.point()),
        quorumApkIndices: indices.quorumApkIndices,
        totalStakeIndices: indices.totalStakeIndices,
        nonSignerStakeIndices: indices.nonSignerStakeIndices,
    }
}

/// `checkSignatures` must revert with `expected` (the checker's own error).
async fn assert_refused(
    d: &Deployment,
    digest: [u8; 32],
    reference_block: u32,
    params: NonSignerStakesAndSignature,
    expected: fn(&MockAvsServiceManagerErrors) -> bool,
    what: &str,
) {
    let result = d
        .checker
        .checkSignatures(B256::from(digest), Bytes::from(vec![QUORUM]), reference_block, params)
        .call()
        .await;
    let error = match result {
        Ok(accepted) => panic!(
            "{what}: checkSignatures accepted it (signed {:?} of {:?})",
            accepted._0.signedStakeForQuorum, accepted._0.totalStakeForQuorum
        ),
        Err(e) => e,
    };
    let decoded = error.as_decoded_interface_error::<MockAvsServiceManagerErrors>();
    assert!(decoded.as_ref().is_some_and(expected), "{what}: reverted with {decoded:?} ({error})");
    eprintln!("refused as expected, {what}: {decoded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eigenlayer_checker_accepts_our_bn254_aggregate_and_refuses_forgeries() {
    let wall = Instant::now();
    let anvil = Anvil::start().unwrap_or_else(|e| panic!("cannot start the pinned Anvil: {e}"));
    eprintln!("Anvil listening on {} after {:?}", anvil.endpoint(), anvil.start_time);

    let keys: Vec<SecretKey> = (0..3).map(|i| secret_key(&format!("onchain operator {i}"))).collect();
    let probe = ProviderBuilder::new().connect(&anvil.endpoint()).await.expect("connect to Anvil");
    assert_eq!(probe.get_chain_id().await.expect("chain id"), chain::CHAIN_ID);
    let accounts = probe.get_accounts().await.expect("Anvil's accounts");
    assert!(accounts.len() >= 6, "Anvil has an owner, three operators and two more accounts");

    let started = Instant::now();
    let compiled = chain::compile(&[(SOURCE_NAME, SOURCE)])
        .unwrap_or_else(|e| panic!("cannot compile {SOURCE_NAME}: {e}"));
    eprintln!("solc-js compiled {SOURCE_NAME} in {:?}", started.elapsed());
    let started = Instant::now();
    let d = deploy_all(&anvil, &compiled, &keys, &accounts).await;
    eprintln!("deployed, quorum created and 3 operators registered in {:?}", started.elapsed());
    forged_registrations(&d, accounts[4], accounts[5]).await;

    // The task's reference block is the latest block, which holds every registration; one
    // more block makes it strictly in the past, as checkSignatures requires.
    let reference_block = u32::try_from(d.provider.get_block_number().await.expect("block number")).unwrap();
    let _: serde_json::Value = d.provider.raw_request("evm_mine".into(), ()).await.expect("mine a block");

    let response = aggregate(&keys, reference_block);
    let a = bn254_aggregate(&response);
    assert_eq!(response.digest, response.task_response.digest());
    assert_eq!(response.non_signers, vec![keys[NON_SIGNER].operator_id()]);
    assert_eq!(response.quorums[0].signed_stake, u128::from(STAKES[0] + STAKES[2]));
    assert_eq!(response.quorums[0].total_stake, STAKES.iter().map(|&s| u128::from(s)).sum::<u128>());

    // The aggregator's quorum key is the one EigenLayer's BLSApkRegistry computed on chain.
    let apk = d.bls_apk_registry.getApk(QUORUM).call().await.expect("getApk");
    assert_eq!((apk.X, apk.Y), g1_words(&a.quorum_apks[0].1), "quorumApks[0] is BLSApkRegistry's APK");

    let params = checker_input(&d, &response, reference_block).await;
    let checked = d
        .checker
        .checkSignatures(
            B256::from(response.digest),
            Bytes::from(vec![QUORUM]),
            reference_block,
            params.clone(),
        )
        .call()
        .await
        .expect("EigenLayer's BLSSignatureChecker accepts the aggregator's BN254 aggregate");
    let signed: Vec<u128> = checked._0.signedStakeForQuorum.iter().map(|s| s.to::<u128>()).collect();
    let total: Vec<u128> = checked._0.totalStakeForQuorum.iter().map(|s| s.to::<u128>()).collect();
    assert_eq!(signed, vec![u128::from(STAKES[0] + STAKES[2])], "signed stake: the two signers");
    assert_eq!(total, vec![u128::from(STAKES.iter().sum::<u64>())], "total stake: all three");
    // The signatory record: keccak256(abi.encodePacked(referenceBlockNumber, nonSignerIds)).
    let mut record = reference_block.to_be_bytes().to_vec();
    record.extend_from_slice(&keys[NON_SIGNER].operator_id());
    assert_eq!(checked._1, B256::from(keccak256(&record)), "signatory record hash");
    eprintln!(
        "checkSignatures accepted: signed {signed:?} of {total:?} at block {reference_block}, record {}",
        checked._1
    );

    // ---- forgeries, each refused by the contract itself ----
    let signers: Vec<&SecretKey> = SIGNERS.iter().map(|&i| &keys[i]).collect();
    let sum =
        |sigs: Vec<bn254::Signature>| bn254::aggregate_signatures(&sigs.iter().collect::<Vec<_>>()).unwrap();
    let invalid =
        |e: &MockAvsServiceManagerErrors| matches!(e, MockAvsServiceManagerErrors::InvalidBLSSignature(_));

    // The signers' signatures over another message.
    let other = keccak256(b"another task response");
    let mut forged = params.clone();
    forged.sigma = checker_g1(&sum(signers.iter().map(|sk| sk.sign(&other)).collect()).point());
    assert_refused(&d, response.digest, reference_block, forged, invalid, "signatures over another message")
        .await;

    // The right message signed by a key that was never registered, claimed as apkG2 too.
    let stranger = secret_key("unregistered operator");
    let mut forged = params.clone();
    forged.sigma = checker_g1(&stranger.sign(&response.digest).point());
    forged.apkG2 = checker_g2(&stranger.public_key().g2());
    assert_refused(
        &d,
        response.digest,
        reference_block,
        forged,
        invalid,
        "a signature by an unregistered key",
    )
    .await;

    // The signers' aggregate plus an unregistered key's signature, apkG2 unchanged.
    let mut forged = params.clone();
    let mut sigs: Vec<_> = signers.iter().map(|sk| sk.sign(&response.digest)).collect();
    sigs.push(stranger.sign(&response.digest));
    forged.sigma = checker_g1(&sum(sigs).point());
    assert_refused(&d, response.digest, reference_block, forged, invalid, "an extra unregistered signature")
        .await;

    // apkG2 of the first signer alone, while sigma is both signers'.
    let mut forged = params.clone();
    forged.apkG2 = checker_g2(&keys[SIGNERS[0]].public_key().g2());
    assert_refused(&d, response.digest, reference_block, forged, invalid, "apkG2 not the signers' sum").await;

    // Claiming the non-signer signed: no non-signers, sigma and apkG2 of the real signers.
    let mut forged = params.clone();
    forged.nonSignerPubkeys.clear();
    forged.nonSignerQuorumBitmapIndices.clear();
    forged.nonSignerStakeIndices = vec![Vec::new()];
    assert_refused(
        &d,
        response.digest,
        reference_block,
        forged,
        invalid,
        "the non-signer counted as a signer",
    )
    .await;

    // A quorum key other than the one BLSApkRegistry recorded (the signers' sum only).
    let mut forged = params.clone();
    forged.quorumApks = vec![checker_g1(&a.signers_apk_g1)];
    let bad_apk =
        |e: &MockAvsServiceManagerErrors| matches!(e, MockAvsServiceManagerErrors::InvalidQuorumApkHash(_));
    assert_refused(&d, response.digest, reference_block, forged, bad_apk, "a quorum key not on chain").await;

    // The digest is keccak256(abi.encode(taskResponse)), as the TaskManager hashes it.
    let r = &response.task_response;
    let encoded =
        (r.reference_task_index, U256::from_be_bytes(r.number_squared.to_be_bytes::<32>())).abi_encode();
    assert_eq!(keccak256(&encoded), response.digest);

    drop(anvil);
    eprintln!("on-chain signature check test: wall time {:?}", wall.elapsed());
}
