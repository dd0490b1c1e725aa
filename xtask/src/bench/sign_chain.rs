//! `bench sign --chain`: the end-to-end path on a chain. The AVS on Anvil as `demo --chain`
//! runs it ([`crate::onchain`]): the operators registered on chain, their spacecores reading
//! `NewTaskCreated` from Anvil, and the aggregator in chain mode creating the tasks
//! (`createNewTask`) and answering them (`respondToTask`, checked by EigenLayer's
//! BLSSignatureChecker). The same operators and tasks as the chain-less path of the same run.
//!
//! Each task's latency runs from the aggregator sending `createNewTask` (its decision log:
//! `task_responded.ts_ms` minus `create_to_responded_ms`) to the arrival of the block that holds
//! the task's `TaskResponded` log (read from the chain with `eth_getLogs`; every block's arrival
//! time comes from the bench's own `newHeads` subscription to Anvil). It is cut in four:
//! `createNewTask` mined, the confirmations mined, the quorum of signatures at the aggregator
//! (the spacecores' chain watchers, signing, delivery), and `respondToTask` mined.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::eips::BlockId;
use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use anyhow::{Context, Result, anyhow, ensure};
use interop::avs::SpacecoreTaskManager::NewTaskCreated;
use serde::Serialize;
use serde_json::Value;
use spacecore_tests::cluster::{AggregatorOptions, Tools, events};

use super::stats::percentile;
use crate::cmd::progress;
use crate::onchain::{OnChain, Settings};

/// How the on-chain path runs.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub operators: usize,
    pub tasks: u32,
    pub interval: Duration,
    pub confirmations: u64,
    pub block_interval: Duration,
}

/// A part of the tasks' latency, over the tasks.
#[derive(Debug, Serialize)]
pub struct Part {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Where a task's time goes, from `createNewTask` sent to its `TaskResponded` block.
#[derive(Debug, Serialize)]
pub struct Breakdown {
    /// `createNewTask` sent to its block's arrival (automine: the block is the transaction's).
    pub create: Part,
    /// The task's block to the block `confirmations` above it.
    pub confirmations: Part,
    /// That block to the aggregator's `task_completed` (the quorum's last signature accepted):
    /// the watchers' poll wait, their `eth_getLogs`, signing, the history flush, delivery.
    pub quorum: Part,
    /// `task_completed` to the aggregator's `respondToTask` sent (its `create_to_sent_ms`):
    /// `getCheckSignaturesIndices`, the transaction's gas estimate and sending it, after the
    /// responses completed before it were sent (responses are sent one after another; their
    /// receipts are awaited side by side).
    pub respond_send: Part,
    /// Then to the arrival of the block holding `TaskResponded`.
    pub respond_mined: Part,
    /// Not part of the latency: the `TaskResponded` block's arrival to the aggregator's
    /// `task_responded` decision, i.e. how long it takes the aggregator to read the receipt
    /// (its provider polls for it).
    pub receipt: Part,
}

/// What one `respondToTask` costs the node, timed by the bench after the run on the state
/// before a response was mined (the task then still open): medians of [`PROBES`] calls each.
#[derive(Debug, Serialize)]
pub struct RespondProbe {
    /// `OperatorStateRetriever.getCheckSignaturesIndices` (`eth_call`).
    pub indices_ms: f64,
    /// The `respondToTask` transaction as an `eth_call`: one execution, EigenLayer's
    /// `checkSignatures` inside.
    pub call_ms: f64,
    /// Its `eth_estimateGas`, which the aggregator's provider asks before sending.
    pub estimate_gas_ms: f64,
}

/// Calls per figure of [`RespondProbe`].
const PROBES: usize = 7;

/// The on-chain path's figures.
#[derive(Debug, Serialize)]
pub struct OnChainRun {
    pub operators: usize,
    pub tasks: u32,
    pub offered_per_s: f64,
    pub confirmations: u64,
    pub block_interval_ms: u64,
    /// Tasks with one `TaskResponded` on chain, with the right square, in the aggregator's
    /// transaction.
    pub responded: usize,
    /// `chain_error` decisions of the aggregator.
    pub chain_errors: usize,
    /// Blocks mined from the first `createNewTask` to the last `TaskResponded`.
    pub blocks: u64,
    /// First `createNewTask` sent to the last `TaskResponded` block.
    pub span_ms: f64,
    pub tasks_per_s: f64,
    /// `createNewTask` sent to the `TaskResponded` block's arrival.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// The aggregator's own `create_to_responded_ms` (sent to its `respondToTask` receipt).
    pub aggregator_latency_p50_ms: f64,
    pub breakdown: Breakdown,
    pub respond_probe: RespondProbe,
    pub respond_gas_p50: f64,
    /// On-chain tasks/s over the chain-less tasks/s of the same run.
    pub ratio_tasks_per_s: f64,
    /// On-chain p50 latency over the chain-less p50 latency of the same run.
    pub ratio_latency_p50: f64,
}

/// One task's times (unix ms) on chain.
struct Task {
    sent: f64,
    created_block: u64,
    confirmed_at: f64,
    created_at: f64,
    completed: f64,
    responded_at: f64,
    aggregator_ms: f64,
    gas: f64,
    tx: String,
    responded_block: u64,
    /// When the aggregator sent this task's `respondToTask`.
    respond_sent: f64,
    /// The aggregator's `task_responded` decision: it has read the receipt.
    receipt_at: f64,
}

/// Runs the on-chain path; the ratios are taken against the chain-less `tasks_per_s` and
/// `latency_p50_ms`.
pub fn run(tools: Tools, params: Params, chainless: (f64, f64)) -> Result<OnChainRun> {
    let settings = Settings {
        prefix: "bench-chain",
        operators: params.operators,
        stake: 100,
        confirmations: params.confirmations,
        block_interval: params.block_interval,
        keep: false,
    };
    let mut chain = OnChain::start(tools, &settings)?;
    let blocks = BlockTimes::start(&chain)?;
    progress(format_args!(
        "on chain: {} tasks, {} operator(s), {} confirmations, a block every {:?} besides the transactions'...",
        params.tasks, params.operators, params.confirmations, params.block_interval
    ));
    let options = AggregatorOptions {
        tasks: params.tasks,
        threshold: 100,
        interval: params.interval,
        expiry: Duration::from_secs(60),
    };
    let mut aggregator = chain.start_aggregator(&options);
    // A bound, not a target: the tasks are created and answered one transaction at a time.
    let limit = (params.interval + Duration::from_millis(500)) * params.tasks
        + options.expiry
        + Duration::from_secs(90);
    let status = aggregator.finish(limit);
    ensure!(status == Some(0), "the aggregator ended with {status:?}:\n{}", aggregator.log_text());
    chain.stop_miner();
    let decisions = aggregator.decisions();
    let created = chain.logs::<NewTaskCreated>()?;
    let responded = chain.responded()?;
    let seen = blocks.stop(&chain);

    let numbers: HashMap<u32, U256> =
        created.iter().map(|l| (l.inner.data.taskIndex, l.inner.data.task.numberToBeSquared)).collect();
    let index = |d: &Value| d["task_index"].as_u64().and_then(|i| u32::try_from(i).ok());
    let ts = |d: &Value| d["ts_ms"].as_f64().unwrap_or(f64::NAN);
    let completed: HashMap<u32, f64> =
        events(&decisions, "task_completed").filter_map(|d| Some((index(d)?, ts(d)))).collect();
    let decided: HashMap<u32, &Value> =
        events(&decisions, "task_responded").filter_map(|d| Some((index(d)?, d))).collect();
    let mut on_chain: BTreeMap<u32, Vec<(u64, U256, String)>> = BTreeMap::new();
    for log in &responded {
        let r = &log.inner.data.taskResponse;
        let tx = log.transaction_hash.map(|h| h.to_string()).unwrap_or_default();
        on_chain.entry(r.referenceTaskIndex).or_default().push((
            log.block_number.context("a TaskResponded log without a block number")?,
            r.numberSquared,
            tx,
        ));
    }

    let at = |block: u64| seen.range(block..).next().map(|(_, t)| *t);
    let mut tasks = Vec::new();
    for (i, logs) in &on_chain {
        let (Some(number), Some(decision), Some(&done)) = (numbers.get(i), decided.get(i), completed.get(i))
        else {
            continue;
        };
        // Exactly one, with the right square, in the transaction the aggregator reported.
        let [(block, square, tx)] = logs.as_slice() else { continue };
        if *square != number.saturating_mul(*number) || decision["tx_hash"].as_str() != Some(tx.as_str()) {
            continue;
        }
        let aggregator_ms = decision["create_to_responded_ms"].as_f64().unwrap_or(f64::NAN);
        let sent_ms = decision["create_to_sent_ms"].as_f64().unwrap_or(f64::NAN);
        let created_block = created
            .iter()
            .find(|l| l.inner.data.taskIndex == *i)
            .and_then(|l| l.block_number)
            .context("a NewTaskCreated log without a block number")?;
        let times = (at(created_block), at(created_block + params.confirmations), at(*block));
        let (Some(created_at), Some(confirmed_at), Some(responded_at)) = times else {
            return Err(anyhow!("the block subscription missed the blocks of task {i}"));
        };
        let sent = ts(decision) - aggregator_ms;
        tasks.push(Task {
            sent,
            created_block,
            confirmed_at,
            created_at,
            completed: done,
            responded_at,
            aggregator_ms,
            gas: decision["gas_used"].as_f64().unwrap_or(f64::NAN),
            tx: tx.clone(),
            responded_block: *block,
            respond_sent: sent + sent_ms,
            receipt_at: ts(decision),
        });
    }
    ensure!(!tasks.is_empty(), "no task was responded on chain:\n{}", aggregator.log_text());
    tasks.sort_by(|a, b| a.responded_at.total_cmp(&b.responded_at));
    let last_task = tasks.last().context("no task")?;
    let respond_probe = probe(&chain, &last_task.tx, last_task.responded_block, last_task.created_block)?;

    let first = tasks.iter().map(|t| t.sent).fold(f64::INFINITY, f64::min);
    let last = tasks.iter().map(|t| t.responded_at).fold(f64::NEG_INFINITY, f64::max);
    let span_ms = (last - first).max(1.0);
    let first_block = tasks.iter().map(|t| t.created_block).min().unwrap_or(0);
    let last_block = on_chain.values().flatten().map(|(b, _, _)| *b).max().unwrap_or(first_block);
    let latency: Vec<f64> = tasks.iter().map(|t| t.responded_at - t.sent).collect();
    let tasks_per_s = tasks.len() as f64 / (span_ms / 1000.0);
    let p50 = percentile(&latency, 50.0).unwrap_or(f64::NAN);
    let part = |f: &dyn Fn(&Task) -> f64| {
        let values: Vec<f64> = tasks.iter().map(f).collect();
        Part {
            mean_ms: values.iter().sum::<f64>() / values.len() as f64,
            p50_ms: percentile(&values, 50.0).unwrap_or(f64::NAN),
            p99_ms: percentile(&values, 99.0).unwrap_or(f64::NAN),
        }
    };
    let gas: Vec<f64> = tasks.iter().map(|t| t.gas).collect();
    let aggregator_ms: Vec<f64> = tasks.iter().map(|t| t.aggregator_ms).collect();
    Ok(OnChainRun {
        operators: params.operators,
        tasks: params.tasks,
        offered_per_s: 1.0 / params.interval.as_secs_f64(),
        confirmations: params.confirmations,
        block_interval_ms: params.block_interval.as_millis() as u64,
        responded: tasks.len(),
        chain_errors: events(&decisions, "chain_error").count(),
        blocks: last_block.saturating_sub(first_block) + 1,
        span_ms,
        tasks_per_s,
        latency_p50_ms: p50,
        latency_p99_ms: percentile(&latency, 99.0).unwrap_or(f64::NAN),
        aggregator_latency_p50_ms: percentile(&aggregator_ms, 50.0).unwrap_or(f64::NAN),
        breakdown: Breakdown {
            create: part(&|t| t.created_at - t.sent),
            confirmations: part(&|t| t.confirmed_at - t.created_at),
            quorum: part(&|t| t.completed - t.confirmed_at),
            respond_send: part(&|t| t.respond_sent - t.completed),
            respond_mined: part(&|t| t.responded_at - t.respond_sent),
            receipt: part(&|t| t.receipt_at - t.responded_at),
        },
        respond_probe,
        respond_gas_p50: percentile(&gas, 50.0).unwrap_or(f64::NAN),
        ratio_tasks_per_s: tasks_per_s / chainless.0,
        ratio_latency_p50: p50 / chainless.1,
    })
}

/// Times what the aggregator asks the node for the response in transaction `tx` (mined in
/// `block`, to a task created in `created_block`), on the state before `block`.
fn probe(chain: &OnChain, tx: &str, block: u64, created_block: u64) -> Result<RespondProbe> {
    let provider = &chain.deployment.provider;
    let hash: B256 = tx.parse().with_context(|| format!("a transaction hash: {tx}"))?;
    let sent = chain
        .block_on(provider.get_transaction_by_hash(hash))
        .context("eth_getTransactionByHash")?
        .with_context(|| format!("no transaction {tx}"))?;
    let from = sent.inner.signer();
    let request = sent.into_request().from(from);
    let before = BlockId::number(block - 1);
    let created_block = u32::try_from(created_block)?;
    let coordinator = *chain.deployment.coordinator.address();
    let retriever = &chain.deployment.retriever;
    let time = |what: &str, call: &dyn Fn() -> Result<()>| -> Result<f64> {
        let mut ms = Vec::with_capacity(PROBES);
        for _ in 0..PROBES {
            let start = Instant::now();
            call().with_context(|| format!("timing {what}"))?;
            ms.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(percentile(&ms, 50.0).unwrap_or(f64::NAN))
    };
    let indices_ms = time("getCheckSignaturesIndices", &|| {
        let call =
            retriever.getCheckSignaturesIndices(coordinator, created_block, Bytes::from(vec![0]), vec![]);
        chain.block_on(call.block(before).call())?;
        Ok(())
    })?;
    let call_ms = time("respondToTask as eth_call", &|| {
        chain.block_on(provider.call(request.clone()).block(before))?;
        Ok(())
    })?;
    let estimate_gas_ms = time("respondToTask's eth_estimateGas", &|| {
        chain.block_on(provider.estimate_gas(request.clone()).block(before))?;
        Ok(())
    })?;
    Ok(RespondProbe { indices_ms, call_ms, estimate_gas_ms })
}

/// The arrival time (unix ms) of every block, from a `newHeads` subscription to Anvil over
/// its WebSocket endpoint (the same port as HTTP).
struct BlockTimes {
    seen: Arc<Mutex<BTreeMap<u64, f64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BlockTimes {
    fn start(chain: &OnChain) -> Result<BlockTimes> {
        let url = format!("ws://127.0.0.1:{}", chain.anvil.port());
        let (provider, mut subscription) = chain
            .block_on(async {
                let provider = ProviderBuilder::new().connect_ws(WsConnect::new(url)).await?;
                let subscription = provider.subscribe_blocks().await?;
                Ok::<_, alloy::transports::TransportError>((provider, subscription))
            })
            .context("subscribing to Anvil's newHeads")?;
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let record = seen.clone();
        let task = chain.spawn(async move {
            let _provider = provider;
            while let Ok(header) = subscription.recv().await {
                let now = unix_ms();
                record.lock().unwrap_or_else(PoisonError::into_inner).entry(header.number).or_insert(now);
            }
        });
        Ok(BlockTimes { seen, task })
    }

    /// Ends the subscription; every block seen, with its arrival time.
    fn stop(self, chain: &OnChain) -> BTreeMap<u64, f64> {
        self.task.abort();
        let _ = chain.block_on(self.task);
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn unix_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// The on-chain rows of the bench's table, beside the chain-less path's (completed, tasks/s,
/// latency p50 and p99).
pub fn print(run: &OnChainRun, chainless: (usize, f64, f64, f64)) {
    let (completed, tasks_per_s, p50, p99) = chainless;
    println!(
        "on chain, the same {} spacecore(s) and {} tasks ({} confirmations, a block every {} ms besides \
         each transaction's):",
        run.operators, run.tasks, run.confirmations, run.block_interval_ms
    );
    println!("                              {:>10} {:>10} {:>8}", "chain-less", "on chain", "ratio");
    println!("  completed:                  {completed:>10} {:>10}", run.responded);
    println!(
        "  tasks/s:                    {tasks_per_s:>10.1} {:>10.1} {:>8.3}",
        run.tasks_per_s, run.ratio_tasks_per_s
    );
    println!(
        "  latency p50 (ms):           {p50:>10.1} {:>10.1} {:>8.1}",
        run.latency_p50_ms, run.ratio_latency_p50
    );
    println!(
        "  latency p99 (ms):           {p99:>10.1} {:>10.1} {:>8.1}",
        run.latency_p99_ms,
        run.latency_p99_ms / p99
    );
    println!(
        "  (chain-less: task created to completed; on chain: createNewTask sent to the arrival of \
         its TaskResponded block; {} chain errors)",
        run.chain_errors
    );
    println!("  where the on-chain latency goes (ms):     mean      p50      p99");
    let b = &run.breakdown;
    for (what, part) in [
        ("createNewTask sent -> mined", &b.create),
        ("-> confirmations mined", &b.confirmations),
        ("-> quorum at the aggregator", &b.quorum),
        ("-> respondToTask sent", &b.respond_send),
        ("-> TaskResponded mined", &b.respond_mined),
    ] {
        println!("    {what:<34} {:>8.1} {:>8.1} {:>8.1}", part.mean_ms, part.p50_ms, part.p99_ms);
    }
    let r = &b.receipt;
    println!(
        "    (then the aggregator's receipt     {:>8.1} {:>8.1} {:>8.1})",
        r.mean_ms, r.p50_ms, r.p99_ms
    );
    let p = &run.respond_probe;
    println!(
        "  one response, timed afterwards: getCheckSignaturesIndices {:.1} ms, respondToTask as eth_call \
         {:.1} ms, its eth_estimateGas {:.1} ms",
        p.indices_ms, p.call_ms, p.estimate_gas_ms
    );
    println!(
        "  {} blocks in {:.0} ms; respondToTask gas p50 {:.0}; the aggregator's createNewTask-to-receipt \
         p50 {:.1} ms",
        run.blocks, run.span_ms, run.respond_gas_p50, run.aggregator_latency_p50_ms
    );
}
