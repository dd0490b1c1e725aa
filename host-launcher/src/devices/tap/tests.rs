use super::*;
use std::ffi::CString;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Runs `f` (the body of `test`) on a thread of its own inside a new network namespace; where
/// this host cannot do that, the test is recorded as skipped (`test_support::skip`) instead.
fn in_new_netns(test: &'static str, f: impl FnOnce() + Send + 'static) {
    if !test_support::root(test) {
        return;
    }
    if !std::path::Path::new(TUN_PATH).exists() {
        test_support::skip(test, &format!("needs {TUN_PATH}"));
        return;
    }
    std::thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) only moves this thread into a new network namespace,
        // which disappears with the thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            test_support::skip(test, &format!("unshare(CLONE_NEWNET) failed: {e}"));
            return;
        }
        f();
    })
    .join()
    .expect("tap test thread panicked");
}

fn exists(name: &str) -> bool {
    let c = CString::new(name).unwrap();
    // SAFETY: `c` is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

#[test]
fn bad_names_are_refused() {
    for name in ["waytoolongname123", "a b", "x/y", "é"] {
        match Tap::open(name) {
            Err(TapError::Name { name: n }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn tap_in_a_fresh_namespace_gets_an_address_and_passes_frames() {
    in_new_netns("tap_in_a_fresh_namespace_gets_an_address_and_passes_frames", || {
        let tap = Tap::open("sctest%d").expect("open tap");
        let name = tap.name().to_owned();
        assert!(name.starts_with("sctest"), "{name}");
        assert!(exists(&name));
        assert_eq!(tap.ipv4().unwrap(), None);
        tap.set_mtu(1400).unwrap();
        tap.set_ipv4(Ipv4Addr::new(10, 201, 0, 1), 24).unwrap();
        tap.set_up().unwrap();
        assert_eq!(tap.ipv4().unwrap(), Some(Ipv4Addr::new(10, 201, 0, 1)));
        let out = std::process::Command::new("ip")
            .args(["-o", "-4", "addr", "show", "dev", &name])
            .output()
            .expect("run `ip` (iproute2)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("10.201.0.1/24"), "ip -o addr says: {text}");

        // Sending to a neighbour makes the kernel ask for its MAC on the tap: an ARP request
        // behind a 12-byte virtio-net header.
        let sock = UdpSocket::bind("10.201.0.1:0").unwrap();
        sock.send_to(b"x", "10.201.0.2:9").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        loop {
            match tap.read_frame(&mut buf) {
                Ok(n) => {
                    let eth = &buf[VNET_HDR_LEN..n];
                    if eth.len() >= 42 && eth[12..14] == [0x08, 0x06] {
                        assert_eq!(&eth[38..42], &[10, 201, 0, 2], "ARP target");
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no ARP request on {name}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("read from {name}: {e}"),
            }
        }

        // A frame for nobody (local experimental ethertype) is taken whole.
        let mut frame = vec![0u8; VNET_HDR_LEN + 60];
        frame[VNET_HDR_LEN..VNET_HDR_LEN + 6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        frame[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        frame[VNET_HDR_LEN + 12..VNET_HDR_LEN + 14].copy_from_slice(&[0x88, 0xb5]);
        assert_eq!(tap.write_frame(&frame).unwrap(), frame.len());

        // Not persistent: closing the tap removes the interface.
        drop(tap);
        assert!(!exists(&name), "{name} outlived its tap");
    });
}
