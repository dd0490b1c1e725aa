//! incredible-squaring: EigenLayer's example AVS, on the Spacecore AVS SDK.
//!
//! A task is a number; the answer is its square, signed with the operator's BLS key (BN254 or
//! BLS12-381, as the spec's scheme says) through the node's slashing protection
//! (`Node::sign_task`: a task index is signed with one digest only, ever) and sent to the
//! aggregator, which aggregates the operators' signatures to a stake quorum.
//!
//! # Where tasks come from
//! - **Pushed**: `POST /task` with an [`avs_protocol::intake::AuthorizedTask`]: the task and the
//!   task source's ECDSA signature over it (the task source is the AVS's authority, the address
//!   `spec.avs.task_signer` names; `Node::authority`). Without one every pushed task is refused
//!   (401) and nothing is computed, written or signed. Answers: `200` with the signed response
//!   (JSON), or an error status with `{"error":"..."}`: 400 malformed, 401 not the task
//!   source's, 409 refused by the slashing protection, 422 unanswerable (the square overflows
//!   uint256), 500 the signing history could not be written, 503 no operator key.
//! - **From the chain**: with `spec.avs.task_manager` and an `eth_rpc` endpoint, the
//!   [`chain::Watcher`] reads the TaskManager's `NewTaskCreated` logs and signs each task the
//!   same way. Such a node refuses `POST /task` (403) from its request line, before the body is
//!   read: only the TaskManager's logs can make it sign, not whoever reaches its port.
//!   `GET /chain` shows the watcher's state (JSON: status, reason, chain, head, the last block
//!   processed, counters); 404 when tasks are not read from a chain.
//!
//! # To the aggregator
//! Each signed response is queued ([`outbox`]) and sent as a JSON-RPC
//! `process_signed_task_response` call ([`rpc`]) to the `aggregator` endpoint; calls the
//! aggregator may accept later are retried with backoff, and when no call got an answer for 5 s
//! the aggregator is probed (`GET /`). The `aggregator` service in the node API is the last
//! result.
//!
//! # Metrics
//! EigenLayer's `eigen_rpc_request_total` and `eigen_rpc_request_duration_seconds` (labels
//! `avs_name`, `method`, `client_version`) for the calls to the aggregator, and the AVS's own
//! under `incredible_squaring_`: tasks received, signed and rejected (by `cause`), responses by
//! `outcome` and still queued, probes of the aggregator, and the chain watcher's counters.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod chain;
pub mod outbox;
pub mod rpc;
mod state;

#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use avs_protocol::intake::AuthorizedTask;
use avs_protocol::{Avs as _, IncredibleSquaring, NewTask, OperatorSignature, SignedTaskResponse};
use outbox::{Aggregator, Call};
use spacecore_avs::metrics::Histogram;
use spacecore_avs::{Avs, Health, Metrics, Node, Reply, Request, Response, Service, SignError};

/// The AVS's name (the `avs_name` label of the `eigen_` metrics).
pub const AVS_NAME: &str = "incredible-squaring";

/// The JSON-RPC method of the calls to the aggregator.
pub const RPC_METHOD: &str = "process_signed_task_response";

/// The `client_version` label of the RPC metrics: the aggregator does not say what it runs.
pub const CLIENT_VERSION: &str = "unknown";

/// Upper bounds (ns) of the buckets of `eigen_rpc_request_duration_seconds`: 5 ms to 10 s, the
/// Prometheus client's default buckets.
pub const RPC_BUCKETS_NS: [u64; 11] = spacecore_avs::metrics::series(5_000_000);

/// Why a task was not signed; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The task is not the task source's: no authorization, a bad one, or no task source
    /// configured (401). Nothing was written.
    Unauthorized(String),
    /// The body is not a task (400).
    Malformed(String),
    /// The task cannot be answered, e.g. its square overflows uint256 (422).
    Unanswerable(String),
    /// Slashing protection: another response was signed for this task, or the task is older
    /// than the signing history covers (409).
    Refused(String),
    /// No operator key is loaded, or the signing history is unusable (503).
    NotSigning(String),
    /// The signing history could not be written: nothing was signed (500).
    Storage(String),
}

impl TaskError {
    /// The HTTP status answering this error.
    pub fn status(&self) -> u16 {
        match self {
            TaskError::Unauthorized(_) => 401,
            TaskError::Malformed(_) => 400,
            TaskError::Unanswerable(_) => 422,
            TaskError::Refused(_) => 409,
            TaskError::NotSigning(_) => 503,
            TaskError::Storage(_) => 500,
        }
    }

    /// Its cause, for the counters.
    pub fn cause(&self) -> Cause {
        match self {
            TaskError::Unauthorized(_) => Cause::Unauthorized,
            TaskError::Malformed(_) => Cause::Malformed,
            TaskError::Unanswerable(_) => Cause::Unanswerable,
            TaskError::Refused(_) => Cause::SlashingProtection,
            TaskError::NotSigning(_) => Cause::NotSigning,
            TaskError::Storage(_) => Cause::Storage,
        }
    }

    /// The message, for the error body.
    pub fn message(&self) -> &str {
        match self {
            TaskError::Unauthorized(m)
            | TaskError::Malformed(m)
            | TaskError::Unanswerable(m)
            | TaskError::Refused(m)
            | TaskError::NotSigning(m)
            | TaskError::Storage(m) => m,
        }
    }
}

impl From<SignError> for TaskError {
    fn from(e: SignError) -> Self {
        match e {
            SignError::NoKey(why) => TaskError::NotSigning(why),
            SignError::Refused(why) => TaskError::Refused(why),
            SignError::Storage(why) => TaskError::Storage(why),
        }
    }
}

/// Why a task was not signed: the kinds of [`TaskError`], in the order of [`Stats::rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The body is not a task.
    Malformed,
    /// Not the task source's.
    Unauthorized,
    /// The task cannot be answered.
    Unanswerable,
    /// Slashing protection refused it.
    SlashingProtection,
    /// No key, or an unusable signing history.
    NotSigning,
    /// The signing history could not be written.
    Storage,
}

impl Cause {
    /// Every cause, in index order.
    pub const ALL: [Cause; 6] = [
        Cause::Malformed,
        Cause::Unauthorized,
        Cause::Unanswerable,
        Cause::SlashingProtection,
        Cause::NotSigning,
        Cause::Storage,
    ];

    /// Its `cause` label value.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Malformed => "malformed",
            Cause::Unauthorized => "unauthorized",
            Cause::Unanswerable => "unanswerable",
            Cause::SlashingProtection => "slashing_protection",
            Cause::NotSigning => "not_signing",
            Cause::Storage => "storage",
        }
    }
}

/// Counters of what the AVS did with tasks and with the calls to the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// `POST /task` requests.
    pub received: u64,
    /// Responses signed (including a repeat of one signed before).
    pub signed: u64,
    /// Tasks refused, indexed by [`Cause`].
    pub rejected: [u64; Cause::ALL.len()],
    /// Responses the aggregator accepted.
    pub accepted: u64,
    /// Responses the aggregator refused for good.
    pub refused: u64,
    /// Responses given up on after the last retry.
    pub undelivered: u64,
    /// Responses dropped unsent because the queue was full.
    pub dropped: u64,
    /// Probes of the aggregator made.
    pub probes: u64,
    /// Time of each JSON-RPC call to the aggregator (its count is the number of calls).
    pub rpc: Histogram<{ RPC_BUCKETS_NS.len() }>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            received: 0,
            signed: 0,
            rejected: [0; Cause::ALL.len()],
            accepted: 0,
            refused: 0,
            undelivered: 0,
            dropped: 0,
            probes: 0,
            rpc: Histogram::new(RPC_BUCKETS_NS),
        }
    }
}

/// Who a call to an endpoint is for, with the id its owner gave it and when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Aggregator(u64),
    Chain(u64),
}

/// The AVS.
#[derive(Debug, Default)]
pub struct IncredibleSquaringAvs {
    aggregator: Aggregator,
    chain: Option<chain::Watcher>,
    /// The counters.
    pub stats: Stats,
    /// Calls in flight: the SDK's id → whose, and when it started (ms).
    calls: BTreeMap<u64, (Target, u64)>,
}

spacecore_avs::export!(IncredibleSquaringAvs::default);

impl IncredibleSquaringAvs {
    /// Answers a `POST /task` body: the signed response, or why there is none. The task must
    /// carry the task source's authorization: otherwise 401, and nothing is computed, written
    /// or signed.
    pub fn task(&mut self, body: &[u8], node: &mut dyn Node) -> Result<SignedTaskResponse, TaskError> {
        self.stats.received = self.stats.received.saturating_add(1);
        let result = serde_json::from_slice::<AuthorizedTask>(body)
            .map_err(|e| TaskError::Malformed(format!("not a task: {e}")))
            .and_then(|request| authenticate(request, node))
            .and_then(|task| sign(node, &task, &mut self.aggregator, &mut self.stats));
        count(&mut self.stats, &result);
        result
    }

    /// Makes the calls that are due and settles the chain's pending work; returns when to come
    /// back.
    fn pump(&mut self, node: &mut dyn Node) -> Option<u64> {
        let Self { aggregator, chain, stats, calls } = self;
        if let Some(watcher) = chain {
            // Always: besides signing what was read, it tells the watcher whether the key is
            // loaded (without which it reads no tasks).
            let mut sign_one = |node: &mut dyn Node, task: &NewTask| {
                let result = sign(node, task, aggregator, stats);
                count(stats, &result);
                result.map(|_| ())
            };
            for line in watcher.settle(node, &mut sign_one) {
                node.log(&line);
            }
            if let Some((id, body)) = watcher.next_call(node.now_ms()) {
                match node.call("eth_rpc", "POST", "/", &body) {
                    Ok(call) => {
                        calls.insert(call, (Target::Chain(id), node.now_ms()));
                    }
                    Err(e) => {
                        if let Some(line) = watcher.call_done(id, Err(format!("{e}")), node.now_ms()) {
                            node.log(&line);
                        }
                    }
                }
            }
        }
        while calls.len() < spacecore_avs::MAX_CALLS - 1 {
            let now_ms = node.now_ms();
            let Some((id, call)) = aggregator.next_call(now_ms, stats) else { break };
            let made = match &call {
                Call::Rpc(body) => node.call("aggregator", "POST", "/", body),
                Call::Probe => node.call("aggregator", "GET", "/", b""),
            };
            match made {
                Ok(call) => {
                    calls.insert(call, (Target::Aggregator(id), now_ms));
                }
                Err(e) => {
                    if let Some(line) = aggregator.call_done(id, Err(format!("{e}")), now_ms, 0, stats) {
                        node.log(&line);
                    }
                    break;
                }
            }
        }
        let chain_due = chain.as_ref().and_then(|w| w.next_due());
        match (aggregator.next_due(), chain_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn chain_json(&self) -> Response {
        let Some(w) = &self.chain else {
            return Response::error(
                404,
                "tasks are not read from a chain (no spec.avs.task_manager and eth_rpc)",
            );
        };
        Response::json(200, &state::chain_status(w))
    }
}

/// The pushed task, if it is the task source's.
fn authenticate(request: AuthorizedTask, node: &dyn Node) -> Result<NewTask, TaskError> {
    let Some(source) = node.authority() else {
        return Err(TaskError::Unauthorized(
            "this node has no task source (spec.avs.task_signer): pushed tasks are refused".into(),
        ));
    };
    let index = request.task_index;
    request.verify(&source).map_err(|e| TaskError::Unauthorized(format!("task {index}: {e}")))
}

/// Computes the answer to `task`, signs it through the node's slashing protection and queues
/// it for the aggregator: the one path of pushed and chain tasks.
fn sign(
    node: &mut dyn Node,
    task: &NewTask,
    aggregator: &mut Aggregator,
    stats: &mut Stats,
) -> Result<SignedTaskResponse, TaskError> {
    let response = IncredibleSquaring
        .respond(task)
        .map_err(|e| TaskError::Unanswerable(format!("task {} cannot be answered: {e}", task.task_index)))?;
    let digest = IncredibleSquaring::digest(&response);
    let signature = node.sign_task(task.task_index, &digest)?;
    let signature = OperatorSignature::from_slice(&signature.bytes)
        .ok_or_else(|| TaskError::NotSigning(format!("the node signed with scheme {}", signature.scheme)))?;
    let operator_id = node
        .operator()
        .map(|op| op.id)
        .ok_or_else(|| TaskError::NotSigning("the operator key is still loading".into()))?;
    let signed = SignedTaskResponse { task_response: response, signature, operator_id };
    aggregator.push(signed, node.now_ms(), stats);
    Ok(signed)
}

fn count(stats: &mut Stats, result: &Result<SignedTaskResponse, TaskError>) {
    match result {
        Ok(_) => stats.signed = stats.signed.saturating_add(1),
        Err(e) => {
            let n = &mut stats.rejected[e.cause() as usize];
            *n = n.saturating_add(1);
        }
    }
}

impl Avs for IncredibleSquaringAvs {
    fn start(&mut self, node: &mut dyn Node) {
        self.aggregator = Aggregator::new(node.has_endpoint("aggregator"));
        let task_manager = node.setting("task_manager");
        match (node.has_endpoint("eth_rpc"), task_manager) {
            (true, Some(text)) => {
                let Some(task_manager) =
                    spacecore_avs::from_hex(&text).and_then(|b| <[u8; 20]>::try_from(b).ok())
                else {
                    node.log(&format!(
                        "chain: spec.avs.task_manager {text:?} is not an address: tasks are not read"
                    ));
                    return;
                };
                let confirmations = node
                    .setting("confirmations")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(chain::DEFAULT_CONFIRMATIONS)
                    .min(chain::MAX_CONFIRMATIONS);
                let config = chain::Config { task_manager, confirmations };
                node.log(&format!(
                    "chain: reading {} of TaskManager {} ({confirmations} confirmations)",
                    chain::event::SIGNATURE,
                    chain::rpc::hex(&task_manager)
                ));
                self.chain = Some(chain::Watcher::new(config, node.load()));
            }
            (true, None) => node.log("chain: no spec.avs.task_manager: tasks are not read from the chain"),
            (false, Some(_)) => {
                node.log("chain: no Ethereum endpoint (eth_rpc): tasks are not read from the chain")
            }
            (false, None) => {}
        }
        match (node.authority(), &self.chain) {
            (Some(source), _) => node.log(&format!(
                "intake: pushed tasks (POST /task) are taken from {} only",
                chain::rpc::hex(&source)
            )),
            (None, None) => node.log("intake: no task source (spec.avs.task_signer): POST /task is refused"),
            (None, Some(_)) => {}
        }
    }

    fn routes(&self) -> &'static [&'static str] {
        &["/task", "/chain"]
    }

    fn refuse(&self, method: &str, path: &str) -> Option<Response> {
        let allowed = if path == "/task" { "POST" } else { "GET" };
        if method != allowed {
            return Some(Response::error(405, &format!("{path} takes {allowed} only")));
        }
        (path == "/task" && self.chain.is_some()).then(|| {
            Response::error(
                403,
                "this node takes its tasks from the chain (spec.avs.task_manager) only; POST /task is refused",
            )
        })
    }

    fn handle(&mut self, request: &Request<'_>, node: &mut dyn Node) -> Option<Response> {
        Some(match request.path {
            "/task" => match self.task(request.body, node) {
                Ok(signed) => Response::json(200, &signed),
                Err(e) => Response::error(e.status(), e.message()),
            },
            "/chain" => self.chain_json(),
            _ => return None,
        })
    }

    fn tick(&mut self, node: &mut dyn Node) -> Option<u64> {
        self.pump(node)
    }

    fn call_done(&mut self, id: u64, outcome: Result<Reply, String>, node: &mut dyn Node) {
        let Some((target, started)) = self.calls.remove(&id) else { return };
        let now_ms = node.now_ms();
        let line = match target {
            Target::Aggregator(id) => {
                let elapsed_us = now_ms.saturating_sub(started).saturating_mul(1000);
                self.aggregator.call_done(id, outcome, now_ms, elapsed_us, &mut self.stats)
            }
            Target::Chain(id) => self.chain.as_mut().and_then(|w| w.call_done(id, outcome, now_ms)),
        };
        if let Some(line) = line {
            node.log(&line);
        }
    }

    fn metrics(&self, out: &mut Metrics) {
        state::metrics(self, out);
    }

    fn services(&self) -> Vec<Service> {
        let mut list = Vec::new();
        if let Some(status) = self.aggregator.status() {
            list.push(Service {
                id: "aggregator".into(),
                name: "Aggregator".into(),
                description: "The AVS aggregator's JSON-RPC server, where signed responses go: Up when the \
                              last call or probe reached it, Down when it failed, Initializing before any."
                    .into(),
                status,
            });
        }
        if let Some(chain) = &self.chain {
            list.push(Service {
                id: "ethereum".into(),
                name: "Ethereum".into(),
                description: "The Ethereum node the AVS's tasks are read from (NewTaskCreated logs of the \
                              TaskManager): Initializing before its first answer, Up while it answers, Down \
                              when a call failed (retried with backoff); GET /chain says why."
                    .into(),
                status: chain.status(),
            });
        }
        list
    }
}

/// A service's health as the JSON of `GET /chain` writes it.
pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::Up => "Up",
        Health::Down => "Down",
        Health::Initializing => "Initializing",
    }
}
