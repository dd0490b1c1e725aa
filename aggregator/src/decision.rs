//! What the aggregation service decides: why a task is refused ([`TaskError`]), why a response
//! is refused ([`Rejection`]), and what a completed task yields ([`AggregatedResponse`]).

use std::time::Duration;

use avs_protocol::encoding::to_hex;
use avs_protocol::rpc::ErrorCode;
use avs_protocol::{Scheme, TaskResponse, bls, bn254};
use serde_json::{Value, json};

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
    /// The service has no static operator set (it runs on the chain): a task must come with
    /// its own (`initialize_task_with`).
    #[error("no operator set: on the chain, a task is registered with its block's operator set")]
    NoOperatorSet,
    /// The service's most tasks at once (`service::MAX_ACTIVE_TASKS`, given) are already
    /// waiting.
    #[error("{0} tasks are already in flight")]
    TooMany(usize),
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
    /// The aggregate signature and keys, in the operator set's scheme.
    pub aggregate: Aggregate,
    /// The signers' operator ids, sorted.
    pub signers: Vec<[u8; 32]>,
    /// Operator ids of the task's quorums that did not sign, sorted (ascending, as EigenLayer's
    /// `BLSSignatureChecker` wants its non-signers).
    pub non_signers: Vec<[u8; 32]>,
    /// Signed and total stake per quorum, in the task's quorum order.
    pub quorums: Vec<QuorumStake>,
    /// Time from registration to completion.
    pub latency: Duration,
}

/// A completed task's aggregate, checked before it was emitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// BN254: what EigenLayer's `NonSignerStakesAndSignature` carries about keys and signature.
    Bn254(Bn254Aggregate),
    /// BLS12-381: the summed signature and the summed keys it verifies against
    /// (`FastAggregateVerify`).
    Bls12381 {
        /// The sum of the signers' signatures.
        signature: bls::Signature,
        /// The sum of the signers' public keys.
        public_key: bls::PublicKey,
    },
}

/// A BN254 aggregate: `bn254::verify(apk_g2, digest, signature)` holds, and `signers_apk_g1`
/// and `apk_g2` have the same secret (the pairing check the contracts make between them).
#[derive(Debug, Clone, PartialEq)]
pub struct Bn254Aggregate {
    /// The sum of the signers' signatures (`sigma`), a G1 point.
    pub signature: bn254::Signature,
    /// The sum of the signers' G2 keys (`apkG2`).
    pub apk_g2: bn254::G2Point,
    /// The sum of the signers' G1 keys.
    pub signers_apk_g1: bn254::G1Point,
    /// The G1 keys of the non-signers, in the order of [`AggregatedResponse::non_signers`]
    /// (`nonSignerPubkeys`).
    pub non_signer_pubkeys: Vec<bn254::G1Point>,
    /// Per quorum of the task, in its order: the sum of the G1 keys of every operator with stake
    /// in it, signer or not (`quorumApks`).
    pub quorum_apks: Vec<(u8, bn254::G1Point)>,
}

impl Aggregate {
    /// The scheme of the aggregate.
    pub fn scheme(&self) -> Scheme {
        match self {
            Aggregate::Bn254(_) => Scheme::Bn254,
            Aggregate::Bls12381 { .. } => Scheme::Bls12381,
        }
    }

    /// The aggregate signature's encoding: 64 bytes (BN254) or 96 (BLS12-381).
    pub fn signature_bytes(&self) -> Vec<u8> {
        match self {
            Aggregate::Bn254(a) => a.signature.to_bytes().to_vec(),
            Aggregate::Bls12381 { signature, .. } => signature.to_bytes().to_vec(),
        }
    }

    /// The decision log's fields for this aggregate (see `docs/aggregator.md`).
    fn json_fields(&self) -> Value {
        match self {
            Aggregate::Bls12381 { signature, public_key } => json!({
                "aggregate_signature": to_hex(&signature.to_bytes()),
                "aggregate_public_key": to_hex(&public_key.to_bytes()),
            }),
            Aggregate::Bn254(a) => {
                let quorum_apks: Vec<Value> = a
                    .quorum_apks
                    .iter()
                    .map(|(quorum, apk)| json!({"quorum": quorum, "apk": to_hex(&apk.to_bytes())}))
                    .collect();
                let non_signer_pubkeys: Vec<String> =
                    a.non_signer_pubkeys.iter().map(|k| to_hex(&k.to_bytes())).collect();
                json!({
                    "aggregate_signature": to_hex(&a.signature.to_bytes()),
                    "apk_g2": to_hex(&a.apk_g2.to_bytes()),
                    "signers_apk_g1": to_hex(&a.signers_apk_g1.to_bytes()),
                    "non_signer_pubkeys": non_signer_pubkeys,
                    "quorum_apks": quorum_apks,
                })
            }
        }
    }
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
        let mut fields = json!({
            "task_index": self.task_index,
            "number_squared": self.task_response.number_squared.to_string(),
            "digest": to_hex(&self.digest),
            "scheme": self.aggregate.scheme().name(),
            "signers": ids(&self.signers),
            "non_signers": ids(&self.non_signers),
            "quorums": stakes_json(&self.quorums),
            "latency_ms": self.latency.as_secs_f64() * 1000.0,
        });
        if let (Value::Object(fields), Value::Object(aggregate)) = (&mut fields, self.aggregate.json_fields())
        {
            fields.extend(aggregate);
        }
        fields
    }
}
