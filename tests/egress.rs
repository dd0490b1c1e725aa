//! Named egress, probed from inside a running spacecore's network namespace: the endpoints its
//! spec names are relayed (data round-trips to servers on the host's loopback, and the launcher's
//! metrics count each endpoint's connections), and nothing else is reachable: not a server the
//! spec does not name, not the host's other addresses, not an arbitrary address. An isolated
//! spacecore has no listener at all. The guest is told each endpoint on its command line.
//!
//! Needs root and `/dev/kvm` (the launcher creates the namespace and tap, as in `network.rs`).
//! Only loopback servers and addresses inside the launcher's namespace are connected to; the one
//! address outside both (a documentation address) is tried only after the test has checked
//! that the namespace has no route that could carry it anywhere.

use spacecore_tests::{Running, Specs, inside, kvm_available, sample, scrape_metrics, spacecore_netns};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);
/// How long a probe may take: a refusal or "no route" comes at once; only a dropped SYN would
/// take this long, and that is reported as a hang, not as either.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// An address no namespace of this test has (TEST-NET-2, RFC 5737).
const ARBITRARY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// A TCP server on the host that echoes what it reads until EOF, and counts connections.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
}

impl Server {
    fn start(bind: &str) -> Server {
        let listener = TcpListener::bind(bind).expect("bind a test server");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut data = Vec::new();
                    let _ = conn.read_to_end(&mut data);
                    let _ = conn.write_all(&data);
                });
            }
        });
        Server { addr, accepted }
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// What a connection attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Connected,
    /// The peer answered with a reset: nothing listens there.
    Refused,
    /// No route: the packet never left the namespace.
    Unreachable,
    /// Nothing answered within [`PROBE_TIMEOUT`].
    Hang,
    Other(String),
}

fn classify(result: std::io::Result<TcpStream>) -> Probe {
    match result {
        Ok(_) => Probe::Connected,
        Err(e) => match e.kind() {
            ErrorKind::ConnectionRefused => Probe::Refused,
            ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => Probe::Unreachable,
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Probe::Hang,
            _ => Probe::Other(e.to_string()),
        },
    }
}

/// Brings the namespace's loopback up. A process inside a namespace reaches the namespace's own
/// addresses (the tap's host side, where the relays listen) through loopback, which the launcher
/// leaves down; with it up, the test's probes of `10.0.0.1` meet the same sockets the guest's
/// packets meet, arriving on the tap. It adds no route out of the namespace (loopback routes
/// only `127.0.0.0/8`, to itself).
fn loopback_up(ns: &std::fs::File) {
    let status = inside(ns, || std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status());
    match status {
        Ok(status) => assert!(status.success(), "ip link set lo up: {status}"),
        Err(e) => panic!("the `ip` tool (Debian's iproute2) is needed to probe the namespace: {e}"),
    }
}

fn probe_from(ns: &std::fs::File, addr: SocketAddr) -> Probe {
    inside(ns, || classify(TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)))
}

/// Sends `payload` to `addr` from inside `ns`, half-closes, and returns what came back.
fn round_trip_from(ns: &std::fs::File, addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    inside(ns, || {
        let mut conn = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{addr} from the spacecore's namespace: {e}"));
        conn.set_read_timeout(Some(LIMIT)).unwrap();
        conn.write_all(payload).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        conn.read_to_end(&mut back).unwrap();
        back
    })
}

/// The TCP sockets listening in the calling thread's namespace (IPv4 and IPv6), from
/// `/proc/thread-self/net/tcp{,6}`: `(address, port)` as hex text and port number.
fn listeners() -> Vec<(String, u16)> {
    let mut found = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/thread-self/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; st 0A is LISTEN.
            if fields.get(3) == Some(&"0A") {
                let (address, port) = fields[1].split_once(':').unwrap();
                found.push((address.to_owned(), u16::from_str_radix(port, 16).unwrap()));
            }
        }
    }
    found
}

/// `/proc/net/route`'s hex form of an IPv4 address (little-endian on x86).
fn route_hex(address: Ipv4Addr) -> String {
    format!("{:08X}", u32::from_le_bytes(address.octets()))
}

/// The routes of the calling thread's namespace (main table): `(interface, destination, mask)`.
fn routes() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route").unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[7].to_owned())
        })
        .collect()
}

/// The host's own IPv4 addresses other than loopback, in the test's namespace.
fn host_addresses() -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` points into the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null; its family says which sockaddr it is.
            let family = unsafe { (*entry.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found.push(ip);
                }
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// The rest of the launcher's first line starting with `marker` (a launcher line of the JSON log,
/// not the guest's).
fn launcher_line(run: &Running, marker: &str) -> Option<String> {
    run.log().iter().find_map(|l| l.launcher(marker).map(str::to_owned))
}

#[test]
fn only_the_named_endpoints_are_reachable_from_the_spacecores_namespace() {
    let test = "only_the_named_endpoints_are_reachable_from_the_spacecores_namespace";
    if !kvm_available(test) {
        return;
    }
    let aggregator = Server::start("127.0.0.1:0");
    let eth = Server::start("127.0.0.1:0");
    // Not named in the spec. It listens on every address of the host, so the host's other
    // addresses would reach it if anything routed them.
    let unnamed = Server::start("0.0.0.0:0");
    let specs = Specs::new();
    let tables = format!(
        "[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n\
         [spec.avs]\naggregator = \"{}\"\neth_rpc = \"{}\"\n\
         [spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"",
        aggregator.addr, eth.addr
    );
    let spec = specs.spacecore(
        "egress-private",
        "cpu = 1\nmemory = \"256Mi\"\nstorage = \"16Mi\"",
        &tables,
        "{image}",
    );
    let mut run = specs.start(&[spec.to_str().unwrap()]);
    assert!(run.wait_ready(LIMIT).is_some(), "never ready: {:?}", run.seen);

    // What the launcher says it set up, and what the guest was told.
    let egress = launcher_line(&run, "egress: ").expect("egress line");
    assert_eq!(egress, "private: the guest reaches aggregator, eth_rpc and nothing else");
    let relayed = launcher_line(&run, "eth_rpc: guest calls ").expect("eth_rpc line");
    let gateway = Ipv4Addr::new(10, 0, 0, 1);
    let eth_relay = SocketAddr::new(gateway.into(), eth.addr.port());
    let aggregator_relay = SocketAddr::new(gateway.into(), aggregator.addr.port());
    assert_eq!(relayed, format!("{eth_relay} -> {}", eth.addr));
    let told = run.find_guest("endpoints: ", LIMIT).expect("the guest prints its endpoints");
    assert_eq!(told.message, format!("endpoints: aggregator {aggregator_relay}, eth_rpc {eth_relay}"));
    let metrics = spacecore_tests::metrics_address(&run.seen).expect("a metrics event");

    let ns = spacecore_netns(run.child.id());
    // The namespace's structure: it routes nowhere but the tap's own subnet, forwards nothing,
    // and the only listeners in it are the two relays.
    let (routes, forwarding, mut listening) = inside(&ns, || {
        let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        (routes(), forwarding, listeners())
    });
    assert_eq!(
        routes,
        [(
            "sc0".to_owned(),
            route_hex(Ipv4Addr::new(10, 0, 0, 0)),
            route_hex(Ipv4Addr::new(255, 255, 255, 252))
        )],
        "one route, to the tap's subnet; no default route"
    );
    assert_eq!(forwarding.trim(), "0", "the namespace forwards nothing");
    listening.sort();
    let mut expected =
        vec![(route_hex(gateway), aggregator.addr.port()), (route_hex(gateway), eth.addr.port())];
    expected.sort();
    assert_eq!(listening, expected, "exactly one listener per named endpoint, on the tap's host address");

    loopback_up(&ns);
    // The named endpoint: data round-trips to the server on the host's loopback, twice.
    for round in 0..2u8 {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 ^ round).collect();
        assert_eq!(
            round_trip_from(&ns, eth_relay, &payload),
            payload,
            "round {round} through eth_rpc's relay"
        );
    }
    assert_eq!(eth.accepted(), 2);

    // Nothing else. The unnamed server's port on the tap's host address: nothing listens there.
    let unnamed_port = unnamed.addr.port();
    assert_eq!(probe_from(&ns, SocketAddr::new(gateway.into(), unnamed_port)), Probe::Refused);
    // Its own address: the host's loopback is not the namespace's.
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), unnamed_port);
    assert_eq!(probe_from(&ns, loopback), Probe::Refused, "{loopback}");
    // The named endpoint's own address, bypassing the relay: the same.
    assert_eq!(probe_from(&ns, eth.addr), Probe::Refused, "{}", eth.addr);
    // The host's other addresses: each reaches the unnamed server from the host (the control),
    // and none from the namespace.
    let others = host_addresses();
    for ip in &others {
        let addr = SocketAddr::new(IpAddr::V4(*ip), unnamed_port);
        assert_eq!(
            classify(TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)),
            Probe::Connected,
            "control: {addr}"
        );
        assert_eq!(probe_from(&ns, addr), Probe::Unreachable, "{addr} from the spacecore's namespace");
    }
    if others.is_empty() {
        // That probe had nothing to try: reported as a skip of its own, never as a pass.
        spacecore_tests::skip(
            &format!("{test} (probe of the host's other addresses)"),
            "the host has no address besides loopback",
        );
    }
    // An arbitrary address (no route carries it: checked above).
    assert_eq!(probe_from(&ns, SocketAddr::new(ARBITRARY.into(), 80)), Probe::Unreachable);
    assert_eq!(unnamed.accepted(), others.len() as u64, "only the host's own control connections");

    // The launcher counted the relayed connections per endpoint.
    let text = scrape_metrics(metrics);
    assert_eq!(
        sample(&text, "spacecore_launcher_egress_connections_total{name=\"eth_rpc\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "spacecore_launcher_egress_refused_total{name=\"eth_rpc\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "spacecore_launcher_egress_bytes_total{name=\"eth_rpc\",direction=\"out\"}"),
        Some(200_000.0),
        "{text}"
    );
    let to_aggregator = sample(&text, "spacecore_launcher_egress_connections_total{name=\"aggregator\"}");
    assert!(to_aggregator.is_some(), "the aggregator's relay is counted on its own: {text}");
    let log = run.stop(LIMIT);
    let lines = spacecore_tests::log_lines(&log);
    assert_eq!(spacecore_tests::events(&lines, "guest_failed").count(), 0, "{log}");
    let ended: Vec<_> = spacecore_tests::events(&lines, "guest_ended").collect();
    assert!(matches!(ended[..], [end] if end.u64_field("status") == Some(0)), "{log}");
}

#[test]
fn an_isolated_spacecore_has_no_listener_at_all() {
    if !kvm_available("an_isolated_spacecore_has_no_listener_at_all") {
        return;
    }
    let server = Server::start("127.0.0.1:0");
    let specs = Specs::new();
    let tables = "[spec.networking]\nnetwork_type = \"isolated\"\n\
                  [spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0";
    let spec = specs.spacecore("egress-isolated", "cpu = 1\nmemory = \"256Mi\"", tables, "{image}");
    let mut run = specs.start(&[spec.to_str().unwrap()]);
    assert!(run.wait_ready(LIMIT).is_some(), "never ready: {:?}", run.seen);
    let egress = launcher_line(&run, "egress: ");
    assert_eq!(egress.as_deref(), Some("isolated: no relay; the guest reaches nothing"));
    let log = run.log();
    let relays = log.iter().filter(|l| l.launcher("").is_some_and(|m| m.contains(": guest calls "))).count();
    let told = log.iter().filter(|l| l.guest("endpoints:").is_some()).count();
    assert_eq!((relays, told), (0, 0), "{:?}", run.seen);

    let ns = spacecore_netns(run.child.id());
    // The control: the guest itself is reachable in this namespace.
    assert_eq!(probe_from(&ns, "10.0.0.2:80".parse().unwrap()), Probe::Connected);
    assert_eq!(inside(&ns, listeners), [], "nothing listens in an isolated spacecore's namespace");
    loopback_up(&ns);
    for port in [server.addr.port(), 8090, 8545] {
        assert_eq!(
            probe_from(&ns, SocketAddr::new([10, 0, 0, 1].into(), port)),
            Probe::Refused,
            "port {port}"
        );
    }
    assert_eq!(server.accepted(), 0);
    run.stop(LIMIT);
}

#[test]
fn specs_that_cannot_be_enforced_are_refused_before_anything_starts() {
    let specs = Specs::new();
    let avs = "[spec.avs]\naggregator = \"127.0.0.1:8090\"\neth_rpc = \"127.0.0.1:8545\"";
    let resources = "cpu = 1\nmemory = \"64Mi\"\nstorage = \"16Mi\"";
    for (name, networking, needle) in [
        (
            "egress-public",
            "network_type = \"public\"",
            "\"public\" would route the guest to addresses the spec does not name",
        ),
        (
            "egress-isolated-avs",
            "network_type = \"isolated\"",
            "\"isolated\" gives the guest no way out at all, but [spec.avs] names endpoints",
        ),
    ] {
        let spec =
            specs.spacecore(name, resources, &format!("[spec.networking]\n{networking}\n{avs}"), "{image}");
        let out = specs.launch(&["--check", spec.to_str().unwrap()]);
        let log = spacecore_tests::text(&out);
        assert_eq!(out.status.code(), Some(2), "{log}");
        assert!(log.contains("spec.networking.network_type: ") && log.contains(needle), "{log}");
    }
    // A host name for an endpoint: refused with the reason.
    let spec = specs.spacecore(
        "egress-name",
        resources,
        "[spec.avs]\naggregator = \"127.0.0.1:8090\"\neth_rpc = \"localhost:8545\"",
        "{image}",
    );
    let out = specs.launch(&["--check", spec.to_str().unwrap()]);
    let log = spacecore_tests::text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("spec.avs.eth_rpc: \"localhost:8545\" names a host")
            && log.contains("the guest has no DNS"),
        "{log}"
    );
}
