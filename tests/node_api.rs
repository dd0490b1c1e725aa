//! The EigenLayer AVS Node API and the Prometheus metrics of a running spacecore, through its
//! published port: every endpoint, status codes and JSON shapes, health following the
//! aggregator, and `/metrics` checked by Prometheus' own parser (`promtool check metrics`).

use serde_json::Value;
use spacecore_tests::cluster::{AggregatorOptions, Cluster, Tools};
use spacecore_tests::{connect, http, kvm_available, promtool_check};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Limit of every wait: the probe of the aggregator runs every 5 s.
const LIMIT: Duration = Duration::from_secs(30);

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    http(&mut connect(addr), "GET", path, b"")
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path);
    let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!("GET {path}: {status} with a body that is not JSON ({e}): {}", String::from_utf8_lossy(&body))
    });
    (status, json)
}

/// Polls `GET path` until it answers `status`; panics with the last answer after [`LIMIT`].
fn wait_status(addr: SocketAddr, path: &str, status: u16) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let (got, body) = get(addr, path);
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} still answers {got} ({}), not {status}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn promtool_refuses_broken_exposition() {
    // The checker itself must be able to fail, or the metrics test below proves nothing.
    let (ok, said) = promtool_check(b"# TYPE x counter\nx{a=\"1\" 3\n");
    assert!(!ok, "promtool accepted a malformed sample: {said}");
    let (ok, said) = promtool_check(
        b"# HELP spacecore_x_total X.\n# TYPE spacecore_x_total counter\nspacecore_x_total 1\n",
    );
    assert!(ok, "promtool refused a valid family: {said}");
}

#[test]
fn node_api_and_metrics_follow_the_node_and_its_aggregator() {
    if !kvm_available("node_api_and_metrics_follow_the_node_and_its_aggregator") {
        return;
    }
    let mut cluster = Cluster::new(Tools::for_tests(), "api", 1);
    cluster.start_all();
    let name = cluster.nodes[0].operator.name.clone();
    let addr = cluster.nodes[0].http.expect("published");

    // Identity.
    let (status, node) = get_json(addr, "/eigen/node");
    assert_eq!(status, 200);
    assert_eq!(node["node_name"], name.as_str());
    assert_eq!(node["spec_version"], "v0.0.1");
    assert!(node["node_version"].as_str().is_some_and(|v| !v.is_empty()), "{node}");

    // The key is loaded but the aggregator is not running: partially healthy.
    wait_status(addr, "/eigen/node/health", 206);
    let (status, services) = get_json(addr, "/eigen/node/services");
    assert_eq!(status, 200);
    let list = services["services"].as_array().expect("a services array");
    let status_of = |list: &[Value], id: &str| {
        let service =
            list.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no service {id}: {list:?}"));
        for field in ["id", "name", "description", "status"] {
            assert!(service[field].is_string(), "{field} of {service}");
        }
        service["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status_of(list, "signer"), "Up");
    assert_ne!(status_of(list, "aggregator"), "Up");
    assert_eq!(get(addr, "/eigen/node/services/signer/health").0, 200);
    assert!(matches!(get(addr, "/eigen/node/services/aggregator/health").0, 206 | 503));
    assert_eq!(get(addr, "/eigen/node/services/nope/health").0, 404);
    assert_eq!(http(&mut connect(addr), "POST", "/eigen/node/health", b"").0, 405);

    // The aggregator comes: healthy; its first task is signed and accepted.
    let options = AggregatorOptions {
        tasks: 1,
        threshold: 100,
        interval: Duration::from_secs(1),
        expiry: Duration::from_secs(60),
    };
    let mut aggregator = cluster.start_aggregator(&options);
    wait_status(addr, "/eigen/node/health", 200);
    wait_status(addr, "/eigen/node/services/aggregator/health", 200);
    aggregator.wait_decided(1, LIMIT);

    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let (ok, said) = promtool_check(&body);
    let text = String::from_utf8_lossy(&body);
    assert!(ok, "promtool refused the guest's metrics: {said}\n{text}");
    for series in [
        "incredible_squaring_tasks_signed_total 1",
        "incredible_squaring_tasks_received_total 1",
        "eigen_performance_score{avs_name=\"incredible-squaring\"} 100",
    ] {
        assert!(text.lines().any(|l| l == series), "no `{series}` in\n{text}");
    }
    assert!(text.contains("eigen_rpc_request_total{"), "{text}");

    // The aggregator goes away: partially healthy again once the probe fails.
    aggregator.finish(Duration::from_secs(15));
    drop(aggregator);
    wait_status(addr, "/eigen/node/health", 206);
    let (_, services) = get_json(addr, "/eigen/node/services");
    assert_eq!(status_of(services["services"].as_array().unwrap(), "aggregator"), "Down");
}
