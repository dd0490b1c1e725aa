//! How long a connection may take at each point of its request cycle, and which connection
//! makes room when the server is full. Pure: times are milliseconds on whatever monotonic clock
//! the caller uses, so the rules are unit-tested on the host.
//!
//! | phase | the connection is closed when | how |
//! | --- | --- | --- |
//! | [`Phase::Waiting`], first request | no complete head [`HEADER_TIMEOUT_MS`] after it opened | FIN, nothing answered |
//! | [`Phase::Head`] | no complete head [`HEADER_TIMEOUT_MS`] after its first byte (after the opening, for the first request) | FIN, nothing answered |
//! | [`Phase::Waiting`], later requests | no new request [`KEEPALIVE_TIMEOUT_MS`] after the last answer was sent | FIN |
//! | [`Phase::Body`] | no byte for [`STALL_TIMEOUT_MS`] | FIN, the request dropped |
//! | [`Phase::Answering`], [`Phase::Closing`] | no byte moved for [`STALL_TIMEOUT_MS`] | reset |
//!
//! A client that trickles its head a byte at a time gains nothing: the header deadline runs
//! from the head's start, not from the last byte.
//!
//! **Eviction.** When every connection is taken and a new one arrives, the server ends the
//! connection that [`Timer::rank`] puts first rather than refusing the newcomer: a connection
//! already closing (its answers delivered), then the one waiting longest for a request or for
//! the rest of its head, then the one whose body or answer moved least recently. A client that connects and sends
//! its request at once is the newest in its class, so idle and slow connections go before it.

/// Longest time for a complete request head.
pub const HEADER_TIMEOUT_MS: u64 = 10_000;
/// Longest wait for the next request on a kept-alive connection: under the TCP layer's own
/// limit on a silent peer (`crate::netstack::server::TCP_TIMEOUT`, 30 s), so such a connection is
/// closed politely (FIN) rather than reset.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 20_000;
/// Longest time without a byte moving while a body arrives, an answer leaves or a closing
/// connection lingers (a peer that sends nothing at all is reset by the TCP layer at the same
/// time; this one also ends a peer that acknowledges but takes nothing).
pub const STALL_TIMEOUT_MS: u64 = 30_000;

/// Where a connection is in its request cycle ([`super::Conn::phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing of a request received and nothing left to send. `first`: no request yet.
    Waiting {
        /// No request head was complete on this connection yet.
        first: bool,
    },
    /// Part of a request head received.
    Head {
        /// It is the connection's first request.
        first: bool,
    },
    /// A request's body is arriving.
    Body,
    /// An answer is waiting to be sent.
    Answering,
    /// No more requests are read: the connection closes once its answers are sent.
    Closing,
}

/// What to do with a connection past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Read no more requests and close politely (FIN) once what was answered is sent.
    Close,
    /// Reset it: the client does not take what was sent, or does not finish closing.
    Abort,
}

/// One connection's clock: its phase, when the phase started, and when a byte last moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    phase: Phase,
    since: u64,
    progress: u64,
}

impl Timer {
    /// A connection that opened at `now`.
    pub fn new(now: u64) -> Self {
        Timer { phase: Phase::Waiting { first: true }, since: now, progress: now }
    }

    /// Records the connection's phase after a round at `now`; `moved`: bytes came in or went
    /// out in that round.
    pub fn update(&mut self, phase: Phase, moved: bool, now: u64) {
        if phase != self.phase {
            // The first head's deadline runs from the opening, not from its first byte.
            let first_head =
                self.phase == Phase::Waiting { first: true } && phase == Phase::Head { first: true };
            if !first_head {
                self.since = now;
            }
            self.phase = phase;
            self.progress = now;
        }
        if moved {
            self.progress = now;
        }
    }

    /// When the connection is out of time.
    pub fn deadline(&self) -> u64 {
        match self.phase {
            Phase::Waiting { first: true } | Phase::Head { .. } => {
                self.since.saturating_add(HEADER_TIMEOUT_MS)
            }
            Phase::Waiting { first: false } => self.since.saturating_add(KEEPALIVE_TIMEOUT_MS),
            Phase::Body | Phase::Answering | Phase::Closing => self.progress.saturating_add(STALL_TIMEOUT_MS),
        }
    }

    /// What to do once [`Timer::deadline`] has passed.
    pub fn expiry(&self) -> Expiry {
        match self.phase {
            Phase::Waiting { .. } | Phase::Head { .. } | Phase::Body => Expiry::Close,
            Phase::Answering | Phase::Closing => Expiry::Abort,
        }
    }

    /// The order in which connections are evicted to make room: the smallest goes first.
    /// `undelivered`: the socket still holds bytes the client has not acknowledged, so the
    /// connection counts as answering whatever its phase (its answer is not delivered yet).
    pub fn rank(&self, undelivered: bool) -> (u8, u64) {
        if undelivered {
            return (3, self.progress);
        }
        match self.phase {
            Phase::Closing => (0, self.progress),
            Phase::Waiting { .. } | Phase::Head { .. } => (1, self.since),
            Phase::Body => (2, self.progress),
            Phase::Answering => (3, self.progress),
        }
    }
}
