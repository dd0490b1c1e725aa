//! `GET /metrics`: the node's Prometheus metrics in the text exposition format, version 0.0.4.
//!
//! Two groups of families (see `docs/node-api.md` for each one's meaning):
//! - the EigenLayer AVS node metrics, under `eigen_`, with the `avs_name` label:
//!   `eigen_performance_score` (gauge), `eigen_fees_earned_total` (counter, `token`),
//!   `eigen_registered_stakes` (gauge, `quorum_number`, `quorum_name`), `eigen_rpc_request_total`
//!   (counter) and `eigen_rpc_request_duration_seconds` (histogram), both with `method` and
//!   `client_version`. The node reads only task logs from the chain, so it has no samples for fees
//!   and stakes: those two families are declared (`# HELP`, `# TYPE`) with no sample, which a scraper
//!   reads as "no value", never as zero;
//! - the node's own, under `spacecore_`: tasks received, signed and rejected (by `cause`),
//!   responses to the aggregator by `outcome` and still queued, probes of the aggregator, the
//!   signing latency (histogram), the uptime and the boot count.
//!
//! Every family has `# HELP` and `# TYPE` before its samples; counters end in `_total`, units are
//! in the name (`_seconds`); histogram buckets are cumulative and end with `le="+Inf"`, followed
//! by `_sum` and `_count`. Durations are kept in integer nanoseconds and printed as exact
//! decimals, so no floating point is involved. The output has a fixed set of series: its size
//! does not grow with traffic.

use crate::avs::{AVS_NAME, AvsNode, Cause, RPC_METHOD};
use crate::chain::Watcher;
use crate::status::Health;
use alloc::vec::Vec;
use prom_text::{Exposition, Kind, Seconds};

pub use prom_text::CONTENT_TYPE;

/// The `client_version` label of the RPC metrics: the aggregator does not say what it runs.
pub const CLIENT_VERSION: &str = "unknown";

/// What `GET /metrics` shows besides the AVS side's counters.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The AVS side: its counters, histograms and services.
    pub avs: &'a AvsNode,
    /// The chain watcher, when tasks are read from the chain.
    pub chain: Option<&'a Watcher>,
    /// The node's health, as `GET /eigen/node/health` reports it.
    pub health: Health,
    /// This boot's number, if the disk counts boots.
    pub boot_count: Option<u64>,
    /// Time since boot, ns.
    pub uptime_ns: u64,
}

/// The chain watcher's families (`spacecore_chain_`), present only when tasks are read from
/// the chain.
fn render_chain(e: &mut Exposition, chain: &Watcher) {
    let s = &chain.stats;
    e.family("spacecore_chain_head_block", Kind::Gauge, "The Ethereum node's head block last seen.");
    if let Some(head) = chain.head() {
        e.sample("spacecore_chain_head_block", &[], head);
    }
    e.family(
        "spacecore_chain_processed_block",
        Kind::Gauge,
        "The last block whose tasks were all signed and queued (the chain cursor on the disk).",
    );
    if let Some(cursor) = chain.cursor() {
        e.sample("spacecore_chain_processed_block", &[], cursor.block);
    }
    for (name, help, value) in [
        (
            "spacecore_chain_blocks_processed_total",
            "Blocks whose TaskManager logs were read and whose tasks were all handled, this boot.",
            s.blocks_processed,
        ),
        (
            "spacecore_chain_tasks_total",
            "NewTaskCreated logs of the TaskManager read and handed to the signing path.",
            s.tasks,
        ),
        (
            "spacecore_chain_ignored_logs_total",
            "Logs the Ethereum node returned that were ignored: another address or topic, or removed.",
            s.ignored_logs,
        ),
        (
            "spacecore_chain_reorgs_total",
            "Reorganisations deeper than the confirmations seen at the processed block (its blocks read again).",
            s.reorgs,
        ),
        ("spacecore_chain_rpc_requests_total", "JSON-RPC calls made to the Ethereum node.", s.requests),
        (
            "spacecore_chain_rpc_errors_total",
            "JSON-RPC calls to the Ethereum node that failed: no connection or answer, an HTTP or JSON-RPC error, \
             or an answer that does not read.",
            s.errors,
        ),
    ] {
        e.family(name, Kind::Counter, help);
        e.sample(name, &[], value);
    }
}

/// Renders every metric family.
pub fn render(inputs: &Inputs) -> Vec<u8> {
    let mut e = Exposition::with_capacity(8 * 1024);
    let avs = inputs.avs;
    let stats = &avs.stats;
    let avs_label = [("avs_name", AVS_NAME)];

    e.family(
        "eigen_performance_score",
        Kind::Gauge,
        "The performance metric is a score between 0 and 100: 100 while the node is healthy, 50 while \
         partially healthy (initializing, or the aggregator unreachable), 0 while unhealthy (not signing).",
    );
    e.sample("eigen_performance_score", &avs_label, inputs.health.performance_score());

    e.family(
        "eigen_fees_earned_total",
        Kind::Counter,
        "The amount of fees earned in <token>. Not known to the node (it reads only task logs from the chain): \
         no samples.",
    );
    e.family(
        "eigen_registered_stakes",
        Kind::Gauge,
        "Operator stake in <quorum> of <avs_name>'s StakeRegistry contract. Not known to the node (it reads \
         only task logs from the chain): no samples.",
    );

    let rpc_labels = [("avs_name", AVS_NAME), ("method", RPC_METHOD), ("client_version", CLIENT_VERSION)];
    e.family(
        "eigen_rpc_request_total",
        Kind::Counter,
        "Total number of json-rpc <method> requests the node made to the aggregator, answered or not.",
    );
    if avs.sends() {
        e.sample("eigen_rpc_request_total", &rpc_labels, stats.rpc.count());
    }
    e.family(
        "eigen_rpc_request_duration_seconds",
        Kind::Histogram,
        "Duration of json-rpc <method> requests to the aggregator in seconds, from connecting to the \
         complete answer or the failure.",
    );
    if avs.sends() {
        e.seconds_histogram("eigen_rpc_request_duration_seconds", &rpc_labels, &stats.rpc);
    }

    e.family("spacecore_tasks_received_total", Kind::Counter, "Tasks received (POST /task requests).");
    e.sample("spacecore_tasks_received_total", &[], stats.received);
    e.family(
        "spacecore_tasks_signed_total",
        Kind::Counter,
        "Tasks answered with a signed response, repeats of a response signed before included.",
    );
    e.sample("spacecore_tasks_signed_total", &[], stats.signed);
    e.family("spacecore_tasks_rejected_total", Kind::Counter, "Tasks not signed, by cause.");
    for cause in Cause::ALL {
        e.sample(
            "spacecore_tasks_rejected_total",
            &[("cause", cause.label())],
            stats.rejected[cause as usize],
        );
    }

    e.family(
        "spacecore_responses_total",
        Kind::Counter,
        "Signed responses done with, by outcome: accepted or refused by the aggregator, undelivered after \
         the last retry, or dropped from a full queue.",
    );
    for (outcome, n) in [
        ("accepted", stats.accepted),
        ("refused", stats.refused),
        ("undelivered", stats.undelivered),
        ("dropped", stats.dropped),
    ] {
        e.sample("spacecore_responses_total", &[("outcome", outcome)], n);
    }
    e.family("spacecore_responses_queued", Kind::Gauge, "Signed responses waiting to be sent or in flight.");
    e.sample("spacecore_responses_queued", &[], avs.queued());
    e.family(
        "spacecore_aggregator_probes_total",
        Kind::Counter,
        "Probes of the aggregator (GET /) made because no call reached it for 5 s.",
    );
    if avs.sends() {
        e.sample("spacecore_aggregator_probes_total", &[], stats.probes);
    }

    e.family(
        "spacecore_signing_duration_seconds",
        Kind::Histogram,
        "Time to compute one BLS signature over a task response, in seconds.",
    );
    e.seconds_histogram("spacecore_signing_duration_seconds", &[], &stats.signing);

    if let Some(chain) = inputs.chain {
        render_chain(&mut e, chain);
    }

    e.family("spacecore_uptime_seconds", Kind::Gauge, "Time since this boot, in seconds.");
    e.sample("spacecore_uptime_seconds", &[], Seconds(inputs.uptime_ns));
    e.family(
        "spacecore_boots_total",
        Kind::Counter,
        "Boots of this spacecore counted on its disk, this one included; no sample without a usable disk.",
    );
    if let Some(n) = inputs.boot_count {
        e.sample("spacecore_boots_total", &[], n);
    }
    e.finish().into_bytes()
}

#[cfg(test)]
mod tests;
