//! `[spec.failover]` and `[spec.observability]`: how the launcher restarts a
//! failed guest, checks its health, serves metrics and writes its log.
//!
//! Every key here does something or is rejected: the restart and health
//! keys need a strategy that restarts, the health keys need the HTTP port the
//! checks go to, and `metrics_address` and `sidecar` need Prometheus
//! monitoring.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;

use crate::address;
use crate::error::SpecError;
use crate::plan::{
    AvsPlan, DEFAULT_METRICS_ADDRESS, Failover, FailoverStrategy, LogFormat, NetworkPlan, Observability,
};
use crate::tree::{
    Choices, Item, NOT_BY_THIS_LAUNCHER, Table, file_path, optional_bool, optional_keyword, optional_string,
};
use crate::units::{self, DURATION_EXPECTED, format_duration_ms};

const FAILOVER_STRATEGIES: Choices<FailoverStrategy> =
    Choices { accepted: FailoverStrategy::ACCEPTED, refused: &[], refused_because: NOT_BY_THIS_LAUNCHER };

/// The keys of `[spec.failover]`.
pub(crate) const FAILOVER_KEYS: &[&str] = &[
    "strategy",
    "max_restarts",
    "restart_window",
    "backoff_initial",
    "backoff_max",
    "health_interval",
    "health_timeout",
];
/// The keys of `[spec.observability]`.
pub(crate) const OBSERVABILITY_KEYS: &[&str] =
    &["sidecar", "monitoring", "logging", "metrics_address", "log_file"];

/// Accepted `max_restarts`.
pub const MAX_RESTARTS: RangeInclusive<u32> = 1..=1000;
/// Accepted `restart_window`, in milliseconds (1 s to 24 h).
pub const RESTART_WINDOW_MS: RangeInclusive<u64> = 1_000..=86_400_000;
/// Accepted `backoff_initial` and `backoff_max`, in milliseconds (0 to 1 h).
pub const BACKOFF_MS: RangeInclusive<u64> = 0..=3_600_000;
/// Accepted `health_interval`, in milliseconds (10 ms to 1 h).
pub const HEALTH_INTERVAL_MS: RangeInclusive<u64> = 10..=3_600_000;
/// Accepted `health_timeout`, in milliseconds (10 ms to 24 h).
pub const HEALTH_TIMEOUT_MS: RangeInclusive<u64> = 10..=86_400_000;

const HEALTH_KEYS: &[&str] = &["health_interval", "health_timeout"];
const LOG_FILE_EXPECTED: &str =
    "a path to the file the launcher appends its output to, such as \"./spacecore.log\"";
const METRICS_ADDRESS_EXPECTED: &str = "an IP address and port to listen on, such as \"127.0.0.1:9101\" or \"[::1]:9101\" (port 0: any free port)";
const MONITORING_EXPECTED: &str =
    "a value naming Prometheus, such as \"Prometheus\" or \"Prometheus/Grafana\"";
const LOGGING_EXPECTED: &str = "a value naming Loki, Fluentd or ELK (JSON lines), such as \"Loki/Fluentd/ELK\", \
                                or \"json\" (JSON lines) or \"text\" (plain lines)";

/// `[spec.failover]`.
pub(crate) fn failover(table: &Table<'_, '_>, network: &NetworkPlan) -> Result<Failover, SpecError> {
    let defaults = Failover::default();
    let strategy = optional_keyword(table, "strategy", &FAILOVER_STRATEGIES)?;
    let max_restarts = match table.get("max_restarts") {
        Some(item) => max_restarts(&item)?,
        None => defaults.max_restarts,
    };
    let window = duration(table, "restart_window", defaults.restart_window_ms, RESTART_WINDOW_MS)?;
    let initial = duration(table, "backoff_initial", defaults.backoff_initial_ms, BACKOFF_MS)?;
    let max = duration(table, "backoff_max", defaults.backoff_max_ms, BACKOFF_MS)?;
    let interval = duration(table, "health_interval", defaults.health_interval_ms, HEALTH_INTERVAL_MS)?;
    let timeout = duration(table, "health_timeout", defaults.health_timeout_ms, HEALTH_TIMEOUT_MS)?;
    not_less(table, ("backoff_max", max), ("backoff_initial", initial))?;
    not_less(table, ("health_timeout", timeout), ("health_interval", interval))?;

    let restarting = strategy != FailoverStrategy::None;
    for item in table.entries().into_iter().filter(|item| item.name != "strategy") {
        if !restarting {
            return Err(item.key_error(format!(
                "`{}` has no effect with strategy = \"none\"; set strategy = \"auto-recovery\" or \
                 \"restart-always\", or remove it",
                item.name
            )));
        }
        if HEALTH_KEYS.contains(&item.name) && network.http_port().is_none() {
            return Err(item.key_error(format!(
                "`{}` has no effect: health checks call GET /eigen/node/health on the inbound port \
                 named HTTP, and there is none; add HTTP = PORT to [spec.networking.inbound_ports], \
                 or remove it",
                item.name
            )));
        }
    }
    Ok(Failover {
        strategy,
        max_restarts,
        restart_window_ms: window.0,
        backoff_initial_ms: initial.0,
        backoff_max_ms: max.0,
        health_interval_ms: interval.0,
        health_timeout_ms: timeout.0,
    })
}

fn max_restarts(item: &Item<'_, '_>) -> Result<u32, SpecError> {
    let expected = format!("a whole number from {} to {}", MAX_RESTARTS.start(), MAX_RESTARTS.end());
    let Some(value) = item.integer() else { return Err(item.wrong_type(&expected)) };
    let value = value?;
    match u32::try_from(value) {
        Ok(count) if MAX_RESTARTS.contains(&count) => Ok(count),
        _ => Err(item.error(format!("{value} is out of range; expected {expected}"))),
    }
}

/// A duration key: its value in milliseconds (or `default`) and whether it
/// was written.
pub(crate) fn duration(
    table: &Table<'_, '_>,
    name: &str,
    default: u64,
    range: RangeInclusive<u64>,
) -> Result<(u64, bool), SpecError> {
    let Some(item) = table.get(name) else { return Ok((default, false)) };
    let text = item.string(DURATION_EXPECTED)?;
    let ms = units::parse_duration_ms(text).map_err(|e| item.error(e.to_string()))?;
    if !range.contains(&ms) {
        return Err(item.error(format!(
            "{text:?} is out of range; expected a duration from {} to {}",
            format_duration_ms(*range.start()),
            format_duration_ms(*range.end())
        )));
    }
    Ok((ms, true))
}

/// `larger` must not be less than `smaller`; the error goes to whichever of
/// the two was written (`larger` when both were).
fn not_less(
    table: &Table<'_, '_>,
    (larger, (large, large_written)): (&str, (u64, bool)),
    (smaller, (small, _)): (&str, (u64, bool)),
) -> Result<(), SpecError> {
    if large >= small {
        return Ok(());
    }
    let (blamed, message) = if large_written {
        (
            larger,
            format!("{} is less than {smaller} ({})", format_duration_ms(large), format_duration_ms(small)),
        )
    } else {
        (
            smaller,
            format!(
                "{} is more than {larger} ({}, its default); lower it or set {larger}",
                format_duration_ms(small),
                format_duration_ms(large)
            ),
        )
    };
    match table.get(blamed) {
        Some(item) => Err(item.error(message)),
        None => Ok(()),
    }
}

/// `[spec.observability]`.
pub(crate) fn observability(
    table: &Table<'_, '_>,
    spec_dir: &Path,
    network: &NetworkPlan,
    avs: Option<&AvsPlan>,
) -> Result<Observability, SpecError> {
    let sidecar = optional_bool(table, "sidecar")?;
    let monitoring = optional_string(table, "monitoring")?;
    if let (Some(text), Some(item)) = (&monitoring, table.get("monitoring"))
        && !text.to_ascii_lowercase().contains("prometheus")
    {
        return Err(
            item.error(format!("{text:?} is not supported by this launcher; expected {MONITORING_EXPECTED}"))
        );
    }
    let logging = optional_string(table, "logging")?;
    let log_format = match (&logging, table.get("logging")) {
        (Some(text), Some(item)) => log_format(text).ok_or_else(|| {
            item.error(format!("unknown logging system {text:?}; expected {LOGGING_EXPECTED}"))
        })?,
        _ => LogFormat::Text,
    };
    let explicit_address =
        table.get("metrics_address").map(|item| metrics_address(&item, network, avs)).transpose()?;
    let log_file =
        table.get("log_file").map(|item| file_path(&item, spec_dir, LOG_FILE_EXPECTED)).transpose()?;

    let prometheus = monitoring.is_some();
    if !prometheus && let Some(item) = table.get("metrics_address") {
        return Err(item.key_error(
            "`metrics_address` has no effect without Prometheus monitoring; add monitoring = \
             \"Prometheus\", or remove it"
                .to_owned(),
        ));
    }
    if sidecar && let Some(item) = table.get("sidecar") {
        if !prometheus {
            return Err(item.error(
                "sidecar = true adds the guest's metrics and health to the launcher's /metrics, \
                 which needs Prometheus monitoring; add monitoring = \"Prometheus\""
                    .to_owned(),
            ));
        }
        if network.http_port().is_none() {
            return Err(item.error(
                "sidecar = true reads the guest's GET /metrics and GET /eigen/node/health on the \
                 inbound port named HTTP, and there is none; add HTTP = PORT to \
                 [spec.networking.inbound_ports]"
                    .to_owned(),
            ));
        }
    }
    Ok(Observability {
        sidecar,
        monitoring,
        logging,
        metrics_address: prometheus.then(|| explicit_address.unwrap_or(DEFAULT_METRICS_ADDRESS)),
        log_format,
        log_file,
    })
}

/// JSON for a value naming Loki, Fluentd or ELK (as a word, any case) or
/// `"json"`; plain text for `"text"`.
fn log_format(text: &str) -> Option<LogFormat> {
    match text {
        "json" => return Some(LogFormat::Json),
        "text" => return Some(LogFormat::Text),
        _ => {}
    }
    let names_one = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| ["loki", "fluentd", "elk"].iter().any(|known| word.eq_ignore_ascii_case(known)));
    names_one.then_some(LogFormat::Json)
}

fn metrics_address(
    item: &Item<'_, '_>,
    network: &NetworkPlan,
    avs: Option<&AvsPlan>,
) -> Result<SocketAddr, SpecError> {
    let text = item.string(METRICS_ADDRESS_EXPECTED)?;
    let address = address::parse_listen(text)
        .map_err(|problem| item.error(format!("{problem}; expected {METRICS_ADDRESS_EXPECTED}")))?;
    if address.port() != 0 {
        let clash = network
            .inbound_ports
            .iter()
            .find(|port| port.host_port == address.port() && overlap(network.publish_address, address.ip()));
        if let Some(port) = clash {
            return Err(item.error(format!(
                "{address} is where inbound port `{}` is published; expected another address or port",
                port.name
            )));
        }
        let endpoints = avs.map(AvsPlan::endpoints).unwrap_or_default();
        let clash = endpoints.iter().find(|endpoint| {
            endpoint.address.port() == address.port() && overlap(endpoint.address.ip(), address.ip())
        });
        if let Some(endpoint) = clash {
            let whose =
                if endpoint.name == "aggregator" { "the aggregator's" } else { "an Ethereum endpoint's" };
            return Err(item.error(format!(
                "{address} is {whose} address ({}); expected another address or port",
                endpoint.key()
            )));
        }
    }
    Ok(address)
}

/// Whether listeners on `a` and `b` (same port) would collide: the same
/// address, or a wildcard covering the other (`0.0.0.0` every IPv4
/// address, `::` every address).
fn overlap(a: IpAddr, b: IpAddr) -> bool {
    let covers = |wild: IpAddr, other: IpAddr| wild.is_unspecified() && (wild.is_ipv6() || other.is_ipv4());
    a == b || covers(a, b) || covers(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_values_name_a_system_as_a_word() {
        for json in ["Loki/Fluentd/ELK", "loki", "ELK stack", "fluentd", "json"] {
            assert_eq!(log_format(json), Some(LogFormat::Json), "{json}");
        }
        assert_eq!(log_format("text"), Some(LogFormat::Text));
        for refused in ["Welkin", "Splunk", "", "JSON", "lokis"] {
            assert_eq!(log_format(refused), None, "{refused}");
        }
    }

    #[test]
    fn wildcards_overlap_their_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(overlap(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(overlap(ip("0.0.0.0"), ip("127.0.0.1")));
        assert!(overlap(ip("127.0.0.1"), ip("0.0.0.0")));
        assert!(overlap(ip("::"), ip("127.0.0.1")));
        assert!(!overlap(ip("0.0.0.0"), ip("::1")));
        assert!(!overlap(ip("127.0.0.1"), ip("127.0.0.2")));
    }
}
