//! The aggregator's Prometheus metrics, rendered in the text exposition format (version 0.0.4)
//! without a metrics library: a handful of counters and gauges and one histogram.

use std::collections::BTreeMap;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use avs_protocol::Scheme;
use avs_protocol::rpc::ErrorCode;
use prom_text::{Exposition, Float, Kind};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the aggregation latency histogram's buckets, before `+Inf`.
pub const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Upper bounds (seconds) of the chain histogram's buckets (createNewTask sent to TaskResponded
/// mined), before `+Inf`.
pub const CHAIN_BUCKETS: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

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

impl Histogram {
    fn observe(&mut self, buckets: &[f64; 12], secs: f64) {
        let bucket = buckets.iter().position(|le| secs <= *le).unwrap_or(buckets.len());
        self.counts[bucket] += 1;
        self.sum += secs;
        self.count += 1;
    }

    fn render(&self, e: &mut Exposition, name: &str, buckets: &[f64; 12]) {
        let mut cumulative = 0u64;
        let list = buckets.iter().zip(&self.counts).map(|(le, count)| {
            cumulative += count;
            (Float(*le), cumulative)
        });
        e.histogram(name, &[], list, Float(self.sum), self.count);
    }
}

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative count per bucket of [`LATENCY_BUCKETS`], then the overflow.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// The counters and gauges; cheap to update from any thread.
#[derive(Debug, Default)]
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
    latency: Mutex<Histogram>,
    chain: std::sync::atomic::AtomicBool,
    chain_tasks_created: AtomicU64,
    chain_responded: AtomicU64,
    chain_reverted: AtomicU64,
    chain_errors: [AtomicU64; ChainStage::ALL.len()],
    chain_gas_used: AtomicU64,
    chain_last_gas_used: AtomicU64,
    chain_latency: Mutex<Histogram>,
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

impl Metrics {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
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
        lock(&self.chain_latency).observe(&CHAIN_BUCKETS, elapsed.as_secs_f64());
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
        lock(&self.latency).observe(&LATENCY_BUCKETS, latency.as_secs_f64());
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
        lock(&self.latency).render(&mut e, name, &LATENCY_BUCKETS);
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
        lock(&self.chain_latency).render(e, name, &CHAIN_BUCKETS);
    }
}
