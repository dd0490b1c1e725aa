//! The AVS node: tasks in, signed responses out.
//!
//! A task arrives as `POST /task` ([`AvsNode::task`]). The node computes the answer with the
//! compiled-in AVS logic (`avs_protocol::Avs`; today [`IncredibleSquaring`]), checks its
//! slashing protection ([`history`]), writes the updated signing history to the disk **before**
//! signing, signs the response's digest with the operator's BLS key and both answers the request
//! with the signed response and queues it for the aggregator ([`Outbox`]). The network side
//! (`crate::netstack`) makes each queued call over its own connection ([`client`]) and reports
//! the outcome back; calls the aggregator may accept later are retried with backoff.
//!
//! The operator key comes from the EIP-2335 keystore stored on the disk
//! ([`Operator::from_keystore`]); the secret never leaves this module and is never printed.
//! Without a key, or with a signing history that cannot be read, the node signs nothing.

pub mod client;
pub mod history;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use avs_protocol::bls::SecretKey;
use avs_protocol::{Avs, IncredibleSquaring, NewTask, SignedTaskResponse, TaskResponse};
use client::{HttpResponse, Outcome};
use history::{Check, History};
use spacecore_store::{BlockIo, RecordKey, Store};

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

/// The operator's signing key and what it is known by.
pub struct Operator {
    key: SecretKey,
    /// `keccak256` of the compressed public key: the operator id the aggregator knows.
    pub id: [u8; 32],
    /// The compressed public key.
    pub pubkey: [u8; 48],
}

impl core::fmt::Debug for Operator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Operator").field("id", &avs_protocol::encoding::to_hex(&self.id)).finish()
    }
}

impl Operator {
    /// Decrypts the EIP-2335 keystore `json` with `password` (the launcher's bytes, UTF-8).
    pub fn from_keystore(json: &[u8], password: &[u8]) -> Result<Self, String> {
        let json = core::str::from_utf8(json).map_err(|_| "the stored keystore is not UTF-8".to_string())?;
        let password = core::str::from_utf8(password).map_err(|_| "the password is not UTF-8".to_string())?;
        let keystore = eip2335::Keystore::from_json(json).map_err(|e| format!("unusable keystore: {e}"))?;
        let secret = keystore.decrypt(password).map_err(|e| format!("cannot decrypt the keystore: {e}"))?;
        let bytes: &[u8; 32] =
            secret.as_slice().try_into().map_err(|_| "the keystore's secret is not 32 bytes".to_string())?;
        let key = SecretKey::from_bytes(bytes).map_err(|e| format!("the keystore's secret: {e}"))?;
        Ok(Self::new(key))
    }

    /// The operator of `key`.
    pub fn new(key: SecretKey) -> Self {
        let public = key.public_key();
        Operator { id: public.operator_id(), pubkey: public.to_bytes(), key }
    }

    /// Signs `response` (its EigenLayer digest).
    fn sign(&self, response: TaskResponse) -> SignedTaskResponse {
        let signature = self.key.sign(&IncredibleSquaring::digest(&response)).to_bytes();
        SignedTaskResponse { task_response: response, signature, operator_id: self.id }
    }
}

/// Why a task was not signed; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
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
            TaskError::Malformed(_) => 400,
            TaskError::Unanswerable(_) => 422,
            TaskError::Refused(_) => 409,
            TaskError::NotSigning(_) => 503,
            TaskError::Storage(_) => 500,
        }
    }

    /// The message, for the error body.
    pub fn message(&self) -> &str {
        match self {
            TaskError::Malformed(m)
            | TaskError::Unanswerable(m)
            | TaskError::Refused(m)
            | TaskError::NotSigning(m)
            | TaskError::Storage(m) => m,
        }
    }
}

/// Counters of what the node did with tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `POST /task` requests.
    pub received: u64,
    /// Responses signed (including a repeat of one signed before).
    pub signed: u64,
    /// Tasks refused, by [`TaskError`] kind: malformed, unanswerable, refused by slashing
    /// protection, not signing, storage failure.
    pub rejected: [u64; 5],
    /// Responses the aggregator accepted.
    pub accepted: u64,
    /// Responses the aggregator refused, or given up on after the last retry.
    pub failed: u64,
}

/// Whether the node can sign.
#[derive(Debug)]
enum KeyState {
    /// The keystore has not been decrypted yet.
    Loading,
    Ready(Operator),
    /// No usable key or history: the reason.
    Unusable(String),
}

/// The AVS side of the node.
#[derive(Debug)]
pub struct AvsNode {
    key: KeyState,
    history: History,
    outbox: Outbox,
    /// The counters.
    pub stats: Stats,
}

impl AvsNode {
    /// A node whose key is still to be loaded, with the signing history read from `records`
    /// (an unreadable history means the node will never sign).
    pub fn new(records: Option<&mut dyn Records>, sends: bool) -> Self {
        let mut node = AvsNode {
            key: KeyState::Loading,
            history: History::new(),
            outbox: Outbox::new(sends),
            stats: Stats::default(),
        };
        match records.map(|r| r.get(RecordKey::SigningHistory)) {
            None => node.key = KeyState::Unusable("no disk: the signing history has nowhere to live".into()),
            Some(Err(e)) => node.key = KeyState::Unusable(format!("cannot read the signing history: {e}")),
            Some(Ok(None)) => {}
            Some(Ok(Some(bytes))) => match History::decode(&bytes) {
                Ok(history) => node.history = history,
                Err(e) => node.key = KeyState::Unusable(format!("the signing history is corrupt: {e:?}")),
            },
        }
        node
    }

    /// Installs the operator key (unless the history is unusable); returns the reason the node
    /// will not sign, if any.
    pub fn set_operator(&mut self, operator: Result<Operator, String>) -> Result<&Operator, String> {
        if let KeyState::Unusable(why) = &self.key {
            return Err(why.clone());
        }
        self.key = match operator {
            Ok(op) => KeyState::Ready(op),
            Err(why) => KeyState::Unusable(why),
        };
        match &self.key {
            KeyState::Ready(op) => Ok(op),
            KeyState::Unusable(why) => Err(why.clone()),
            KeyState::Loading => unreachable!(),
        }
    }

    /// The operator, once its key is loaded.
    pub fn operator(&self) -> Option<&Operator> {
        match &self.key {
            KeyState::Ready(op) => Some(op),
            _ => None,
        }
    }

    /// How much of the signing history is in use, and its floor.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Answers a `POST /task` body: the signed response, or why there is none.
    pub fn task(
        &mut self,
        body: &[u8],
        records: Option<&mut dyn Records>,
        now_ms: u64,
    ) -> Result<SignedTaskResponse, TaskError> {
        self.stats.received += 1;
        let result = self.sign_task(body, records, now_ms);
        match &result {
            Ok(_) => self.stats.signed += 1,
            Err(e) => {
                let i = match e {
                    TaskError::Malformed(_) => 0,
                    TaskError::Unanswerable(_) => 1,
                    TaskError::Refused(_) => 2,
                    TaskError::NotSigning(_) => 3,
                    TaskError::Storage(_) => 4,
                };
                self.stats.rejected[i] += 1;
            }
        }
        result
    }

    fn sign_task(
        &mut self,
        body: &[u8],
        records: Option<&mut dyn Records>,
        now_ms: u64,
    ) -> Result<SignedTaskResponse, TaskError> {
        let task: NewTask =
            serde_json::from_slice(body).map_err(|e| TaskError::Malformed(format!("not a task: {e}")))?;
        let operator = match &self.key {
            KeyState::Ready(op) => op,
            KeyState::Loading => {
                return Err(TaskError::NotSigning("the operator key is still loading".into()));
            }
            KeyState::Unusable(why) => return Err(TaskError::NotSigning(format!("not signing: {why}"))),
        };
        let response = IncredibleSquaring.respond(&task).map_err(|e| {
            TaskError::Unanswerable(format!("task {} cannot be answered: {e}", task.task_index))
        })?;
        let digest = IncredibleSquaring::digest(&response);
        let index = task.task_index;
        match self.history.check(index, &digest) {
            Check::Repeat => {}
            Check::New => {
                let records =
                    records.ok_or_else(|| TaskError::NotSigning("no disk for the signing history".into()))?;
                let mut updated = self.history.clone();
                updated.record(index, digest).map_err(|check| refusal(index, check, &self.history))?;
                records.put(RecordKey::SigningHistory, &updated.encode()).map_err(|e| {
                    TaskError::Storage(format!("cannot record the signature of task {index}: {e}"))
                })?;
                self.history = updated;
            }
            check => return Err(refusal(index, check, &self.history)),
        }
        let signed = operator.sign(response);
        self.outbox.push(signed, now_ms);
        Ok(signed)
    }

    /// Whether calls are queued or in flight.
    pub fn calls_pending(&self) -> bool {
        !self.outbox.queue.is_empty()
    }
}

/// Calls to the aggregator, as the network side makes them: one HTTP request each, over its own
/// connection. Times are milliseconds since boot.
pub trait Calls {
    /// The next call due at `now_ms`: its id and JSON-RPC request body. It is in flight until
    /// [`Calls::call_done`] reports on it.
    fn next_call(&mut self, now_ms: u64) -> Option<(u64, Vec<u8>)>;
    /// When the next queued call becomes due, if one waits (calls in flight excluded).
    fn next_due(&self) -> Option<u64>;
    /// The result of call `id`: the HTTP response, or why there is none. Returns a line worth
    /// logging, if any.
    fn call_done(&mut self, id: u64, result: Result<HttpResponse, String>, now_ms: u64) -> Option<String>;
}

impl Calls for AvsNode {
    fn next_call(&mut self, now_ms: u64) -> Option<(u64, Vec<u8>)> {
        self.outbox.next_call(now_ms)
    }

    fn next_due(&self) -> Option<u64> {
        self.outbox.next_due()
    }

    fn call_done(&mut self, id: u64, result: Result<HttpResponse, String>, now_ms: u64) -> Option<String> {
        let (done, line) = self.outbox.done(id, result, now_ms)?;
        match done {
            Some(true) => self.stats.accepted += 1,
            Some(false) => self.stats.failed += 1,
            None => {}
        }
        line
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

    fn push(&mut self, signed: SignedTaskResponse, now_ms: u64) {
        let index = signed.task_response.reference_task_index;
        if !self.sends || self.queue.iter().any(|p| p.signed.task_response.reference_task_index == index) {
            return;
        }
        if self.queue.len() == MAX_QUEUED {
            self.queue.pop_front();
        }
        self.queue.push_back(Pending { signed, attempts: 0, due_ms: now_ms, call: None });
    }

    fn next_call(&mut self, now_ms: u64) -> Option<(u64, Vec<u8>)> {
        let pending = self.queue.iter_mut().find(|p| p.call.is_none() && p.due_ms <= now_ms)?;
        let id = self.next_id;
        self.next_id += 1;
        pending.call = Some(id);
        pending.attempts += 1;
        Some((id, client::rpc_body(id, &pending.signed)))
    }

    fn next_due(&self) -> Option<u64> {
        self.queue.iter().filter(|p| p.call.is_none()).map(|p| p.due_ms).min()
    }

    /// Settles call `id`: `(Some(accepted) if the response is done with, a line to log)`;
    /// `None` for an unknown id.
    fn done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        now_ms: u64,
    ) -> Option<(Option<bool>, Option<String>)> {
        let at = self.queue.iter().position(|p| p.call == Some(id))?;
        let pending = &mut self.queue[at];
        pending.call = None;
        let index = pending.signed.task_response.reference_task_index;
        let (retry, why) = match result {
            Ok(response) => match client::outcome(&response, id) {
                Outcome::Accepted => {
                    self.queue.remove(at);
                    return Some((Some(true), None));
                }
                outcome => (client::should_retry(&outcome), describe(&outcome)),
            },
            Err(transport) => (true, transport),
        };
        if retry && pending.attempts < MAX_ATTEMPTS {
            let backoff = (FIRST_BACKOFF_MS << (pending.attempts - 1).min(16)).min(MAX_BACKOFF_MS);
            pending.due_ms = now_ms + backoff;
            return Some((None, None));
        }
        self.queue.remove(at);
        let line = if retry {
            format!("avs: task {index}: response not delivered after {MAX_ATTEMPTS} attempts: {why}")
        } else {
            format!("avs: task {index}: response refused by the aggregator: {why}")
        };
        Some((Some(false), Some(line)))
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted => "accepted".into(),
        Outcome::Refused { code, message } => format!("code {code}: {message}"),
        Outcome::Unusable(why) => why.clone(),
    }
}

#[cfg(test)]
pub mod tests;
