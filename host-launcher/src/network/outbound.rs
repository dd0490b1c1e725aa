//! The guest's ways out: one TCP relay per named endpoint of the spec (`spec.avs.aggregator`,
//! `spec.avs.eth_rpc`, `spec.avs.eth_ws`; `hac::Plan::egress`).
//!
//! A spacecore's namespace holds its tap and loopback and routes nowhere. For each named
//! endpoint the launcher listens there, on the tap's host-side address at the endpoint's port,
//! and relays each connection to the endpoint from the launcher's own namespace: the guest calls
//! `host_address:port` and talks to that endpoint, and to nothing else. With
//! `network_type = "isolated"` (or no endpoint named) nothing listens and the guest reaches
//! nothing. Each relay has its own counters and its own limit of [`MAX_CONNECTIONS`] connections
//! at once (more are closed at once); each connection gets two copying threads
//! ([`super::relay`]); a connection the endpoint refuses (or does not take within
//! [`super::relay::CONNECT_TIMEOUT`]) closes the guest's connection, which the guest retries.

use super::admission::Limits;
use super::netns::{Netns, NetnsError};
use super::relay::{self, ForwardCounters};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Connections relayed at once, per endpoint.
pub const MAX_CONNECTIONS: usize = 64;

/// An endpoint's relay: [`MAX_CONNECTIONS`] at once, more refused (the only client is the
/// guest, so there is no per-source share to keep and no one to evict for), no idle timeout (a
/// websocket to `eth_ws` may rightly be quiet for long).
pub const LIMITS: Limits = Limits {
    max: MAX_CONNECTIONS,
    per_source: MAX_CONNECTIONS,
    evict: false,
    idle_timeout: None,
    retry_refused: false,
    connect_on_data: false,
};

/// Why the path to an endpoint could not be set up; each message starts with the endpoint's
/// spec key (`spec.avs.NAME`).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The listener cannot be bound inside the namespace.
    #[error("spec.avs.{name}: cannot listen on {addr} inside the spacecore's network namespace: {source}")]
    Bind {
        /// The endpoint's name.
        name: String,
        /// The in-namespace address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The namespace could not be entered.
    #[error("spec.avs.{name}: {source}")]
    Netns {
        /// The endpoint's name.
        name: String,
        /// Why.
        source: NetnsError,
    },
    /// The acceptor thread could not start.
    #[error("spec.avs.{name}: cannot start the relay to {name}: {source}")]
    Thread {
        /// The endpoint's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running path from the guest to one named endpoint.
#[derive(Debug)]
pub struct Egress {
    /// The endpoint's name (`aggregator`, `eth_rpc`, `eth_ws`).
    pub name: String,
    /// Where the guest calls: the listener inside the spacecore's namespace (the real port when
    /// asked for 0).
    pub guest_side: SocketAddr,
    /// The endpoint, as the launcher's namespace reaches it.
    pub target: SocketAddr,
    /// Its counters (`bytes_in`: guest to endpoint).
    pub counters: Arc<ForwardCounters>,
}

/// Listens on `listen` inside `netns` and relays each connection to `target`, the endpoint
/// `name`. The sockets towards the endpoint are created in the namespace of the calling thread,
/// which must be the launcher's own.
pub fn start(
    netns: &Netns,
    name: &str,
    listen: SocketAddr,
    target: SocketAddr,
) -> Result<Egress, OutboundError> {
    let listener = netns
        .run(|| TcpListener::bind(listen))
        .map_err(|source| OutboundError::Netns { name: name.into(), source })?
        .map_err(|source| OutboundError::Bind { name: name.into(), addr: listen, source })?;
    let guest_side = listener.local_addr().unwrap_or(listen);
    let counters = Arc::new(ForwardCounters::default());
    let thread_counters = counters.clone();
    // Spawned from this thread, so in the launcher's namespace: connections to the endpoint
    // leave from there.
    std::thread::Builder::new()
        .name(format!("egress-{name}"))
        .spawn(move || relay::serve(&listener, target, LIMITS, &thread_counters))
        .map_err(|source| OutboundError::Thread { name: name.into(), source })?;
    Ok(Egress { name: name.into(), guest_side, target, counters })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    /// A namespace whose loopback is up, or `None` where namespaces are not available (`test`
    /// is then recorded as skipped).
    fn namespace(test: &str) -> Option<Netns> {
        let ns = match Netns::create() {
            Ok(ns) => ns,
            Err(e) => {
                test_support::skip(test, &format!("no network namespace: {e}"));
                return None;
            }
        };
        let up = ns.run(|| std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status());
        assert!(matches!(up, Ok(Ok(status)) if status.success()), "ip link set lo up: {up:?}");
        Some(ns)
    }

    /// Connects to `addr` from inside `ns`, as the guest would.
    fn connect_inside(ns: &Netns, addr: SocketAddr) -> TcpStream {
        ns.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2))).unwrap().unwrap()
    }

    /// A port on the host's loopback that nothing listens on (it was free a moment ago).
    fn closed_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    #[test]
    fn relays_both_ways_from_inside_the_namespace_to_the_host() {
        let Some(ns) = namespace("relays_both_ways_from_inside_the_namespace_to_the_host") else { return };
        // The aggregator: an echo server on the host's loopback, outside the namespace.
        let aggregator = TcpListener::bind("127.0.0.1:0").unwrap();
        let aggregator_addr = aggregator.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = aggregator.accept().unwrap();
            let mut data = Vec::new();
            conn.read_to_end(&mut data).unwrap();
            data.reverse();
            conn.write_all(&data).unwrap();
        });
        // The listener is bound inside the namespace: an address taken on the host is free there.
        let host_taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = host_taken.local_addr().unwrap();
        let outbound = start(&ns, "aggregator", listen, aggregator_addr).unwrap();
        assert_eq!((outbound.guest_side, outbound.target), (listen, aggregator_addr));

        let mut guest = connect_inside(&ns, outbound.guest_side);
        let request: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        guest.write_all(&request).unwrap();
        guest.shutdown(Shutdown::Write).unwrap();
        let mut response = Vec::new();
        guest.read_to_end(&mut response).unwrap();
        let mut expected = request.clone();
        expected.reverse();
        assert_eq!(response, expected, "the aggregator's answer reaches the guest");
        let counters = &outbound.counters;
        assert_eq!(counters.accepted.load(Ordering::Relaxed), 1);
        assert_eq!(counters.refused.load(Ordering::Relaxed), 0);
        assert_eq!(counters.bytes_in.load(Ordering::Relaxed), request.len() as u64);
        // The copy back is counted just after it is written.
        let deadline = Instant::now() + Duration::from_secs(2);
        while counters.bytes_out.load(Ordering::Relaxed) < request.len() as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(counters.bytes_out.load(Ordering::Relaxed), request.len() as u64);
    }

    #[test]
    fn listens_on_the_tap_address_and_closes_the_guest_when_the_aggregator_is_down() {
        let test = "listens_on_the_tap_address_and_closes_the_guest_when_the_aggregator_is_down";
        let Some(ns) = namespace(test) else { return };
        // As `attach` does: the host side of a tap, listened on at the aggregator's port.
        let host = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let tap = ns.run(|| {
            let tap = crate::devices::Tap::open("sc0")?;
            tap.set_ipv4(host, 30)?;
            tap.set_up()?;
            Ok::<_, crate::devices::TapError>(tap)
        });
        let _tap = match tap {
            Ok(Ok(tap)) => tap,
            other => {
                test_support::skip(test, &format!("no tap in the namespace: {other:?}"));
                return;
            }
        };
        let aggregator = closed_port();
        let listen = SocketAddr::new(host.into(), aggregator.port());
        let outbound = start(&ns, "aggregator", listen, aggregator).unwrap();
        assert_eq!(outbound.guest_side, listen);

        let mut guest = connect_inside(&ns, listen);
        // Longer than relay::CONNECT_TIMEOUT: a relay that waited for a refused endpoint would
        // still close the connection; one that forgot it would leave it open past this.
        guest.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut byte = [0u8; 1];
        match guest.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("the guest's connection stayed open: {other:?}"),
        }
        assert_eq!(outbound.counters.refused.load(Ordering::Relaxed), 1);

        // The same address cannot be listened on twice: the error names the spec key.
        let error = start(&ns, "aggregator", listen, aggregator).unwrap_err().to_string();
        assert!(error.starts_with(&format!("spec.avs.aggregator: cannot listen on {listen}")), "{error}");
    }

    #[test]
    fn at_most_64_connections_at_once() {
        let Some(ns) = namespace("at_most_64_connections_at_once") else { return };
        // An aggregator that takes connections and never answers.
        let aggregator = TcpListener::bind("127.0.0.1:0").unwrap();
        let aggregator_addr = aggregator.local_addr().unwrap();
        std::thread::spawn(move || {
            let held: Vec<TcpStream> = aggregator.incoming().filter_map(Result::ok).collect();
            drop(held);
        });
        let outbound = start(&ns, "eth_rpc", "127.0.0.1:0".parse().unwrap(), aggregator_addr).unwrap();
        let open: Vec<TcpStream> =
            (0..MAX_CONNECTIONS).map(|_| connect_inside(&ns, outbound.guest_side)).collect();
        let mut extra = connect_inside(&ns, outbound.guest_side);
        extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let over = extra.read(&mut [0u8; 1]);
        assert!(
            matches!(&over, Ok(0)) || matches!(&over, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "the connection over the limit is closed: {over:?}"
        );
        assert_eq!(outbound.counters.refused.load(Ordering::Relaxed), 1);
        // The others are still relayed: nothing closed them.
        let mut first = &open[0];
        first.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let still_open = first.read(&mut [0u8; 1]);
        assert!(
            matches!(&still_open, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "{still_open:?}"
        );
        assert_eq!(outbound.counters.accepted.load(Ordering::Relaxed), MAX_CONNECTIONS as u64 + 1);
    }

    #[test]
    fn each_endpoint_has_its_own_limit_and_counters() {
        let Some(ns) = namespace("each_endpoint_has_its_own_limit_and_counters") else { return };
        // Two endpoints that take connections and never answer.
        let targets: Vec<SocketAddr> = (0..2)
            .map(|_| {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                std::thread::spawn(move || {
                    let held: Vec<TcpStream> = listener.incoming().filter_map(Result::ok).collect();
                    drop(held);
                });
                addr
            })
            .collect();
        let any = "127.0.0.1:0".parse().unwrap();
        let rpc = start(&ns, "eth_rpc", any, targets[0]).unwrap();
        let ws = start(&ns, "eth_ws", any, targets[1]).unwrap();
        assert_eq!((rpc.name.as_str(), ws.name.as_str()), ("eth_rpc", "eth_ws"));
        let _full: Vec<TcpStream> =
            (0..MAX_CONNECTIONS).map(|_| connect_inside(&ns, rpc.guest_side)).collect();
        // eth_rpc is at its limit; eth_ws still relays, with a counter of its own.
        let mut other = connect_inside(&ns, ws.guest_side);
        other.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let open = other.read(&mut [0u8; 1]);
        assert!(
            matches!(&open, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "{open:?}"
        );
        assert_eq!(ws.counters.accepted.load(Ordering::Relaxed), 1);
        assert_eq!(ws.counters.refused.load(Ordering::Relaxed), 0);
        assert_eq!(rpc.counters.accepted.load(Ordering::Relaxed), MAX_CONNECTIONS as u64);
    }
}
