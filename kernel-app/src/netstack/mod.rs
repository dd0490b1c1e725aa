//! The TCP/IP stack (`smoltcp`) on the virtio network device: one interface and one socket set,
//! shared by the HTTP server ([`server`]: the node API, the metrics, the AVS's routes) and the
//! AVS's calls ([`calls`]: to the endpoints its spec names).
//!
//! [`NetStack::poll`] takes frames in and serves the connections, [`NetStack::call_avs`] makes
//! the calls, and [`NetStack::delay`] says how long the main loop may wait. The
//! stack knows nothing of what the requests and calls mean: the server hands requests to a
//! [`Handler`], and the calls come from the traits of [`crate::http::calls`].

mod calls;
mod server;

use crate::cmdline::NetConfig;
use crate::http::deadline::Timer;
use crate::http::{Conn, Handler};
use crate::virtio::net::NetDevice;
use alloc::vec::Vec;
use calls::{AVS_BUFFER, AVS_PORTS, AVS_SLOTS, CALL_BUFFER, Client};
pub use server::{MAX_CONNECTIONS, SOCKET_BUFFER};
use server::{Slot, TCP_TIMEOUT};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// Frames taken in before the connections are served (requests read, answers queued).
const FRAMES_PER_ROUND: usize = 16;

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
    /// The image's AVS's clients, one per named endpoint (`crate::sdk`).
    avs: Vec<(&'static str, Client)>,
}

impl NetStack {
    /// Brings the interface up with `config` and listens on `port` with `connections` sockets
    /// (clamped to 1..=[`MAX_CONNECTIONS`]); `seed` seeds TCP initial sequence numbers and the
    /// first ephemeral port. The AVS's calls go to the named `endpoints`
    /// ([`NetStack::call_avs`]).
    pub fn new(
        mut dev: NetDevice,
        config: &NetConfig,
        port: u16,
        connections: usize,
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
        // The AVS's clients, a share of AVS_PORTS each.
        let share = (AVS_PORTS.end() - AVS_PORTS.start()) / endpoints.len().max(1) as u16;
        let avs = endpoints
            .iter()
            .enumerate()
            .map(|(i, &(name, server))| {
                let first = AVS_PORTS.start() + i as u16 * share;
                let limits =
                    (spacecore_avs::MAX_REPLY, Duration::from_millis(spacecore_avs::CALL_TIMEOUT_MS));
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
        NetStack { iface, dev, sockets, slots, port, stopping: false, evicted: 0, arrivals: 0, avs }
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

    /// Whether the device has work to do now (see [`NetDevice::has_work`]).
    pub fn has_work(&self) -> bool {
        self.dev.has_work()
    }

    /// How long nothing needs doing unless a frame arrives; `None`: until a frame arrives.
    /// `next_avs`: when the AVS's timer is due, if it is.
    pub fn delay(&mut self, now: Instant, next_avs: Option<Instant>) -> Option<Duration> {
        let until = |at: Instant| if at > now { at - now } else { Duration::ZERO };
        let timers = self.iface.poll_delay(now, &self.sockets);
        let idle = self
            .slots
            .iter()
            .filter(|s| s.conn.is_some())
            .map(|s| until(Instant::from_millis(s.timer.deadline().min(i64::MAX as u64) as i64)));
        let calls = self.avs.iter().flat_map(|(_, c)| c.slots.iter().filter_map(|(_, call)| call.as_ref()));
        let deadlines = calls.map(|call| until(call.deadline));
        timers.into_iter().chain(idle).chain(deadlines).chain(next_avs.map(until)).min()
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
}

/// `now` in the milliseconds of [`crate::http::deadline`].
fn millis(now: Instant) -> u64 {
    now.total_millis().max(0) as u64
}
