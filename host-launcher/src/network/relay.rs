//! The TCP relay shared by the published ports and the aggregator path: an acceptor that
//! connects each accepted connection to one target and copies bytes both ways.
//!
//! Which network namespace each side lives in is the caller's choice: the listener keeps the
//! namespace it was bound in, and the sockets towards the target are created in the namespace
//! of the thread that calls [`serve`] (threads inherit it).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a connection to the target may take before the accepted connection is closed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BUFFER: usize = 64 * 1024;
/// Pause after a failed `accept` (out of file descriptors, ...), so the acceptor does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Counters of one relay, and its open connections.
#[derive(Debug, Default)]
pub struct ForwardCounters {
    /// Both sockets of each connection being relayed, by number.
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed without being relayed: over the limit, or the target refused or did
    /// not answer in time.
    pub refused: AtomicU64,
    /// Bytes from the accepted connections to the target (for a published port: clients to the
    /// guest; for the aggregator path: the guest to the aggregator).
    pub bytes_in: AtomicU64,
    /// Bytes from the target back to the accepted connections.
    pub bytes_out: AtomicU64,
}

impl ForwardCounters {
    /// Ends every connection being relayed (both of its sockets are shut down); returns how
    /// many. The launcher calls it when the guest it relays to or from is gone (restarted): the
    /// other end then sees the connection close instead of waiting on a guest that will never
    /// answer.
    pub fn close_connections(&self) -> usize {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|p| p.into_inner()));
        for (a, b) in open.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        open.len()
    }

    /// Records a connection being relayed; its number, to forget it with.
    fn opened(&self, client: &TcpStream, upstream: &TcpStream) -> Option<u64> {
        let pair = (client.try_clone().ok()?, upstream.try_clone().ok()?);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(id, pair);
        Some(id)
    }

    fn closed(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        }
    }
}

/// Accepts connections on `listener` for as long as it is open, at most `limit` at once (more
/// are closed at once), and relays each to `target`. Runs on the calling thread.
pub fn serve(listener: &TcpListener, target: SocketAddr, limit: usize, counters: &Arc<ForwardCounters>) {
    let active = Arc::new(AtomicUsize::new(0));
    for client in listener.incoming() {
        let Ok(client) = client else {
            std::thread::sleep(ACCEPT_BACKOFF);
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if active.fetch_add(1, Ordering::AcqRel) >= limit {
            active.fetch_sub(1, Ordering::AcqRel);
            counters.refused.fetch_add(1, Ordering::Relaxed);
            continue; // dropping `client` closes it
        }
        let (conn_active, conn_counters) = (active.clone(), counters.clone());
        // Threads inherit this thread's namespace: the target-side socket is created there.
        let spawned = std::thread::Builder::new().name("relay".into()).spawn(move || {
            relay(client, target, &conn_counters);
            conn_active.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
            counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Connects to `target` and copies both ways until both directions end. A failed connection
/// closes `client`.
fn relay(client: TcpStream, target: SocketAddr, counters: &ForwardCounters) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    for s in [&client, &upstream] {
        let _ = s.set_nodelay(true);
    }
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else { return };
    let id = counters.opened(&client, &upstream);
    std::thread::scope(|s| {
        s.spawn(|| pump(client2, upstream2, &counters.bytes_in));
        pump(upstream, client, &counters.bytes_out);
    });
    counters.closed(id);
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
    use std::time::Instant;

    #[test]
    fn closing_the_connections_frees_a_client_waiting_on_a_silent_target() {
        // The target accepts and never answers, as a guest that crashed mid-request.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = silent.local_addr().unwrap();
        std::thread::spawn(move || {
            let held: Vec<_> = silent.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(30));
            drop(held);
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let front = listener.local_addr().unwrap();
        let counters = Arc::new(ForwardCounters::default());
        let theirs = counters.clone();
        std::thread::spawn(move || serve(&listener, target, 4, &theirs));

        let mut client = TcpStream::connect(front).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let began = Instant::now();
        while counters.open.lock().unwrap().is_empty() {
            assert!(began.elapsed() < Duration::from_secs(5), "the connection is relayed");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(counters.close_connections(), 1);
        let mut buf = [0u8; 16];
        let read = client.read(&mut buf);
        // Closed by close_connections: an end of file or a reset. Left open, the read would end
        // with the client's timeout (20 s, before the silent target lets go at 30 s) instead.
        let closed = match &read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        };
        assert!(closed, "the client's connection was not closed: {read:?}");
        assert_eq!(counters.close_connections(), 0);
    }
}
