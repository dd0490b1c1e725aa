//! The launcher's metrics (`spec.observability.monitoring = "Prometheus..."`): what the
//! supervisor counts ([`Stats`]), what the devices and relays count, rendered in the
//! Prometheus text format by [`render`] and served on `GET /metrics` by [`server`]. With
//! `sidecar = true` the response also carries the guest's own metrics and health, read through
//! the spacecore's network namespace at each scrape.

pub mod guest;
pub mod server;

use crate::devices::{Counters, TYPE_BLOCK, TYPE_NET};
use crate::network::forward::ForwardCounters;
use crate::network::guest_http;
use crate::supervisor::policy::Cause;
use crate::vmm::ExitCounts;
use prom_text::{Exposition, Kind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How long the sidecar waits for each of the guest's answers.
pub const SIDECAR_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest guest `/metrics` body read.
pub const SIDECAR_MAX_BODY: usize = 1 << 20;
/// The guest's health endpoint.
pub const HEALTH_PATH: &str = "/eigen/node/health";

/// What the supervisor counts, across every boot of the spacecore.
#[derive(Debug, Default)]
pub struct Stats {
    boots: AtomicU64,
    restarts: [AtomicU64; Cause::LABELS.len()],
    exits: [AtomicU64; Cause::LABELS.len()],
    ready: AtomicBool,
    /// Microseconds from the start of the last boot to its ready; `u64::MAX` before any.
    boot_to_ready_us: AtomicU64,
    /// Microseconds from the last failure to the restarted guest's ready; `u64::MAX` before any.
    recovery_us: AtomicU64,
    health_alive: AtomicU64,
    health_failed: AtomicU64,
    /// Rolling updates by outcome, in the order of [`UPDATE_OUTCOMES`].
    updates: [AtomicU64; UPDATE_OUTCOMES.len()],
    /// Microseconds the last update held new connections; `u64::MAX` before any.
    update_hold_us: AtomicU64,
}

/// The outcomes of a rolling update (`crate::update`), as the metrics label them: the new
/// image serves; it failed and the old one serves again; it failed and so did the old one.
pub const UPDATE_OUTCOMES: [&str; 3] = ["done", "rolled_back", "failed"];

fn index(cause: Cause) -> usize {
    Cause::LABELS.iter().position(|&l| l == cause.label()).unwrap_or(0)
}

impl Stats {
    /// Fresh counters.
    pub fn new() -> Self {
        let stats = Stats::default();
        stats.boot_to_ready_us.store(u64::MAX, Relaxed);
        stats.recovery_us.store(u64::MAX, Relaxed);
        stats.update_hold_us.store(u64::MAX, Relaxed);
        stats
    }

    /// A rolling update ended with `outcome` (one of [`UPDATE_OUTCOMES`]), new connections
    /// having been held for `held`.
    pub fn update(&self, outcome: &str, held: Duration) {
        if let Some(i) = UPDATE_OUTCOMES.iter().position(|&o| o == outcome) {
            self.updates[i].fetch_add(1, Relaxed);
        }
        self.update_hold_us.store(held.as_micros() as u64, Relaxed);
    }

    /// A boot started.
    pub fn boot(&self) {
        self.boots.fetch_add(1, Relaxed);
    }

    /// The guest is ready, `boot_to_ready` after its boot started.
    pub fn ready(&self, boot_to_ready: Duration) {
        self.boot_to_ready_us.store(boot_to_ready.as_micros() as u64, Relaxed);
        self.ready.store(true, Relaxed);
    }

    /// A restarted guest is ready, `recovery` after the failure that ended the previous one.
    pub fn recovered(&self, recovery: Duration) {
        self.recovery_us.store(recovery.as_micros() as u64, Relaxed);
    }

    /// The guest's run ended this way.
    pub fn ended(&self, cause: Cause) {
        self.ready.store(false, Relaxed);
        self.exits[index(cause)].fetch_add(1, Relaxed);
    }

    /// The launcher restarts the guest after `cause`.
    pub fn restart(&self, cause: Cause) {
        self.restarts[index(cause)].fetch_add(1, Relaxed);
    }

    /// A health check answered (`alive`) or failed.
    pub fn health_check(&self, alive: bool) {
        let counter = if alive { &self.health_alive } else { &self.health_failed };
        counter.fetch_add(1, Relaxed);
    }
}

/// Everything the metrics are read from.
#[derive(Debug)]
pub struct Sources {
    /// `metadata.name`.
    pub name: String,
    /// The supervisor's counters.
    pub stats: Arc<Stats>,
    /// VM exits, across boots.
    pub exits: Arc<ExitCounts>,
    /// Each device's virtio type and counters (kept across boots: the devices are).
    pub devices: Vec<(u32, Arc<Counters>)>,
    /// Each published port's name and counters.
    pub published: Vec<(String, Arc<ForwardCounters>)>,
    /// Each named endpoint's name and its relay's counters (`Plan::egress`, the aggregator
    /// first); empty when the guest reaches nothing.
    pub egress: Vec<(String, Arc<ForwardCounters>)>,
    /// With `sidecar = true`: the guest's HTTP address, inside the namespace.
    pub sidecar: Option<SocketAddr>,
}

/// What the sidecar read from the guest for one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestScrape {
    /// The health endpoint's status (`None`: no answer).
    pub health_status: Option<u16>,
    /// The guest's `/metrics` text, if it answered 200.
    pub metrics: Option<String>,
}

impl GuestScrape {
    /// Reads the guest's health and metrics at `target`; the calling thread must be in the
    /// spacecore's namespace.
    pub fn read(target: SocketAddr) -> Self {
        let health = guest_http::get(target, HEALTH_PATH, SIDECAR_TIMEOUT, 64 * 1024);
        let metrics = guest_http::get(target, "/metrics", SIDECAR_TIMEOUT, SIDECAR_MAX_BODY);
        GuestScrape {
            health_status: health.ok().map(|a| a.status),
            metrics: metrics
                .ok()
                .filter(|a| a.status == 200)
                .map(|a| String::from_utf8_lossy(&a.body).into_owned()),
        }
    }
}

/// The response to `GET /metrics`: the launcher's families, then (with the sidecar) the
/// guest's health and its own metrics, filtered. `rss_bytes` is the launcher's resident set.
pub fn render(sources: &Sources, rss_bytes: u64, guest: Option<&GuestScrape>) -> String {
    let mut e = Exposition::default();
    let stats = &sources.stats;
    let n = |c: &AtomicU64| c.load(Relaxed) as f64;
    e.family("spacecore_launcher_info", Kind::Gauge, "The spacecore this launcher runs; always 1.")
        .sample_f64(
            "spacecore_launcher_info",
            &[("spacecore", &sources.name), ("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    e.family("spacecore_launcher_boots_total", Kind::Counter, "Guest boots, the first included.").sample_f64(
        "spacecore_launcher_boots_total",
        &[],
        n(&stats.boots),
    );
    e.family(
        "spacecore_launcher_restarts_total",
        Kind::Counter,
        "Guest restarts, by the cause of the end of the run before.",
    );
    for (label, count) in Cause::LABELS.iter().zip(&stats.restarts) {
        e.sample_f64("spacecore_launcher_restarts_total", &[("cause", label)], n(count));
    }
    e.family("spacecore_launcher_guest_exits_total", Kind::Counter, "Ends of guest runs, by kind.");
    for (label, count) in Cause::LABELS.iter().zip(&stats.exits) {
        e.sample_f64("spacecore_launcher_guest_exits_total", &[("kind", label)], n(count));
    }
    let up = if stats.ready.load(Relaxed) { 1.0 } else { 0.0 };
    e.family(
        "spacecore_launcher_guest_ready",
        Kind::Gauge,
        "1 while a guest that signalled ready runs, else 0.",
    )
    .sample_f64("spacecore_launcher_guest_ready", &[], up);
    let seconds = |us: u64| (us != u64::MAX).then(|| us as f64 / 1e6);
    e.family(
        "spacecore_launcher_boot_to_ready_seconds",
        Kind::Gauge,
        "Start of the last boot to the guest's ready.",
    );
    if let Some(s) = seconds(stats.boot_to_ready_us.load(Relaxed)) {
        e.sample_f64("spacecore_launcher_boot_to_ready_seconds", &[], s);
    }
    e.family(
        "spacecore_launcher_recovery_seconds",
        Kind::Gauge,
        "Last guest failure to the restarted guest's ready.",
    );
    if let Some(s) = seconds(stats.recovery_us.load(Relaxed)) {
        e.sample_f64("spacecore_launcher_recovery_seconds", &[], s);
    }
    let (hypercalls, mmio) = sources.exits.get();
    e.family(
        "spacecore_launcher_vcpu_exits_total",
        Kind::Counter,
        "VM exits handled by the launcher, by kind.",
    )
    .sample_f64("spacecore_launcher_vcpu_exits_total", &[("kind", "hypercall")], hypercalls as f64)
    .sample_f64("spacecore_launcher_vcpu_exits_total", &[("kind", "mmio")], mmio as f64);
    e.family(
        "spacecore_launcher_console_dropped_bytes_total",
        Kind::Counter,
        "Guest console bytes dropped: written beyond the console budget.",
    )
    .sample_f64(
        "spacecore_launcher_console_dropped_bytes_total",
        &[],
        sources.exits.console_dropped_bytes.load(Relaxed) as f64,
    );
    devices(&mut e, &sources.devices);
    relays(&mut e, sources);
    e.family(
        "spacecore_launcher_health_checks_total",
        Kind::Counter,
        "Health checks of the guest, by result.",
    )
    .sample_f64("spacecore_launcher_health_checks_total", &[("result", "alive")], n(&stats.health_alive))
    .sample_f64(
        "spacecore_launcher_health_checks_total",
        &[("result", "failed")],
        n(&stats.health_failed),
    );
    e.family(
        "spacecore_launcher_updates_total",
        Kind::Counter,
        "Rolling updates of the guest's image (hac-launch --update), by outcome.",
    );
    for (label, count) in UPDATE_OUTCOMES.iter().zip(&stats.updates) {
        e.sample_f64("spacecore_launcher_updates_total", &[("outcome", label)], n(count));
    }
    e.family(
        "spacecore_launcher_update_hold_seconds",
        Kind::Gauge,
        "How long the last rolling update held new connections in the relay (the node did not answer).",
    );
    if let Some(s) = seconds(stats.update_hold_us.load(Relaxed)) {
        e.sample_f64("spacecore_launcher_update_hold_seconds", &[], s);
    }
    e.family(
        "spacecore_launcher_resident_memory_bytes",
        Kind::Gauge,
        "Resident set of the launcher process, guest memory included.",
    )
    .sample_f64("spacecore_launcher_resident_memory_bytes", &[], rss_bytes as f64);
    if let Some(guest) = guest {
        sidecar(&mut e, guest);
    }
    e.finish()
}

fn devices(e: &mut Exposition, devices: &[(u32, Arc<Counters>)]) {
    let disks: Vec<_> = devices.iter().filter(|(t, _)| *t == TYPE_BLOCK).map(|(_, c)| c.snapshot()).collect();
    let nics: Vec<_> = devices.iter().filter(|(t, _)| *t == TYPE_NET).map(|(_, c)| c.snapshot()).collect();
    let sum = |list: &[crate::devices::CounterSnapshot], f: fn(&crate::devices::CounterSnapshot) -> u64| {
        list.iter().map(f).sum::<u64>() as f64
    };
    e.family("spacecore_launcher_disk_requests_total", Kind::Counter, "virtio-blk requests completed.")
        .sample_f64("spacecore_launcher_disk_requests_total", &[], sum(&disks, |c| c.requests));
    e.family(
        "spacecore_launcher_disk_bytes_total",
        Kind::Counter,
        "Bytes the guest read from and wrote to its disk.",
    )
    .sample_f64(
        "spacecore_launcher_disk_bytes_total",
        &[("direction", "read")],
        sum(&disks, |c| c.bytes_read),
    )
    .sample_f64(
        "spacecore_launcher_disk_bytes_total",
        &[("direction", "write")],
        sum(&disks, |c| c.bytes_written),
    );
    e.family(
        "spacecore_launcher_disk_throttled_total",
        Kind::Counter,
        "Times the disk stopped taking the guest's requests at its iops or bandwidth limit.",
    )
    .sample_f64("spacecore_launcher_disk_throttled_total", &[], sum(&disks, |c| c.throttled));
    e.family(
        "spacecore_launcher_net_bytes_total",
        Kind::Counter,
        "Ethernet bytes through the guest's NIC (rx: to the guest).",
    )
    .sample_f64("spacecore_launcher_net_bytes_total", &[("direction", "rx")], sum(&nics, |c| c.rx_bytes))
    .sample_f64("spacecore_launcher_net_bytes_total", &[("direction", "tx")], sum(&nics, |c| c.tx_bytes));
    e.family(
        "spacecore_launcher_net_packets_total",
        Kind::Counter,
        "Frames through the guest's NIC (rx: to the guest).",
    )
    .sample_f64("spacecore_launcher_net_packets_total", &[("direction", "rx")], sum(&nics, |c| c.rx_packets))
    .sample_f64(
        "spacecore_launcher_net_packets_total",
        &[("direction", "tx")],
        sum(&nics, |c| c.tx_packets),
    );
    e.family(
        "spacecore_launcher_net_dropped_total",
        Kind::Counter,
        "Frames the NIC dropped (too large, malformed, refused by the tap).",
    )
    .sample_f64("spacecore_launcher_net_dropped_total", &[], sum(&nics, |c| c.dropped));
    e.family(
        "spacecore_launcher_device_errors_total",
        Kind::Counter,
        "Requests or descriptor chains the devices refused, by device.",
    )
    .sample_f64("spacecore_launcher_device_errors_total", &[("device", "disk")], sum(&disks, |c| c.errors))
    .sample_f64("spacecore_launcher_device_errors_total", &[("device", "net")], sum(&nics, |c| c.errors));
}

fn relays(e: &mut Exposition, sources: &Sources) {
    let get = |c: &AtomicU64| c.load(Relaxed) as f64;
    e.family(
        "spacecore_launcher_published_connections_total",
        Kind::Counter,
        "Connections accepted on each published port.",
    );
    for (port, c) in &sources.published {
        e.sample_f64("spacecore_launcher_published_connections_total", &[("port", port)], get(&c.accepted));
    }
    e.family(
        "spacecore_launcher_published_refused_total",
        Kind::Counter,
        "Connections to each published port closed unrelayed (over a limit, guest not answering).",
    );
    for (port, c) in &sources.published {
        e.sample_f64("spacecore_launcher_published_refused_total", &[("port", port)], get(&c.refused));
    }
    e.family(
        "spacecore_launcher_published_refused_per_source_total",
        Kind::Counter,
        "Of those, connections closed unrelayed because their source address had its share of each published port's connections.",
    );
    for (port, c) in &sources.published {
        e.sample_f64(
            "spacecore_launcher_published_refused_per_source_total",
            &[("port", port)],
            get(&c.refused_per_source),
        );
    }
    e.family(
        "spacecore_launcher_published_evicted_total",
        Kind::Counter,
        "Relayed connections to each published port closed to make room for a new one (the one idle longest, when full).",
    );
    for (port, c) in &sources.published {
        e.sample_f64("spacecore_launcher_published_evicted_total", &[("port", port)], get(&c.evicted));
    }
    e.family(
        "spacecore_launcher_published_idle_closed_total",
        Kind::Counter,
        "Relayed connections to each published port closed after the idle timeout without a byte either way.",
    );
    for (port, c) in &sources.published {
        e.sample_f64(
            "spacecore_launcher_published_idle_closed_total",
            &[("port", port)],
            get(&c.idle_closed),
        );
    }
    e.family(
        "spacecore_launcher_published_held_total",
        Kind::Counter,
        "Connections to each published port that waited in the relay while a rolling update replaced the guest.",
    );
    for (port, c) in &sources.published {
        e.sample_f64("spacecore_launcher_published_held_total", &[("port", port)], get(&c.held_connections));
    }
    e.family(
        "spacecore_launcher_published_open_connections",
        Kind::Gauge,
        "Connections being relayed through each published port now.",
    );
    for (port, c) in &sources.published {
        e.sample_f64(
            "spacecore_launcher_published_open_connections",
            &[("port", port)],
            c.open_connections() as f64,
        );
    }
    e.family(
        "spacecore_launcher_published_bytes_total",
        Kind::Counter,
        "Bytes through each published port (in: clients to the guest).",
    );
    for (port, c) in &sources.published {
        e.sample_f64(
            "spacecore_launcher_published_bytes_total",
            &[("port", port), ("direction", "in")],
            get(&c.bytes_in),
        );
        e.sample_f64(
            "spacecore_launcher_published_bytes_total",
            &[("port", port), ("direction", "out")],
            get(&c.bytes_out),
        );
    }
    e.family(
        "spacecore_launcher_egress_connections_total",
        Kind::Counter,
        "Connections from the guest to each named endpoint, accepted by its relay.",
    );
    for (name, c) in &sources.egress {
        e.sample_f64("spacecore_launcher_egress_connections_total", &[("name", name)], get(&c.accepted));
    }
    e.family(
        "spacecore_launcher_egress_refused_total",
        Kind::Counter,
        "Connections to each named endpoint closed unrelayed (over its limit, endpoint refusing or silent).",
    );
    for (name, c) in &sources.egress {
        e.sample_f64("spacecore_launcher_egress_refused_total", &[("name", name)], get(&c.refused));
    }
    e.family(
        "spacecore_launcher_egress_bytes_total",
        Kind::Counter,
        "Bytes between the guest and each named endpoint (out: to the endpoint).",
    );
    for (name, c) in &sources.egress {
        e.sample_f64(
            "spacecore_launcher_egress_bytes_total",
            &[("name", name), ("direction", "out")],
            get(&c.bytes_in),
        );
        e.sample_f64(
            "spacecore_launcher_egress_bytes_total",
            &[("name", name), ("direction", "in")],
            get(&c.bytes_out),
        );
    }
    // The aggregator's own families, from before the endpoints were a list: the same counts as
    // its `egress` series, kept for existing dashboards.
    if let Some((_, c)) = sources.egress.iter().find(|(name, _)| name == "aggregator") {
        e.family(
            "spacecore_launcher_aggregator_connections_total",
            Kind::Counter,
            "Connections from the guest to the aggregator.",
        )
        .sample_f64("spacecore_launcher_aggregator_connections_total", &[], get(&c.accepted));
        e.family(
            "spacecore_launcher_aggregator_bytes_total",
            Kind::Counter,
            "Bytes between the guest and the aggregator (out: to the aggregator).",
        )
        .sample_f64("spacecore_launcher_aggregator_bytes_total", &[("direction", "out")], get(&c.bytes_in))
        .sample_f64(
            "spacecore_launcher_aggregator_bytes_total",
            &[("direction", "in")],
            get(&c.bytes_out),
        );
    }
}

fn sidecar(e: &mut Exposition, guest: &GuestScrape) {
    let status = guest.health_status.unwrap_or(0);
    e.family(
        "spacecore_launcher_guest_health_status",
        Kind::Gauge,
        "HTTP status of the guest's GET /eigen/node/health at this scrape (0: no answer).",
    )
    .sample_f64("spacecore_launcher_guest_health_status", &[], f64::from(status));
    let healthy = match status {
        200 => 1.0,
        206 => 0.5,
        _ => 0.0,
    };
    e.family("spacecore_launcher_guest_healthy", Kind::Gauge, "The guest's health at this scrape: 1 healthy (200), 0.5 partially healthy (206), 0 unhealthy or no answer.")
        .sample_f64("spacecore_launcher_guest_healthy", &[], healthy);
    let (kept, dropped) = guest.metrics.as_deref().map(guest::filter).unwrap_or_default();
    e.family(
        "spacecore_launcher_sidecar_scrape_success",
        Kind::Gauge,
        "1 if the guest's GET /metrics answered 200 at this scrape, else 0.",
    )
    .sample_f64(
        "spacecore_launcher_sidecar_scrape_success",
        &[],
        if guest.metrics.is_some() { 1.0 } else { 0.0 },
    );
    e.family(
        "spacecore_launcher_sidecar_dropped_lines",
        Kind::Gauge,
        "Lines of the guest's metrics left out at this scrape (invalid, or named like the launcher's).",
    )
    .sample_f64("spacecore_launcher_sidecar_dropped_lines", &[], dropped as f64);
    e.raw(&kept);
}

#[cfg(test)]
mod tests;
