//! The AVS node: tasks in, signed responses out.
//!
//! A task arrives as `POST /task` ([`AvsNode::task`]). The node computes the answer with the
//! compiled-in AVS logic (`avs_protocol::Avs`; today [`avs_protocol::IncredibleSquaring`]), checks its
//! slashing protection ([`history`]), writes the updated signing history to the disk **before**
//! signing, signs the response's digest with the operator's BLS key (BN254 or BLS12-381, as the
//! spec's scheme says; [`operator`]) and both answers the request
//! with the signed response and queues it for the aggregator ([`outbox`]). The network side
//! (`crate::netstack`) makes each queued call over its own connection ([`crate::http::client`];
//! the JSON-RPC body and the meaning of the answer: [`rpc`]) and reports the outcome back; calls
//! the aggregator may accept later are retried with backoff.
//!
//! The operator key comes from the key file stored on the disk
//! ([`Operator::from_key_file`]); the secret never leaves this module and is never printed.
//! Without a key, or with a signing history that cannot be read, the node signs nothing.
//!
//! The node itself, with its keys and the signing path, is in [`node`]; the queue of responses
//! for the aggregator, their retries and the reachability probe are in [`outbox`]; this module
//! holds what they and the rest of the guest share (the disk's [`Records`], [`TaskError`] and
//! [`Cause`], the counters).
//!
//! # Reachability of the aggregator
//! Every call's result says whether the aggregator answered. When no call got an answer for
//! [`PROBE_INTERVAL_MS`](outbox::PROBE_INTERVAL_MS), the node probes it: an HTTP `GET /` (its
//! JSON-RPC server answers 405; any HTTP answer means reachable, a refused, reset or timed-out
//! connection means not). One probe at a time, at most one per `PROBE_INTERVAL_MS`. The last
//! result is the `aggregator` service's status in the node API ([`AvsNode::aggregator_status`]).
//!
//! # Counters
//! [`Stats`] counts tasks, rejections by [`Cause`], the fate of each signed response, probes,
//! and holds two histograms: the time of each BLS signature, measured around the sign call with
//! the clock the caller passes in, and the time of each JSON-RPC call, measured by the network
//! side.

/// The signing history's format and rules, shared with the operator's CLI.
pub use avs_protocol::history;
pub mod identity;
mod node;
pub mod operator;
mod outbox;
pub mod rpc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
pub use identity::{ChainKey, Identity};
pub use node::AvsNode;
pub use operator::Operator;
use prom_text::Histogram;
use spacecore_store::{BlockIo, RecordKey, Store};

/// The AVS the node runs (the `avs_name` label of the `eigen_` metrics).
pub const AVS_NAME: &str = "incredible-squaring";

/// Upper bounds (ns) of the buckets of `eigen_rpc_request_duration_seconds`: 5 ms to 10 s, the
/// Prometheus client's default buckets.
pub const RPC_BUCKETS_NS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds (ns) of the buckets of `spacecore_signing_duration_seconds`: 100 µs to 1 s (a
/// BLS signature takes about a millisecond).
pub const SIGNING_BUCKETS_NS: [u64; 12] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// The JSON-RPC method of the calls to the aggregator.
pub const RPC_METHOD: &str = "process_signed_task_response";

/// The records the node keeps on its disk.
pub trait Records {
    /// The value of `key`, if written.
    fn get(&mut self, key: RecordKey) -> Result<Option<Vec<u8>>, String>;
    /// Writes `value` as `key`; `Ok` only once it is on stable storage.
    fn put(&mut self, key: RecordKey, value: &[u8]) -> Result<(), String>;
}

impl<B: BlockIo> Records for Store<B> {
    fn get(&mut self, key: RecordKey) -> Result<Option<Vec<u8>>, String> {
        Store::get(self, key).map_err(|e| format!("{e:?}"))
    }

    fn put(&mut self, key: RecordKey, value: &[u8]) -> Result<(), String> {
        Store::put(self, key, value).map_err(|e| format!("{e:?}"))
    }
}

/// Why a task was not signed; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The task is not the configured task source's: no authorization, a bad one, or no task
    /// source configured (401). Nothing was written.
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

/// Counters of what the node did with tasks and with the calls to the aggregator.
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
    /// Time of each BLS signature.
    pub signing: Histogram<{ SIGNING_BUCKETS_NS.len() }>,
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
            signing: Histogram::new(SIGNING_BUCKETS_NS),
            rpc: Histogram::new(RPC_BUCKETS_NS),
        }
    }
}

#[cfg(test)]
mod power_cut;
#[cfg(test)]
pub mod tests;
