//! A Linux tap interface for virtio-net: `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR` with a 12-byte
//! `virtio_net_hdr_v1` in front of every frame, non-blocking, and not persistent (the interface
//! disappears when the tap is dropped).
//!
//! Address, netmask, MTU and link state are set with ioctls on an `AF_INET` socket. They act in
//! the network namespace of the **calling thread**, which must be the namespace the tap was
//! created in (a tap lives in the namespace of the thread that opened `/dev/net/tun`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// Length of the virtio-net header in front of each frame.
pub const VNET_HDR_LEN: usize = 12;

const TUN_PATH: &str = "/dev/net/tun";

/// Why a tap could not be opened or configured.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// `/dev/net/tun` cannot be opened.
    #[error("cannot open {TUN_PATH} for tap {name:?}: {source} (root or CAP_NET_ADMIN is needed)")]
    Open { name: String, source: std::io::Error },
    /// The name is not a valid interface name.
    #[error("tap name {name:?} is not valid: expected 1 to 15 ASCII letters, digits, '-', '_', '.' or '%d'")]
    Name { name: String },
    /// An ioctl failed.
    #[error("tap {name}: {what} failed: {source}")]
    Ioctl { name: String, what: &'static str, source: std::io::Error },
    /// The prefix length is not 0..=32.
    #[error("tap {name}: prefix length {prefix_len} is not valid, expected 0 to 32")]
    Prefix { name: String, prefix_len: u8 },
    /// A per-interface sysctl could not be written.
    #[error("cannot write {path}: {source}")]
    Sysctl { path: String, source: std::io::Error },
}

/// An open tap interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Creates a tap named `name_hint` (it may contain `%d`, which the kernel replaces by a free
    /// number; empty lets the kernel choose `tap%d`).
    pub fn open(name_hint: &str) -> Result<Tap, TapError> {
        let valid = name_hint.len() < libc::IFNAMSIZ
            && name_hint.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.%".contains(&b));
        if !valid {
            return Err(TapError::Name { name: name_hint.to_owned() });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_PATH)
            .map_err(|source| TapError::Open { name: name_hint.to_owned(), source })?;
        let mut req = ifreq(name_hint);
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is; `file` is open.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        check(rc, name_hint, "TUNSETIFF")?;
        let name = ifname(&req);
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one c_int, which `hdr_len` is; `file` is open.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len) };
        check(rc, &name, "TUNSETVNETHDRSZ")?;
        Ok(Tap { file, name })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the interface's IPv4 address and netmask (`addr/prefix_len`). Acts in the calling
    /// thread's network namespace.
    pub fn set_ipv4(&self, addr: Ipv4Addr, prefix_len: u8) -> Result<(), TapError> {
        if prefix_len > 32 {
            return Err(TapError::Prefix { name: self.name.clone(), prefix_len });
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
        let sock = inet_socket(&self.name)?;
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_addr = sockaddr(addr);
        self.ioctl(&sock, libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR")?;
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
        self.ioctl(&sock, libc::SIOCSIFNETMASK, &mut req, "SIOCSIFNETMASK")
    }

    /// Keeps the interface when its descriptor closes (`TUNSETPERSIST`), for a tap in a private
    /// network namespace only: closing a tap that is not persistent unregisters the interface
    /// there and then, about 20 ms of the process's exit waiting on the kernel's network
    /// locks, while a persistent one goes with its namespace, which the kernel tears down in
    /// its own worker once the last process and descriptor holding it are gone. In a namespace
    /// that outlives the process it would stay behind.
    pub fn persist_with_namespace(&self) -> Result<(), TapError> {
        // SAFETY: TUNSETPERSIST takes its argument by value; `file` is an open tap.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
        check(rc, &self.name, "TUNSETPERSIST")
    }

    /// Brings the interface up. Acts in the calling thread's network namespace.
    pub fn set_up(&self) -> Result<(), TapError> {
        let sock = inet_socket(&self.name)?;
        let mut req = ifreq(&self.name);
        self.ioctl(&sock, libc::SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS")?;
        // SAFETY: SIOCGIFFLAGS filled `ifru_flags`; all union fields are plain integers anyway.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(&sock, libc::SIOCSIFFLAGS, &mut req, "SIOCSIFFLAGS")
    }

    /// Turns IPv6 off on the interface, so the host sends the guest no router solicitations
    /// or multicast reports (the guest speaks IPv4 only). Acts in the calling thread's network
    /// namespace (sysctls under `/proc/sys/net` are those of the writer's namespace).
    pub fn disable_ipv6(&self) -> Result<(), TapError> {
        let path = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.name);
        match std::fs::write(&path, b"1") {
            Ok(()) => Ok(()),
            // A kernel without IPv6 has nothing to turn off.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(TapError::Sysctl { path, source: e }),
        }
    }

    /// Sets the interface's MTU. Acts in the calling thread's network namespace.
    pub fn set_mtu(&self, mtu: u32) -> Result<(), TapError> {
        let sock = inet_socket(&self.name)?;
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu).unwrap_or(libc::c_int::MAX);
        self.ioctl(&sock, libc::SIOCSIFMTU, &mut req, "SIOCSIFMTU")
    }

    /// The interface's IPv4 address, if it has one. Acts in the calling thread's namespace.
    pub fn ipv4(&self) -> Result<Option<Ipv4Addr>, TapError> {
        let sock = inet_socket(&self.name)?;
        let mut req = ifreq(&self.name);
        // SAFETY: SIOCGIFADDR writes one `ifreq`, which `req` is; `sock` is open.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFADDR, &mut req) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                return Ok(None);
            }
            return Err(TapError::Ioctl { name: self.name.clone(), what: "SIOCGIFADDR", source: err });
        }
        // SAFETY: SIOCGIFADDR filled `ifru_addr`, a plain `sockaddr`.
        let sa = unsafe { req.ifr_ifru.ifru_addr };
        let b = sa.sa_data.map(|c| c as u8);
        Ok(Some(Ipv4Addr::new(b[2], b[3], b[4], b[5])))
    }

    /// Reads one frame (header + Ethernet frame); `WouldBlock` when none is queued.
    pub fn read_frame(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame (header + Ethernet frame) in a single `write`.
    pub fn write_frame(&self, frame: &[u8]) -> std::io::Result<usize> {
        (&self.file).write(frame)
    }

    fn ioctl(
        &self,
        sock: &OwnedFd,
        request: libc::c_ulong,
        req: &mut libc::ifreq,
        what: &'static str,
    ) -> Result<(), TapError> {
        // SAFETY: every request passed here (SIOC[GS]IF*) reads or writes one `ifreq`, which
        // `req` is; `sock` is an open socket.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) };
        check(rc, &self.name, what)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

fn check(rc: libc::c_int, name: &str, what: &'static str) -> Result<(), TapError> {
    if rc < 0 {
        Err(TapError::Ioctl { name: name.to_owned(), what, source: std::io::Error::last_os_error() })
    } else {
        Ok(())
    }
}

/// An all-zero `ifreq` for the interface `name` (at most 15 bytes, checked by the callers).
fn ifreq(name: &str) -> libc::ifreq {
    let mut ifr_name = [0 as libc::c_char; libc::IFNAMSIZ];
    for (dst, src) in ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `ifreq` is plain C data (arrays, integers, a union of those and one pointer) for
    // which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = ifr_name;
    req
}

fn ifname(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req.ifr_name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `addr` as an `AF_INET` `sockaddr` (port 0).
fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let mut sa_data = [0 as libc::c_char; 14];
    for (dst, src) in sa_data[2..6].iter_mut().zip(addr.octets()) {
        *dst = src as libc::c_char;
    }
    libc::sockaddr { sa_family: libc::AF_INET as libc::sa_family_t, sa_data }
}

fn inet_socket(name: &str) -> Result<OwnedFd, TapError> {
    // SAFETY: plain socket creation; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(TapError::Ioctl {
            name: name.to_owned(),
            what: "socket(AF_INET)",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is a new socket nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests;
