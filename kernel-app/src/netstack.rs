//! The TCP/IP stack (`smoltcp`) on the virtio network device, and the HTTP server on it.
//!
//! The server keeps a fixed set of TCP sockets, all listening on the HTTP port while free, so up
//! to that many connections are served at once (at most [`MAX_CONNECTIONS`]; a SYN beyond them is
//! refused with a reset). Each connected socket drives one [`Conn`]. A socket whose connection
//! ended listens again at once, even from TIME-WAIT, so connection churn does not run out of
//! sockets.
//!
//! # Limits and timeouts
//! - [`MAX_CONNECTIONS`] connections, each with [`SOCKET_BUFFER`] bytes of receive and of send
//!   buffer (the receive buffer is the TCP window; window scaling is used);
//! - a connection with no traffic for [`IDLE_TIMEOUT`] is closed (or reset, if the client does
//!   not take what was sent to it or does not finish closing);
//! - after the last answer of a connection that closes, what the client still sends is read and
//!   dropped until it closes too (or the idle timeout);
//! - a peer that stops acknowledging for [`TCP_TIMEOUT`] is reset by `smoltcp`.
//!
//! # Calls to the aggregator
//! With an aggregator address, [`CALL_SLOTS`] more sockets make the node's own calls
//! ([`crate::avs::Calls`]): each call opens a connection from an ephemeral port, sends one
//! request (a JSON-RPC `POST /`, or a `GET /` probe), reads one response
//! ([`crate::avs::client`]) and closes. A call that has no complete answer after
//! [`CALL_TIMEOUT`] is aborted and reported as failed (the caller retries). Each call's duration,
//! from connecting to its end, is reported with its result.

use crate::avs::client::{self, ResponseReader};
use crate::avs::{Calls, Request};
use crate::cmdline::NetConfig;
use crate::http::{Conn, Handler};
use crate::virtio::net::NetDevice;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Bytes of receive buffer, and of send buffer, of each connection.
pub const SOCKET_BUFFER: usize = 64 * 1024;
/// A connection with no traffic for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A peer that acknowledges nothing for this long is reset.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls to the aggregator made at once.
pub const CALL_SLOTS: usize = 4;
/// Longest time a call may take, from connecting to the complete answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive and send buffer of a call's socket: a request and an answer are well under 1 KiB.
const CALL_BUFFER: usize = 8 * 1024;
/// Ephemeral ports of calls: the IANA dynamic range.
const EPHEMERAL: core::ops::RangeInclusive<u16> = 49152..=65535;

/// A call in flight.
struct Call {
    id: u64,
    request: Vec<u8>,
    sent: usize,
    reader: ResponseReader,
    started: Instant,
    deadline: Instant,
}

/// The client side: the aggregator and the sockets of the calls to it.
struct Client {
    aggregator: core::net::SocketAddrV4,
    /// `Host` header value.
    host: String,
    slots: Vec<(SocketHandle, Option<Call>)>,
    next_port: u16,
}

/// One socket of the server and the connection on it.
struct Slot {
    handle: SocketHandle,
    conn: Option<Conn>,
    idle_at: Instant,
}

/// The interface, its sockets and the HTTP connections on them.
pub struct NetStack {
    iface: Interface,
    dev: NetDevice,
    sockets: SocketSet<'static>,
    slots: Vec<Slot>,
    port: u16,
    stopping: bool,
    client: Option<Client>,
}

impl NetStack {
    /// Brings the interface up with `config` and listens on `port` with `connections` sockets
    /// (clamped to 1..=[`MAX_CONNECTIONS`]); `seed` seeds TCP initial sequence numbers and the
    /// first ephemeral port. With an `aggregator`, calls to it can be made ([`NetStack::call`]).
    pub fn new(
        mut dev: NetDevice,
        config: &NetConfig,
        port: u16,
        connections: usize,
        aggregator: Option<core::net::SocketAddrV4>,
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
                Slot { handle: sockets.add(socket), conn: None, idle_at: now }
            })
            .collect();
        let client = aggregator.map(|aggregator| Client {
            aggregator,
            host: aggregator.to_string(),
            slots: (0..CALL_SLOTS)
                .map(|_| {
                    let rx = tcp::SocketBuffer::new(alloc::vec![0; CALL_BUFFER]);
                    let tx = tcp::SocketBuffer::new(alloc::vec![0; CALL_BUFFER]);
                    let mut socket = tcp::Socket::new(rx, tx);
                    socket.set_nagle_enabled(false);
                    socket.set_ack_delay(None);
                    (sockets.add(socket), None)
                })
                .collect(),
            next_port: EPHEMERAL.start() + (seed % u64::from(EPHEMERAL.end() - EPHEMERAL.start())) as u16,
        });
        NetStack { iface, dev, sockets, slots, port, stopping: false, client }
    }

    /// Connections the server can hold.
    pub fn connections(&self) -> usize {
        self.slots.len()
    }

    /// Processes received frames, timers and the connections; returns whether anything
    /// happened (if so, call again before waiting: answers may be ready to send).
    pub fn poll(&mut self, now: Instant, handler: &mut dyn Handler) -> bool {
        self.dev.maintain();
        let changed =
            self.iface.poll(now, &mut self.dev, &mut self.sockets) == PollResult::SocketStateChanged;
        let served = self.serve(now, handler);
        changed || served
    }

    /// Whether the device has work to do now (see [`NetDevice::has_work`]).
    pub fn has_work(&self) -> bool {
        self.dev.has_work()
    }

    /// How long nothing needs doing unless a frame arrives; `None`: until a frame arrives.
    /// `next_call`: when the next queued call is due, if any.
    pub fn delay(&mut self, now: Instant, next_call: Option<Instant>) -> Option<Duration> {
        let until = |at: Instant| if at > now { at - now } else { Duration::ZERO };
        let timers = self.iface.poll_delay(now, &self.sockets);
        let idle = self.slots.iter().filter(|s| s.conn.is_some()).map(|s| until(s.idle_at));
        let calls = self.client.iter().flat_map(|c| c.slots.iter().filter_map(|(_, call)| call.as_ref()));
        let deadlines = calls.map(|call| until(call.deadline));
        let next_call = next_call.filter(|_| self.client.is_some()).map(until);
        timers.into_iter().chain(idle).chain(deadlines).chain(next_call).min()
    }

    /// Starts the calls that are due and moves the bytes of those in flight; returns whether
    /// anything happened. Lines worth logging about finished calls are printed.
    pub fn call(&mut self, now: Instant, calls: &mut dyn Calls) -> bool {
        let Some(client) = &mut self.client else { return false };
        let now_ms = now.total_millis() as u64;
        let mut progress = false;
        for (handle, slot) in &mut client.slots {
            let socket = self.sockets.get_mut::<tcp::Socket>(*handle);
            let Some(call) = slot else {
                if socket.state() == State::TimeWait {
                    // Our side closed first: the next call uses another port, so the wait
                    // protects nothing here.
                    socket.abort();
                }
                if self.stopping || socket.state() != State::Closed {
                    continue;
                }
                let Some((id, request)) = calls.next_call(now_ms) else { continue };
                let request = match request {
                    Request::Rpc(body) => client::post_request(&client.host, "/", &body),
                    Request::Probe => client::get_request(&client.host, "/"),
                };
                let local = client.next_port;
                client.next_port = if local == *EPHEMERAL.end() { *EPHEMERAL.start() } else { local + 1 };
                let remote = (IpAddress::Ipv4(*client.aggregator.ip()), client.aggregator.port());
                match socket.connect(self.iface.context(), remote, local) {
                    Ok(()) => {
                        let (started, deadline) = (now, now + CALL_TIMEOUT);
                        let reader = ResponseReader::new();
                        *slot = Some(Call { id, request, sent: 0, reader, started, deadline });
                    }
                    Err(e) => {
                        report(calls.call_done(id, Err(alloc::format!("cannot connect: {e}")), now_ms, 0))
                    }
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
                Some(r) => r.map_err(|e| alloc::format!("bad answer from the aggregator: {e:?}")),
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
                slot.idle_at = now + IDLE_TIMEOUT;
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
            if active {
                slot.idle_at = now + IDLE_TIMEOUT;
                progress = true;
            } else if now >= slot.idle_at {
                if conn.finished() || conn.pending_output() > 0 {
                    // Already closing, or the client does not read: give up on it.
                    socket.abort();
                } else {
                    conn.end_input();
                    socket.close();
                    slot.idle_at = now + IDLE_TIMEOUT;
                }
                progress = true;
            }
        }
        progress
    }
}

/// Prints a line about a finished call, if there is one.
fn report(line: Option<String>) {
    if let Some(line) = line {
        crate::println!("{line}");
    }
}
