//! The launcher's side of a rolling update: the control socket, bound before the launcher
//! confines itself, and the update thread that serves it (one update at a time: a request
//! during an update is refused).
//!
//! The thread lives in the spacecore's network namespace (entered before its filter is
//! installed), so it calls the new guest's health endpoint directly, not through the published
//! port, which holds connections during the switch. It runs the `update` seccomp list
//! ([`crate::jail::Kind::Update`]): a relay's calls, `recvmsg` (`MSG_CMSG_CLOEXEC`) for the
//! image's descriptor, and `lseek`. The supervisor boots the images ([`super::Updates`]).

use super::{MAX_REQUEST, NewImage, Phase, Reply, Request, Run, Updates};
use crate::metrics::{HEALTH_PATH, Stats};
use crate::network::forward::ForwardCounters;
use crate::network::guest_http;
use crate::network::netns::Netns;
use crate::output::{Level, Log};
use crate::vmm::Outcome;
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The signer's health endpoint: `200` once the operator key is loaded.
const SIGNER_HEALTH_PATH: &str = "/eigen/node/services/signer/health";
/// How long the command may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two health checks of a new guest.
const CHECK_PAUSE: Duration = Duration::from_millis(1);

/// Binds the control socket at `path` (its directory made mode 0700, the socket 0600), before
/// the launcher confines itself. A socket left by a launcher that is gone is replaced; one a
/// live launcher answers on is an error (two launchers of one name in one state directory).
pub fn listen(path: &Path) -> Result<UnixListener, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
    match UnixStream::connect(path) {
        Ok(_) => return Err(format!("another launcher answers on {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => {
            let _ = std::fs::remove_file(path);
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    Ok(listener)
}

/// What the update thread works with.
#[derive(Debug)]
pub struct Context {
    /// The shared state with the supervisor.
    pub updates: Arc<Updates>,
    /// The launcher's log.
    pub log: Log,
    /// The counters the metrics read.
    pub stats: Arc<Stats>,
    /// The published ports' relays, held during the switch.
    pub published: Vec<Arc<ForwardCounters>>,
    /// The guest's HTTP address inside the namespace (none without an HTTP port: ready is
    /// healthy then).
    pub guest_http: Option<SocketAddr>,
    /// Whether the spacecore signs (`[spec.avs]`): its signer must answer 200 too.
    pub signer: bool,
    /// Guest memory, for the trial load of the new image.
    pub memory_bytes: u64,
    /// How long relayed connections get to finish before the old guest is stopped.
    pub drain: Duration,
}

/// Starts the update thread on `listener`, inside `netns` when there is one. Returns once the
/// thread is in the namespace (before the launcher confines itself, which forbids `setns`).
pub fn start(listener: UnixListener, context: Context, netns: Option<Arc<Netns>>) -> std::io::Result<()> {
    let (entered, wait) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("update".into()).spawn(move || {
        let inside = netns.as_ref().is_none_or(|ns| ns.enter().is_ok());
        let _ = entered.send(inside);
        crate::jail::enter(crate::jail::Kind::Update);
        if !inside {
            context
                .log
                .launcher("update: cannot enter the spacecore's network namespace; updates are refused");
        }
        let context = Arc::new(context);
        for conn in listener.incoming() {
            let Ok(conn) = conn else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            // Each request on a thread of its own (which keeps this thread's namespace and
            // filter), so that a second one during an update is refused at once rather than
            // queued behind it.
            let context = context.clone();
            let spawned = std::thread::Builder::new()
                .name("update-request".into())
                .spawn(move || serve(conn, &context, inside));
            if spawned.is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    })?;
    match wait.recv() {
        Ok(_) => Ok(()),
        Err(_) => Err(std::io::Error::other("the update thread ended at start")),
    }
}

/// The answer to the command, line by line; a command that went away is no reason to stop.
struct Answer {
    conn: UnixStream,
}

impl Answer {
    fn line(&mut self, message: &str, outcome: Option<&str>) {
        let reply = Reply { message: message.into(), outcome: outcome.map(Into::into) };
        let mut text = serde_json::to_string(&reply).unwrap_or_default();
        text.push('\n');
        let _ = self.conn.write_all(text.as_bytes());
    }
}

fn serve(conn: UnixStream, context: &Context, inside: bool) {
    let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
    let received = receive(&conn);
    let mut answer = Answer { conn };
    let (request, file) = match received {
        Ok(got) => got,
        // A connection closed without a word: another launcher checking whether this socket
        // is alive ([`listen`]). Nothing to say.
        Err(why) if why.is_empty() => return,
        Err(why) => return refuse(context, &mut answer, &why),
    };
    if !inside {
        return refuse(context, &mut answer, "the update thread is not in the spacecore's network namespace");
    }
    if let Err(why) = context.updates.claim() {
        return refuse(context, &mut answer, &why);
    }
    // From here this request owns the update: released and ended however it ends.
    let _claimed = Claimed(context);
    match prepare(context, &request, file) {
        Ok(image) => update(context, &request, image, &mut answer),
        Err(why) => refuse(context, &mut answer, &why),
    }
}

/// Refuses an update: nothing was touched.
fn refuse(context: &Context, answer: &mut Answer, why: &str) {
    context.log.event(
        Level::Warn,
        format_args!("update: refused: {why}"),
        &[("event", "update_refused".into()), ("reason", why.into())],
    );
    answer.line(&format!("refused: {why}; the running guest was not touched"), Some("refused"));
}

/// The checks made before anything is held: the digest the command announced, a guest to
/// replace, an image that loads.
fn prepare(context: &Context, request: &Request, mut file: File) -> Result<NewImage, String> {
    let path = PathBuf::from(&request.image);
    let (bytes, sha256) =
        digest(&mut file).map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
    if bytes > crate::image::MAX_IMAGE_BYTES {
        return Err(format!(
            "image {} is larger than {} bytes",
            path.display(),
            crate::image::MAX_IMAGE_BYTES
        ));
    }
    if sha256 != request.sha256 {
        return Err(format!(
            "image {} is sha256:{sha256}, not the sha256:{} announced",
            path.display(),
            request.sha256
        ));
    }
    crate::vmm::check_image(&mut file, &path, context.memory_bytes).map_err(|e| e.to_string())?;
    Ok(NewImage { file, path })
}

/// The image's size and sha256, read through its descriptor (at most one byte past the cap).
fn digest(file: &mut File) -> std::io::Result<(u64, String)> {
    std::io::Seek::rewind(file)?;
    struct Counting<'a>(std::io::Take<&'a mut File>, u64);
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n as u64;
            Ok(n)
        }
    }
    let mut counting = Counting(file.take(crate::image::MAX_IMAGE_BYTES + 1), 0);
    let sha256 = image_store::sha256_reader(&mut counting)?;
    Ok((counting.1, sha256))
}

/// How an update ended.
enum Ending {
    Done,
    RolledBack(String),
    Failed(String),
}

fn update(context: &Context, request: &Request, image: NewImage, answer: &mut Answer) {
    let path = image.path.display().to_string();
    let deadline = Duration::from_millis(request.deadline_ms.clamp(1, super::MAX_DEADLINE_MS));
    // Hold first, so that no connection reaches the old guest after it began to stop (released
    // here, or by the claim's end should this thread panic).
    let held_at = Instant::now();
    for relay in &context.published {
        relay.hold();
    }
    let in_flight: usize = context.published.iter().map(|r| r.connected_connections()).sum();
    context.log.event(
        Level::Info,
        format_args!(
            "update: {path} (sha256:{}): holding new connections; {in_flight} in flight get up to {} ms to finish; then the guest is stopped and {path} booted on its disk, healthy within {} ms or rolled back",
            request.sha256,
            context.drain.as_millis(),
            deadline.as_millis()
        ),
        &[
            ("event", "update_started".into()),
            ("image", path.as_str().into()),
            ("sha256", request.sha256.as_str().into()),
            ("deadline_ms", (deadline.as_millis() as u64).into()),
        ],
    );
    answer.line(&format!("holding new connections; stopping the guest to boot {path}"), None);
    let drain_until = Instant::now() + context.drain;
    while Instant::now() < drain_until && context.published.iter().any(|r| r.connected_connections() > 0) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let ending = match context.updates.begin(image) {
        Ok(old) => {
            old.handle.request_stop();
            follow(context, old.number, deadline, &path, answer)
        }
        Err(why) => Ending::Failed(why),
    };
    for relay in &context.published {
        relay.release();
    }
    let held = held_at.elapsed();
    let held_ms = held.as_millis() as u64;
    let (level, label, message) = match &ending {
        Ending::Done => {
            (Level::Info, "done", format!("done: {path} serves; new connections were held for {held_ms} ms"))
        }
        Ending::RolledBack(why) => (
            Level::Warn,
            "rolled_back",
            format!(
                "rolled back: {why}; the previous image serves again; new connections were held for {held_ms} ms"
            ),
        ),
        Ending::Failed(why) => (
            Level::Error,
            "failed",
            format!(
                "failed: {why}; new connections were held for {held_ms} ms; the supervisor's failover rules apply"
            ),
        ),
    };
    context.stats.update(label, held);
    let reason = match &ending {
        Ending::Done => String::new(),
        Ending::RolledBack(why) | Ending::Failed(why) => why.clone(),
    };
    context.log.event(
        level,
        format_args!("update: {message}"),
        &[
            ("event", format!("update_{label}").into()),
            ("image", path.as_str().into()),
            ("held_ms", held_ms.into()),
            ("reason", reason.into()),
        ],
    );
    answer.line(&message, Some(label));
}

/// A request's claim on the update: dropped (the request served, or its thread panicking), it
/// releases the published ports' connections and ends the update, so that neither outlasts it.
struct Claimed<'a>(&'a Context);

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        for relay in &self.0.published {
            relay.release();
        }
        self.0.updates.finish();
    }
}

/// Follows the update once the old guest was asked to stop (its run was `old`): the new
/// image's trial, and the rollback if it fails.
fn follow(context: &Context, old: u64, deadline: Duration, path: &str, answer: &mut Answer) -> Ending {
    let mut after = old;
    let mut failure = String::new();
    loop {
        match context.updates.next_phase(after, Duration::from_secs(1)) {
            Phase::Preparing | Phase::Stopping | Phase::Trial(None) | Phase::Rollback(None) => {}
            Phase::Trial(Some(run)) => {
                after = run.number;
                match healthy(context, &run, deadline) {
                    Ok(took) => {
                        answer.line(&format!("{path} answers, {} ms after its boot", took.as_millis()), None);
                        return Ending::Done;
                    }
                    Err(why) => {
                        failure = format!("{path} {why}");
                        answer.line(&format!("{failure}: rolling back"), None);
                        run.handle.end(Outcome::Unhealthy(format!("update: {why}")));
                    }
                }
            }
            Phase::Rollback(Some(run)) => {
                if failure.is_empty() {
                    // It ended before the update thread saw it run (a crash at boot).
                    let ended = context.updates.trial_ended().unwrap_or_else(|| "its guest ended".into());
                    failure = format!("{path} failed: {ended}");
                    answer.line(&format!("{failure}: rolling back"), None);
                }
                return match healthy(context, &run, deadline) {
                    Ok(_) => Ending::RolledBack(failure),
                    Err(why) => Ending::Failed(format!("{failure}; the previous image {why}")),
                };
            }
            Phase::Failed(why) => {
                return Ending::Failed(if failure.is_empty() { why } else { format!("{failure}; {why}") });
            }
            Phase::Idle => return Ending::Failed("the update was abandoned".into()),
        }
    }
}

/// Waits (at most `deadline` from now, about the run's boot) for the guest of `run` to be
/// ready and to answer its health endpoint alive (and, for a signer, its signer's with 200);
/// how long it took, or why not.
fn healthy(context: &Context, run: &Run, deadline: Duration) -> Result<Duration, String> {
    let began = Instant::now();
    let until = began + deadline;
    let ms = deadline.as_millis();
    while !run.handle.is_ready() {
        if run.handle.wait_end((Instant::now() + CHECK_PAUSE).min(until)) {
            return Err("ended before it was ready".into());
        }
        if Instant::now() >= until {
            return Err(format!("was not ready within {ms} ms of its boot"));
        }
    }
    let Some(target) = context.guest_http else { return Ok(began.elapsed()) };
    let mut last = String::from("no check yet");
    loop {
        let left = until.saturating_duration_since(Instant::now()).min(Duration::from_secs(1));
        if !left.is_zero() {
            match check(target, context.signer, left) {
                Ok(()) => return Ok(began.elapsed()),
                Err(why) => last = why,
            }
        }
        if run.handle.wait_end((Instant::now() + CHECK_PAUSE).min(until)) {
            return Err(format!("ended before it answered its health checks (last: {last})"));
        }
        if Instant::now() >= until {
            return Err(format!("was not healthy within {ms} ms of its boot (last: {last})"));
        }
    }
}

/// One check of a new guest: its health endpoint alive (not 503), and for a signer its
/// signer's 200.
fn check(target: SocketAddr, signer: bool, timeout: Duration) -> Result<(), String> {
    let get =
        |path: &str| guest_http::get(target, path, timeout, 64 * 1024).map_err(|e| format!("{path}: {e}"));
    let health = get(HEALTH_PATH)?;
    if health.status == 503 {
        return Err(format!("{HEALTH_PATH} answered 503"));
    }
    if signer {
        let status = get(SIGNER_HEALTH_PATH)?.status;
        if status != 200 {
            return Err(format!("{SIGNER_HEALTH_PATH} answered {status} (the key is not loaded)"));
        }
    }
    Ok(())
}

/// Reads the request line and the image's descriptor passed with it; an empty error when the
/// connection closed before its first byte.
fn receive(conn: &UnixStream) -> Result<(Request, File), String> {
    let mut buf = vec![0u8; MAX_REQUEST];
    // Room for one `cmsghdr` and a few descriptors, aligned as `cmsghdr` wants.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: an all-zero msghdr is a valid empty header; its pointers are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `header` points to `iov` (into `buf`) and `control`, all valid and exclusively
    // borrowed for the call; the kernel writes within the lengths given.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut header, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("cannot read the request: {}", std::io::Error::last_os_error()));
    }
    let mut files = Vec::new();
    // SAFETY: `header` was filled by recvmsg; the CMSG macros walk its control buffer within
    // `msg_controllen`, and each SCM_RIGHTS payload holds descriptors now owned by this
    // process, each taken once into a `File` (which closes it).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                let count =
                    ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / size_of::<libc::c_int>();
                for i in 0..count {
                    files.push(File::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&header, cmsg);
        }
    }
    if n == 0 && files.is_empty() {
        return Err(String::new());
    }
    if header.msg_flags & libc::MSG_CTRUNC != 0 || files.len() != 1 {
        return Err(format!("expected one image descriptor with the request, got {}", files.len()));
    }
    let mut got = buf[..n as usize].to_vec();
    let mut rest = [0u8; 1024];
    while !got.contains(&b'\n') {
        if got.len() >= MAX_REQUEST {
            return Err("the request line is too long".into());
        }
        match (&*conn).read(&mut rest) {
            Ok(0) => return Err("the request ended before its end of line".into()),
            Ok(n) => got.extend_from_slice(&rest[..n]),
            Err(e) => return Err(format!("cannot read the request: {e}")),
        }
    }
    let line = &got[..got.iter().position(|&b| b == b'\n').unwrap_or(got.len())];
    let request: Request = serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))?;
    Ok((request, files.pop().expect("one descriptor")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_descriptor_cross_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::super::socket_path(dir.path(), "n");
        let listener = listen(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);

        let image = dir.path().join("image.elf");
        std::fs::write(&image, b"not an ELF, only bytes").unwrap();
        let request =
            Request { image: image.display().to_string(), sha256: "ab".repeat(32), deadline_ms: 1234 };
        let sender = {
            let (path, request, image) = (path.clone(), request.clone(), image.clone());
            std::thread::spawn(move || {
                let file = File::open(&image).unwrap();
                let conn = UnixStream::connect(&path).unwrap();
                super::super::client::send(&conn, &request, &file).unwrap();
                conn
            })
        };
        let (conn, _) = listener.accept().unwrap();
        let (got, mut file) = receive(&conn).unwrap();
        assert_eq!(got, request);
        let (bytes, sha256) = digest(&mut file).unwrap();
        assert_eq!(bytes, 22);
        assert_eq!(sha256, image_store::sha256_file(&image).unwrap());
        drop(sender.join().unwrap());
        assert!(listen(&path).unwrap_err().contains("another launcher answers"));
        // That check's connection says nothing: no request, and nothing to report.
        let (probe, _) = listener.accept().unwrap();
        assert_eq!(receive(&probe).unwrap_err(), "");
        drop(listener);
        // A socket left behind by a launcher that is gone is replaced.
        assert!(listen(&path).is_ok());
    }
}
