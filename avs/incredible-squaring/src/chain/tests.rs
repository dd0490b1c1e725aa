use super::*;
use crate::outbox::Aggregator;
use crate::tests::TestNode;
use crate::{IncredibleSquaringAvs, Stats};
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec;
use alloy_sol_types::SolEvent;
use avs_protocol::U256;
use event::{NewTaskCreated, SolTask};

// --- NewTaskCreated decoding, against vectors made by an independent encoder ---------------------

// Made by `vectors.py` (next to this file) with Python's eth-abi 5.2.0 and eth-hash 0.7.1.
// topic0 = keccak256("NewTaskCreated(uint32,(uint256,uint32,bytes,uint32))")
const TOPIC0_HEX: &str = "0x1695b8d06ec800b4615e745cfb5bd00c1f2875615d42925c3b5afa543bb24c48";
#[rustfmt::skip]
const VECTORS: &[(u32, &str, &str, u32, &str, u32, &str)] = &[
    (0, "0x0000000000000000000000000000000000000000000000000000000000000000", "0x9", 100, "0x00", 100, "0x0000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000000900000000000000000000000000000000000000000000000000000000000000640000000000000000000000000000000000000000000000000000000000000080000000000000000000000000000000000000000000000000000000000000006400000000000000000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000000000000"),
    (7, "0x0000000000000000000000000000000000000000000000000000000000000007", "0x3", 1, "0x0001", 67, "0x0000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000000300000000000000000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000000000080000000000000000000000000000000000000000000000000000000000000004300000000000000000000000000000000000000000000000000000000000000020001000000000000000000000000000000000000000000000000000000000000"),
    (4294967295, "0x00000000000000000000000000000000000000000000000000000000ffffffff", "0xffffffffffffffffffffffffffffffff", 4294967295, "0x", 0, "0x000000000000000000000000000000000000000000000000000000000000002000000000000000000000000000000000ffffffffffffffffffffffffffffffff00000000000000000000000000000000000000000000000000000000ffffffff000000000000000000000000000000000000000000000000000000000000008000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
    (42, "0x000000000000000000000000000000000000000000000000000000000000002a", "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 12345678, "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627", 100, "0x0000000000000000000000000000000000000000000000000000000000000020ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0000000000000000000000000000000000000000000000000000000000bc614e000000000000000000000000000000000000000000000000000000000000008000000000000000000000000000000000000000000000000000000000000000640000000000000000000000000000000000000000000000000000000000000028000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627000000000000000000000000000000000000000000000000"),
];

fn bytes(hex: &str) -> Vec<u8> {
    rpc::parse_bytes(hex, usize::MAX).unwrap()
}

fn word(hex: &str) -> [u8; 32] {
    rpc::parse_fixed(hex).unwrap()
}

fn u256(hex: &str) -> U256 {
    U256::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn the_topic_is_keccak_of_the_signature() {
    assert_eq!(event::TOPIC0, word(TOPIC0_HEX));
    assert_eq!(event::SIGNATURE, "NewTaskCreated(uint32,(uint256,uint32,bytes,uint32))");
}

#[test]
fn eth_abi_vectors_decode() {
    for &(index, topic, number, block, quorums, threshold, data) in VECTORS {
        let task = event::decode(&[event::TOPIC0, word(topic)], &bytes(data)).unwrap();
        assert_eq!(task.task_index, index);
        assert_eq!(task.task.number_to_be_squared, u256(number));
        assert_eq!(task.task.task_created_block, block);
        assert_eq!(task.task.quorum_numbers, bytes(quorums));
        assert_eq!(task.task.quorum_threshold_percentage, threshold);
    }
}

#[test]
fn hostile_logs_are_refused() {
    let (_, topic, _, _, _, _, data) = VECTORS[1];
    let (topics, data) = ([event::TOPIC0, word(topic)], bytes(data));
    assert!(event::decode(&topics, &data).is_ok());
    // Topics: too few, too many, another event, an index word with bits above 32.
    assert!(event::decode(&topics[..1], &data).is_err());
    assert!(event::decode(&[topics[0], topics[1], topics[1]], &data).is_err());
    assert!(event::decode(&[[0x11; 32], topics[1]], &data).is_err());
    let mut dirty = topics[1];
    dirty[0] = 1;
    assert!(event::decode(&[topics[0], dirty], &data).is_err());
    // Data cut anywhere, one byte more, a word more.
    for len in 0..data.len() {
        assert!(event::decode(&topics, &data[..len]).is_err(), "cut at {len}");
    }
    let mut longer = data.clone();
    longer.push(0);
    assert!(event::decode(&topics, &longer).is_err());
    longer.extend_from_slice(&[0; 31]);
    assert!(event::decode(&topics, &longer).is_err(), "trailing word");
    // Dirty high bits of the uint32 fields, a non-canonical or huge offset, a huge length,
    // dirty padding after the bytes.
    for (at, what) in [
        (32 + 32 + 27, "taskCreatedBlock high bits"),
        (32 + 96 + 27, "threshold high bits"),
        (31, "outer offset"),
        (32 + 64 + 31, "bytes offset"),
        (32 + 128 + 24, "bytes length"),
        (32 + 160 + 5, "padding"),
    ] {
        let mut bad = data.clone();
        bad[at] ^= 0x40;
        assert!(event::decode(&topics, &bad).is_err(), "{what}");
    }
    // Every single-bit flip of the data either fails or decodes to another task: never a panic.
    let good = event::decode(&topics, &data).unwrap();
    for at in 0..data.len() {
        for bit in 0..8 {
            let mut flipped = data.clone();
            flipped[at] ^= 1 << bit;
            if let Ok(task) = event::decode(&topics, &flipped) {
                assert_ne!(task, good, "byte {at} bit {bit}");
            }
        }
    }
}

#[test]
fn too_many_quorums_are_refused() {
    let encode = |n: usize| {
        let task = SolTask {
            numberToBeSquared: alloy_primitives::U256::from(3u8),
            taskCreatedBlock: 1,
            quorumNumbers: vec![0u8; n].into(),
            quorumThresholdPercentage: 50,
        };
        NewTaskCreated { taskIndex: 1, task }.encode_log_data()
    };
    let ok = encode(event::MAX_QUORUMS);
    let topics: Vec<[u8; 32]> = ok.topics().iter().map(|t| t.0).collect();
    assert_eq!(event::decode(&topics, &ok.data).unwrap().task.quorum_numbers.len(), event::MAX_QUORUMS);
    let over = encode(event::MAX_QUORUMS + 1);
    assert!(event::decode(&topics, &over.data).unwrap_err().contains("quorum numbers"));
    // A length far beyond the data is refused without allocating it.
    let huge = encode(1_000_000);
    assert!(event::decode(&topics, &huge.data).is_err());
}

// --- JSON-RPC answers ------------------------------------------------------------------------

#[test]
fn quantities_are_strict() {
    assert_eq!(rpc::parse_quantity("0x0"), Ok(0));
    assert_eq!(rpc::parse_quantity("0x1a"), Ok(26));
    assert_eq!(rpc::parse_quantity("0xFF"), Ok(255));
    assert_eq!(rpc::parse_quantity("0xffffffffffffffff"), Ok(u64::MAX));
    for bad in
        ["", "0x", "0", "12", "0x00", "0x01", "0x1ffffffffffffffff", "0x-1", "0x+1", "0x1g", " 0x1", "0X1"]
    {
        assert!(rpc::parse_quantity(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn byte_strings_are_strict() {
    assert_eq!(rpc::parse_bytes("0x", 4), Ok(vec![]));
    assert_eq!(rpc::parse_bytes("0x00Ff", 4), Ok(vec![0, 255]));
    for bad in ["", "00", "0x0", "0x0g", "0x 0", "0xé0"] {
        assert!(rpc::parse_bytes(bad, 4).is_err(), "{bad:?}");
    }
    assert!(rpc::parse_bytes("0x0000000000", 4).is_err(), "over the limit");
    assert!(rpc::parse_fixed::<2>("0x0102").is_ok());
    assert!(rpc::parse_fixed::<2>("0x01").is_err());
    assert!(rpc::parse_fixed::<2>("0x010203").is_err());
}

#[test]
fn answers_must_be_json_rpc_of_the_call() {
    assert_eq!(rpc::read_quantity(br#"{"jsonrpc":"2.0","id":3,"result":"0x10"}"#, 3), Ok(16));
    let error =
        rpc::read_quantity(br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"nope"}}"#, 3);
    assert_eq!(error, Err(RpcError::Node { code: -32000, message: "nope".into() }));
    for bad in [
        &br#"{"jsonrpc":"2.0","id":4,"result":"0x10"}"#[..],
        br#"{"jsonrpc":"1.0","id":3,"result":"0x10"}"#,
        br#"{"id":3,"result":"0x10"}"#,
        br#"{"jsonrpc":"2.0","id":3,"result":16}"#,
        br#"{"jsonrpc":"2.0","id":3,"result":null}"#,
        br#"{"jsonrpc":"2.0","id":"3","result":"0x10"}"#,
        br#"{"jsonrpc":"2.0","id":3,"result":"0x10"} x"#,
        b"<html>502</html>",
        b"",
    ] {
        assert!(rpc::read_quantity(bad, 3).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    let long =
        alloc::format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":1,"message":"{}"}}}}"#, "é".repeat(200));
    let Err(RpcError::Node { message, .. }) = rpc::read_quantity(long.as_bytes(), 1) else { panic!() };
    assert!(message.len() <= 160);
    // A block of another number, a null block.
    let block = br#"{"jsonrpc":"2.0","id":1,"result":{"number":"0x5","hash":"0x1111111111111111111111111111111111111111111111111111111111111111"}}"#;
    assert_eq!(rpc::read_block_hash(block, 1, 5), Ok(Some([0x11; 32])));
    assert!(rpc::read_block_hash(block, 1, 6).is_err());
    assert_eq!(rpc::read_block_hash(br#"{"jsonrpc":"2.0","id":1,"result":null}"#, 1, 6), Ok(None));
}

fn log_json(address: &str, topics: &[&str], block: &str) -> String {
    let topics: Vec<String> = topics.iter().map(|t| alloc::format!("\"{t}\"")).collect();
    alloc::format!(
        r#"{{"address":"{address}","topics":[{}],"data":"0x","blockNumber":{block},"blockHash":"0x{}","logIndex":"0x0","transactionHash":"0x{}","removed":false}}"#,
        topics.join(","),
        "22".repeat(32),
        "33".repeat(32)
    )
}

#[test]
fn logs_are_read_strictly() {
    let address = alloc::format!("0x{}", "ab".repeat(20));
    let answer =
        |logs: &[String]| alloc::format!(r#"{{"jsonrpc":"2.0","id":9,"result":[{}]}}"#, logs.join(","));
    let good = log_json(&address, &[TOPIC0_HEX], "\"0x5\"");
    let logs = rpc::read_logs(answer(core::slice::from_ref(&good)).as_bytes(), 9, 5, 6).unwrap();
    assert_eq!((logs[0].block, logs[0].address, logs[0].topics[0]), (5, [0xab; 20], event::TOPIC0));
    for bad in [
        log_json(&address, &[TOPIC0_HEX], "\"0x4\""),
        log_json(&address, &[TOPIC0_HEX], "\"0x7\""),
        log_json(&address, &[TOPIC0_HEX], "null"),
        log_json(&address, &[TOPIC0_HEX; 5], "\"0x5\""),
        log_json("0xabab", &[TOPIC0_HEX], "\"0x5\""),
        log_json(&address, &["0x1234"], "\"0x5\""),
    ] {
        assert!(rpc::read_logs(answer(core::slice::from_ref(&bad)).as_bytes(), 9, 5, 6).is_err(), "{bad}");
    }
    let many = vec![good; rpc::MAX_LOGS + 1];
    assert!(rpc::read_logs(answer(&many).as_bytes(), 9, 5, 6).is_err());
}

#[test]
fn the_cursor_record_round_trips_and_refuses_others() {
    let cursor = Cursor { chain_id: 31337, task_manager: [7; 20], block: 1 << 40, hash: [9; 32] };
    let bytes = cursor.encode();
    assert_eq!(bytes.len(), cursor::LEN);
    assert_eq!(Cursor::decode(&bytes), Ok(cursor));
    assert!(Cursor::decode(&bytes[..68]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Cursor::decode(&longer).is_err());
    let mut version = bytes;
    version[0] = 2;
    assert!(Cursor::decode(&version).is_err());
}

// --- The watcher against a simulated Ethereum node ------------------------------------------

const TM: [u8; 20] = [0x5f; 20];
const OTHER: [u8; 20] = [0x66; 20];

#[derive(Clone)]
struct FakeLog {
    address: [u8; 20],
    topics: Vec<[u8; 32]>,
    data: Vec<u8>,
}

fn task_log(index: u32, number: u64) -> FakeLog {
    let task = SolTask {
        numberToBeSquared: alloy_primitives::U256::from(number),
        taskCreatedBlock: 1,
        quorumNumbers: vec![0u8].into(),
        quorumThresholdPercentage: 100,
    };
    let log = NewTaskCreated { taskIndex: index, task }.encode_log_data();
    FakeLog { address: TM, topics: log.topics().iter().map(|t| t.0).collect(), data: log.data.to_vec() }
}

/// A chain (blocks by number, each with its hash and logs) behind a JSON-RPC answering machine.
struct FakeNode {
    chain_id: u64,
    /// Block `n`: its fork tag (part of its hash) and its logs.
    blocks: Vec<(u8, Vec<FakeLog>)>,
    down: bool,
    garbage: bool,
    /// `eth_getLogs` answers longer than this are "too long" (as the HTTP reader says).
    max_body: usize,
    methods: Vec<String>,
}

impl FakeNode {
    fn new(blocks: usize) -> Self {
        FakeNode {
            chain_id: 31337,
            blocks: vec![(0, Vec::new()); blocks],
            down: false,
            garbage: false,
            max_body: usize::MAX,
            methods: Vec::new(),
        }
    }

    fn hash(&self, n: usize) -> [u8; 32] {
        let mut hash = [0u8; 32];
        hash[0] = self.blocks[n].0;
        hash[24..].copy_from_slice(&(n as u64).to_be_bytes());
        hash
    }

    /// Mines a block with these logs.
    fn mine(&mut self, logs: Vec<FakeLog>) {
        self.blocks.push((0, logs));
    }

    /// Replaces the blocks from `from` on with `fork`-tagged ones (the same logs unless given).
    fn reorg(&mut self, from: usize, fork: u8) {
        for block in &mut self.blocks[from..] {
            block.0 = fork;
        }
    }

    fn answer(&mut self, body: &[u8]) -> Result<Reply, String> {
        if self.down {
            return Err("connection refused or reset".into());
        }
        let request: serde_json::Value = serde_json::from_slice(body).unwrap();
        let (id, method) = (request["id"].as_u64().unwrap(), request["method"].as_str().unwrap().to_string());
        self.methods.push(method.clone());
        if self.garbage {
            return Ok(Reply {
                status: 200,
                body: b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[1,2]".to_vec(),
            });
        }
        let param = |i: usize| request["params"][i].clone();
        let quantity = |v: &serde_json::Value| rpc::parse_quantity(v.as_str().unwrap()).unwrap() as usize;
        let result = match method.as_str() {
            "eth_chainId" => alloc::format!("\"{:#x}\"", self.chain_id),
            "eth_blockNumber" => alloc::format!("\"{:#x}\"", self.blocks.len() - 1),
            "eth_getBlockByNumber" => {
                let n = quantity(&param(0));
                if n < self.blocks.len() {
                    alloc::format!(
                        r#"{{"number":"{n:#x}","hash":"{}","parentHash":"0x00"}}"#,
                        rpc::hex(&self.hash(n))
                    )
                } else {
                    "null".into()
                }
            }
            "eth_getLogs" => {
                let filter = param(0);
                let (from, to) = (quantity(&filter["fromBlock"]), quantity(&filter["toBlock"]));
                let mut logs = Vec::new();
                for n in from..=to.min(self.blocks.len() - 1) {
                    for (i, log) in self.blocks[n].1.iter().enumerate() {
                        // The filter is not applied: the watcher must ignore what is not its.
                        let topics: Vec<String> =
                            log.topics.iter().map(|t| alloc::format!("\"{}\"", rpc::hex(t))).collect();
                        logs.push(alloc::format!(
                            r#"{{"address":"{}","topics":[{}],"data":"{}","blockNumber":"{n:#x}","blockHash":"{}","logIndex":"{i:#x}","removed":false}}"#,
                            rpc::hex(&log.address),
                            topics.join(","),
                            rpc::hex(&log.data),
                            rpc::hex(&self.hash(n))
                        ));
                    }
                }
                let body = alloc::format!("[{}]", logs.join(","));
                if body.len() > self.max_body {
                    return Err(REPLY_TOO_LONG.into());
                }
                body
            }
            other => panic!("unexpected method {other}"),
        };
        let body = alloc::format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
        Ok(Reply { status: 200, body: body.into_bytes() })
    }
}

/// A node's disk: the AVS's record (the chain cursor) and the signing history.
#[derive(Debug, Default, Clone)]
struct MemRecords {
    cursor: Option<Vec<u8>>,
    signed: BTreeMap<u32, [u8; 32]>,
    /// Every write fails.
    fail: bool,
    /// The cursor cannot be written (the signing history can).
    cursor_lost: bool,
}

/// A node: its aggregator queue and counters, its watcher and its key.
struct Node {
    aggregator: Aggregator,
    stats: Stats,
    watcher: Watcher,
    key: Option<u8>,
    now_ms: u64,
}

impl Node {
    fn boot(records: &mut MemRecords, confirmations: u32) -> Node {
        let watcher = Watcher::new(Config { task_manager: TM, confirmations }, Ok(records.cursor.clone()));
        let key = Some(1);
        Node { aggregator: Aggregator::new(true), stats: Stats::default(), watcher, key, now_ms: 0 }
    }

    /// The SDK's node over `records` at the current time.
    fn sdk_node(&self, records: &MemRecords) -> TestNode {
        let mut node = TestNode::new(&["eth_rpc"]);
        node.key = self.key;
        node.inner.record = records.cursor.clone();
        node.inner.signed = records.signed.clone();
        node.inner.now_ms = self.now_ms;
        node.fail_history = records.fail;
        if records.fail || records.cursor_lost {
            node.inner.fail_saves = Some(StoreError::Io("power cut".into()));
        }
        node
    }

    /// Runs the watcher for `ms` of simulated time against `chain`.
    fn run(&mut self, chain: &mut FakeNode, records: &mut MemRecords, ms: u64) -> Vec<String> {
        let end = self.now_ms + ms;
        let mut lines = Vec::new();
        while self.now_ms < end {
            let now = self.now_ms;
            let mut node = self.sdk_node(records);
            let (aggregator, stats) = (&mut self.aggregator, &mut self.stats);
            let mut sign = |node: &mut dyn spacecore_avs::Node, task: &NewTask| {
                let result = crate::sign(node, task, aggregator, stats);
                crate::count(stats, &result);
                result.map(|_| ())
            };
            lines.extend(self.watcher.settle(&mut node, &mut sign));
            records.cursor = node.inner.record.clone();
            records.signed = node.inner.signed.clone();
            if let Some((id, body)) = self.watcher.next_call(now) {
                let answer = chain.answer(&body);
                lines.extend(self.watcher.call_done(id, answer, now + 1));
                self.now_ms += 1;
            } else {
                // The node's wait: until the watcher's next due time (a call or a retry).
                let due = self.watcher.next_due().unwrap_or(end);
                self.now_ms = due.clamp(self.now_ms + 1, end);
            }
        }
        lines
    }
}

/// The task indices signed (in the signing history).
fn signed(records: &MemRecords) -> Vec<u32> {
    records.signed.keys().copied().collect()
}

#[test]
fn tasks_are_signed_once_confirmed_and_the_cursor_follows() {
    let mut records = MemRecords::default();
    let mut chain = FakeNode::new(10);
    let mut node = Node::boot(&mut records, 2);
    node.run(&mut chain, &mut records, 3000);
    // First contact: the cursor is the confirmed head (9 - 2), recorded on the disk.
    assert_eq!(node.watcher.status(), Status::Up);
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(7));
    assert_eq!(Cursor::decode(records.cursor.as_ref().unwrap()).unwrap().block, 7);
    // A task in block 10, with a log of another contract and one of another event in it.
    let mut other_event = task_log(99, 5);
    other_event.topics[0] = [0x77; 32];
    let mut other_contract = task_log(98, 5);
    other_contract.address = OTHER;
    chain.mine(vec![other_contract, task_log(1, 3), other_event]);
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), Vec::<u32>::new(), "block 10 has no confirmations yet");
    chain.mine(vec![]);
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), Vec::<u32>::new(), "one confirmation of two");
    chain.mine(vec![task_log(2, 4)]);
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), vec![1], "block 10 has two blocks on top");
    assert_eq!(node.watcher.stats.ignored_logs, 2);
    assert_eq!(node.watcher.stats.tasks, 1);
    assert_eq!(node.aggregator.queued(), 1, "queued for the aggregator");
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(10));
    chain.mine(vec![]);
    chain.mine(vec![]);
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), vec![1, 2]);
    assert_eq!(node.stats.signed, 2);
    assert_eq!(node.watcher.stats.blocks_processed, 5);
    // Idle: one eth_blockNumber per poll, nothing else.
    let before = chain.methods.len();
    node.run(&mut chain, &mut records, 10 * POLL_INTERVAL_MS);
    let polls = &chain.methods[before..];
    assert!(polls.iter().all(|m| m == "eth_blockNumber"), "{polls:?}");
    assert!((9..=11).contains(&polls.len()), "{} polls in 10 intervals", polls.len());
}

#[test]
fn a_restart_neither_misses_nor_signs_again() {
    let mut records = MemRecords::default();
    let mut chain = FakeNode::new(5);
    let mut node = Node::boot(&mut records, 0);
    node.run(&mut chain, &mut records, 2000);
    for i in 0..5 {
        chain.mine(vec![task_log(i, u64::from(i) + 2)]);
    }
    node.run(&mut chain, &mut records, 2000);
    assert_eq!(signed(&records), vec![0, 1, 2, 3, 4]);
    let first = node.stats.signed;
    // Down; tasks come meanwhile; up again from the same disk.
    drop(node);
    for i in 5..8 {
        chain.mine(vec![task_log(i, u64::from(i) + 2)]);
    }
    let mut node = Node::boot(&mut records, 0);
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), vec![0, 1, 2, 3, 4, 5, 6, 7], "none missed");
    assert_eq!((first, node.stats.signed), (5, 3), "only the new ones signed after the restart");
}

#[test]
fn a_crash_before_the_cursor_is_written_signs_the_same_again() {
    let mut records = MemRecords::default();
    let mut chain = FakeNode::new(3);
    let mut node = Node::boot(&mut records, 0);
    node.run(&mut chain, &mut records, 2000);
    chain.mine(vec![task_log(0, 2), task_log(1, 3)]);
    // Sign, but lose the cursor write (the power goes between the two).
    records.cursor_lost = true;
    let lines = node.run(&mut chain, &mut records, 2000);
    assert_eq!(signed(&records), vec![0, 1]);
    assert!(lines.iter().any(|l| l.contains("cannot record the chain cursor")), "{lines:?}");
    let cursor_before = records.cursor.clone().unwrap();
    assert_eq!(Cursor::decode(&cursor_before).unwrap().block, 2, "the crash came before the write");
    let mut restarted =
        MemRecords { cursor: Some(cursor_before), signed: records.signed.clone(), ..MemRecords::default() };
    let mut node = Node::boot(&mut restarted, 0);
    node.run(&mut chain, &mut restarted, 3000);
    // Read again and signed again: the same digests, so the history accepts them as repeats.
    assert_eq!(signed(&restarted), vec![0, 1]);
    assert_eq!(node.stats.signed, 2);
    assert_eq!(node.stats.rejected, [0; 6]);
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(3));
}

#[test]
fn shallow_reorgs_are_not_seen_and_deep_ones_are_read_again() {
    let mut records = MemRecords::default();
    let mut chain = FakeNode::new(3);
    let mut node = Node::boot(&mut records, 2);
    node.run(&mut chain, &mut records, 2000);
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(0));
    // Block 3 holds task 0 = 2; it is replaced before it has two confirmations by task 0 = 5.
    chain.mine(vec![task_log(0, 2)]);
    chain.mine(vec![]);
    node.run(&mut chain, &mut records, 2000);
    chain.blocks[3].1 = vec![task_log(0, 5)];
    chain.reorg(3, 1);
    chain.mine(vec![]);
    node.run(&mut chain, &mut records, 2000);
    assert_eq!(signed(&records), vec![0]);
    let digest = records.signed[&0];
    let expected =
        <avs_protocol::IncredibleSquaring as avs_protocol::Avs>::digest(&avs_protocol::TaskResponse {
            reference_task_index: 0,
            number_squared: U256::from(25u8),
        });
    assert_eq!(digest, expected, "only the replacing task was signed");
    assert_eq!(node.watcher.stats.reorgs, 0);
    // A reorganisation deeper than two blocks replaces block 3 with task 0 = 6 and adds task 1:
    // seen at the cursor, read again; task 0 is refused (another answer), task 1 signed.
    chain.blocks[3].1 = vec![task_log(0, 6), task_log(1, 3)];
    chain.reorg(2, 2);
    chain.mine(vec![]);
    let lines = node.run(&mut chain, &mut records, 3000);
    assert_eq!(node.watcher.stats.reorgs, 1, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("reorganisation")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("task 0 of block 3 not signed")), "{lines:?}");
    assert_eq!(signed(&records), vec![0, 1]);
    assert_eq!(records.signed.get(&0), Some(&expected), "the first answer stands");
    assert_eq!(node.stats.rejected[crate::Cause::SlashingProtection as usize], 1);
    assert_eq!(node.watcher.cursor().map(|c| c.hash), Some(chain.hash(4)));
}

#[test]
fn a_node_down_or_answering_garbage_is_retried_with_backoff() {
    let mut records = MemRecords::default();
    let mut chain = FakeNode::new(3);
    let mut node = Node::boot(&mut records, 0);
    assert_eq!(node.watcher.status(), Status::Initializing);
    chain.down = true;
    let lines = node.run(&mut chain, &mut records, 60_000);
    assert_eq!(node.watcher.status(), Status::Down);
    assert!(node.watcher.reason().contains("no answer from the Ethereum node"), "{}", node.watcher.reason());
    assert_eq!(lines.len(), 1, "one line when it goes down: {lines:?}");
    // 1 + 2 + 4 + 8 + 16 + 30 s: about 6 tries in a minute, not one per millisecond.
    let errors = node.watcher.stats.errors;
    assert!((5..=8).contains(&errors), "{errors} tries");
    chain.down = false;
    chain.garbage = true;
    node.run(&mut chain, &mut records, 60_000);
    assert_eq!(node.watcher.status(), Status::Down);
    assert!(node.watcher.reason().contains("unusable answer"), "{}", node.watcher.reason());
    chain.garbage = false;
    chain.mine(vec![task_log(0, 2)]);
    let lines = node.run(&mut chain, &mut records, 60_000);
    assert_eq!(node.watcher.status(), Status::Up);
    assert!(lines.iter().any(|l| l.contains("ethereum up again")), "{lines:?}");
    // First contact only now: block 3 is before the cursor, so its task is not the node's.
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(3));
    chain.mine(vec![task_log(1, 2)]);
    node.run(&mut chain, &mut records, 2000);
    assert_eq!(signed(&records), vec![1]);
}

#[test]
fn an_answer_too_long_halves_the_range() {
    let mut records = MemRecords::default();
    let mut chain = FakeNode::new(1);
    let mut node = Node::boot(&mut records, 0);
    node.run(&mut chain, &mut records, 2000);
    for i in 0..40 {
        chain.mine(vec![task_log(i, 2)]);
    }
    // About 700 bytes per log: eight logs fit.
    chain.max_body = 6000;
    let lines = node.run(&mut chain, &mut records, 5000);
    assert!(lines.iter().any(|l| l.contains("blocks at a time")), "{lines:?}");
    assert_eq!(signed(&records), (0..40).collect::<Vec<_>>());
    // One block whose logs never fit: down, with the reason.
    chain.mine(vec![task_log(100, 2); 12]);
    node.run(&mut chain, &mut records, 5000);
    assert_eq!(node.watcher.status(), Status::Down);
    assert!(node.watcher.reason().contains("longer than"), "{}", node.watcher.reason());
}

#[test]
fn tasks_wait_for_the_key_and_a_failing_disk() {
    let mut records = MemRecords::default();
    let mut chain = FakeNode::new(2);
    let mut node = Node::boot(&mut records, 0);
    node.key = None;
    node.run(&mut chain, &mut records, 2000);
    chain.mine(vec![task_log(0, 2)]);
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), Vec::<u32>::new(), "the key is still loading");
    assert!(node.watcher.reason().contains("waiting for the operator key"), "{}", node.watcher.reason());
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(1), "not past the unsigned task");
    node.key = Some(1);
    records.fail = true;
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), Vec::<u32>::new(), "the history cannot be written");
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(1));
    assert!(node.watcher.has_pending(), "the task is held back");
    let due = node.watcher.next_due().expect("the node's wait must end for the retry");
    assert!(due <= node.now_ms + FIRST_BACKOFF_MS, "retried within the backoff, not forever later");
    records.fail = false;
    node.run(&mut chain, &mut records, 3000);
    assert_eq!(signed(&records), vec![0]);
    assert_eq!(node.watcher.cursor().map(|c| c.block), Some(2));
}

#[test]
fn a_cursor_of_another_chain_or_contract_is_not_used_and_a_corrupt_one_stops_reading() {
    let mut records = MemRecords::default();
    let other = Cursor { chain_id: 1, task_manager: TM, block: 2, hash: [0; 32] };
    records.cursor = Some(other.encode());
    let mut chain = FakeNode::new(50);
    let mut node = Node::boot(&mut records, 2);
    let lines = node.run(&mut chain, &mut records, 2000);
    assert!(lines.iter().any(|l| l.contains("not chain 31337")), "{lines:?}");
    assert_eq!(node.watcher.cursor().map(|c| (c.chain_id, c.block)), Some((31337, 47)));

    let mut corrupt = MemRecords { cursor: Some(vec![1, 2, 3]), ..MemRecords::default() };
    let mut node = Node::boot(&mut corrupt, 2);
    node.run(&mut chain, &mut corrupt, 2000);
    assert_eq!(node.watcher.status(), Status::Down);
    assert!(node.watcher.reason().contains("not 69 bytes"), "{}", node.watcher.reason());
    assert!(chain.methods.len() < 10, "no calls for the corrupt one");
    let diskless = Watcher::new(Config { task_manager: TM, confirmations: 2 }, Err(StoreError::NoDisk));
    assert_eq!(diskless.status(), Status::Down);
}

#[test]
fn the_same_task_signs_the_same_on_both_paths() {
    // A task read from the chain and the same task posted as JSON get one signature.
    let mut records = MemRecords::default();
    let mut node = Node::boot(&mut records, 0);
    let mut chain = FakeNode::new(1);
    node.run(&mut chain, &mut records, 2000);
    chain.mine(vec![task_log(4, 6)]);
    node.run(&mut chain, &mut records, 2000);
    let posted = br#"{"task_index":4,"task":{"number_to_be_squared":"6","task_created_block":1,"quorum_numbers":"0x00","quorum_threshold_percentage":100}}"#;
    let posted = crate::tests::authorized(posted);
    let mut sdk = node.sdk_node(&records);
    let chain_signed = sdk.inner.signed.clone();
    let mut avs = IncredibleSquaringAvs::default();
    let again = avs.task(&posted, &mut sdk).unwrap();
    assert_eq!(again.task_response.number_squared, U256::from(36u8));
    assert_eq!(sdk.inner.signed, chain_signed, "the same digest as the chain's: a repeat");
    assert_eq!((node.stats.signed, avs.stats.signed), (1, 1), "the chain's and the repeat");
}

/// Runs `avs` on `node` for `ms` of simulated time as the runtime does: its timer when due, each
/// call answered by `chain` at once.
fn run_avs(avs: &mut IncredibleSquaringAvs, node: &mut TestNode, chain: &mut FakeNode, ms: u64) {
    use spacecore_avs::Avs;
    let end = node.inner.now_ms + ms;
    while node.inner.now_ms < end {
        let due = avs.tick(node);
        let calls: Vec<_> = node.inner.calls.drain(..).collect();
        for (id, endpoint, _, _, body) in &calls {
            assert_eq!(endpoint, "eth_rpc");
            let answer = chain.answer(body);
            avs.call_done(*id, answer, node);
        }
        node.inner.now_ms = if calls.is_empty() {
            due.unwrap_or(end).clamp(node.inner.now_ms + 1, end)
        } else {
            node.inner.now_ms + 1
        };
    }
}

#[test]
fn the_avs_reads_the_chain_on_its_timer_and_again_after_a_restart() {
    use spacecore_avs::Avs;
    let mut chain = FakeNode::new(5);
    let mut node = TestNode::new(&["eth_rpc"]);
    node.inner.settings.insert("task_manager".into(), rpc::hex(&TM));
    node.inner.settings.insert("confirmations".into(), "0".into());
    let mut avs = IncredibleSquaringAvs::default();
    avs.start(&mut node);
    run_avs(&mut avs, &mut node, &mut chain, 3000);
    chain.mine(vec![task_log(0, 2)]);
    run_avs(&mut avs, &mut node, &mut chain, 3000);
    assert_eq!(node.inner.signed.keys().copied().collect::<Vec<_>>(), [0]);
    // A restart from the same disk: the cursor is the AVS's record, and the next task is read.
    let mut node = node.restarted();
    let mut avs = IncredibleSquaringAvs::default();
    avs.start(&mut node);
    chain.mine(vec![task_log(1, 3)]);
    run_avs(&mut avs, &mut node, &mut chain, 3000);
    assert_eq!(node.inner.signed.keys().copied().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(avs.stats.signed, 1, "only the new task after the restart");
}

#[test]
fn hostile_answers_never_panic() {
    // Valid answers of each kind, mutated byte by byte and cut anywhere, and random bytes: every
    // reader returns a value or an error, and what it returns keeps its promises.
    let address = alloc::format!("0x{}", "ab".repeat(20));
    let (_, topic, _, _, _, _, data) = VECTORS[3];
    let log = alloc::format!(
        r#"{{"address":"{address}","topics":["{TOPIC0_HEX}","{topic}"],"data":"{data}","blockNumber":"0x5","blockHash":"0x{}","logIndex":"0x1","removed":false}}"#,
        "22".repeat(32)
    );
    let answers = [
        alloc::format!(r#"{{"jsonrpc":"2.0","id":9,"result":[{log},{log}]}}"#),
        r#"{"jsonrpc":"2.0","id":9,"result":"0x1f"}"#.to_string(),
        alloc::format!(
            r#"{{"jsonrpc":"2.0","id":9,"result":{{"number":"0x5","hash":"0x{}"}}}}"#,
            "11".repeat(32)
        ),
        r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32005,"message":"limit exceeded"}}"#.to_string(),
    ];
    let check = |body: &[u8]| {
        if let Ok(logs) = rpc::read_logs(body, 9, 5, 6) {
            assert!(logs.len() <= rpc::MAX_LOGS);
            for log in logs {
                assert!((5..=6).contains(&log.block) && log.topics.len() <= rpc::MAX_TOPICS);
                let _ = event::decode(&log.topics, &log.data);
            }
        }
        let _ = rpc::read_quantity(body, 9);
        let _ = rpc::read_block_hash(body, 9, 5);
    };
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for answer in &answers {
        let bytes = answer.as_bytes();
        for cut in 0..bytes.len() {
            check(&bytes[..cut]);
        }
        for _ in 0..2000 {
            let mut mutated = bytes.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % mutated.len() as u64) as usize;
                let alphabet = b"0x\"{}[],:1aFg \\";
                mutated[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            check(&mutated);
        }
    }
    for _ in 0..2000 {
        let len = (next() % 300) as usize;
        let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        check(&random);
    }
    // The decoded vector is the one expected: the mutations above did not change that.
    let logs = rpc::read_logs(answers[0].as_bytes(), 9, 5, 6).unwrap();
    assert_eq!(event::decode(&logs[0].topics, &logs[0].data).unwrap().task_index, 42);
}
