//! The `aggregator` binary: `--check`, a clear error for a bad operator set, and a complete
//! `--tasks 1` run against an operator that is not there (the task expires, the process exits).

mod common;

use std::process::Command;

use aggregator::operators::OperatorSetFile;
use common::{entry, key};

fn write_set(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("operators.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn aggregator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aggregator"))
}

#[test]
fn check_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let set = OperatorSetFile {
        scheme: None,
        operator: vec![entry("a", &key(1), &[(0, 100), (2, 5)], "http://127.0.0.1:9")],
    };
    let path = write_set(&dir, &toml::to_string(&set).unwrap());
    let out = aggregator().arg("--operators").arg(&path).arg("--check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("1 operators, all valid (bls12-381 keys)")
            && stdout.contains("quorum 2: total stake 5"),
        "{stdout}"
    );

    let mut broken = set.clone();
    broken.operator[0].pop = broken.operator[0].pop.replace("0x", "0x00");
    let path = write_set(&dir, &toml::to_string(&broken).unwrap());
    let out = aggregator().arg("--operators").arg(&path).arg("--check").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("operator #1 (\"a\"): field `pop`"), "{stderr}");

    let out = aggregator().args(["--operators", "x.toml", "--quorum-threshold", "101"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn one_task_then_exit() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the delivery fails and the task expires.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let set = OperatorSetFile {
        scheme: None,
        operator: vec![entry("a", &key(1), &[(0, 100)], &format!("http://{closed}"))],
    };
    let path = write_set(&dir, &toml::to_string(&set).unwrap());
    let log = dir.path().join("decisions.jsonl");
    let out = aggregator()
        .arg("--operators")
        .arg(&path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--tasks",
            "1",
            "--task-expiry",
            "300ms",
        ])
        .arg("--decision-log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["task_created", "task_expired"]);
    // The task was given --task-expiry (300 ms, not the default 10 s) and expired no earlier,
    // by the decision log's own clock.
    assert_eq!(lines[0]["expires_in_ms"], 300, "{}", lines[0]);
    let at = |line: &serde_json::Value| line["ts_ms"].as_u64().expect("ts_ms");
    let waited = at(&lines[1]) - at(&lines[0]);
    assert!(waited >= 300, "expired {waited} ms after its creation");
    assert_eq!(lines[0]["quorum_threshold_percentage"], 67);
    assert_eq!(lines[0]["number_to_be_squared"], "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Connection refused") || stderr.contains("cannot connect"), "{stderr}");
}
