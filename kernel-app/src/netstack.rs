//! The TCP/IP stack (`smoltcp`) on the virtio network device, and the HTTP server on it.
//!
//! The server keeps a fixed set of TCP sockets, all listening on the HTTP port while free, so up
//! to that many connections are served at once (at most [`MAX_CONNECTIONS`]). Each connected
//! socket drives one [`Conn`]. A socket whose connection ended listens again at once, even from
//! TIME-WAIT, so connection churn does not run out of sockets.
//!
//! **A full server makes room rather than refusing.** Frames are taken one at a time; when a
//! new connection has taken the last listening socket, the connection that [`Timer::rank`] puts
//! first (one already closing with its answers delivered, else the one waiting longest for a
//! request or for the rest of its head, else the stalest body or answer) is reset and its socket
//! listens again before the next frame is read. So idle or slow clients, however many, cannot keep a new client out: only
//! connections all still in their handshake can, and then the newcomer is refused with a reset.
//!
//! # Limits and timeouts
//! The timeouts are those of [`crate::http::deadline`]:
//! - [`MAX_CONNECTIONS`] connections, each with [`SOCKET_BUFFER`] bytes of receive and of send
//!   buffer (the receive buffer is the TCP window; window scaling is used);
//! - a request head must be complete `HEADER_TIMEOUT_MS` (10 s) after its start (for the first
//!   request, after the connection opened), and a kept-alive connection may wait
//!   `KEEPALIVE_TIMEOUT_MS` (20 s) for its next request: past that it is closed, nothing
//!   answered;
//! - a body that stops arriving for `STALL_TIMEOUT_MS` (30 s) is dropped and the connection
//!   closed; an answer the client does not take, or a close the client does not finish, for as
//!   long, resets it;
//! - after the last answer of a connection that closes, what the client still sends is read and
//!   dropped until it closes too (or the stall timeout);
//! - a peer that sends nothing at all (not even an acknowledgement) for [`TCP_TIMEOUT`] is reset
//!   by `smoltcp`.
//!
//! # Calls to the aggregator
//! With an aggregator address, [`CALL_SLOTS`] more sockets make the node's own calls
//! ([`crate::http::calls::Calls`]): each call opens a connection from an ephemeral port, sends one
//! request (a JSON-RPC `POST /`, or a `GET /` probe), reads one response
//! ([`crate::http::client`]) and closes. A call that has no complete answer after
//! [`CALL_TIMEOUT`] is aborted and reported as failed (the caller retries). Each call's duration,
//! from connecting to its end, is reported with its result.

use crate::cmdline::NetConfig;
use crate::http::calls::{AvsCalls, CallRequest, Calls};
use crate::http::client::{self, HttpResponse, ResponseReader};
use crate::http::deadline::{Expiry, Timer};
use crate::http::{Conn, Handler};
use crate::virtio::net::NetDevice;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Bytes of receive buffer, and of send buffer, of each connection.
pub const SOCKET_BUFFER: usize = 64 * 1024;
/// A peer that sends nothing (no data, no acknowledgement) for this long is reset.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(30);

/// Frames taken in before the connections are served (requests read, answers queued).
const FRAMES_PER_ROUND: usize = 16;

/// Calls to the aggregator made at once.
pub const CALL_SLOTS: usize = 4;
/// Longest time a call may take, from connecting to the complete answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive and send buffer of a call's socket: a request and an answer are well under 1 KiB.
const CALL_BUFFER: usize = 8 * 1024;
/// Ephemeral ports of calls to the aggregator: the lower half of the IANA dynamic range.
const AGGREGATOR_PORTS: core::ops::RangeInclusive<u16> = 49152..=57343;
/// Ephemeral ports of calls to the Ethereum node: the upper half.
const ETH_PORTS: core::ops::RangeInclusive<u16> = 57344..=65535;

/// Calls of the image's AVS made at once to each endpoint.
const AVS_SLOTS: usize = 2;
/// Ephemeral ports of the AVS's calls: below the dynamic range, a share for each endpoint.
const AVS_PORTS: core::ops::RangeInclusive<u16> = 40960..=49151;
/// Receive buffer of an AVS call's socket (answers run to 64 KiB and are read as they come).
const AVS_BUFFER: usize = 16 * 1024;

/// Calls to the Ethereum node made at once: the watcher makes one at a time.
pub const ETH_SLOTS: usize = 1;
/// Longest time a call to the Ethereum node may take (an `eth_getLogs` over a range of blocks).
pub const ETH_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer of the Ethereum node's socket: its answers run to the watcher's limit
/// (`crate::chain::rpc::MAX_BODY`, given to [`NetStack::new`]).
const ETH_BUFFER: usize = 64 * 1024;

/// A call in flight.
struct Call {
    id: u64,
    request: Vec<u8>,
    sent: usize,
    reader: ResponseReader,
    started: Instant,
    deadline: Instant,
}

/// The client side: a server (the aggregator, or the Ethereum node) and the sockets of the calls
/// to it.
struct Client {
    server: core::net::SocketAddrV4,
    /// `Host` header value.
    host: String,
    slots: Vec<(SocketHandle, Option<Call>)>,
    next_port: u16,
    /// Longest answer body accepted.
    max_body: usize,
    /// Longest time a call may take.
    timeout: Duration,
    /// Who the server is, in error messages.
    what: &'static str,
    /// The ephemeral ports its calls use.
    ports: core::ops::RangeInclusive<u16>,
}

impl Client {
    /// A client of `server` with `slots` sockets of `rx`/`tx`-byte buffers added to `sockets`;
    /// its ephemeral ports start at an offset of `seed` in `ports`.
    #[expect(clippy::too_many_arguments, reason = "each is one property of the client")]
    fn new(
        sockets: &mut SocketSet<'static>,
        server: core::net::SocketAddrV4,
        slots: usize,
        (rx, tx): (usize, usize),
        ports: core::ops::RangeInclusive<u16>,
        seed: u64,
        (max_body, timeout): (usize, Duration),
        what: &'static str,
    ) -> Self {
        Client {
            server,
            host: server.to_string(),
            slots: (0..slots)
                .map(|_| {
                    // Untouched memory, as the server's: it costs nothing until a call is made.
                    let rx = tcp::SocketBuffer::new(crate::heap::static_buffer(rx));
                    let tx = tcp::SocketBuffer::new(crate::heap::static_buffer(tx));
                    let mut socket = tcp::Socket::new(rx, tx);
                    socket.set_nagle_enabled(false);
                    socket.set_ack_delay(None);
                    (sockets.add(socket), None)
                })
                .collect(),
            next_port: ports.start() + (seed % u64::from(ports.end() - ports.start())) as u16,
            max_body,
            timeout,
            what,
            ports,
        }
    }
}

/// One socket of the server and the connection on it.
struct Slot {
    handle: SocketHandle,
    conn: Option<Conn>,
    /// The connection's phase and deadline (meaningless while `conn` is `None`).
    timer: Timer,
    /// The connection's rank among all in order of arrival, which breaks ties in eviction.
    arrival: u64,
}

/// The interface, its sockets and the HTTP connections on them.
pub struct NetStack {
    iface: Interface,
    dev: NetDevice,
    sockets: SocketSet<'static>,
    slots: Vec<Slot>,
    port: u16,
    stopping: bool,
    /// Connections reset to make room for a new one.
    evicted: u64,
    /// Connections served so far (the next one's `Slot::arrival`).
    arrivals: u64,
    client: Option<Client>,
    eth: Option<Client>,
    /// The image's AVS's clients, one per named endpoint (`crate::sdk`).
    avs: Vec<(&'static str, Client)>,
}

impl NetStack {
    /// Brings the interface up with `config` and listens on `port` with `connections` sockets
    /// (clamped to 1..=[`MAX_CONNECTIONS`]); `seed` seeds TCP initial sequence numbers and the
    /// first ephemeral port. With an `aggregator`, calls to it can be made ([`NetStack::call`]);
    /// with an `eth_rpc` endpoint, calls to the Ethereum node ([`NetStack::call_eth`]), whose
    /// answers may run to the body limit that comes with it.
    #[expect(clippy::too_many_arguments, reason = "each is one property of the stack")]
    pub fn new(
        mut dev: NetDevice,
        config: &NetConfig,
        port: u16,
        connections: usize,
        aggregator: Option<core::net::SocketAddrV4>,
        eth_rpc: Option<(core::net::SocketAddrV4, usize)>,
        endpoints: &[(&'static str, core::net::SocketAddrV4)],
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(dev.mac())));
        iface_config.random_seed = seed;
        let mut iface = Interface::new(iface_config, &mut dev, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(config.addr), config.prefix));
        });
        if let Some(gateway) = config.gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gateway);
        }
        let mut sockets = SocketSet::new(Vec::new());
        let slots = (0..connections.clamp(1, MAX_CONNECTIONS))
            .map(|_| {
                // Untouched memory: a socket's buffers cost nothing until it carries traffic.
                let rx = tcp::SocketBuffer::new(crate::heap::static_buffer(SOCKET_BUFFER));
                let tx = tcp::SocketBuffer::new(crate::heap::static_buffer(SOCKET_BUFFER));
                let mut socket = tcp::Socket::new(rx, tx);
                // Responses go out whole: do not hold their last segment back.
                socket.set_nagle_enabled(false);
                // Acknowledge at once: the peer is one hop away and its window is small
                // (SOCKET_BUFFER), so a delayed ACK would stall the pipe.
                socket.set_ack_delay(None);
                socket.set_timeout(Some(TCP_TIMEOUT));
                let _ = socket.listen(port);
                Slot { handle: sockets.add(socket), conn: None, timer: Timer::new(millis(now)), arrival: 0 }
            })
            .collect();
        // The two clients take their ephemeral ports from the two halves of the range, so their
        // connections never share a port.
        let client = aggregator.map(|server| {
            let limits = (client::MAX_RESPONSE_BODY, CALL_TIMEOUT);
            let buffers = (CALL_BUFFER, CALL_BUFFER);
            Client::new(
                &mut sockets,
                server,
                CALL_SLOTS,
                buffers,
                AGGREGATOR_PORTS,
                seed,
                limits,
                "the aggregator",
            )
        });
        let eth = eth_rpc.map(|(server, max_body)| {
            let limits = (max_body, ETH_CALL_TIMEOUT);
            let buffers = (ETH_BUFFER, CALL_BUFFER);
            Client::new(
                &mut sockets,
                server,
                ETH_SLOTS,
                buffers,
                ETH_PORTS,
                seed,
                limits,
                "the Ethereum node",
            )
        });
        // The AVS's clients, a share of AVS_PORTS each.
        let share = (AVS_PORTS.end() - AVS_PORTS.start()) / endpoints.len().max(1) as u16;
        let avs = endpoints
            .iter()
            .enumerate()
            .map(|(i, &(name, server))| {
                let first = AVS_PORTS.start() + i as u16 * share;
                let limits =
                    (spacecore_avs::MAX_CALL_BODY, Duration::from_millis(spacecore_avs::CALL_TIMEOUT_MS));
                let buffers = (AVS_BUFFER, CALL_BUFFER);
                let client = Client::new(
                    &mut sockets,
                    server,
                    AVS_SLOTS,
                    buffers,
                    first..=first + share - 1,
                    seed,
                    limits,
                    "a named endpoint",
                );
                (name, client)
            })
            .collect();
        NetStack {
            iface,
            dev,
            sockets,
            slots,
            port,
            stopping: false,
            evicted: 0,
            arrivals: 0,
            client,
            eth,
            avs,
        }
    }

    /// Connections the server can hold.
    pub fn connections(&self) -> usize {
        self.slots.len()
    }

    /// Processes received frames, timers and the connections; returns whether anything
    /// happened (if so, call again before waiting: answers may be ready to send).
    pub fn poll(&mut self, now: Instant, handler: &mut dyn Handler) -> bool {
        self.iface.poll_maintenance(now);
        let (mut changed, mut served) = (false, false);
        loop {
            self.dev.maintain();
            // One frame at a time, so that a connection that took the last listening socket
            // makes room before the next frame: a burst of new connections is not refused.
            let mut frames = 0;
            while frames < FRAMES_PER_ROUND {
                match self.iface.poll_ingress_single(now, &mut self.dev, &mut self.sockets) {
                    PollIngressSingleResult::None => break,
                    PollIngressSingleResult::PacketProcessed => {}
                    PollIngressSingleResult::SocketStateChanged => {
                        changed = true;
                        if self.make_room(now) {
                            // The evicted connection's reset goes out before its socket listens
                            // again.
                            let _ = self.iface.poll_egress(now, &mut self.dev, &mut self.sockets);
                            self.relisten();
                        }
                    }
                }
                frames += 1;
            }
            while self.iface.poll_egress(now, &mut self.dev, &mut self.sockets)
                == PollResult::SocketStateChanged
            {
                changed = true;
            }
            // Requests that arrived are answered before more frames are read: in a burst of new
            // connections, a client that already sent its request is served before enough
            // newcomers arrive to make it the oldest.
            served |= self.serve(now, handler);
            if frames < FRAMES_PER_ROUND {
                return changed || served;
            }
        }
    }

    /// Connections reset so far to make room for a new one.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Sockets that no longer carry a connection listen again (those with a reset still to
    /// send wait for it to go out).
    fn relisten(&mut self) {
        if self.stopping {
            return;
        }
        for slot in &mut self.slots {
            let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            let reset_pending = socket.state() == State::Closed && socket.remote_endpoint().is_some();
            if !socket.is_open() && !reset_pending {
                slot.conn = None;
                let _ = socket.listen(self.port);
            }
        }
    }

    /// When no socket listens any more, resets the connection that goes first in
    /// [`Timer::rank`] (a connection not served yet counts as waiting since `now`); returns
    /// whether one was reset. Connections still in their handshake are left alone.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.stopping {
            return false;
        }
        self.relisten();
        let state = |slot: &Slot| self.sockets.get::<tcp::Socket>(slot.handle).state();
        if self.slots.iter().any(|slot| state(slot) == State::Listen) {
            return false;
        }
        let fresh = Timer::new(millis(now));
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| connected(state(slot)))
            .min_by_key(|(_, slot)| {
                let undelivered = self.sockets.get::<tcp::Socket>(slot.handle).send_queue() > 0;
                match slot.conn {
                    Some(_) => (slot.timer.rank(undelivered), slot.arrival),
                    // Not served yet: the newest of all.
                    None => (fresh.rank(undelivered), u64::MAX),
                }
            })
            .map(|(i, _)| i);
        let Some(i) = victim else { return false };
        let slot = &mut self.slots[i];
        self.sockets.get_mut::<tcp::Socket>(slot.handle).abort();
        slot.conn = None;
        self.evicted += 1;
        true
    }

    /// Whether the device has work to do now (see [`NetDevice::has_work`]).
    pub fn has_work(&self) -> bool {
        self.dev.has_work()
    }

    /// How long nothing needs doing unless a frame arrives; `None`: until a frame arrives.
    /// `next_call`: when the next queued call to the aggregator is due, if any; `next_eth`: the
    /// next call to the Ethereum node.
    pub fn delay(
        &mut self,
        now: Instant,
        next_call: Option<Instant>,
        next_eth: Option<Instant>,
    ) -> Option<Duration> {
        let until = |at: Instant| if at > now { at - now } else { Duration::ZERO };
        let timers = self.iface.poll_delay(now, &self.sockets);
        let idle = self
            .slots
            .iter()
            .filter(|s| s.conn.is_some())
            .map(|s| until(Instant::from_millis(s.timer.deadline().min(i64::MAX as u64) as i64)));
        let clients = self.client.iter().chain(self.eth.iter()).chain(self.avs.iter().map(|(_, c)| c));
        let calls = clients.flat_map(|c| c.slots.iter().filter_map(|(_, call)| call.as_ref()));
        let deadlines = calls.map(|call| until(call.deadline));
        let next_call = next_call.filter(|_| self.client.is_some()).map(until);
        let next_eth = next_eth.filter(|_| self.eth.is_some()).map(until);
        timers.into_iter().chain(idle).chain(deadlines).chain(next_call).chain(next_eth).min()
    }

    /// Starts the calls to the aggregator that are due and moves the bytes of those in flight;
    /// returns whether anything happened. Lines worth logging about finished calls are printed.
    pub fn call(&mut self, now: Instant, calls: &mut dyn Calls) -> bool {
        let Some(client) = &mut self.client else { return false };
        drive(client, &mut self.sockets, &mut self.iface, self.stopping, now, calls)
    }

    /// The same for the calls to the Ethereum node.
    pub fn call_eth(&mut self, now: Instant, calls: &mut dyn Calls) -> bool {
        let Some(client) = &mut self.eth else { return false };
        drive(client, &mut self.sockets, &mut self.iface, self.stopping, now, calls)
    }

    /// The same for the calls of the image's AVS, to each named endpoint.
    pub fn call_avs(&mut self, now: Instant, calls: &mut dyn AvsCalls) -> bool {
        let mut progress = false;
        for (endpoint, client) in &mut self.avs {
            let mut calls = EndpointCalls { endpoint, inner: &mut *calls };
            progress |= drive(client, &mut self.sockets, &mut self.iface, self.stopping, now, &mut calls);
        }
        progress
    }

    /// Stops accepting connections and ends every connection once its answers are sent.
    pub fn begin_shutdown(&mut self) {
        self.stopping = true;
        for slot in &mut self.slots {
            let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            match &mut slot.conn {
                Some(conn) => conn.end_input(),
                None => socket.abort(),
            }
        }
    }

    /// Whether every connection is closed or has nothing left to send.
    pub fn drained(&self) -> bool {
        self.slots.iter().all(|slot| {
            let socket = self.sockets.get::<tcp::Socket>(slot.handle);
            !socket.is_open() || (socket.send_queue() == 0 && slot.conn.as_ref().is_none_or(Conn::finished))
        })
    }

    /// Moves bytes between the sockets and their connections; returns whether any moved.
    fn serve(&mut self, now: Instant, handler: &mut dyn Handler) -> bool {
        let now_ms = millis(now);
        let mut progress = false;
        for slot in &mut self.slots {
            let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            if !socket.is_open() {
                // Closed or TIME-WAIT: the connection is over; listen for the next one.
                slot.conn = None;
                if !self.stopping {
                    let _ = socket.listen(self.port);
                }
                continue;
            }
            if matches!(socket.state(), State::Listen | State::SynReceived) {
                continue;
            }
            if slot.conn.is_none() {
                slot.timer = Timer::new(now_ms);
                slot.arrival = self.arrivals;
                self.arrivals += 1;
            }
            let conn = slot.conn.get_or_insert_with(Conn::new);
            if self.stopping {
                conn.end_input();
            }
            let mut active = false;
            while (conn.wants_input() || conn.is_closing()) && socket.can_recv() {
                // Once closing, what the client still sends is read and dropped, so that it is
                // not stuck sending (say, the rest of a refused body) and sees the answer.
                let taken = socket.recv(|data| {
                    conn.receive(data, handler);
                    (data.len(), data.len())
                });
                match taken {
                    Ok(n) if n > 0 => active = true,
                    _ => break,
                }
            }
            if !socket.may_recv() {
                conn.end_input();
            }
            while !conn.output().is_empty() && socket.can_send() {
                match socket.send_slice(conn.output()) {
                    Ok(n) if n > 0 => {
                        conn.consume(n);
                        active = true;
                    }
                    _ => break,
                }
            }
            if conn.finished() {
                // The FIN follows the data already queued.
                socket.close();
            }
            slot.timer.update(conn.phase(), active, now_ms);
            progress |= active;
            // Checked even when bytes moved: a head trickled a byte at a time still runs out.
            if now_ms >= slot.timer.deadline() {
                match slot.timer.expiry() {
                    // Already closing, or the client does not read: give up on it.
                    Expiry::Abort => socket.abort(),
                    Expiry::Close => {
                        conn.end_input();
                        socket.close();
                        slot.timer.update(conn.phase(), true, now_ms);
                    }
                }
                progress = true;
            }
        }
        progress
    }
}

/// Whether a socket in `state` carries an established connection (one that may be evicted).
fn connected(state: State) -> bool {
    !matches!(state, State::Closed | State::Listen | State::SynSent | State::SynReceived | State::TimeWait)
}

/// `now` in the milliseconds of [`crate::http::deadline`].
fn millis(now: Instant) -> u64 {
    now.total_millis().max(0) as u64
}

/// Prints a line about a finished call, if there is one.
/// The calls of the image's AVS to one endpoint, as [`drive`] makes them.
struct EndpointCalls<'a> {
    endpoint: &'static str,
    inner: &'a mut dyn AvsCalls,
}

impl Calls for EndpointCalls<'_> {
    fn next_call(&mut self, _now_ms: u64) -> Option<(u64, CallRequest)> {
        self.inner.next_call(self.endpoint)
    }

    fn next_due(&self) -> Option<u64> {
        None
    }

    fn call_done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        _now_ms: u64,
        _elapsed_us: u64,
    ) -> Option<String> {
        self.inner.call_done(id, result);
        None
    }
}

fn report(line: Option<String>) {
    if let Some(line) = line {
        crate::println!("{line}");
    }
}

/// Starts the due calls of `client` and moves the bytes of those in flight; returns whether
/// anything happened.
fn drive(
    client: &mut Client,
    sockets: &mut SocketSet<'static>,
    iface: &mut Interface,
    stopping: bool,
    now: Instant,
    calls: &mut dyn Calls,
) -> bool {
    let now_ms = now.total_millis() as u64;

    let mut progress = false;
    for (handle, slot) in &mut client.slots {
        let socket = sockets.get_mut::<tcp::Socket>(*handle);
        let Some(call) = slot else {
            if socket.state() == State::TimeWait {
                // Our side closed first: the next call uses another port, so the wait
                // protects nothing here.
                socket.abort();
            }
            if stopping || socket.state() != State::Closed {
                continue;
            }
            let Some((id, request)) = calls.next_call(now_ms) else { continue };
            let request = match request {
                CallRequest::Rpc(body) => client::post_request(&client.host, "/", &body),
                CallRequest::Probe => client::get_request(&client.host, "/"),
                CallRequest::Http { method, path, body } => {
                    client::request(&method, &client.host, &path, body.as_deref())
                }
            };
            let local = client.next_port;
            let (first, last) = (*client.ports.start(), *client.ports.end());
            client.next_port = if local == last { first } else { local + 1 };
            let remote = (IpAddress::Ipv4(*client.server.ip()), client.server.port());
            match socket.connect(iface.context(), remote, local) {
                Ok(()) => {
                    let (started, deadline) = (now, now + client.timeout);
                    let reader = ResponseReader::with_limit(client.max_body);
                    *slot = Some(Call { id, request, sent: 0, reader, started, deadline });
                }
                Err(e) => report(calls.call_done(id, Err(alloc::format!("cannot connect: {e}")), now_ms, 0)),
            }
            progress = true;
            continue;
        };
        let mut result = None;
        if socket.can_send()
            && call.sent < call.request.len()
            && let Ok(n) = socket.send_slice(&call.request[call.sent..])
        {
            call.sent += n;
            progress |= n > 0;
        }
        while result.is_none() && socket.can_recv() {
            let _ = socket.recv(|data| {
                result = call.reader.receive(data);
                (data.len(), ())
            });
            progress = true;
        }
        if result.is_none() && call.sent > 0 && !socket.may_recv() && socket.state() != State::SynSent {
            // The server closed its side (or the connection is gone): what came is all.
            result = Some(call.reader.finish());
        }
        let outcome = match result {
            Some(r) => r.map_err(|e| alloc::format!("bad answer from {}: {e:?}", client.what)),
            None if !socket.is_open() => Err("connection refused or reset".to_string()),
            None if now >= call.deadline => Err("no answer in time".to_string()),
            None => continue,
        };
        // Done with this connection: close politely if it still stands, else drop it.
        if socket.is_open() && outcome.is_ok() {
            socket.close();
        } else {
            socket.abort();
        }
        let (id, elapsed_us) = (call.id, (now - call.started).total_micros());
        *slot = None;
        report(calls.call_done(id, outcome, now_ms, elapsed_us));
        progress = true;
    }
    progress
}
