//! Helpers shared by the integration tests: keys, operator sets, tasks, a fake operator node,
//! raw HTTP on loopback and a strict parser of the Prometheus text format.
#![allow(dead_code)]

pub mod prom;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aggregator::http::{self, HttpResponse, post_json, response};
use aggregator::operators::{G1Key, G2Key};
use aggregator::operators::{OperatorAddress, OperatorEntry};
use aggregator::{
    AggregatedResponse, AggregationService, Aggregator, Config, DecisionLog, GeneratorConfig, Numbers,
    OperatorSet,
};
use avs_protocol::bls::{SecretKey, pop_prove};
use avs_protocol::bn254;
use avs_protocol::encoding::to_hex;
use avs_protocol::rpc::{ErrorCode, Request, Response};
use avs_protocol::scheme::DigestSigner;
use avs_protocol::{NewTask, SignedTaskResponse, Task, TaskResponse, U256, keccak256};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A deterministic key: `KeyGen([seed; 32])`.
pub fn key(seed: u8) -> SecretKey {
    SecretKey::key_gen(&[seed; 32]).expect("32 bytes of ikm")
}

/// A deterministic BN254 key: the scalar `0x11 00 … 00 seed` (below the group order).
pub fn bn_key(seed: u8) -> bn254::SecretKey {
    let mut bytes = [0u8; 32];
    bytes[0] = 0x11;
    bytes[31] = seed;
    bn254::SecretKey::from_bytes(&bytes).expect("a scalar below r")
}

/// A BLS12-381 operator set entry for `sk`, as a file would have it.
pub fn entry(name: &str, sk: &SecretKey, stake: &[(u8, u64)], address: &str) -> OperatorEntry {
    let pk = sk.public_key();
    OperatorEntry {
        name: Some(name.into()),
        id: to_hex(&pk.operator_id()),
        pubkey: Some(to_hex(&pk.to_bytes())),
        pop: to_hex(&pop_prove(sk).to_bytes()),
        stake: stake.iter().map(|(q, s)| (q.to_string(), *s)).collect(),
        address: address.into(),
        ..OperatorEntry::default()
    }
}

/// The first operator of the operators file as `docs/aggregator.md` shows it: `alpha`, with its
/// `id`, its key fields `keys` as its scheme writes them (`pubkey = "…"`, or `g1` and `g2`) and its
/// proof of possession `pop`, stake 100 in quorum 0 and 50 in quorum 1, at
/// `http://127.0.0.1:8080`.
pub fn documented_alpha(id: &str, keys: &str, pop: &str) -> String {
    format!(
        "[[operator]]\nname = \"alpha\"\nid = \"{id}\"\n{keys}\npop = \"{pop}\"\n\
         stake = {{ 0 = 100, 1 = 50 }}\naddress = \"http://127.0.0.1:8080\"\n"
    )
}

/// A BN254 operator set entry for `sk`, as a file would have it (G1 key as hex).
pub fn bn_entry(name: &str, sk: &bn254::SecretKey, stake: &[(u8, u64)], address: &str) -> OperatorEntry {
    let pk = sk.public_key();
    OperatorEntry {
        name: Some(name.into()),
        id: to_hex(&pk.operator_id()),
        g1: Some(G1Key::Hex(to_hex(&pk.g1().to_bytes()))),
        g2: Some(G2Key::Hex(to_hex(&pk.g2().to_bytes()))),
        pop: to_hex(&bn254::pop_prove(sk).to_bytes()),
        stake: stake.iter().map(|(q, s)| (q.to_string(), *s)).collect(),
        address: address.into(),
        ..OperatorEntry::default()
    }
}

/// The operator set of `entries`, validated.
pub fn operator_set(entries: &[OperatorEntry]) -> Arc<OperatorSet> {
    Arc::new(OperatorSet::from_entries(entries).expect("valid operator set"))
}

/// Three operators with 100 stake each in quorum 0, keys 1, 2, 3.
pub fn three_operators() -> (Vec<SecretKey>, Arc<OperatorSet>) {
    let keys = vec![key(1), key(2), key(3)];
    let entries: Vec<_> = ["a", "b", "c"]
        .iter()
        .zip(&keys)
        .map(|(name, sk)| entry(name, sk, &[(0, 100)], "http://127.0.0.1:9"))
        .collect();
    (keys, operator_set(&entries))
}

/// A service over `operators` writing its decisions to memory.
pub fn service(
    operators: Arc<OperatorSet>,
    expiry: Duration,
) -> (AggregationService, aggregator::decision_log::MemoryLog) {
    let (log, memory) = DecisionLog::memory();
    let metrics = Arc::new(aggregator::metrics::Metrics::new());
    (AggregationService::new(operators, expiry, metrics, log), memory)
}

/// [`service`] with `task` initialized at the returned instant.
pub fn service_with_task(
    operators: Arc<OperatorSet>,
    expiry: Duration,
    task: &NewTask,
) -> (AggregationService, aggregator::decision_log::MemoryLog, Instant) {
    let (svc, log) = service(operators, expiry);
    let t0 = Instant::now();
    svc.initialize_task(task.clone(), t0).unwrap();
    (svc, log, t0)
}

/// The code of a rejected response; panics if it was accepted.
pub fn code(result: Result<Option<AggregatedResponse>, aggregator::Rejection>) -> ErrorCode {
    result.expect_err("rejected").code
}

/// Task `index` squaring `number` in `quorums` with `threshold` percent.
pub fn task(index: u32, number: u64, quorums: &[u8], threshold: u32) -> NewTask {
    NewTask {
        task_index: index,
        task: Task {
            number_to_be_squared: U256::from(number),
            task_created_block: index + 1,
            quorum_numbers: quorums.to_vec(),
            quorum_threshold_percentage: threshold,
        },
    }
}

/// Three BN254 operators with 100 stake each in quorum 0.
pub fn three_bn254_operators() -> (Vec<bn254::SecretKey>, Arc<OperatorSet>) {
    let keys = vec![bn_key(1), bn_key(2), bn_key(3)];
    let entries: Vec<_> = ["a", "b", "c"]
        .iter()
        .zip(&keys)
        .map(|(name, sk)| bn_entry(name, sk, &[(0, 100)], "http://127.0.0.1:9"))
        .collect();
    (keys, operator_set(&entries))
}

/// The honest signed answer of `sk` (either scheme) to `task`.
pub fn answer(sk: &(impl DigestSigner + ?Sized), task: &NewTask) -> SignedTaskResponse {
    let task_response = task.task.respond(task.task_index).expect("valid task");
    SignedTaskResponse {
        task_response,
        signature: sk.sign_digest(&task_response.digest()),
        operator_id: sk.operator_id(),
    }
}

/// `sk`'s signed answer to `task`, under the operator id `claimed` (another operator's).
pub fn answer_claiming(
    sk: &(impl DigestSigner + ?Sized),
    task: &NewTask,
    claimed: [u8; 32],
) -> SignedTaskResponse {
    let mut signed = answer(sk, task);
    signed.operator_id = claimed;
    signed
}

/// A free loopback port, as a listen address.
pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// `tasks` sequential tasks, 100 ms apart, in quorum 0 at `threshold` percent, from block 10,
/// each delivery bounded by 2 s, not signed.
pub fn generator(tasks: u32, threshold: u32) -> GeneratorConfig {
    GeneratorConfig {
        interval: Duration::from_millis(100),
        tasks: Some(tasks),
        quorum_numbers: vec![0],
        threshold_percentage: threshold,
        numbers: Numbers::Sequential,
        seed: 1,
        first_block: 10,
        delivery_timeout: Duration::from_secs(2),
        task_signer: None,
    }
}

/// An aggregator without a chain over `operators`, JSON-RPC and metrics on free loopback ports.
pub fn local_config(
    operators: Arc<OperatorSet>,
    task_expiry: Duration,
    generator: Option<GeneratorConfig>,
    decision_log: DecisionLog,
) -> Config {
    Config {
        operators: Some(operators),
        chain: None,
        listen: loopback(),
        metrics: loopback(),
        task_expiry,
        generator,
        decision_log,
    }
}

/// Starts the aggregator of `config`, subscribed to its aggregates, and gives its JSON-RPC
/// address to the fake operators through `rpc`.
pub async fn start_round(
    config: Config,
    rpc: &OnceLock<SocketAddr>,
) -> (Aggregator, tokio::sync::broadcast::Receiver<AggregatedResponse>) {
    let aggregator = Aggregator::start(config).await.unwrap();
    let aggregates = aggregator.service.subscribe();
    rpc.set(aggregator.rpc_addr).unwrap();
    (aggregator, aggregates)
}

/// The digest of `response` from its ABI encoding (two 32-byte words) and `keccak256`, without
/// the protocol's own encoder.
pub fn abi_digest(response: &TaskResponse) -> [u8; 32] {
    let mut encoded = [0u8; 64];
    encoded[28..32].copy_from_slice(&response.reference_task_index.to_be_bytes());
    encoded[32..].copy_from_slice(&response.number_squared.to_be_bytes::<32>());
    keccak256(&encoded)
}

/// The loopback address of a server at `addr`.
pub fn address(addr: SocketAddr) -> OperatorAddress {
    OperatorAddress::parse(&format!("http://{addr}")).expect("valid address")
}

/// Calls `process_signed_task_response` on the aggregator at `rpc`.
pub async fn call(rpc: SocketAddr, id: u64, signed: SignedTaskResponse) -> Response<bool> {
    let body = serde_json::to_vec(&Request::process_signed_task_response(id, signed)).expect("encodes");
    let (status, body) = post_json(&address(rpc), "/", body, Duration::from_secs(5)).await.expect("RPC call");
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).expect("a JSON-RPC response")
}

/// Sends raw bytes to `addr` and reads the whole answer (at most 1 MiB, 5 s).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // The server may close early (e.g. on a too-large body): a failed write is fine.
        let _ = stream.write_all(request).await;
        let mut out = Vec::new();
        let _ = (&mut stream).take(1 << 20).read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.expect("answer within 5 s")
}

/// `(status, body)` of a raw HTTP/1.1 request with `Connection: close`.
pub async fn raw_http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let answer = raw_exchange(addr, &request).await;
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A signing key of either scheme.
pub type Signer = Box<dyn DigestSigner + Send + Sync>;

/// What a fake operator node does with the tasks it is sent.
pub enum Behaviour {
    /// Answers with its own key.
    Honest(Signer),
    /// Claims the operator id `claimed` but signs with `key`.
    WrongKey { claimed: [u8; 32], key: Signer },
    /// Answers the POST with HTTP 500 and does not respond.
    Failing,
}

/// A fake operator node: `POST /task` records the task, answers 200 and sends its signed
/// response to the aggregator whose address is set in `rpc`.
pub struct FakeOperator {
    pub addr: SocketAddr,
    pub tasks: Arc<Mutex<Vec<NewTask>>>,
    /// Each task's `authorization`, as received.
    pub authorizations: Arc<Mutex<Vec<avs_protocol::intake::AuthorizedTask>>>,
    pub answers: Arc<Mutex<Vec<Response<bool>>>>,
    stop: watch::Sender<bool>,
}

impl FakeOperator {
    pub async fn spawn(behaviour: Behaviour, rpc: Arc<OnceLock<SocketAddr>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let behaviour = Arc::new(behaviour);
        let (t, z, a) = (Arc::clone(&tasks), Arc::clone(&authorizations), Arc::clone(&answers));
        let handler = move |req: hyper::Request<hyper::body::Incoming>| {
            let (behaviour, tasks, auths, answers, rpc) =
                (behaviour.clone(), t.clone(), z.clone(), a.clone(), rpc.clone());
            async move { handle_task(req, &behaviour, tasks, auths, answers, rpc).await }
        };
        tokio::spawn(http::serve(listener, stopped, handler));
        FakeOperator { addr, tasks, authorizations, answers, stop }
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn handle_task(
    req: hyper::Request<hyper::body::Incoming>,
    behaviour: &Behaviour,
    tasks: Arc<Mutex<Vec<NewTask>>>,
    authorizations: Arc<Mutex<Vec<avs_protocol::intake::AuthorizedTask>>>,
    answers: Arc<Mutex<Vec<Response<bool>>>>,
    rpc: Arc<OnceLock<SocketAddr>>,
) -> HttpResponse {
    assert_eq!(req.uri().path(), "/task");
    assert_eq!(req.method(), hyper::Method::POST);
    let body = http::read_body(req.into_body(), 1 << 16).await.expect("body");
    let task: NewTask = serde_json::from_slice(&body).expect("a NewTask");
    authorizations.lock().unwrap().push(serde_json::from_slice(&body).expect("a task, authorized or not"));
    tasks.lock().unwrap().push(task.clone());
    let signed = match behaviour {
        Behaviour::Honest(sk) => answer(sk.as_ref(), &task),
        Behaviour::WrongKey { claimed, key } => answer_claiming(key.as_ref(), &task, *claimed),
        Behaviour::Failing => return response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "broken\n"),
    };
    tokio::spawn(async move {
        // The aggregator's address is set right after it starts: wait for it, boundedly.
        for _ in 0..250 {
            if rpc.get().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rpc = *rpc.get().expect("aggregator address set");
        let answer = call(rpc, u64::from(task.task_index), signed).await;
        answers.lock().unwrap().push(answer);
    });
    response(StatusCode::OK, "application/json", "{}")
}
