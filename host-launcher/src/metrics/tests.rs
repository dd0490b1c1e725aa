//! The exposition is checked line by line against the text format's rules, with a strict
//! reader written for these tests.

use super::*;
use crate::devices::bump;
use std::collections::{BTreeMap, HashSet};

/// A family as read back: its type and its samples (`name{labels}` -> value).
#[derive(Debug, Default)]
struct Family {
    kind: String,
    samples: BTreeMap<String, f64>,
}

/// Reads an exposition strictly: every family has exactly one HELP and one TYPE line, both
/// before its samples; counters end in `_total`; every sample belongs to the family described
/// last; sample lines are `name{label="value",...} value`. Panics on any violation.
fn parse(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helped = HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(line);
            assert!(prom_text::valid_name(name) && !help.is_empty(), "{line}");
            assert!(helped.insert(name.to_owned()), "second HELP for {name}");
            assert!(!families.contains_key(name), "HELP after TYPE for {name}");
            current = Some(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert_eq!(current.as_deref(), Some(name), "TYPE right after its HELP: {line}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} ends in _total");
            }
            let previous =
                families.insert(name.to_owned(), Family { kind: kind.to_owned(), ..Family::default() });
            assert!(previous.is_none(), "second TYPE for {name}");
        } else {
            assert!(!line.starts_with('#'), "{line}");
            let (series, value) = line.rsplit_once(' ').expect(line);
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let name = series.split('{').next().unwrap();
            let family = current.as_deref().expect("a sample before any family");
            assert_eq!(name, family, "sample of another family: {line}");
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect(line);
                for pair in inner.split("\",") {
                    let (label, value) = pair.split_once("=\"").expect(line);
                    assert!(prom_text::valid_label_name(label), "{line}");
                    assert!(!value.trim_end_matches('"').contains(['\n', '"']), "{line}");
                }
            }
            let family = families.get_mut(family).expect("TYPE before samples");
            assert!(family.samples.insert(series.to_owned(), value).is_none(), "duplicate series {series}");
        }
    }
    families
}

fn sources(sidecar: bool) -> (Sources, Arc<Counters>, Arc<Counters>, Arc<ForwardCounters>) {
    let (disk, nic, http) = (Arc::new(Counters::default()), Arc::new(Counters::default()), Arc::default());
    let sources = Sources {
        name: "node-a".into(),
        stats: Arc::new(Stats::new()),
        exits: Arc::default(),
        devices: vec![(TYPE_BLOCK, disk.clone()), (TYPE_NET, nic.clone())],
        published: vec![("HTTP".into(), Arc::clone(&http))],
        egress: vec![("aggregator".into(), Arc::default()), ("eth_rpc".into(), Arc::default())],
        sidecar: sidecar.then(|| "10.0.0.2:80".parse().unwrap()),
    };
    (sources, disk, nic, http)
}

#[test]
fn every_family_is_well_formed_and_counts_what_happened() {
    let (sources, disk, nic, http) = sources(false);
    let stats = &sources.stats;
    stats.boot();
    stats.ready(Duration::from_micros(7_012));
    stats.ended(Cause::Panic);
    stats.restart(Cause::Panic);
    stats.boot();
    stats.ready(Duration::from_micros(5_000));
    stats.recovered(Duration::from_micros(21_500));
    stats.health_check(true);
    stats.health_check(false);
    sources.exits.hypercalls.fetch_add(19, Relaxed);
    sources.exits.mmio.fetch_add(94, Relaxed);
    bump(&disk.bytes_written, 4096);
    bump(&disk.requests, 2);
    bump(&nic.rx_bytes, 1500);
    bump(&nic.tx_packets, 3);
    http.bytes_in.fetch_add(77, Relaxed);
    http.accepted.fetch_add(1, Relaxed);
    http.refused.fetch_add(5, Relaxed);
    http.refused_per_source.fetch_add(4, Relaxed);
    http.evicted.fetch_add(6, Relaxed);
    http.idle_closed.fetch_add(2, Relaxed);
    let (aggregator, eth_rpc) = (&sources.egress[0].1, &sources.egress[1].1);
    aggregator.accepted.fetch_add(1, Relaxed);
    eth_rpc.accepted.fetch_add(3, Relaxed);
    eth_rpc.refused.fetch_add(1, Relaxed);
    eth_rpc.bytes_in.fetch_add(120, Relaxed);
    eth_rpc.bytes_out.fetch_add(4096, Relaxed);

    let families = parse(&render(&sources, 3_563_520, None));
    let value = |family: &str, series: &str| {
        families.get(family).unwrap_or_else(|| panic!("no {family}")).samples.get(series).copied()
    };
    assert_eq!(
        value("spacecore_launcher_info", "spacecore_launcher_info{spacecore=\"node-a\",version=\"0.1.0\"}"),
        Some(1.0)
    );
    assert_eq!(value("spacecore_launcher_boots_total", "spacecore_launcher_boots_total"), Some(2.0));
    let restarts = "spacecore_launcher_restarts_total";
    assert_eq!(value(restarts, &format!("{restarts}{{cause=\"panic\"}}")), Some(1.0));
    assert_eq!(value(restarts, &format!("{restarts}{{cause=\"fault\"}}")), Some(0.0), "every cause listed");
    assert_eq!(families[restarts].samples.len(), Cause::LABELS.len());
    let exits = "spacecore_launcher_guest_exits_total";
    assert_eq!(value(exits, &format!("{exits}{{kind=\"panic\"}}")), Some(1.0));
    assert_eq!(value("spacecore_launcher_guest_ready", "spacecore_launcher_guest_ready"), Some(1.0));
    assert_eq!(
        value("spacecore_launcher_boot_to_ready_seconds", "spacecore_launcher_boot_to_ready_seconds"),
        Some(0.005)
    );
    assert_eq!(
        value("spacecore_launcher_recovery_seconds", "spacecore_launcher_recovery_seconds"),
        Some(0.0215)
    );
    let vcpu = "spacecore_launcher_vcpu_exits_total";
    assert_eq!(value(vcpu, &format!("{vcpu}{{kind=\"hypercall\"}}")), Some(19.0));
    assert_eq!(value(vcpu, &format!("{vcpu}{{kind=\"mmio\"}}")), Some(94.0));
    let disk_bytes = "spacecore_launcher_disk_bytes_total";
    assert_eq!(value(disk_bytes, &format!("{disk_bytes}{{direction=\"write\"}}")), Some(4096.0));
    assert_eq!(
        value("spacecore_launcher_disk_requests_total", "spacecore_launcher_disk_requests_total"),
        Some(2.0)
    );
    let net = "spacecore_launcher_net_bytes_total";
    assert_eq!(value(net, &format!("{net}{{direction=\"rx\"}}")), Some(1500.0));
    let packets = "spacecore_launcher_net_packets_total";
    assert_eq!(value(packets, &format!("{packets}{{direction=\"tx\"}}")), Some(3.0));
    let published = "spacecore_launcher_published_bytes_total";
    assert_eq!(value(published, &format!("{published}{{port=\"HTTP\",direction=\"in\"}}")), Some(77.0));
    let connections = "spacecore_launcher_published_connections_total";
    assert_eq!(value(connections, &format!("{connections}{{port=\"HTTP\"}}")), Some(1.0));
    for (family, count) in [
        ("spacecore_launcher_published_refused_total", 5.0),
        ("spacecore_launcher_published_refused_per_source_total", 4.0),
        ("spacecore_launcher_published_evicted_total", 6.0),
        ("spacecore_launcher_published_idle_closed_total", 2.0),
        ("spacecore_launcher_published_open_connections", 0.0),
    ] {
        assert_eq!(value(family, &format!("{family}{{port=\"HTTP\"}}")), Some(count), "{family}");
    }
    assert_eq!(families["spacecore_launcher_published_open_connections"].kind, "gauge");
    let health = "spacecore_launcher_health_checks_total";
    assert_eq!(value(health, &format!("{health}{{result=\"failed\"}}")), Some(1.0));
    assert_eq!(
        value("spacecore_launcher_resident_memory_bytes", "spacecore_launcher_resident_memory_bytes"),
        Some(3_563_520.0)
    );
    assert!(families.contains_key("spacecore_launcher_aggregator_bytes_total"));
    let egress = "spacecore_launcher_egress_connections_total";
    assert_eq!(value(egress, &format!("{egress}{{name=\"eth_rpc\"}}")), Some(3.0));
    assert_eq!(value(egress, &format!("{egress}{{name=\"aggregator\"}}")), Some(1.0));
    let refused = "spacecore_launcher_egress_refused_total";
    assert_eq!(value(refused, &format!("{refused}{{name=\"eth_rpc\"}}")), Some(1.0));
    let bytes = "spacecore_launcher_egress_bytes_total";
    assert_eq!(value(bytes, &format!("{bytes}{{name=\"eth_rpc\",direction=\"out\"}}")), Some(120.0));
    assert_eq!(value(bytes, &format!("{bytes}{{name=\"eth_rpc\",direction=\"in\"}}")), Some(4096.0));
    // The aggregator's families from before the list count the aggregator alone.
    let aggregator = "spacecore_launcher_aggregator_connections_total";
    assert_eq!(value(aggregator, aggregator), Some(1.0));
    assert!(!families.contains_key("spacecore_launcher_guest_healthy"), "no sidecar, no guest health");
    for (name, family) in &families {
        assert!(name.starts_with("spacecore_launcher_"), "{name}");
        assert_eq!(family.kind == "counter", name.ends_with("_total"), "{name}");
    }
}

#[test]
fn before_any_ready_the_timing_gauges_have_no_sample() {
    let (sources, ..) = sources(false);
    let families = parse(&render(&sources, 0, None));
    assert!(families["spacecore_launcher_boot_to_ready_seconds"].samples.is_empty());
    assert!(families["spacecore_launcher_recovery_seconds"].samples.is_empty());
    assert_eq!(families["spacecore_launcher_guest_ready"].samples["spacecore_launcher_guest_ready"], 0.0);
}

#[test]
fn the_sidecar_adds_the_guests_health_and_its_valid_metrics() {
    let (sources, ..) = sources(true);
    let guest = GuestScrape {
        health_status: Some(206),
        metrics: Some(
            "# HELP spacecore_tasks_total Tasks.\n# TYPE spacecore_tasks_total counter\nspacecore_tasks_total 4\n\
             spacecore_launcher_boots_total 1000\n# TYPE spacecore_launcher_boots_total gauge\ngarbage line\n"
                .into(),
        ),
    };
    let exposition = render(&sources, 0, Some(&guest));
    let families = parse(&exposition);
    assert_eq!(families["spacecore_launcher_guest_healthy"].samples["spacecore_launcher_guest_healthy"], 0.5);
    assert_eq!(
        families["spacecore_launcher_guest_health_status"].samples["spacecore_launcher_guest_health_status"],
        206.0
    );
    assert_eq!(families["spacecore_tasks_total"].samples["spacecore_tasks_total"], 4.0);
    assert_eq!(
        families["spacecore_launcher_boots_total"].samples["spacecore_launcher_boots_total"], 0.0,
        "not forged"
    );
    assert_eq!(
        families["spacecore_launcher_sidecar_dropped_lines"].samples["spacecore_launcher_sidecar_dropped_lines"],
        3.0
    );
    assert_eq!(
        families["spacecore_launcher_sidecar_scrape_success"].samples["spacecore_launcher_sidecar_scrape_success"],
        1.0
    );

    for (status, healthy) in [(Some(200), 1.0), (Some(503), 0.0), (None, 0.0)] {
        let guest = GuestScrape { health_status: status, metrics: None };
        let families = parse(&render(&sources, 0, Some(&guest)));
        assert_eq!(
            families["spacecore_launcher_guest_healthy"].samples["spacecore_launcher_guest_healthy"],
            healthy
        );
        let success = &families["spacecore_launcher_sidecar_scrape_success"].samples;
        assert_eq!(success["spacecore_launcher_sidecar_scrape_success"], 0.0);
    }
}

#[test]
fn the_strict_reader_catches_what_it_must() {
    let bad = [
        "x 1\n",
        "# HELP x a\n# TYPE x counter\nx 1\n",
        "# HELP x_total a\n# TYPE x_total counter\n# HELP x_total a\n",
        "# HELP x a\n# TYPE x gauge\ny 1\n",
        "# HELP x a\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",
    ];
    for text in bad {
        assert!(std::panic::catch_unwind(|| parse(text)).is_err(), "{text:?}");
    }
}

#[test]
fn without_endpoints_the_egress_families_have_no_samples_and_the_aggregators_are_absent() {
    let (mut sources, ..) = sources(false);
    sources.egress.clear();
    let families = parse(&render(&sources, 0, None));
    for family in [
        "spacecore_launcher_egress_connections_total",
        "spacecore_launcher_egress_refused_total",
        "spacecore_launcher_egress_bytes_total",
    ] {
        assert!(families[family].samples.is_empty(), "{family}");
    }
    assert!(!families.contains_key("spacecore_launcher_aggregator_connections_total"));
}

#[test]
fn updates_are_counted_by_outcome_and_the_last_hold_kept() {
    let (sources, _, _, _) = sources(false);
    let families = parse(&render(&sources, 0, None));
    let updates = "spacecore_launcher_updates_total";
    assert_eq!(families[updates].kind, "counter");
    assert_eq!(
        families[updates].samples.len(),
        crate::metrics::UPDATE_OUTCOMES.len(),
        "every outcome listed"
    );
    assert!(
        families["spacecore_launcher_update_hold_seconds"].samples.is_empty(),
        "no sample before an update"
    );
    sources.stats.update("done", Duration::from_millis(15));
    sources.stats.update("rolled_back", Duration::from_millis(1640));
    sources.stats.update("done", Duration::from_millis(20));
    let families = parse(&render(&sources, 0, None));
    let count = |outcome: &str| families[updates].samples[&format!("{updates}{{outcome=\"{outcome}\"}}")];
    assert_eq!((count("done"), count("rolled_back"), count("failed")), (2.0, 1.0, 0.0));
    let held = &families["spacecore_launcher_published_held_total"];
    assert_eq!(held.samples["spacecore_launcher_published_held_total{port=\"HTTP\"}"], 0.0);
    let hold = &families["spacecore_launcher_update_hold_seconds"];
    assert_eq!((hold.kind.as_str(), hold.samples["spacecore_launcher_update_hold_seconds"]), ("gauge", 0.02));
}
