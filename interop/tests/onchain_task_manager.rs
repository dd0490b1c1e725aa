//! The aggregator on chain: it creates incredible-squaring tasks on this project's
//! `SpacecoreTaskManager`, reads each task's operator set from EigenLayer's registries at the
//! task's block, aggregates the operators' BN254 responses and sends `respondToTask`, whose
//! signature check is EigenLayer's own BLSSignatureChecker (MockAvsServiceManager, from
//! eigen-utils' bytecode). Every task must end in a `TaskResponded` event with the right square.
//!
//! The operators are played by the test: it reads `NewTaskCreated` from the chain as a node
//! does, signs with `avs_protocol::bn254` and posts to the aggregator's JSON-RPC on loopback.
//! Then the contract itself must refuse, with its named errors: a correctly signed wrong
//! answer, a forged aggregate (EigenLayer's checker), signed stake under the threshold, a
//! replayed response, a changed task and another sender.
//!
//! Needs `SPACECORE_ANVIL` and `SPACECORE_SOLCJS` (`cargo xtask test` sets them); fails without.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use SpacecoreTaskManager::ISpacecoreTaskManagerErrors as TaskManagerErrors;
use aggregator::chain::abi::{G1Point, G2Point, NonSignerStakesAndSignature};
use aggregator::chain::keys::load_signer;
use aggregator::decision_log::MemoryLog;
use aggregator::{Aggregator, ChainConfig, Config, DecisionLog, GeneratorConfig, Numbers};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use avs_protocol::bn254::{self, SecretKey};
use avs_protocol::scheme::DigestSigner;
use avs_protocol::{SignedTaskResponse, Task, TaskResponse, keccak256};
use eip2335::Kdf;
use eip2335::web3::EcdsaKeystore;
use interop::avs::{self, Deployment, Roles, SpacecoreTaskManager, g1_words, g2_words, secret_key};
use interop::chain::Anvil;
use serde_json::{Value, json};

/// The operators' stakes in quorum 0.
const STAKES: [u64; 3] = [1_000, 2_000, 3_000];
/// Operators 0 and 2 sign (4000 of 6000, 66 %); operator 1 answers wrongly and is refused.
const SIGNERS: [usize; 2] = [0, 2];
const WRONG: usize = 1;
/// Tasks the aggregator creates.
const TASKS: u32 = 5;
/// The tasks' threshold: 60 %, met by the two signers.
const THRESHOLD: u32 = 60;
/// Longest the whole on-chain round may take before the test fails (not a timing assertion:
/// a bound so a broken chain path fails instead of hanging).
const ROUND_LIMIT: Duration = Duration::from_secs(120);

fn ecdsa_key(label: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::from(keccak256(label.as_bytes()))).expect("a valid secp256k1 key")
}

/// Writes `key` as an Ethereum v3 keystore (cheap PBKDF2: a test) and its password file.
fn write_keystore(
    dir: &Path,
    name: &str,
    key: &PrivateKeySigner,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let password = format!("{name} password");
    let secret: [u8; 32] = key.to_bytes().0;
    let file = EcdsaKeystore::encrypt(
        &secret,
        password.as_bytes(),
        Some(key.address().0.0),
        Kdf::Pbkdf2 { c: 1024 },
        keccak256(format!("{name} salt").as_bytes()),
        keccak256(format!("{name} iv").as_bytes())[..16].try_into().unwrap(),
        "1c7c1b2e-8b7a-4c55-9d3c-0f5a2b6c7d8e",
    )
    .expect("encrypt the keystore");
    let keystore = dir.join(format!("{name}.json"));
    let password_file = dir.join(format!("{name}.password"));
    std::fs::write(&keystore, file.to_json()).unwrap();
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    (keystore, password_file)
}

/// One JSON-RPC call to the aggregator over a fresh HTTP/1.1 connection; the answer's JSON.
fn post(addr: SocketAddr, body: &Value) -> Value {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).expect("connect to the aggregator");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the aggregator answers");
    let (_, json) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
}

/// Posts `signed`, retrying while the aggregator has not registered the task yet (1001: the
/// operators can read the event before the aggregator has read the task's operator set).
async fn answer(addr: SocketAddr, signed: SignedTaskResponse) -> Value {
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "process_signed_task_response", "params": signed});
    for _ in 0..400 {
        let request = request.clone();
        let reply = tokio::task::spawn_blocking(move || post(addr, &request)).await.unwrap();
        if reply["error"]["code"] != 1001 {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the aggregator never registered task {}", signed.task_response.reference_task_index);
}

/// The operators: read `NewTaskCreated` from the chain (as a node does), then the signers
/// answer rightly and operator `WRONG` with a wrong square. Returns the tasks seen.
async fn play_operators(
    provider: DynProvider,
    task_manager: Address,
    keys: Arc<Vec<SecretKey>>,
    rpc: SocketAddr,
) -> Vec<(u32, Task)> {
    // The topic a node filters on, from the event's canonical signature.
    let topic = B256::from(keccak256(b"NewTaskCreated(uint32,(uint256,uint32,bytes,uint32))"));
    assert_eq!(topic, SpacecoreTaskManager::NewTaskCreated::SIGNATURE_HASH);
    let mut seen = BTreeSet::new();
    let mut tasks = Vec::new();
    let started = Instant::now();
    while seen.len() < TASKS as usize {
        assert!(started.elapsed() < ROUND_LIMIT, "only {} tasks seen on chain", seen.len());
        let filter = Filter::new().address(task_manager).event_signature(topic).from_block(0);
        let logs = provider.get_logs(&filter).await.expect("eth_getLogs");
        for log in logs {
            let event =
                log.log_decode::<SpacecoreTaskManager::NewTaskCreated>().expect("a NewTaskCreated event");
            let SpacecoreTaskManager::NewTaskCreated { taskIndex, task } = event.inner.data;
            if !seen.insert(taskIndex) {
                continue;
            }
            let task = Task {
                number_to_be_squared: avs_protocol::U256::from_be_bytes(
                    task.numberToBeSquared.to_be_bytes::<32>(),
                ),
                task_created_block: task.taskCreatedBlock,
                quorum_numbers: task.quorumNumbers.to_vec(),
                quorum_threshold_percentage: task.quorumThresholdPercentage,
            };
            // The task hash the TaskManager stored (`keccak256(abi.encode(task))`) is ours: the
            // hash a pushed task's authorization signs (`avs_protocol::intake`).
            let stored = SpacecoreTaskManager::new(task_manager, &provider)
                .allTaskHashes(taskIndex)
                .call()
                .await
                .expect("allTaskHashes");
            assert_eq!(stored, B256::from(task.hash()), "task {taskIndex}: keccak256(abi.encode(task))");
            let response = task.respond(taskIndex).expect("a valid task");
            let wrong = TaskResponse {
                number_squared: response.number_squared + avs_protocol::U256::from(1u8),
                ..response
            };
            for (i, key) in keys.iter().enumerate() {
                let answered = if i == WRONG { wrong } else { response };
                let signed = SignedTaskResponse {
                    task_response: answered,
                    signature: key.sign_digest(&answered.digest()),
                    operator_id: key.operator_id(),
                };
                let reply = answer(rpc, signed).await;
                if i == WRONG {
                    assert_eq!(
                        reply["error"]["code"], 1003,
                        "our aggregator refuses a wrong answer: {reply}"
                    );
                } else {
                    assert_eq!(reply["result"], true, "operator {i}, task {taskIndex}: {reply}");
                }
            }
            tasks.push((taskIndex, task));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tasks
}

/// The checker's input for `message` signed by `signers` at `reference_block`, built by hand
/// (the aggregator refuses to aggregate a wrong answer): σ and apkG2 of the signers, the other
/// operators as non-signers, quorum 0's key of all, indices from OperatorStateRetriever.
async fn params_by_hand(
    d: &Deployment,
    keys: &[SecretKey],
    signers: &[usize],
    message: &[u8; 32],
    reference_block: u32,
) -> NonSignerStakesAndSignature {
    let g1 = |p: &bn254::G1Point| {
        let (x, y) = g1_words(p);
        G1Point { X: x, Y: y }
    };
    let sigs: Vec<bn254::Signature> = signers.iter().map(|&i| keys[i].sign(message)).collect();
    let sigma = bn254::aggregate_signatures(&sigs.iter().collect::<Vec<_>>()).unwrap();
    let g2s: Vec<bn254::G2Point> = signers.iter().map(|&i| keys[i].public_key().g2()).collect();
    let apk_g2 = bn254::aggregate_g2(&g2s.iter().collect::<Vec<_>>()).unwrap();
    let all: Vec<bn254::G1Point> = keys.iter().map(|k| k.public_key().g1()).collect();
    let quorum_apk = bn254::aggregate_g1(&all.iter().collect::<Vec<_>>()).unwrap();
    let mut non_signers: Vec<&SecretKey> =
        (0..keys.len()).filter(|i| !signers.contains(i)).map(|i| &keys[i]).collect();
    non_signers.sort_by_key(|k| k.operator_id());
    let ids: Vec<B256> = non_signers.iter().map(|k| B256::from(k.operator_id())).collect();
    let indices = d
        .retriever
        .getCheckSignaturesIndices(
            *d.coordinator.address(),
            reference_block,
            Bytes::from(vec![avs::QUORUM]),
            ids,
        )
        .call()
        .await
        .expect("getCheckSignaturesIndices");
    let (x, y) = g2_words(&apk_g2);
    NonSignerStakesAndSignature {
        nonSignerQuorumBitmapIndices: indices.nonSignerQuorumBitmapIndices,
        nonSignerPubkeys: non_signers.iter().map(|k| g1(&k.public_key().g1())).collect(),
        quorumApks: vec![g1(&quorum_apk)],
        apkG2: G2Point { X: x, Y: y },
        sigma: g1(&sigma.point()),
        quorumApkIndices: indices.quorumApkIndices,
        totalStakeIndices: indices.totalStakeIndices,
        nonSignerStakeIndices: indices.nonSignerStakeIndices,
    }
}

/// Creates a task from the (impersonated) generator and returns it as the contract hashed it,
/// with its index; one more block is mined so its block is in the past.
async fn create_task(d: &Deployment, number: u64, threshold: u32) -> (u32, SpacecoreTaskManager::Task) {
    let tx = d
        .task_manager
        .createNewTask(U256::from(number), threshold, Bytes::from(vec![avs::QUORUM]))
        .from(d.roles.task_generator)
        .into_transaction_request();
    let receipt = avs::send(&d.provider, tx, "createNewTask").await.unwrap();
    let event = receipt
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<SpacecoreTaskManager::NewTaskCreated>().ok())
        .expect("NewTaskCreated");
    avs::mine(&d.provider).await.unwrap();
    (event.inner.data.taskIndex, event.inner.data.task)
}

/// The aggregator in chain mode on `chain`, JSON-RPC and metrics on free loopback ports.
fn chain_config(
    chain: ChainConfig,
    task_expiry: Duration,
    generator: Option<GeneratorConfig>,
    decision_log: DecisionLog,
) -> Config {
    Config {
        operators: None,
        chain: Some(chain),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics: "127.0.0.1:0".parse().unwrap(),
        task_expiry,
        generator,
        decision_log,
    }
}

/// `respondToTask` from `from` must revert with the TaskManager's (or the checker's) `expected`
/// error, both as a call and as a mined transaction (gas given, so no estimate refuses it first).
async fn assert_reverts(
    d: &Deployment,
    from: Address,
    task: &SpacecoreTaskManager::Task,
    response: SpacecoreTaskManager::TaskResponse,
    params: NonSignerStakesAndSignature,
    expected: fn(&TaskManagerErrors) -> bool,
    what: &str,
) {
    let call = d.task_manager.respondToTask(task.clone(), response.clone(), params.clone()).from(from);
    let error = match call.call().await {
        Ok(_) => panic!("{what}: respondToTask accepted it"),
        Err(e) => e,
    };
    let decoded = error.as_decoded_interface_error::<TaskManagerErrors>();
    assert!(decoded.as_ref().is_some_and(expected), "{what}: reverted with {decoded:?} ({error})");
    let tx = d
        .task_manager
        .respondToTask(task.clone(), response, params)
        .from(from)
        .gas(3_000_000)
        .into_transaction_request();
    let receipt = d
        .provider
        .send_transaction(tx)
        .await
        .expect("send respondToTask")
        .get_receipt()
        .await
        .expect("a receipt");
    assert!(!receipt.status(), "{what}: the transaction was mined as a success");
    eprintln!(
        "refused by the contract as expected, {what}: {decoded:?} (mined and reverted, gas {})",
        receipt.gas_used
    );
}

fn lines(memory: &MemoryLog, event: &str) -> Vec<Value> {
    memory.lines().into_iter().filter(|l| l["event"] == event).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregator_creates_tasks_and_respond_to_task_passes_eigenlayers_checker() {
    let wall = Instant::now();
    let anvil = Anvil::start().unwrap_or_else(|e| panic!("cannot start the pinned Anvil: {e}"));
    let keys: Vec<SecretKey> = (0..3).map(|i| secret_key(&format!("task manager operator {i}"))).collect();
    let generator_key = ecdsa_key("spacecore test task generator");
    let aggregator_key = ecdsa_key("spacecore test aggregator");
    let roles = Roles {
        task_generator: generator_key.address(),
        aggregator: aggregator_key.address(),
        response_window_blocks: 100,
    };
    let operators: Vec<avs::Operator> = keys
        .iter()
        .zip(STAKES)
        .map(|(k, stake)| avs::Operator { key: SecretKey::from_bytes(&k.to_bytes()).unwrap(), stake })
        .collect();
    let d =
        Deployment::deploy(&anvil, &operators, roles).await.unwrap_or_else(|e| panic!("cannot deploy: {e}"));
    eprintln!("compiled in {:?}, deployed and registered 3 operators in {:?}", d.compile_time, d.deploy_time);

    // The aggregator's binding has the TaskManager's selectors and event topics.
    use aggregator::chain::abi::TaskManager as Ours;
    assert_eq!(Ours::createNewTaskCall::SELECTOR, SpacecoreTaskManager::createNewTaskCall::SELECTOR);
    assert_eq!(Ours::respondToTaskCall::SELECTOR, SpacecoreTaskManager::respondToTaskCall::SELECTOR);
    assert_eq!(Ours::NewTaskCreated::SIGNATURE_HASH, SpacecoreTaskManager::NewTaskCreated::SIGNATURE_HASH);
    assert_eq!(Ours::TaskResponded::SIGNATURE_HASH, SpacecoreTaskManager::TaskResponded::SIGNATURE_HASH);
    for (name, selector) in [
        ("createNewTask", SpacecoreTaskManager::createNewTaskCall::SELECTOR),
        ("respondToTask", SpacecoreTaskManager::respondToTaskCall::SELECTOR),
    ] {
        let compiled = d.task_manager_abi.as_array().into_iter().flatten().find(|f| f["name"] == name);
        assert!(compiled.is_some(), "the compiled TaskManager has {name}");
        let f: alloy::json_abi::Function = serde_json::from_value(compiled.unwrap().clone()).unwrap();
        assert_eq!(f.selector().0, selector, "{name}: the compiled contract's selector");
    }

    // The keys, from Ethereum v3 keystores as an operator of the aggregator would have them.
    let dir = tempfile::tempdir().unwrap();
    let (generator_keystore, generator_password) = write_keystore(dir.path(), "generator", &generator_key);
    let (aggregator_keystore, aggregator_password) =
        write_keystore(dir.path(), "aggregator", &aggregator_key);
    let chain = ChainConfig {
        rpc_url: anvil.endpoint(),
        task_manager: *d.task_manager.address(),
        operator_state_retriever: *d.retriever.address(),
        registry_coordinator: *d.coordinator.address(),
        task_generator: load_signer(&generator_keystore, &generator_password)
            .expect("the generator's keystore"),
        aggregator: load_signer(&aggregator_keystore, &aggregator_password)
            .expect("the aggregator's keystore"),
        tx_timeout: Duration::from_secs(30),
    };
    assert_eq!(chain.task_generator.address(), generator_key.address());

    // The aggregator refuses to start on a configuration the chain contradicts.
    let refused = |mut bad: ChainConfig, expected: &'static str| async move {
        bad.tx_timeout = Duration::from_secs(5);
        let config = chain_config(bad, Duration::from_secs(5), None, DecisionLog::memory().0);
        let error = format!("{:#}", Aggregator::start(config).await.expect_err(expected));
        assert!(error.contains(expected), "{error}");
        eprintln!("refused to start as expected: {error}");
    };
    let mut bad = chain.clone();
    bad.aggregator = generator_key.clone();
    refused(bad, "but the TaskManager's aggregator is").await;
    let mut bad = chain.clone();
    bad.task_manager = d.roles.aggregator;
    refused(bad, "no contract at this address").await;

    let (log, memory) = DecisionLog::memory();
    let generator = Some(GeneratorConfig {
        interval: Duration::from_millis(100),
        tasks: Some(TASKS),
        quorum_numbers: vec![avs::QUORUM],
        threshold_percentage: THRESHOLD,
        numbers: Numbers::Sequential,
        seed: 1,
        first_block: 1,
        delivery_timeout: Duration::from_secs(1),
        // On chain, tasks are created on the TaskManager, not pushed.
        task_signer: None,
    });
    let config = chain_config(chain, Duration::from_secs(60), generator, log);
    let round = Instant::now();
    let mut aggregator = Aggregator::start(config).await.expect("the aggregator starts on chain");
    let keys = Arc::new(keys);
    let watcher = tokio::spawn(play_operators(
        d.provider.clone(),
        *d.task_manager.address(),
        Arc::clone(&keys),
        aggregator.rpc_addr,
    ));
    assert_eq!(aggregator.wait_generator().await, Some(TASKS), "every task created and registered");
    let tasks = tokio::time::timeout(ROUND_LIMIT, watcher).await.expect("the operators finish").unwrap();
    assert!(aggregator.drain(ROUND_LIMIT).await, "every task responded on chain");
    let round_time = round.elapsed();
    let metrics = aggregator.service.metrics().render();
    aggregator.shutdown().await;

    // Every task: created by the aggregator, responded with TaskResponded and the right square.
    let created = lines(&memory, "chain_task_created");
    let responded = lines(&memory, "task_responded");
    let errors = lines(&memory, "chain_error");
    assert!(errors.is_empty(), "no step on the chain failed: {errors:?}");
    assert_eq!(created.len(), TASKS as usize, "{created:?}");
    assert_eq!(responded.len(), TASKS as usize, "{responded:?}");
    let mut gas = Vec::new();
    let mut latency = Vec::new();
    for (index, task) in &tasks {
        let line = responded.iter().find(|l| l["task_index"] == *index).expect("a task_responded line");
        let hash: B256 = line["tx_hash"].as_str().unwrap().parse().unwrap();
        let receipt =
            d.provider.get_transaction_receipt(hash).await.unwrap().expect("the transaction is mined");
        assert!(receipt.status(), "task {index}: respondToTask succeeded");
        assert_eq!(receipt.from, d.roles.aggregator, "sent by the aggregator's key");
        let event = receipt
            .logs()
            .iter()
            .filter(|l| l.address() == *d.task_manager.address())
            .find_map(|l| l.log_decode::<SpacecoreTaskManager::TaskResponded>().ok())
            .expect("TaskResponded in the receipt")
            .inner
            .data;
        let square = task.number_to_be_squared * task.number_to_be_squared;
        assert_eq!(event.taskResponse.referenceTaskIndex, *index);
        assert_eq!(event.taskResponse.numberSquared, U256::from_be_bytes(square.to_be_bytes::<32>()));
        assert_eq!(line["number_squared"], square.to_string());
        assert_eq!(u64::from(event.taskResponseMetadata.taskResponsedBlock), receipt.block_number.unwrap());
        // The non-signer record EigenLayer's checker returned: keccak256(referenceBlock ‖ ids).
        let mut record = task.task_created_block.to_be_bytes().to_vec();
        record.extend_from_slice(&keys[WRONG].operator_id());
        assert_eq!(event.taskResponseMetadata.hashOfNonSigners, B256::from(keccak256(&record)));
        let stored = d.task_manager.allTaskResponses(*index).call().await.unwrap();
        assert_ne!(stored, B256::ZERO, "task {index}: the response is stored");
        assert_eq!(line["gas_used"], receipt.gas_used);
        gas.push(receipt.gas_used);
        latency.push(line["create_to_responded_ms"].as_f64().unwrap());
    }
    assert!(
        metrics.contains(&format!("aggregator_chain_responses_total{{result=\"responded\"}} {TASKS}")),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("aggregator_chain_tasks_created_total {TASKS}")), "{metrics}");
    assert!(metrics.contains(&format!("aggregator_chain_task_seconds_count {TASKS}")), "{metrics}");
    latency.sort_by(f64::total_cmp);
    eprintln!(
        "{TASKS} tasks responded on chain in {round_time:?}: respondToTask gas {gas:?}; createNewTask to TaskResponded \
         min {:.1} ms, median {:.1} ms, max {:.1} ms",
        latency[0],
        latency[latency.len() / 2],
        latency[latency.len() - 1]
    );

    // ---- the contract itself refuses ----
    let aggregator_account = d.roles.aggregator;
    for account in [d.roles.task_generator, aggregator_account] {
        let _: Value = d.provider.raw_request("anvil_impersonateAccount".into(), (account,)).await.unwrap();
    }
    let right = |index: u32, n: u64| SpacecoreTaskManager::TaskResponse {
        referenceTaskIndex: index,
        numberSquared: U256::from(n * n),
    };
    let digest = |r: &SpacecoreTaskManager::TaskResponse| {
        TaskResponse {
            reference_task_index: r.referenceTaskIndex,
            number_squared: avs_protocol::U256::from_be_bytes(r.numberSquared.to_be_bytes::<32>()),
        }
        .digest()
    };

    // Each refusal: who sends which response, with which aggregate, for which task; what the
    // contract must revert with.
    type Expected = fn(&TaskManagerErrors) -> bool;
    type Refusal<'a> = (
        Address,
        &'a SpacecoreTaskManager::Task,
        SpacecoreTaskManager::TaskResponse,
        NonSignerStakesAndSignature,
        Expected,
        &'static str,
    );

    let (index, task) = create_task(&d, 7, THRESHOLD).await;
    // A wrong answer, correctly signed by the two signers: EigenLayer's checker accepts the
    // signature, the TaskManager refuses the answer.
    let wrong =
        SpacecoreTaskManager::TaskResponse { referenceTaskIndex: index, numberSquared: U256::from(50u8) };
    let wrong_params = params_by_hand(&d, &keys, &SIGNERS, &digest(&wrong), task.taskCreatedBlock).await;
    // A forged aggregate: the right answer, sigma over another message.
    let response = right(index, 7);
    let mut forged = params_by_hand(&d, &keys, &SIGNERS, &digest(&response), task.taskCreatedBlock).await;
    forged.sigma = params_by_hand(&d, &keys, &SIGNERS, &keccak256(b"another message"), task.taskCreatedBlock)
        .await
        .sigma;
    // Another sender, and a changed task.
    let params = params_by_hand(&d, &keys, &SIGNERS, &digest(&response), task.taskCreatedBlock).await;
    let mut changed = task.clone();
    changed.quorumThresholdPercentage = 1;
    let refusals: [Refusal; 4] = [
        (
            aggregator_account,
            &task,
            wrong,
            wrong_params,
            |e| matches!(e, TaskManagerErrors::WrongAnswer(w) if w.expected == U256::from(49u8) && w.answered == U256::from(50u8)),
            "a correctly signed wrong answer",
        ),
        (
            aggregator_account,
            &task,
            response.clone(),
            forged,
            |e| matches!(e, TaskManagerErrors::InvalidBLSSignature(_)),
            "a forged aggregate (EigenLayer's checker)",
        ),
        (
            d.roles.task_generator,
            &task,
            response.clone(),
            params.clone(),
            |e| matches!(e, TaskManagerErrors::NotAggregator(_)),
            "a response not from the aggregator",
        ),
        (
            aggregator_account,
            &changed,
            response.clone(),
            params.clone(),
            |e| matches!(e, TaskManagerErrors::TaskMismatch(_)),
            "a task other than the one created",
        ),
    ];
    for (from, task, response, params, expected, what) in refusals {
        assert_reverts(&d, from, task, response, params, expected, what).await;
    }

    // The right aggregate goes through once, by hand too; a replay is refused.
    let tx = d
        .task_manager
        .respondToTask(task.clone(), response.clone(), params.clone())
        .from(aggregator_account)
        .into_transaction_request();
    let receipt =
        avs::send(&d.provider, tx, "respondToTask by hand").await.expect("the right aggregate is accepted");
    eprintln!("respondToTask by hand (2 of 3 signers): gas {}", receipt.gas_used);

    // Signed stake below the task's threshold: 4000 of 6000 is 66 %, the task asks 90 %.
    let (index, demanding) = create_task(&d, 11, 90).await;
    let short = right(index, 11);
    let short_params = params_by_hand(&d, &keys, &SIGNERS, &digest(&short), demanding.taskCreatedBlock).await;
    let refusals: [Refusal; 2] = [
        (
            aggregator_account,
            &task,
            response,
            params,
            |e| matches!(e, TaskManagerErrors::TaskAlreadyResponded(_)),
            "a second response to a task",
        ),
        (
            aggregator_account,
            &demanding,
            short,
            short_params,
            |e| {
                matches!(e, TaskManagerErrors::QuorumBelowThreshold(q)
                    if q.signedStake.to::<u64>() == 4_000 && q.totalStake.to::<u64>() == 6_000 && q.thresholdPercentage == 90)
            },
            "signed stake below the threshold",
        ),
    ];
    for (from, task, response, params, expected, what) in refusals {
        assert_reverts(&d, from, task, response, params, expected, what).await;
    }

    drop(anvil);
    eprintln!("on-chain TaskManager test: wall time {:?}", wall.elapsed());
}
