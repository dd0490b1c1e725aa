//! Published ports: a TCP listener on the host for each `inbound_ports` entry, forwarding each
//! connection to the guest's port through the spacecore's network namespace.
//!
//! The listener is bound in the launcher's own namespace (so it is reachable from the host);
//! the acceptor thread then enters the spacecore's namespace, so the sockets it opens towards
//! the guest live there. Each connection gets two copying threads ([`super::relay`]);
//! connections beyond [`MAX_CONNECTIONS`] are closed at once.

use super::netns::Netns;
use super::relay;
pub use super::relay::ForwardCounters;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Connections forwarded at once per published port.
pub const MAX_CONNECTIONS: usize = 256;

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
    let counters = Arc::new(ForwardCounters::default());
    let thread_counters = counters.clone();
    std::thread::Builder::new()
        .name(format!("publish-{name}"))
        .spawn(move || {
            if netns.enter().is_ok() {
                relay::serve(&listener, guest, MAX_CONNECTIONS, &thread_counters);
            }
        })
        .map_err(|e| ForwardError::Thread(name.into(), e))?;
    Ok(Published { name: name.into(), host: bound, guest, counters })
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
