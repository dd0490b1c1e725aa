//! The supervisor of `hac-launch` against the real launcher and image: `[spec.failover]`
//! (auto-recovery from a panic and from a hung guest, the crash-loop limit, no restart without
//! it, no restart after a stop request) keeping the node's durable state, and
//! `[spec.observability]` (the launcher's metrics with the guest's through the sidecar, checked
//! by `promtool`, and JSON log lines). Failures are made with the guest's test hooks
//! (`spacecore.testhooks=on`, `POST /test/panic`, `POST /test/hang`) and self-tests.

use serde_json::{Value, json};
use spacecore_tests::cluster::{Cluster, NodeSetup, Tools, post_task, status};
use spacecore_tests::{
    LogLine, Running, Specs, count_launcher, events, kvm_available, log_lines, metrics_address, published,
    sample, scrape_metrics,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Limit of every wait: a boot, a key load, a restart or a stop takes a few seconds at most.
const LIMIT: Duration = Duration::from_secs(30);

/// Guest memory: the operator keystores are PBKDF2, which needs little.
const MEMORY: &str = "128Mi";

/// The arguments that turn the guest's test hooks on.
fn testhooks() -> Vec<String> {
    vec!["--cmdline".into(), "spacecore.testhooks=on".into()]
}

/// A one-node AVS cluster (keystore imported) whose spec has `tables` and whose boots have the
/// test hooks on.
fn node(prefix: &str, tables: &str) -> Cluster {
    let setup = NodeSetup { memory: Some(MEMORY.into()), tables: tables.into(), args: testhooks() };
    Cluster::with_setup(Tools::for_tests(), prefix, 1, &setup)
}

/// A `NewTask` for task `index` squaring `number`.
fn task(index: u32, number: u64) -> Vec<u8> {
    spacecore_tests::cluster::pushed_task(index, number).to_string().into_bytes()
}

/// Sends `POST path` (a test hook, which never answers) and returns the connection.
fn trigger(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = spacecore_tests::connect(addr);
    let head = format!("POST {path} HTTP/1.1\r\nHost: spacecore\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send the test hook's request");
    stream
}

/// Whether the connection of a test hook ends (closed or reset, with no answer) within
/// [`LIMIT`]: the launcher closes connections relayed to a guest that failed.
fn ends_unanswered(mut stream: TcpStream) -> Result<(), String> {
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) if got.is_empty() => return Ok(()),
            Ok(0) => return Err(format!("answered: {:?}", String::from_utf8_lossy(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                return if got.is_empty() {
                    Ok(())
                } else {
                    Err(format!("answered: {:?}", String::from_utf8_lossy(&got)))
                };
            }
            Err(e) => return Err(format!("still open after {LIMIT:?} ({e})")),
        }
    }
}

/// The running launcher of node 0.
fn run(cluster: &mut Cluster) -> &mut Running {
    cluster.nodes[0].run.as_mut().expect("the node runs")
}

/// Waits for the launcher's next event `event` among the JSON log lines still to come.
fn expect_event(run: &mut Running, event: &str) -> LogLine {
    run.wait_event(event, LIMIT).unwrap_or_else(|| panic!("no `{event}` event in {LIMIT:?}: {:#?}", run.seen))
}

/// Waits for the next guest line whose message starts with `start` among the lines still to
/// come.
fn expect_guest(run: &mut Running, start: &str) -> LogLine {
    run.next_where(LIMIT, |l| l.guest(start).is_some())
        .unwrap_or_else(|| panic!("no guest line `{start}...` in {LIMIT:?}: {:#?}", run.seen))
}

/// The guest's line that says node 0's operator key is loaded.
fn key_loaded(cluster: &Cluster) -> String {
    format!("avs: operator {} ready", cluster.nodes[0].operator.key.id_hex())
}

/// The launcher's `restart` events in `output` (a finished launcher's stdout).
fn restarts(output: &str) -> Vec<LogLine> {
    events(&log_lines(output), "restart").cloned().collect()
}

/// An event's fields without `event`, as JSON, to compare whole.
fn fields(line: &LogLine) -> Value {
    Value::Object(line.fields.clone())
}

/// `boot_count` of `GET /`.
fn boot_count(addr: SocketAddr) -> u64 {
    let (code, answer) = status(addr);
    assert_eq!(code, 200, "{answer}");
    answer["boot_count"].as_u64().unwrap_or_else(|| panic!("no boot count: {answer}"))
}

#[test]
fn auto_recovery_after_a_panic_keeps_the_disk_and_serves_again() {
    if !kvm_available("auto_recovery_after_a_panic_keeps_the_disk_and_serves_again") {
        return;
    }
    let mut cluster = node("sv-panic", "[spec.failover]\nstrategy = \"auto-recovery\"\n");
    cluster.start(0);
    let addr = cluster.nodes[0].http.expect("published");
    let loaded = key_loaded(&cluster);
    let seen = run(&mut cluster).log();
    let failover = "failover: auto-recovery, at most 5 restarts within 1m, backoff 10ms to 5s";
    assert!(seen.iter().any(|l| l.launcher(failover) == Some("")), "{seen:#?}");

    let boots = boot_count(addr);
    let (code, signed) = post_task(addr, &task(7, 12));
    assert_eq!(code, 200, "{signed}");
    assert!(signed["signature"].is_string(), "{signed}");

    let hook = trigger(addr, "/test/panic");
    let run = run(&mut cluster);
    let failed = expect_event(run, "guest_failed");
    assert_eq!(failed.str_field("cause"), Some("panic"), "{failed:?}");
    assert!(failed.message.starts_with("guest panicked: test hook: panic requested at "), "{failed:?}");
    let restart = expect_event(run, "restart");
    assert_eq!(
        fields(&restart),
        json!({"event": "restart", "restart": 1, "cause": "panic", "backoff_ms": 10})
    );
    let recovered = expect_event(run, "recovered");
    assert_eq!(recovered.str_field("cause"), Some("panic"), "{recovered:?}");
    assert!(recovered.u64_field("recovery_us").is_some(), "{recovered:?}");
    expect_guest(run, &loaded);
    ends_unanswered(hook).expect("the connection to the guest that panicked");

    // The same published address, a new boot of the same disk, the same key.
    assert_eq!(boot_count(addr), boots + 1);
    assert_eq!(status(addr).1["operator_id"], cluster.nodes[0].operator.key.id_hex());
    // The signing history survived: the same answer again, and no other answer to that task.
    let (code, again) = post_task(addr, &task(7, 12));
    assert_eq!((code, &again), (200, &signed), "the task signed before the panic");
    let (code, other) = post_task(addr, &task(7, 13));
    assert_eq!(code, 409, "another answer to a task signed before the panic: {other}");

    let (code, output) = cluster.stop(0);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(restarts(&output).len(), 1, "{output}");
}

#[test]
fn a_crash_loop_ends_after_max_restarts_with_the_guest_status() {
    if !kvm_available("a_crash_loop_ends_after_max_restarts_with_the_guest_status") {
        return;
    }
    let specs = Specs::new();
    let resources = format!("cpu = 1\nmemory = \"{MEMORY}\"");
    let tables = "[spec.failover]\nstrategy = \"auto-recovery\"\nmax_restarts = 2\n";
    let spec = specs.spacecore("sv-loop", &resources, tables, "{image}");
    // The guest panics before it is ready, at every boot.
    let run = specs.start(&[spec.to_str().unwrap(), "--cmdline", "spacecore.selftest=panic"]);
    let (code, output) = run.finish(LIMIT);
    assert_eq!(code, Some(101), "{output}");
    let lines = log_lines(&output);
    let restarts: Vec<Value> = events(&lines, "restart").map(fields).collect();
    assert_eq!(
        restarts,
        [
            json!({"event": "restart", "restart": 1, "cause": "panic", "backoff_ms": 10}),
            json!({"event": "restart", "restart": 2, "cause": "panic", "backoff_ms": 20}),
        ],
        "{output}"
    );
    let crash_loop: Vec<Value> = events(&lines, "crash_loop").map(fields).collect();
    assert_eq!(crash_loop, [json!({"event": "crash_loop", "restarts": 2, "cause": "panic"})], "{output}");
    // Three boots, three panics: two restarted from, then the last line says how the last run
    // ended.
    let failed: Vec<&LogLine> = events(&lines, "guest_failed").collect();
    assert_eq!(failed.len(), 2, "{output}");
    assert!(failed.iter().all(|l| l.str_field("cause") == Some("panic")), "{output}");
    let last = lines.last().expect("a log");
    assert!(
        last.is_event("guest_ended") && last.u64_field("status") == Some(101),
        "last line: {last:?}\n{output}"
    );
    assert!(last.message.starts_with("guest panicked: "), "last line: {last:?}\n{output}");
    assert_eq!(events(&lines, "ready").count(), 0, "{output}");
}

#[test]
fn a_hung_guest_fails_its_health_checks_and_is_restarted() {
    if !kvm_available("a_hung_guest_fails_its_health_checks_and_is_restarted") {
        return;
    }
    let tables = "[spec.failover]\nstrategy = \"auto-recovery\"\nhealth_interval = \"200ms\"\nhealth_timeout = \"1s\"\n";
    let mut cluster = node("sv-hang", tables);
    cluster.start(0);
    let addr = cluster.nodes[0].http.expect("published");
    let loaded = key_loaded(&cluster);
    let seen = run(&mut cluster).log();
    let health = format!(
        "health: GET /eigen/node/health through the published port {addr} (guest 10.0.0.2:80) every 200 ms; restart after 1000 ms without an alive answer"
    );
    assert!(seen.iter().any(|l| l.launcher(&health) == Some("")), "{seen:#?}");
    let boots = boot_count(addr);
    assert_eq!(events(&seen, "restart").count(), 0, "restarted before the hang: {seen:#?}");

    let hook = trigger(addr, "/test/hang");
    let run = run(&mut cluster);
    let check = expect_event(run, "health_failed");
    assert!(check.str_field("reason").is_some() && check.level == "warn", "{check:?}");
    let failed = expect_event(run, "guest_failed");
    assert_eq!(failed.str_field("cause"), Some("unhealthy"), "{failed:?}");
    assert!(failed.message.starts_with("guest failed its health checks: no alive answer for "), "{failed:?}");
    let restart = expect_event(run, "restart");
    let expected = json!({"event": "restart", "restart": 1, "cause": "unhealthy", "backoff_ms": 10});
    assert_eq!(fields(&restart), expected, "{failed:?}\n{restart:?}");
    let recovered = expect_event(run, "recovered");
    assert_eq!(recovered.str_field("cause"), Some("unhealthy"), "{recovered:?}");
    expect_guest(run, &loaded);
    ends_unanswered(hook).expect("the connection to the hung guest");

    // It serves again, from the same disk.
    assert_eq!(boot_count(addr), boots + 1);
    let (code, signed) = post_task(addr, &task(1, 5));
    assert_eq!(code, 200, "{signed}");
    let (code, output) = cluster.stop(0);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(restarts(&output).len(), 1, "{output}");
}

#[test]
fn without_auto_recovery_a_panic_ends_the_launcher_with_the_guest_status() {
    if !kvm_available("without_auto_recovery_a_panic_ends_the_launcher_with_the_guest_status") {
        return;
    }
    let specs = Specs::new();
    let resources = format!("cpu = 1\nmemory = \"{MEMORY}\"");
    let tables = "[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n";
    let spec = specs.spacecore("sv-none", &resources, tables, "{image}");
    let mut run = specs.start(&[spec.to_str().unwrap(), "--cmdline", "spacecore.testhooks=on"]);
    assert!(run.wait_ready(LIMIT).is_some(), "never ready: {:#?}", run.seen);
    let addr = published(&run.seen, "HTTP").expect("a published HTTP line");
    let hook = trigger(addr, "/test/panic");
    let (code, output) = run.finish(LIMIT);
    assert_eq!(code, Some(101), "{output}");
    ends_unanswered(hook).expect("the connection to the guest that panicked");
    let lines = log_lines(&output);
    let last = lines.last().expect("a log");
    assert!(last.is_event("guest_ended") && last.u64_field("status") == Some(101), "{output}");
    assert!(last.message.starts_with("guest panicked: test hook: panic requested at "), "{output}");
    for absent in ["guest_failed", "restart", "recovered", "crash_loop", "health_failed"] {
        assert_eq!(events(&lines, absent).count(), 0, "`{absent}` without [spec.failover]: {output}");
    }
    for absent in ["failover:", "health:"] {
        assert_eq!(count_launcher(&lines, absent), 0, "`{absent}` without [spec.failover]: {output}");
    }
}

/// `POST /task` on a new connection; `None` when the connection fails or ends unanswered (the
/// node is stopping), so a writer racing a stop never panics.
fn try_post_task(addr: SocketAddr, body: &[u8]) -> Option<(u16, Value)> {
    let body = &spacecore_tests::cluster::authorize(body);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(LIMIT)).ok()?;
    let head = format!(
        "POST /task HTTP/1.1\r\nHost: spacecore\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let code = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head.lines().find_map(|l| {
        l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse().ok())
    })?;
    // A truncated answer is no acknowledgement.
    let body = answer.get(end + 4..end + 4 + length)?;
    Some((code, serde_json::from_slice(body).unwrap_or(Value::Null)))
}

#[test]
fn a_graceful_stop_loses_no_acknowledged_signature() {
    if !kvm_available("a_graceful_stop_loses_no_acknowledged_signature") {
        return;
    }
    let mut cluster = node("sv-stop", "[spec.failover]\nstrategy = \"auto-recovery\"\n");
    cluster.start(0);
    let addr = cluster.nodes[0].http.expect("published");
    let boots = boot_count(addr);

    // A writer signs task after task while the launcher is told to stop; every 200 is an
    // acknowledged signature. At most 50 tasks: the history keeps the last 100.
    let (acked_tx, acked_rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for index in 0..50u32 {
            match try_post_task(addr, &task(index, u64::from(index) + 2)) {
                Some((200, answer)) => {
                    acked.push((index, answer));
                    let _ = acked_tx.send(index);
                }
                Some((code, answer)) => panic!("task {index}: {code} {answer}"),
                None => break,
            }
        }
        acked
    });
    for _ in 0..5 {
        acked_rx.recv_timeout(LIMIT).expect("the first tasks are signed");
    }
    let (code, output) = cluster.stop(0);
    let acked = writer.join().expect("the writer");
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(restarts(&output).len(), 0, "restarted after a stop request: {output}");
    assert!(acked.len() >= 5, "{acked:?}");

    // Booted again from the same disk: every acknowledged signature is in the signing history.
    cluster.start(0);
    let addr = cluster.nodes[0].http.expect("published");
    assert_eq!(boot_count(addr), boots + 1);
    for (index, answer) in &acked {
        let number = u64::from(*index) + 2;
        let (code, other) = post_task(addr, &task(*index, number + 1));
        assert_eq!(code, 409, "task {index}, acknowledged before the stop, signed again otherwise: {other}");
        let (code, again) = post_task(addr, &task(*index, number));
        assert_eq!((code, &again), (200, answer), "task {index}, acknowledged before the stop");
    }
    eprintln!("{} tasks acknowledged before the stop, all kept", acked.len());
}

/// Runs `promtool check metrics` on `text`; panics with its output unless it passes.
fn promtool_passes(text: &str) {
    let (ok, said) = spacecore_tests::promtool_check(text.as_bytes());
    assert!(ok, "promtool refused the launcher's metrics: {said}\n{text}");
}

/// JSON log lines of one launcher, each checked against the documented form as it arrives.
struct JsonLog<'a> {
    run: &'a mut Running,
    name: String,
    /// Every line so far, parsed.
    lines: Vec<Value>,
}

impl JsonLog<'_> {
    /// Parses and checks the next line, waiting at most `limit`.
    fn next(&mut self, limit: Duration) -> Option<Value> {
        self.run.next_line(limit)?;
        let line = self.run.seen.last().unwrap();
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        check_json_line(&value, &self.name);
        self.lines.push(value.clone());
        Some(value)
    }

    /// The first line from `source` whose message starts with `start`, among the lines so far
    /// or, waiting, the lines to come.
    fn find(&mut self, source: &str, start: &str) -> Value {
        let matches = |line: &Value| {
            line["source"] == source && line["message"].as_str().is_some_and(|m| m.starts_with(start))
        };
        match self.lines.iter().find(|l| matches(l)) {
            Some(line) => line.clone(),
            None => self.expect(source, start),
        }
    }

    /// Waits for the next line from `source` whose message starts with `start`.
    fn expect(&mut self, source: &str, start: &str) -> Value {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.next(left) else {
                panic!("no {source} line `{start}...` in {LIMIT:?}: {:#?}", self.lines);
            };
            if line["source"] == source && line["message"].as_str().is_some_and(|m| m.starts_with(start)) {
                return line;
            }
        }
    }
}

/// Checks the fields every JSON log line has (`docs/hac-launch.md`, Logging).
fn check_json_line(line: &Value, name: &str) {
    let object = line.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
    let stamp = line["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
    // RFC 3339, UTC, milliseconds: 2026-11-21T21:08:04.876Z.
    let form = "dddd-dd-ddTdd:dd:dd.dddZ";
    let shaped = stamp.len() == form.len()
        && stamp.chars().zip(form.chars()).all(|(c, f)| if f == 'd' { c.is_ascii_digit() } else { c == f });
    assert!(shaped, "timestamp {stamp:?} is not RFC 3339 UTC with milliseconds: {line}");
    assert!(matches!(line["level"].as_str(), Some("info" | "warn" | "error")), "level: {line}");
    assert_eq!(line["spacecore"], name, "{line}");
    assert!(matches!(line["source"].as_str(), Some("launcher" | "guest")), "source: {line}");
    assert!(line["message"].is_string(), "message: {line}");
    assert!(line["fields"].is_object(), "fields: {line}");
    for key in object.keys() {
        assert!(
            ["timestamp", "level", "spacecore", "source", "message", "fields"].contains(&key.as_str()),
            "unexpected key {key}: {line}"
        );
    }
}

#[test]
fn launcher_metrics_with_the_sidecar_and_json_logs_follow_a_restart() {
    if !kvm_available("launcher_metrics_with_the_sidecar_and_json_logs_follow_a_restart") {
        return;
    }
    let tables = "[spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"\n\
                  sidecar = true\nlogging = \"json\"\n[spec.failover]\nstrategy = \"auto-recovery\"\n";
    let mut cluster = node("sv-metrics", tables);
    let name = cluster.nodes[0].operator.name.clone();
    let operator = cluster.nodes[0].operator.key.id_hex();
    let loaded = format!("avs: operator {operator} ready");
    let mut log = JsonLog { run: cluster.spawn(0), name, lines: Vec::new() };

    // Start-up lines, in whatever order.
    let metrics_line = log.find("launcher", "metrics: http://");
    let message = metrics_line["message"].as_str().unwrap();
    let metrics: SocketAddr = message
        .strip_prefix("metrics: http://")
        .and_then(|m| m.strip_suffix("/metrics (with the guest's metrics and health)"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{metrics_line}"));
    assert_ne!(metrics.port(), 0, "{metrics_line}");
    assert_eq!(metrics_line["fields"]["event"], "metrics", "{metrics_line}");
    assert_eq!(metrics_line["fields"]["address"], metrics.to_string(), "{metrics_line}");
    let published = log.find("launcher", "published HTTP: ");
    let http: SocketAddr = published["message"]
        .as_str()
        .and_then(|m| m.strip_prefix("published HTTP: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{published}"));
    let ready = log.find("launcher", "ready in ");
    assert_eq!(ready["fields"]["event"], "ready", "{ready}");
    assert!(ready["fields"]["ready_us"].is_u64(), "{ready}");
    assert_eq!(ready["level"], "info", "{ready}");
    log.find("guest", &loaded);

    let (code, answer) = post_task(http, &task(3, 9));
    assert_eq!(code, 200, "{answer}");
    let text = scrape_metrics(metrics);
    promtool_passes(&text);
    let has = |text: &str, series: &str, value: f64| {
        assert_eq!(sample(text, series), Some(value), "`{series} {value}` in\n{text}");
    };
    has(&text, "spacecore_launcher_boots_total", 1.0);
    has(&text, "spacecore_launcher_restarts_total{cause=\"panic\"}", 0.0);
    has(&text, "spacecore_launcher_guest_ready", 1.0);
    has(&text, "spacecore_launcher_sidecar_scrape_success", 1.0);
    // The guest's own series, through the sidecar.
    has(&text, "incredible_squaring_tasks_received_total", 1.0);
    has(&text, "incredible_squaring_tasks_signed_total", 1.0);
    // No aggregator listens: the node is partially healthy (206), or healthy (200) if something
    // answered on the aggregator's port; either way the two gauges agree.
    let health = sample(&text, "spacecore_launcher_guest_health_status");
    let healthy = sample(&text, "spacecore_launcher_guest_healthy");
    assert!(
        matches!((health, healthy), (Some(206.0), Some(0.5)) | (Some(200.0), Some(1.0))),
        "guest health {health:?} {healthy:?} in\n{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("spacecore_launcher_info{")), "{text}");
    assert!(sample(&text, "spacecore_launcher_recovery_seconds").is_none(), "a recovery before any: {text}");

    // A panic: warned, restarted, recovered, all with their fields.
    let hook = trigger(http, "/test/panic");
    let failed = log.expect("launcher", "guest panicked: test hook: panic requested at ");
    assert_eq!(
        (&failed["level"], &failed["fields"]),
        (&json!("warn"), &json!({"event": "guest_failed", "cause": "panic"}))
    );
    let restart = log.expect("launcher", "restart ");
    assert_eq!(restart["message"], "restart 1 after guest panic (backoff 10 ms)", "{restart}");
    assert_eq!(restart["level"], "warn", "{restart}");
    let fields = json!({"event": "restart", "restart": 1, "cause": "panic", "backoff_ms": 10});
    assert_eq!(restart["fields"], fields, "{restart}");
    let recovered = log.expect("launcher", "recovered in ");
    assert_eq!(recovered["fields"]["event"], "recovered", "{recovered}");
    assert_eq!(recovered["fields"]["cause"], "panic", "{recovered}");
    let us = recovered["fields"]["recovery_us"].as_u64().unwrap_or_else(|| panic!("{recovered}"));
    assert_eq!(recovered["message"], format!("recovered in {us} us after guest panic"), "{recovered}");
    log.expect("guest", &loaded);
    ends_unanswered(hook).expect("the connection to the guest that panicked");

    let text = scrape_metrics(metrics);
    promtool_passes(&text);
    has(&text, "spacecore_launcher_boots_total", 2.0);
    has(&text, "spacecore_launcher_restarts_total{cause=\"panic\"}", 1.0);
    for cause in [
        "clean_exit",
        "error_exit",
        "fault",
        "abi_violation",
        "kvm_error",
        "not_ready",
        "unhealthy",
        "stopped",
    ] {
        has(&text, &format!("spacecore_launcher_restarts_total{{cause=\"{cause}\"}}"), 0.0);
    }
    has(&text, "spacecore_launcher_guest_exits_total{kind=\"panic\"}", 1.0);
    has(&text, "spacecore_launcher_guest_ready", 1.0);
    assert!(sample(&text, "spacecore_launcher_recovery_seconds").is_some_and(|s| s > 0.0), "{text}");
    // The restarted guest's counters start again at 0.
    has(&text, "incredible_squaring_tasks_received_total", 0.0);
    has(&text, "spacecore_launcher_sidecar_scrape_success", 1.0);

    // A stop: exit 0, the end as an event; every line was a JSON object.
    log.run.signal(libc::SIGTERM);
    let deadline = Instant::now() + LIMIT;
    while log.next(deadline.saturating_duration_since(Instant::now())).is_some() {}
    let ended = log.lines.last().cloned().unwrap_or_default();
    assert_eq!(ended["fields"], json!({"event": "guest_ended", "status": 0}), "{ended}");
    assert_eq!(ended["message"], "guest exited cleanly", "{ended}");
    let (code, output) = cluster.nodes[0].run.take().unwrap().finish(LIMIT);
    assert_eq!(code, Some(0), "{output}");
    for line in output.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        check_json_line(&value, &cluster.nodes[0].operator.name);
    }
}

#[test]
fn a_spacecore_that_is_not_an_operator_is_kept_alive_without_a_key() {
    if !kvm_available("a_spacecore_that_is_not_an_operator_is_kept_alive_without_a_key") {
        return;
    }
    // No [spec.avs] and no keystore: the node answers health checks 206 (the signer is down but
    // not essential), which the supervisor counts as alive.
    let specs = Specs::new();
    let resources = format!("cpu = 1\nmemory = \"{MEMORY}\"\nstorage = \"16Mi\"");
    let tables = "[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n\
                  [spec.failover]\nstrategy = \"auto-recovery\"\nhealth_interval = \"100ms\"\nhealth_timeout = \"500ms\"\n\
                  [spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"\n";
    let spec = specs.spacecore("sv-plain", &resources, tables, "{image}");
    let mut run = specs.start(&[spec.to_str().unwrap()]);
    let state = run.next_where(LIMIT, |l| l.guest("avs: not signing").is_some());
    assert!(state.is_some(), "the node never reported its key state: {:#?}", run.seen);
    let metrics = metrics_address(&run.seen).expect("the launcher's metrics line");

    // The supervisor's own counts, over the next CHECKS health checks (counted, not timed: 20
    // intervals of 100 ms are four health timeouts, after any one of which a node judged
    // unhealthy would have been restarted): every check alive, one boot, no restart.
    const CHECKS: f64 = 20.0;
    let counts = |text: &str| {
        let get = |series: &str| sample(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        let restarts: f64 = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("spacecore_launcher_restarts_total{")?.rsplit(' ').next()?.parse::<f64>().ok()
            })
            .sum();
        let alive = get("spacecore_launcher_health_checks_total{result=\"alive\"}");
        let failed = get("spacecore_launcher_health_checks_total{result=\"failed\"}");
        (alive, failed, get("spacecore_launcher_boots_total"), restarts)
    };
    let (first, ..) = counts(&scrape_metrics(metrics));
    let deadline = Instant::now() + LIMIT;
    loop {
        let text = scrape_metrics(metrics);
        let (alive, failed, boots, restarts) = counts(&text);
        assert_eq!((failed, boots, restarts), (0.0, 1.0, 0.0), "failed checks, boots, restarts:\n{text}");
        if alive >= first + CHECKS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} health checks in {LIMIT:?}, not {CHECKS}:\n{text}",
            alive - first
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run.signal(libc::SIGTERM);
    let (code, output) = run.finish(LIMIT);
    assert_eq!(code, Some(0), "{output}");
    let lines = log_lines(&output);
    assert_eq!(events(&lines, "restart").count(), 0, "{output}");
    assert_eq!(events(&lines, "health_failed").count(), 0, "{output}");
}
