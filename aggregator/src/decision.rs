//! What the aggregation service decides: why a task is refused ([`TaskError`]), why a response
//! is refused ([`Rejection`]), and what a completed task yields ([`AggregatedResponse`]).

use std::time::Duration;

use avs_protocol::TaskResponse;
use avs_protocol::bls::{PublicKey, Signature};
use avs_protocol::encoding::to_hex;
use avs_protocol::rpc::ErrorCode;
use serde_json::{Value, json};

use crate::service::MAX_ACTIVE_TASKS;

/// Why a task could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The index is in use or was used recently.
    #[error("task {0} is already registered")]
    Duplicate(u32),
    /// `quorum_numbers` is empty.
    #[error("the task has no quorum numbers")]
    NoQuorums,
    /// A quorum number appears twice.
    #[error("quorum {0} is listed twice")]
    RepeatedQuorum(u8),
    /// `quorum_threshold_percentage` is 0 or above 100.
    #[error("quorum threshold percentage {0} is not in 1..=100")]
    Threshold(u32),
    /// No operator has stake in a quorum of the task.
    #[error("no operator has stake in quorum {0}")]
    EmptyQuorum(u8),
    /// `number_to_be_squared²` overflows uint256: the task cannot be answered.
    #[error("number_to_be_squared overflows uint256 when squared")]
    Overflow,
    /// [`MAX_ACTIVE_TASKS`] tasks are already waiting.
    #[error("{MAX_ACTIVE_TASKS} tasks are already in flight")]
    TooMany,
}

/// A refused response: the JSON-RPC error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The protocol error code.
    pub code: ErrorCode,
    /// What exactly was wrong.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection { code, message: message.into() }
    }
}

/// The signed and total stake of one quorum of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumStake {
    /// The quorum number.
    pub quorum: u8,
    /// Stake of the operators whose response was accepted.
    pub signed_stake: u128,
    /// Stake of all operators in the quorum.
    pub total_stake: u128,
}

impl QuorumStake {
    pub(crate) fn ratio(&self) -> f64 {
        self.signed_stake as f64 / self.total_stake as f64
    }
}

/// What the aggregator emits when a task completes.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedResponse {
    /// The task.
    pub task_index: u32,
    /// The response every signer signed.
    pub task_response: TaskResponse,
    /// `keccak256(abi.encode(task_response))`, the signed message.
    pub digest: [u8; 32],
    /// The sum of the signers' signatures.
    pub aggregate_signature: Signature,
    /// The sum of the signers' public keys.
    pub aggregate_public_key: PublicKey,
    /// The signers' operator ids, sorted.
    pub signers: Vec<[u8; 32]>,
    /// Operator ids of the task's quorums that did not sign, sorted.
    pub non_signers: Vec<[u8; 32]>,
    /// Signed and total stake per quorum, in the task's quorum order.
    pub quorums: Vec<QuorumStake>,
    /// Time from registration to completion.
    pub latency: Duration,
}

pub(crate) fn ids(list: &[[u8; 32]]) -> Vec<String> {
    list.iter().map(|id| to_hex(id)).collect()
}

pub(crate) fn stakes_json(stakes: &[QuorumStake]) -> Value {
    let list: Vec<Value> = stakes
        .iter()
        .map(|q| json!({"quorum": q.quorum, "signed_stake": q.signed_stake, "total_stake": q.total_stake}))
        .collect();
    Value::from(list)
}

impl AggregatedResponse {
    /// The fields of the `task_completed` decision line.
    pub fn to_json(&self) -> Value {
        json!({
            "task_index": self.task_index,
            "number_squared": self.task_response.number_squared.to_string(),
            "digest": to_hex(&self.digest),
            "aggregate_signature": to_hex(&self.aggregate_signature.to_bytes()),
            "aggregate_public_key": to_hex(&self.aggregate_public_key.to_bytes()),
            "signers": ids(&self.signers),
            "non_signers": ids(&self.non_signers),
            "quorums": stakes_json(&self.quorums),
            "latency_ms": self.latency.as_secs_f64() * 1000.0,
        })
    }
}
