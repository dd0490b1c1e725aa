//! The HTTP server side of the stack.
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
//! listens again before the next frame is read. So idle or slow clients, however many, cannot
//! keep a new client out: only connections all still in their handshake can, and then the
//! newcomer is refused with a reset.
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

use super::{NetStack, millis};
use crate::http::deadline::{Expiry, Timer};
use crate::http::{Conn, Handler};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Bytes of receive buffer, and of send buffer, of each connection.
pub const SOCKET_BUFFER: usize = 64 * 1024;
/// A peer that sends nothing (no data, no acknowledgement) for this long is reset.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(30);

/// One socket of the server and the connection on it.
pub(super) struct Slot {
    pub(super) handle: SocketHandle,
    pub(super) conn: Option<Conn>,
    /// The connection's phase and deadline (meaningless while `conn` is `None`).
    pub(super) timer: Timer,
    /// The connection's rank among all in order of arrival, which breaks ties in eviction.
    pub(super) arrival: u64,
}

impl NetStack {
    /// Sockets that no longer carry a connection listen again (those with a reset still to
    /// send wait for it to go out).
    pub(super) fn relisten(&mut self) {
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
    pub(super) fn make_room(&mut self, now: Instant) -> bool {
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

    /// Moves bytes between the sockets and their connections; returns whether any moved.
    pub(super) fn serve(&mut self, now: Instant, handler: &mut dyn Handler) -> bool {
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
