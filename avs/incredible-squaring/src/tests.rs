use super::outbox::{FIRST_BACKOFF_MS, MAX_ATTEMPTS, MAX_QUEUED, Outbox, PROBE_INTERVAL_MS};
use super::*;
use avs_protocol::{OperatorSecretKey, Scheme, TaskResponse, U256};
use spacecore_avs::testing::MemoryNode;
use spacecore_avs::{CallError, Operator, Signature, StoreError};

/// A node with a real BLS12-381 operator key: [`MemoryNode`] for the rest (its record, its
/// signing history's rule, its calls and its log).
pub struct TestNode {
    pub inner: MemoryNode,
    /// The seed of the operator key ([`operator_key`]); `None`: still loading.
    pub key: Option<u8>,
    /// When set, the signing history cannot be written: nothing is signed.
    pub fail_history: bool,
}

impl TestNode {
    /// A node with the key of `KeyGen([1; 32])`, the tests' task source as its authority and
    /// `endpoints`.
    pub fn new(endpoints: &[&'static str]) -> Self {
        let inner = MemoryNode {
            authority_address: Some(task_source().address()),
            endpoints: endpoints.to_vec(),
            ..MemoryNode::default()
        };
        TestNode { inner, key: Some(1), fail_history: false }
    }

    /// The same disk and spec after a restart.
    pub fn restarted(&self) -> Self {
        TestNode { inner: self.inner.restarted(), key: self.key, fail_history: self.fail_history }
    }
}

pub fn operator_key(seed: u8) -> OperatorSecretKey {
    OperatorSecretKey::from_bytes(
        Scheme::Bls12381,
        &avs_protocol::bls::SecretKey::key_gen(&[seed; 32]).unwrap().to_bytes(),
    )
    .unwrap()
}

impl Node for TestNode {
    fn now_ms(&self) -> u64 {
        self.inner.now_ms
    }
    fn boot_count(&self) -> u64 {
        self.inner.boot_count
    }
    fn load(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.load()
    }
    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.inner.save(record)
    }
    fn operator(&self) -> Option<Operator> {
        let key = operator_key(self.key?);
        Some(Operator {
            id: key.public_key().operator_id(),
            scheme: key.scheme().name(),
            public_key: Vec::new(),
        })
    }
    fn sign_task(&mut self, index: u32, digest: &[u8; 32]) -> Result<Signature, SignError> {
        let Some(key) = self.key.map(operator_key) else {
            return Err(SignError::NoKey("the operator key is still loading".into()));
        };
        if self.fail_history {
            return Err(SignError::Storage(format!(
                "cannot record the signature of task {index}: disk on fire"
            )));
        }
        self.inner.sign_task(index, digest)?;
        let signature = key.sign(digest);
        Ok(Signature { scheme: key.scheme().name(), bytes: signature.as_bytes().to_vec() })
    }
    fn attest(&mut self, message: &[u8]) -> Result<Signature, SignError> {
        self.inner.attest(message)
    }
    fn verify_authority(&self, message: &[u8], signature: &[u8]) -> bool {
        self.inner.verify_authority(message, signature)
    }
    fn authority(&self) -> Option<[u8; 20]> {
        self.inner.authority()
    }
    fn setting(&self, name: &str) -> Option<String> {
        self.inner.setting(name)
    }
    fn has_endpoint(&self, name: &str) -> bool {
        self.inner.has_endpoint(name)
    }
    fn log(&mut self, line: &str) {
        self.inner.log(line)
    }
    fn call(&mut self, endpoint: &str, method: &str, path: &str, body: &[u8]) -> Result<u64, CallError> {
        self.inner.call(endpoint, method, path, body)
    }
}

/// The task source of the tests: the key whose authorization [`task_json`] carries.
pub fn task_source() -> avs_protocol::ecdsa::SecretKey {
    avs_protocol::ecdsa::SecretKey::from_bytes(&[0x5c; 32]).unwrap()
}

/// A task, without authorization.
pub fn unsigned_task_json(index: u32, number: u64) -> Vec<u8> {
    format!(
        "{{\"task_index\":{index},\"task\":{{\"number_to_be_squared\":\"{number}\",\"task_created_block\":7,\
         \"quorum_numbers\":\"0x00\",\"quorum_threshold_percentage\":67}}}}"
    )
    .into_bytes()
}

/// A task as the aggregator's generator sends it: signed by [`task_source`].
pub fn task_json(index: u32, number: u64) -> Vec<u8> {
    authorized(&unsigned_task_json(index, number))
}

/// The task in the JSON `body`, signed by [`task_source`].
pub fn authorized(body: &[u8]) -> Vec<u8> {
    let task: NewTask = serde_json::from_slice(body).unwrap();
    serde_json::to_vec(&AuthorizedTask::sign(task, &task_source())).unwrap()
}

/// A started AVS on `node`.
pub fn started(node: &mut TestNode) -> IncredibleSquaringAvs {
    let mut avs = IncredibleSquaringAvs::default();
    avs.start(node);
    avs
}

fn post(avs: &mut IncredibleSquaringAvs, node: &mut TestNode, path: &str, body: &[u8]) -> Response {
    if let Some(refused) = avs.refuse("POST", path) {
        return refused;
    }
    avs.handle(&Request::new("POST", path, body), node).expect("a route of the AVS")
}

/// The calls the AVS has made and not yet been answered, taken from the node.
fn take_calls(node: &mut TestNode) -> Vec<(u64, String, String, Vec<u8>)> {
    node.inner.calls.drain(..).map(|(id, endpoint, method, _, body)| (id, endpoint, method, body)).collect()
}

fn rpc_answer(body: &str) -> Reply {
    Reply { status: 200, body: body.as_bytes().to_vec() }
}

/// What the aggregator's JSON-RPC server answers a `GET /`.
fn probe_answer() -> Reply {
    Reply { status: 405, body: b"use POST\n".to_vec() }
}

#[test]
fn signs_a_task_with_the_operator_key_and_slashing_protection() {
    let mut node = TestNode::new(&[]);
    let mut avs = started(&mut node);
    let r = post(&mut avs, &mut node, "/task", &task_json(3, 4));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let signed: SignedTaskResponse = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(signed.task_response.number_squared, U256::from(16u8));
    assert_eq!(signed.task_response.reference_task_index, 3);
    let key = operator_key(1);
    assert_eq!(signed.operator_id, key.public_key().operator_id());
    assert_eq!(signed.signature, key.sign(&IncredibleSquaring::digest(&signed.task_response)));
    assert_eq!(node.inner.signed.get(&3), Some(&IncredibleSquaring::digest(&signed.task_response)));
    // The same task again: the same signature; another answer for it: refused.
    assert_eq!(post(&mut avs, &mut node, "/task", &task_json(3, 4)).body, r.body);
    let conflict = post(&mut avs, &mut node, "/task", &task_json(3, 5));
    assert_eq!(conflict.status, 409);
    assert_eq!((avs.stats.received, avs.stats.signed), (3, 2));
    assert_eq!(avs.stats.rejected[Cause::SlashingProtection as usize], 1);
}

#[test]
fn without_a_key_or_a_writable_history_nothing_is_signed() {
    let mut node = TestNode::new(&[]);
    node.key = None;
    let mut avs = started(&mut node);
    let r = post(&mut avs, &mut node, "/task", &task_json(1, 3));
    assert_eq!(r.status, 503);
    assert!(r.body.starts_with(b"{\"error\":\"the operator key is still loading\"}"), "{r:?}");
    let mut node = TestNode::new(&[]);
    node.fail_history = true;
    let r = post(&mut avs, &mut node, "/task", &task_json(1, 3));
    assert_eq!(r.status, 500);
    assert!(node.inner.signed.is_empty());
    assert_eq!(avs.stats.rejected, [0, 0, 0, 0, 1, 1]);
}

#[test]
fn malformed_and_unanswerable_tasks() {
    let mut node = TestNode::new(&[]);
    let mut avs = started(&mut node);
    for bad in
        [&b""[..], b"{}", b"[1]", b"{\"task_index\":-1}", b"\xff\xfe", b"{\"task_index\":1,\"task\":{}}"]
    {
        assert_eq!(post(&mut avs, &mut node, "/task", bad).status, 400, "{bad:?}");
    }
    let huge = format!(
        "{{\"task_index\":1,\"task\":{{\"number_to_be_squared\":\"{}\",\"task_created_block\":7,\
         \"quorum_numbers\":\"0x00\",\"quorum_threshold_percentage\":67}}}}",
        U256::from(1u8) << 128
    );
    assert_eq!(post(&mut avs, &mut node, "/task", &authorized(huge.as_bytes())).status, 422);
    assert!(node.inner.signed.is_empty());
    assert_eq!(avs.stats.rejected, [6, 0, 1, 0, 0, 0]);
}

#[test]
fn only_the_task_source_can_make_the_node_sign() {
    let mut node = TestNode::new(&[]);
    let mut avs = started(&mut node);
    let other = avs_protocol::ecdsa::SecretKey::from_bytes(&[0x11; 32]).unwrap();
    let forged = |index: u32, number: u64| {
        let task: NewTask = serde_json::from_slice(&unsigned_task_json(index, number)).unwrap();
        serde_json::to_vec(&AuthorizedTask::sign(task, &other)).unwrap()
    };
    // An index near u32::MAX from anyone but the source: refused, and nothing signed, so the
    // source's tasks are still signed afterwards.
    for body in [unsigned_task_json(u32::MAX - 1, 3), forged(u32::MAX - 1, 3)] {
        let r = post(&mut avs, &mut node, "/task", &body);
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    }
    assert!(node.inner.signed.is_empty(), "nothing signed");
    // The source's signature over another task does not carry over.
    let mut moved: serde_json::Value = serde_json::from_slice(&task_json(5, 3)).unwrap();
    moved["task_index"] = 6.into();
    assert_eq!(post(&mut avs, &mut node, "/task", &serde_json::to_vec(&moved).unwrap()).status, 401);
    assert_eq!(avs.stats.rejected[Cause::Unauthorized as usize], 3);
    assert_eq!(post(&mut avs, &mut node, "/task", &task_json(1, 3)).status, 200);

    // Without a task source, nothing pushed is signed.
    let mut closed = TestNode::new(&[]);
    closed.inner.authority_address = None;
    let mut avs = started(&mut closed);
    let r = post(&mut avs, &mut closed, "/task", &task_json(1, 3));
    assert_eq!(r.status, 401);
    assert!(String::from_utf8_lossy(&r.body).contains("spec.avs.task_signer"));
    assert!(
        closed.inner.logged.iter().any(|l| l.starts_with("intake: no task source")),
        "{:?}",
        closed.inner.logged
    );
}

#[test]
fn methods_are_refused_from_the_request_line() {
    let mut node = TestNode::new(&[]);
    let avs = started(&mut node);
    assert_eq!(avs.refuse("GET", "/task").map(|r| r.status), Some(405));
    assert_eq!(avs.refuse("POST", "/chain").map(|r| r.status), Some(405));
    assert_eq!(avs.refuse("POST", "/task"), None);
    assert_eq!(avs.refuse("GET", "/chain"), None);
}

#[test]
fn a_node_on_a_chain_signs_nothing_posted_to_it() {
    let mut node = TestNode::new(&["eth_rpc"]);
    node.inner.settings.insert("task_manager".into(), format!("0x{}", "07".repeat(20)));
    let avs = started(&mut node);
    let refused = avs.refuse("POST", "/task").expect("refused from the request line");
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.starts_with(b"{\"error\":\"this node takes its tasks from the chain"),
        "{refused:?}"
    );
    assert!(node.inner.logged.iter().any(|l| l.starts_with("chain: reading NewTaskCreated")));
    // A task manager that is not an address: no chain, and a line that says so.
    let mut odd = TestNode::new(&["eth_rpc"]);
    odd.inner.settings.insert("task_manager".into(), "0x1234".into());
    let avs = started(&mut odd);
    assert_eq!(avs.refuse("POST", "/task"), None);
    assert!(odd.inner.logged.iter().any(|l| l.contains("is not an address")), "{:?}", odd.inner.logged);
    let mut avs = avs;
    assert_eq!(avs.handle(&Request::new("GET", "/chain", b""), &mut odd).unwrap().status, 404);
}

/// Runs the AVS's timer at `now_ms` and returns the calls it made.
fn tick(
    avs: &mut IncredibleSquaringAvs,
    node: &mut TestNode,
    now_ms: u64,
) -> Vec<(u64, String, String, Vec<u8>)> {
    node.inner.now_ms = now_ms;
    avs.tick(node);
    take_calls(node)
}

fn answer(
    avs: &mut IncredibleSquaringAvs,
    node: &mut TestNode,
    id: u64,
    outcome: Result<Reply, String>,
    now_ms: u64,
) {
    node.inner.now_ms = now_ms;
    avs.call_done(id, outcome, node);
}

/// Starts an AVS with an aggregator and settles its first probe as answered at `now_ms`.
fn with_aggregator(now_ms: u64) -> (IncredibleSquaringAvs, TestNode) {
    let mut node = TestNode::new(&["aggregator"]);
    let mut avs = started(&mut node);
    let calls = tick(&mut avs, &mut node, now_ms);
    assert_eq!(calls.len(), 1, "the first probe is due at once");
    assert_eq!((calls[0].1.as_str(), calls[0].2.as_str()), ("aggregator", "GET"));
    answer(&mut avs, &mut node, calls[0].0, Ok(probe_answer()), now_ms);
    (avs, node)
}

#[test]
fn signed_responses_go_out_once_and_are_retried_while_retryable() {
    let (mut avs, mut node) = with_aggregator(1000);
    let signed: SignedTaskResponse =
        serde_json::from_slice(&post(&mut avs, &mut node, "/task", &task_json(3, 2)).body).unwrap();
    // A repeat does not queue a second call.
    post(&mut avs, &mut node, "/task", &task_json(3, 2));
    assert_eq!(avs.aggregator.queued(), 1);
    node.inner.now_ms = 1000;
    let calls = tick(&mut avs, &mut node, 1000);
    assert_eq!(calls.len(), 1);
    let (id, endpoint, method, body) = &calls[0];
    assert_eq!((endpoint.as_str(), method.as_str()), ("aggregator", "POST"));
    let request: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(request["method"], RPC_METHOD);
    let params: SignedTaskResponse = serde_json::from_str(&request["params"].to_string()).unwrap();
    assert_eq!(params, signed);
    let rpc_id = request["id"].as_u64().unwrap();
    assert!(tick(&mut avs, &mut node, 1000).is_empty(), "in flight");
    assert_eq!(avs.tick(&mut node), Some(1000 + PROBE_INTERVAL_MS), "only the next probe is due");

    // Task not found yet: retried after the first backoff.
    let not_found = format!(
        "{{\"jsonrpc\":\"2.0\",\"error\":{{\"code\":1001,\"message\":\"task not found\"}},\"id\":{rpc_id}}}"
    );
    answer(&mut avs, &mut node, *id, Ok(rpc_answer(&not_found)), 1010);
    assert!(tick(&mut avs, &mut node, 1010 + FIRST_BACKOFF_MS - 1).is_empty());
    let calls = tick(&mut avs, &mut node, 1010 + FIRST_BACKOFF_MS);
    assert_eq!(calls.len(), 1);
    let request: serde_json::Value = serde_json::from_slice(&calls[0].3).unwrap();
    let rpc_id2 = request["id"].as_u64().unwrap();
    assert_ne!(rpc_id, rpc_id2);
    // A late answer to the first call changes nothing, and is not counted.
    answer(&mut avs, &mut node, *id, Ok(rpc_answer(&not_found)), 1200);
    let ok = format!("{{\"jsonrpc\":\"2.0\",\"result\":true,\"id\":{rpc_id2}}}");
    answer(&mut avs, &mut node, calls[0].0, Ok(rpc_answer(&ok)), 1200);
    assert_eq!(avs.aggregator.queued(), 0);
    assert_eq!((avs.stats.accepted, avs.stats.refused, avs.stats.undelivered), (1, 0, 0));
    // Two calls, 10 ms and 90 ms; the probe is not a JSON-RPC call.
    assert_eq!((avs.stats.rpc.count(), avs.stats.rpc.sum_ns()), (2, 100_000_000));
}

#[test]
fn refused_responses_are_dropped_with_a_line_and_transport_errors_give_up_eventually() {
    let (mut avs, mut node) = with_aggregator(0);
    post(&mut avs, &mut node, "/task", &task_json(1, 2));
    let calls = tick(&mut avs, &mut node, 0);
    let rpc_id = serde_json::from_slice::<serde_json::Value>(&calls[0].3).unwrap()["id"].as_u64().unwrap();
    let bad_sig = format!(
        "{{\"jsonrpc\":\"2.0\",\"error\":{{\"code\":1003,\"message\":\"bad signature\"}},\"id\":{rpc_id}}}"
    );
    answer(&mut avs, &mut node, calls[0].0, Ok(rpc_answer(&bad_sig)), 5);
    let line = node.inner.logged.last().unwrap();
    assert!(line.contains("task 1: response refused by the aggregator: code 1003: bad signature"), "{line}");
    assert_eq!(avs.aggregator.status(), Some(Health::Up), "a refusal is an answer");

    post(&mut avs, &mut node, "/task", &task_json(2, 2));
    let mut now = 5;
    let mut waits = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let calls: Vec<_> = tick(&mut avs, &mut node, now);
        let rpc = calls.iter().find(|c| c.2 == "POST").expect("due");
        for probe in calls.iter().filter(|c| c.2 == "GET") {
            answer(&mut avs, &mut node, probe.0, Err("connection refused".into()), now);
        }
        answer(&mut avs, &mut node, rpc.0, Err("connection refused".into()), now);
        assert_eq!(avs.aggregator.status(), Some(Health::Down));
        if attempt < MAX_ATTEMPTS {
            let due = avs.aggregator.outbox.next_due().unwrap();
            waits.push(due - now);
            now = due;
        } else {
            let line = node.inner.logged.last().unwrap();
            assert!(line.contains("not delivered after 8 attempts: connection refused"), "{line}");
        }
    }
    assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 3200]);
    assert_eq!(avs.aggregator.queued(), 0);
    assert_eq!((avs.stats.refused, avs.stats.undelivered, avs.stats.accepted), (1, 1, 0));
    assert_eq!(avs.stats.rpc.count(), 1 + u64::from(MAX_ATTEMPTS));
}

#[test]
fn without_an_aggregator_nothing_is_queued_and_the_queue_is_bounded() {
    let mut node = TestNode::new(&[]);
    let mut quiet = started(&mut node);
    post(&mut quiet, &mut node, "/task", &task_json(1, 2));
    assert_eq!(quiet.aggregator.queued(), 0);
    assert_eq!(quiet.tick(&mut node), None, "no calls, no probes");
    assert!(take_calls(&mut node).is_empty());
    assert_eq!(quiet.aggregator.status(), None);
    assert!(quiet.services().is_empty());

    let mut outbox = Outbox::new(true);
    let key = operator_key(2);
    let mut dropped = 0;
    for i in 0..(MAX_QUEUED as u32 + 10) {
        let response = TaskResponse { reference_task_index: i, number_squared: U256::from(1u8) };
        let signature = key.sign(&response.digest());
        let signed = SignedTaskResponse {
            task_response: response,
            signature,
            operator_id: key.public_key().operator_id(),
        };
        dropped += usize::from(outbox.push(signed, 0));
    }
    assert_eq!(outbox.queue.len(), MAX_QUEUED);
    assert_eq!(dropped, 10);
    assert_eq!(outbox.queue.front().unwrap().signed.task_response.reference_task_index, 10);
}

#[test]
fn the_aggregator_is_probed_at_most_every_interval_and_one_probe_at_a_time() {
    let mut node = TestNode::new(&["aggregator"]);
    let mut avs = started(&mut node);
    assert_eq!(avs.aggregator.status(), Some(Health::Initializing));
    let calls = tick(&mut avs, &mut node, 0);
    assert_eq!(calls.len(), 1, "one probe at a time");
    assert!(tick(&mut avs, &mut node, 0).is_empty());
    assert_eq!(avs.aggregator.status(), Some(Health::Initializing), "no answer yet");
    // Any HTTP answer, even an error status, means reachable.
    answer(&mut avs, &mut node, calls[0].0, Ok(probe_answer()), 30);
    assert_eq!(avs.aggregator.status(), Some(Health::Up));
    assert_eq!((avs.stats.probes, avs.stats.rpc.count()), (1, 0), "a probe is not a JSON-RPC call");

    // Quiet for 5 s after the answer: probed again, not before.
    assert!(tick(&mut avs, &mut node, 30 + PROBE_INTERVAL_MS - 1).is_empty());
    let calls = tick(&mut avs, &mut node, 30 + PROBE_INTERVAL_MS);
    answer(&mut avs, &mut node, calls[0].0, Err("no answer in time".into()), 10_000);
    assert_eq!(avs.aggregator.status(), Some(Health::Down));
    // Down: the next probe is 5 s after the last one started, however long it took.
    assert_eq!(avs.tick(&mut node), Some(30 + 2 * PROBE_INTERVAL_MS));
    let calls = tick(&mut avs, &mut node, 30 + 2 * PROBE_INTERVAL_MS);
    let probe = calls[0].0;
    answer(&mut avs, &mut node, probe, Err("connection refused or reset".into()), 10_031);
    assert_eq!(avs.stats.probes, 3);

    // A call that gets an answer brings it back up and puts the next probe off.
    node.inner.now_ms = 12_000;
    post(&mut avs, &mut node, "/task", &task_json(4, 2));
    let calls = tick(&mut avs, &mut node, 12_000);
    assert_eq!(calls[0].2, "POST");
    let rpc_id = serde_json::from_slice::<serde_json::Value>(&calls[0].3).unwrap()["id"].as_u64().unwrap();
    let ok = format!("{{\"jsonrpc\":\"2.0\",\"result\":true,\"id\":{rpc_id}}}");
    answer(&mut avs, &mut node, calls[0].0, Ok(rpc_answer(&ok)), 12_010);
    assert_eq!(avs.aggregator.status(), Some(Health::Up));
    assert_eq!(avs.tick(&mut node), Some(12_010 + PROBE_INTERVAL_MS));
    // A probe answered after the node stopped waiting for it changes nothing.
    answer(&mut avs, &mut node, probe, Err("late".into()), 12_020);
    assert_eq!(avs.aggregator.status(), Some(Health::Up));
}

#[test]
fn causes_match_the_errors_and_their_counters() {
    let errors = [
        TaskError::Malformed(String::new()),
        TaskError::Unauthorized(String::new()),
        TaskError::Unanswerable(String::new()),
        TaskError::Refused(String::new()),
        TaskError::NotSigning(String::new()),
        TaskError::Storage(String::new()),
    ];
    for (i, (e, cause)) in errors.iter().zip(Cause::ALL).enumerate() {
        assert_eq!((e.cause(), cause as usize), (cause, i));
    }
    let labels: Vec<&str> = Cause::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(
        labels,
        ["malformed", "unauthorized", "unanswerable", "slashing_protection", "not_signing", "storage"]
    );
}

#[test]
fn metrics_and_services() {
    let (mut avs, mut node) = with_aggregator(0);
    post(&mut avs, &mut node, "/task", &task_json(1, 2));
    post(&mut avs, &mut node, "/task", b"{");
    let mut out = Metrics::new();
    avs.metrics(&mut out);
    let page = out.into_string();
    for line in [
        "incredible_squaring_tasks_received_total 2",
        "incredible_squaring_tasks_signed_total 1",
        "incredible_squaring_tasks_rejected_total{cause=\"malformed\"} 1",
        "incredible_squaring_responses_total{outcome=\"accepted\"} 0",
        "incredible_squaring_responses_queued 1",
        "incredible_squaring_aggregator_probes_total 1",
        "eigen_rpc_request_total{avs_name=\"incredible-squaring\",method=\"process_signed_task_response\",client_version=\"unknown\"} 0",
    ] {
        assert!(page.lines().any(|l| l == line), "{line} in\n{page}");
    }
    assert!(page.contains("# TYPE eigen_rpc_request_duration_seconds histogram"), "{page}");
    let ids: Vec<String> = avs.services().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["aggregator"]);
}
