//! Turns a plan's storage and networking into devices: the disk file, the tap in the
//! spacecore's private network namespace, the published ports, and the relays to the named
//! endpoints (the AVS aggregator, the Ethereum node). Also the guest's view of them, as
//! `spacecore.*` command-line words.

use crate::devices::{BlockConfig, BlockDevice, DiskLimits, NetDevice, NetLimits, Tap, VirtioDevice};
use crate::network::forward::{self, Published};
use crate::network::netns::Netns;
use crate::network::outbound::{self, Egress};
use hac::Plan;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Why a device could not be set up; each message names the device and the spec key.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The disk.
    #[error("disk (spec.resources.storage): {0}")]
    Disk(crate::devices::DeviceError),
    /// The namespace.
    #[error("network: {0}")]
    Netns(#[from] crate::network::netns::NetnsError),
    /// The tap or the NIC.
    #[error("network (spec.networking): {0}")]
    Nic(String),
    /// A published port.
    #[error("spec.networking.inbound_ports: {0}")]
    Publish(#[from] forward::ForwardError),
    /// The relay to a named endpoint (the message names its key, e.g. `spec.avs.aggregator`).
    #[error("{0}")]
    Egress(#[from] outbound::OutboundError),
}

/// IP MTU of the point-to-point link between the host and the guest. It is private to the
/// spacecore's namespace, so jumbo frames are safe; the guest uses the same (9014-byte frames).
pub const LINK_MTU: u32 = 9000;

/// What `attach` set up. Dropping it closes the published ports' listeners' namespace handle;
/// the tap and the namespace go when the devices and the process go.
#[derive(Default)]
pub struct Attached {
    /// The devices, in window order.
    pub devices: Vec<Box<dyn VirtioDevice>>,
    /// `spacecore.*` words telling the guest its addresses and ports.
    pub cmdline: Vec<String>,
    /// The disk file, if any.
    pub disk: Option<PathBuf>,
    /// The published ports.
    pub published: Vec<Published>,
    /// The relays to the named endpoints (`Plan::egress`), in plan order: the aggregator first.
    pub egress: Vec<Egress>,
    /// The spacecore's network namespace, where the guest's address is reachable.
    pub netns: Option<Arc<Netns>>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let types: Vec<u32> = self.devices.iter().map(|d| d.device_type()).collect();
        f.debug_struct("Attached")
            .field("device_types", &types)
            .field("cmdline", &self.cmdline)
            .field("disk", &self.disk)
            .field("published", &self.published)
            .field("egress", &self.egress)
            .field("netns", &self.netns)
            .finish()
    }
}

/// The directory holding each spacecore's state (`<dir>/<name>/disk.img`):
/// `$SPACECORE_STATE_DIR`, else `/var/lib/spacecore` for root, else
/// `$XDG_STATE_HOME/spacecore` or `~/.local/state/spacecore`.
pub fn state_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env("SPACECORE_STATE_DIR") {
        return dir;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/spacecore");
    }
    env("XDG_STATE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("spacecore")
}

/// The guest port served over HTTP: the inbound port named `HTTP` (any case), if any.
pub fn http_port(plan: &Plan) -> Option<u16> {
    plan.network.http_port()
}

/// Sets up the plan's disk and network; the NIC has the MAC address `guest_mac` ([`mac`] of the
/// spacecore's name, or a snapshot's: `crate::launch`).
pub fn attach(plan: &Plan, guest_mac: [u8; 6]) -> Result<Attached, AttachError> {
    let mut attached =
        Attached { cmdline: vec![format!("spacecore.name={}", plan.name)], ..Default::default() };
    if plan.storage_bytes > 0 {
        let path = plan.disk.path.clone().unwrap_or_else(|| state_dir().join(&plan.name).join("disk.img"));
        let config = BlockConfig {
            path: path.clone(),
            size_bytes: plan.storage_bytes,
            read_only: plan.disk.read_only,
            resize: plan.disk.resize,
        };
        let limits = DiskLimits { iops: plan.disk.iops, bytes_per_s: plan.disk.bandwidth_bytes_per_s };
        let disk = BlockDevice::open(&config).map_err(AttachError::Disk)?.with_limits(limits);
        attached.devices.push(Box::new(disk));
        attached.disk = Some(path);
    }

    let net = &plan.network;
    let netns = Arc::new(Netns::create()?);
    let (host, prefix) = (net.host_address, net.prefix_len);
    let guest = net.guest_address;
    let tap = netns
        .run(|| -> Result<Tap, String> {
            let tap = Tap::open("sc0").map_err(|e| e.to_string())?;
            // The namespace is this launcher's alone and dies with it.
            tap.persist_with_namespace().map_err(|e| e.to_string())?;
            tap.set_ipv4(host, prefix).map_err(|e| e.to_string())?;
            tap.set_mtu(LINK_MTU).map_err(|e| e.to_string())?;
            tap.disable_ipv6().map_err(|e| e.to_string())?;
            tap.set_up().map_err(|e| e.to_string())?;
            pin_neighbour(tap.name(), guest, guest_mac).map_err(|e| {
                format!("cannot pin the guest's neighbour entry {guest} on {}: {e}", tap.name())
            })?;
            Ok(tap)
        })?
        .map_err(AttachError::Nic)?;
    let limits = NetLimits {
        ingress_bps: net.ingress_bps,
        egress_bps: net.egress_bps,
        bandwidth_bps: net.bandwidth_limit_bps,
    };
    let nic = NetDevice::new(tap, guest_mac, limits).map_err(|e| AttachError::Nic(e.to_string()))?;
    attached.devices.push(Box::new(nic));
    attached.cmdline.push(format!("spacecore.ip={}/{prefix}", net.guest_address));
    attached.cmdline.push(format!("spacecore.gw={host}"));
    if let Some(port) = http_port(plan) {
        attached.cmdline.push(format!("spacecore.http={port}"));
    }
    // The guest calls the host side of its tap on each endpoint's port; this thread is in the
    // launcher's namespace, where the relays connect to the endpoints from. An isolated spacecore
    // gets no relay at all (the spec parser refuses one that names endpoints; this holds anyway).
    let endpoints: &[hac::Endpoint] =
        if net.network_type == hac::NetworkType::Isolated { &[] } else { &plan.egress };
    for endpoint in endpoints {
        let listen = SocketAddr::new(host.into(), endpoint.guest_port);
        let relay = outbound::start(&netns, endpoint.name, listen, endpoint.address)?;
        attached.cmdline.push(endpoint_word(endpoint.name, relay.guest_side));
        attached.egress.push(relay);
    }
    if let Some(avs) = &plan.avs {
        attached.cmdline.push(scheme_word(avs.scheme));
        attached.cmdline.extend(chain_words(avs));
    }
    for port in &net.inbound_ports {
        let host = SocketAddr::new(net.publish_address, port.host_port);
        let guest = SocketAddr::new(net.guest_address.into(), port.port);
        attached.published.push(forward::publish(&port.name, host, guest, netns.clone())?);
    }
    attached.netns = Some(netns);
    Ok(attached)
}

/// The command-line word telling the guest where to call the endpoint `name`, at its
/// in-namespace address: `spacecore.aggregator=ADDRESS:PORT` for the aggregator (the word guests
/// have always read), `spacecore.endpoint.NAME=ADDRESS:PORT` for the others.
pub fn endpoint_word(name: &str, guest_side: SocketAddr) -> String {
    if name == "aggregator" {
        format!("spacecore.aggregator={guest_side}")
    } else {
        format!("spacecore.endpoint.{name}={guest_side}")
    }
}

/// The command-line word telling the guest the scheme of its operator key:
/// `spacecore.scheme=bn254` or `spacecore.scheme=bls12-381`.
pub fn scheme_word(scheme: hac::SignatureScheme) -> String {
    format!("spacecore.scheme={scheme}")
}

/// The command-line words telling the guest where its tasks come from: which TaskManager's
/// tasks to read from the chain, after how many confirmations, and whose signature a pushed
/// task must carry (`spacecore.task_manager=0x…`, `spacecore.confirmations=N`,
/// `spacecore.task_signer=0x…`), each only when the spec sets it.
pub fn chain_words(avs: &hac::AvsPlan) -> Vec<String> {
    let hex = |address: &[u8; 20]| address.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut words = Vec::new();
    if let Some(address) = &avs.task_manager {
        words.push(format!("spacecore.task_manager=0x{}", hex(address)));
    }
    if let Some(n) = avs.confirmations {
        words.push(format!("spacecore.confirmations={n}"));
    }
    if let Some(address) = &avs.task_signer {
        words.push(format!("spacecore.task_signer=0x{}", hex(address)));
    }
    words
}

/// Pins the neighbour entry of `addr` at `mac` on the interface `dev` of the calling thread's
/// network namespace, permanent (`SIOCSARP` with `ATF_PERM`): the host never asks the guest for
/// its MAC, and the entry does not count towards the kernel's limit on neighbour entries
/// (`net.ipv4.neigh.default.gc_thresh3`, 1024 by default), which holds for the dynamic entries
/// of every namespace of the host together. With the guests' entries learnt by ARP, a host with
/// more than about a thousand spacecores overflowed it ("neighbor table overflow!"): packets to
/// a guest whose entry could not be made were dropped, and connections to it stalled for 1 to
/// 16 s of retransmissions.
fn pin_neighbour(dev: &str, addr: Ipv4Addr, mac: [u8; 6]) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: `arpreq` is plain C data (sockaddrs, an integer, a byte array) for which all-zero
    // bytes are a valid value.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };
    req.arp_pa.sa_family = libc::AF_INET as libc::sa_family_t;
    // A sockaddr_in in a sockaddr: the port (2 bytes), then the address.
    for (dst, src) in req.arp_pa.sa_data[2..6].iter_mut().zip(addr.octets()) {
        *dst = src as libc::c_char;
    }
    req.arp_ha.sa_family = libc::ARPHRD_ETHER;
    for (dst, src) in req.arp_ha.sa_data.iter_mut().zip(mac) {
        *dst = src as libc::c_char;
    }
    req.arp_flags = libc::ATF_PERM | libc::ATF_COM;
    for (dst, src) in req.arp_dev.iter_mut().zip(dev.bytes().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    // SAFETY: plain socket creation; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCSARP reads one `arpreq`, which `req` is; `sock` is an open AF_INET socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSARP, &req as *const libc::arpreq) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A locally administered unicast MAC derived from the spacecore's name (stable across
/// restarts, so the host's neighbour entries stay valid).
pub fn mac(name: &str) -> [u8; 6] {
    // FNV-1a: a fixed, dependency-free hash; uniqueness only matters within one namespace.
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let b = hash.to_le_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the test `name` can make namespaces and taps here (root, `/dev/net/tun`); if
    /// not, it is reported as skipped.
    fn can_make_taps(name: &str) -> bool {
        if !test_support::root(name) {
            return false;
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            test_support::skip(name, "needs /dev/net/tun");
            return false;
        }
        true
    }

    #[test]
    fn the_guests_neighbour_entry_is_pinned_and_permanent() {
        if !can_make_taps("the_guests_neighbour_entry_is_pinned_and_permanent") {
            return;
        }
        let netns = Netns::create().unwrap();
        let entries = netns
            .run(|| {
                let tap = Tap::open("sc0").unwrap();
                tap.set_ipv4("10.0.0.1".parse().unwrap(), 30).unwrap();
                tap.set_up().unwrap();
                let mac = mac("spacecore-sample");
                pin_neighbour(tap.name(), "10.0.0.2".parse().unwrap(), mac).unwrap();
                assert!(pin_neighbour("nosuchdev", "10.0.0.2".parse().unwrap(), mac).is_err());
                // /proc/net/arp of this thread's namespace: address, type, flags (0x6: ATF_COM and
                // ATF_PERM), MAC, mask, device.
                let arp = std::fs::read_to_string("/proc/thread-self/net/arp").unwrap();
                let want = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
                (arp, want)
            })
            .unwrap();
        let (arp, want) = entries;
        let line = arp.lines().find(|l| l.starts_with("10.0.0.2 ")).unwrap_or_else(|| panic!("{arp}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[2], "0x6", "{line}");
        assert_eq!(fields[3], want, "{line}");
        assert_eq!(fields[5], "sc0", "{line}");
    }

    #[test]
    fn the_tap_is_left_to_its_namespace_when_its_descriptor_closes() {
        if !can_make_taps("the_tap_is_left_to_its_namespace_when_its_descriptor_closes") {
            return;
        }
        let index = |name: &str| {
            let name = std::ffi::CString::new(name).unwrap();
            // SAFETY: `name` is a NUL-terminated string; the call only reads it.
            unsafe { libc::if_nametoindex(name.as_ptr()) }
        };
        let netns = Netns::create().unwrap();
        let (plain, persistent) = netns
            .run(|| {
                // A tap that is not persistent is unregistered as its descriptor closes (the
                // slow part of a launcher's exit); a persistent one stays, for the namespace's
                // own teardown to remove.
                drop(Tap::open("plain0").unwrap());
                let tap = Tap::open("sc0").unwrap();
                tap.persist_with_namespace().unwrap();
                drop(tap);
                (index("plain0"), index("sc0"))
            })
            .unwrap();
        assert_eq!(plain, 0, "a closed tap that is not persistent is gone");
        assert_ne!(persistent, 0, "a persistent tap stays in its namespace");
    }

    #[test]
    fn macs_are_local_unicast_and_stable() {
        let a = mac("spacecore-sample");
        assert_eq!(a[0] & 0b11, 0b10, "locally administered, unicast");
        assert_eq!(a, mac("spacecore-sample"));
        assert_ne!(a, mac("other"));
    }

    #[test]
    fn endpoint_words_give_the_in_namespace_address() {
        let word = endpoint_word("aggregator", "10.0.0.1:8090".parse().unwrap());
        assert_eq!(word, "spacecore.aggregator=10.0.0.1:8090", "the aggregator keeps its word");
        let word = endpoint_word("eth_rpc", "10.0.0.1:8545".parse().unwrap());
        assert_eq!(word, "spacecore.endpoint.eth_rpc=10.0.0.1:8545");
        let word = endpoint_word("eth_ws", "192.168.77.1:8546".parse().unwrap());
        assert_eq!(word, "spacecore.endpoint.eth_ws=192.168.77.1:8546");
    }

    #[test]
    fn the_scheme_word_names_the_scheme() {
        assert_eq!(scheme_word(hac::SignatureScheme::Bn254), "spacecore.scheme=bn254");
        let mut avs = hac::AvsPlan {
            aggregator: "127.0.0.1:8090".parse().unwrap(),
            keystore_password_file: None,
            scheme: hac::SignatureScheme::Bn254,
            ecdsa_keystore_password_file: None,
            eth_rpc: Some("127.0.0.1:8545".parse().unwrap()),
            eth_ws: None,
            task_manager: None,
            confirmations: None,
            task_signer: None,
        };
        assert!(chain_words(&avs).is_empty());
        avs.task_signer = Some([0xcd; 20]);
        assert_eq!(chain_words(&avs), [format!("spacecore.task_signer=0x{}", "cd".repeat(20))]);
        avs.task_signer = None;
        avs.task_manager = Some([0xab; 20]);
        avs.confirmations = Some(0);
        assert_eq!(
            chain_words(&avs),
            [format!("spacecore.task_manager=0x{}", "ab".repeat(20)), "spacecore.confirmations=0".to_owned()]
        );
        assert_eq!(scheme_word(hac::SignatureScheme::Bls12381), "spacecore.scheme=bls12-381");
    }

    #[test]
    fn a_busy_aggregator_port_is_an_error_naming_the_key() {
        let error = AttachError::from(outbound::OutboundError::Bind {
            name: "aggregator".into(),
            addr: "10.0.0.1:8090".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        });
        let text = error.to_string();
        assert!(text.starts_with("spec.avs.aggregator: cannot listen on 10.0.0.1:8090"), "{text}");
    }
}
