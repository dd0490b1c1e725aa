//! The AVS node: tasks in, signed responses out.
//!
//! A task arrives as `POST /task` ([`AvsNode::task`]). The node computes the answer with the
//! compiled-in AVS logic (`avs_protocol::Avs`; today [`IncredibleSquaring`]), checks its
//! slashing protection ([`history`]), writes the updated signing history to the disk **before**
//! signing, signs the response's digest with the operator's BLS key (BN254 or BLS12-381, as the
//! spec's scheme says; [`operator`]) and both answers the request
//! with the signed response and queues it for the aggregator ([`Outbox`]). The network side
//! (`crate::netstack`) makes each queued call over its own connection ([`crate::http::client`];
//! the JSON-RPC body and the meaning of the answer: [`rpc`]) and reports the outcome back; calls
//! the aggregator may accept later are retried with backoff.
//!
//! The operator key comes from the key file stored on the disk
//! ([`Operator::from_key_file`]); the secret never leaves this module and is never printed.
//! Without a key, or with a signing history that cannot be read, the node signs nothing.
//!
//! # Reachability of the aggregator
//! Every call's result says whether the aggregator answered. When no call got an answer for
//! [`PROBE_INTERVAL_MS`], the node probes it: an HTTP `GET /` (its JSON-RPC server answers 405;
//! any HTTP answer means reachable, a refused, reset or timed-out connection means not). One probe
//! at a time, at most one per [`PROBE_INTERVAL_MS`]. The last result is the `aggregator` service's
//! status in the node API ([`AvsNode::aggregator_status`]).
//!
//! # Counters
//! [`Stats`] counts tasks, rejections by [`Cause`], the fate of each signed response, probes,
//! and holds two histograms: the time of each BLS signature, measured around the sign call with
//! the clock the caller passes in, and the time of each JSON-RPC call, measured by the network
//! side.

/// The signing history's format and rules, shared with the operator's CLI.
pub use avs_protocol::history;
pub mod identity;
pub mod operator;
pub mod rpc;

use crate::http::calls::{CallRequest, Calls};
use crate::http::client::HttpResponse;
use crate::status::Status;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use avs_protocol::intake::AuthorizedTask;
use avs_protocol::{Avs, IncredibleSquaring, NewTask, OperatorSignature, SignedTaskResponse};
use history::{Check, History};
pub use identity::{ChainKey, Identity};
pub use operator::Operator;
use prom_text::Histogram;
use rpc::Outcome;
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

/// Whether the node can sign.
#[derive(Debug)]
enum KeyState {
    /// The keystore has not been decrypted yet.
    Loading,
    /// Loaded (boxed: the enum stays small while loading or unusable).
    Ready(alloc::boxed::Box<Operator>),
    /// No usable key or history: the reason.
    Unusable(String),
}

/// The operator's ECDSA key, as far as the node has it.
#[derive(Debug)]
enum ChainState {
    /// Not loaded (yet).
    Loading,
    /// Loaded; the identity statement once the BLS key is loaded too.
    Ready(alloc::boxed::Box<ChainKey>, Option<Identity>),
    /// No ECDSA key: the reason.
    Absent(String),
}

/// The AVS side of the node.
#[derive(Debug)]
pub struct AvsNode {
    key: KeyState,
    chain: ChainState,
    history: History,
    /// The Ethereum address whose signature a pushed task must carry (`spacecore.task_signer`);
    /// `None`: every pushed task is refused.
    task_source: Option<[u8; 20]>,
    outbox: Outbox,
    reach: Reach,
    /// The counters.
    pub stats: Stats,
}

/// Why a node whose disk holds a key but no signing history does not sign.
pub const MISSING_HISTORY: &str = "the disk holds a key but no signing history (wiped or lost): import the \
     history with `spacecore history import`, or start an empty one with `spacecore history new` if \
     this key never signed elsewhere";

impl AvsNode {
    /// A node whose key is still to be loaded, with the signing history read from `records`
    /// (an unreadable history, or a key record without a history, means the node will never
    /// sign).
    pub fn new(records: Option<&mut dyn Records>, sends: bool) -> Self {
        let mut node = AvsNode {
            key: KeyState::Loading,
            chain: ChainState::Loading,
            history: History::new(),
            task_source: None,
            outbox: Outbox::new(sends),
            reach: Reach::default(),
            stats: Stats::default(),
        };
        let Some(records) = records else {
            node.key = KeyState::Unusable("no disk: the signing history has nowhere to live".into());
            return node;
        };
        match records.get(RecordKey::SigningHistory) {
            Err(e) => node.key = KeyState::Unusable(format!("cannot read the signing history: {e}")),
            // `spacecore keys import` starts an empty history with the first key it puts on a
            // disk: a key without a history means the history was wiped or lost, and signing
            // from an empty one could sign a task again differently.
            Ok(None) => match records.get(RecordKey::Keystore) {
                Ok(None) => {}
                Ok(Some(_)) => node.key = KeyState::Unusable(MISSING_HISTORY.into()),
                Err(e) => node.key = KeyState::Unusable(format!("cannot read the key record: {e}")),
            },
            Ok(Some(bytes)) => match History::decode(&bytes) {
                Ok(history) => node.history = history,
                Err(e) => node.key = KeyState::Unusable(format!("the signing history is corrupt: {e:?}")),
            },
        }
        node
    }

    /// The task source: the Ethereum address whose authorization every `POST /task` must carry
    /// ([`avs_protocol::intake`]). Without one, pushed tasks are all refused (401).
    pub fn set_task_source(&mut self, source: Option<[u8; 20]>) {
        self.task_source = source;
    }

    /// Installs the operator key (unless the history is unusable); returns the reason the node
    /// will not sign, if any.
    pub fn set_operator(&mut self, operator: Result<Operator, String>) -> Result<&Operator, String> {
        if let KeyState::Unusable(why) = &self.key {
            return Err(why.clone());
        }
        self.key = match operator {
            Ok(op) => KeyState::Ready(alloc::boxed::Box::new(op)),
            Err(why) => KeyState::Unusable(why),
        };
        match &self.key {
            KeyState::Ready(op) => Ok(op),
            KeyState::Unusable(why) => Err(why.clone()),
            KeyState::Loading => unreachable!(),
        }
    }

    /// Installs the operator's ECDSA key, or the reason there is none, and signs the identity
    /// statement if the BLS key is loaded. Returns the address, or the reason.
    pub fn set_chain_key(&mut self, key: Result<ChainKey, String>) -> Result<[u8; 20], String> {
        self.chain = match key {
            Ok(key) => {
                let identity = self.operator().map(|op| Identity::new(op, &key));
                ChainState::Ready(alloc::boxed::Box::new(key), identity)
            }
            Err(why) => ChainState::Absent(why),
        };
        match &self.chain {
            ChainState::Ready(key, _) => Ok(key.address()),
            ChainState::Absent(why) => Err(why.clone()),
            ChainState::Loading => unreachable!(),
        }
    }

    /// The operator's ECDSA key, once loaded (for the chain client).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the chain client, which uses it, is not in the guest yet")
    )]
    pub fn chain_key(&self) -> Option<&ChainKey> {
        match &self.chain {
            ChainState::Ready(key, _) => Some(key),
            _ => None,
        }
    }

    /// `GET /spacecore/identity`: the operator's scheme, id and public key, and its ECDSA address
    /// with the signed identity statement (`null`s and `ecdsa_error` without an ECDSA key).
    /// `Err((503, why))` while the BLS key is not loaded.
    pub fn identity_json(&self) -> Result<serde_json::Value, (u16, String)> {
        use avs_protocol::OperatorPublicKey;
        use avs_protocol::encoding::to_hex;
        use serde_json::{Value, json};
        let operator = match &self.key {
            KeyState::Ready(op) => op,
            KeyState::Loading => return Err((503, "the operator key is still loading".into())),
            KeyState::Unusable(why) => return Err((503, format!("not signing: {why}"))),
        };
        let mut out = json!({
            "scheme": operator.scheme().name(),
            "operator_id": to_hex(&operator.id),
        });
        match operator.public_key() {
            OperatorPublicKey::Bn254(key) => {
                out["g1"] = to_hex(&key.g1().to_bytes()).into();
                out["g2"] = to_hex(&key.g2().to_bytes()).into();
            }
            OperatorPublicKey::Bls12381(key) => out["pubkey"] = to_hex(&key.to_bytes()).into(),
        }
        let (address, statement, signature, error) = match &self.chain {
            ChainState::Ready(key, Some(identity)) => (
                to_hex(&key.address()).into(),
                identity.statement.clone().into(),
                to_hex(&identity.signature).into(),
                Value::Null,
            ),
            ChainState::Ready(key, None) => {
                // Loaded before the BLS key: sign now (deterministic, so always the same).
                let identity = Identity::new(operator, key);
                (
                    to_hex(&identity.address).into(),
                    identity.statement.into(),
                    to_hex(&identity.signature).into(),
                    Value::Null,
                )
            }
            ChainState::Loading => {
                (Value::Null, Value::Null, Value::Null, "the ECDSA key is still loading".into())
            }
            ChainState::Absent(why) => (Value::Null, Value::Null, Value::Null, why.as_str().into()),
        };
        out["ecdsa_address"] = address;
        out["statement"] = statement;
        out["signature"] = signature;
        out["ecdsa_error"] = error;
        Ok(out)
    }

    /// The operator, once its key is loaded.
    pub fn operator(&self) -> Option<&Operator> {
        match &self.key {
            KeyState::Ready(op) => Some(op),
            _ => None,
        }
    }

    /// The `signer` service: initializing while the key loads, up once it is loaded, down when
    /// the node will not sign (no key, no disk, unusable history).
    pub fn signer_status(&self) -> Status {
        match self.key {
            KeyState::Loading => Status::Initializing,
            KeyState::Ready(_) => Status::Up,
            KeyState::Unusable(_) => Status::Down,
        }
    }

    /// The `aggregator` service, if signed responses go to one: initializing until a call or
    /// probe finishes, then up if the last one got an HTTP answer, down if it did not.
    pub fn aggregator_status(&self) -> Option<Status> {
        self.outbox.sends.then_some(self.reach.status)
    }

    /// Whether signed responses go to an aggregator.
    pub fn sends(&self) -> bool {
        self.outbox.sends
    }

    /// Signed responses waiting to be sent or in flight.
    pub fn queued(&self) -> usize {
        self.outbox.queue.len()
    }

    /// How much of the signing history is in use, and its floor.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Answers a `POST /task` body: the signed response, or why there is none. The task must
    /// carry the task source's authorization: otherwise 401, and nothing is computed, written
    /// or signed. `now` reads the clock, in nanoseconds since boot: it times the signature and
    /// dates the queued call.
    pub fn task(
        &mut self,
        body: &[u8],
        records: Option<&mut dyn Records>,
        now: &dyn Fn() -> u64,
    ) -> Result<SignedTaskResponse, TaskError> {
        self.stats.received = self.stats.received.saturating_add(1);
        let result = serde_json::from_slice::<AuthorizedTask>(body)
            .map_err(|e| TaskError::Malformed(format!("not a task: {e}")))
            .and_then(|request| self.authenticate(request))
            .and_then(|task| self.sign_task(&task, records, now));
        self.count(&result);
        result
    }

    /// The pushed task, if it is the task source's.
    fn authenticate(&self, request: AuthorizedTask) -> Result<NewTask, TaskError> {
        let Some(source) = &self.task_source else {
            return Err(TaskError::Unauthorized(
                "this node has no task source (spec.avs.task_signer): pushed tasks are refused".into(),
            ));
        };
        let index = request.task_index;
        request.verify(source).map_err(|e| TaskError::Unauthorized(format!("task {index}: {e}")))
    }

    /// Answers a task read from the chain (`crate::chain`): the same path as `POST /task`
    /// (compute, slashing protection, sign, queue for the aggregator), counted as signed or
    /// rejected like one; `received` counts only `POST /task` requests.
    pub fn chain_task(
        &mut self,
        task: &NewTask,
        records: Option<&mut dyn Records>,
        now: &dyn Fn() -> u64,
    ) -> Result<SignedTaskResponse, TaskError> {
        let result = self.sign_task(task, records, now);
        self.count(&result);
        result
    }

    fn count(&mut self, result: &Result<SignedTaskResponse, TaskError>) {
        match result {
            Ok(_) => self.stats.signed = self.stats.signed.saturating_add(1),
            Err(e) => {
                let n = &mut self.stats.rejected[e.cause() as usize];
                *n = n.saturating_add(1);
            }
        }
    }

    fn sign_task(
        &mut self,
        task: &NewTask,
        records: Option<&mut dyn Records>,
        now: &dyn Fn() -> u64,
    ) -> Result<SignedTaskResponse, TaskError> {
        self.ready_operator()?;
        let response = IncredibleSquaring.respond(task).map_err(|e| {
            TaskError::Unanswerable(format!("task {} cannot be answered: {e}", task.task_index))
        })?;
        let digest = IncredibleSquaring::digest(&response);
        let (signature, end) = self.sign_digest(task.task_index, &digest, records, now)?;
        let operator_id = self.ready_operator()?.id;
        let signed = SignedTaskResponse { task_response: response, signature, operator_id };
        if self.outbox.push(signed, end / 1_000_000) {
            self.stats.dropped = self.stats.dropped.saturating_add(1);
        }
        Ok(signed)
    }

    /// The loaded operator key, or why the node does not sign.
    fn ready_operator(&self) -> Result<&Operator, TaskError> {
        match &self.key {
            KeyState::Ready(op) => Ok(op),
            KeyState::Loading => Err(TaskError::NotSigning("the operator key is still loading".into())),
            KeyState::Unusable(why) => Err(TaskError::NotSigning(format!("not signing: {why}"))),
        }
    }

    /// Signs `digest` as the answer to task `index` under the slashing protection: the history
    /// that allows it is on the disk before the signature exists. Returns the signature and the
    /// clock reading after it. The one signing path of the node: pushed and chain tasks, and
    /// the AVS SDK's `sign_task`.
    pub fn sign_digest(
        &mut self,
        index: u32,
        digest: &[u8; 32],
        records: Option<&mut dyn Records>,
        now: &dyn Fn() -> u64,
    ) -> Result<(OperatorSignature, u64), TaskError> {
        self.ready_operator()?;
        match self.history.check(index, digest) {
            Check::Repeat => {}
            Check::New => {
                let records =
                    records.ok_or_else(|| TaskError::NotSigning("no disk for the signing history".into()))?;
                let mut updated = self.history.clone();
                updated.record(index, *digest).map_err(|check| refusal(index, check, &self.history))?;
                records.put(RecordKey::SigningHistory, &updated.encode()).map_err(|e| {
                    TaskError::Storage(format!("cannot record the signature of task {index}: {e}"))
                })?;
                self.history = updated;
            }
            check => return Err(refusal(index, check, &self.history)),
        }
        let operator = self.ready_operator()?;
        let start = now();
        let signature = operator.sign(digest);
        let end = now();
        self.stats.signing.observe(end.saturating_sub(start));
        Ok((signature, end))
    }

    /// Signs `digest` with no slashing protection: for the AVS SDK's domain-separated
    /// attestations only (`crate::sdk`), which can never be a task response's digest.
    pub fn sign_attestation(
        &mut self,
        digest: &[u8; 32],
        now: &dyn Fn() -> u64,
    ) -> Result<OperatorSignature, TaskError> {
        let operator = self.ready_operator()?;
        let start = now();
        let signature = operator.sign(digest);
        self.stats.signing.observe(now().saturating_sub(start));
        Ok(signature)
    }

    /// The task source (`spacecore.task_signer`), if any.
    pub fn task_source(&self) -> Option<&[u8; 20]> {
        self.task_source.as_ref()
    }

    /// Whether calls are queued or in flight.
    pub fn calls_pending(&self) -> bool {
        !self.outbox.queue.is_empty()
    }
}

impl Calls for AvsNode {
    fn next_call(&mut self, now_ms: u64) -> Option<(u64, CallRequest)> {
        if !self.outbox.sends {
            return None;
        }
        if self.reach.probe_due().is_some_and(|due| due <= now_ms) {
            let id = self.outbox.new_id();
            self.reach.probe = Some(id);
            self.reach.last_probe_ms = Some(now_ms);
            self.stats.probes = self.stats.probes.saturating_add(1);
            return Some((id, CallRequest::Probe));
        }
        self.outbox.next_call(now_ms).map(|(id, body)| (id, CallRequest::Rpc(body)))
    }

    fn next_due(&self) -> Option<u64> {
        if !self.outbox.sends {
            return None;
        }
        match (self.outbox.next_due(), self.reach.probe_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn call_done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        now_ms: u64,
        elapsed_us: u64,
    ) -> Option<String> {
        let answered = result.is_ok();
        if self.reach.probe == Some(id) {
            self.reach.probe = None;
            self.reach.settle(answered, now_ms);
            return None;
        }
        let (done, line) = self.outbox.done(id, result, now_ms)?;
        self.reach.settle(answered, now_ms);
        self.stats.rpc.observe(elapsed_us.saturating_mul(1000));
        let counter = match done {
            Some(Done::Accepted) => &mut self.stats.accepted,
            Some(Done::Refused) => &mut self.stats.refused,
            Some(Done::Undelivered) => &mut self.stats.undelivered,
            None => return line,
        };
        *counter = counter.saturating_add(1);
        line
    }
}

/// Time without an answer from the aggregator after which it is probed, and the shortest time
/// between two probes.
pub const PROBE_INTERVAL_MS: u64 = 5000;

/// What the node knows of the aggregator's reachability.
#[derive(Debug)]
struct Reach {
    status: Status,
    /// When a call or probe last got an HTTP answer.
    last_answer_ms: Option<u64>,
    /// When the last probe started.
    last_probe_ms: Option<u64>,
    /// The probe in flight, if any.
    probe: Option<u64>,
}

impl Default for Reach {
    fn default() -> Self {
        Reach { status: Status::Initializing, last_answer_ms: None, last_probe_ms: None, probe: None }
    }
}

impl Reach {
    /// When the next probe is due: [`PROBE_INTERVAL_MS`] after both the last answer and the
    /// last probe (at once before either); `None` while one is in flight.
    fn probe_due(&self) -> Option<u64> {
        if self.probe.is_some() {
            return None;
        }
        let after = |t: Option<u64>| t.map_or(0, |t| t.saturating_add(PROBE_INTERVAL_MS));
        Some(after(self.last_answer_ms).max(after(self.last_probe_ms)))
    }

    /// A call or probe finished: `answered` if an HTTP answer came.
    fn settle(&mut self, answered: bool, now_ms: u64) {
        if answered {
            self.status = Status::Up;
            self.last_answer_ms = Some(now_ms);
        } else {
            self.status = Status::Down;
        }
    }
}

fn refusal(index: u32, check: Check, history: &History) -> TaskError {
    TaskError::Refused(match check {
        Check::Conflict => {
            format!("task {index}: a different response was already signed (slashing protection)")
        }
        _ => format!(
            "task {index}: older than the signing history covers (it starts at task {}); not signed",
            history.floor()
        ),
    })
}

/// Most responses waiting to be sent; beyond, the oldest is dropped.
pub const MAX_QUEUED: usize = 256;
/// Tries per response before giving up.
pub const MAX_ATTEMPTS: u32 = 8;
/// Wait before the first retry; it doubles at each, up to [`MAX_BACKOFF_MS`].
pub const FIRST_BACKOFF_MS: u64 = 100;
/// Longest wait between two tries.
pub const MAX_BACKOFF_MS: u64 = 3200;

/// A signed response on its way to the aggregator.
#[derive(Debug)]
struct Pending {
    signed: SignedTaskResponse,
    attempts: u32,
    due_ms: u64,
    /// The id of the call carrying it, while one is in flight.
    call: Option<u64>,
}

/// Signed responses to send, with their retries.
#[derive(Debug)]
struct Outbox {
    /// Whether there is an aggregator to send to at all.
    sends: bool,
    queue: VecDeque<Pending>,
    next_id: u64,
}

impl Outbox {
    fn new(sends: bool) -> Self {
        Outbox { sends, queue: VecDeque::new(), next_id: 1 }
    }

    /// Queues `signed` unless it is queued already; returns whether the oldest response was
    /// dropped to make room.
    fn push(&mut self, signed: SignedTaskResponse, now_ms: u64) -> bool {
        let index = signed.task_response.reference_task_index;
        if !self.sends || self.queue.iter().any(|p| p.signed.task_response.reference_task_index == index) {
            return false;
        }
        let full = self.queue.len() == MAX_QUEUED;
        if full {
            self.queue.pop_front();
        }
        self.queue.push_back(Pending { signed, attempts: 0, due_ms: now_ms, call: None });
        full
    }

    /// A call id never given before.
    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn next_call(&mut self, now_ms: u64) -> Option<(u64, Vec<u8>)> {
        let at = self.queue.iter().position(|p| p.call.is_none() && p.due_ms <= now_ms)?;
        let id = self.new_id();
        let pending = &mut self.queue[at];
        pending.call = Some(id);
        pending.attempts += 1;
        Some((id, rpc::rpc_body(id, &pending.signed)))
    }

    fn next_due(&self) -> Option<u64> {
        self.queue.iter().filter(|p| p.call.is_none()).map(|p| p.due_ms).min()
    }

    /// Settles call `id`: `(how the response is done with, if it is; a line to log)`; `None`
    /// for an unknown id.
    fn done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        now_ms: u64,
    ) -> Option<(Option<Done>, Option<String>)> {
        let at = self.queue.iter().position(|p| p.call == Some(id))?;
        let pending = &mut self.queue[at];
        pending.call = None;
        let index = pending.signed.task_response.reference_task_index;
        let (retry, why) = match result {
            Ok(response) => match rpc::outcome(&response, id) {
                Outcome::Accepted => {
                    self.queue.remove(at);
                    return Some((Some(Done::Accepted), None));
                }
                outcome => (rpc::should_retry(&outcome), describe(&outcome)),
            },
            Err(transport) => (true, transport),
        };
        if retry && pending.attempts < MAX_ATTEMPTS {
            let backoff = (FIRST_BACKOFF_MS << (pending.attempts - 1).min(16)).min(MAX_BACKOFF_MS);
            pending.due_ms = now_ms + backoff;
            return Some((None, None));
        }
        self.queue.remove(at);
        Some(if retry {
            let line =
                format!("avs: task {index}: response not delivered after {MAX_ATTEMPTS} attempts: {why}");
            (Some(Done::Undelivered), Some(line))
        } else {
            (
                Some(Done::Refused),
                Some(format!("avs: task {index}: response refused by the aggregator: {why}")),
            )
        })
    }
}

/// How a response left the queue after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Accepted,
    Refused,
    Undelivered,
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted => "accepted".into(),
        Outcome::Refused { code, message } => format!("code {code}: {message}"),
        Outcome::Unusable(why) => why.clone(),
    }
}

#[cfg(test)]
mod power_cut;
#[cfg(test)]
pub mod tests;
