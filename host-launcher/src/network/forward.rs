//! Published ports: a TCP listener on the host for each `inbound_ports` entry, forwarding each
//! connection to the guest's port through the spacecore's network namespace.
//!
//! The listener is bound in the launcher's own namespace (so it is reachable from the host);
//! the acceptor thread then enters the spacecore's namespace, so the sockets it opens towards
//! the guest live there. Each connection gets two copying threads; connections beyond
//! [`MAX_CONNECTIONS`] are closed at once.

use super::netns::Netns;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Connections forwarded at once per published port.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a connection to the guest may take before the client is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BUFFER: usize = 64 * 1024;

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

/// Counters of one published port.
#[derive(Debug, Default)]
pub struct ForwardCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused by the guest or over the limit.
    pub refused: AtomicU64,
    /// Bytes from clients to the guest.
    pub bytes_in: AtomicU64,
    /// Bytes from the guest to clients.
    pub bytes_out: AtomicU64,
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
                accept_loop(&listener, guest, &thread_counters);
            }
        })
        .map_err(|e| ForwardError::Thread(name.into(), e))?;
    Ok(Published { name: name.into(), host: bound, guest, counters })
}

fn accept_loop(listener: &TcpListener, guest: SocketAddr, counters: &Arc<ForwardCounters>) {
    let active = Arc::new(AtomicUsize::new(0));
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            counters.refused.fetch_add(1, Ordering::Relaxed);
            continue; // dropping `client` closes it
        }
        let (active, conn_counters) = (active.clone(), counters.clone());
        // Threads inherit this thread's namespace: the guest-side socket is created there.
        let spawned = std::thread::Builder::new().name("forward".into()).spawn(move || {
            forward(client, guest, &conn_counters);
            active.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn forward(client: TcpStream, guest: SocketAddr, counters: &ForwardCounters) {
    let Ok(upstream) = TcpStream::connect_timeout(&guest, CONNECT_TIMEOUT) else {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    for s in [&client, &upstream] {
        let _ = s.set_nodelay(true);
    }
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else { return };
    std::thread::scope(|s| {
        s.spawn(|| pump(client2, upstream2, &counters.bytes_in));
        pump(upstream, client, &counters.bytes_out);
    });
}

/// Copies `from` to `to` until EOF or an error, then half-closes both directions it owns.
fn pump(mut from: TcpStream, mut to: TcpStream, bytes: &AtomicU64) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_both_ways_through_a_namespace_and_reports_busy_ports() {
        let Ok(ns) = Netns::create().map(Arc::new) else {
            eprintln!("!!! network namespaces unavailable: test did NOT run !!!");
            return;
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
