//! The whole AVS on a chain, end to end: the pinned Anvil (`SPACECORE_ANVIL`) with EigenLayer's
//! registries and BLSSignatureChecker (MockAvsServiceManager) and this project's registry
//! coordinator and TaskManager, deployed by `interop::avs::Deployment` (`SPACECORE_SOLCJS`
//! compiles the project's contracts); three operators whose BN254 keys are the key files the
//! CLI made and imported into their spacecores' disks, registered on chain with those keys; the
//! aggregator BINARY in chain mode, with ECDSA keystores made by `spacecore keys generate
//! --scheme ecdsa` as the TaskManager's task generator and aggregator; three spacecores (real
//! VMs on /dev/kvm) reading `NewTaskCreated` from Anvil through their `eth_rpc` relay and
//! sending their signatures to the aggregator.
//!
//! Checked, from the chain itself (`eth_getLogs` on the TaskManager, not our logs): every task
//! the aggregator created has exactly one `TaskResponded`, with the right square, sent by the
//! aggregator's account, with a successful receipt. One spacecore is killed after the first
//! tasks and started again after more were created: it misses none (its signing history on the
//! disk ends up holding every task, each with the digest of the right answer) and signs none
//! twice (the signatures its second boot made are exactly the tasks its history lacked when it
//! was killed; the others signed each task once; the aggregator accepted no operator twice for
//! a task).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use avs_protocol::TaskResponse;
use avs_protocol::bn254::SecretKey;
use eip2335::web3::BlsKeyFile;
use interop::avs::{self, Deployment, Roles, SpacecoreTaskManager};
use interop::chain::Anvil;
use serde_json::Value;
use spacecore_store::{FileDisk, RecordKey, Store};
use spacecore_tests::cluster::{AggregatorOptions, ChainSetup, Cluster, EcdsaKey, Tools, events};
use spacecore_tests::{connect, http, kvm_available};

/// Tasks the aggregator creates on chain.
const TASKS: u32 = 6;
/// Blocks on top of a task's block before the spacecores read it.
const CONFIRMATIONS: u64 = 2;
/// 60 %: two of the three equal stakes are enough, so tasks complete while a node is down.
const THRESHOLD: u32 = 60;
/// The spacecore killed and started again.
const VICTIM: usize = 1;
/// The longest any awaited state may take (a bound so a broken path fails, not a timing
/// assertion).
const LIMIT: Duration = Duration::from_secs(120);
/// Anvil mines a block for each transaction only; a miner thread adds one this often, so the
/// tasks get their confirmations as on a chain with a block time.
const BLOCK_INTERVAL: Duration = Duration::from_millis(250);

/// Panics loudly unless the tools `cargo xtask test` provides are set.
fn require_tools() {
    for var in ["SPACECORE_ANVIL", "SPACECORE_SOLCJS"] {
        match std::env::var_os(var).map(PathBuf::from) {
            Some(path) if path.is_file() => {}
            other => panic!(
                "!!! {var} is {other:?}: this test needs the pinned tool that `cargo xtask test` installs; run it \
                 through `cargo xtask test`, or first `eval \"$(cargo xtask chain-tools)\"` !!!"
            ),
        }
    }
}

/// The BN254 secret in an operator's eigensdk key file, as the operator's registration tool
/// reads it: the key the spacecore signs with is the key registered on chain.
fn key_file_secret(keyfile: &Path, password_file: &Path) -> SecretKey {
    let text = std::fs::read_to_string(keyfile).expect("read the key file");
    let password = std::fs::read_to_string(password_file).expect("read the password");
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let file = BlsKeyFile::from_json(&text).unwrap_or_else(|e| panic!("{}: {e:?}", keyfile.display()));
    let secret = file.decrypt(password.as_bytes()).unwrap_or_else(|e| panic!("{}: {e:?}", keyfile.display()));
    SecretKey::from_bytes(&secret).expect("a BN254 scalar")
}

/// The signing history on a spacecore's disk (the launcher must not run): its floor and its
/// (task index, digest signed) entries, decoded as `docs/guest.md` lays it out.
fn signing_history(disk: &Path) -> (u32, Vec<(u32, [u8; 32])>) {
    let file = std::fs::File::open(disk).expect("open the disk");
    let mut store = Store::open(FileDisk::new(file).expect("a disk")).expect("the disk's store");
    let Some(bytes) = store.get(RecordKey::SigningHistory).expect("read the history") else {
        return (0, Vec::new());
    };
    assert!(bytes.len() >= 7 && bytes[0] == 1, "history header: {bytes:?}");
    let floor = u32::from_le_bytes(bytes[1..5].try_into().unwrap());
    let count = usize::from(u16::from_le_bytes(bytes[5..7].try_into().unwrap()));
    assert_eq!(bytes.len(), 7 + count * 36, "history length");
    let entries = bytes[7..]
        .chunks(36)
        .map(|e| (u32::from_le_bytes(e[..4].try_into().unwrap()), e[4..].try_into().unwrap()))
        .collect();
    (floor, entries)
}

/// The last block the chain cursor on a spacecore's disk says was processed (every task of it
/// and of the blocks before was signed): incredible-squaring's record, decoded as
/// `avs/incredible-squaring/src/chain/cursor.rs` lays it out.
fn cursor_block(disk: &Path) -> Option<u64> {
    let file = std::fs::File::open(disk).expect("open the disk");
    let mut store = Store::open(FileDisk::new(file).expect("a disk")).expect("the disk's store");
    let bytes = store.get(RecordKey::AvsRecord).expect("read the cursor")?;
    assert!(bytes.len() == 69 && bytes[0] == 1, "cursor record: {bytes:?}");
    Some(u64::from_le_bytes(bytes[29..37].try_into().unwrap()))
}

/// The value of the unlabelled sample `name` in a node's metrics.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (_, body) = http(&mut connect(addr), "GET", "/metrics", b"");
    let text = String::from_utf8(body).expect("UTF-8 metrics");
    let line =
        text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
    line.rsplit(' ').next().unwrap().parse().expect("an integer sample")
}

/// Mines a block every [`BLOCK_INTERVAL`] until dropped.
struct Miner {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Miner {
    fn start(rt: &tokio::runtime::Handle, provider: alloy::providers::DynProvider) -> Miner {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (rt, stopping) = (rt.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                // A failed evm_mine (Anvil gone at the end) only ends the thread's work.
                if rt.block_on(avs::mine(&provider)).is_err() {
                    return;
                }
                thread::sleep(BLOCK_INTERVAL);
            }
        });
        Miner { stop, thread: Some(thread) }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The TaskManager's logs of `event` from block 0.
fn logs<E: SolEvent>(rt: &tokio::runtime::Runtime, d: &Deployment) -> Vec<(Log, E)> {
    let filter =
        Filter::new().address(*d.task_manager.address()).event_signature(E::SIGNATURE_HASH).from_block(0);
    let found = rt.block_on(d.provider.get_logs(&filter)).expect("eth_getLogs");
    found
        .into_iter()
        .map(|log| {
            let event = E::decode_log_data(log.data()).unwrap_or_else(|e| panic!("{}: {e}", E::SIGNATURE));
            (log, event)
        })
        .collect()
}

/// The tasks created so far, by index: the number to square and the task's block.
fn created(rt: &tokio::runtime::Runtime, d: &Deployment) -> BTreeMap<u32, (U256, u64)> {
    let mut tasks = BTreeMap::new();
    for (_, e) in logs::<SpacecoreTaskManager::NewTaskCreated>(rt, d) {
        let task = (e.task.numberToBeSquared, u64::from(e.task.taskCreatedBlock));
        assert!(tasks.insert(e.taskIndex, task).is_none(), "task {} created twice", e.taskIndex);
    }
    tasks
}

/// The `TaskResponded` events so far, with their logs.
fn responded(
    rt: &tokio::runtime::Runtime,
    d: &Deployment,
) -> Vec<(Log, SpacecoreTaskManager::TaskResponded)> {
    logs::<SpacecoreTaskManager::TaskResponded>(rt, d)
}

/// Waits (at most [`LIMIT`]) until `done` holds; panics with `what` and `context()` otherwise.
fn wait(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LIMIT, "never {what} within {LIMIT:?}:\n{}", context());
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tasks_created_on_chain_are_responded_on_chain_through_three_spacecores_across_a_restart() {
    require_tools();
    if !kvm_available(
        "tasks_created_on_chain_are_responded_on_chain_through_three_spacecores_across_a_restart",
    ) {
        return;
    }
    let wall = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // The operators and their spacecores' disks, keys imported, as an operator team makes them.
    let tools = Tools::for_tests();
    let mut cluster = Cluster::new(tools.clone(), "e2e", 3);
    let keys: Vec<SecretKey> = cluster
        .nodes
        .iter()
        .map(|n| key_file_secret(&n.operator.keystore, &n.operator.password_file))
        .collect();
    for (key, node) in keys.iter().zip(&cluster.nodes) {
        assert_eq!(key.public_key().operator_id(), node.operator.key.id, "{}", node.operator.name);
    }

    // The aggregator's accounts, from keystores the CLI made.
    let generator = EcdsaKey::generate(&tools.cli, cluster.dir(), "task-generator");
    let aggregator_key = EcdsaKey::generate(&tools.cli, cluster.dir(), "aggregator");
    let roles = Roles {
        task_generator: generator.address.parse().expect("the generator's address"),
        aggregator: aggregator_key.address.parse().expect("the aggregator's address"),
        response_window_blocks: 10_000,
    };

    let anvil = Anvil::start().unwrap_or_else(|e| panic!("cannot start the pinned Anvil: {e}"));
    let operators: Vec<avs::Operator> = keys
        .iter()
        .map(|k| avs::Operator { key: SecretKey::from_bytes(&k.to_bytes()).unwrap(), stake: 100 })
        .collect();
    let d = rt
        .block_on(Deployment::deploy(&anvil, &operators, roles))
        .unwrap_or_else(|e| panic!("cannot deploy: {e}"));
    eprintln!("compiled in {:?}, deployed and registered 3 operators in {:?}", d.compile_time, d.deploy_time);
    let _miner = Miner::start(rt.handle(), d.provider.clone());

    // The spacecores read the TaskManager's logs from Anvil.
    cluster.add_avs_fields(&format!(
        "eth_rpc = \"127.0.0.1:{}\"\ntask_manager = \"{}\"\nconfirmations = {CONFIRMATIONS}\n",
        anvil.port(),
        d.task_manager.address()
    ));
    cluster.start_all();
    let chain = ChainSetup {
        eth_rpc: anvil.endpoint(),
        task_manager: d.task_manager.address().to_string(),
        operator_state_retriever: d.retriever.address().to_string(),
        registry_coordinator: d.coordinator.address().to_string(),
        task_generator: generator,
        aggregator: aggregator_key,
    };
    let options = AggregatorOptions {
        tasks: TASKS,
        threshold: THRESHOLD,
        interval: Duration::from_secs(2),
        expiry: Duration::from_secs(60),
    };
    let mut aggregator = spacecore_tests::cluster::Aggregator::start_chain(
        &tools.aggregator,
        &chain,
        cluster.aggregator_addr,
        &options,
        cluster.dir(),
    );
    let context = |agg: &spacecore_tests::cluster::Aggregator| {
        format!("aggregator decisions: {:#?}\naggregator log:\n{}", agg.decisions(), agg.log_text())
    };

    // Two tasks responded on chain, then the victim is killed; started again once two more
    // tasks were created while it was down.
    wait("two tasks responded on chain", || responded(&rt, &d).len() >= 2, || context(&aggregator));
    let victim_http = cluster.nodes[VICTIM].http.unwrap();
    let signed_first_boot_lower = metric(victim_http, "incredible_squaring_tasks_signed_total");
    let killed_output = cluster.kill(VICTIM);
    let (_, before_kill) = signing_history(&cluster.nodes[VICTIM].disk);
    let recorded_at_kill: BTreeSet<u32> = before_kill.iter().map(|e| e.0).collect();
    let cursor_at_kill = cursor_block(&cluster.nodes[VICTIM].disk).expect("a chain cursor on the disk");
    assert!(
        recorded_at_kill.len() as u64 >= signed_first_boot_lower,
        "the history holds every signature counted: {recorded_at_kill:?}\n{killed_output}"
    );
    let created_at_kill = created(&rt, &d).len();
    wait(
        "two more tasks created while a spacecore was down",
        || created(&rt, &d).len() >= created_at_kill + 2,
        || context(&aggregator),
    );
    cluster.start(VICTIM);
    let victim_http = cluster.nodes[VICTIM].http.unwrap();

    // Every task responded on chain; the aggregator exits once it has them all.
    wait(
        "every task responded on chain",
        || responded(&rt, &d).len() >= TASKS as usize,
        || context(&aggregator),
    );
    assert_eq!(aggregator.finish(LIMIT), Some(0), "{}", context(&aggregator));
    // Every spacecore has signed every task (the victim those it lacked).
    let missing = TASKS as u64 - recorded_at_kill.len() as u64;
    wait(
        "the restarted spacecore signed the tasks it had not",
        || metric(victim_http, "incredible_squaring_tasks_signed_total") >= missing,
        || format!("history at the kill: {recorded_at_kill:?}; {}", context(&aggregator)),
    );
    for i in (0..3).filter(|&i| i != VICTIM) {
        let http = cluster.nodes[i].http.unwrap();
        wait(
            "a spacecore signed every task",
            || metric(http, "incredible_squaring_tasks_signed_total") >= TASKS.into(),
            || context(&aggregator),
        );
    }
    let signed: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| metric(n.http.unwrap(), "incredible_squaring_tasks_signed_total"))
        .collect();
    let slashing: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| {
            metric(n.http.unwrap(), "incredible_squaring_tasks_rejected_total{cause=\"slashing_protection\"}")
        })
        .collect();
    let mut outputs = Vec::new();
    for i in 0..3 {
        let (code, output) = cluster.stop(i);
        assert_eq!(code, Some(0), "{output}");
        outputs.push(output);
    }

    // ---- the chain's own record ----
    let tasks = created(&rt, &d);
    assert_eq!(tasks.keys().copied().collect::<Vec<_>>(), (0..TASKS).collect::<Vec<_>>(), "tasks created");
    let answers = responded(&rt, &d);
    let mut answered = BTreeSet::new();
    let mut gas = Vec::new();
    for (log, event) in &answers {
        let index = event.taskResponse.referenceTaskIndex;
        assert!(answered.insert(index), "task {index} responded twice on chain");
        let (n, _) = tasks.get(&index).unwrap_or_else(|| panic!("a response to task {index}, never created"));
        assert_eq!(event.taskResponse.numberSquared, n * n, "task {index}: the square on chain");
        let hash: B256 = log.transaction_hash.expect("a mined log");
        let receipt = rt
            .block_on(d.provider.get_transaction_receipt(hash))
            .expect("eth_getTransactionReceipt")
            .expect("the transaction is mined");
        assert!(receipt.status(), "task {index}: respondToTask succeeded");
        assert_eq!(receipt.from, d.roles.aggregator, "task {index}: sent by the aggregator's key");
        assert_eq!(
            u64::from(event.taskResponseMetadata.taskResponsedBlock),
            receipt.block_number.unwrap(),
            "task {index}"
        );
        let stored = rt
            .block_on(async { d.task_manager.allTaskResponses(index).call().await })
            .expect("allTaskResponses");
        assert_ne!(stored, B256::ZERO, "task {index}: the response is stored on chain");
        gas.push(receipt.gas_used);
    }
    assert_eq!(answered.len(), TASKS as usize, "every task responded on chain: {answered:?}");

    // ---- none missed, none signed twice ----
    for (i, node) in cluster.nodes.iter().enumerate() {
        let (floor, history) = signing_history(&node.disk);
        assert_eq!(floor, 0, "{}", node.operator.name);
        let indices: Vec<u32> = history.iter().map(|e| e.0).collect();
        assert_eq!(
            indices,
            (0..TASKS).collect::<Vec<_>>(),
            "{}: every task signed: {}",
            node.operator.name,
            outputs[i]
        );
        for (index, digest) in &history {
            let (n, _) = tasks[index];
            let square = n * n;
            let right = TaskResponse {
                reference_task_index: *index,
                number_squared: avs_protocol::U256::from_be_bytes(square.to_be_bytes::<32>()),
            };
            assert_eq!(
                *digest,
                right.digest(),
                "{}: task {index}: the right answer signed",
                node.operator.name
            );
        }
        assert_eq!(slashing[i], 0, "{}: no second answer attempted", node.operator.name);
        if i == VICTIM {
            // Its second boot read on from the cursor: it signed the tasks its history lacked,
            // and repeated (the same signature, from the history) only tasks signed after the
            // last block the cursor recorded, if the kill fell between the two writes.
            let repeats = recorded_at_kill.iter().filter(|t| tasks[*t].1 > cursor_at_kill).count() as u64;
            assert_eq!(
                signed[i],
                missing + repeats,
                "the restarted spacecore signed the {missing} tasks its history lacked ({recorded_at_kill:?} at the \
                 kill, cursor at block {cursor_at_kill}) and nothing else"
            );
        } else {
            assert_eq!(signed[i], u64::from(TASKS), "{}: each task signed once", node.operator.name);
        }
    }
    let decisions = aggregator.decisions();
    let mut accepted = BTreeMap::new();
    for r in events(&decisions, "response").filter(|r| r["accepted"] == true) {
        let key = (r["operator_id"].as_str().unwrap().to_owned(), r["task_index"].as_u64().unwrap());
        *accepted.entry(key).or_insert(0) += 1;
    }
    assert!(accepted.values().all(|&n| n == 1), "an operator accepted twice for a task: {accepted:?}");
    let victim_id = cluster.nodes[VICTIM].operator.key.id_hex();
    let chain_errors: Vec<&Value> = events(&decisions, "chain_error").collect();
    assert!(chain_errors.is_empty(), "no step on the chain failed: {chain_errors:?}");

    // ---- figures ----
    let mut latency: Vec<f64> = events(&decisions, "task_responded")
        .map(|l| l["create_to_responded_ms"].as_f64().expect("create_to_responded_ms"))
        .collect();
    assert_eq!(latency.len(), TASKS as usize, "a task_responded line per task");
    latency.sort_by(f64::total_cmp);
    let victim_accepted = accepted.keys().filter(|(id, _)| *id == victim_id).count();
    eprintln!(
        "{TASKS} tasks created on chain and responded on chain through 3 spacecores ({} confirmations, a block every \
         {BLOCK_INTERVAL:?}); spacecore {VICTIM} killed with {} tasks signed, restarted, signed {missing} more; \
         aggregator accepted {victim_accepted} of its responses; respondToTask gas {gas:?}; createNewTask to \
         TaskResponded min {:.0} ms, median {:.0} ms, max {:.0} ms; wall time {:?}",
        CONFIRMATIONS,
        recorded_at_kill.len(),
        latency[0],
        latency[latency.len() / 2],
        latency[latency.len() - 1],
        wall.elapsed()
    );
    drop(anvil);
}
