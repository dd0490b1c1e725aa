//! The task generator: every interval it makes a [`NewTask`], registers it with the aggregation
//! service and POSTs it to the node of every operator in the task's quorums.

use std::sync::Arc;
use std::time::{Duration, Instant};

use avs_protocol::intake::AuthorizedTask;
use avs_protocol::{NewTask, Task, U256};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::http::post_json;
use crate::metrics::Metrics;
use crate::operators::{Operator, OperatorAddress, OperatorSet};
use crate::service::AggregationService;

/// The path under an operator's `address` that takes tasks.
pub const TASK_PATH: &str = "/task";

/// How `number_to_be_squared` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Numbers {
    /// 1, 2, 3, …: `task_index + 1`.
    Sequential,
    /// Pseudo-random in `1..=u64::MAX` from `--seed` (splitmix64).
    Random,
}

/// What the generator makes and how often.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Time between tasks (the first is made at once).
    pub interval: Duration,
    /// Stop after this many tasks (`None`: until shut down).
    pub tasks: Option<u32>,
    /// `quorum_numbers` of every task.
    pub quorum_numbers: Vec<u8>,
    /// `quorum_threshold_percentage` of every task.
    pub threshold_percentage: u32,
    /// How numbers are chosen.
    pub numbers: Numbers,
    /// Seed of [`Numbers::Random`].
    pub seed: u64,
    /// `task_created_block` of task 0; it grows by one per task.
    pub first_block: u32,
    /// Time allowed for each POST to an operator.
    pub delivery_timeout: Duration,
    /// The task source's key: every task sent carries its signature
    /// ([`avs_protocol::intake`]), which nodes whose `spec.avs.task_signer` is its address
    /// require. `None`: tasks are sent unsigned, and nodes refuse them (401).
    pub task_signer: Option<avs_protocol::ecdsa::SecretKey>,
}

impl GeneratorConfig {
    /// Checks the configuration against the operator set.
    pub fn validate(&self, operators: &OperatorSet) -> Result<(), String> {
        self.validate_shape()?;
        for q in &self.quorum_numbers {
            if operators.total_stake(*q) == 0 {
                return Err(format!("no operator in the operator set has stake in quorum {q}"));
            }
        }
        Ok(())
    }

    /// Checks the configuration alone (chain mode: stakes are read per task from the chain).
    pub fn validate_shape(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("the task interval must be more than 0".into());
        }
        if self.delivery_timeout.is_zero() {
            return Err("the delivery timeout must be more than 0".into());
        }
        if !(1..=100).contains(&self.threshold_percentage) {
            return Err(format!("quorum threshold {} is not in 1..=100", self.threshold_percentage));
        }
        if self.quorum_numbers.is_empty() {
            return Err("no quorum numbers".into());
        }
        for (i, q) in self.quorum_numbers.iter().enumerate() {
            if self.quorum_numbers[..i].contains(q) {
                return Err(format!("quorum {q} is listed twice"));
            }
        }
        Ok(())
    }
}

/// splitmix64: a tiny, well-mixed generator; nothing here needs cryptographic randomness.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Makes tasks in order; kept separate from the timing so it can be tested alone.
#[derive(Debug, Clone)]
pub struct TaskMaker {
    config: GeneratorConfig,
    rng: SplitMix64,
}

impl TaskMaker {
    /// A maker for `config`.
    pub fn new(config: GeneratorConfig) -> Self {
        let rng = SplitMix64(config.seed);
        TaskMaker { config, rng }
    }

    /// Task number `index`.
    pub fn make(&mut self, index: u32) -> NewTask {
        let number = match self.config.numbers {
            Numbers::Sequential => u64::from(index) + 1,
            Numbers::Random => self.rng.next().max(1),
        };
        NewTask {
            task_index: index,
            task: Task {
                number_to_be_squared: U256::from(number),
                task_created_block: self.config.first_block.saturating_add(index),
                quorum_numbers: self.config.quorum_numbers.clone(),
                quorum_threshold_percentage: self.config.threshold_percentage,
            },
        }
    }
}

async fn deliver(
    metrics: Arc<Metrics>,
    operator: Operator,
    address: OperatorAddress,
    index: u32,
    body: Vec<u8>,
    timeout: Duration,
) {
    let url = format!("{}{TASK_PATH}", address.url.trim_end_matches('/'));
    match post_json(&address, &address.path(TASK_PATH), body, timeout).await {
        Ok((status, _)) if status.is_success() => metrics.delivery(true),
        Ok((status, _)) => {
            metrics.delivery(false);
            eprintln!("aggregator: task {index}: operator {operator} at {url} answered HTTP {status}");
        }
        Err(e) => {
            metrics.delivery(false);
            eprintln!("aggregator: task {index}: operator {operator} at {url}: {e}");
        }
    }
}

/// Makes, registers and sends tasks until the configured count is reached or `shutdown`
/// turns true; returns how many tasks were registered.
pub async fn run(
    service: Arc<AggregationService>,
    config: GeneratorConfig,
    mut shutdown: watch::Receiver<bool>,
) -> u32 {
    let limit = config.tasks.unwrap_or(u32::MAX);
    let timeout = config.delivery_timeout;
    let config_signer = config.task_signer.clone();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut maker = TaskMaker::new(config);
    let mut deliveries = JoinSet::new();
    let mut created = 0;
    for index in 0..limit {
        tokio::select! {
            _ = ticker.tick() => {}
            () = crate::http::stopped(&mut shutdown) => break,
        }
        let task = maker.make(index);
        if let Err(e) = service.initialize_task(task.clone(), Instant::now()) {
            eprintln!("aggregator: task {index} not registered: {e}");
            continue;
        }
        created += 1;
        let request = match &config_signer {
            Some(key) => AuthorizedTask::sign(task.clone(), key),
            None => AuthorizedTask::unsigned(task.clone()),
        };
        let body = match serde_json::to_vec(&request) {
            Ok(body) => body,
            Err(e) => {
                eprintln!("aggregator: task {index} cannot be encoded: {e}");
                continue;
            }
        };
        let quorums = &task.task.quorum_numbers;
        let operators = service.operators().map(|set| set.iter()).into_iter().flatten();
        for operator in operators.filter(|o| o.in_any(quorums)) {
            let Some(address) = operator.address.clone() else { continue };
            let metrics = Arc::clone(service.metrics());
            deliveries.spawn(deliver(metrics, operator.clone(), address, index, body.clone(), timeout));
        }
        // Reap finished deliveries so the set stays small; each one ends within `timeout`.
        while deliveries.try_join_next().is_some() {}
    }
    while deliveries.join_next().await.is_some() {}
    created
}
