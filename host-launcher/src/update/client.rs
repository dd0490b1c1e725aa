//! The command's side of a rolling update (`hac-launch --update SPEC`): it sends the request
//! line with the open image's descriptor to the running launcher's control socket, then
//! relays the launcher's answer line by line until the outcome.

use super::{Reply, Request};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The command's exit status for each outcome: 0 done; 1 refused (nothing touched) or the
/// launcher could not be asked; 3 rolled back (the previous image serves again); 4 failed (the
/// previous image did not come back either; the launcher's failover rules apply).
pub fn exit_status(outcome: &str) -> u8 {
    match outcome {
        "done" => 0,
        "rolled_back" => 3,
        "failed" => 4,
        _ => 1,
    }
}

/// Sends `request` as one line, with `image`'s descriptor (`SCM_RIGHTS`), in one `sendmsg`.
pub fn send(conn: &UnixStream, request: &Request, image: &File) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    if line.len() > super::MAX_REQUEST {
        return Err(std::io::Error::other("the request line is too long"));
    }
    let fd: libc::c_int = image.as_raw_fd();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: line.as_mut_ptr().cast(), iov_len: line.len() };
    // SAFETY: an all-zero msghdr is a valid empty header; its pointers are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = space;
    // SAFETY: `control` has room for one cmsghdr carrying one int (CMSG_SPACE), so the first
    // header is non-null and its data within `control`; `header` and what it points to stay
    // valid for the sendmsg call.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize;
        libc::CMSG_DATA(cmsg).cast::<libc::c_int>().write_unaligned(fd);
        libc::sendmsg(conn.as_raw_fd(), &header, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if (sent as usize) < line.len() {
        use std::io::Write;
        (&*conn).write_all(&line[sent as usize..])?;
    }
    Ok(())
}

/// Asks the launcher listening on `socket` to update to `image` as `request` says; `progress`
/// sees each line of its answer. Returns the outcome (`done`, `rolled_back`, `failed`,
/// `refused`), or why the launcher could not be asked.
pub fn run(
    socket: &Path,
    request: &Request,
    image: &File,
    mut progress: impl FnMut(&Reply),
) -> Result<String, String> {
    let conn = UnixStream::connect(socket).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                " (is the spacecore running, with the same state directory?)"
            }
            std::io::ErrorKind::PermissionDenied => " (run as root, as the launcher)",
            _ => "",
        };
        format!("cannot reach the launcher at {}: {e}{hint}", socket.display())
    })?;
    send(&conn, request, image)
        .map_err(|e| format!("cannot send the update to {}: {e}", socket.display()))?;
    for line in BufReader::new(&conn).lines() {
        let line = line.map_err(|e| format!("the launcher's answer broke off: {e}"))?;
        let reply: Reply =
            serde_json::from_str(&line).map_err(|e| format!("unreadable answer {line:?}: {e}"))?;
        progress(&reply);
        if let Some(outcome) = reply.outcome {
            return Ok(outcome);
        }
    }
    Err("the launcher closed the connection before the outcome (did it stop?)".into())
}
