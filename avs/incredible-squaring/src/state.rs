//! What the AVS shows of itself: `GET /chain` and its metrics.

use crate::chain::{self, Watcher};
use crate::{AVS_NAME, CLIENT_VERSION, Cause, IncredibleSquaringAvs, RPC_METHOD, health_name};
use alloc::string::String;
use spacecore_avs::Metrics;

/// `GET /chain`.
#[derive(Debug, serde::Serialize)]
pub struct ChainStatus<'a> {
    status: &'a str,
    reason: String,
    task_manager: String,
    confirmations: u64,
    chain_id: Option<u64>,
    head: Option<u64>,
    processed_block: Option<u64>,
    processed_hash: Option<String>,
    blocks_processed: u64,
    tasks: u64,
    ignored_logs: u64,
    reorgs: u64,
    rpc_requests: u64,
    rpc_errors: u64,
}

/// The watcher's state, as `GET /chain` shows it.
pub fn chain_status(w: &Watcher) -> ChainStatus<'static> {
    let (config, cursor, s) = (w.config(), w.cursor(), &w.stats);
    ChainStatus {
        status: health_name(w.status()),
        reason: w.reason(),
        task_manager: chain::rpc::hex(&config.task_manager),
        confirmations: config.confirmations.into(),
        chain_id: w.chain_id(),
        head: w.head(),
        processed_block: cursor.map(|c| c.block),
        processed_hash: cursor.map(|c| chain::rpc::hex(&c.hash)),
        blocks_processed: s.blocks_processed,
        tasks: s.tasks,
        ignored_logs: s.ignored_logs,
        reorgs: s.reorgs,
        rpc_requests: s.requests,
        rpc_errors: s.errors,
    }
}

/// Writes the AVS's metric families.
pub fn metrics(avs: &IncredibleSquaringAvs, out: &mut Metrics) {
    let stats = &avs.stats;
    let sends = avs.aggregator.sends();
    let rpc_labels: &[(&str, &str)] =
        &[("avs_name", AVS_NAME), ("method", RPC_METHOD), ("client_version", CLIENT_VERSION)];
    let when_sending = |labels, n| if sends { alloc::vec![(labels, n)] } else { alloc::vec![] };
    out.counter(
        "eigen_rpc_request_total",
        "Total number of json-rpc <method> requests the node made to the aggregator, answered or not.",
        &when_sending(rpc_labels, stats.rpc.count()),
    );
    let histograms: &[(&[(&str, &str)], _)] = if sends { &[(rpc_labels, &stats.rpc)] } else { &[] };
    out.seconds_histogram(
        "eigen_rpc_request_duration_seconds",
        "Duration of json-rpc <method> requests to the aggregator in seconds, from connecting to the \
         complete answer or the failure.",
        histograms,
    );
    out.counter(
        "incredible_squaring_tasks_received_total",
        "Tasks received (POST /task requests).",
        &[(&[], stats.received)],
    );
    out.counter(
        "incredible_squaring_tasks_signed_total",
        "Tasks answered with a signed response, repeats of a response signed before included.",
        &[(&[], stats.signed)],
    );
    let labels = Cause::ALL.map(|cause| [("cause", cause.label())]);
    let rejected: alloc::vec::Vec<_> =
        Cause::ALL.iter().zip(&labels).map(|(cause, l)| (&l[..], stats.rejected[*cause as usize])).collect();
    out.counter("incredible_squaring_tasks_rejected_total", "Tasks not signed, by cause.", &rejected);
    out.counter(
        "incredible_squaring_responses_total",
        "Signed responses done with, by outcome: accepted or refused by the aggregator, undelivered after \
         the last retry, or dropped from a full queue.",
        &[
            (&[("outcome", "accepted")], stats.accepted),
            (&[("outcome", "refused")], stats.refused),
            (&[("outcome", "undelivered")], stats.undelivered),
            (&[("outcome", "dropped")], stats.dropped),
        ],
    );
    out.gauge(
        "incredible_squaring_responses_queued",
        "Signed responses waiting to be sent or in flight.",
        &[(&[], avs.aggregator.queued() as f64)],
    );
    out.counter(
        "incredible_squaring_aggregator_probes_total",
        "Probes of the aggregator (GET /) made because no call reached it for 5 s.",
        &when_sending(&[], stats.probes),
    );
    if let Some(chain) = &avs.chain {
        chain_metrics(chain, out);
    }
}

/// The chain watcher's families, present only when tasks are read from the chain.
fn chain_metrics(chain: &Watcher, out: &mut Metrics) {
    let s = &chain.stats;
    let gauge = |v: Option<u64>| v.map(|v| (&[][..], v as f64));
    out.gauge(
        "incredible_squaring_chain_head_block",
        "The Ethereum node's head block last seen.",
        gauge(chain.head()).as_slice(),
    );
    out.gauge(
        "incredible_squaring_chain_processed_block",
        "The last block whose tasks were all signed and queued (the chain cursor on the disk).",
        gauge(chain.cursor().map(|c| c.block)).as_slice(),
    );
    for (name, help, value) in [
        (
            "incredible_squaring_chain_blocks_processed_total",
            "Blocks whose TaskManager logs were read and whose tasks were all handled, this boot.",
            s.blocks_processed,
        ),
        (
            "incredible_squaring_chain_tasks_total",
            "NewTaskCreated logs of the TaskManager read and handed to the signing path.",
            s.tasks,
        ),
        (
            "incredible_squaring_chain_ignored_logs_total",
            "Logs the Ethereum node returned that were ignored: another address or topic, or removed.",
            s.ignored_logs,
        ),
        (
            "incredible_squaring_chain_reorgs_total",
            "Reorganisations deeper than the confirmations seen at the processed block (its blocks read again).",
            s.reorgs,
        ),
        (
            "incredible_squaring_chain_rpc_requests_total",
            "JSON-RPC calls made to the Ethereum node.",
            s.requests,
        ),
        (
            "incredible_squaring_chain_rpc_errors_total",
            "JSON-RPC calls to the Ethereum node that failed: no connection or answer, an HTTP or JSON-RPC error, \
             or an answer that does not read.",
            s.errors,
        ),
    ] {
        out.counter(name, help, &[(&[], value)]);
    }
}
