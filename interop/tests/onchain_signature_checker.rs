//! EigenLayer's own BLSSignatureChecker, run on a local Anvil, checking what this project's
//! BN254 code and aggregator produce.
//!
//! Deployed: EigenLayer's BLSApkRegistry, StakeRegistry, IndexRegistry, OperatorStateRetriever
//! and MockAvsServiceManager (which inherits BLSSignatureChecker), from the creation bytecode
//! eigensdk-rs publishes in `eigen-utils`, over EigenLayer's core contracts; and this project's
//! own `SpacecoreRegistryCoordinator` (`interop/contracts/`, compiled with the pinned solc-js;
//! the deployment is `interop::avs::Deployment`, shared with the TaskManager test), because
//! EigenLayer publishes no RegistryCoordinator bytecode. Three operators register as an
//! operator does (EigenLayer operator, deposit, AVS registration), with BN254 keys made by
//! `avs_protocol::bn254` (BLSApkRegistry checks each registration signature) and stakes in
//! quorum 0. Two of them answer a task through the aggregator's
//! `AggregationService`; its BN254 aggregate becomes the `NonSignerStakesAndSignature`, and
//! `checkSignatures` must return the two signers' stake out of all three. Forged aggregates
//! must revert with the checker's own errors.
//!
//! Needs `SPACECORE_ANVIL` and `SPACECORE_SOLCJS` (`cargo xtask test` sets them); fails without.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::operators::{G1Key, G2Key, OperatorEntry};
use aggregator::{
    Aggregate, AggregatedResponse, AggregationService, Bn254Aggregate, DecisionLog, OperatorSet,
};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol_types::SolValue;
use avs_protocol::bn254::{self, SecretKey};
use avs_protocol::encoding::to_hex;
use avs_protocol::scheme::DigestSigner;
use avs_protocol::{NewTask, SignedTaskResponse, Task, keccak256};
use eigen_utils::slashing::middleware::bls_apk_registry::BLSApkRegistry::BLSApkRegistryErrors;
use eigen_utils::slashing::sdk::mock_avs_service_manager::IBLSSignatureCheckerTypes::NonSignerStakesAndSignature;
use eigen_utils::slashing::sdk::mock_avs_service_manager::MockAvsServiceManager::MockAvsServiceManagerErrors;
use interop::avs::{
    self, Deployment, QUORUM, Roles, SpacecoreRegistryCoordinator, checker_g1, checker_g2, g1_words,
    g2_words, registration, secret_key,
};
use interop::chain::{self, Anvil};

/// The operators' stakes in quorum 0 (shares of one strategy, weighed 1:1).
const STAKES: [u64; 3] = [1_000, 2_000, 3_000];
/// Which operators sign: the first and the third (4000 of 6000 stake).
const SIGNERS: [usize; 2] = [0, 2];
const NON_SIGNER: usize = 1;

/// Deploys everything and registers `keys` with `STAKES`; then checks a registered key cannot
/// be registered again by another address.
async fn deploy_all(anvil: &Anvil, keys: &[SecretKey], accounts: &[Address]) -> Deployment {
    let operators: Vec<avs::Operator> = keys
        .iter()
        .zip(STAKES)
        .map(|(key, stake)| avs::Operator { key: SecretKey::from_bytes(&key.to_bytes()).unwrap(), stake })
        .collect();
    // The TaskManager is not used here; its roles are two of Anvil's accounts.
    let roles = Roles { task_generator: accounts[6], aggregator: accounts[7], response_window_blocks: 100 };
    let d = Deployment::deploy(anvil, &operators, roles)
        .await
        .unwrap_or_else(|e| panic!("cannot deploy the AVS: {e}"));
    eprintln!("solc-js compiled the project's contracts in {:?}", d.compile_time);
    // Once registered, the same key cannot be registered again by another address.
    let again = registration(&d.coordinator, &keys[0], accounts[5]).await.expect("registration parameters");
    let refused = |e: &BLSApkRegistryErrors| matches!(e, BLSApkRegistryErrors::BLSPubkeyAlreadyRegistered(_));
    assert_registration_refused(&d.coordinator, accounts[5], again, refused, "a key registered twice").await;
    for (i, (operator, key)) in d.operators.iter().zip(keys).enumerate() {
        assert_eq!(
            operator.id,
            B256::from(key.public_key().operator_id()),
            "operator {i}: EigenLayer's id is ours"
        );
    }
    d
}

/// A registration by `operator` must revert with BLSApkRegistry's own `expected` error.
async fn assert_registration_refused(
    coordinator: &SpacecoreRegistryCoordinator::ISpacecoreRegistryCoordinatorInstance<DynProvider>,
    operator: Address,
    params: SpacecoreRegistryCoordinator::PubkeyRegistrationParams,
    expected: fn(&BLSApkRegistryErrors) -> bool,
    what: &str,
) {
    // BLSApkRegistry checks the key before the AVSDirectory checks the ECDSA registration
    // signature, so an empty one does not hide the key's refusal.
    let no_signature = SpacecoreRegistryCoordinator::SignatureWithSaltAndExpiry {
        signature: Bytes::new(),
        salt: B256::ZERO,
        expiry: U256::ZERO,
    };
    let result = coordinator
        .registerOperator(Bytes::from(vec![QUORUM]), params, no_signature)
        .from(operator)
        .call()
        .await;
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
    let mut params = registration(&d.coordinator, &sk, operator).await.expect("registration parameters");
    params.pubkeyRegistrationSignature = registration(&d.coordinator, &sk, other)
        .await
        .expect("registration parameters")
        .pubkeyRegistrationSignature;
    assert_registration_refused(
        &d.coordinator,
        operator,
        params,
        wrong_message,
        "a signature over another operator's message",
    )
    .await;
    let mut params = registration(&d.coordinator, &sk, operator).await.expect("registration parameters");
    let (x, y) = g2_words(&secret_key("another secret").public_key().g2());
    params.pubkeyG2 = spacecore_operator::abi::G2Point { X: x, Y: y };
    assert_registration_refused(
        &d.coordinator,
        operator,
        params,
        wrong_message,
        "a G2 key of another secret",
    )
    .await;
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

    assert!(accounts.len() >= 8, "Anvil has ten accounts");
    let d = deploy_all(&anvil, &keys, &accounts).await;
    eprintln!("deployed, quorum created and 3 operators registered in {:?}", d.deploy_time);
    forged_registrations(&d, accounts[4], accounts[5]).await;

    // The task's reference block is the latest block, which holds every registration; one
    // more block makes it strictly in the past, as checkSignatures requires.
    let reference_block = u32::try_from(d.provider.get_block_number().await.expect("block number")).unwrap();
    avs::mine(&d.provider).await.expect("mine a block");

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

    // Each forgery, with what it is.
    let mut forgeries = Vec::new();
    // The signers' signatures over another message.
    let other = keccak256(b"another task response");
    let mut forged = params.clone();
    forged.sigma = checker_g1(&sum(signers.iter().map(|sk| sk.sign(&other)).collect()).point());
    forgeries.push((forged, "signatures over another message"));

    // The right message signed by a key that was never registered, claimed as apkG2 too.
    let stranger = secret_key("unregistered operator");
    let mut forged = params.clone();
    forged.sigma = checker_g1(&stranger.sign(&response.digest).point());
    forged.apkG2 = checker_g2(&stranger.public_key().g2());
    forgeries.push((forged, "a signature by an unregistered key"));

    // The signers' aggregate plus an unregistered key's signature, apkG2 unchanged.
    let mut forged = params.clone();
    let mut sigs: Vec<_> = signers.iter().map(|sk| sk.sign(&response.digest)).collect();
    sigs.push(stranger.sign(&response.digest));
    forged.sigma = checker_g1(&sum(sigs).point());
    forgeries.push((forged, "an extra unregistered signature"));

    // apkG2 of the first signer alone, while sigma is both signers'.
    let mut forged = params.clone();
    forged.apkG2 = checker_g2(&keys[SIGNERS[0]].public_key().g2());
    forgeries.push((forged, "apkG2 not the signers' sum"));

    // Claiming the non-signer signed: no non-signers, sigma and apkG2 of the real signers.
    let mut forged = params.clone();
    forged.nonSignerPubkeys.clear();
    forged.nonSignerQuorumBitmapIndices.clear();
    forged.nonSignerStakeIndices = vec![Vec::new()];
    forgeries.push((forged, "the non-signer counted as a signer"));

    for (forged, what) in forgeries {
        assert_refused(&d, response.digest, reference_block, forged, invalid, what).await;
    }

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
