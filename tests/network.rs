//! Networking end to end: HTTP to the guest through its published port, bulk echo, many
//! connections, malformed input, isolation between spacecores, and rate limits.

use spacecore_tests::{
    Running, Specs, connect, events, http, kvm_available, log_lines, output_lines, published, spacecore_netns,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

fn spec(specs: &Specs, name: &str, extra_networking: &str) -> std::path::PathBuf {
    let tables = format!(
        "[spec.networking]\n{extra_networking}\n\
         [spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0"
    );
    specs.spacecore(name, "cpu = 1\nmemory = \"256Mi\"", &tables, "{image}")
}

/// Boots `spec` and returns the running launcher and its published HTTP address.
fn boot(specs: &Specs, spec: &std::path::Path) -> (Running, SocketAddr) {
    let mut run = specs.start(&[spec.to_str().unwrap()]);
    assert!(run.wait_ready(LIMIT).is_some(), "never ready: {:?}", run.seen);
    let addr = published(&run.seen, "HTTP").expect("published HTTP line");
    (run, addr)
}

#[test]
fn http_through_the_published_port_echoes_1_mib_exactly() {
    if !kvm_available("http_through_the_published_port_echoes_1_mib_exactly") {
        return;
    }
    let specs = Specs::new();
    let (run, addr) = boot(&specs, &spec(&specs, "net-echo", ""));
    let mut conn = connect(addr);
    let (status, body) = http(&mut conn, "GET", "/", b"");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).expect("GET / is JSON");
    assert_eq!(json["name"], "net-echo");
    assert_eq!(json["version"], "0.1.0");
    // 1 MiB of pseudo-random bytes, echoed on the same keep-alive connection.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let payload: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let (status, echoed) = http(&mut conn, "POST", "/echo", &payload);
    assert_eq!(status, 200);
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the echoed body differs");
    drop(conn);
    run.stop(LIMIT);
}

#[test]
fn many_sequential_and_a_few_concurrent_connections() {
    if !kvm_available("many_sequential_and_a_few_concurrent_connections") {
        return;
    }
    let specs = Specs::new();
    let (run, addr) = boot(&specs, &spec(&specs, "net-many", ""));
    for i in 0..200 {
        let mut conn = connect(addr);
        let (status, _) = http(&mut conn, "GET", "/", b"");
        assert_eq!(status, 200, "sequential connection {i}");
    }
    let clients: Vec<_> = (0..8)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = connect(addr);
                for i in 0..25 {
                    let body = format!("client {c} request {i}").into_bytes();
                    assert_eq!(http(&mut conn, "POST", "/echo", &body), (200, body));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a concurrent client failed");
    }
    run.stop(LIMIT);
}

/// How the server ended a [`raw`] exchange, and what it answered before.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// It closed the connection (FIN) after answering this.
    Closed(String),
    /// It reset the connection after answering this.
    Reset(String),
    /// It answered this, then neither answered more nor closed within the read timeout.
    Hung(String),
}

impl Ended {
    /// Whether the server answered with `status` (`HTTP/1.1 400`...) and then closed the
    /// connection, rather than leaving it open.
    fn closed_after(&self, status: &str) -> bool {
        matches!(self, Ended::Closed(a) if a.starts_with(status))
    }
}

/// Sends raw bytes, half-closes, and reads until the server ends the connection or the read
/// timeout ([`connect`]'s) passes. A write may fail only because the server already ended the
/// connection (it answers and closes before reading all of a request it refuses); any other
/// write or read error fails the test.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Ended {
    raw_within(connect(addr), bytes)
}

/// [`raw`] on `conn`, with its own read timeout.
fn raw_within(mut conn: TcpStream, bytes: &[u8]) -> Ended {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, TimedOut, WouldBlock};
    let sent = conn.write_all(bytes).and_then(|()| conn.shutdown(std::net::Shutdown::Write));
    if let Err(e) = &sent {
        assert!(matches!(e.kind(), BrokenPipe | ConnectionReset), "sending the request: {e}");
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let text = |answer: &[u8]| String::from_utf8_lossy(answer).into_owned();
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ended::Closed(text(&answer)),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => return Ended::Hung(text(&answer)),
            Err(e) if matches!(e.kind(), ConnectionReset | ConnectionAborted) => {
                return Ended::Reset(text(&answer));
            }
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
}

#[test]
fn raw_tells_a_close_from_a_reset_and_a_hang() {
    // The checks below rely on `raw` to tell these apart; servers on loopback show it can.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        // 1: reads the request, answers and closes.
        let (mut conn, _) = listener.accept().unwrap();
        conn.read_to_end(&mut Vec::new()).unwrap();
        conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        drop(conn);
        // 2: closes with the request unread, which resets the connection.
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(conn);
        // 3: reads the request and holds the connection open, unanswered, until released.
        let (mut conn, _) = listener.accept().unwrap();
        conn.read_to_end(&mut Vec::new()).unwrap();
        held.recv().unwrap();
    });
    let client = |timeout| {
        let conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(timeout)).unwrap();
        conn
    };
    let request = b"GET / HTTP/1.1\r\n\r\n";
    let long = Duration::from_secs(10);
    let answered = raw_within(client(long), request);
    assert_eq!(answered, Ended::Closed("HTTP/1.1 400 Bad Request\r\n\r\n".into()));
    assert_eq!(raw_within(client(long), request), Ended::Reset(String::new()));
    assert_eq!(raw_within(client(Duration::from_millis(200)), request), Ended::Hung(String::new()));
    release.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn malformed_http_gets_errors_and_the_server_goes_on() {
    if !kvm_available("malformed_http_gets_errors_and_the_server_goes_on") {
        return;
    }
    let specs = Specs::new();
    let (run, addr) = boot(&specs, &spec(&specs, "net-garbage", ""));
    // Each refusal is answered and then the connection is closed: a server that answered and
    // then hung until the client's timeout would not pass.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let ended = raw(addr, &garbage);
    assert!(ended.closed_after("HTTP/1.1 400"), "garbage: {ended:?}");
    let huge_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let ended = raw(addr, huge_header.as_bytes());
    assert!(ended.closed_after("HTTP/1.1 431"), "huge header: {ended:?}");
    let huge_body = "POST /echo HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n";
    let ended = raw(addr, huge_body.as_bytes());
    assert!(ended.closed_after("HTTP/1.1 413"), "huge body: {ended:?}");
    // A truncated body: the server waits, sees the close, and closes without an answer (it
    // neither answers nor waits on until the client gives up).
    let truncated = raw(addr, b"POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\nonly this");
    assert_eq!(truncated, Ended::Closed(String::new()), "truncated body");
    // A request the server answers: the client has half-closed, so the server closes after it.
    let ended = raw(addr, b"GET /nowhere HTTP/1.1\r\n\r\n");
    assert!(ended.closed_after("HTTP/1.1 404"), "unknown path: {ended:?}");
    let ended = raw(addr, b"\0\0\0\r\n\r\n");
    assert!(ended.closed_after("HTTP/1.1 400"), "NUL bytes: {ended:?}");
    // After all that, the server still serves.
    let mut conn = connect(addr);
    assert_eq!(http(&mut conn, "GET", "/", b"").0, 200);
    drop(conn);
    run.stop(LIMIT);
}

/// Tries a TCP connection to `addr` from inside the namespace `ns`.
fn connects_from(ns: &std::fs::File, addr: SocketAddr) -> bool {
    use std::os::fd::AsRawFd;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on an open namespace descriptor; it moves only this thread.
            assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn two_spacecores_cannot_reach_each_other() {
    if !kvm_available("two_spacecores_cannot_reach_each_other") {
        return;
    }
    let specs = Specs::new();
    let a = spec(&specs, "net-a", "guest_address = \"10.0.0.2/30\"\nhost_address = \"10.0.0.1\"");
    let b = spec(&specs, "net-b", "guest_address = \"10.0.1.2/30\"\nhost_address = \"10.0.1.1\"");
    let (run_a, _) = boot(&specs, &a);
    let (run_b, _) = boot(&specs, &b);
    let a_guest: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let b_guest: SocketAddr = "10.0.1.2:80".parse().unwrap();
    let ns_a = spacecore_netns(run_a.child.id());
    let ns_b = spacecore_netns(run_b.child.id());
    // Each guest is reachable from its own namespace (the control)...
    assert!(connects_from(&ns_a, a_guest), "A's guest unreachable from A's namespace");
    assert!(connects_from(&ns_b, b_guest), "B's guest unreachable from B's namespace");
    // ...and nothing routes from one spacecore's segment to the other's. Only addresses inside
    // the namespaces the launchers created are ever tried.
    assert!(!connects_from(&ns_a, b_guest), "B's guest reachable from A's namespace");
    assert!(!connects_from(&ns_b, a_guest), "A's guest reachable from B's namespace");
    run_a.stop(LIMIT);
    run_b.stop(LIMIT);
}

#[test]
fn egress_is_held_to_its_rate_limit() {
    if !kvm_available("egress_is_held_to_its_rate_limit") {
        return;
    }
    let specs = Specs::new();
    // 8 Mbit/s = 1 MB/s out of the guest; the bucket's burst is 100 kB.
    let (run, addr) = boot(&specs, &spec(&specs, "net-rate", "egress = \"8Mbps\""));
    let mut conn = connect(addr);
    let payload = vec![7u8; 1 << 20];
    let started = Instant::now();
    let (status, echoed) = http(&mut conn, "POST", "/echo", &payload);
    let elapsed = started.elapsed();
    assert_eq!((status, echoed.len()), (200, payload.len()));
    // A correctness bound, not a performance one: 1 MiB out of the guest (plus headers) at
    // 1 MB/s cannot take less than (1 MiB - burst) / rate.
    let floor = Duration::from_secs_f64(((1 << 20) - 100_000) as f64 / 1_000_000.0);
    assert!(elapsed >= floor, "1 MiB left the guest in {elapsed:?}, faster than the 1 MB/s limit allows");
    drop(conn);
    let log = run.stop(LIMIT);
    let lines = log_lines(&log);
    assert_eq!(events(&lines, "guest_failed").count(), 0, "{log}");
    let ended: Vec<_> = events(&lines, "guest_ended").collect();
    assert!(matches!(ended[..], [end] if end.u64_field("status") == Some(0)), "{log}");
}

#[test]
fn a_published_port_already_in_use_is_a_clear_error_at_start() {
    if !kvm_available("a_published_port_already_in_use_is_a_clear_error_at_start") {
        return;
    }
    let specs = Specs::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tables =
        format!("[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = {port}");
    let spec = specs.spacecore("net-busy", "cpu = 1\nmemory = \"64Mi\"", &tables, "{image}");
    let out = specs.launch(&["--until-ready", spec.to_str().unwrap()]);
    let log = spacecore_tests::text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    // The error is the log's `launcher_error` event (and stderr's `hac-launch: ...` line).
    let lines = output_lines(&out);
    let errors: Vec<_> = events(&lines, "launcher_error").collect();
    assert_eq!(errors.len(), 1, "one clear error: {log}");
    let error = &errors[0].message;
    assert!(error.contains(&format!("cannot publish port HTTP on 127.0.0.1:{port}")), "{log}");
    assert!(error.contains("another program listens there"), "{log}");
    assert_eq!(errors[0].level, "error", "{log}");
    assert_eq!(events(&lines, "ready").count(), 0, "nothing may start: {log}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("cannot publish").count(), 1, "one clear line: {log}");
}
