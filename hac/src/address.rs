//! The addresses of `[spec.networking]`: the guest's IPv4 address and subnet,
//! the host side of the tap, and the address published ports listen on; and
//! the aggregator's socket address of `[spec.avs]`.
//! Pure text and arithmetic; errors are the operator-facing messages.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Shortest accepted prefix length of `guest_address`.
pub const MIN_PREFIX_LEN: u8 = 8;
/// Longest accepted prefix length of `guest_address`: a /30 has room for the
/// guest and the host besides the network and broadcast addresses.
pub const MAX_PREFIX_LEN: u8 = 30;

/// What `guest_address` looks like, for messages.
pub(crate) const GUEST_EXPECTED: &str =
    "an IPv4 address with a prefix length from 8 to 30 such as \"10.0.0.2/30\"";
/// What `host_address` looks like, for messages.
pub(crate) const HOST_EXPECTED: &str = "an IPv4 address such as \"10.0.0.1\"";
/// What `publish_address` looks like, for messages.
pub(crate) const PUBLISH_EXPECTED: &str =
    "an IPv4 or IPv6 address such as \"127.0.0.1\", \"0.0.0.0\" or \"::1\"";

/// Parses `"a.b.c.d/len"` and checks that the address can be the guest's: a
/// unicast address that is neither the network nor the broadcast address of
/// its subnet.
pub(crate) fn parse_guest(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let Some((address, prefix)) = text.split_once('/') else {
        return Err(match text.parse::<Ipv4Addr>() {
            Ok(_) => format!("{text:?} has no prefix length; expected {GUEST_EXPECTED}"),
            Err(_) => {
                format!("{text:?} is not an IPv4 address with a prefix length; expected {GUEST_EXPECTED}")
            }
        });
    };
    let Ok(guest) = address.parse::<Ipv4Addr>() else {
        let v6 =
            if address.parse::<std::net::Ipv6Addr>().is_ok() { " (IPv6 is not supported here)" } else { "" };
        return Err(format!(
            "{text:?} is not an IPv4 address with a prefix length{v6}; expected {GUEST_EXPECTED}"
        ));
    };
    let prefix_len = match prefix.parse::<u8>() {
        Ok(len) if prefix.bytes().all(|b| b.is_ascii_digit()) => len,
        _ => return Err(format!("{text:?}: bad prefix length {prefix:?}; expected {GUEST_EXPECTED}")),
    };
    if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&prefix_len) {
        return Err(format!(
            "prefix length /{prefix_len} is out of range; expected {MIN_PREFIX_LEN} to {MAX_PREFIX_LEN} \
             (a /30 has room for the guest and the host)"
        ));
    }
    if let Some(kind) = special(guest) {
        return Err(format!(
            "{guest} is {kind}; expected a unicast address for the guest, such as \"10.0.0.2/30\""
        ));
    }
    let subnet = Subnet::new(guest, prefix_len);
    if let Some(problem) = subnet.edge(guest) {
        return Err(format!(
            "{guest} is {problem}; expected another address of {subnet}, such as \"{}/{prefix_len}\"",
            subnet.first_other_than(guest)
        ));
    }
    Ok((guest, prefix_len))
}

/// What `spec.avs.aggregator` looks like, for messages.
pub(crate) const AGGREGATOR_EXPECTED: &str =
    "an IP address and port such as \"127.0.0.1:8090\" or \"[::1]:8090\"";

/// What `spec.avs.eth_rpc` looks like, for messages.
pub(crate) const ETH_RPC_EXPECTED: &str =
    "an IP address and port such as \"127.0.0.1:8545\" or \"[::1]:8545\"";
/// What `spec.avs.eth_ws` looks like, for messages.
pub(crate) const ETH_WS_EXPECTED: &str =
    "an IP address and port such as \"127.0.0.1:8546\" or \"[::1]:8546\"";

/// Parses the socket address of a named endpoint (`spec.avs.aggregator`,
/// `eth_rpc`, `eth_ws`), which the launcher connects to for the guest: an
/// IPv4 address or a bracketed IPv6 address, a colon and a port 1..=65535.
/// Host names are refused: the launcher resolves nothing, and the guest has
/// no DNS, so a name could only be resolved by the host, once, to an address
/// the spec does not show (and that may change under the relay). Schemes are
/// refused, and so are addresses no TCP connection can go to. `what` names
/// the endpoint ("the aggregator") and `expected` shows its form.
pub(crate) fn parse_endpoint(text: &str, what: &str, expected: &str) -> Result<SocketAddr, String> {
    let address = match text.parse::<SocketAddr>() {
        Ok(address) => address,
        Err(_) => return Err(format!("{}; expected {expected}", socket_problem(text, ENDPOINT_NO_NAMES))),
    };
    let problem = if address.port() == 0 {
        "port 0 cannot be connected to".to_owned()
    } else if address.ip().is_unspecified() {
        format!("{} is the unspecified address, not an address of {what}", address.ip())
    } else if address.ip().is_multicast() || address.ip() == IpAddr::V4(Ipv4Addr::BROADCAST) {
        format!("{} is a multicast or broadcast address, which TCP cannot connect to", address.ip())
    } else {
        return Ok(address);
    };
    Err(format!("{text:?}: {problem}; expected {expected}"))
}

/// Parses an address and port to listen on (`spec.observability.metrics_address`):
/// like the aggregator's, but port 0 (any free port) and the unspecified
/// addresses (every interface) are allowed. Returns the problem, without
/// the expected form.
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let address = text.parse::<SocketAddr>().map_err(|_| socket_problem(text, LISTEN_NO_NAMES))?;
    if address.ip().is_multicast() || address.ip() == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!(
            "{} is a multicast or broadcast address, which cannot be listened on",
            address.ip()
        ));
    }
    Ok(address)
}

/// Why host names are refused for an address to listen on.
const LISTEN_NO_NAMES: &str = "host names are not resolved";
/// Why host names are refused for an endpoint the guest reaches through a relay.
const ENDPOINT_NO_NAMES: &str = "host names are not resolved: the guest has no DNS, and a name \
     the host resolved once could later point elsewhere than the relay goes";

/// Why `text` (which does not parse as a socket address) is not one;
/// `why_no_names` says why a host name is refused.
fn socket_problem(text: &str, why_no_names: &str) -> String {
    if text.is_empty() {
        return "the address is empty".to_owned();
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return format!("{text:?} has a scheme ({scheme}://); write the address and port only");
    }
    if text.contains('/') {
        return format!("{text:?} has a path; write the address and port only");
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        let hint = if ip.is_ipv6() { ", and an IPv6 address goes in brackets before it" } else { "" };
        return format!("{text:?} has no port; add \":PORT\"{hint}");
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'))
        && inner.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return format!("{text:?} has no port; add \":PORT\" after the brackets");
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return format!("{text:?} is not an IP address and port");
    };
    let host_is_ip = host.parse::<Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok());
    let port_is_number = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if host_is_ip {
        format!("{text:?} has a bad port {port:?}; the port is a number from 1 to 65535")
    } else if port_is_number && host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("{text:?}: an IPv6 address with a port is written in brackets, such as \"[{host}]:{port}\"")
    } else if port_is_number && !host.is_empty() && !host.contains(['/', '[', ']', ' ']) {
        format!("{text:?} names a host; write its IP address ({why_no_names})")
    } else {
        format!("{text:?} is not an IP address and port")
    }
}

/// Parses `"a.b.c.d"` (no prefix: the subnet is the guest's).
pub(crate) fn parse_host(text: &str) -> Result<Ipv4Addr, String> {
    if let Some((address, _)) = text.split_once('/')
        && address.parse::<Ipv4Addr>().is_ok()
    {
        return Err(format!(
            "{text:?} has a prefix length; write the address only, such as {address:?} (the subnet \
             is the one of guest_address)"
        ));
    }
    text.parse::<Ipv4Addr>().map_err(|_| {
        let v6 =
            if text.parse::<std::net::Ipv6Addr>().is_ok() { " (IPv6 is not supported here)" } else { "" };
        format!("{text:?} is not an IPv4 address{v6}; expected {HOST_EXPECTED}")
    })
}

/// Why `host` cannot be the host side of the tap: outside the guest's subnet,
/// the guest's own address, or the network or broadcast address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostProblem {
    /// What is wrong, e.g. "10.0.1.1 is not in the guest's subnet 10.0.0.0/30".
    pub(crate) problem: String,
    /// What would do, e.g. "another address of 10.0.0.0/30, such as \"10.0.0.1\"".
    pub(crate) instead: String,
}

/// Checks that `host` can be the host side of the tap: in the guest's
/// subnet, not the guest's address, not the network or broadcast address.
pub(crate) fn check_host(host: Ipv4Addr, guest: Ipv4Addr, prefix_len: u8) -> Result<(), HostProblem> {
    let subnet = Subnet::new(guest, prefix_len);
    let problem = if !subnet.contains(host) {
        format!("{host} is not in the guest's subnet {subnet}")
    } else if host == guest {
        format!("{host} is the guest's address")
    } else if let Some(problem) = subnet.edge(host) {
        format!("{host} is {problem}")
    } else {
        return Ok(());
    };
    let instead = format!("another address of {subnet}, such as \"{}\"", subnet.first_other_than(guest));
    Err(HostProblem { problem, instead })
}

/// Parses an IPv4 or IPv6 address to listen on.
pub(crate) fn parse_publish(text: &str) -> Result<IpAddr, String> {
    let address = match text.parse::<IpAddr>() {
        Ok(address) => address,
        Err(_) => {
            let hint = if let Some(inner) = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'))
                && inner.parse::<std::net::Ipv6Addr>().is_ok()
            {
                format!("write IPv6 addresses without brackets: {inner:?}")
            } else if let Ok(socket) = text.parse::<SocketAddr>() {
                format!(
                    "{text:?} has a port; write the address only, such as \"{}\" (the host ports \
                     are set in [spec.networking.publish])",
                    socket.ip()
                )
            } else {
                format!("{text:?} is not an IP address")
            };
            return Err(format!("{hint}; expected {PUBLISH_EXPECTED}"));
        }
    };
    let unusable = match address {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    if unusable {
        return Err(format!(
            "{address} is a multicast or broadcast address, which cannot be listened on; expected \
             {PUBLISH_EXPECTED}"
        ));
    }
    Ok(address)
}

/// Address ranges that cannot be a tap's address.
fn special(address: Ipv4Addr) -> Option<&'static str> {
    let first = address.octets()[0];
    if first == 0 {
        Some("in 0.0.0.0/8 (\"this network\")")
    } else if address.is_loopback() {
        Some("a loopback address")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if first >= 240 {
        Some("in the reserved range 240.0.0.0/4")
    } else {
        None
    }
}

/// An IPv4 subnet with a prefix length of 8 to 30.
#[derive(Debug, Clone, Copy)]
struct Subnet {
    network: u32,
    mask: u32,
    prefix_len: u8,
}

impl Subnet {
    fn new(address: Ipv4Addr, prefix_len: u8) -> Self {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
        Self { network: u32::from(address) & mask, mask, prefix_len }
    }

    fn broadcast(self) -> u32 {
        self.network | !self.mask
    }

    fn contains(self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask == self.network
    }

    /// Why `address` (in the subnet) cannot be given to an interface.
    fn edge(self, address: Ipv4Addr) -> Option<String> {
        let address = u32::from(address);
        if address == self.network {
            Some(format!("the network address of {self}"))
        } else if address == self.broadcast() {
            Some(format!("the broadcast address of {self}"))
        } else {
            None
        }
    }

    /// The first usable address that is not `taken` (a /30 has two).
    fn first_other_than(self, taken: Ipv4Addr) -> Ipv4Addr {
        let first = self.network + 1;
        Ipv4Addr::from(if first == u32::from(taken) { first + 1 } else { first })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix_len)
    }
}
