//! Published ports: a TCP listener on the host for each `inbound_ports` entry, forwarding each
//! connection to the guest's port through the spacecore's network namespace.
//!
//! The listener is bound in the launcher's own namespace (so it is reachable from the host);
//! the acceptor thread then enters the spacecore's namespace, so the sockets it opens towards
//! the guest live there. Each connection gets two copying threads ([`super::relay`]).
//!
//! # Connection floods
//! Each published port relays within [`LIMITS`] ([`super::admission`]):
//! - at most [`MAX_CONNECTIONS`] connections at once; when that many are relayed, the one idle
//!   longest is closed to make room for a new one, so idle connections cannot keep clients out;
//! - at most [`PER_SOURCE`] of them from one source address; more from it are closed as soon as
//!   they are accepted, so one address cannot take the slots of the others;
//! - a connection with no byte either way for [`IDLE_TIMEOUT`] is closed;
//! - the guest is connected to only once the client has sent something, so a client that
//!   connects and stays silent never takes a guest socket; a guest that refuses (all its sockets
//!   mid-handshake in a burst, or restarting) is tried again within the connect timeout.
//!
//! Each is counted ([`ForwardCounters`]: `refused_per_source`, `evicted`, `idle_closed`). The
//! guest applies its own header and keep-alive timeouts and makes room the same way
//! (`docs/guest.md`). The launcher raises its own soft limit of open files to the hard limit
//! when it publishes a port: each relayed connection holds two descriptors.

use super::admission::Limits;
use super::netns::Netns;
use super::relay;
pub use super::relay::ForwardCounters;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// Connections forwarded at once per published port.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections forwarded at once per published port from one source address.
pub const PER_SOURCE: usize = 32;
/// A forwarded connection with no byte either way for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The limits of every published port.
pub const LIMITS: Limits = Limits {
    max: MAX_CONNECTIONS,
    per_source: PER_SOURCE,
    evict: true,
    idle_timeout: Some(IDLE_TIMEOUT),
    retry_refused: true,
    connect_on_data: true,
};

/// Why a port could not be published.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The host address and port cannot be bound.
    #[error("cannot publish port {name} on {addr}: {source}{hint}", hint = if source.kind() == ErrorKind::AddrInUse { " (another program listens there; pick another host port in the spec)" } else { "" })]
    Bind { name: String, addr: SocketAddr, source: std::io::Error },
    /// The acceptor thread could not start.
    #[error("cannot start the forwarder of port {0}: {1}")]
    Thread(String, std::io::Error),
}

/// A published port.
#[derive(Debug)]
pub struct Published {
    /// The entry's name in the spec.
    pub name: String,
    /// Where it listens on the host (the real port when the spec asked for 0).
    pub host: SocketAddr,
    /// Where it forwards to, inside the namespace.
    pub guest: SocketAddr,
    /// Its counters.
    pub counters: Arc<ForwardCounters>,
}

impl Published {
    /// Where a process on this host reaches the port: its address, or loopback when it listens
    /// on every address (`0.0.0.0`, `::`). The supervisor's health checks call it there.
    pub fn local_address(&self) -> SocketAddr {
        let ip = match self.host.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.host.port())
    }
}

/// Binds `host` and forwards its connections to `guest` inside `netns`.
pub fn publish(
    name: &str,
    host: SocketAddr,
    guest: SocketAddr,
    netns: Arc<Netns>,
) -> Result<Published, ForwardError> {
    let listener = TcpListener::bind(host).map_err(|source| ForwardError::Bind {
        name: name.into(),
        addr: host,
        source,
    })?;
    let bound = listener.local_addr().unwrap_or(host);
    raise_open_files_limit();
    let counters = Arc::new(ForwardCounters::default());
    let thread_counters = counters.clone();
    std::thread::Builder::new()
        .name(format!("publish-{name}"))
        .spawn(move || {
            if netns.enter().is_ok() {
                relay::serve(&listener, guest, LIMITS, &thread_counters);
            }
        })
        .map_err(|e| ForwardError::Thread(name.into(), e))?;
    Ok(Published { name: name.into(), host: bound, guest, counters })
}

/// Raises the soft limit of open files to the hard one (systemd's default soft limit, 1024, is
/// less than two descriptors for each of [`MAX_CONNECTIONS`] connections on a few ports).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` to a valid, exclusively borrowed place.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= limit.rlim_max {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads one valid `rlimit`; raising the soft limit up to the hard one needs
    // no privilege. On failure the old limit stays, which only lowers how many connections fit.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::sync::atomic::Ordering;

    #[test]
    fn forwards_both_ways_through_a_namespace_and_reports_busy_ports() {
        let ns = match Netns::create() {
            Ok(ns) => Arc::new(ns),
            Err(e) => {
                let test = "forwards_both_ways_through_a_namespace_and_reports_busy_ports";
                test_support::skip(test, &format!("no network namespace: {e}"));
                return;
            }
        };
        // An echo server on the namespace's loopback plays the guest.
        let (tx, rx) = std::sync::mpsc::channel();
        let server_ns = ns.clone();
        std::thread::spawn(move || {
            server_ns.enter().unwrap();
            let up = std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status();
            assert!(up.is_ok_and(|s| s.success()), "ip link set lo up");
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            for conn in listener.incoming().take(1) {
                let mut conn = conn.unwrap();
                let mut data = Vec::new();
                conn.read_to_end(&mut data).unwrap();
                conn.write_all(&data).unwrap();
            }
        });
        let guest = rx.recv().unwrap();
        let published = publish("test", "127.0.0.1:0".parse().unwrap(), guest, ns.clone()).unwrap();
        let mut client = TcpStream::connect(published.host).unwrap();
        let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        client.write_all(&payload).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        assert_eq!(back, payload);
        assert_eq!(published.counters.bytes_in.load(Ordering::Relaxed), payload.len() as u64);

        let err = publish("again", published.host, guest, ns).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cannot publish port again") && text.contains("another program"), "{text}");
    }
}
