//! The balancing relay: the one published port of a scaled spacecore. Each new connection goes
//! to the ready replica with the fewest connections open through this relay (ties: the one
//! after the last chosen, round robin), relayed byte for byte to that replica's own published
//! port on loopback. A replica that refuses the connection is skipped for the next.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::network::relay;

/// Connections relayed at once by one published port of a scaled spacecore; more are closed
/// as soon as they are accepted.
pub const MAX_CONNECTIONS: u64 = 1024;
/// Connections relayed at once from one client address (IPv4-mapped IPv6 addresses count as
/// their IPv4 address); more are closed as soon as they are accepted, as a single launcher's
/// published port does.
pub const MAX_PER_SOURCE: usize = 32;
/// Time to connect to a replica before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A replica as the relay sees it: where its port is, whether it takes connections, and how
/// many it has open through the relay.
#[derive(Debug)]
pub struct Backend {
    /// The replica's number (`NAME-rN`).
    pub replica: u32,
    /// Its published ports on loopback, by inbound port name.
    pub ports: Vec<(String, SocketAddr)>,
    /// Ready and not being stopped: new connections may go to it.
    pub serving: AtomicBool,
    /// Connections open through the relay now.
    pub open: AtomicU64,
    /// Connections relayed to it in all.
    pub relayed: AtomicU64,
}

impl Backend {
    /// A replica not serving yet.
    pub fn new(replica: u32, ports: Vec<(String, SocketAddr)>) -> Self {
        Backend {
            replica,
            ports,
            serving: AtomicBool::new(false),
            open: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
        }
    }

    fn port(&self, name: &str) -> Option<SocketAddr> {
        self.ports.iter().find(|(n, _)| n == name).map(|(_, addr)| *addr)
    }
}

/// The replicas a relay may choose from; the controller adds and removes them.
#[derive(Debug, Default)]
pub struct Pool {
    backends: Mutex<Vec<Arc<Backend>>>,
    next: AtomicUsize,
}

impl Pool {
    /// Adds `backend`.
    pub fn add(&self, backend: Arc<Backend>) {
        self.backends.lock().unwrap_or_else(|p| p.into_inner()).push(backend);
    }

    /// Removes the backend of replica `replica`.
    pub fn remove(&self, replica: u32) {
        self.backends.lock().unwrap_or_else(|p| p.into_inner()).retain(|b| b.replica != replica);
    }

    /// Every backend, in the order they were added.
    pub fn all(&self) -> Vec<Arc<Backend>> {
        self.backends.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The serving backends, least connections first; among equals, round robin from the one
    /// after the last chosen. With none serving (every replica booting or restarting its
    /// guest), all of them: a replica's own relay holds a connection while its guest comes
    /// back (up to 2 s), which is better than closing it here.
    pub fn candidates(&self) -> Vec<Arc<Backend>> {
        let all = self.all();
        let mut serving: Vec<_> = all.iter().filter(|b| b.serving.load(Ordering::Acquire)).cloned().collect();
        if serving.is_empty() {
            serving = all;
        }
        if serving.is_empty() {
            return serving;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % serving.len();
        let mut rotated: Vec<_> = serving[start..].iter().chain(&serving[..start]).cloned().collect();
        // Stable: equals keep the rotated order.
        rotated.sort_by_key(|b| b.open.load(Ordering::Acquire));
        rotated
    }
}

/// One published port's counters.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed unrelayed: over [`MAX_CONNECTIONS`], or no replica took them.
    pub refused: AtomicU64,
    /// Connections relayed now.
    pub open: AtomicU64,
    /// Of `refused`, those whose client address had [`MAX_PER_SOURCE`] connections relayed.
    pub refused_per_source: AtomicU64,
    /// Connections relayed now, by client address.
    sources: Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl PortCounters {
    /// Takes one of `source`'s slots; false when it has none left.
    fn take(&self, source: IpAddr) -> bool {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let count = sources.entry(source.to_canonical()).or_default();
        if *count >= MAX_PER_SOURCE {
            return false;
        }
        *count += 1;
        true
    }

    /// Gives `source`'s slot back.
    fn give_back(&self, source: IpAddr) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let source = source.to_canonical();
        if let Some(count) = sources.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                sources.remove(&source);
            }
        }
    }
}

/// Serves the published port `name` on `listener`, balancing between the replicas of `pool`,
/// on a thread of its own.
pub fn start(
    name: String,
    listener: TcpListener,
    pool: Arc<Pool>,
    counters: Arc<PortCounters>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name(format!("balance-{name}")).spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            if counters.open.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                continue; // dropping it closes it
            }
            let Ok(source) = conn.peer_addr().map(|a| a.ip()) else { continue };
            if !counters.take(source) {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                counters.refused_per_source.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            counters.open.fetch_add(1, Ordering::AcqRel);
            let (pool, mine, name) = (pool.clone(), counters.clone(), name.clone());
            let spawned = std::thread::Builder::new()
                .name("balance-conn".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    if !relay(conn, &name, &pool) {
                        mine.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    mine.give_back(source);
                    mine.open.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                // The connection went with the closure: closed. Give its slots back.
                counters.give_back(source);
                counters.open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    })?;
    Ok(())
}

/// Relays `client` to a replica; false when none took it.
fn relay(client: TcpStream, port: &str, pool: &Pool) -> bool {
    let _ = client.set_nodelay(true);
    for backend in pool.candidates() {
        let Some(addr) = backend.port(port) else { continue };
        // Counted before the connect: the next connection sees it taken.
        backend.open.fetch_add(1, Ordering::AcqRel);
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(upstream) => {
                backend.relayed.fetch_add(1, Ordering::Relaxed);
                let _ = upstream.set_nodelay(true);
                // Both ways, each end's close passed on, as the replica's own relay copies.
                relay::pipe(&client, &upstream, "balance-up");
                backend.open.fetch_sub(1, Ordering::AcqRel);
                return true;
            }
            Err(_) => {
                backend.open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn echo_server(tag: u8) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&[tag]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn balanced(backends: &[(u32, SocketAddr)]) -> (SocketAddr, Arc<Pool>, Arc<PortCounters>) {
        let pool = Arc::new(Pool::default());
        for &(replica, addr) in backends {
            let backend = Arc::new(Backend::new(replica, vec![("HTTP".into(), addr)]));
            backend.serving.store(true, Ordering::Release);
            pool.add(backend);
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(PortCounters::default());
        start("HTTP".into(), listener, pool.clone(), counters.clone()).unwrap();
        (addr, pool, counters)
    }

    fn ask(conn: &mut TcpStream) -> u8 {
        conn.write_all(b"?").unwrap();
        let mut answer = [0u8; 1];
        conn.read_exact(&mut answer).unwrap();
        answer[0]
    }

    #[test]
    fn new_connections_go_to_the_replica_with_the_fewest_open() {
        let (addr, pool, counters) = balanced(&[(1, echo_server(1)), (2, echo_server(2))]);
        // Held open: one each, alternating.
        let mut held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let tags: Vec<u8> = held.iter_mut().map(ask).collect();
        assert_eq!(tags.iter().filter(|&&t| t == 1).count(), 2, "{tags:?}");
        assert_eq!(tags.iter().filter(|&&t| t == 2).count(), 2, "{tags:?}");
        let open: Vec<u64> = pool.all().iter().map(|b| b.open.load(Ordering::Acquire)).collect();
        assert_eq!(open, [2, 2]);
        assert_eq!(counters.open.load(Ordering::Acquire), 4);
        // Replica 1's connections end: the next two both go to it.
        held.retain_mut(|c| ask(c) == 2);
        for _ in 0..100 {
            if pool.all()[0].open.load(Ordering::Acquire) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut more: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        assert_eq!(more.iter_mut().map(ask).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn one_client_address_gets_its_share_and_no_more() {
        let (addr, _pool, counters) = balanced(&[(1, echo_server(1)), (2, echo_server(2))]);
        let mut held: Vec<TcpStream> =
            (0..MAX_PER_SOURCE).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for conn in &mut held {
            ask(conn);
        }
        let mut over = TcpStream::connect(addr).unwrap();
        over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = over.write_all(b"?");
        let mut buf = [0u8; 1];
        assert!(matches!(over.read(&mut buf), Ok(0) | Err(_)), "the 33rd is closed");
        assert_eq!(counters.refused_per_source.load(Ordering::Relaxed), 1);
        // One given back: one more fits.
        drop(held.pop());
        for _ in 0..500 {
            if counters.open.load(Ordering::Acquire) < MAX_PER_SOURCE as u64 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        ask(&mut TcpStream::connect(addr).unwrap());
    }

    #[test]
    fn a_replica_not_serving_or_refusing_is_skipped() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // dropped: refuses
        let (addr, pool, counters) = balanced(&[(1, closed), (2, echo_server(2))]);
        for _ in 0..3 {
            assert_eq!(ask(&mut TcpStream::connect(addr).unwrap()), 2);
        }
        // Replica 2 restarting its guest: only replica 1 is a candidate, and it refuses.
        pool.all()[1].serving.store(false, Ordering::Release);
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = conn.write_all(b"?");
        let mut buf = [0u8; 1];
        assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)), "closed unrelayed");
        // Counted once its thread is done with it, just after the close.
        for _ in 0..500 {
            if counters.refused.load(Ordering::Relaxed) >= 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(counters.refused.load(Ordering::Relaxed), 1);
        // Neither serving: both are tried, and replica 2's relay takes it.
        pool.all()[0].serving.store(false, Ordering::Release);
        assert_eq!(ask(&mut TcpStream::connect(addr).unwrap()), 2);
    }
}
