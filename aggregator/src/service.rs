//! The BLS aggregation service, for BN254 or BLS12-381 operator sets: tasks are registered with [`AggregationService::initialize_task`],
//! each signed response is checked and counted by
//! [`AggregationService::process_signed_task_response`], and a task completes, with one
//! [`AggregatedResponse`], when the signed stake of every one of its quorums reaches its
//! threshold. Tasks that do not complete in time expire ([`AggregationService::expire_due`]).
//!
//! All decisions are taken under one lock; the pairing check of a response runs outside it, so
//! responses to any tasks are verified in parallel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use avs_protocol::encoding::to_hex;
use avs_protocol::rpc::ErrorCode;
use avs_protocol::{
    NewTask, OperatorPublicKey, OperatorSignature, Scheme, SignedTaskResponse, TaskResponse, bls, bn254,
};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

pub use crate::decision::{Aggregate, AggregatedResponse, Bn254Aggregate, QuorumStake, Rejection, TaskError};
use crate::decision::{ids, stakes_json};
use crate::decision_log::DecisionLog;
use crate::metrics::{Metrics, SignatureFault};
use crate::operators::{Operator, OperatorSet};

/// Most tasks waiting for responses at once.
pub const MAX_ACTIVE_TASKS: usize = 10_000;
/// How many completed or expired task indices are remembered (to answer `TaskExpired` rather
/// than `TaskNotFound`, and to refuse re-registering an index).
pub const MAX_RETIRED_TASKS: usize = 100_000;

struct ActiveTask {
    task: NewTask,
    /// The operators who may answer, with their stakes: the static set, or the chain's at the
    /// task's block.
    operators: Arc<OperatorSet>,
    expected: TaskResponse,
    digest: [u8; 32],
    created: Instant,
    deadline: Instant,
    stakes: Vec<QuorumStake>,
    signers: BTreeMap<[u8; 32], Accepted>,
}

/// A verified signature with the key it verified against.
#[derive(Debug, Clone, Copy)]
enum Accepted {
    Bn254(bn254::PublicKey, bn254::Signature),
    Bls12381(bls::PublicKey, bls::Signature),
}

impl ActiveTask {
    fn threshold_met(&self) -> bool {
        let threshold = u128::from(self.task.task.quorum_threshold_percentage);
        self.stakes.iter().all(|q| q.signed_stake * 100 >= q.total_stake * threshold)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Expired,
}

#[derive(Default)]
struct State {
    active: BTreeMap<u32, ActiveTask>,
    retired: BTreeMap<u32, Outcome>,
}

/// The aggregation service. Share it with an `Arc`.
#[derive(Debug)]
pub struct AggregationService {
    operators: Option<Arc<OperatorSet>>,
    expiry: Duration,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    log: DecisionLog,
    aggregates: broadcast::Sender<AggregatedResponse>,
    completions: Mutex<Option<mpsc::UnboundedSender<AggregatedResponse>>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "State({} active, {} retired)", self.active.len(), self.retired.len())
    }
}

impl AggregationService {
    /// A service for `operators` whose tasks expire `expiry` after registration.
    pub fn new(
        operators: Arc<OperatorSet>,
        expiry: Duration,
        metrics: Arc<Metrics>,
        log: DecisionLog,
    ) -> Self {
        let scheme = operators.scheme();
        AggregationService::build(Some(operators), scheme, expiry, metrics, log)
    }

    /// A service without a static operator set: every task is registered with the operator set
    /// of its own block ([`AggregationService::initialize_task_with`]), as read from the chain.
    /// Chain operator sets are BN254.
    pub fn for_chain(expiry: Duration, metrics: Arc<Metrics>, log: DecisionLog) -> Self {
        AggregationService::build(None, Scheme::Bn254, expiry, metrics, log)
    }

    fn build(
        operators: Option<Arc<OperatorSet>>,
        scheme: Scheme,
        expiry: Duration,
        metrics: Arc<Metrics>,
        log: DecisionLog,
    ) -> Self {
        let (aggregates, _) = broadcast::channel(1024);
        metrics.set_scheme(scheme);
        AggregationService {
            operators,
            expiry,
            state: Mutex::default(),
            metrics,
            log,
            aggregates,
            completions: Mutex::new(None),
        }
    }

    /// Every [`AggregatedResponse`] emitted from now on, none lost (unbounded; at most
    /// [`MAX_ACTIVE_TASKS`] can be waiting to complete). A second call replaces the first
    /// receiver.
    pub fn completions(&self) -> mpsc::UnboundedReceiver<AggregatedResponse> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.completions.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        rx
    }

    /// The metrics the service updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The decision log.
    pub fn log(&self) -> &DecisionLog {
        &self.log
    }

    /// How long a task waits for its threshold.
    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    /// The static operator set (`None` for a service on the chain).
    pub fn operators(&self) -> Option<&Arc<OperatorSet>> {
        self.operators.as_ref()
    }

    /// Every [`AggregatedResponse`] emitted from now on (a slow receiver loses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<AggregatedResponse> {
        self.aggregates.subscribe()
    }

    /// How many tasks are waiting for responses.
    pub fn active_tasks(&self) -> usize {
        self.lock().active.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the state consistent before anything that could panic.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `task`, received at `now`, for the static operator set; it expires at
    /// `now + expiry`.
    pub fn initialize_task(&self, task: NewTask, now: Instant) -> Result<(), TaskError> {
        let operators = self.operators.clone().ok_or(TaskError::NoOperatorSet)?;
        self.initialize_task_with(task, operators, now)
    }

    /// Registers `task`, received at `now`, answerable by `operators` with their stakes (the
    /// chain's at the task's block); it expires at `now + expiry`.
    pub fn initialize_task_with(
        &self,
        task: NewTask,
        operators: Arc<OperatorSet>,
        now: Instant,
    ) -> Result<(), TaskError> {
        let quorums = &task.task.quorum_numbers;
        if quorums.is_empty() {
            return Err(TaskError::NoQuorums);
        }
        for (i, q) in quorums.iter().enumerate() {
            if quorums[..i].contains(q) {
                return Err(TaskError::RepeatedQuorum(*q));
            }
        }
        let threshold = task.task.quorum_threshold_percentage;
        if !(1..=100).contains(&threshold) {
            return Err(TaskError::Threshold(threshold));
        }
        let mut stakes = Vec::with_capacity(quorums.len());
        for q in quorums {
            let total_stake = operators.total_stake(*q);
            if total_stake == 0 {
                return Err(TaskError::EmptyQuorum(*q));
            }
            stakes.push(QuorumStake { quorum: *q, signed_stake: 0, total_stake });
        }
        let expected = task.task.respond(task.task_index).map_err(|_| TaskError::Overflow)?;
        let index = task.task_index;
        let mut st = self.lock();
        if st.active.contains_key(&index) || st.retired.contains_key(&index) {
            return Err(TaskError::Duplicate(index));
        }
        if st.active.len() >= MAX_ACTIVE_TASKS {
            return Err(TaskError::TooMany(MAX_ACTIVE_TASKS));
        }
        self.log.record(
            "task_created",
            json!({
                "task_index": index,
                "number_to_be_squared": task.task.number_to_be_squared.to_string(),
                "task_created_block": task.task.task_created_block,
                "quorum_numbers": quorums,
                "quorum_threshold_percentage": threshold,
                "expires_in_ms": self.expiry.as_millis(),
            }),
        );
        let deadline = now.checked_add(self.expiry).unwrap_or(now);
        let digest = expected.digest();
        let active = ActiveTask {
            task,
            operators,
            expected,
            digest,
            created: now,
            deadline,
            stakes,
            signers: BTreeMap::new(),
        };
        st.active.insert(index, active);
        self.metrics.task_created();
        self.metrics.set_active_tasks(st.active.len());
        Ok(())
    }

    /// Expires every task whose deadline is at or before `now`; returns how many.
    pub fn expire_due(&self, now: Instant) -> usize {
        let mut st = self.lock();
        let due: Vec<u32> = st.active.iter().filter(|(_, t)| t.deadline <= now).map(|(i, _)| *i).collect();
        for index in &due {
            self.retire(&mut st, *index, Outcome::Expired, None);
        }
        due.len()
    }

    /// Removes an active task, records the decision and remembers the outcome.
    fn retire(&self, st: &mut State, index: u32, outcome: Outcome, aggregate: Option<&AggregatedResponse>) {
        let Some(task) = st.active.remove(&index) else { return };
        self.metrics.set_last_ratios(task.stakes.iter().map(|q| (q.quorum, q.ratio())));
        match aggregate {
            Some(aggregate) => {
                self.metrics.task_completed(aggregate.latency);
                self.metrics.set_last_non_signers(aggregate.non_signers.len());
                self.log.record("task_completed", aggregate.to_json());
            }
            None => {
                self.metrics.task_expired();
                let signers: Vec<[u8; 32]> = task.signers.keys().copied().collect();
                self.log.record(
                    "task_expired",
                    json!({"task_index": index, "signers": ids(&signers), "quorums": stakes_json(&task.stakes)}),
                );
            }
        }
        st.retired.insert(index, outcome);
        while st.retired.len() > MAX_RETIRED_TASKS {
            st.retired.pop_first();
        }
        self.metrics.set_active_tasks(st.active.len());
    }

    /// `Ok` when task `index` is waiting for responses at `now`, expiring it if it is due.
    fn check_live(&self, st: &mut State, index: u32, now: Instant) -> Result<(), Rejection> {
        match st.active.get(&index) {
            Some(task) if task.deadline <= now => {
                self.retire(st, index, Outcome::Expired, None);
                Err(Rejection::new(ErrorCode::TaskExpired, format!("task {index} expired")))
            }
            Some(_) => Ok(()),
            None if st.retired.get(&index) == Some(&Outcome::Expired) => {
                Err(Rejection::new(ErrorCode::TaskExpired, format!("task {index} expired")))
            }
            None => Err(Rejection::new(
                ErrorCode::TaskNotFound,
                format!("task {index} is not initialised or already completed"),
            )),
        }
    }

    /// Checks everything but the signature; returns the key and message to verify.
    fn precheck(
        &self,
        signed: &SignedTaskResponse,
        now: Instant,
    ) -> Result<(OperatorPublicKey, [u8; 32]), Rejection> {
        let index = signed.task_response.reference_task_index;
        let mut st = self.lock();
        self.check_live(&mut st, index, now)?;
        let task =
            st.active.get(&index).ok_or_else(|| Rejection::new(ErrorCode::InternalError, "task vanished"))?;
        let operator = task.operators.get(&signed.operator_id).ok_or_else(|| {
            let id = to_hex(&signed.operator_id);
            Rejection::new(ErrorCode::OperatorNotInQuorum, format!("unknown operator {id}"))
        })?;
        if !operator.in_any(&task.task.task.quorum_numbers) {
            let message = format!("operator {operator} has no stake in the quorums of task {index}");
            return Err(Rejection::new(ErrorCode::OperatorNotInQuorum, message));
        }
        if signed.task_response != task.expected {
            let message = format!(
                "the response does not answer task {index}: number_squared must be {}",
                task.expected.number_squared
            );
            return Err(self.invalid(SignatureFault::WrongResponse, message));
        }
        Ok((operator.public_key, task.digest))
    }

    /// Checks `signed`, received at `now`, and counts it. `Ok(Some(_))` when it completed its
    /// task. Every call is counted in the metrics and written to the decision log.
    pub fn process_signed_task_response(
        &self,
        signed: &SignedTaskResponse,
        now: Instant,
    ) -> Result<Option<AggregatedResponse>, Rejection> {
        let result = self.process(signed, now);
        match &result {
            Ok(_) => self.metrics.response_accepted(),
            Err(rejection) => {
                self.metrics.response_rejected(rejection.code);
                self.log.record(
                    "response",
                    json!({
                        "task_index": signed.task_response.reference_task_index,
                        "operator_id": to_hex(&signed.operator_id),
                        "accepted": false,
                        "code": rejection.code.code(),
                        "message": rejection.message,
                    }),
                );
            }
        }
        result
    }

    fn process(
        &self,
        signed: &SignedTaskResponse,
        now: Instant,
    ) -> Result<Option<AggregatedResponse>, Rejection> {
        let (public_key, digest) = self.precheck(signed, now)?;
        // The pairing check, outside the lock.
        let accepted = self.verify(&public_key, &digest, &signed.signature)?;

        let index = signed.task_response.reference_task_index;
        let mut st = self.lock();
        self.check_live(&mut st, index, now)?;
        let task = st
            .active
            .get_mut(&index)
            .ok_or_else(|| Rejection::new(ErrorCode::InternalError, "task vanished"))?;
        if task.signers.contains_key(&signed.operator_id) {
            let message = format!("operator {} already answered task {index}", to_hex(&signed.operator_id));
            return Err(Rejection::new(ErrorCode::DuplicateResponse, message));
        }
        let operators = Arc::clone(&task.operators);
        let operator = operators
            .get(&signed.operator_id)
            .ok_or_else(|| Rejection::new(ErrorCode::InternalError, "operator vanished"))?;
        for q in &mut task.stakes {
            q.signed_stake += operator.stake_in(q.quorum);
        }
        task.signers.insert(signed.operator_id, accepted);
        self.log.record(
            "response",
            json!({"task_index": index, "operator_id": to_hex(&signed.operator_id), "accepted": true}),
        );
        if !task.threshold_met() {
            return Ok(None);
        }
        match self.aggregate(task, now) {
            Ok(aggregate) => {
                self.retire(&mut st, index, Outcome::Completed, Some(&aggregate));
                // No subscriber is not an error.
                let _ = self.aggregates.send(aggregate.clone());
                if let Some(tx) =
                    self.completions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
                {
                    let _ = tx.send(aggregate.clone());
                }
                Ok(Some(aggregate))
            }
            Err(e) => {
                // Only keys summing to the identity get here; the task stays open for more
                // signers or expiry, and this response stays accepted.
                self.log.record("aggregation_failed", json!({"task_index": index, "error": e.to_string()}));
                Ok(None)
            }
        }
    }

    /// An InvalidSignature rejection, counted by `fault`.
    fn invalid(&self, fault: SignatureFault, message: impl Into<String>) -> Rejection {
        self.metrics.invalid_signature(fault);
        Rejection::new(ErrorCode::InvalidSignature, message)
    }

    /// Checks `signature` over `digest` with the operator's registered key: the scheme (told by
    /// the signature's length) must be the key's, the point valid, and the pairing hold.
    fn verify(
        &self,
        public_key: &OperatorPublicKey,
        digest: &[u8; 32],
        signature: &OperatorSignature,
    ) -> Result<Accepted, Rejection> {
        let malformed =
            |e: avs_protocol::Error| self.invalid(SignatureFault::Malformed, format!("bad signature: {e}"));
        let failed = |e: avs_protocol::Error| {
            self.invalid(SignatureFault::VerificationFailed, format!("signature does not verify: {e}"))
        };
        match (public_key, signature) {
            (OperatorPublicKey::Bn254(key), OperatorSignature::Bn254(bytes)) => {
                let signature = bn254::Signature::from_bytes(bytes).map_err(malformed)?;
                bn254::verify(&key.g2(), digest, &signature).map_err(failed)?;
                Ok(Accepted::Bn254(*key, signature))
            }
            (OperatorPublicKey::Bls12381(key), OperatorSignature::Bls12381(bytes)) => {
                let signature = bls::Signature::from_bytes(bytes).map_err(malformed)?;
                bls::verify(key, digest, &signature).map_err(failed)?;
                Ok(Accepted::Bls12381(*key, signature))
            }
            _ => Err(self.invalid(
                SignatureFault::WrongScheme,
                format!(
                    "a {} signature ({} bytes) for an operator set of {} keys ({}-byte signatures)",
                    signature.scheme(),
                    signature.as_bytes().len(),
                    public_key.scheme(),
                    public_key.scheme().signature_len()
                ),
            )),
        }
    }

    /// Aggregates a task's signatures and keys and checks the result before it is emitted.
    fn aggregate(&self, task: &ActiveTask, now: Instant) -> Result<AggregatedResponse, avs_protocol::Error> {
        let signers: Vec<[u8; 32]> = task.signers.keys().copied().collect();
        let quorums = &task.task.task.quorum_numbers;
        let non_signers: Vec<&Operator> = {
            let mut list: Vec<_> = task
                .operators
                .iter()
                .filter(|o| o.in_any(quorums) && !task.signers.contains_key(&o.id))
                .collect();
            list.sort_unstable_by_key(|o| o.id);
            list
        };
        let aggregate = match task.operators.scheme() {
            Scheme::Bn254 => Aggregate::Bn254(aggregate_bn254(task, &non_signers)?),
            Scheme::Bls12381 => aggregate_bls(task)?,
        };
        Ok(AggregatedResponse {
            task_index: task.task.task_index,
            task_response: task.expected,
            digest: task.digest,
            aggregate,
            signers,
            non_signers: non_signers.iter().map(|o| o.id).collect(),
            quorums: task.stakes.clone(),
            latency: now.saturating_duration_since(task.created),
        })
    }
}

/// σ, apkG2 and the signers' G1 sum, checked: `e(σ, G2) = e(H(m), apkG2)` and the two
/// aggregate keys have one secret; the non-signers' G1 keys and every quorum's aggregate key.
fn aggregate_bn254(
    task: &ActiveTask,
    non_signers: &[&Operator],
) -> Result<Bn254Aggregate, avs_protocol::Error> {
    let mut signatures = Vec::with_capacity(task.signers.len());
    let mut g1 = Vec::with_capacity(task.signers.len());
    let mut g2 = Vec::with_capacity(task.signers.len());
    for accepted in task.signers.values() {
        let Accepted::Bn254(key, signature) = accepted else {
            return Err(avs_protocol::Error::SchemeMismatch);
        };
        signatures.push(*signature);
        g1.push(key.g1());
        g2.push(key.g2());
    }
    let signature = bn254::aggregate_signatures(&signatures.iter().collect::<Vec<_>>())?;
    let apk_g2 = bn254::aggregate_g2(&g2.iter().collect::<Vec<_>>())?;
    let signers_apk_g1 = bn254::aggregate_g1(&g1.iter().collect::<Vec<_>>())?;
    bn254::PublicKey::new(signers_apk_g1, apk_g2)?;
    bn254::verify(&apk_g2, &task.digest, &signature)?;
    let non_signer_pubkeys = non_signers
        .iter()
        .map(|o| match o.public_key {
            OperatorPublicKey::Bn254(key) => Ok(key.g1()),
            OperatorPublicKey::Bls12381(_) => Err(avs_protocol::Error::SchemeMismatch),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let quorum_apks = task
        .task
        .task
        .quorum_numbers
        .iter()
        .map(|q| {
            task.operators.quorum_apk(*q).map(|apk| (*q, *apk)).ok_or(avs_protocol::Error::EmptyAggregate)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Bn254Aggregate { signature, apk_g2, signers_apk_g1, non_signer_pubkeys, quorum_apks })
}

/// The summed signature and keys of a BLS12-381 task, checked with `FastAggregateVerify`.
fn aggregate_bls(task: &ActiveTask) -> Result<Aggregate, avs_protocol::Error> {
    let mut keys = Vec::with_capacity(task.signers.len());
    let mut signatures = Vec::with_capacity(task.signers.len());
    for accepted in task.signers.values() {
        let Accepted::Bls12381(key, signature) = accepted else {
            return Err(avs_protocol::Error::SchemeMismatch);
        };
        keys.push(key);
        signatures.push(signature);
    }
    let signature = bls::aggregate_signatures(&signatures)?;
    let public_key = bls::aggregate_public_keys(&keys)?;
    bls::fast_aggregate_verify(&keys, &task.digest, &signature)?;
    Ok(Aggregate::Bls12381 { signature, public_key })
}
