//! Connection floods against a spacecore, on loopback and inside its own network namespace:
//! - a thousand idle connections to the published port (or a thousand that sent part of a
//!   request head and stalled), from fifty addresses, do not keep a client out: its `GET /` is
//!   answered while every one of them is still held open (silent ones never reach the guest and
//!   the relay makes room; stalled heads reach it and the guest makes room);
//! - one address is held to its share of the published port (the relay's per-source limit) and
//!   refused beyond it, while another address is served; the refusal is counted in `/metrics`;
//! - the supervisor's health checks come through the published port like any client, so when
//!   clients (here: from loopback) are kept out, the guest is judged unhealthy and restarted;
//! - the guest alone (reached from inside the namespace, without the relay) makes room for a new
//!   connection when its sockets are all taken, and closes a connection that does not finish its
//!   request head, or does not send its next request, in time.
//!
//! The limits are the launcher's (`host-launcher/src/network/forward.rs`) and the guest's
//! (`kernel-app/src/http/deadline.rs`), documented in docs/hac-launch.md and docs/guest.md.

use socket2::{Domain, Socket, Type};
use spacecore_tests::{Running, Specs, inside, kvm_available, log_lines, published, spacecore_netns};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Limit of every wait for the launcher (boot, stop).
const LIMIT: Duration = Duration::from_secs(30);
/// Connections of a flood.
const FLOOD: usize = 1000;
/// Addresses a flood comes from: 127.0.1.1 to 127.0.1.50, twenty connections each, under the
/// relay's per-source limit.
const FLOOD_SOURCES: u8 = 50;
/// The relay's per-source limit (`forward::PER_SOURCE`).
const PER_SOURCE: usize = 32;
/// The guest's header timeout and keep-alive timeout (`http::deadline`), in seconds.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The address of the client that must be served.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// A request head cut short: no blank line.
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: spacecore\r\n";

/// Boots a spacecore with its HTTP port published on loopback and the launcher's metrics on;
/// returns the launcher, the published address and the metrics address.
fn boot(specs: &Specs, name: &str) -> (Running, SocketAddr, SocketAddr) {
    boot_with(specs, name, "")
}

/// [`boot`] with more spec tables.
fn boot_with(specs: &Specs, name: &str, more: &str) -> (Running, SocketAddr, SocketAddr) {
    let tables = format!(
        "[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n\
         [spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"\n{more}"
    );
    let spec = specs.spacecore(name, "cpu = 1\nmemory = \"256Mi\"", &tables, "{image}");
    let mut run = specs.start(&[spec.to_str().unwrap()]);
    assert!(run.wait_ready(LIMIT).is_some(), "never ready: {:#?}", run.seen);
    let http = published(&run.seen, "HTTP").expect("a published HTTP line");
    let metrics = spacecore_tests::metrics_address(&run.seen).expect("a metrics event");
    (run, http, metrics)
}

/// Raises this process's soft limit of open files to its hard limit, which must leave room for
/// `n` more sockets (tests run side by side share the limit).
fn room_for_sockets(n: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` to a valid, exclusively borrowed place.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let wanted = n as u64 + 256;
    assert!(limit.rlim_max >= wanted, "the hard limit of open files ({}) is under {wanted}", limit.rlim_max);
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads one valid `rlimit`; raising the soft limit up to the hard one is
    // always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// A connection to `to` from the local address `from`, with 10 s read and write timeouts.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from.into(), 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(10))?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Why [`get`] has no answer: a close and a reset are the server's doing, a hang is nobody's.
#[derive(Debug, PartialEq, Eq)]
enum NoAnswer {
    /// The server closed the connection (FIN) before answering anything.
    Closed,
    /// The server reset the connection before answering anything.
    Reset,
    /// Nothing came within the read timeout: the connection hangs.
    Hung,
    /// Anything else: an answer cut short or unreadable, another error.
    Other(String),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Closed => write!(f, "closed unanswered"),
            NoAnswer::Reset => write!(f, "reset unanswered"),
            NoAnswer::Hung => write!(f, "no answer within the read timeout (the connection hangs)"),
            NoAnswer::Other(why) => write!(f, "{why}"),
        }
    }
}

/// `GET path` on `stream` with `Connection: close`, read to the end: the status and the body,
/// or why there is none (closed or reset unanswered, hung, or otherwise).
fn get(stream: &mut TcpStream, path: &str, close: bool) -> Result<(u16, String), NoAnswer> {
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!("GET {path} HTTP/1.1\r\nHost: spacecore\r\nConnection: {connection}\r\n\r\n");
    match stream.write_all(head.as_bytes()) {
        Ok(()) => {}
        // The server ended the connection already (a refusal closes at once).
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
            return Err(NoAnswer::Reset);
        }
        Err(e) => return Err(NoAnswer::Other(format!("cannot send: {e}"))),
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: Option<usize> = head.lines().find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse().ok())
            });
            if length.is_some_and(|n| body.len() >= n) {
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
                let status = status.ok_or_else(|| NoAnswer::Other(format!("no status in {text:?}")))?;
                return Ok((status, body.to_owned()));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) if answer.is_empty() => return Err(NoAnswer::Closed),
            Ok(0) => return Err(NoAnswer::Other(format!("closed in the middle of an answer: {text:?}"))),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e)
                if answer.is_empty()
                    && matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) =>
            {
                return Err(NoAnswer::Reset);
            }
            Err(e)
                if answer.is_empty() && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return Err(NoAnswer::Hung);
            }
            Err(e) => return Err(NoAnswer::Other(format!("{e} after {} bytes", answer.len()))),
        }
    }
}

/// What the server did with a connection the client keeps open and silent: `Ok(true)` closed
/// (FIN, nothing sent), `Ok(false)` reset, `Err` anything else (data, or still open after the
/// stream's read timeout).
fn ended(stream: &mut TcpStream) -> Result<bool, String> {
    match stream.read(&mut [0u8; 256]) {
        Ok(0) => Ok(true),
        Ok(n) => Err(format!("{n} bytes sent")),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
        Err(e) => Err(format!("still open ({e})")),
    }
}

/// `GET /metrics` of the launcher.
fn scrape(metrics: SocketAddr) -> String {
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, metrics).expect("connect to the metrics");
    let (status, body) = get(&mut stream, "/metrics", true).expect("the launcher's metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of `series` in the exposition `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
}

/// Opens [`FLOOD`] connections to `addr` from [`FLOOD_SOURCES`] addresses; each sends `first`
/// (possibly nothing) and then nothing more.
fn flood(addr: SocketAddr, first: &[u8]) -> Vec<TcpStream> {
    (0..FLOOD)
        .map(|i| {
            let from = Ipv4Addr::new(127, 0, 1, 1 + (i % usize::from(FLOOD_SOURCES)) as u8);
            let mut stream =
                connect_from(from, addr).unwrap_or_else(|e| panic!("flood connection {i} from {from}: {e}"));
            stream.write_all(first).unwrap_or_else(|e| panic!("flood connection {i}: {e}"));
            stream
        })
        .collect()
}

/// Which part makes room for the client during a flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoomMadeBy {
    /// The relay: silent connections never reach the guest, and the relay closes the one idle
    /// longest once it relays [`RELAY_MAX`].
    Relay,
    /// The guest: connections that sent part of a head reach it, and it resets the one waiting
    /// longest once its sockets are all taken.
    Guest,
}

/// The relay's connections at once per published port (`forward::MAX_CONNECTIONS`).
const RELAY_MAX: usize = 256;

/// A thousand connections that send `first` and stall, then one client's `GET /`, which must be
/// answered while all of them are held open.
fn a_client_is_served_through_a_flood(test: &str, first: &[u8], room: RoomMadeBy) {
    if !kvm_available(test) {
        return;
    }
    room_for_sockets(FLOOD + 16);
    let specs = Specs::new();
    let (run, http, metrics) = boot(&specs, "flood");
    let held = flood(http, first);
    let began = Instant::now();
    let mut client = connect_from(CLIENT, http).expect("the client connects");
    let answer = get(&mut client, "/", true);
    let took = began.elapsed();
    let (status, body) = answer.unwrap_or_else(|why| {
        let relay: Vec<String> = scrape(metrics)
            .lines()
            .filter(|l| l.starts_with("spacecore_launcher_published_"))
            .map(str::to_owned)
            .collect();
        panic!("the client was not served during the flood: {why}\n{}", relay.join("\n"))
    });
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("GET / is JSON");
    assert_eq!(json["name"], "flood");
    eprintln!("{test}: GET / answered in {} ms with {} connections held open", took.as_millis(), held.len());
    let text = scrape(metrics);
    let accepted = sample(&text, "spacecore_launcher_published_connections_total{port=\"HTTP\"}");
    assert!(accepted >= (FLOOD + 1) as f64, "{accepted} connections accepted");
    assert_eq!(sample(&text, "spacecore_launcher_published_refused_per_source_total{port=\"HTTP\"}"), 0.0);
    let evicted = sample(&text, "spacecore_launcher_published_evicted_total{port=\"HTTP\"}");
    let open = sample(&text, "spacecore_launcher_published_open_connections{port=\"HTTP\"}");
    assert!(open <= RELAY_MAX as f64, "{open} connections relayed at once");
    // Only now are the flood's connections let go.
    drop(held);
    let output = run.stop(LIMIT);
    let guest_made_room = log_lines(&output)
        .iter()
        .find_map(|l| l.guest("http: ")?.split(' ').next()?.parse::<usize>().ok())
        .unwrap_or(0);
    match room {
        // Every connection past the relay's maximum took the place of an idle one.
        RoomMadeBy::Relay => {
            assert!(evicted >= (FLOOD - RELAY_MAX) as f64, "the relay evicted {evicted}\n{text}");
            assert_eq!(guest_made_room, 0, "silent connections reached the guest: {output}");
        }
        // The guest has far fewer sockets than the flood has connections.
        RoomMadeBy::Guest => {
            assert!(guest_made_room > FLOOD / 2, "the guest reset {guest_made_room} to make room: {output}")
        }
    }
}

#[test]
fn a_thousand_idle_connections_do_not_keep_a_client_out() {
    a_client_is_served_through_a_flood(
        "a_thousand_idle_connections_do_not_keep_a_client_out",
        b"",
        RoomMadeBy::Relay,
    );
}

#[test]
fn a_thousand_stalled_request_heads_do_not_keep_a_client_out() {
    a_client_is_served_through_a_flood(
        "a_thousand_stalled_request_heads_do_not_keep_a_client_out",
        PARTIAL_HEAD,
        RoomMadeBy::Guest,
    );
}

#[test]
fn one_address_past_its_share_is_refused_while_another_is_served() {
    if !kvm_available("one_address_past_its_share_is_refused_while_another_is_served") {
        return;
    }
    let specs = Specs::new();
    let (run, http, metrics) = boot(&specs, "flood-source");
    let one = Ipv4Addr::LOCALHOST;
    let held: Vec<TcpStream> = (0..PER_SOURCE)
        .map(|i| connect_from(one, http).unwrap_or_else(|e| panic!("connection {i} from {one}: {e}")))
        .collect();
    // Every one of them relayed (bounded wait: the acceptor takes them in order).
    let open = "spacecore_launcher_published_open_connections{port=\"HTTP\"}";
    let deadline = Instant::now() + LIMIT;
    while sample(&scrape(metrics), open) < PER_SOURCE as f64 {
        assert!(Instant::now() < deadline, "never {PER_SOURCE} connections relayed: {}", scrape(metrics));
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut beyond = connect_from(one, http).expect("the kernel takes the connection");
    // Refused: closed or reset at once, unanswered; served, or left hanging, it is not refused.
    let refused = get(&mut beyond, "/", true);
    assert!(
        matches!(refused, Err(NoAnswer::Closed | NoAnswer::Reset)),
        "connection {} from {one} was not refused: {refused:?}",
        PER_SOURCE + 1
    );
    let mut other = connect_from(CLIENT, http).expect("another address connects");
    let (status, body) =
        get(&mut other, "/", true).unwrap_or_else(|why| panic!("{CLIENT} not served: {why}"));
    assert_eq!(status, 200, "{body}");
    let text = scrape(metrics);
    assert_eq!(sample(&text, "spacecore_launcher_published_refused_per_source_total{port=\"HTTP\"}"), 1.0);
    assert!(sample(&text, "spacecore_launcher_published_refused_total{port=\"HTTP\"}") >= 1.0);
    assert_eq!(sample(&text, "spacecore_launcher_published_evicted_total{port=\"HTTP\"}"), 0.0);
    drop(held);
    run.stop(LIMIT);
}

#[test]
fn health_checks_take_the_clients_path_and_fail_when_clients_are_kept_out() {
    if !kvm_available("health_checks_take_the_clients_path_and_fail_when_clients_are_kept_out") {
        return;
    }
    let specs = Specs::new();
    let failover = "[spec.failover]\nstrategy = \"auto-recovery\"\nhealth_interval = \"100ms\"\n\
                    health_timeout = \"1s\"\n";
    let (mut run, http, metrics) = boot_with(&specs, "flood-health", failover);
    let line = format!("health: GET /eigen/node/health through the published port {http} (guest ");
    assert!(run.log().iter().any(|l| l.launcher(&line).is_some()), "no `{line}` in {:#?}", run.seen);
    // With no client at all, the published port counts the checks' connections.
    let deadline = Instant::now() + LIMIT;
    loop {
        let text = scrape(metrics);
        let alive = sample(&text, "spacecore_launcher_health_checks_total{result=\"alive\"}");
        let through = sample(&text, "spacecore_launcher_published_connections_total{port=\"HTTP\"}");
        if alive >= 3.0 {
            assert!(through >= alive, "{alive} alive checks but {through} connections on the port\n{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never 3 alive checks: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Loopback's share of the port taken by silent connections: the checks, which come from
    // loopback, are refused like any client from there, and the guest is judged unhealthy.
    let held: Vec<TcpStream> = (0..PER_SOURCE)
        .map(|i| connect_from(Ipv4Addr::LOCALHOST, http).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let check = run.wait_event("health_failed", LIMIT);
    assert!(check.is_some(), "no health_failed event in {:#?}", run.seen);
    let failed =
        run.wait_event("guest_failed", LIMIT).unwrap_or_else(|| panic!("no guest_failed in {:#?}", run.seen));
    assert_eq!(failed.str_field("cause"), Some("unhealthy"), "{failed:?}");
    assert!(failed.message.starts_with("guest failed its health checks: no alive answer for "), "{failed:?}");
    let restart = run.wait_event("restart", LIMIT).unwrap_or_else(|| panic!("no restart in {:#?}", run.seen));
    assert_eq!(
        (restart.u64_field("restart"), restart.str_field("cause")),
        (Some(1), Some("unhealthy")),
        "{restart:?}"
    );
    let recovered = run.wait_event("recovered", LIMIT);
    assert!(recovered.is_some(), "no recovered event in {:#?}", run.seen);
    // The restart closed the connections relayed to the guest that was judged unhealthy.
    for mut stream in held {
        assert!(ended(&mut stream).is_ok(), "a silent connection outlived the restart");
    }
    let mut client = connect_from(CLIENT, http).expect("connect after the restart");
    assert_eq!(get(&mut client, "/", true).map(|(status, _)| status), Ok(200));
    run.stop(LIMIT);
}

/// The guest's HTTP address inside the namespace (the launcher's default).
const GUEST: &str = "10.0.0.2:80";

#[test]
fn the_guest_alone_makes_room_for_a_new_connection_when_full() {
    if !kvm_available("the_guest_alone_makes_room_for_a_new_connection_when_full") {
        return;
    }
    let specs = Specs::new();
    let (run, _, _) = boot(&specs, "flood-guest");
    let guest: SocketAddr = GUEST.parse().unwrap();
    let ns = spacecore_netns(run.child.id());
    let log = run.log();
    let line = log.iter().find_map(|l| l.guest("http: listening on ")).expect("the guest's http line");
    let sockets: usize = line
        .split("up to ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // Twice as many idle connections as the guest has sockets, straight to it, then a client.
    let (held, answer) = inside(&ns, || {
        let held: Vec<TcpStream> = (0..2 * sockets)
            .map(|i| {
                TcpStream::connect_timeout(&guest, LIMIT).unwrap_or_else(|e| panic!("connection {i}: {e}"))
            })
            .collect();
        let mut client = TcpStream::connect_timeout(&guest, LIMIT).expect("the client connects");
        client.set_read_timeout(Some(LIMIT)).unwrap();
        (held, get(&mut client, "/", true))
    });
    let (status, body) =
        answer.unwrap_or_else(|why| panic!("not served with {sockets} sockets taken: {why}"));
    assert_eq!(status, 200, "{body}");
    drop(held);
    let output = run.stop(LIMIT);
    assert!(log_lines(&output).iter().any(|l| l.guest("http: ").is_some()), "{output}");
}

#[test]
fn the_guest_closes_slow_heads_and_idle_keepalive_connections() {
    if !kvm_available("the_guest_closes_slow_heads_and_idle_keepalive_connections") {
        return;
    }
    let specs = Specs::new();
    let (run, _, _) = boot(&specs, "flood-timeouts");
    let guest: SocketAddr = GUEST.parse().unwrap();
    let ns = spacecore_netns(run.child.id());
    let began = Instant::now();
    let (mut silent, mut slow, mut kept, answer) = inside(&ns, || {
        let open = || TcpStream::connect_timeout(&guest, LIMIT).expect("connect to the guest");
        let (silent, mut slow, mut kept) = (open(), open(), open());
        slow.write_all(PARTIAL_HEAD).unwrap();
        let answer = get(&mut kept, "/", false);
        (silent, slow, kept, answer)
    });
    assert_eq!(answer.map(|(status, _)| status), Ok(200));
    // Each is closed politely (FIN, nothing sent), not before its timeout. The reads wait at
    // most the keep-alive timeout and 20 s more.
    for stream in [&mut silent, &mut slow, &mut kept] {
        stream.set_read_timeout(Some(KEEPALIVE_TIMEOUT + Duration::from_secs(20))).unwrap();
    }
    assert_eq!(ended(&mut silent), Ok(true), "a connection that sends nothing");
    assert_eq!(ended(&mut slow), Ok(true), "a connection whose head stalls");
    assert!(began.elapsed() >= HEADER_TIMEOUT, "closed before the header timeout: {:?}", began.elapsed());
    assert_eq!(ended(&mut kept), Ok(true), "a kept-alive connection with no next request");
    assert!(
        began.elapsed() >= KEEPALIVE_TIMEOUT,
        "closed before the keep-alive timeout: {:?}",
        began.elapsed()
    );
    run.stop(LIMIT);
}
