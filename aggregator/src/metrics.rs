//! The aggregator's Prometheus metrics, rendered in the text exposition format (version 0.0.4)
//! with the project's `prom-text` writer: a handful of counters and gauges and two histograms.

use std::collections::BTreeMap;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use avs_protocol::Scheme;
use avs_protocol::rpc::ErrorCode;
use prom_text::{Exposition, Float, Histogram, Kind};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// Upper bounds (ns) of the aggregation latency histogram's buckets, before `+Inf`: 5 ms to 30 s.
pub const LATENCY_BUCKETS_NS: [u64; 12] =
    [5 * MS, 10 * MS, 25 * MS, 50 * MS, 100 * MS, 250 * MS, 500 * MS, S, 2_500 * MS, 5 * S, 10 * S, 30 * S];

/// Upper bounds (ns) of the chain histogram's buckets (createNewTask sent to TaskResponded
/// mined), before `+Inf`: 50 ms to 5 minutes.
pub const CHAIN_BUCKETS_NS: [u64; 12] =
    [50 * MS, 100 * MS, 250 * MS, 500 * MS, S, 2_500 * MS, 5 * S, 10 * S, 30 * S, 60 * S, 120 * S, 300 * S];

/// A step on the chain that can fail: the `stage` label of `aggregator_chain_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStage {
    /// `createNewTask`.
    CreateTask,
    /// Reading the task's operator set, or registering the task with it.
    OperatorState,
    /// Building and sending `respondToTask`.
    Respond,
}

impl ChainStage {
    /// Every stage, in label order.
    pub const ALL: [ChainStage; 3] = [ChainStage::CreateTask, ChainStage::OperatorState, ChainStage::Respond];

    /// The `stage` label.
    pub const fn label(self) -> &'static str {
        match self {
            ChainStage::CreateTask => "create_task",
            ChainStage::OperatorState => "operator_state",
            ChainStage::Respond => "respond",
        }
    }
}

/// Why a response was refused as an InvalidSignature (`1003`): the `reason` label of
/// `aggregator_invalid_signatures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFault {
    /// A signature over another response than the task's correct one.
    WrongResponse,
    /// A signature of the other scheme than the operator set's (told by its length).
    WrongScheme,
    /// Bytes that are not a valid point: off the curve, outside the subgroup, the identity.
    Malformed,
    /// A valid point that does not verify with the operator's key.
    VerificationFailed,
}

impl SignatureFault {
    /// Every fault, in label order.
    pub const ALL: [SignatureFault; 4] = [
        SignatureFault::WrongResponse,
        SignatureFault::WrongScheme,
        SignatureFault::Malformed,
        SignatureFault::VerificationFailed,
    ];

    /// The `reason` label: `wrong_response`, `wrong_scheme`, `malformed`, `verification_failed`.
    pub const fn label(self) -> &'static str {
        match self {
            SignatureFault::WrongResponse => "wrong_response",
            SignatureFault::WrongScheme => "wrong_scheme",
            SignatureFault::Malformed => "malformed",
            SignatureFault::VerificationFailed => "verification_failed",
        }
    }
}

/// The counters and gauges; cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    tasks_created: AtomicU64,
    tasks_completed: AtomicU64,
    tasks_expired: AtomicU64,
    tasks_active: AtomicU64,
    responses_accepted: AtomicU64,
    responses_rejected: [AtomicU64; ErrorCode::ALL.len()],
    deliveries_ok: AtomicU64,
    deliveries_failed: AtomicU64,
    invalid_signatures: [AtomicU64; SignatureFault::ALL.len()],
    last_non_signers: AtomicU64,
    scheme: Mutex<Scheme>,
    last_ratio: Mutex<BTreeMap<u8, f64>>,
    latency: Mutex<Histogram<12>>,
    chain: std::sync::atomic::AtomicBool,
    chain_tasks_created: AtomicU64,
    chain_responded: AtomicU64,
    chain_reverted: AtomicU64,
    chain_errors: [AtomicU64; ChainStage::ALL.len()],
    chain_gas_used: AtomicU64,
    chain_last_gas_used: AtomicU64,
    chain_latency: Mutex<Histogram<12>>,
}

/// A duration in whole nanoseconds (about 584 years at most).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a metrics lock cannot leave a metric half-updated in a harmful way.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest form).
pub fn format_value(v: f64) -> String {
    Float(v).to_string()
}

/// Snake-case label value for an error code (`task_not_found`).
pub fn reason_label(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::ParseError => "parse_error",
        ErrorCode::InvalidRequest => "invalid_request",
        ErrorCode::MethodNotFound => "method_not_found",
        ErrorCode::InvalidParams => "invalid_params",
        ErrorCode::InternalError => "internal_error",
        ErrorCode::TaskNotFound => "task_not_found",
        ErrorCode::OperatorNotInQuorum => "operator_not_in_quorum",
        ErrorCode::InvalidSignature => "invalid_signature",
        ErrorCode::DuplicateResponse => "duplicate_response",
        ErrorCode::TaskExpired => "task_expired",
        _ => "other",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All zero.
    pub fn new() -> Self {
        let zero = AtomicU64::default;
        Metrics {
            tasks_created: zero(),
            tasks_completed: zero(),
            tasks_expired: zero(),
            tasks_active: zero(),
            responses_accepted: zero(),
            responses_rejected: Default::default(),
            deliveries_ok: zero(),
            deliveries_failed: zero(),
            invalid_signatures: Default::default(),
            last_non_signers: zero(),
            scheme: Mutex::default(),
            last_ratio: Mutex::default(),
            latency: Mutex::new(Histogram::new(LATENCY_BUCKETS_NS)),
            chain: Default::default(),
            chain_tasks_created: zero(),
            chain_responded: zero(),
            chain_reverted: zero(),
            chain_errors: Default::default(),
            chain_gas_used: zero(),
            chain_last_gas_used: zero(),
            chain_latency: Mutex::new(Histogram::new(CHAIN_BUCKETS_NS)),
        }
    }

    /// Chain mode: the `aggregator_chain_*` families are rendered from now on.
    pub fn enable_chain(&self) {
        self.chain.store(true, Ordering::Relaxed);
    }

    /// A task was created on chain.
    pub fn chain_task_created(&self) {
        self.chain_tasks_created.fetch_add(1, Ordering::Relaxed);
    }

    /// A step on the chain failed.
    pub fn chain_error(&self, stage: ChainStage) {
        if let Some(i) = ChainStage::ALL.iter().position(|s| *s == stage) {
            self.chain_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A `respondToTask` was mined and reverted.
    pub fn chain_reverted(&self) {
        self.chain_reverted.fetch_add(1, Ordering::Relaxed);
    }

    /// A `respondToTask` was mined and emitted `TaskResponded`, using `gas`, `elapsed` after its
    /// task's `createNewTask` was sent.
    pub fn chain_responded(&self, gas: u64, elapsed: Duration) {
        self.chain_responded.fetch_add(1, Ordering::Relaxed);
        self.chain_gas_used.fetch_add(gas, Ordering::Relaxed);
        self.chain_last_gas_used.store(gas, Ordering::Relaxed);
        lock(&self.chain_latency).observe(nanos(elapsed));
    }

    /// How many tasks have completed (reached their threshold).
    pub fn tasks_completed(&self) -> u64 {
        self.tasks_completed.load(Ordering::Acquire)
    }

    /// A task was registered.
    pub fn task_created(&self) {
        self.tasks_created.fetch_add(1, Ordering::Relaxed);
    }

    /// A task reached its threshold; `latency` is the time since it was registered.
    pub fn task_completed(&self, latency: Duration) {
        lock(&self.latency).observe(nanos(latency));
        self.tasks_completed.fetch_add(1, Ordering::AcqRel);
    }

    /// A task expired before reaching its threshold.
    pub fn task_expired(&self) {
        self.tasks_expired.fetch_add(1, Ordering::Relaxed);
    }

    /// How many tasks are waiting for responses.
    pub fn set_active_tasks(&self, n: usize) {
        self.tasks_active.store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The signed / total stake ratio per quorum of the task decided last.
    pub fn set_last_ratios(&self, ratios: impl IntoIterator<Item = (u8, f64)>) {
        let mut last = lock(&self.last_ratio);
        last.clear();
        last.extend(ratios);
    }

    /// The operator set's signature scheme (the `aggregator_scheme_info` label).
    pub fn set_scheme(&self, scheme: Scheme) {
        *lock(&self.scheme) = scheme;
    }

    /// A response was refused as an InvalidSignature for `fault` (also counted by
    /// [`Metrics::response_rejected`] under its code).
    pub fn invalid_signature(&self, fault: SignatureFault) {
        if let Some(i) = SignatureFault::ALL.iter().position(|f| *f == fault) {
            self.invalid_signatures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many operators of its quorums did not sign the task completed last.
    pub fn set_last_non_signers(&self, n: usize) {
        self.last_non_signers.store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A response was accepted.
    pub fn response_accepted(&self) {
        self.responses_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A call was answered with `code`.
    pub fn response_rejected(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.responses_rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A task POST to an operator succeeded (`ok`) or failed.
    pub fn delivery(&self, ok: bool) {
        let counter = if ok { &self.deliveries_ok } else { &self.deliveries_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut e = Exposition::with_capacity(4096);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = [
            (
                "aggregator_tasks_created_total",
                "Tasks registered and sent to operators.",
                &self.tasks_created,
            ),
            (
                "aggregator_tasks_completed_total",
                "Tasks whose every quorum reached the threshold.",
                &self.tasks_completed,
            ),
            (
                "aggregator_tasks_expired_total",
                "Tasks that expired before reaching the threshold.",
                &self.tasks_expired,
            ),
            (
                "aggregator_responses_accepted_total",
                "Signed task responses accepted.",
                &self.responses_accepted,
            ),
        ];
        for (name, help, value) in counters {
            e.family(name, Kind::Counter, help).sample(name, &[], get(value));
        }
        let name = "aggregator_responses_rejected_total";
        e.family(name, Kind::Counter, "JSON-RPC calls answered with an error, by error code.");
        for (code, count) in ErrorCode::ALL.iter().zip(&self.responses_rejected) {
            let c = code.code().to_string();
            e.sample(name, &[("code", &c), ("reason", reason_label(*code))], get(count));
        }
        let name = "aggregator_invalid_signatures_total";
        e.family(name, Kind::Counter, "Responses refused as invalid signatures (code 1003), by reason.");
        for (fault, count) in SignatureFault::ALL.iter().zip(&self.invalid_signatures) {
            e.sample(name, &[("reason", fault.label())], get(count));
        }
        let name = "aggregator_task_deliveries_total";
        e.family(name, Kind::Counter, "Task POSTs to operator nodes, by result.")
            .sample(name, &[("result", "ok")], get(&self.deliveries_ok))
            .sample(name, &[("result", "error")], get(&self.deliveries_failed));
        let name = "aggregator_active_tasks";
        e.family(name, Kind::Gauge, "Tasks waiting for responses.").sample(
            name,
            &[],
            get(&self.tasks_active),
        );
        let name = "aggregator_scheme_info";
        e.family(name, Kind::Gauge, "The signature scheme of the operator set, as a label; always 1.")
            .sample(name, &[("scheme", lock(&self.scheme).name())], 1u64);
        let name = "aggregator_last_task_non_signers";
        e.family(name, Kind::Gauge, "Operators of its quorums that did not sign the task completed last.")
            .sample(name, &[], get(&self.last_non_signers));
        let name = "aggregator_last_task_signed_stake_ratio";
        e.family(name, Kind::Gauge, "Signed stake / total stake per quorum of the last task decided.");
        for (quorum, ratio) in lock(&self.last_ratio).iter() {
            e.sample_f64(name, &[("quorum", &quorum.to_string())], *ratio);
        }
        let name = "aggregator_aggregation_latency_seconds";
        e.family(name, Kind::Histogram, "Time from registering a task to completing it.");
        e.seconds_histogram(name, &[], &lock(&self.latency));
        if self.chain.load(Ordering::Relaxed) {
            self.render_chain(&mut e);
        }
        e.finish()
    }

    fn render_chain(&self, e: &mut Exposition) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let name = "aggregator_chain_tasks_created_total";
        e.family(name, Kind::Counter, "Tasks created on chain (createNewTask mined, NewTaskCreated read).")
            .sample(name, &[], get(&self.chain_tasks_created));
        let name = "aggregator_chain_responses_total";
        e.family(name, Kind::Counter, "respondToTask transactions mined, by result.")
            .sample(name, &[("result", "responded")], get(&self.chain_responded))
            .sample(name, &[("result", "reverted")], get(&self.chain_reverted));
        let name = "aggregator_chain_errors_total";
        e.family(name, Kind::Counter, "Failed steps on the chain, by stage.");
        for (stage, count) in ChainStage::ALL.iter().zip(&self.chain_errors) {
            e.sample(name, &[("stage", stage.label())], get(count));
        }
        let name = "aggregator_chain_respond_gas_used_total";
        e.family(name, Kind::Counter, "Gas used by respondToTask transactions that emitted TaskResponded.")
            .sample(name, &[], get(&self.chain_gas_used));
        let name = "aggregator_chain_last_respond_gas_used";
        e.family(name, Kind::Gauge, "Gas used by the last respondToTask that emitted TaskResponded.").sample(
            name,
            &[],
            get(&self.chain_last_gas_used),
        );
        let name = "aggregator_chain_task_seconds";
        e.family(name, Kind::Histogram, "Time from sending createNewTask to the TaskResponded receipt.");
        e.seconds_histogram(name, &[], &lock(&self.chain_latency));
    }
}
