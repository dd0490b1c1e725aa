//! The TCP relay shared by the published ports and the aggregator path: an acceptor that
//! connects each accepted connection to one target and copies bytes both ways.
//!
//! Which network namespace each side lives in is the caller's choice: the listener keeps the
//! namespace it was bound in, and the sockets towards the target are created in the namespace
//! of the thread that calls [`serve`] (threads inherit it).
//!
//! Each relay applies its [`Limits`] with the rules of [`super::admission`]: a cap on the
//! connections relayed at once and on those from one source address, eviction of the
//! connection idle longest when full (or refusal), and an idle timeout. Each relayed connection
//! gets two copying threads; an idle timeout is kept by the copying threads themselves (their
//! reads and writes time out), so an idle connection costs no CPU.
//!
//! [`pipe`] is the copying alone, for a relay that picks each connection's target itself (the
//! balancer of a scaled spacecore).
//!
//! A relay can be **held** ([`ForwardCounters::hold`]) while its target is being replaced (a
//! rolling update, `crate::update`): connections are still accepted and read from, but none is
//! connected to the target until [`ForwardCounters::release`]; they wait in the relay instead of
//! being refused or failing against a guest that is not there.

use super::admission::{self, Admission, Limits, Open};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a connection to the target may take before the accepted connection is closed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BUFFER: usize = 64 * 1024;
/// Pause after a failed `accept` (out of file descriptors, ...), so the acceptor does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between two tries of a target that refused ([`Limits::retry_refused`]).
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(20);
/// Stack of a copying thread: it holds a few frames; its buffer is on the heap.
const THREAD_STACK: usize = 256 * 1024;

/// One connection being relayed.
#[derive(Debug)]
struct Relayed {
    source: IpAddr,
    client: Arc<TcpStream>,
    /// Set once the connection to the target is made.
    upstream: Option<Arc<TcpStream>>,
    /// Set when it went past a hold (or found none) on its way to the target: from then on it
    /// belongs to the target of that moment.
    passed: bool,
    activity: Arc<Activity>,
}

impl Relayed {
    fn shutdown(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(upstream) = &self.upstream {
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

/// When a byte last moved on a connection, and whether it was closed for idleness.
#[derive(Debug, Default)]
struct Activity {
    last_ms: AtomicU64,
    idle_closed: AtomicBool,
}

/// Counters of one relay, and its open connections.
#[derive(Debug)]
pub struct ForwardCounters {
    /// The connections being relayed, by number.
    open: Mutex<HashMap<u64, Relayed>>,
    next: AtomicU64,
    /// Time 0 of the activity times.
    epoch: Instant,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed without being relayed: over a limit, or the target refused or did
    /// not answer in time.
    pub refused: AtomicU64,
    /// Of those, the ones refused because their source address had its share of connections
    /// ([`Limits::per_source`]).
    pub refused_per_source: AtomicU64,
    /// Relayed connections closed to make room for a new one ([`Limits::evict`]).
    pub evicted: AtomicU64,
    /// Relayed connections closed after [`Limits::idle_timeout`] without a byte either way.
    pub idle_closed: AtomicU64,
    /// Bytes from the accepted connections to the target (for a published port: clients to the
    /// guest; for the aggregator path: the guest to the aggregator).
    pub bytes_in: AtomicU64,
    /// Bytes from the target back to the accepted connections.
    pub bytes_out: AtomicU64,
    /// Whether new connections wait before they are connected to the target ([`Self::hold`]).
    held: Mutex<bool>,
    released: Condvar,
    /// Connections that waited in a hold, counted when they go on.
    pub held_connections: AtomicU64,
}

impl Default for ForwardCounters {
    fn default() -> Self {
        ForwardCounters {
            open: Mutex::default(),
            next: AtomicU64::new(0),
            epoch: Instant::now(),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            refused_per_source: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            held: Mutex::new(false),
            released: Condvar::new(),
            held_connections: AtomicU64::new(0),
        }
    }
}

impl ForwardCounters {
    /// Ends every connection being relayed (both of its sockets are shut down); returns how
    /// many. The launcher calls it when the guest it relays to or from is gone (restarted): the
    /// other end then sees the connection close instead of waiting on a guest that will never
    /// answer.
    /// While the relay is held, only the connections that went past the gate before the hold
    /// (connected, or connecting, to the target) are closed: those waiting in the hold have
    /// not reached the guest that is gone and go on to the next one.
    pub fn close_connections(&self) -> usize {
        let held = self.is_held();
        let mut table = self.table();
        let open: Vec<Relayed> = if held {
            let ids: Vec<u64> =
                table.iter().filter(|(_, r)| r.upstream.is_some()).map(|(&id, _)| id).collect();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        } else {
            std::mem::take(&mut *table).into_values().collect()
        };
        drop(table);
        for relayed in &open {
            relayed.shutdown();
        }
        open.len()
    }

    /// Holds new connections: from now on none is connected to the target until
    /// [`Self::release`]. Connections already connected go on.
    pub fn hold(&self) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// Lets the held connections (and every new one) go on to the target.
    pub fn release(&self) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.released.notify_all();
    }

    /// Whether the relay holds new connections.
    pub fn is_held(&self) -> bool {
        *self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections connected, or connecting, to the target now: those that went past the gate
    /// (not those waiting in a hold or for their first bytes).
    pub fn connected_connections(&self) -> usize {
        self.table().values().filter(|r| r.passed).count()
    }

    /// Waits while the relay is held, then marks connection `id` as gone past the gate, under
    /// the same lock as [`Self::hold`]: once `hold` returns, every connection is either counted
    /// by [`Self::connected_connections`] or waits. True if this connection waited.
    fn wait_released(&self, id: u64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let waited = *held;
        while *held {
            held = self.released.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(relayed) = self.table().get_mut(&id) {
            relayed.passed = true;
        }
        drop(held);
        if waited {
            self.held_connections.fetch_add(1, Ordering::Relaxed);
        }
        waited
    }

    /// Connections being relayed now.
    pub fn open_connections(&self) -> usize {
        self.table().len()
    }

    fn table(&self) -> MutexGuard<'_, HashMap<u64, Relayed>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Applies `limits` to `client`, from `source`: its number and activity if it is to be
    /// relayed (after closing the connection it evicts, if any), `None` (counted) if refused.
    fn admit(&self, client: TcpStream, source: IpAddr, limits: &Limits) -> Option<(u64, Arc<Activity>)> {
        let mut table = self.table();
        let open: Vec<Open> = table
            .iter()
            .map(|(&id, r)| Open {
                id,
                source: r.source,
                last_active_ms: r.activity.last_ms.load(Ordering::Relaxed),
            })
            .collect();
        match admission::admit(limits, source, &open) {
            Admission::PerSourceLimit => {
                self.refused_per_source.fetch_add(1, Ordering::Relaxed);
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None; // dropping `client` closes it
            }
            Admission::Full => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Admission::Evict(victim) => {
                if let Some(evicted) = table.remove(&victim) {
                    evicted.shutdown();
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
            }
            Admission::Admit => {}
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            last_ms: AtomicU64::new(self.now_ms()),
            idle_closed: AtomicBool::new(false),
        });
        let relayed = Relayed {
            source,
            client: Arc::new(client),
            upstream: None,
            passed: false,
            activity: activity.clone(),
        };
        table.insert(id, relayed);
        Some((id, activity))
    }

    /// The connection `id` reached its target: both its sockets, or `None` if it was closed
    /// meanwhile (evicted, or its guest is gone), in which case `upstream` is dropped.
    fn connected(&self, id: u64, upstream: TcpStream) -> Option<(Arc<TcpStream>, Arc<TcpStream>)> {
        let mut table = self.table();
        let relayed = table.get_mut(&id)?;
        let upstream = Arc::new(upstream);
        relayed.upstream = Some(upstream.clone());
        Some((relayed.client.clone(), upstream))
    }

    /// The client socket of connection `id`, if it is still relayed.
    fn client(&self, id: u64) -> Option<Arc<TcpStream>> {
        self.table().get(&id).map(|r| r.client.clone())
    }

    fn closed(&self, id: u64) {
        self.table().remove(&id);
    }
}

/// Accepts connections on `listener` for as long as it is open and relays each to `target`,
/// within `limits` (see [`super::admission`]). Runs on the calling thread.
pub fn serve(listener: &TcpListener, target: SocketAddr, limits: Limits, counters: &Arc<ForwardCounters>) {
    // In a confined launcher: this thread and the connection threads it starts.
    crate::jail::enter(crate::jail::Kind::Relay);
    for client in listener.incoming() {
        let Ok(client) = client else {
            std::thread::sleep(ACCEPT_BACKOFF);
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let source = client.peer_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let Some((id, activity)) = counters.admit(client, source, &limits) else { continue };
        let conn_counters = counters.clone();
        // Threads inherit this thread's namespace: the target-side socket is created there.
        let spawned = std::thread::Builder::new()
            .name("relay".into())
            .stack_size(THREAD_STACK)
            .spawn(move || relay(id, target, &limits, &activity, &conn_counters));
        if spawned.is_err() {
            if let Some(client) = counters.client(id) {
                let _ = client.shutdown(Shutdown::Both);
            }
            counters.closed(id);
            counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Relays connection `id` to `target`: with [`Limits::connect_on_data`], once the client has
/// sent its first bytes (an idle client never reaches the target); then copies both ways until
/// both directions end, the connection is idle for the idle timeout, or it is closed from
/// outside (evicted, guest gone). A failed connection to the target closes the client's.
fn relay(id: u64, target: SocketAddr, limits: &Limits, activity: &Activity, counters: &ForwardCounters) {
    let reader = Reader {
        idle_timeout: limits.idle_timeout,
        activity,
        epoch: counters.epoch,
        idle_closed: &counters.idle_closed,
    };
    let mut first = Vec::new();
    if limits.connect_on_data {
        let Some(client) = counters.client(id) else { return };
        let mut buf = vec![0u8; BUFFER];
        match reader.read(&client, &mut buf, &mut None) {
            Got::Data(n) => {
                buf.truncate(n);
                first = buf;
                activity.last_ms.store(counters.now_ms(), Ordering::Relaxed);
            }
            Got::End | Got::Idle | Got::Failed => {
                let _ = client.shutdown(Shutdown::Both);
                counters.closed(id);
                return;
            }
        }
    }
    // During a hold (the guest is being replaced) the connection waits here, its first bytes
    // read, and the connect timeout starts once it is released.
    counters.wait_released(id);
    let Some(upstream) = connect(id, target, limits, counters) else {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        counters.closed(id);
        return;
    };
    let Some((client, upstream)) = counters.connected(id, upstream) else { return };
    for s in [&client, &upstream] {
        let _ = s.set_nodelay(true);
        // A write the peer takes nothing of for the idle timeout ends the connection.
        let _ = s.set_write_timeout(limits.idle_timeout);
    }
    // What the client sent first goes at once, before the second thread starts.
    if !first.is_empty() {
        if (&*upstream).write_all(&first).is_err() {
            close_both(&client, &upstream);
            counters.closed(id);
            return;
        }
        counters.bytes_in.fetch_add(first.len() as u64, Ordering::Relaxed);
    }
    reader.both_ways(&client, &upstream, [&counters.bytes_in, &counters.bytes_out], "relay");
    counters.closed(id);
}

/// Copies bytes both ways between `client` and `upstream` until both directions have ended,
/// each end's close passed on, as [`serve`] does for a connection it relays, but with no idle
/// timeout and nothing counted: for a relay that picks each connection's target itself (a
/// scaled spacecore's balancer). The calling thread copies `upstream` to `client`; a second
/// thread, named `name`, the other way.
pub fn pipe(client: &TcpStream, upstream: &TcpStream, name: &str) {
    let activity = Activity::default();
    // Read by no one: without an idle timeout none is closed for idleness, and the balancer
    // counts connections, not bytes.
    let (idle_closed, bytes_in, bytes_out) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let reader =
        Reader { idle_timeout: None, activity: &activity, epoch: Instant::now(), idle_closed: &idle_closed };
    reader.both_ways(client, upstream, [&bytes_in, &bytes_out], name);
}

/// Connects connection `id` to `target` within [`CONNECT_TIMEOUT`]; with
/// [`Limits::retry_refused`], a refusal is tried again after a pause (1 ms, doubling up to
/// [`RETRY_PAUSE_MAX`]) for as long as the connection is still relayed.
fn connect(id: u64, target: SocketAddr, limits: &Limits, counters: &ForwardCounters) -> Option<TcpStream> {
    let began = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let left = CONNECT_TIMEOUT.checked_sub(began.elapsed()).filter(|left| !left.is_zero())?;
        match TcpStream::connect_timeout(&target, left) {
            Ok(upstream) => return Some(upstream),
            Err(e) if limits.retry_refused && e.kind() == ErrorKind::ConnectionRefused => {
                counters.client(id)?; // `None`: closed meanwhile
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(RETRY_PAUSE_MAX);
            }
            Err(_) => return None,
        }
    }
}

/// What a read of a relayed connection gave.
enum Got {
    /// This many bytes.
    Data(usize),
    /// The end of this direction.
    End,
    /// Nothing either way for the idle timeout (counted).
    Idle,
    /// An error.
    Failed,
}

/// Reads for one connection, keeping its idle timeout.
struct Reader<'a> {
    /// `None`: the connection may stay idle for ever.
    idle_timeout: Option<Duration>,
    activity: &'a Activity,
    /// Time 0 of the activity times.
    epoch: Instant,
    /// Counts the connections closed for idleness.
    idle_closed: &'a AtomicU64,
}

impl Reader<'_> {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Copies `client` to `upstream` on a second thread, named `name`, and `upstream` to
    /// `client` on this one (see [`Self::pump`]), until both directions have ended; `bytes`
    /// counts each direction, in that order.
    fn both_ways(&self, client: &TcpStream, upstream: &TcpStream, bytes: [&AtomicU64; 2], name: &str) {
        std::thread::scope(|s| {
            let back = std::thread::Builder::new()
                .name(name.into())
                .stack_size(THREAD_STACK)
                .spawn_scoped(s, || self.pump(client, upstream, bytes[0]));
            if back.is_err() {
                close_both(client, upstream);
                return;
            }
            self.pump(upstream, client, bytes[1]);
        });
    }

    /// Reads from `from` into `buf`, waiting while the connection is not idle for the idle
    /// timeout (the other direction may keep it busy). `set` is the read timeout `from` has.
    fn read(&self, mut from: &TcpStream, buf: &mut [u8], set: &mut Option<Duration>) -> Got {
        let mut wait = self.idle_timeout;
        loop {
            if wait != *set {
                if from.set_read_timeout(wait).is_err() {
                    return Got::Failed;
                }
                *set = wait;
            }
            match from.read(buf) {
                Ok(0) => return Got::End,
                Ok(n) => return Got::Data(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let last = self.activity.last_ms.load(Ordering::Relaxed);
                    match admission::idle_left(self.idle_timeout, last, self.now_ms()) {
                        Some(left) => wait = Some(left),
                        None => {
                            if !self.activity.idle_closed.swap(true, Ordering::Relaxed) {
                                self.idle_closed.fetch_add(1, Ordering::Relaxed);
                            }
                            return Got::Idle;
                        }
                    }
                }
                Err(_) => return Got::Failed,
            }
        }
    }

    /// Copies `from` to `to` until EOF, an error or the idle timeout, then half-closes both
    /// directions it owns (or, on an error or the timeout, closes both sockets, so that the
    /// other thread ends too).
    fn pump(&self, from: &TcpStream, mut to: &TcpStream, bytes: &AtomicU64) {
        let mut buf = vec![0u8; BUFFER];
        let mut set = None;
        loop {
            match self.read(from, &mut buf, &mut set) {
                Got::Data(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        // The peer took nothing for the idle timeout, or the socket is gone.
                        return close_both(from, to);
                    }
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    self.activity.last_ms.store(self.now_ms(), Ordering::Relaxed);
                }
                Got::End => break,
                Got::Idle | Got::Failed => return close_both(from, to),
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    }
}

fn close_both(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max: 4,
        per_source: 4,
        evict: false,
        idle_timeout: None,
        retry_refused: false,
        connect_on_data: false,
    };

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
        std::thread::spawn(move || serve(&listener, target, LIMITS, &theirs));

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

    /// A target that echoes every connection until it closes.
    fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().take(64).flatten() {
                std::thread::spawn(move || {
                    let (mut from, mut to) = (&conn, &conn);
                    let _ = std::io::copy(&mut from, &mut to);
                });
            }
        });
        addr
    }

    /// A relay within `limits` to an echo target: its address and counters.
    fn relay_with(limits: Limits) -> (SocketAddr, Arc<ForwardCounters>) {
        let target = echo();
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let front = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listener.local_addr().unwrap().port());
        let counters = Arc::new(ForwardCounters::default());
        let theirs = counters.clone();
        std::thread::spawn(move || serve(&listener, target, limits, &theirs));
        (front, counters)
    }

    /// A connection to `to` from the loopback address `from`, with a 10 s read timeout.
    fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
        use std::os::fd::FromRawFd;
        // SAFETY: socket(2) has no memory preconditions; the descriptor is checked, then owned
        // by the TcpStream made from it (which closes it).
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a socket this function just opened and nothing else owns.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
            sin_zero: [0; 8],
        };
        let SocketAddr::V4(to) = to else { panic!("IPv4 only") };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        for (what, addr) in [("bind", sockaddr(from, 0)), ("connect", sockaddr(*to.ip(), to.port()))] {
            let ptr = (&raw const addr).cast::<libc::sockaddr>();
            // SAFETY: `ptr` points to a valid sockaddr_in of `len` bytes that outlives the call;
            // `fd` is open (owned by `stream`).
            let rc = unsafe {
                if what == "bind" { libc::bind(fd, ptr, len) } else { libc::connect(fd, ptr, len) }
            };
            assert_eq!(rc, 0, "{what} from {from} to {to}: {}", std::io::Error::last_os_error());
        }
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Whether the relay answers on `stream`: an echo of a few bytes.
    fn echoes(stream: &mut TcpStream) -> bool {
        let mut back = [0u8; 4];
        stream.write_all(b"ping").is_ok() && stream.read_exact(&mut back).is_ok() && &back == b"ping"
    }

    /// Whether `stream` was closed by the relay (EOF or reset) rather than left open.
    fn closed(stream: &mut TcpStream) -> bool {
        match stream.read(&mut [0u8; 16]) {
            Ok(0) => true,
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }

    /// Waits (at most 10 s) until `counters` has `n` connections open.
    fn until_open(counters: &ForwardCounters, n: usize) {
        let began = Instant::now();
        while counters.open_connections() != n {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "{} open, not {n}",
                counters.open_connections()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_held_connection_waits_for_the_release_and_survives_the_end_of_a_run() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = target.local_addr().unwrap();
        target.set_nonblocking(true).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let front = listener.local_addr().unwrap();
        let counters = Arc::new(ForwardCounters::default());
        let theirs = counters.clone();
        let limits = Limits { connect_on_data: true, retry_refused: true, ..LIMITS };
        std::thread::spawn(move || serve(&listener, target_addr, limits, &theirs));
        counters.hold();
        let mut client = connect_from(Ipv4Addr::LOCALHOST, front);
        client.write_all(b"ping").unwrap();
        until_open(&counters, 1);
        std::thread::sleep(Duration::from_millis(100));
        assert!(target.accept().is_err(), "a held connection reached the target");
        assert_eq!(counters.connected_connections(), 0);
        // The run behind the relay ends: the held connection is not closed with it.
        assert_eq!(counters.close_connections(), 0);
        counters.release();
        target.set_nonblocking(false).unwrap();
        let (mut reached, _) = target.accept().unwrap();
        reached.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0u8; 4];
        reached.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping", "the bytes read during the hold go on");
        reached.write_all(b"pong").unwrap();
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        assert_eq!(counters.held_connections.load(Ordering::Relaxed), 1);
        assert_eq!(counters.refused.load(Ordering::Relaxed), 0);
        // Not held: the end of a run closes every connection again.
        assert_eq!(counters.close_connections(), 1);
    }

    #[test]
    fn a_full_relay_closes_the_connection_idle_longest_for_a_new_one() {
        let (front, counters) = relay_with(Limits {
            max: 3,
            per_source: 3,
            evict: true,
            idle_timeout: None,
            retry_refused: false,
            connect_on_data: false,
        });
        let sources = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
        let mut idle: Vec<TcpStream> = sources.iter().map(|&ip| connect_from(ip, front)).collect();
        until_open(&counters, 3);
        // The second one talks: the first is now the one idle longest.
        std::thread::sleep(Duration::from_millis(20));
        assert!(echoes(&mut idle[1]));
        let mut newcomer = connect_from(Ipv4Addr::new(127, 0, 0, 4), front);
        assert!(echoes(&mut newcomer), "the newcomer is relayed");
        assert!(closed(&mut idle[0]), "the connection idle longest is closed");
        assert!(echoes(&mut idle[1]) && echoes(&mut idle[2]), "the others are not");
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(counters.refused.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_source_past_its_share_is_refused_while_another_is_served() {
        let (front, counters) = relay_with(Limits {
            max: 8,
            per_source: 2,
            evict: true,
            idle_timeout: None,
            retry_refused: false,
            connect_on_data: false,
        });
        let one = Ipv4Addr::new(127, 0, 0, 1);
        let mut held = [connect_from(one, front), connect_from(one, front)];
        until_open(&counters, 2);
        let mut third = connect_from(one, front);
        assert!(closed(&mut third), "a third connection from {one} is closed at once");
        assert_eq!(counters.refused_per_source.load(Ordering::Relaxed), 1);
        assert_eq!(counters.refused.load(Ordering::Relaxed), 1);
        let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), front);
        assert!(echoes(&mut other), "another source is served");
        assert!(held.iter_mut().all(echoes), "the first two are still relayed");
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn with_connect_on_data_a_silent_client_never_reaches_the_target() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = target.local_addr().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let front = listener.local_addr().unwrap();
        let counters = Arc::new(ForwardCounters::default());
        let theirs = counters.clone();
        let limits = Limits { connect_on_data: true, ..LIMITS };
        std::thread::spawn(move || serve(&listener, target_addr, limits, &theirs));
        // The silent client is accepted first; were the target connected at once, its
        // connection would reach the target first.
        let _silent = connect_from(Ipv4Addr::LOCALHOST, front);
        until_open(&counters, 1);
        let mut talking = connect_from(Ipv4Addr::LOCALHOST, front);
        talking.write_all(b"ping").unwrap();
        let (mut reached, _) = target.accept().unwrap();
        reached.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0u8; 4];
        reached.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping", "the first connection to reach the target is the one that talked");
        reached.write_all(b"pong").unwrap();
        talking.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        assert_eq!(counters.open_connections(), 2, "the silent client still holds its slot");
    }

    #[test]
    fn an_idle_connection_is_closed_and_a_talking_one_is_not() {
        let idle_timeout = Duration::from_millis(300);
        let limits = Limits {
            max: 8,
            per_source: 8,
            evict: true,
            idle_timeout: Some(idle_timeout),
            retry_refused: false,
            connect_on_data: false,
        };
        let (front, counters) = relay_with(limits);
        let mut idle = connect_from(Ipv4Addr::LOCALHOST, front);
        let mut talking = connect_from(Ipv4Addr::LOCALHOST, front);
        let began = Instant::now();
        // Bounded: twelve exchanges 100 ms apart, well past the idle timeout.
        for _ in 0..12 {
            assert!(echoes(&mut talking), "the talking connection stays open");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(began.elapsed() > idle_timeout * 2);
        assert!(closed(&mut idle), "the idle connection is closed");
        assert!(echoes(&mut talking));
        assert_eq!(counters.idle_closed.load(Ordering::Relaxed), 1);
        until_open(&counters, 1);
    }
}
