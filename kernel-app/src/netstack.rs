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

use crate::cmdline::NetConfig;
use crate::http::{Conn, Handler};
use crate::virtio::net::NetDevice;
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
}

impl NetStack {
    /// Brings the interface up with `config` and listens on `port` with `connections` sockets
    /// (clamped to 1..=[`MAX_CONNECTIONS`]); `seed` seeds TCP initial sequence numbers.
    pub fn new(
        mut dev: NetDevice,
        config: &NetConfig,
        port: u16,
        connections: usize,
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
        NetStack { iface, dev, sockets, slots, port, stopping: false }
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
    pub fn delay(&mut self, now: Instant) -> Option<Duration> {
        let timers = self.iface.poll_delay(now, &self.sockets);
        let idle = self
            .slots
            .iter()
            .filter(|s| s.conn.is_some())
            .map(|s| if s.idle_at > now { s.idle_at - now } else { Duration::ZERO })
            .min();
        match (timers, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
