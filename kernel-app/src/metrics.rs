//! `GET /metrics`: the node's Prometheus metrics in the text exposition format, version 0.0.4.
//!
//! The runtime's families (see `docs/node-api.md` for each one's meaning), before the linked
//! AVS's own:
//! - the EigenLayer AVS node metrics the runtime knows, under `eigen_`, with the `avs_name` label
//!   (the linked AVS's name): `eigen_performance_score` (gauge), and `eigen_fees_earned_total`
//!   (counter, `token`) and `eigen_registered_stakes` (gauge, `quorum_number`, `quorum_name`),
//!   declared (`# HELP`, `# TYPE`) with no sample, which a scraper reads as "no value", never as
//!   zero: the node does not know them;
//! - the node's own, under `spacecore_`: the signing latency (histogram), the uptime and the boot
//!   count.
//!
//! Every family has `# HELP` and `# TYPE` before its samples; counters end in `_total`, units are
//! in the name (`_seconds`); histogram buckets are cumulative and end with `le="+Inf"`, followed
//! by `_sum` and `_count`. Durations are kept in integer nanoseconds and printed as exact
//! decimals, so no floating point is involved. The output has a fixed set of series: its size
//! does not grow with traffic.

use crate::avs::AvsNode;
use crate::status::Health;
use alloc::vec::Vec;
use prom_text::{Exposition, Kind, Seconds};

pub use prom_text::CONTENT_TYPE;

/// What `GET /metrics` shows besides the AVS side's counters.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The operator side: its signing histogram.
    pub avs: &'a AvsNode,
    /// The linked AVS's name (the `avs_name` label).
    pub avs_name: &'a str,
    /// The node's health, as `GET /eigen/node/health` reports it.
    pub health: Health,
    /// This boot's number, if the disk counts boots.
    pub boot_count: Option<u64>,
    /// Time since boot, ns.
    pub uptime_ns: u64,
}

/// Renders every metric family.
pub fn render(inputs: &Inputs) -> Vec<u8> {
    let mut e = Exposition::with_capacity(8 * 1024);
    let avs = inputs.avs;
    let stats = &avs.stats;
    let avs_label = [("avs_name", inputs.avs_name)];

    e.family(
        "eigen_performance_score",
        Kind::Gauge,
        "The performance metric is a score between 0 and 100: 100 while the node is healthy, 50 while \
         partially healthy (initializing, or a service of the AVS down), 0 while unhealthy (not signing).",
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

    e.family(
        "spacecore_signing_duration_seconds",
        Kind::Histogram,
        "Time to compute one BLS signature over a task response, in seconds.",
    );
    e.seconds_histogram("spacecore_signing_duration_seconds", &[], &stats.signing);

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
