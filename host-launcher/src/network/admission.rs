//! The flood rules of a relay, as pure functions: whether a new connection is relayed, which
//! open connection makes room for it, and when an idle one is closed. Times are milliseconds on
//! the caller's monotonic clock; [`super::relay`] applies the rules to real sockets.
//!
//! A new connection from `source` is, in this order:
//! 1. refused when `source` already has [`Limits::per_source`] connections relayed, so one
//!    address never takes more than its share of the slots;
//! 2. relayed when fewer than [`Limits::max`] connections are;
//! 3. otherwise, with [`Limits::evict`], relayed after the open connection that has been idle
//!    longest (no byte either way) is closed; without it, refused.
//!
//! So a flood of idle connections from many addresses churns through the slots, oldest first,
//! and a client that connects and talks at once is never the one closed; a flood from one
//! address is held to its share and refused beyond it.

use std::net::IpAddr;
use std::time::Duration;

/// A relay's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections relayed at once.
    pub max: usize,
    /// Connections relayed at once from one source address.
    pub per_source: usize,
    /// When `max` connections are relayed: close the one idle longest to make room for a new
    /// one (`true`), or refuse the new one (`false`).
    pub evict: bool,
    /// A connection with no byte moving either way for this long is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A target that refuses the connection is tried again, with short pauses, until the
    /// connect timeout (`true`), or the client's connection is closed at once (`false`). A
    /// guest whose sockets are all in the middle of handshakes during a burst refuses for a few
    /// milliseconds; so does one that is being restarted.
    pub retry_refused: bool,
    /// The connection to the target is made only once the client has sent something (`true`),
    /// so clients that connect and stay silent never take a socket of the target; or at once
    /// (`false`), for protocols where the server speaks first.
    pub connect_on_data: bool,
}

/// What the relay knows of one open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// The relay's number for it.
    pub id: u64,
    /// The client's address.
    pub source: IpAddr,
    /// When a byte last moved either way (or it was accepted), in milliseconds.
    pub last_active_ms: u64,
}

/// The decision on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Relay it.
    Admit,
    /// Close the open connection with this number, then relay the new one.
    Evict(u64),
    /// Refuse it: its source has [`Limits::per_source`] connections relayed.
    PerSourceLimit,
    /// Refuse it: [`Limits::max`] connections are relayed and none is evicted.
    Full,
}

/// Decides on a new connection from `source`, given the connections relayed now.
pub fn admit(limits: &Limits, source: IpAddr, open: &[Open]) -> Admission {
    let source = source.to_canonical();
    if open.iter().filter(|o| o.source.to_canonical() == source).count() >= limits.per_source {
        return Admission::PerSourceLimit;
    }
    if open.len() < limits.max {
        return Admission::Admit;
    }
    if !limits.evict {
        return Admission::Full;
    }
    match open.iter().min_by_key(|o| (o.last_active_ms, o.id)) {
        Some(oldest) => Admission::Evict(oldest.id),
        None => Admission::Full, // `max` is 0
    }
}

/// For a connection last active at `last_active_ms`, under the idle timeout `idle_timeout`
/// ([`Limits::idle_timeout`]): `None` if it is out of time at `now_ms` (close it), else how long
/// it may stay idle from now. Without an idle timeout it never runs out, and
/// `Some(Duration::MAX)` is returned.
pub fn idle_left(idle_timeout: Option<Duration>, last_active_ms: u64, now_ms: u64) -> Option<Duration> {
    let Some(timeout) = idle_timeout else { return Some(Duration::MAX) };
    let idle = Duration::from_millis(now_ms.saturating_sub(last_active_ms));
    timeout.checked_sub(idle).filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max: 4,
        per_source: 2,
        evict: true,
        idle_timeout: Some(Duration::from_secs(60)),
        retry_refused: false,
        connect_on_data: false,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn open(id: u64, source: &str, last_active_ms: u64) -> Open {
        Open { id, source: ip(source), last_active_ms }
    }

    #[test]
    fn a_source_is_held_to_its_share_even_with_free_slots() {
        let table = [open(1, "192.0.2.1", 0), open(2, "192.0.2.1", 5)];
        assert_eq!(admit(&LIMITS, ip("192.0.2.1"), &table), Admission::PerSourceLimit);
        // The same address written as IPv4-mapped IPv6 is the same source.
        assert_eq!(admit(&LIMITS, ip("::ffff:192.0.2.1"), &table), Admission::PerSourceLimit);
        assert_eq!(admit(&LIMITS, ip("192.0.2.2"), &table), Admission::Admit);
    }

    #[test]
    fn a_full_relay_closes_the_connection_idle_longest() {
        let table = [
            open(1, "192.0.2.1", 300),
            open(2, "192.0.2.2", 100),
            open(3, "192.0.2.3", 200),
            open(4, "192.0.2.4", 100),
        ];
        // 2 and 4 are both idle since 100: the older number goes first.
        assert_eq!(admit(&LIMITS, ip("192.0.2.9"), &table), Admission::Evict(2));
        // The per-source limit comes first: a full relay does not evict for a source at its
        // limit.
        let crowded = [table[0], table[1], table[2], open(5, "192.0.2.1", 400)];
        assert_eq!(admit(&LIMITS, ip("192.0.2.1"), &crowded), Admission::PerSourceLimit);
        // Without eviction, a full relay refuses.
        let no_evict = Limits { evict: false, ..LIMITS };
        assert_eq!(admit(&no_evict, ip("192.0.2.9"), &table), Admission::Full);
        let nothing = Limits { max: 0, ..LIMITS };
        assert_eq!(admit(&nothing, ip("192.0.2.9"), &[]), Admission::Full);
    }

    #[test]
    fn idle_connections_run_out_after_the_idle_timeout() {
        assert_eq!(idle_left(LIMITS.idle_timeout, 1_000, 1_000), Some(Duration::from_secs(60)));
        assert_eq!(idle_left(LIMITS.idle_timeout, 1_000, 41_000), Some(Duration::from_secs(20)));
        assert_eq!(idle_left(LIMITS.idle_timeout, 1_000, 61_000), None);
        assert_eq!(idle_left(LIMITS.idle_timeout, 1_000, 99_000), None);
        // Activity recorded after `now` was read (another thread) counts as no idleness.
        assert_eq!(idle_left(LIMITS.idle_timeout, 5_000, 1_000), Some(Duration::from_secs(60)));
        assert_eq!(idle_left(None, 0, u64::MAX), Some(Duration::MAX));
    }
}
