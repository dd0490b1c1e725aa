//! A spacecore reads its tasks from a real Ethereum node: the pinned Anvil (`SPACECORE_ANVIL`,
//! provided by `cargo xtask test`) with this project's own test contract
//! `tests/contracts/SpacecoreTestTaskManager.sol` (compiled with the pinned solc-js,
//! `SPACECORE_SOLCJS`), which emits the incredible-squaring TaskManager's `NewTaskCreated`.
//! The spacecore's `[spec.avs]` names Anvil as `eth_rpc` (relayed into its namespace by the
//! launcher), the contract as `task_manager`, and 2 confirmations. A JSON-RPC server in this
//! test plays the aggregator and records what the node sends it.
//!
//! Checked: tasks created on chain are signed once they have two blocks on top, and not
//! before; the signatures verify with the operator's BN254 key; a spacecore killed in the
//! middle and started again reads the tasks created meanwhile and signs none twice; a
//! reorganisation deeper than the confirmations (Anvil's `evm_revert`) is seen, the blocks are
//! read again, repeats carry the same signatures and a changed task is refused; a killed Anvil
//! makes the `ethereum` service `Down` with the reason while the node keeps serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use avs_protocol::SignedTaskResponse;
use avs_protocol::encoding::to_hex;
use serde_json::{Value, json};
use spacecore_tests::cluster::{Cluster, NodeSetup, Tools, free_port};
use spacecore_tests::{connect, http, kvm_available, log_lines};

/// Whether the guest said a line starting with `start` in `output` (a launcher's JSON log).
fn guest_said(output: &str, start: &str) -> bool {
    log_lines(output).iter().any(|l| l.guest(start).is_some())
}

const CONFIRMATIONS: u64 = 2;
/// The longest any awaited state may take to come.
const LIMIT: Duration = Duration::from_secs(60);
const CONTRACT: &str = "SpacecoreTestTaskManager";

/// The path in `var`: a tool `cargo xtask test` provides. Missing, the test fails, loudly.
fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(path) if path.is_file() => path,
        other => panic!(
            "!!! {var} is {other:?}: this test needs the pinned tool that `cargo xtask test` installs; run it \
             through `cargo xtask test`, or first `eval \"$(cargo xtask chain-tools)\"` !!!"
        ),
    }
}

/// A JSON-RPC call to the Ethereum node on `port`: its result (panics on an error).
fn rpc(port: u16, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut stream = connect(SocketAddr::from(([127, 0, 0, 1], port)));
    let (status, answer) = spacecore_tests::http_json(&mut stream, "POST", "/", body.as_bytes());
    let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{method}: {answer}");
    assert!(answer["error"].is_null(), "{method}: {answer}");
    answer["result"].clone()
}

fn quantity(value: &Value) -> u64 {
    u64::from_str_radix(value.as_str().expect("a quantity").trim_start_matches("0x"), 16).expect("hex")
}

/// Anvil on a free loopback port, killed when dropped.
struct Anvil {
    child: Child,
    port: u16,
}

impl Anvil {
    fn start() -> Anvil {
        let path = tool("SPACECORE_ANVIL");
        let port = free_port().port();
        let child = Command::new(&path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        let anvil = Anvil { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < LIMIT, "Anvil does not listen on {port}");
            thread::sleep(Duration::from_millis(20));
        }
        anvil
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The test contract compiled with solc-js (by interop's compiler): its creation bytecode (hex)
/// and the selectors of the two methods the tests call.
fn compile() -> (String, Value) {
    let source = include_str!("contracts/SpacecoreTestTaskManager.sol");
    let mut compiled = interop::chain::compile(&[("SpacecoreTestTaskManager.sol", source)]).expect("solc-js");
    let contract =
        compiled.remove(&format!("SpacecoreTestTaskManager.sol:{CONTRACT}")).expect("the contract");
    let selector = |signature: &str| {
        let hash = alloy::primitives::keccak256(signature.as_bytes());
        hash[..4].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let methods = json!({
        "createNewTask(uint256)": selector("createNewTask(uint256)"),
        "emitUnrelated(uint32)": selector("emitUnrelated(uint32)"),
    });
    (contract.bytecode.iter().map(|b| format!("{b:02x}")).collect(), methods)
}

/// The receipt of transaction `hash`, once it is mined (Anvil mines each one, but may answer
/// before it did).
fn receipt(port: u16, hash: &Value) -> Value {
    let started = Instant::now();
    loop {
        let receipt = rpc(port, "eth_getTransactionReceipt", json!([hash]));
        if !receipt.is_null() {
            return receipt;
        }
        assert!(started.elapsed() < LIMIT, "transaction {hash} never mined");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The chain: Anvil, the deployed contract, and how to call it.
struct Chain {
    anvil: Anvil,
    from: String,
    contract: String,
    methods: Value,
}

impl Chain {
    fn deploy() -> Chain {
        let anvil = Anvil::start();
        let (bytecode, methods) = compile();
        let from = rpc(anvil.port, "eth_accounts", json!([]))[0].as_str().unwrap().to_owned();
        let tx =
            rpc(anvil.port, "eth_sendTransaction", json!([{"from": from, "data": format!("0x{bytecode}")}]));
        let receipt = receipt(anvil.port, &tx);
        let contract = receipt["contractAddress"].as_str().expect("a contract address").to_owned();
        let chain = Chain { anvil, from, contract, methods };
        // A node starts reading after the confirmed head it first sees: give it one.
        chain.mine(CONFIRMATIONS);
        chain
    }

    fn send(&self, data: String) {
        let tx = json!([{"from": self.from, "to": self.contract, "data": data}]);
        let hash = rpc(self.anvil.port, "eth_sendTransaction", tx);
        let receipt = receipt(self.anvil.port, &hash);
        assert_eq!(receipt["status"], "0x1", "{receipt}");
    }

    /// `createNewTask(n)` (mined in a block of its own: Anvil mines each transaction).
    fn create_task(&self, n: u64) {
        let selector = self.methods["createNewTask(uint256)"].as_str().unwrap();
        self.send(format!("0x{selector}{n:064x}"));
    }

    fn emit_unrelated(&self, index: u32) {
        let selector = self.methods["emitUnrelated(uint32)"].as_str().unwrap();
        self.send(format!("0x{selector}{index:064x}"));
    }

    fn mine(&self, blocks: u64) {
        rpc(self.anvil.port, "anvil_mine", json!([format!("{blocks:#x}")]));
    }

    fn head(&self) -> u64 {
        quantity(&rpc(self.anvil.port, "eth_blockNumber", json!([])))
    }
}

/// A JSON-RPC server playing the aggregator: records every `process_signed_task_response` and
/// accepts it; answers a probe (`GET /`) 405. Stops when dropped, or by itself after 10 minutes.
struct FakeAggregator {
    received: Arc<Mutex<Vec<SignedTaskResponse>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeAggregator {
    fn start(addr: SocketAddr) -> FakeAggregator {
        let listener = TcpListener::bind(addr).expect("bind the aggregator's address");
        listener.set_nonblocking(true).unwrap();
        let (received, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (store, stopping) = (received.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(600);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < end {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &store),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeAggregator { received, stop, thread: Some(thread) }
    }

    fn received(&self) -> Vec<SignedTaskResponse> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until responses for `count` distinct tasks came.
    fn wait_for(&self, count: usize) -> Vec<SignedTaskResponse> {
        let started = Instant::now();
        loop {
            let got = self.received();
            let mut indices: Vec<u32> = got.iter().map(|r| r.task_response.reference_task_index).collect();
            indices.sort_unstable();
            indices.dedup();
            if indices.len() >= count {
                return got;
            }
            assert!(started.elapsed() < LIMIT, "only tasks {indices:?} reached the aggregator");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FakeAggregator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request on `stream` (at most 64 KiB): records a signed response, answers.
fn serve(mut stream: TcpStream, store: &Mutex<Vec<SignedTaskResponse>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0usize);
            if buf.len() >= end + length {
                break (end, length);
            }
        }
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 && buf.len() < 64 * 1024 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let answer = if buf.starts_with(b"GET ") {
        "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    } else {
        let request: Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
        assert_eq!(request["method"], "process_signed_task_response", "{request}");
        let signed: SignedTaskResponse =
            serde_json::from_value(request["params"].clone()).expect("a response");
        store.lock().unwrap().push(signed);
        let body = json!({"jsonrpc": "2.0", "result": true, "id": request["id"]}).to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(answer.as_bytes());
}

/// `GET /chain` of the node (incredible-squaring's).
fn chain_state(addr: SocketAddr) -> Value {
    let (status, body) = http(&mut connect(addr), "GET", "/chain", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("JSON")
}

/// Waits until the node's chain state satisfies `done`.
fn wait_chain(addr: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let state = chain_state(addr);
        if done(&state) {
            return state;
        }
        assert!(started.elapsed() < LIMIT, "never {what}: {state}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the unlabelled sample `name` in the node's metrics.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (_, body) = http(&mut connect(addr), "GET", "/metrics", b"");
    let text = String::from_utf8(body).unwrap();
    let line =
        text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn tasks_are_read_from_the_chain_across_a_restart_and_an_ethereum_node_down() {
    if !kvm_available("tasks_are_read_from_the_chain_across_a_restart_and_an_ethereum_node_down") {
        return;
    }
    let mut chain = Chain::deploy();
    let port = chain.anvil.port;
    let setup = NodeSetup {
        tables: format!(
            "eth_rpc = \"127.0.0.1:{port}\"\ntask_manager = \"{}\"\nconfirmations = {CONFIRMATIONS}\n",
            chain.contract
        ),
        ..NodeSetup::default()
    };
    let mut cluster = Cluster::with_setup(Tools::for_tests(), "chain", 1, &setup);
    let aggregator = FakeAggregator::start(cluster.aggregator_addr);
    cluster.start(0);
    let node = cluster.nodes[0].http.unwrap();
    let key = cluster.nodes[0].registered.bn254_key();
    let id = to_hex(&cluster.nodes[0].operator.key.id);

    // First contact: the cursor is the block two below the head; Up.
    let first = wait_chain(node, "reading", |s| s["status"] == "Up" && !s["processed_block"].is_null());
    assert_eq!(first["chain_id"], 31337, "{first}");
    assert_eq!(first["task_manager"], chain.contract.to_lowercase(), "{first}");
    let (_, health) = http(&mut connect(node), "GET", "/eigen/node/services/ethereum/health", b"");
    assert!(health.is_empty());

    // Three tasks and an unrelated event of the same contract, then two blocks on top.
    for n in [10, 11, 12] {
        chain.create_task(n);
    }
    chain.emit_unrelated(1);
    chain.mine(CONFIRMATIONS);
    let got = aggregator.wait_for(3);
    assert_eq!(got.len(), 3, "each signed once: {got:?}");
    for signed in &got {
        let index = signed.task_response.reference_task_index;
        let n = 10 + u64::from(index);
        assert_eq!(signed.task_response.number_squared, avs_protocol::U256::from(n * n), "task {index}");
        assert_eq!(to_hex(&signed.operator_id), id);
        signed.verify(key).unwrap_or_else(|e| panic!("task {index}: {e:?}"));
    }
    assert_eq!(metric(node, "incredible_squaring_chain_tasks_total"), 3);
    assert_eq!(metric(node, "incredible_squaring_tasks_signed_total"), 3);
    // Tasks come from the chain only: a task posted to the node's port is refused, unsigned.
    let posted = br#"{"task_index":40,"task":{"number_to_be_squared":"3","task_created_block":1,"quorum_numbers":"0x00","quorum_threshold_percentage":67}}"#;
    let (status, body) = http(&mut connect(node), "POST", "/task", posted);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert_eq!(metric(node, "incredible_squaring_tasks_signed_total"), 3);
    let (_, text) = http(&mut connect(node), "GET", "/metrics", b"");
    let (valid, said) = spacecore_tests::promtool_check(&text);
    assert!(valid, "promtool: {said}");

    // A task with one block on top is seen (the head moves past it) but not signed.
    chain.create_task(13);
    chain.mine(1);
    let head = chain.head();
    let state = wait_chain(node, "at the head", |s| s["head"] == head && s["processed_block"] == head - 2);
    assert_eq!(metric(node, "incredible_squaring_chain_tasks_total"), 3, "{state}");
    assert_eq!(aggregator.received().len(), 3, "task 3 has one confirmation of two");

    // Killed, tasks come meanwhile, started again from the same disk.
    let output = cluster.kill(0);
    assert!(guest_said(&output, "incredible-squaring: chain: reading NewTaskCreated"), "{output}");
    chain.create_task(14);
    chain.create_task(15);
    chain.mine(CONFIRMATIONS);
    cluster.start(0);
    let node = cluster.nodes[0].http.unwrap();
    let got = aggregator.wait_for(6);
    let mut indices: Vec<u32> = got.iter().map(|r| r.task_response.reference_task_index).collect();
    indices.sort_unstable();
    assert_eq!(indices, [0, 1, 2, 3, 4, 5], "none missed, none sent twice");
    wait_chain(node, "caught up", |s| s["processed_block"] == chain.head() - CONFIRMATIONS);
    assert_eq!(
        metric(node, "incredible_squaring_tasks_signed_total"),
        3,
        "after the restart only tasks 3, 4, 5 were signed"
    );
    assert_eq!(metric(node, "incredible_squaring_tasks_rejected_total{cause=\"slashing_protection\"}"), 0);

    // A reorganisation deeper than the confirmations: task 6 (squaring 100) is signed, then the
    // chain is reverted under it and task 6 comes again, squaring 200, in other blocks. The node
    // sees its last block replaced, reads again, and refuses the second answer to task 6; the
    // tasks it reads again are repeats, sent with the very same signatures.
    let before: Vec<SignedTaskResponse> = aggregator.received();
    let snapshot = rpc(port, "evm_snapshot", json!([]));
    chain.create_task(100);
    chain.mine(CONFIRMATIONS);
    let got = aggregator.wait_for(7);
    let first = got.iter().find(|r| r.task_response.reference_task_index == 6).copied().unwrap();
    assert_eq!(first.task_response.number_squared, avs_protocol::U256::from(10_000u32));
    wait_chain(node, "past task 6", |s| s["processed_block"] == chain.head() - CONFIRMATIONS);
    assert_eq!(rpc(port, "evm_revert", json!([snapshot])), json!(true));
    chain.create_task(200);
    chain.mine(CONFIRMATIONS + 2);
    let state = wait_chain(node, "reorganised", |s| {
        s["reorgs"] == 1 && s["processed_block"] == chain.head() - CONFIRMATIONS
    });
    let refused = metric(node, "incredible_squaring_tasks_rejected_total{cause=\"slashing_protection\"}");
    assert_eq!(refused, 1, "the second answer to task 6 is refused: {state}");
    assert_eq!(metric(node, "incredible_squaring_chain_reorgs_total"), 1);
    for response in aggregator.received() {
        let index = response.task_response.reference_task_index;
        let earlier = before.iter().chain([&first]).find(|r| r.task_response.reference_task_index == index);
        assert_eq!(Some(&response), earlier, "task {index}: only the answers signed before, unchanged");
    }

    // The Ethereum node dies: Down with the reason; the node goes on serving.
    chain.anvil.kill();
    let down = wait_chain(node, "down", |s| s["status"] == "Down");
    assert!(down["reason"].as_str().unwrap().contains("Ethereum node"), "{down}");
    let (status, _) = http(&mut connect(node), "GET", "/eigen/node/services/ethereum/health", b"");
    assert_eq!(status, 503);
    let (status, _) = http(&mut connect(node), "GET", "/eigen/node/health", b"");
    assert_eq!(status, 206, "partially healthy: tasks cannot be read");
    let (status, _) = http(&mut connect(node), "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(metric(node, "incredible_squaring_chain_rpc_errors_total") >= 1);
    let (code, output) = cluster.stop(0);
    assert_eq!(code, Some(0), "{output}");
    assert!(guest_said(&output, "incredible-squaring: chain: ethereum down"), "{output}");
    let reorg = "(a reorganisation deeper than 2 confirmations): reading again";
    let lines = log_lines(&output);
    assert!(
        lines.iter().any(|l| l.guest("incredible-squaring: chain: ").is_some_and(|m| m.contains(reorg))),
        "{output}"
    );
    assert!(guest_said(&output, "incredible-squaring: chain: task 6 of block"), "{output}");
    drop(aggregator);
}
